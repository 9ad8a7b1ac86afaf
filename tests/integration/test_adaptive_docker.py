"""Adaptive search and early termination on the Docker backend: W&B's documented bayes and
hyperband sweep files end to end, kill -9 in the middle of a bayes sweep with hyperband
and `launch resume`, and metric.target with bayes.

W&B's files stay as they are; where W&B's agent would run their ``program`` (a script of
W&B's that is not in the image), the tests point ``command`` at experiments/objective.py
with ``--function=any`` (every parameter of the file counts) and give run_cap, as
issue 11's tests of W&B's files do: on the command line, as ``--set``.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from launcher.api import run_sweep
from launcher.overrides import Overrides
from launcher.store import RunDir
from tests.integration.test_resilience import StartCounter
from tests.support import (
    ROOT,
    assert_nothing_left,
    hosts_entries,
    launch,
    launch_process,
    wait_until,
    write_sweep,
)

pytestmark = pytest.mark.docker
FIXTURES = ROOT / "tests" / "fixtures" / "wandb"
BAYES_DOC = FIXTURES / "docs-sweepdemo-bayes.yaml"  # W&B docs: method bayes
HYPERBAND_DOC = FIXTURES / "docs-bayes-hyperband.yaml"  # W&B docs: bayes + hyperband


def objective_command(metric: str, *extra: str) -> str:
    items = ["python3", "/app/experiments/objective.py", "--function=any",
             f"--metric={metric}", *extra, "${args}"]
    return "command=[" + ", ".join(f"'{i}'" for i in items) + "]"


def wandb_sets(tmp_path: Path, metric: str, *extra: str, sleep: float = 0.0) -> Overrides:
    return Overrides(results=str(tmp_path / "results"), sets=(
        objective_command(metric, f"--sleep={sleep}"), f"image.build.context={ROOT}",
        "resources.cpus=0.5", "resources.memory=256m", *extra))


def asked(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == "asked"]


def attempts(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "kind" not in r]


def test_wandb_docs_bayes_file_runs_end_to_end(tmp_path: Path) -> None:
    results = run_sweep(BAYES_DOC, wandb_sets(tmp_path, "validation_loss", "run_cap=10",
                                              "max_parallel=3"))
    df = results.df
    assert len(df) == 10 and set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    assert results.exit_code == 0
    configs = asked(results.run_dir)
    assert [c["number"] for c in configs] == list(range(10))
    for c in configs:  # every value inside W&B's space, with W&B's types
        p = c["params"]
        assert 0.0001 <= p["learning_rate"] <= 0.1 and isinstance(p["learning_rate"], float)
        assert p["batch_size"] in (16, 32, 64) and p["epochs"] in (5, 10, 15)
        assert p["optimizer"] in ("adam", "sgd")
    plan = json.loads((results.run_dir / "plan.json").read_text())
    assert plan["version"] == 2 and plan["adaptive"]["sampler"] == "tpe"
    assert {d["name"] for d in plan["adaptive"]["space"]} == {
        "learning_rate", "batch_size", "epochs", "optimizer"}
    assert_nothing_left(results.run_id)


def test_wandb_docs_hyperband_file_runs_end_to_end(tmp_path: Path) -> None:
    results = run_sweep(HYPERBAND_DOC, wandb_sets(tmp_path, "val_loss", "run_cap=12",
                                                  "max_parallel=4", sleep=0.25))
    df = results.df
    counts = Counter(df["status"])
    assert len(df) == 12 and set(counts) <= {"succeeded", "stopped"}, df[["status", "reason"]]
    assert counts["stopped"] >= 2 and counts["succeeded"] >= 2, counts
    assert results.exit_code == 0
    run = RunDir(results.run_dir)
    for _, row in df[df["status"] == "stopped"].iterrows():
        history = run.history(row["trial_id"])
        assert 3 <= len(history) < 27, "stopped at a band (3 or 9), long before step 27"
        assert row["metric.val_loss"] == history[-1]["val_loss"], "its last value is kept"
        assert "stopped early by hyperband" in row["reason"]
    for _, row in df[df["status"] == "succeeded"].iterrows():
        assert len(run.history(row["trial_id"])) == 27
    status = launch("status", str(results.run_dir))
    assert "stopped early" in status.stdout and "best val_loss" in status.stdout
    assert_nothing_left(results.run_id)


@pytest.mark.slow
def test_kill_9_in_a_bayes_hyperband_sweep_then_resume(tmp_path: Path) -> None:
    sweep = f"bokill{time.time_ns() % 10**6}"
    path = write_sweep(tmp_path, {
        "method": "bayes", "run_cap": 14, "seed": 3, "max_parallel": 3,
        "metric": {"name": "loss", "goal": "minimize"},
        "command": ["python3", "/app/experiments/objective.py", "--steps=12", "--sleep=0.3",
                    "--metric=loss", "${args}"],
        "parameters": {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2}}, name=sweep)
    counter = StartCounter(sweep)
    try:
        proc = launch_process(str(path), "--quiet")
        run_path = wait_until(lambda: next((tmp_path / "results" / sweep).glob("*"), None))
        wait_until(lambda: len(attempts(run_path)) >= 4 if (run_path / "trials.jsonl").exists()
                  else False, 180)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = attempts(run_path)
        asked_before = len(asked(run_path))
        resumed = launch("resume", str(run_path), "--quiet", "--json")
    finally:
        counter.close()
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    configs = asked(run_path)
    assert asked_before < 14 and len(configs) == 14, "the search continued to run_cap, no more"
    assert [c["number"] for c in configs] == list(range(14))
    final = attempts(run_path)
    for record in before:  # every finished trial kept, as it was
        assert record in final
    per_trial = Counter(r["trial_id"] for r in final if r["status"] in ("succeeded", "stopped"))
    assert len(per_trial) == 14 and set(per_trial.values()) == {1}
    starts = Counter(t for t, _ in counter.starts)
    assert set(starts.values()) == {1}, f"a trial ran twice: {starts}"
    assert summary["trials"] == 14 and set(summary["status"]) <= {"succeeded", "stopped"}
    assert summary["stopped_early"] is not None
    assert_nothing_left(RunDir(run_path).run_id)


def test_a_trial_adopted_on_resume_is_judged_by_hyperband(tmp_path: Path) -> None:
    """The launcher dies (kill -9) just after the 4th trial's container starts and before
    that trial reaches its first band: the resumed launcher adopts the container, follows
    its lines and stops it at the band (it is far worse than the three finished ones)."""
    sweep = f"hbadopt{time.time_ns() % 10**6}"
    path = write_sweep(tmp_path, {
        "method": "grid", "max_parallel": 1,
        "metric": {"name": "loss", "goal": "minimize"},
        "command": ["python3", "/app/experiments/objective.py", "--steps=4", "--sleep=1.5",
                    "--noise=0", "--metric=loss", "${args}"],
        # each of the first three better than the ones before (none is stopped), then a bad one
        "parameters": {"x1": {"values": [3.0, 3.2, 3.1416, -5.0]}, "x2": {"value": 2.275}},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2}}, name=sweep)
    proc = launch_process(str(path), "--quiet")
    run_path = wait_until(lambda: next((tmp_path / "results" / sweep).glob("*"), None))
    started = run_path / "started.jsonl"
    wait_until(lambda: started.exists() and len(started.read_text().splitlines()) >= 4, 180)
    proc.send_signal(signal.SIGKILL)  # the 4th trial's first band is >= 3 s away
    proc.wait()
    before = attempts(run_path)
    assert len(before) == 3 and {r["status"] for r in before} == {"succeeded"}
    resumed = launch("resume", str(run_path), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    last = attempts(run_path)[3:]
    assert len(last) == 1 and last[0]["status"] == "stopped", last
    assert last[0]["reason"].startswith("stopped early by hyperband"), last[0]["reason"]
    assert_nothing_left(RunDir(run_path).run_id)


def test_metric_target_ends_a_bayes_sweep_early_with_exit_zero(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {
        "method": "bayes", "run_cap": 30, "max_parallel": 2,
        "metric": {"name": "value", "goal": "minimize", "target": 20},
        "command": ["python3", "/app/experiments/objective.py", "--steps=2", "${args}"],
        "parameters": {"x1": {"min": -5.0, "max": 10.0}, "x2": {"min": 0.0, "max": 15.0}}},
        name="botarget")
    results = run_sweep(path)
    assert results.target_reached and results.exit_code == 0
    n = len(asked(results.run_dir))
    assert n < 30 and len(results.df) == n
    assert_nothing_left(results.run_id)


@pytest.mark.hosts
def test_hyperband_follows_live_lines_on_local_tls_and_ssh_engines(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {
        "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "hosts": [{"url": "local", "slots": 2}, *hosts_entries()],
        "command": ["python3", "/app/experiments/objective.py", "--steps=16", "--sleep=0.25",
                    "--noise=0", "--metric=loss", "${args}"],  # curves rank as the values
        "parameters": {"x1": {"values": [-5, -2, 1, 3.14159, 6, 9]},
                       "x2": {"values": [2.275, 8, 14]}},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3}}, name="hbhosts")
    results = run_sweep(path)
    df = results.df
    stopped = df[df["status"] == "stopped"]
    assert set(df["status"]) <= {"succeeded", "stopped"} and len(stopped) >= 6
    assert set(stopped["host"]) == {"local", "h2", "h3"}, "stopped on every kind of engine"
    best = df[df["status"] == "succeeded"].sort_values("metric.loss").iloc[0]
    assert best["metric.loss"] < 0.4, "Branin's optimum (3.14159, 2.275) is never stopped"
    assert results.exit_code == 0
    assert_nothing_left(results.run_id)
