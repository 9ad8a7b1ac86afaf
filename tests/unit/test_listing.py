"""`launch ls`, `results` and `status` logic on hand-made run directories (no Docker)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from launcher.cli import cli
from launcher.errors import UsageError
from launcher.listing import list_runs, run_status, short_image
from launcher.results import aggregate, open_results, plain_rows
from launcher.store import RunDir
from tests.unit.fake_runs import IMAGE, make_run

METRIC = {"name": "acc", "goal": "maximize"}


def _trials() -> list[dict[str, Any]]:
    out = []
    for config, lr, accs in (("c1", 0.1, [0.5, 0.7]), ("c2", 0.3, [0.9, 0.95])):
        for replica, acc in enumerate(accs):
            out.append({"trial_id": f"{config}r{replica}", "config_id": config,
                        "replica": replica, "seed": replica, "params": {"lr": lr},
                        "metrics": {"acc": acc}, "host": "h1" if replica else "h2",
                        "started": replica * 2.0})
    out.append({"trial_id": "c3r0", "config_id": "c3", "params": {"lr": 9.0},
                "status": "failed"})
    return out


def test_by_config_sorts_by_the_sweeps_goal(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa", _trials(), metric=METRIC)
    table = open_results(run)
    by_config = table.by_config()
    assert list(by_config["config_id"]) == ["c2", "c1", "c3"]
    best = by_config.iloc[0]
    assert best["acc.mean"] == pytest.approx(0.925) and best["acc.count"] == 2
    assert best["acc.max"] == 0.95 and best["param.lr"] == 0.3
    assert by_config.iloc[2]["succeeded"] == 0


def test_aggregate_without_a_sweep_metric_covers_every_numeric_metric(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa", _trials())
    df = open_results(run).df
    out = aggregate(df, None)
    assert {"acc.mean", "acc.std", "acc.min", "acc.max", "acc.count"} <= set(out.columns)


def test_plain_rows_are_python_values_with_none_for_missing(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa", _trials(), metric=METRIC)
    rows = plain_rows(open_results(run).df[["replica", "metric.acc", "exit_code"]])
    assert rows[0] == [0, 0.5, 0] and type(rows[0][0]) is int
    assert rows[-1][1] is None


def test_ls_lists_every_run_with_counts(tmp_path: Path) -> None:
    make_run(tmp_path, "20260102-120000-aaaa", _trials(), hosts=("h1", "h2"))
    make_run(tmp_path, "20260102-130000-bbbb", _trials()[:1], sweep="other")
    runs = list_runs(tmp_path)
    assert list(runs["run_id"]) == ["20260102-120000-aaaa", "20260102-130000-bbbb"]
    first = runs.iloc[0]
    assert (first["trials"], first["succeeded"], first["hosts"]) == (5, 4, "h1,h2")
    assert first["image_id"] == short_image(IMAGE) == "sha256:abababababab"
    assert first["date"] == "2026-01-02 12:00:00"
    with pytest.raises(UsageError):
        list_runs(tmp_path / "missing")


def test_status_counts_finished_and_remaining_per_host(tmp_path: Path) -> None:
    trials = [*_trials(), {"trial_id": "c4r0", "config_id": "c4", "status": "not_started"},
              {"trial_id": "c5r0", "config_id": "c5", "status": "cancelled"}]
    run = make_run(tmp_path, "20260102-120000-aaaa", trials, state="running")
    with RunDir(run).started_log() as started:
        started.add("c4r0", 1, "h1", "f" * 64)  # a container running now
        started.add("c1r0", 1, "h2", "e" * 64)  # finished: it has a record
    with RunDir(run).locked():  # a live launcher holds the run
        status = run_status(run)
        running = [e.trial_id for e in status.running]
    assert status.holder == f"pid {os.getpid()} on {os.uname().nodename}"
    assert (status.planned, status.finished, status.to_run) == (7, 5, 2)
    assert status.counts == {"succeeded": 4, "failed": 1, "not_started": 1, "cancelled": 1}
    assert status.in_progress and running == ["c4r0"]
    hosts = status.per_host.set_index("host")
    assert hosts.loc["h1", "succeeded"] == 2 and hosts.loc["local", "failed"] == 1
    assert status.to_run_retry_failed == 3
    with RunDir(run).locked():
        text = status.summary()
    assert "7 trials: succeeded 4, failed 1, cancelled 1, not started 1" in text
    assert "finished 5/7 (final status); 2 still to run or running (1 more with " \
        "--retry-failed)" in text
    assert "c4r0" in text and "ffffffffffff" in text  # host, container, elapsed


def test_status_of_a_run_whose_launcher_died_is_abandoned(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa", _trials(), state="running")
    with RunDir(run).started_log() as started:
        started.add("c3r0", 2, "h1", "f" * 64)  # the launcher died while it ran
    # the lock file of a launcher that died: nobody holds the lock any more
    (run / ".lock").write_text(f"pid {os.getpid()} on {os.uname().nodename}\n")
    status = run_status(run)
    assert status.state == "abandoned" and status.running == ()
    assert list_runs(tmp_path).iloc[0]["state"] == "abandoned"  # ls and status agree
    assert "nothing left for `launch resume` (1 with --retry-failed)" in status.summary()


def test_commands_render_formats_and_exit_codes(tmp_path: Path) -> None:
    make_run(tmp_path, "20260102-120000-aaaa", _trials(), metric=METRIC)
    runner = CliRunner()
    out = runner.invoke(cli, ["results", "20260102", "--results", str(tmp_path),
                              "--by", "config", "--format", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert rows[0]["config_id"] == "c2" and rows[0]["acc.mean"] == pytest.approx(0.925)
    out = runner.invoke(cli, ["results", "20260102", "--results", str(tmp_path),
                              "--format", "markdown"])
    assert out.output.startswith("| run_id | sweep | trial_id | config_id |")
    assert "container_id" in out.output
    out = runner.invoke(cli, ["results", "20260102", "--results", str(tmp_path)])
    assert "container_id" not in out.output and "c2r1" in out.output
    out = runner.invoke(cli, ["ls", "--results", str(tmp_path), "--format", "csv"])
    assert out.output.splitlines()[0] == "sweep,run_id,date,state,trials,succeeded,image_id,hosts"
