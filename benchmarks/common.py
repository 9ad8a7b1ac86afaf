"""Shared pieces of the benchmarks: the run context, sweep files, timed subprocesses,
hardening flags for ``docker run``, and the check that nothing is left behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BUSYBOX = "launcher-busybox:latest"
NOOP = ["/bin/true"]
USER = "10001"
MEMORY = "64m"
MEMORY_BYTES = 64 * 1024 * 1024
BENCH_LABEL = "io.launcher.bench"  # on containers that the launcher does not start
LAUNCHER_SWEEP_LABEL = "io.launcher.sweep"


def venv_bin(name: str) -> str:
    """A console script of the interpreter running the benchmark (the project's venv)."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


@dataclass
class Context:
    """What every contender of one benchmark run shares."""

    token: str  # makes every sweep, project and label of this run unique
    concurrency: int  # concurrent containers, the same for every contender
    ncpu: int  # CPUs the local engine reports (the launcher's slot arithmetic)
    image_id: str
    tmp: Path
    launch: str = field(default_factory=lambda: venv_bin("launch"))

    @property
    def cpus(self) -> float:
        """resources.cpus that makes the launcher's slots (NCPU / cpus) equal concurrency."""
        return self.ncpu / self.concurrency

    def name(self, contender: str, n: int, rep: int) -> str:
        return f"bench-{contender}-n{n}-r{rep}-{self.token}"

    def sweep_file(self, name: str, n: int, *, outputs: bool, backend: str = "docker",
                   command: Sequence[str] = NOOP) -> Path:
        """A no-op sweep of ``n`` trials with the benchmark's container settings."""
        lines = [
            f"name: {name}",
            f"command: [{', '.join(command)}]",
            f"image: {{tag: \"{BUSYBOX}\"}}",
            f"user: \"{USER}\"",
            f"resources: {{cpus: {self.cpus:g}, memory: {MEMORY}}}",
            f"outputs: {'true' if outputs else 'false'}",
            f"results: {self.results_root}",
            f"backend: {backend}",
            f"replicas: {n}",
            "seed_mode: fixed",
        ]
        path = self.tmp / f"{name}.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    @property
    def results_root(self) -> Path:
        return self.tmp / "results"

    def launcher_create_kwargs(self, outputs: bool = False) -> dict[str, Any]:
        """The launcher's own container-create arguments for one no-op trial."""
        import docker

        from launcher.command import Argv
        from launcher.container import ContainerSettings
        from launcher.sections import Resources
        from launcher.trial import Trial

        settings = ContainerSettings(image=self.image_id, run_id="bench", sweep="bench",
                                     resources=Resources(cpus=self.cpus, memory=MEMORY_BYTES),
                                     user=USER, outputs=outputs)
        api = docker.APIClient(version="1.41")  # create_host_config needs no connection
        trial = Trial("0" * 12, "bench", 0, 0, 0, ())
        return dict(settings.create_kwargs(api, trial, Argv(None, list(NOOP)), 1))

    def docker_run_flags(self, name: str) -> list[str]:
        """``docker run --rm`` flags equivalent to the launcher's container (outputs: false),
        translated from the launcher's own create arguments so that they stay in step."""
        kwargs = self.launcher_create_kwargs()
        hc = kwargs["host_config"]
        flags = ["--rm", "--network", hc["NetworkMode"], "--label", f"{BENCH_LABEL}={name}",
                 "--memory", f"{hc['Memory']}b", "--memory-swap", f"{hc['MemorySwap']}b",
                 "--cpus", f"{hc['NanoCpus'] / 1e9:g}", "--pids-limit", str(hc["PidsLimit"])]
        flags += ["--read-only"] if hc.get("ReadonlyRootfs") else []
        flags += ["--init"] if hc.get("Init") else []
        for cap in hc.get("CapDrop") or []:
            flags += ["--cap-drop", cap]
        for opt in hc.get("SecurityOpt") or []:
            flags += ["--security-opt", opt]
        for target, options in (hc.get("Tmpfs") or {}).items():
            flags += ["--tmpfs", f"{target}:{options}"]
        if kwargs.get("user"):
            flags += ["--user", kwargs["user"]]
        for key, value in (kwargs.get("environment") or {}).items():
            if key != "LAUNCH_TRIAL_ID":
                flags += ["-e", f"{key}={value}"]
        return flags


def make_context(concurrency: int) -> Context:
    import secrets

    import docker

    client = docker.from_env()
    try:
        ncpu = int(client.info()["NCPU"])
        image_id = client.images.get(BUSYBOX).id
    finally:
        client.close()
    tmp = Path(tempfile.mkdtemp(prefix="launcher-bench-"))
    return Context(token=secrets.token_hex(3), concurrency=concurrency, ncpu=ncpu,
                   image_id=image_id, tmp=tmp)


@dataclass
class Measured:
    """A finished child process: wall time, exit code, its CPU time and peak memory."""

    wall_s: float
    returncode: int
    cpu_s: float  # user + system of the child and the children it waited for
    maxrss_mb: float


def timed_run(argv: Sequence[str], *, stdout: Any = subprocess.DEVNULL,
              stderr: Any = subprocess.DEVNULL, env: dict[str, str] | None = None,
              cwd: Path | None = None, timeout: float = 1800) -> Measured:
    """Run ``argv`` and measure it through wait4 (this child's own rusage).

    Linux counts the parent's memory at fork time into a child's ``ru_maxrss``, so a
    large benchmark process would inflate it: the peak RSS comes from GNU time (whose
    own child is forked from a small process) when /usr/bin/time exists."""
    started = time.perf_counter()
    rss_file = None
    if Path(GNU_TIME).is_file():
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file, *argv]
    proc = subprocess.Popen(list(argv), stdout=stdout, stderr=stderr, cwd=cwd,
                            env={**os.environ, **(env or {})}, start_new_session=True)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # GNU time and the command it runs
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.005)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    maxrss_mb = usage.ru_maxrss / 1024
    if rss_file:
        with contextlib.suppress(OSError, ValueError):
            maxrss_mb = int(Path(rss_file).read_text().split()[-1]) / 1024
        Path(rss_file).unlink(missing_ok=True)
    return Measured(wall_s=wall, returncode=proc.returncode,
                    cpu_s=usage.ru_utime + usage.ru_stime, maxrss_mb=maxrss_mb)


GNU_TIME = "/usr/bin/time"


def leftover_containers(api: Any, label: str) -> list[str]:
    """Ids of containers (any state) carrying ``label`` (``key=value``)."""
    return [c["Id"] for c in api.containers(all=True, filters={"label": [label]})]


def remove_containers(api: Any, ids: Iterable[str]) -> None:
    for cid in ids:
        try:
            api.remove_container(cid, v=True, force=True)
        except Exception as e:  # already gone, or the engine refuses: say so, go on
            print(f"  note: could not remove leftover container {cid[:12]}: {e}")


def remove_everything_of(api: Any, token: str) -> int:
    """Remove every container this benchmark run started (found by its token)."""
    found = []
    for c in api.containers(all=True):
        labels = c.get("Labels") or {}
        values = (labels.get(BENCH_LABEL, ""), labels.get(LAUNCHER_SWEEP_LABEL, ""),
                  labels.get("com.docker.compose.project", ""))
        if any(v.endswith(token) or v.endswith(token.replace("-", "")) for v in values if v):
            found.append(c["Id"])
    remove_containers(api, found)
    return len(found)


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v == v]  # drop NaN
    return statistics.median(data) if data else float("nan")


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
