"""The lecture's flows on the real engine, as a lecturer and a student type them: change
one parameter and compare, Ctrl-C during scale, a double Ctrl-C then resume, --resume of
two files named sweep.yaml, options before the file, `latest`, status with running
trials, `logs -f` on a stopped run, `launch watch` on a running run, MLflow export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from launcher.store import RunDir, RunState
from tests import support
from tests.support import (
    FAST_TRAIN,
    ROOT,
    assert_nothing_left,
    engine_clients,
    records,
    wait_until,
)

pytestmark = pytest.mark.docker
METRIC = {"name": "val_acc", "goal": "maximize"}
# A trial that sleeps $SLEEP seconds, unless its replica index is below $FAST, then runs
# the probe; it takes 2 s to stop on SIGTERM and then exits 143. SLEEP and FAST come from
# the launcher's environment (never written to disk), so a resume can make the same
# trials fast, and a scale study can make its first size fast.
SCRIPT = ("trap 'sleep 2; exit 143' TERM; if [ \"$1\" -ge \"$FAST\" ]; then sleep \"$SLEEP\" & "
          "wait; fi; shift; exec python3 \"$@\"")
SLOW = ["sh", "-c", SCRIPT, "sh", "${replica}", "/app/experiments/probe.py", "${args}"]
SLOW_TRAIN = [*SLOW[:5], "/app/experiments/train.py", "${args}"]


def sweep_file(folder: Path, body: dict[str, Any], name: str = "sweep",
               file: str = "sweep.yaml") -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "results": str(folder.parent / "results"),
            "image": {"build": {"context": str(ROOT)}},
            "resources": {"cpus": 0.5, "memory": "256m"}, **body}
    path = folder / file
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def slow_sweep(folder: Path, n: int, **keys: Any) -> Path:
    name = keys.pop("name", "slow")
    return sweep_file(folder, {"command": SLOW,
                               "env": {"SLEEP": "${envvar:SLEEP}", "FAST": "${envvar:FAST}"},
                               "parameters": {"x": {"values": list(range(n))}},
                               "stop_grace": "10s", **keys}, name=name)


def slow_training(folder: Path, **keys: Any) -> Path:
    """The training job (deterministic: verify passes) behind the slow start."""
    return slow_sweep(folder, 1, command=SLOW_TRAIN, parameters=FAST_TRAIN, **keys)


def launch(*args: str, cwd: Path = ROOT, sleep: str = "0", fast: str = "0",
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return support.launch(*args, cwd=cwd, timeout=timeout,
                          env={"SLEEP": sleep, "FAST": fast, "COLUMNS": "120"})


def launch_process(*args: str, sleep: str = "30", fast: str = "0",
                   cwd: Path = ROOT) -> subprocess.Popen[str]:
    return support.launch_process(*args, cwd=cwd, env={"SLEEP": sleep, "FAST": fast})


def running_containers(results: Path, count: int) -> Path | None:
    """The newest run under ``results`` once ``count`` of its containers run."""
    runs = sorted(results.glob("*/2*"))
    if not runs:
        return None
    started = runs[-1] / "started.jsonl"
    lines = started.read_text().splitlines() if started.exists() else []
    return runs[-1] if len(lines) >= count else None


def test_compare_of_two_runs_that_differ_in_one_parameter(tmp_path: Path) -> None:
    grid = {**FAST_TRAIN, "lr": {"values": [0.1, 0.5]}, "samples": {"value": 400}}
    a = sweep_file(tmp_path / "a", {"metric": METRIC, "parameters": {
        **grid, "epochs": {"value": 30}}, "replicas": 2})
    b = sweep_file(tmp_path / "b", {"metric": METRIC, "parameters": {
        **grid, "epochs": {"value": 1}}, "replicas": 2})
    results = str(tmp_path / "results")
    for path in (a, b):
        assert launch(str(path), "-q").returncode == 0
    plain = launch("compare", "latest~1", "latest", "--results", results)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "changed: epochs: 30 -> 1" in plain.stdout
    aligned = next(line for line in plain.stdout.splitlines() if line.startswith("aligned"))
    assert aligned.startswith("aligned by configuration on") and "lr" in aligned
    assert "epochs" not in aligned
    assert "regression: lr=0.1 " in plain.stdout or "regression: lr=0.5 " in plain.stdout
    failing = launch("compare", "latest~1", "latest", "--results", results,
                     "--fail-on-regression")
    assert failing.returncode == 1
    data = json.loads(launch("compare", "latest~1", "latest", "--results", results,
                             "--json").stdout)
    assert data["aligned_by"] == "config" and data["compared"] == 2
    assert data["changes"] == [{"name": "epochs", "a": ["30"], "b": ["1"]}]
    rows = {r["configuration"]: r for r in data["rows"]}
    assert {r["n.a"] for r in rows.values()} == {2} and data["regressions"]
    worst = min(rows.values(), key=lambda r: r["delta"])
    assert worst["mean.b"] < worst["mean.a"] and worst["beyond_noise"] is not False


def test_ctrl_c_during_scale_stops_the_study_and_resume_continues_it(tmp_path: Path) -> None:
    path = slow_training(tmp_path / "s", seed_mode="fixed", name="scaled", stop_grace="1s",
                         metric=METRIC)
    results = tmp_path / "results"
    # replica 0 is fast: N=1 finishes at once; N=3's other replicas sleep, so Ctrl-C
    # lands in the second size
    proc = launch_process("scale", str(path), "--replicas", "1,3", sleep="60", fast="1")
    wait_until(lambda: running_containers(results, 3) and
             len(list(results.glob("scaled/2*"))) == 2, 180)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "interrupted at N=3" in out and "nothing was plotted" in out
    assert "--resume" in out
    folder = results / "scaled"
    assert not list(folder.glob("scale-*.svg")) and not list(folder.glob("scale-*.html"))
    study = json.loads(next(folder.glob("scale-*.json")).read_text())
    assert study["state"] == "interrupted" and list(study["runs"]) in (["1"], ["1", "3"])
    again = launch("scale", str(path), "--replicas", "1,3", "--resume")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"N=1 already done: {study['runs']['1']}" in again.stderr
    assert list(folder.glob("scale-*.svg")) and "verify: 4/4 trials" in again.stdout
    page = next(folder.glob("scale-*.html")).read_text()
    for fact in ("<td>sweep</td><td>scaled (", "<td>hosts</td><td>local (Docker ",
                 "<td>date</td>", "<td>image</td><td>sha256:"):
        assert fact in page, fact


def test_double_ctrl_c_then_resume_reruns_the_stopped_trial(tmp_path: Path) -> None:
    path = slow_sweep(tmp_path / "d", 2, name="double")
    proc = launch_process(str(path), "--quiet", sleep="60")
    run_path = wait_until(lambda: running_containers(tmp_path / "results", 2))
    time.sleep(1.0)  # both containers are in their sleep
    proc.send_signal(signal.SIGINT)  # the launcher stops both containers (2 s each)...
    time.sleep(0.7)
    proc.send_signal(signal.SIGINT)  # ...and is told to exit before it can record them
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    run = RunDir(run_path)
    assert run.state() is RunState.ABANDONED and run.manifest().stop_requested_at
    left = [c for c in engine_clients()["local"].api.containers(
        all=True, filters={"label": f"io.launcher.run={run.run_id}"})]
    assert left, "the stopped containers are still on the engine for the resume"
    resumed = launch("resume", str(run_path), sleep="0")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming run {run.run_id}" in resumed.stderr.splitlines()[0]
    recorded = records(run_path)
    cancelled = [r for r in recorded if r["status"] == "cancelled"]
    # Each stopped container is cancelled: recorded by the first launcher if it got there
    # before the second Ctrl-C ("cancelled while running"), else adopted by the resume,
    # which knows the launcher stopped it ("stopped by the launcher"). Never failed.
    assert cancelled and all("stopped by the launcher" in r["reason"]
                             or r["reason"] == "cancelled while running" for r in cancelled)
    assert not [r for r in recorded if r["status"] == "failed"]
    df = pd.read_parquet(run_path / "results.parquet")
    assert set(df["status"]) == {"succeeded"}
    assert RunDir(run_path).state() is RunState.FINISHED
    assert_nothing_left(run.run_id)


def test_resume_follows_the_file_not_the_name(tmp_path: Path) -> None:
    one = slow_sweep(tmp_path / "one", 1, name="sweep")
    two = slow_sweep(tmp_path / "two", 2, name="sweep")  # another file, the same name
    first = launch(str(one), "-q")
    second = launch(str(two), "-q")
    assert first.returncode == 0 and second.returncode == 0
    first_id = first.stderr.splitlines()[0].split()[1]
    again = launch(str(one), "--resume", "-q")
    assert again.returncode == 0, again.stderr
    assert again.stderr.splitlines()[0].startswith(f"resuming run {first_id}")
    assert f"the newest run made from {one}" in again.stderr
    one.write_text(one.read_text().replace("values:\n    - 0", "values:\n    - 5"))
    changed = launch(str(one), "--resume", "-q")
    assert changed.returncode == 0
    assert "no earlier run of" in changed.stderr and "with this content" in changed.stderr
    assert len(list((tmp_path / "results" / "sweep").glob("2*"))) == 3


def test_options_before_the_file_latest_and_a_mistyped_command(tmp_path: Path) -> None:
    path = slow_sweep(tmp_path / "o", 1, name="opts")
    result = launch("--replicas", "2", "--quiet", str(path))
    assert result.returncode == 0, result.stderr
    run_id = result.stderr.splitlines()[0].split()[1]  # the run id comes first
    results = str(tmp_path / "results")
    table = launch("results", "latest", "--results", results, "--format", "json")
    assert {r["run_id"] for r in json.loads(table.stdout)} == {run_id}
    assert len(json.loads(table.stdout)) == 2
    assert launch("status", run_id[-4:], "--results", results).returncode == 0
    listed = json.loads(launch("ls", "--results", results, "--json").stdout)
    assert [r["run_id"] for r in listed] == [run_id]
    verified = launch("verify", "latest", "--results", results, "--json")
    assert verified.returncode == 2 and json.loads(verified.stdout)["compared"] == 0
    hosts = json.loads(launch("hosts", str(path), "--no-image", "--json").stdout)
    assert hosts["hosts"][0]["reachable"] is True and hosts["hosts"][0]["name"] == "local"
    mistyped = launch("rn", str(path))
    assert mistyped.returncode == 2 and "did you mean 'run'?" in mistyped.stderr


def test_status_watch_and_logs_follow_on_a_running_then_stopped_run(tmp_path: Path) -> None:
    path = slow_sweep(tmp_path / "w", 4, name="watched", max_parallel=2)
    results = tmp_path / "results"
    proc = launch_process(str(path), "--quiet", sleep="12")  # long enough on a busy machine
    run_path = wait_until(lambda: running_containers(results, 2))
    status = json.loads(launch("status", str(run_path), "--json").stdout)
    assert status["state"] == "running" and len(status["running"]) == 2
    assert {r["host"] for r in status["running"]} == {"local"}
    assert all(len(r["container"]) == 12 and r["elapsed_s"] >= 0 for r in status["running"])
    watcher = subprocess.Popen([sys.executable, "-m", "launcher", "watch", str(run_path)],
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reporter = subprocess.Popen([sys.executable, "-m", "launcher", "report", str(run_path)],
                                text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    page = run_path / "report.html"
    wait_until(lambda: page.exists() and 'http-equiv="refresh"' in page.read_text(), 60)
    following = launch("logs", str(run_path), status["running"][0]["trial_id"], "-f")
    assert following.returncode == 0 and "following trial" in following.stderr
    proc.communicate(timeout=120)
    watched, _ = watcher.communicate(timeout=30)  # it ends by itself when the run ends
    lines = watched.splitlines()
    assert len(lines) >= 3, watched  # one line a second while the run ran
    assert "watched/" in lines[0] and ": running" in lines[0]
    assert "finished 4/4" in lines[-1] and ": finished" in lines[-1]
    assert len({line.split("finished ")[1].split(",")[0] for line in lines}) >= 2  # updates
    printed, said = reporter.communicate(timeout=60)  # it, too, ends with the run
    assert reporter.returncode == 0 and Path(printed.strip()) == page
    assert "reloads itself" in said and 'http-equiv="refresh"' not in page.read_text()


def test_logs_follow_of_a_trial_that_never_ran_in_a_stopped_run(tmp_path: Path) -> None:
    path = slow_sweep(tmp_path / "l", 3, name="stopped", max_parallel=1, stop_grace="1s")
    proc = launch_process(str(path), "--quiet", sleep="30")
    run_path = wait_until(lambda: running_containers(tmp_path / "results", 1))
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    df = pd.read_parquet(run_path / "results.parquet")
    waiting = df[df["status"] == "not_started"]["trial_id"].iloc[0]
    started = time.monotonic()
    result = launch("logs", str(run_path), waiting, "-f")
    assert time.monotonic() - started < 30  # it does not wait for a trial that cannot start
    assert result.returncode == 1
    assert "never ran" in result.stderr and "interrupted" in result.stderr
    assert "launch resume" in result.stderr


def test_export_to_a_local_mlflow_file_store_reads_back(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for consent

    path = sweep_file(tmp_path / "m", {"metric": METRIC, "parameters": {
        **FAST_TRAIN, "lr": {"values": [0.1, 0.3]}}, "replicas": 2})
    assert launch(str(path), "-q").returncode == 0
    store = tmp_path / "mlruns"
    results = str(tmp_path / "results")
    exported = launch("export", "latest", "--results", results, "--mlflow", str(store))
    assert exported.returncode == 0, exported.stderr
    assert "exported 4 trials" in exported.stdout
    client = MlflowClient(store.as_uri())
    experiment = client.get_experiment_by_name("sweep")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    df = pd.read_parquet(next((tmp_path / "results" / "sweep").glob("2*")) / "results.parquet")
    assert sorted(r.data.tags["launcher.trial_id"] for r in runs) == sorted(df["trial_id"])
    for r in runs:
        row = df[df["trial_id"] == r.data.tags["launcher.trial_id"]].iloc[0]
        assert r.data.metrics["val_acc"] == row["metric.val_acc"]
        assert r.data.params["lr"] == str(row["param.lr"])
        assert r.data.tags["launcher.host"] == "local" and r.info.status == "FINISHED"
        assert r.data.tags["launcher.image_id"] == row["image_id"]
        assert len(client.get_metric_history(r.info.run_id, "train_loss")) >= 1
        assert "outputs" in [a.path for a in client.list_artifacts(r.info.run_id)]
    again = launch("export", "latest", "--results", results, "--mlflow", str(store))
    assert "exported 0 trials" in again.stdout and "4 already there" in again.stdout
