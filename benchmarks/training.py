"""The real training sweep on one host against ideal parallel efficiency.

ideal = N x (one trial alone, same container settings) / cores; efficiency = ideal / wall
of ``launch experiments/replicas.yaml --replicas N --host local`` (start-up included).
"""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, Context, median, timed_run
from benchmarks.extras import Metric

SWEEP = ROOT / "experiments" / "replicas.yaml"
LABEL_RUN = "io.launcher.run"


def single_trial_times(ctx: Context, reps: int) -> tuple[list[float], list[float], str]:
    """Wall of one trial alone through launcher.container.run_trial (create .. remove),
    with the settings the sweep gives its containers, and its start..exit part.
    Returns (times, run times, problem)."""
    from launcher.api import resolve_spec
    from launcher.command import render
    from launcher.hosts import connect_local
    from launcher.plan import expand
    from launcher.prepare import build, container_settings

    spec = resolve_spec(SWEEP, None, replicas=1, results=str(ctx.tmp / "train-results"))
    host = connect_local(cpus_per_trial=spec.resources.cpus)
    assert host is not None
    from launcher.container import run_trial

    times: list[float] = []
    runs: list[float] = []
    problem = ""
    try:
        image = build(spec, host)
        run_id = f"bench-single-{ctx.token}"
        settings = container_settings(spec, image, run_id, {})
        trial = expand(spec).trials[0]
        argv = render(spec.command, spec.program, trial, {})
        for _ in range(reps):
            started = time.perf_counter()
            result = run_trial(host.client.api, trial, argv, settings, host="local")
            times.append(time.perf_counter() - started)
            runs.append(float(result.duration_s or "nan"))
            if result.status != "succeeded":
                problem = f"single trial {result.status}: {result.reason}"
    finally:
        host.close()
    return times, runs, problem


def training_efficiency(ctx: Context, replicas: int, single_reps: int = 2) -> list[Metric]:
    """Single trials measured right before and right after the sweep (external load moves)."""
    times, runs, problem = single_trial_times(ctx, single_reps)
    load = os.getloadavg()[0]
    out_file = ctx.tmp / "train.json"
    with open(out_file, "wb") as out, open(ctx.tmp / "train.log", "wb") as err:
        m = timed_run([ctx.launch, str(SWEEP), "--replicas", str(replicas), "--quiet", "--json",
                       "--host", "local", "--results", str(ctx.tmp / "train-results")],
                      stdout=out, stderr=err, cwd=ROOT)
    summary: dict[str, Any] = {}
    try:
        summary = json.loads(out_file.read_text())
    except ValueError:
        problem = problem or f"launch exited {m.returncode}, no JSON summary"
    ok = summary.get("status", {}).get("succeeded", 0)
    if ok != replicas:
        problem = problem or f"{ok} of {replicas} trials succeeded (exit {m.returncode})"
    in_run = _trial_durations(Path(summary["run_dir"])) if "run_dir" in summary else []
    load = max(load, os.getloadavg()[0])
    after, runs_after, problem_after = single_trial_times(ctx, single_reps)
    times, runs, problem = times + after, runs + runs_after, problem or problem_after
    t1 = median(times)
    left = leftovers([f"bench-single-{ctx.token}", str(summary.get("run_id", "-"))])
    if left:
        problem = problem or f"{left} containers left behind"
    ideal = replicas * t1 / ctx.ncpu
    eff = ideal / m.wall_s
    slots = int(ctx.ncpu // 1)  # replicas.yaml asks for 1 CPU per trial
    outside = (m.wall_s * slots - sum(in_run)) / max(1, len(in_run))
    return [
        Metric(f"one training trial alone, create..remove (median of {len(times)}, before "
               "and after the sweep)", t1, "s"),
        Metric("  of which start..exit", median(runs), "s"),
        Metric(f"training sweep, {replicas} replicas on one host ({slots} slots), wall",
               m.wall_s, "s", note=problem),
        Metric(f"  ideal = {replicas} x {t1:.2f} s / {ctx.ncpu} cores", ideal, "s"),
        Metric("  median trial start..exit inside the sweep (alone: see above)",
               median(in_run), "s"),
        Metric("  slot time per trial outside start..exit (wall x slots - sum of runs) / N",
               outside, "s"),
        Metric("  max 1-minute load average around the sweep", load, ""),
        Metric("training sweep parallel efficiency (ideal / wall)", eff * 100, "%", ">= 85",
               eff >= 0.85 and not problem),
    ]


def _trial_durations(run_dir: Path) -> list[float]:
    path = run_dir / "results.csv"
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [float(r["duration_s"]) for r in csv.DictReader(f) if r.get("duration_s")]


def leftovers(run_ids: list[str]) -> int:
    """Containers still on the engine of the given runs (removed, and counted)."""
    import docker

    from benchmarks.common import leftover_containers, remove_containers

    api = docker.APIClient(**docker.utils.kwargs_from_env(), version="auto")
    try:
        found = [c for r in run_ids for c in leftover_containers(api, f"{LABEL_RUN}={r}")]
        remove_containers(api, found)
        return len(found)
    finally:
        api.close()
