"""Fan-out end to end on real engines: the local one plus two test hosts (TLS and SSH)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from launcher.api import run_sweep
from launcher.trial import TrialStatus
from tests.support import (
    FAST_TRAIN,
    ROOT,
    assert_nothing_left,
    hosts_env,
    probe_sweep,
    write_sweep,
)

pytestmark = pytest.mark.docker
TEST_HOSTS_FILE = "/run/launcher-test-hosts/hosts.yaml"


def launch(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=900, env={**os.environ, "CI": ""})


def run_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout.strip(), result.stderr
    return dict(json.loads(result.stdout))


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("metric.")]


@pytest.mark.hosts
@pytest.mark.slow
def test_replicas_over_three_engines_give_identical_results(tmp_path: Path) -> None:
    result = launch("experiments/replicas.yaml", "--replicas", "30", "--host", "local",
                    "--hosts", TEST_HOSTS_FILE, "--results", str(tmp_path), "--json")
    summary = run_json(result)
    assert result.returncode == 0, result.stderr
    df = pd.read_parquet(Path(summary["run_dir"]) / "results.parquet")
    assert len(df) == 30 and set(df["status"]) == {"succeeded"}
    assert set(df["host"]) == {"local", "h2", "h3"}
    assert df["image_id"].nunique() == 1 and df["image_id"].iloc[0].startswith("sha256:")
    for column in metric_columns(df):
        assert df[column].nunique() == 1, f"{column} differs between replicas"
    assert df["seed"].nunique() == 1 and df["trial_id"].nunique() == 30
    assert_nothing_left(summary["run_id"])


@pytest.mark.hosts
def test_grid_sweep_over_three_engines_runs_every_planned_trial(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"method": "grid", "metric": {"name": "val_acc",
                                                               "goal": "maximize"},
                                  "parameters": {"lr": {"values": [0.05, 0.3]},
                                                 "hidden": {"values": [4, 8]},
                                                 "epochs": {"value": 2},
                                                 "samples": {"value": 300}}})
    hosts = [{"url": "local", "slots": 1}] + [{**h, "slots": 1} for h in
                                              yaml.safe_load(Path(TEST_HOSTS_FILE).read_text())]
    results = run_sweep(path, replicas=3, hosts=tuple(
        ",".join([h["url"], f"slots={h['slots']}"] + ([f"name={h['name']}"] if "name" in h
                                                      else []) +
                 ([f"cert_path={h['cert_path']}"] if "cert_path" in h else []))
        for h in hosts))
    planned = json.loads((results.run_dir / "plan.json").read_text())["trials"]
    df = results.df
    assert len(planned) == 12 and sorted(df["trial_id"]) == sorted(t["trial_id"]
                                                                   for t in planned)
    assert set(df["status"]) == {"succeeded"} and df["host"].nunique() == 3
    assert_nothing_left(results.run_id)


def test_failures_timeouts_and_oom_are_rows_and_the_sweep_goes_on(tmp_path: Path) -> None:
    path = probe_sweep(tmp_path, {"probe-exit": {"values": [0, 3]},
                                  "probe-sleep": {"values": [0, 30]}},
                       timeout="3s", stop_grace="1s")
    results = run_sweep(path)
    df = results.df.set_index(["param.probe-exit", "param.probe-sleep"])
    assert df.loc[(0, 0), "status"] == "succeeded"
    assert df.loc[(3, 0), "status"] == "failed" and df.loc[(3, 0), "exit_code"] == 3
    assert "exit code 3" in str(df.loc[(3, 0), "reason"])
    assert {df.loc[(0, 30), "status"], df.loc[(3, 30), "status"]} == {"timed_out"}
    assert "timeout of 3s" in str(df.loc[(0, 30), "reason"])
    oom = run_sweep(probe_sweep(tmp_path, {"probe-alloc-mb": {"values": [1, 300]}},
                                name="oom", resources={"cpus": 0.5, "memory": "64m"}))
    by_alloc = oom.df.set_index("param.probe-alloc-mb")
    assert by_alloc.loc[1, "status"] == "succeeded"
    assert by_alloc.loc[300, "status"] == "oom_killed"
    assert "out of memory (limit 64 MiB)" in str(by_alloc.loc[300, "reason"])
    assert_nothing_left(results.run_id)
    assert_nothing_left(oom.run_id)


def test_run_directory_has_everything(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"parameters": {**FAST_TRAIN, "lr": {"values": [0.1, 0.3]}},
                                  "metric": {"name": "val_acc", "goal": "maximize"}})
    results = run_sweep(path, replicas=2)
    run = results.run_dir
    for name in ("sweep.yaml", "plan.json", "manifest.json", "trials.jsonl",
                 "results.parquet", "results.csv"):
        assert (run / name).is_file(), name
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["image"]["id"].startswith("sha256:") and manifest["state"] == "finished"
    assert manifest["hosts"][0]["engine_version"] and manifest["hosts"][0]["kernel"]
    assert manifest["hosts"][0]["cpu_model"] and manifest["git"]["commit"]
    assert manifest["sweep_sha256"] and manifest["launcher_version"]
    df = results.df
    expected = ["trial_id", "config_id", "replica", "seed", "param.lr", "status", "reason",
                "exit_code", "host", "image_id", "container_id", "attempt", "queued_at",
                "started_at", "finished_at", "duration_s", "metric.val_acc"]
    assert set(expected) <= set(df.columns)
    for trial_id in df["trial_id"]:
        assert (run / "logs" / f"{trial_id}.log").read_text().strip()
        history = (run / "history" / f"{trial_id}.jsonl").read_text().splitlines()
        assert json.loads(history[0])["epoch"] == 1
        assert (run / "outputs" / trial_id / "metrics.json").is_file()
        assert (run / "outputs" / trial_id / "model.npy").stat().st_size > 0
    assert (pd.read_csv(run / "results.csv")["trial_id"] == df["trial_id"]).all()


def test_outputs_false_takes_metrics_from_stdout_and_copies_nothing(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"parameters": FAST_TRAIN, "outputs": False})
    results = run_sweep(path)
    row = results.df.iloc[0]
    assert row["status"] == "succeeded" and row["metric.val_acc"] > 0
    assert not any((results.run_dir / "outputs").iterdir())


def test_cli_summary_json_and_logs(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {"parameters": FAST_TRAIN,
                                  "metric": {"name": "val_acc", "goal": "maximize"}})
    summary = run_json(launch(str(path), "--replicas", "2", "--json"))
    assert summary["status"] == {"succeeded": 2} and summary["configs"][0]["count"] == 2
    df = pd.read_csv(Path(summary["run_dir"]) / "results.csv")
    logs = launch("logs", summary["run_id"], df["trial_id"][0][:6], "--results",
                  str(tmp_path / "results"))
    assert logs.returncode == 0 and '"metrics"' in logs.stdout
    text = launch(str(path), "--quiet")
    assert text.returncode == 0 and "succeeded of 1 trials" in text.stdout
    assert "run: " in text.stdout


@pytest.mark.hosts
@pytest.mark.parametrize(("option", "words"), [
    ("tcp://10.213.2.2:2399,name=refused,cert_path=/run/launcher-test-hosts/h2-client",
     "no Docker engine answers"),
    ("tcp://10.213.2.2:2376,name=wrongca,cert_path=/run/launcher-test-hosts/wrong-ca-client",
     "TLS verification failed"),
    ("ssh://root@10.213.3.3", "unknown or changed SSH host key"),
    ("tcp://10.213.2.2:2376,name=plain", "plain TCP is allowed only on loopback"),
])
def test_bad_hosts_are_clear_errors_before_any_trial(tmp_path: Path, option: str,
                                                     words: str) -> None:
    path = write_sweep(tmp_path, {"parameters": FAST_TRAIN})
    result = launch(str(path), "--host", "local", "--host", option)
    assert result.returncode == 1 and words in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "results").exists(), "no run starts"


@pytest.mark.hosts
def test_a_host_with_a_different_image_under_the_tag_is_refused(tmp_path: Path) -> None:
    import docker

    from launcher.image import ensure_image
    from launcher.sections import ImageSpec

    local = docker.from_env()
    image = ensure_image(local, ImageSpec(context=str(ROOT)), ROOT)
    h2 = docker.DockerClient(base_url=hosts_env()["H2_SOCK"])
    impostor = _any_other_image(h2, image.id)
    repo, tag = image.tag.split(":")
    h2.api.tag(impostor, repo, tag)
    try:
        path = write_sweep(tmp_path, {"parameters": FAST_TRAIN})
        result = launch(str(path), "--host", "local", "--hosts", TEST_HOSTS_FILE)
        assert result.returncode == 1
        assert "holds a different image under the tag" in result.stderr, result.stderr
        assert not (tmp_path / "results").exists()
    finally:
        h2.api.remove_image(image.tag)
        h2.api.remove_image("launcher-impostor:latest")
        h2.close()
        local.close()


def _any_other_image(target: Any, avoid: str) -> str:
    """A tiny image made on ``target`` from an in-memory tar (one file): not ``avoid``."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("impostor.txt")
        payload = b"not the launcher's image\n"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    target.api.import_image_from_data(buf.getvalue(), repository="launcher-impostor",
                                      tag="latest")
    image_id = str(target.api.inspect_image("launcher-impostor:latest")["Id"])
    assert image_id != avoid
    return image_id


def test_failed_trials_make_the_exit_code_1(tmp_path: Path) -> None:
    path = probe_sweep(tmp_path, {"probe-exit": {"values": [0, 5]}})
    result = launch(str(path), "--quiet")
    assert result.returncode == 1 and "1 failed, 1 succeeded of 2 trials" in result.stdout


def test_status_counts_in_the_summary(tmp_path: Path) -> None:
    path = probe_sweep(tmp_path, {"probe-exit": {"values": [0]}})
    results = run_sweep(path, replicas=3)
    assert (results.df["status"] == str(TrialStatus.SUCCEEDED)).sum() == 3 and results.ok


@pytest.mark.hosts
def test_a_docker_context_is_a_host(tmp_path: Path) -> None:
    config = tmp_path / "docker-config"
    env = {**os.environ, "DOCKER_CONFIG": str(config), "CI": ""}
    subprocess.run(["docker", "context", "create", "lab-h2", "--docker",
                    f"host={hosts_env()['H2_SOCK']}"], env=env, check=True,
                   capture_output=True)
    path = write_sweep(tmp_path, {"parameters": FAST_TRAIN})
    result = subprocess.run([sys.executable, "-m", "launcher", str(path), "--replicas", "2",
                             "--host", "context:lab-h2", "--json"], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    df = pd.read_csv(Path(summary["run_dir"]) / "results.csv")
    assert set(df["host"]) == {"lab-h2"} and set(df["status"]) == {"succeeded"}
    missing = subprocess.run([sys.executable, "-m", "launcher", str(path), "--host",
                              "context:nope"], capture_output=True, text=True, cwd=ROOT,
                             env=env, timeout=120)
    assert missing.returncode == 1 and "no docker context named 'nope'" in missing.stderr
