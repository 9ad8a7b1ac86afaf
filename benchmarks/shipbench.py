"""Image shipping: ``launcher.shipping.ship`` from the local engine to two hosts at once,
against one plain ``docker save | docker load`` to one host.

The shipped image is the project image (``launch build experiments/sweep.yaml``). By
default the benchmark ships a private copy of it: the same files flattened into one
layer plus a marker file, tagged ``launcher-bench-ship:<token>``. The copy has its own
image ID and layer, so removing it from the test hosts between repetitions cannot break
anyone else's containers there, and every load really stores the whole layer. With
``--ship-real`` the project image itself is removed from the hosts and shipped (only
when no container there uses it).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Context, median, timed_run
from benchmarks.extras import Metric

HOSTS_ENV = "/run/launcher-test-hosts/hosts.env"


@dataclass
class Hosts:
    source: Any
    targets: list[Any]  # launcher.hosts.Host for h2, h3

    def close(self) -> None:
        for h in (self.source, *self.targets):
            h.close()


def read_hosts_env() -> dict[str, str]:
    env = {}
    try:
        for line in Path(HOSTS_ENV).read_text().splitlines():
            key, _, value = line.strip().partition("=")
            if key:
                env[key] = value
    except OSError:
        pass
    return {**env, **{k: v for k, v in os.environ.items() if k in ("H2_SOCK", "H3_SOCK")}}


def project_image(ctx: Context) -> tuple[str, str]:
    """(image ID, tag) of the project image, built once (cached) by ``launch build``."""
    out = subprocess.run([ctx.launch, "build", "experiments/sweep.yaml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError(f"launch build failed: {out.stderr.strip()[-300:]}")
    image_id = out.stdout.strip().splitlines()[-1]
    tag = out.stderr.strip().splitlines()[-1].split()[0]
    return image_id, tag


def private_copy(ref: str, ctx: Context) -> tuple[str, str]:
    """The files of ``ref`` plus a marker, as a one-layer image nobody else uses."""
    tag = f"launcher-bench-ship:{ctx.token}"
    name = f"bench-ship-{ctx.token}"
    script = (f"docker run --name {name} --network none --user 0 --entrypoint sh {ref} "
              f"-c 'echo {ctx.token} > /bench-ship-marker' >/dev/null && "
              f"docker export {name} | docker import - {tag} >/dev/null; rc=$?; "
              f"docker rm -f {name} >/dev/null; exit $rc")
    subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True, timeout=900)
    image_id = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", tag],
                              capture_output=True, text=True, check=True).stdout.strip()
    return image_id, tag


def connect(env: dict[str, str]) -> Hosts:
    from launcher.hosts import connect as connect_host
    from launcher.sections import HostSpec

    source = connect_host(HostSpec("local", "local"))
    targets = [connect_host(HostSpec(env[k], k[:2].lower())) for k in ("H2_SOCK", "H3_SOCK")]
    return Hosts(source, targets)


def _remove(host: Any, image_id: str, real: bool) -> str:
    """Remove the image from a host; '' on success, else why not."""
    import docker.errors

    api = host.client.api
    if real and api.containers(all=True, filters={"ancestor": image_id}):
        return f"{host.name} has containers of the project image; not removing it"
    try:
        api.remove_image(image_id, force=True)
    except docker.errors.ImageNotFound:
        pass
    except docker.errors.APIError as e:
        return f"{host.name}: cannot remove the image: {e}"
    return ""


def _loads(host: Any, image_id: str, since: float, until: float) -> int:
    """Load events of this image on the host (other people's tests load other images)."""
    events = host.client.api.events(since=int(since) - 1, until=int(until) + 1, decode=True,
                                    filters={"type": "image", "event": "load"})
    return sum(1 for e in events if e.get("timeNano", 0) >= since * 1e9
               and image_id in (e.get("id"), (e.get("Actor") or {}).get("ID")))


def _has(host: Any, image_id: str) -> bool:
    import docker.errors

    try:
        return bool(host.client.api.inspect_image(image_id)["Id"] == image_id)
    except docker.errors.ImageNotFound:
        return False


@dataclass
class Timings:
    two: list[float] = field(default_factory=list)  # ship to h2 and h3 at once
    one: list[float] = field(default_factory=list)  # ship to h2
    saveload: list[float] = field(default_factory=list)  # docker save | docker load to h2
    loads: list[list[int]] = field(default_factory=list)  # load events on (h2, h3) per ship
    again: list[dict[str, str]] = field(default_factory=list)  # a second setup's verdicts
    problems: list[str] = field(default_factory=list)


def ship_bench(ctx: Context, reps: int, real: bool = False,
               one_host: bool = False) -> list[Metric]:
    """``one_host`` also times ``ship`` to h2 alone (for reference)."""
    env = read_hosts_env()
    if "H2_SOCK" not in env or "H3_SOCK" not in env:
        return [Metric("image shipping", float("nan"), "", note="skipped: no test hosts "
                       f"({HOSTS_ENV} missing; run scripts/test-hosts.sh up)")]
    project_id, project_tag = project_image(ctx)
    image_id, tag = (project_id, project_tag) if real else private_copy(project_tag, ctx)
    hosts = connect(env)
    t = Timings()
    try:
        for rep in range(reps):
            steps = ["ship2", "saveload", "ship1"][:3 if one_host else 2]
            k = rep % len(steps)
            for step in steps[k:] + steps[:k]:
                for attempt in (1, 2):  # a test host restarted by someone's test: once more
                    try:
                        _step(step, hosts, image_id, tag, env["H2_SOCK"], real, t)
                        break
                    except Exception as e:
                        t.problems.append(f"{step} attempt {attempt}: {type(e).__name__}: "
                                          f"{str(e)[:120]}")
                        _wait_for(hosts.targets)
                if any(p.startswith("stop:") for p in t.problems):
                    return _metrics(t, real, project_tag)
    finally:
        if not real:
            for h in (*hosts.targets, hosts.source):
                _remove(h, image_id, False)
        hosts.close()
    return _metrics(t, real, project_tag)


def _step(step: str, hosts: Hosts, image_id: str, tag: str, sock2: str, real: bool,
          t: Timings) -> None:
    from launcher.image import BuiltImage
    from launcher.shipping import ensure_image_on_hosts, ship

    h2, h3 = hosts.targets
    for h in (h2, h3):
        why = _remove(h, image_id, real)
        if why:
            t.problems.append(f"stop: {why}")
            return
    t0 = time.time()
    started = time.perf_counter()
    if step == "ship2":
        ship(hosts.source, tag, [h2, h3])
        t.two.append(time.perf_counter() - started)
        t.loads.append([_loads(h, image_id, t0, time.time()) for h in (h2, h3)])
        # What a backend's setup does next: it must find the image and ship nothing.
        t.again.append(ensure_image_on_hosts(BuiltImage(id=image_id, tag=tag), hosts.source,
                                             [h2, h3]))
    elif step == "ship1":
        ship(hosts.source, tag, [h2])
        t.one.append(time.perf_counter() - started)
    else:
        m = timed_run(["bash", "-o", "pipefail", "-c",
                       f"docker save {tag} | docker -H {sock2} load -q"])
        if m.returncode:
            raise RuntimeError(f"docker save | docker load exited {m.returncode}")
        t.saveload.append(m.wall_s)
    if not _has(h2, image_id) or (step == "ship2" and not _has(h3, image_id)):
        raise RuntimeError(f"{step}: the image ID is not on the target afterwards")


def _wait_for(hosts: list[Any], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    for h in hosts:
        while time.monotonic() < deadline:
            try:
                h.client.api.ping()
                break
            except Exception:
                time.sleep(1)


def _metrics(t: Timings, real: bool, project_tag: str) -> list[Metric]:
    t2, tsl = median(t.two), median(t.saveload)
    ratio = t2 / tsl
    what = project_tag if real else f"a private one-layer copy of {project_tag}"
    once = bool(t.again) and all(x == [1, 1] for x in t.loads) and all(
        set(a.values()) == {"present"} for a in t.again)
    note = "; ".join(dict.fromkeys(t.problems))
    stopped = any(p.startswith("stop:") for p in t.problems)
    return [
        Metric(f"ship to 2 hosts ({what}), median of {len(t.two)}", t2, "s", note=note),
        *([Metric("  ship to 1 host (for reference)", median(t.one), "s")] if t.one else []),
        Metric("  docker save | docker load to 1 host", tsl, "s"),
        Metric("ship to 2 hosts / one save|load", ratio, "x", "<= 1.5",
               ratio <= 1.5 and not stopped),
        Metric("image loaded once per host per ship; a second setup ships nothing",
               float(once), "bool", "== 1", once,
               f"load events per ship (h2, h3): {t.loads}; second setup: "
               f"{[sorted(set(a.values())) for a in t.again]}"),
    ]
