"""Hand-made run directories and tables for unit tests of the results commands.

Runs are built through the store's own types (Manifest, PlanFile, TrialRecord, RunDir),
so they have exactly the layout and keys the launcher writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from launcher.store import (
    BackendRecord,
    HostRecord,
    ImageRecord,
    Manifest,
    MetricRecord,
    PlanFile,
    PlannedTrial,
    RunDir,
    RunState,
    TrialRecord,
)
from launcher.trial import TrialStatus

IMAGE = "sha256:" + "ab" * 32
OTHER_IMAGE = "sha256:" + "cd" * 32


def trial_row(trial_id: str, *, config: str = "c1", seed: int = 0, replica: int = 0,
              host: str = "local", status: str = "succeeded", image: str = IMAGE,
              run_id: str = "r1", files: dict[str, str] | None = None,
              **metrics: Any) -> dict[str, Any]:
    """One row of a verify/compare table."""
    return {"run_id": run_id, "trial_id": trial_id, "config_id": config, "replica": replica,
            "seed": seed, "host": host, "status": status, "image_id": image,
            "files": files if files is not None else {"model.npy": "h-" + config},
            **{f"metric.{k}": v for k, v in metrics.items()}}


def table(*rows: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def make_run(root: Path, run_id: str, trials: list[dict[str, Any]], *, sweep: str = "demo",
             metric: dict[str, Any] | None = None, state: str = "finished",
             hosts: tuple[str, ...] = ("local",), slots: int = 2,
             max_parallel: int | None = None) -> Path:
    """A run directory under ``root/sweep/run_id``. Each trial dict has trial_id,
    config_id, params, seed, replica and optionally status, metrics, host, started
    (seconds after 12:00:00), duration, image, files ({name: bytes}), history (list)."""
    run = RunDir.create(root, sweep, run_id)
    names = list(dict.fromkeys(k for t in trials for k in t.get("params", {})))
    plan = PlanFile(tuple(names), tuple(
        PlannedTrial(t["trial_id"], t["config_id"], t.get("replica", 0), t.get("seed", 0),
                     t.get("params", {})) for t in trials))
    backend = BackendRecord("docker", tuple(HostRecord(h, h, slots) for h in hosts),
                            max_parallel if max_parallel is not None else slots * len(hosts))
    manifest = Manifest.new(
        run_id=run_id, sweep=sweep, created_at="2026-01-02T12:00:00Z",
        description="a test run", seed=0, seed_mode="fixed", replicas=2,
        metric=MetricRecord(**metric) if metric else None,
        image=ImageRecord(IMAGE, "launcher-job:x"), backend=backend)
    run.start(sweep_text=f"name: {sweep}\n", plan=plan, manifest=manifest)
    for t in trials:
        if t.get("status") == "not_started":
            continue
        _write_files(run, t)
        run.append(_record(t))
    if state != "running":
        run.write_manifest(run.manifest().finished(
            state=RunState(state), at="2026-01-02T12:01:00Z", stopped_because=None, notes=[]))
    return run.path


def _record(t: dict[str, Any]) -> TrialRecord:
    start = float(t.get("started", 0.0))
    end = start + float(t.get("duration", 1.0))
    return TrialRecord(t["trial_id"], TrialStatus(t.get("status", "succeeded")),
                       t.get("reason", ""), 0, t.get("metrics", {}), t.get("host", "local"),
                       t.get("image", IMAGE), "c" * 12, 1, _stamp(0.0), _stamp(start),
                       _stamp(end), end - start, steps=len(t.get("history", [])))


def _write_files(run: RunDir, t: dict[str, Any]) -> None:
    outputs = run.outputs_path(t["trial_id"])
    outputs.mkdir(exist_ok=True)
    for name, data in t.get("files", {"model.npy": b"weights"}).items():
        (outputs / name).write_bytes(data)
    if t.get("history"):
        lines = "".join(json.dumps(h) + "\n" for h in t["history"])
        run.history_path(t["trial_id"]).write_text(lines)


def _stamp(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"2026-01-02T12:{int(minutes):02d}:{rest:06.3f}Z"
