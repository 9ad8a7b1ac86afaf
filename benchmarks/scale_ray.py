"""Ray against Docker backend on the same machine, engine and concurrency.

N no-op containers (the fan-out benchmark's busybox sweep) through ``launch`` with the
Docker backend, then with ``backend: ray`` connected to a Ray cluster that is already
running (one node on the local engine, started here once with scripts/ray-cluster.sh in
a private state folder and port, so its start-up is not what is measured). Ray's own
CPU is the CPU of the cluster's processes (the node's process group) during the run.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ROOT, Context, timed_run

SCRIPT = str(ROOT / "scripts" / "ray-cluster.sh")
PORT = "6417"


@dataclass
class RaySample:
    backend: str
    n: int
    wall_s: float
    driver_cpu_s: float
    cluster_cpu_s: float
    ok: bool


class RayCluster:
    """A one-node Ray cluster on the local engine, stopped on exit."""

    def __init__(self, folder: Path, cpus: int) -> None:
        self.env = {**os.environ, "LAUNCHER_RAY_STATE": str(folder),
                    "LAUNCHER_RAY_PORT": PORT, "LAUNCHER_RAY_NODES": "main",
                    "LAUNCHER_RAY_CPUS": str(cpus)}
        self.folder = folder
        self.address = ""

    def __enter__(self) -> RayCluster:
        done = subprocess.run([SCRIPT, "up"], env=self.env, capture_output=True, text=True,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"ray-cluster.sh up failed: {done.stderr[-1500:]}")
        self.address = done.stdout.strip().splitlines()[-1]
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run([SCRIPT, "down"], env=self.env, capture_output=True, timeout=120)

    def cpu_s(self) -> float:
        """CPU seconds of the node's processes (its process group) so far."""
        try:
            group = int((self.folder / "main.pid").read_text().strip())
        except (OSError, ValueError):
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group:  # pgrp
                total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / ticks


def ray_vs_docker(ctx: Context, sizes: list[int], reps: int) -> list[RaySample]:
    """Docker and Ray runs of every size, alternating, ``reps`` times."""
    out: list[RaySample] = []
    with RayCluster(ctx.tmp / "ray-cluster", max(1, ctx.ncpu)) as cluster:
        env = {"RAY_AUTH_MODE": "token"}
        warm = ctx.sweep_file(ctx.name("ray-warm", 4, 0), 4, outputs=False, backend="ray")
        timed_run([ctx.launch, str(warm), "--quiet", "--ray-address", cluster.address],
                  env=env)
        for rep in range(reps):
            for n in sizes:
                for backend in ("docker", "ray") if rep % 2 == 0 else ("ray", "docker"):
                    path = ctx.sweep_file(ctx.name(f"scale-{backend}", n, rep), n,
                                          outputs=False, backend=backend)
                    extra = ["--ray-address", cluster.address] if backend == "ray" else []
                    before = cluster.cpu_s()
                    m = timed_run([ctx.launch, str(path), "--quiet", *extra], env=env)
                    sample = RaySample(backend, n, m.wall_s, m.cpu_s,
                                       cluster.cpu_s() - before if backend == "ray" else 0.0,
                                       m.returncode == 0)
                    out.append(sample)
                    print(f"  {backend:<6} N={n:<5} {m.wall_s:7.2f} s  driver cpu "
                          f"{m.cpu_s:6.2f} s  cluster cpu {sample.cluster_cpu_s:6.2f} s  "
                          f"exit {m.returncode}", flush=True)
    return out
