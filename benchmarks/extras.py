"""Measurements besides the fan-out table: the launcher's CPU per container, a
100,000-trial plan, ``launch --help``."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from benchmarks.common import BUSYBOX, NOOP, ROOT, Context, median, timed_run


@dataclass
class Metric:
    """One measured number, and its target when it has one."""

    name: str
    value: float
    unit: str
    target: str = ""  # e.g. "<= 20"
    passed: bool | None = None
    note: str = ""

    def verdict(self) -> str:
        return "" if self.passed is None else "PASS" if self.passed else "MISS"


def cpu_per_container(ctx: Context, n: int = 100, small: int = 10) -> list[Metric]:
    """CPU time of run_sweep in a fresh process: amortized at N=n and marginal."""
    paths = [ctx.sweep_file(ctx.name(f"cpu{k}", size, 0), size, outputs=False)
             for k, size in (("warm", ctx.concurrency), ("small", small), ("large", n))]
    out = subprocess.run([sys.executable, "-m", "benchmarks.cpu_probe", *map(str, paths)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        return [Metric("launcher CPU per container", float("nan"), "ms", "<= 20", False,
                       f"probe failed: {out.stderr.strip()[-300:]}")]
    data = json.loads(out.stdout.strip().splitlines()[-1])
    large, lo = data["large"], data["small"]
    if large["succeeded"] != n or lo["succeeded"] != small:
        note = f"only {large['succeeded']}/{n} and {lo['succeeded']}/{small} succeeded"
    else:
        note = ""
    total = large["cpu_s"] + large["children_cpu_s"]
    marginal = (total - lo["cpu_s"] - lo["children_cpu_s"]) / (n - small)
    per = total / n
    return [
        Metric(f"launcher CPU per container (API run of N={n}, warm process)", per * 1e3,
               "ms", "<= 20", per * 1e3 <= 20, note),
        Metric(f"  marginal CPU per container (N={small} -> {n})", marginal * 1e3, "ms"),
        Metric(f"  fixed CPU per run (N={small} minus {small} x marginal)",
               (lo["cpu_s"] + lo["children_cpu_s"] - small * marginal) * 1e3, "ms"),
        Metric("  first run in a fresh process, imports included (CPU)",
               data["cold"]["cpu_s"] * 1e3, "ms"),
    ]


def plan_100k(ctx: Context, reps: int) -> list[Metric]:
    """``launch plan --format csv > /dev/null`` of 1000 configurations x 100 replicas."""
    path = ctx.tmp / "plan100k.yaml"
    path.write_text("name: plan100k\nmethod: grid\n"
                    f"command: [{', '.join(NOOP)}]\nimage: {{tag: \"{BUSYBOX}\"}}\n"
                    "parameters:\n  x: {distribution: int_uniform, min: 1, max: 1000}\n"
                    "replicas: 100\n")
    argv = [ctx.launch, "plan", str(path), "--format", "csv"]
    check = ctx.tmp / "plan100k.csv"
    with open(check, "wb") as f:
        first = timed_run(argv, stdout=f)
    rows = check.read_bytes().count(b"\n") - 1
    check.unlink()
    runs = [timed_run(argv) for _ in range(reps)]
    note = "" if rows == 100_000 and first.returncode == 0 else \
        f"exit {first.returncode}, {rows} rows instead of 100000"
    wall = median(r.wall_s for r in runs)
    rss = max(r.maxrss_mb for r in runs)
    return [Metric("100k-trial `launch plan --format csv` wall", wall, "s", "< 3",
                   wall < 3 and not note, note),
            Metric("100k-trial `launch plan --format csv` peak RSS", rss, "MB", "< 300",
                   rss < 300 and not note)]


def help_time(ctx: Context, reps: int = 7) -> list[Metric]:
    timed_run([ctx.launch, "--help"])  # page cache, .pyc files
    runs = [timed_run([ctx.launch, "--help"]) for _ in range(reps)]
    wall = median(r.wall_s for r in runs)
    bad = [r.returncode for r in runs if r.returncode != 0]
    return [Metric(f"`launch --help` wall (median of {reps})", wall, "s", "< 0.3",
                   wall < 0.3 and not bad, f"exit codes {bad}" if bad else "")]


def metrics_json(metrics: list[Metric]) -> list[dict[str, Any]]:
    return [m.__dict__ | {"verdict": m.verdict()} for m in metrics]
