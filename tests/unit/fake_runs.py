"""Hand-made run directories and tables for unit tests of the results commands.

They have the exact layout the store writes (manifest.json, plan.json, trials.jsonl,
outputs/<trial>/...), so the code under test reads them through its real paths.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

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
             metric: dict[str, str] | None = None, state: str = "finished",
             hosts: tuple[str, ...] = ("local",), slots: int = 2) -> Path:
    """A run directory under ``root/sweep/run_id``. Each trial dict has trial_id,
    config_id, params, seed, replica and optionally status, metrics, host, started
    (seconds after 12:00:00), duration, image, files ({name: bytes}), history (list)."""
    path = root / sweep / run_id
    for sub in ("logs", "history", "outputs"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    names = list(dict.fromkeys(k for t in trials for k in t.get("params", {})))
    plan = {"version": 1, "parameters": names,
            "trials": [{"trial_id": t["trial_id"], "config_id": t["config_id"],
                        "replica": t.get("replica", 0), "seed": t.get("seed", 0),
                        "params": t.get("params", {})} for t in trials]}
    (path / "plan.json").write_text(json.dumps(plan))
    manifest = {"run_id": run_id, "sweep": sweep, "description": "a test run",
                "created_at": "2026-01-02T12:00:00Z", "finished_at": "2026-01-02T12:01:00Z",
                "state": state, "metric": metric, "seed": 0, "seed_mode": "fixed",
                "replicas": 2, "image": {"id": IMAGE, "tag": "launcher-job:x"},
                "backend": "docker", "max_parallel": slots * len(hosts),
                "hosts": [{"name": h, "url": h, "slots": slots} for h in hosts]}
    (path / "manifest.json").write_text(json.dumps(manifest))
    with open(path / "trials.jsonl", "w") as f:
        for t in trials:
            if t.get("status") == "not_started":
                continue
            f.write(json.dumps(_record(t)) + "\n")
            _write_files(path, t)
    return path


def _record(t: dict[str, Any]) -> dict[str, Any]:
    start = float(t.get("started", 0.0))
    end = start + float(t.get("duration", 1.0))
    return {"trial_id": t["trial_id"], "status": t.get("status", "succeeded"), "reason": "",
            "exit_code": 0, "metrics": t.get("metrics", {}), "host": t.get("host", "local"),
            "image_id": t.get("image", IMAGE), "container_id": "c" * 12, "attempt": 1,
            "queued_at": _stamp(0.0), "started_at": _stamp(start), "finished_at": _stamp(end),
            "duration_s": end - start, "extra": {}}


def _write_files(path: Path, t: dict[str, Any]) -> None:
    outputs = path / "outputs" / t["trial_id"]
    outputs.mkdir(exist_ok=True)
    for name, data in t.get("files", {"model.npy": b"weights"}).items():
        (outputs / name).write_bytes(data)
    if t.get("history"):
        lines = "".join(json.dumps(h) + "\n" for h in t["history"])
        (path / "history" / f"{t['trial_id']}.jsonl").write_text(lines)


def _stamp(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"2026-01-02T12:{int(minutes):02d}:{rest:06.3f}Z"
