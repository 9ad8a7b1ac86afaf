"""The read side at scale: the read commands on finished runs of N records.

Two synthetic runs of the same sweep (a grid of N/100 configurations x 100 replicas
sharing a seed, over 1,000 hosts) are written through the store's own types (plan,
manifest, records) plus an outputs file per trial and the history of the first 1,000,
as a finished run leaves them. Then every read command runs once as `launch ...` in a
fresh process: wall time and peak RSS (the child's ``ru_maxrss``).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import timed_run, venv_bin

HOSTS = 1000
REPLICAS = 100
CONCURRENCY = 1000  # trials at once in the synthetic timeline


@dataclass
class ReadResult:
    command: str
    wall_s: float
    rss_mb: float
    ok: bool
    cpu_s: float = 0.0


def sweep_text(name: str, trials: int) -> str:
    configs = max(1, trials // REPLICAS)
    return (f"name: {name}\nmethod: grid\nmetric: {{name: loss, goal: minimize}}\n"
            f"parameters:\n  x: {{min: 1, max: {configs}}}\n"
            f"replicas: {REPLICAS}\nseed_mode: fixed\nimage: {{tag: \"sim-job:1\"}}\n"
            f"outputs: true\nhosts: [{{url: local, slots: 1}}]\n")


def make_run(root: Path, name: str, trials: int, *, shift: float = 0.0) -> Path:
    """A finished run of ``trials`` records under ``root/name``; returns its folder."""
    from launcher.clock import now
    from launcher.plan import expand
    from launcher.results import write_tables
    from launcher.spec import load_sweep
    from launcher.store import (
        BackendRecord,
        HostRecord,
        ImageRecord,
        Manifest,
        MetricRecord,
        PlanFile,
        RunDir,
        RunState,
        new_run_id,
    )

    path = root / f"{name}.yaml"
    path.write_text(sweep_text(name, trials))
    spec = load_sweep(path)
    plan = expand(spec)
    run_id = new_run_id()
    run = RunDir.create(root, spec.name, run_id)
    hosts = tuple(HostRecord(name=f"sim-{i}", url=f"unix:///tmp/sim-{i}.sock", slots=1,
                             cpus=1, cpu_model="Simulated CPU") for i in range(HOSTS))
    image = ImageRecord("sha256:" + "ab" * 32, "sim-job:1")
    manifest = Manifest.new(run_id=run_id, sweep=spec.name, created_at=now("seconds"),
                            sweep_path=str(path), overrides=spec.overrides.to_json(),
                            method=spec.method, replicas=spec.replicas, seed=spec.seed,
                            seed_mode=spec.seed_mode, metric=MetricRecord("loss"),
                            image=image, backend=BackendRecord("docker", hosts, None))
    run.start(sweep_text=spec.source_text, plan=PlanFile.of(plan.trials, plan.parameter_names),
              manifest=manifest)
    _write_records(run, plan.trials, image.id, shift)
    run.finish(state=RunState.FINISHED, stopped_because=None, notes=[])
    write_tables(run)  # what finish_run leaves: results.csv and results.parquet
    return run.path


def _write_records(run: Any, trials: list[Any], image_id: str, shift: float) -> None:
    from launcher.store import TrialRecord
    from launcher.trial import TrialStatus

    lines = []
    for i, trial in enumerate(trials):
        loss = _loss(trial.config_id, trial.seed) + (shift if i % 97 == 0 else 0.0)
        start = 1000.0 * (i // CONCURRENCY) / CONCURRENCY * 10
        status = TrialStatus.FAILED if i % 499 == 0 else TrialStatus.SUCCEEDED
        record = TrialRecord(trial.trial_id, status, "", 0 if status.ok else 1,
                             {"loss": loss, "acc": 1 - loss} if status.ok else {},
                             f"sim-{i % HOSTS}", image_id, f"{i:012x}", 1, _stamp(start),
                             _stamp(start), _stamp(start + 0.5 + (i % 7) / 10),
                             0.5 + (i % 7) / 10)
        lines.append(record.line())
        outputs = run.outputs_path(trial.trial_id)
        outputs.mkdir()
        (outputs / "metrics.json").write_text(json.dumps(record.metrics))
        if i < 1000:
            run.history_path(trial.trial_id).write_text("".join(
                json.dumps({"epoch": e, "loss": loss * (3 - e) / 3}) + "\n" for e in range(3)))
    (run.path / "trials.jsonl").write_text("".join(lines))


def _loss(config_id: str, seed: int) -> float:
    digest = hashlib.sha256(f"{config_id}/{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _stamp(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    when = datetime(2026, 1, 2, 12, 0, tzinfo=UTC) + timedelta(seconds=seconds)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_commands(root: Path, a: Path, b: Path) -> list[tuple[str, list[str]]]:
    out = str(root / "report.html")
    return [("ls", ["ls"]), ("results", ["results", str(a)]),
            ("results --by config", ["results", str(a), "--by", "config"]),
            ("results --format csv", ["results", str(a), "--format", "csv"]),
            ("status", ["status", str(a)]), ("verify", ["verify", str(a)]),
            ("verify A B", ["verify", str(a), str(b)]), ("compare", ["compare", str(a), str(b)]),
            ("report", ["report", str(a), "-o", out]), ("resume (finished)", ["resume", str(a)])]


def measure_reads(root: Path, trials: int, timeout: float = 900) -> list[ReadResult]:
    """Make two runs of ``trials`` records under ``root``, time every read command."""
    a = make_run(root, "reads", trials)
    b = make_run(root, "reads", trials, shift=0.01)
    (b.parent / "reads.yaml").unlink(missing_ok=True)
    launch = venv_bin("launch")
    out = []
    for label, args in read_commands(root, a, b):
        m = timed_run([launch, *args, "--results", str(root)] if args[0] != "report" else
                      [launch, *args[:2], "--results", str(root), *args[2:]],
                      timeout=timeout)
        ok = m.returncode in (0, 1)  # verify/compare exit 1 when they find differences
        out.append(ReadResult(label, m.wall_s, m.maxrss_mb, ok, m.cpu_s))
        print(f"  {label:<22} {m.wall_s:7.2f} s  cpu {m.cpu_s:6.2f} s  {m.maxrss_mb:6.0f} MB  "
              f"exit {m.returncode}", flush=True)
    return out


if __name__ == "__main__":  # python -m benchmarks.scale_read ROOT N
    measure_reads(Path(sys.argv[1]), int(sys.argv[2]))
