"""The parts of benchmarks.search that run containers on the local Docker engine:
the launcher's CPU per live history line, and hyperband on the real training job."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT

REPS = 3


def project_image() -> Any:
    import docker

    from launcher.image import ensure_image
    from launcher.sections import ImageSpec

    client = docker.from_env()
    try:
        return ensure_image(client, ImageSpec(context=str(ROOT)), ROOT)
    finally:
        client.close()


def one_trial(api: Any, image_id: str, lines: int, follow: bool) -> tuple[float, int, float]:
    """(launcher CPU seconds, lines seen live, wall seconds) of one trial printing
    ``lines`` history lines as fast as it can, with or without following them."""
    from launcher.command import Argv
    from launcher.container import ContainerSettings, Running, run_trial
    from launcher.sections import Resources
    from launcher.store import new_run_id
    from launcher.trial import Trial

    seen = [0]

    def sink(rows: list[dict[str, Any]]) -> None:
        seen[0] += len(rows)

    settings = ContainerSettings(image=image_id, run_id=new_run_id(), sweep="bench-live",
                                 resources=Resources(cpus=1.0, memory=256 * 2**20),
                                 outputs=False, log_limit=64 * 2**20)
    argv = Argv(["python3"], ["/app/experiments/objective.py", f"--steps={lines}",
                              "--noise=0", "--metric=loss"])
    running = Running(api, on_history=sink if follow else None)
    trial = Trial("b" * 12, "c" * 10, 0, 0, 0, ())
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = run_trial(api, trial, argv, settings, host="local", running=running)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    assert result.status.ok and len(result.history) == lines, (result.status, result.reason)
    return cpu, seen[0], wall


def live_cpu(args: argparse.Namespace, image_id: str) -> dict[str, Any]:
    import docker

    client = docker.from_env()
    try:
        plain, followed, seen = [], [], []
        for _ in range(REPS):  # interleaved, so the machine's noise hits both alike
            plain.append(one_trial(client.api, image_id, args.lines, follow=False)[0])
            cpu, count, _ = one_trial(client.api, image_id, args.lines, follow=True)
            followed.append(cpu)
            seen.append(count)
    finally:
        client.close()
    extra = statistics.median(followed) - statistics.median(plain)
    out = {"lines": args.lines, "cpu_s_without": statistics.median(plain),
           "cpu_s_with": statistics.median(followed), "lines_seen": min(seen),
           "us_per_line": extra / args.lines * 1e6}
    print(f"\n== live lines: launcher CPU of one trial printing {args.lines} history lines "
          f"(median of {REPS}) ==")
    print(f"without following {out['cpu_s_without']:.3f} s, following {out['cpu_s_with']:.3f} s"
          f" ({out['lines_seen']} lines seen live): {out['us_per_line']:.1f} us of launcher "
          "CPU per line")
    return out


def training_sweep(folder: Path, name: str, args: argparse.Namespace, early: bool) -> Path:
    """Random search (the same draws in both runs) where most configurations are poor:
    learning rates below 0.01 and 3 hidden units learn little in the epochs given."""
    body: dict[str, Any] = {
        "name": name, "method": "random", "run_cap": args.configs, "seed": 1,
        "results": str(folder / "results"), "image": {"build": {"context": str(ROOT)}},
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1.0},
                       "hidden": {"values": [3, 32]}, "epochs": {"value": args.epochs},
                       "samples": {"value": 2000}},
        "resources": {"cpus": 1, "memory": "512m"}, "outputs": False, "max_parallel": 1,
        "timeout": "30m"}
    if early:  # W&B's defaults: eta 3, strict
        body["early_terminate"] = {"type": "hyperband", "min_iter": max(2, args.epochs // 27)}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def summary_of(run_dir: Path) -> dict[str, Any]:
    from launcher.results import load_results
    from launcher.search.savings import estimate
    from launcher.store import RunDir

    run = RunDir(run_dir)
    df = load_results(run_dir)
    ok = df[df["status"] == "succeeded"].sort_values("metric.val_acc", ascending=False)
    savings = estimate(run.records())
    return {"container_s": round(float(df["duration_s"].sum()), 1),
            "epochs_run": sum(len(run.history(t)) for t in df["trial_id"]),
            "statuses": {str(k): int(v) for k, v in df["status"].value_counts().items()},
            "best_config": str(ok.iloc[0]["config_id"]),
            "succeeded_configs": sorted(set(ok["config_id"])),
            "best": {"lr": float(ok.iloc[0]["param.lr"]), "hidden": int(ok.iloc[0]["param.hidden"]),
                     "val_acc": float(ok.iloc[0]["metric.val_acc"])},
            "estimated_saved_share": round(savings.share, 3) if savings else 0.0}


def hyperband(args: argparse.Namespace) -> dict[str, Any]:
    """Both sweeps at once (one slot each, so the machine's load hits both alike)."""
    from benchmarks.common import venv_bin

    out: dict[str, Any] = {"epochs": args.epochs, "configs": args.configs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        procs = {label: subprocess.Popen(
            [venv_bin("launch"), str(training_sweep(folder, f"bench-hb-{label}", args, early)),
             "--quiet", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for label, early in (("full", False), ("hyperband", True))}
        started = time.monotonic()
        ended: dict[str, float] = {}
        while len(ended) < len(procs):  # bounded by each sweep's own timeouts
            for label, proc in procs.items():
                if label not in ended and proc.poll() is not None:
                    ended[label] = time.monotonic() - started
            time.sleep(0.2)
        for label, proc in procs.items():
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                raise SystemExit(f"the {label} sweep failed: {stderr[-2000:]}")
            out[label] = {"wall_s": round(ended[label], 1),
                          **summary_of(Path(json.loads(stdout)["run_dir"]))}
    full, early = out["full"], out["hyperband"]
    out["saved_share"] = 1 - early["container_s"] / full["container_s"]
    out["saved_epochs_share"] = 1 - early["epochs_run"] / full["epochs_run"]
    # the best value of the full run is still reached (ties between configurations count)
    out["best_found"] = early["best"]["val_acc"] >= full["best"]["val_acc"]
    out["same_best_config_finished"] = full["best_config"] in early["succeeded_configs"]
    print(f"\n== hyperband on experiments/train.py: random search, {args.configs} "
          f"configurations, {args.epochs} epochs, the two sweeps side by side ==")
    print(f"{'run':<10} {'container-s':>12} {'epochs':>7} {'wall s':>7}  statuses"
          f"{'':<22} best (lr, hidden: val_acc)")
    for label in ("full", "hyperband"):
        row = out[label]
        b = row["best"]
        print(f"{label:<10} {row['container_s']:>12.1f} {row['epochs_run']:>7} "
              f"{row['wall_s']:>7.1f}  {row['statuses']!s:<30} {b['lr']:.4g}, {b['hidden']}: "
              f"{b['val_acc']:.3f}")
    print(f"container-seconds saved: {out['saved_share']:.0%} (target >= 40%), epochs saved: "
          f"{out['saved_epochs_share']:.0%}; the launcher's own estimate: "
          f"{early['estimated_saved_share']:.0%}; best configuration still found: "
          f"{'yes' if out['best_found'] else 'NO'} (the full run's best configuration ran "
          f"to the end: {'yes' if out['same_best_config_finished'] else 'no'})")
    return out


def docker_sections(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    image = project_image()
    if "live" not in args.skip:
        out["live"] = live_cpu(args, image.id)
    if "hyperband" not in args.skip:
        out["hyperband"] = hyperband(args)
    return out
