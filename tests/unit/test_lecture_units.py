"""The pieces behind the lecture's commands, without Docker: run references, the sweep
file's identity, the started log, what resume would run, the launcher's stop marker,
the command line's parsing, tables that fit, hints, the watch view, MLflow export."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from launcher.cli import cli
from launcher.container import ContainerSettings, _classify_failure
from launcher.errors import UnknownRun
from launcher.store import (
    PlanFile,
    RunDir,
    RunState,
    TrialRecord,
    find_run,
    newest_run_of_file,
    still_to_run,
)
from launcher.store.started import StartedEntry, still_running
from launcher.trial import TrialResult, TrialStatus
from tests.unit.fake_runs import make_run

METRIC = {"name": "acc", "goal": "maximize"}


def _trial(tid: str, status: str = "succeeded", acc: float = 0.5, host: str = "h1",
           **params: Any) -> dict[str, Any]:
    return {"trial_id": tid, "config_id": "c-" + tid, "params": params or {"lr": 0.1},
            "status": status, "metrics": {"acc": acc} if status == "succeeded" else {},
            "host": host}


# -- run references -----------------------------------------------------------------------------
def test_latest_prefix_and_suffix_name_runs(tmp_path: Path) -> None:
    for run_id, sweep in (("20260102-120000-aaaa", "a"), ("20260102-130000-bbbb", "b"),
                          ("20260102-140000-cccc", "a")):
        make_run(tmp_path, run_id, [_trial("t1")], sweep=sweep)
    assert find_run("latest", tmp_path).run_id == "20260102-140000-cccc"
    assert find_run("latest~1", tmp_path).run_id == "20260102-130000-bbbb"
    assert find_run("a/latest~1", tmp_path).run_id == "20260102-120000-aaaa"
    assert find_run("bbbb", tmp_path).run_id == "20260102-130000-bbbb"  # a suffix
    assert find_run("20260102-12", tmp_path).run_id == "20260102-120000-aaaa"  # a prefix
    assert find_run("a/cccc", tmp_path).run_id == "20260102-140000-cccc"
    with pytest.raises(UnknownRun, match="matches 3 runs"):
        find_run("2026", tmp_path)
    with pytest.raises(UnknownRun, match="there are 3 runs"):
        find_run("latest~3", tmp_path)


def test_resume_finds_the_run_of_this_file_and_content(tmp_path: Path) -> None:
    older = make_run(tmp_path, "20260102-120000-aaaa", [_trial("t1")], sweep="sweep")
    newer = make_run(tmp_path, "20260102-130000-bbbb", [_trial("t1")], sweep="sweep")
    for path, (file, sha) in ((older, ("/x/sweep.yaml", "1")), (newer, ("/y/sweep.yaml", "1"))):
        run = RunDir(path)
        run.write_manifest(type(run.manifest())({**run.manifest().to_json(),
                                                 "sweep_path": file, "sweep_sha256": sha}))
    found, skipped = newest_run_of_file(tmp_path, "sweep", "/x/sweep.yaml", "1")
    assert found is not None and found.path == older and [r.path for r in skipped] == [newer]
    assert newest_run_of_file(tmp_path, "sweep", "/x/sweep.yaml", "2")[0] is None


# -- what runs now, what resume runs ---------------------------------------------------------
def test_started_attempts_without_a_record_are_running() -> None:
    started = [StartedEntry("t1", 1, "h", "c1", "2026-01-02T12:00:00Z"),
               StartedEntry("t2", 1, "h", "c2", "2026-01-02T12:00:01Z"),
               StartedEntry("t2", 2, "h", "c3", "2026-01-02T12:00:05Z")]
    assert [e.container_id for e in still_running(started, [("t1", 1), ("t2", 1)])] == ["c3"]


def test_resume_runs_what_has_no_final_status() -> None:
    best = {t: TrialRecord(t, TrialStatus(s)) for t, s in
            (("a", "succeeded"), ("b", "failed"), ("c", "cancelled"), ("d", "lost"))}
    ids = ["a", "b", "c", "d", "e"]
    assert still_to_run(ids, best) == ["c", "d", "e"]
    assert still_to_run(ids, best, retry_failed=True) == ["b", "c", "d", "e"]


def test_a_container_that_failed_after_the_launchers_stop_is_cancelled() -> None:
    # The launcher renames a container before it stops it (container.mark_stopped): the
    # resume that adopts it after a second Ctrl-C reads that mark from the engine.
    settings = ContainerSettings(image="i", run_id="r", sweep="s")
    late = TrialResult("t1", TrialStatus.NOT_STARTED, log="Terminated")
    _classify_failure({"Name": "/launcher-cancelled-0123456789ab", "State": {}}, 143,
                      settings, late)
    assert late.status is TrialStatus.CANCELLED and "stopped by the launcher" in late.reason
    early = TrialResult("t2", TrialStatus.NOT_STARTED, log="ValueError: bad")
    _classify_failure({"Name": "/happy_fox", "State": {}}, 1, settings, early)
    assert early.status is TrialStatus.FAILED  # it failed on its own: no launcher stopped it


def test_the_stop_marker_survives_the_end_and_a_resume_clears_it(tmp_path: Path) -> None:
    run = RunDir(make_run(tmp_path, "20260102-120000-aaaa", [_trial("t1")], state="running"))
    run.request_stop("interrupted")
    first = run.manifest().stop_requested_at
    run.request_stop("again")  # the first moment counts
    assert first and run.manifest().stop_requested_at == first
    assert run.state() is RunState.ABANDONED  # nobody holds it
    with run.locked():
        assert run.state() is RunState.RUNNING  # a launcher holds it: running, whatever
        run.resumed()
    assert run.manifest().stop_requested_at is None and run.manifest().resumed_at


def test_records_keep_the_argv_and_plans_the_distributions(tmp_path: Path) -> None:
    record = TrialRecord("t1", TrialStatus.SUCCEEDED, argv=("<entrypoint>", "--lr=0.1"))
    assert TrialRecord.from_json(json.loads(record.line())) == record
    plan = PlanFile(("lr", "depth"), (), kinds={"lr": "log_uniform_values",
                                               "depth": "int_uniform"})
    again = PlanFile.from_json(plan.to_json(), "plan.json")
    assert again.log_scale("lr") is True and again.log_scale("depth") is False
    assert again.log_scale("unknown") is None


# -- the command line -----------------------------------------------------------------------------
def _parsed(args: list[str]) -> list[str]:
    ctx = cli.make_context("launch", args)
    return [*getattr(ctx, "_protected_args", []), *ctx.args]


def test_options_may_come_before_the_sweep_file() -> None:
    assert _parsed(["--replicas", "3", "--debug", "sweep.yaml"]) == [
        "run", "--replicas", "3", "--debug", "sweep.yaml"]
    assert _parsed(["--debug", "sweep.yaml", "--replicas", "3"])[:2] == ["run", "sweep.yaml"]
    assert _parsed(["status", "latest"]) == ["status", "latest"]


def test_a_mistyped_command_gets_a_did_you_mean(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "launcher", "rn", "x.yaml"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == ("launch: error: no command 'rn' (did you mean 'run'?) "
                                     "(`launch --help` lists the commands; a sweep file runs "
                                     "with `launch FILE`)")
    sweep = tmp_path / "stauts"  # an existing file is a sweep, however it is named
    sweep.write_text("parameters: {x: {value: 1}}\n")
    planned = subprocess.run([sys.executable, "-m", "launcher", "plan", str(sweep)],
                             capture_output=True, text=True)
    assert planned.returncode == 0


def test_tables_fit_the_terminal_and_name_what_they_leave_out() -> None:
    from launcher.terminal import render_table

    columns = ["trial_id", *(f"param.p{i}" for i in range(12)), "status"]
    rows = [["abcdef123456", *(0.123456 * i for i in range(12)), "succeeded"]] * 3
    text = render_table(columns, rows, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines), lines
    assert lines[0].startswith("trial_id") and "+" in lines[-1] and "column" in lines[-1]
    assert "\x1b[" not in text  # no colour unless asked


def test_no_color_turns_colour_off_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from launcher.terminal import use_color

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())


def test_results_lines_fit_columns(tmp_path: Path) -> None:
    trials = [_trial(f"t{i}", acc=i / 10, lr=0.1 * i, hidden=8 * i, depth=i, width=i,
                     dropout=0.01 * i, momentum=0.9) for i in range(1, 5)]
    make_run(tmp_path, "20260102-120000-aaaa", trials, metric=METRIC)
    out = subprocess.run([sys.executable, "-m", "launcher", "results", "latest", "--results",
                          str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "80"})
    lines = out.stdout.splitlines()
    assert out.returncode == 0 and max(len(line) for line in lines) <= 80, lines
    assert lines[0].split()[:3] == ["trial_id", "param.lr", "param.hidden"]


def test_hints_only_where_they_apply() -> None:
    import pandas as pd

    from launcher.views import next_steps

    distinct = pd.DataFrame({"trial_id": ["a", "b"], "config_id": ["c", "c"], "seed": [0, 1],
                             "status": ["succeeded", "succeeded"], "reason": ["", ""]})
    assert next_steps(distinct, "R", None) == ["next: launch report R"]  # verify: nothing
    shared = distinct.assign(seed=[0, 0])
    assert next_steps(shared, "R", None) == ["next: launch verify R; launch report R"]
    failed = distinct.assign(status=["failed", "failed"], reason=["exit code 1: boom", ""])
    lines = next_steps(failed, "R", None)
    assert "see its log: launch logs R a" in lines[0] and "boom" in lines[0]
    assert lines[1] == "run failed trials again: launch resume R --retry-failed"
    assert not any("verify" in line for line in lines)


# -- compare by configuration -------------------------------------------------------------------
def _grid(root: Path, run_id: str, epochs: int, accs: dict[float, list[float]]) -> Path:
    trials = []
    for lr, values in accs.items():
        for r, acc in enumerate(values):
            trials.append({"trial_id": f"{run_id[-4:]}{int(lr * 10)}{r}",
                           "config_id": f"{lr}-{epochs}",
                           "replica": r, "seed": r, "params": {"lr": lr, "epochs": epochs},
                           "metrics": {"acc": acc}})
    return make_run(root, run_id, trials, metric=METRIC)


def test_compare_aligns_by_configuration_when_one_parameter_changed(tmp_path: Path) -> None:
    from launcher.compare import compare_runs

    _grid(tmp_path, "20260102-120000-aaaa", 150, {0.1: [0.98, 0.982, 0.984],
                                                  0.3: [0.80, 0.90, 0.70]})
    _grid(tmp_path, "20260102-130000-bbbb", 50, {0.1: [0.94, 0.941, 0.939],
                                                 0.3: [0.79, 0.89, 0.72]})
    c = compare_runs("latest~1", "latest", tmp_path)
    assert c.by == "config" and [x.text() for x in c.changes] == ["epochs: 150 -> 50"]
    rows = c.df.set_index("configuration")
    assert bool(rows.loc["lr=0.1", "beyond_noise"])  # 0.982 -> 0.94, replicas agree
    assert not rows.loc["lr=0.3", "beyond_noise"]  # within the replicas' spread
    assert list(c.regressions["configuration"]) == ["lr=0.1"]
    assert c.exit_code(True) == 1 and c.exit_code(False) == 0
    text = c.summary()
    assert "changed: epochs: 150 -> 50" in text and "1 regression in 2 configurations" in text
    assert json.loads(json.dumps(c.to_json()))["aligned_by"] == "config"


def test_nothing_comparable_is_exit_2(tmp_path: Path) -> None:
    from launcher.compare import compare_runs

    _grid(tmp_path, "20260102-120000-aaaa", 150, {0.1: [0.9], 0.2: [0.8]})
    _grid(tmp_path, "20260102-130000-bbbb", 50, {0.5: [0.9], 0.7: [0.8]})
    c = compare_runs("latest~1", "latest", tmp_path)
    assert not c.comparable and c.exit_code(True) == 2
    assert "nothing to compare" in c.summary() and "share no configuration" in c.summary()


# -- watch ----------------------------------------------------------------------------------------
def test_the_watch_view_reads_only_what_was_appended(tmp_path: Path) -> None:
    from launcher.watch import RunTail, headline, lane_rows, rich_view

    trials = [_trial("t1", acc=0.7), _trial("t2", acc=0.9, host="h2"),
              _trial("t3", status="failed"), _trial("t4", status="not_started")]
    run = RunDir(make_run(tmp_path, "20260102-120000-aaaa", trials, metric=METRIC,
                          state="running", hosts=("h1", "h2")))
    with run.started_log() as started:
        started.add("t4", 1, "h2", "f" * 64)
    with run.locked():
        tail = RunTail(run)
        tail.poll()
        line = headline(tail)
        assert "finished 3/4" in line and "failed 1" in line and "running 1" in line
        assert "best acc 0.9 (t2)" in line
        rows = {r[0]: r for r in lane_rows(tail)}
        assert rows["h2"][1].startswith("1: t4") and rows["h1"][2] == "1"
        run.append(TrialRecord("t4", TrialStatus.SUCCEEDED, metrics={"acc": 0.95},
                               host="h2", attempt=1))
        tail.poll()  # only the new record is read
        assert "finished 4/4" in headline(tail) and "best acc 0.95 (t4)" in headline(tail)
        assert lane_rows(tail)[1][1] == "0"
        from rich.console import Console

        console = Console(file=io.StringIO(), width=100)
        console.print(rich_view(tail))


def test_the_watch_view_draws_at_most_twenty_lanes(tmp_path: Path) -> None:
    from launcher.watch import MAX_LANES, RunTail, lane_rows

    hosts = tuple(f"h{i:02d}" for i in range(50))
    run = RunDir(make_run(tmp_path, "20260102-120000-aaaa",
                          [_trial(f"t{i}", host=h) for i, h in enumerate(hosts)], hosts=hosts))
    tail = RunTail(run)
    tail.poll()
    rows = lane_rows(tail)
    assert len(rows) == MAX_LANES and rows[-1][0] == "+31 more hosts"
    assert sum(int(r[2]) for r in rows) == 50


# -- MLflow ----------------------------------------------------------------------------------------
def test_export_to_mlflow_one_run_per_trial(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")  # the [mlflow] extra; `make venv` installs it
    from mlflow.tracking import MlflowClient

    from launcher.export import export_mlflow

    trials = [{**_trial("t1", acc=0.7), "history": [{"epoch": e, "acc": e / 10}
                                                   for e in (1, 2, 3)]},
              _trial("t2", status="failed"), _trial("t3", status="not_started")]
    make_run(tmp_path / "r", "20260102-120000-aaaa", trials, metric=METRIC)
    done = export_mlflow("latest", str(tmp_path / "mlruns"), tmp_path / "r")
    assert (done.exported, done.skipped, done.not_started) == (2, 0, 1)
    client = MlflowClient((tmp_path / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("demo")
    assert experiment is not None
    runs = {r.data.tags["launcher.trial_id"]: r for r in
            client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"t1", "t2"}
    assert runs["t1"].data.metrics["acc"] == 0.7 and runs["t1"].data.params["lr"] == "0.1"
    assert [m.value for m in client.get_metric_history(runs["t1"].info.run_id, "acc")] == \
        [0.1, 0.2, 0.3, 0.7]
    assert runs["t2"].info.status == "FAILED" and runs["t1"].info.status == "FINISHED"
    again = export_mlflow("latest", str(tmp_path / "mlruns"), tmp_path / "r")
    assert (again.exported, again.skipped) == (0, 2)


# -- the results table ----------------------------------------------------------------------------
def test_the_table_has_run_sweep_argv_and_real_timestamps(tmp_path: Path) -> None:
    import pandas as pd

    from launcher.results import load_history, write_tables

    trials = [{**_trial("t1"), "history": [{"epoch": 1, "acc": 0.1}, {"epoch": 2, "acc": 0.2}]},
              _trial("t2", status="not_started")]
    path = make_run(tmp_path, "20260102-120000-aaaa", trials, metric=METRIC)
    run = RunDir(path)
    run.append(TrialRecord("t2", TrialStatus.FAILED, argv=("python3", "x.py", "--lr=0.1")))
    write_tables(run)
    df = pd.read_parquet(path / "results.parquet")
    assert list(df.columns[:3]) == ["run_id", "sweep", "trial_id"]
    assert set(df["run_id"]) == {"20260102-120000-aaaa"} and set(df["sweep"]) == {"demo"}
    assert str(df["started_at"].dtype).startswith("datetime64") and \
        str(df["started_at"].dt.tz) == "UTC"
    assert json.loads(str(df.set_index("trial_id").loc["t2", "argv"])) == ["python3", "x.py",
                                                                      "--lr=0.1"]
    history = load_history(path)
    assert list(history.columns[:4]) == ["run_id", "trial_id", "config_id", "epoch"]
    assert history["acc"].tolist() == [0.1, 0.2] and (path / "history.parquet").is_file()
