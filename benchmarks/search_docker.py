"""The parts of benchmarks.search that run containers on the local Docker engine:
the launcher's CPU per live history line, and hyperband on the real training job."""

from __future__ import annotations

import argparse
import statistics
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


def training_sweep(folder: Path, name: str, epochs: int, early: bool) -> Path:
    """Most configurations are poor: tiny learning rates and 3 hidden units learn little."""
    body: dict[str, Any] = {
        "name": name, "method": "grid", "results": str(folder / "results"),
        "image": {"build": {"context": str(ROOT)}},
        "metric": {"name": "val_acc", "goal": "maximize"},
        "parameters": {"lr": {"values": [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
                       "hidden": {"values": [3, 32]}, "epochs": {"value": epochs},
                       "samples": {"value": 2000}},
        "resources": {"cpus": 1, "memory": "512m"}, "outputs": False, "max_parallel": 2}
    if early:  # W&B's defaults: eta 3, strict
        body["early_terminate"] = {"type": "hyperband", "min_iter": max(2, epochs // 30)}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def hyperband(args: argparse.Namespace) -> dict[str, Any]:
    from launcher.api import run_sweep
    from launcher.search.savings import estimate
    from launcher.store import RunDir

    out: dict[str, Any] = {"epochs": args.epochs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, early in (("full", False), ("hyperband", True)):
            started = time.monotonic()
            results = run_sweep(training_sweep(folder, f"bench-hb-{label}", args.epochs, early))
            df = results.df
            ok = df[df["status"] == "succeeded"].sort_values("metric.val_acc", ascending=False)
            savings = estimate(RunDir(results.run_dir).records())
            out[label] = {
                "wall_s": round(time.monotonic() - started, 1),
                "container_s": round(float(df["duration_s"].sum()), 1),
                "statuses": {str(k): int(v) for k, v in df["status"].value_counts().items()},
                "best_config": str(ok.iloc[0]["config_id"]),
                "best": {"lr": float(ok.iloc[0]["param.lr"]),
                         "hidden": int(ok.iloc[0]["param.hidden"]),
                         "val_acc": float(ok.iloc[0]["metric.val_acc"])},
                "estimated_saved_share": round(savings.share, 3) if savings else 0.0}
    full, early = out["full"], out["hyperband"]
    out["saved_share"] = 1 - early["container_s"] / full["container_s"]
    out["best_found"] = early["best_config"] == full["best_config"]
    print(f"\n== hyperband on experiments/train.py: 16 configurations, {args.epochs} epochs, "
          "2 slots ==")
    print(f"{'run':<10} {'container-s':>12} {'wall s':>7}  statuses"
          f"{'':<22} best (lr, hidden: val_acc)")
    for label in ("full", "hyperband"):
        row = out[label]
        b = row["best"]
        print(f"{label:<10} {row['container_s']:>12.1f} {row['wall_s']:>7.1f}  "
              f"{row['statuses']!s:<30} {b['lr']:g}, {b['hidden']}: {b['val_acc']:.3f}")
    print(f"container-seconds saved: {out['saved_share']:.0%} (target >= 40%); the launcher's "
          f"own estimate: {early['estimated_saved_share']:.0%}; best configuration still "
          f"found: {'yes' if out['best_found'] else 'NO'}")
    return out


def docker_sections(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    image = project_image()
    if "live" not in args.skip:
        out["live"] = live_cpu(args, image.id)
    if "hyperband" not in args.skip:
        out["hyperband"] = hyperband(args)
    return out
