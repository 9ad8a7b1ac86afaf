"""The ways of running N no-op containers that the fan-out benchmark puts side by side.

Every contender runs the same container (launcher-busybox, ``/bin/true``, user 10001,
network none, read-only root, every capability dropped, no-new-privileges, tmpfs /tmp,
memory 64m without swap, CPU and pids limits, an init process) at the same concurrency,
and is timed from its start until its last container is removed.

Adding a contender (e.g. a new backend): subclass :class:`Contender`, give it a ``key``,
``title`` and ``label`` (how its containers are found afterwards), implement ``run``,
optionally ``available`` (a reason to skip, or None) and ``check``; append an instance
to :func:`all_contenders`. The Ray backend is wired that way: it joins the benchmark by
itself as soon as ``launcher.backends.ray`` exists and ``ray`` imports.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BENCH_LABEL,
    BUSYBOX,
    LAUNCHER_SWEEP_LABEL,
    MEMORY_BYTES,
    NOOP,
    USER,
    Context,
    Measured,
    timed_run,
)


@dataclass
class Outcome:
    """What one timed run gave back; ``cpu_s`` is the client side's CPU time."""

    wall_s: float
    cpu_s: float
    value: Any = None


class Contender:
    key = ""
    title = ""
    in_process = False
    only_sizes: tuple[int, ...] = ()  # run at these N only (empty: every N)

    def available(self, ctx: Context) -> str | None:
        """None when it can run here, else why it is skipped."""
        return None

    def label(self, ctx: Context, name: str) -> str:
        """The ``key=value`` label that every container of this run carries."""
        return f"{BENCH_LABEL}={name}"

    def prepare(self, ctx: Context, n: int, name: str) -> None:
        """Untimed set-up (files)."""

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        raise NotImplementedError

    def check(self, ctx: Context, n: int, name: str, outcome: Outcome) -> str:
        """Empty when all ``n`` containers ran and succeeded, else what went wrong."""
        return ""


def _in_process(fn: Any, *args: Any) -> Outcome:
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn(*args)
    return Outcome(time.perf_counter() - wall, time.process_time() - cpu, value)


def _subprocess(argv: list[str], ctx: Context, name: str, **kw: Any) -> Outcome:
    log = ctx.tmp / f"{name}.log"
    with open(log, "wb") as out:
        m = timed_run(argv, stdout=out, stderr=out, **kw)
    return Outcome(m.wall_s, m.cpu_s, m)


def _rc_check(ctx: Context, name: str, outcome: Outcome) -> str:
    m: Measured = outcome.value
    if m.returncode == 0:
        return ""
    tail = (ctx.tmp / f"{name}.log").read_text(errors="replace").strip().splitlines()[-3:]
    return f"exit code {m.returncode}: {' | '.join(tail)[:300]}"


# -- the floor: docker-py, nothing else -------------------------------------------------------
class Floor(Contender):
    """create / start / wait / logs / remove(v=True) in ``concurrency`` threads, with the
    exact create arguments of launcher.container.ContainerSettings."""

    key, title, in_process = "floor", "floor: docker-py loop", True
    outputs = False

    def label(self, ctx: Context, name: str) -> str:
        return f"{LAUNCHER_SWEEP_LABEL}={name}"

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        return _in_process(floor_loop, ctx, n, name, self.outputs)

    def check(self, ctx: Context, n: int, name: str, outcome: Outcome) -> str:
        codes = outcome.value
        bad = [c for c in codes if c != 0]
        return f"{len(bad)} of {n} exit codes not 0" if bad or len(codes) != n else ""


class FloorOutputs(Floor):
    """The floor for ``outputs: true``: a volume at /outputs, copied out after exit.
    Only at N=100 by default, to keep a full run short."""

    key, title = "floor-out", "floor + get_archive /outputs"
    outputs = True
    only_sizes = (100,)


def floor_loop(ctx: Context, n: int, name: str, outputs: bool) -> list[int]:
    import docker

    from launcher.command import Argv
    from launcher.container import ContainerSettings
    from launcher.sections import Resources
    from launcher.trial import Trial

    api = docker.APIClient(**docker.utils.kwargs_from_env(), version="auto",
                           max_pool_size=ctx.concurrency + 4)
    settings = ContainerSettings(image=ctx.image_id, run_id=name, sweep=name,
                                 resources=Resources(cpus=ctx.cpus, memory=MEMORY_BYTES),
                                 user=USER, outputs=outputs)
    argv = Argv(None, list(NOOP))

    def one(i: int) -> int:
        trial = Trial(f"{i:012x}", "bench", i, i, 0, ())
        cid = api.create_container(**settings.create_kwargs(api, trial, argv, 1))["Id"]
        try:
            api.start(cid)
            code = int(api.wait(cid)["StatusCode"])
            api.logs(cid)
            if outputs:
                stream, _ = api.get_archive(cid, "/outputs")
                for _chunk in stream:
                    pass
            return code
        finally:
            api.remove_container(cid, v=True)

    try:
        with ThreadPoolExecutor(ctx.concurrency) as pool:
            return list(pool.map(one, range(n)))
    finally:
        api.close()


# -- the launcher ---------------------------------------------------------------------------
class LauncherApi(Contender):
    """``launcher.api.run_sweep(path, progress="quiet")`` in this (warm) process."""

    key, title, in_process = "api", "launcher API, outputs: false", True
    outputs = False
    backend = "docker"

    def label(self, ctx: Context, name: str) -> str:
        return f"{LAUNCHER_SWEEP_LABEL}={name}"

    def prepare(self, ctx: Context, n: int, name: str) -> None:
        ctx.sweep_file(name, n, outputs=self.outputs, backend=self.backend)

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        from launcher.api import run_sweep

        return _in_process(run_sweep, str(ctx.tmp / f"{name}.yaml"), None)

    def check(self, ctx: Context, n: int, name: str, outcome: Outcome) -> str:
        results = outcome.value
        df = results.df
        ok = int((df["status"] == "succeeded").sum())
        return "" if ok == n and len(df) == n else f"{ok} of {n} trials succeeded"


class LauncherApiOutputs(LauncherApi):
    key, title = "api-out", "launcher API, outputs: true"
    outputs = True


class LaunchCommand(LauncherApi):
    """``launch SWEEP --quiet`` as a subprocess: interpreter start-up and imports included."""

    key, title, in_process = "launch", "`launch`, outputs: false", False

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        return _subprocess([ctx.launch, str(ctx.tmp / f"{name}.yaml"), "--quiet"], ctx, name)

    def check(self, ctx: Context, n: int, name: str, outcome: Outcome) -> str:
        return _rc_check(ctx, name, outcome)


class LaunchCommandOutputs(LaunchCommand):
    key, title = "launch-out", "`launch`, outputs: true"
    outputs = True


class RayBackend(LaunchCommand):
    """The Ray backend (sweep ``backend: ray``, an embedded local Ray started by the run)."""

    key, title = "ray", "`launch`, backend: ray"
    backend = "ray"

    def available(self, ctx: Context) -> str | None:
        if importlib.util.find_spec("ray") is None:
            return "ray is not installed in this venv"
        try:
            found = importlib.util.find_spec("launcher.backends.ray")
        except ImportError:
            found = None
        return None if found else "launcher.backends.ray does not exist yet"


# -- what users script instead ----------------------------------------------------------------
def _docker_run(ctx: Context, name: str) -> str:
    return (f"docker run {shlex.join(ctx.docker_run_flags(name))} "
            f"-e LAUNCH_TRIAL_ID=$i {BUSYBOX} {shlex.join(NOOP)} >/dev/null")


class Xargs(Contender):
    key, title = "xargs", "xargs -P docker run --rm"

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        one = _docker_run(ctx, name).replace("$i", "{}")
        script = f"seq {n} | xargs -P {ctx.concurrency} -I{{}} {one}"
        return _subprocess(["bash", "-c", script], ctx, name)

    def check(self, ctx: Context, n: int, name: str, outcome: Outcome) -> str:
        return _rc_check(ctx, name, outcome)


class SequentialLoop(Xargs):
    key, title = "loop", "sequential docker run --rm"

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        script = (f"fail=0; for i in $(seq {n}); do {_docker_run(ctx, name)} || fail=1; done; "
                  "exit $fail")
        return _subprocess(["bash", "-c", script], ctx, name)


class Compose(Contender):
    """``docker-compose up --scale noop=N`` (attached, returns when all have exited), then
    ``down -v``; COMPOSE_PARALLEL_LIMIT is the benchmark's concurrency."""

    key, title = "compose", "docker-compose up --scale"

    def available(self, ctx: Context) -> str | None:
        if shutil.which("docker-compose") is None:
            return ("docker-compose is not installed (Debian: apt-get install docker-compose; "
                    "see apt-cache policy docker-compose)")
        return None

    def label(self, ctx: Context, name: str) -> str:
        return f"com.docker.compose.project={name}"

    def prepare(self, ctx: Context, n: int, name: str) -> None:
        import json

        kwargs = ctx.launcher_create_kwargs()
        hc = kwargs["host_config"]
        service = {
            "image": BUSYBOX, "command": list(NOOP), "user": kwargs["user"],
            "network_mode": hc["NetworkMode"], "read_only": bool(hc.get("ReadonlyRootfs")),
            "cap_drop": hc.get("CapDrop") or [], "security_opt": hc.get("SecurityOpt") or [],
            "tmpfs": [f"{k}:{v}" for k, v in (hc.get("Tmpfs") or {}).items()],
            "mem_limit": hc["Memory"], "memswap_limit": hc["MemorySwap"],
            "cpus": hc["NanoCpus"] / 1e9, "pids_limit": hc["PidsLimit"],
            "init": bool(hc.get("Init")), "environment": kwargs.get("environment") or {},
            "labels": {BENCH_LABEL: name},
        }
        document = {"version": "2.4", "services": {"noop": service}}
        (ctx.tmp / f"{name}.compose.yml").write_text(json.dumps(document, indent=1))  # YAML

    def run(self, ctx: Context, n: int, name: str) -> Outcome:
        compose = f"docker-compose -p {name} -f {ctx.tmp / (name + '.compose.yml')}"
        script = (f"{compose} up --scale noop={n} --no-color; rc=$?; "
                  f"{compose} down -v >/dev/null 2>&1; exit $rc")
        return _subprocess(["bash", "-c", script], ctx, name,
                           env={"COMPOSE_PARALLEL_LIMIT": str(ctx.concurrency)})

    def check(self, ctx: Context, n: int, name: str, outcome: Outcome) -> str:
        problem = _rc_check(ctx, name, outcome)
        text = (ctx.tmp / f"{name}.log").read_text(errors="replace")
        exited = text.count("exited with code 0")
        return problem or ("" if exited == n else f"{exited} of {n} exited with code 0")


def all_contenders() -> list[Contender]:
    return [Floor(), FloorOutputs(), LauncherApi(), LaunchCommand(), LauncherApiOutputs(),
            LaunchCommandOutputs(), Xargs(), SequentialLoop(), Compose(), RayBackend()]


def results_dir_of(ctx: Context, name: str) -> Path:
    """Where the launcher contenders' run folders go (removed after each check)."""
    return ctx.results_root / name
