"""W&B's own example sweep files run end to end on the Docker backend, unchanged except
for where the trials run (the launcher's keys, given on the command line as --set); plus
${args_json_file} on every kind of engine and metric.target on a real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from launcher.api import run_sweep
from launcher.overrides import Overrides
from tests.support import ROOT, assert_nothing_left, engine_clients, hosts_entries, write_sweep

pytestmark = pytest.mark.docker
FIXTURES = ROOT / "tests" / "fixtures" / "wandb"
PROBE = "[python3, /app/experiments/probe.py, '${args}']"


def local_sets(tmp_path: Path, *extra: str) -> Overrides:
    """Where W&B's agent would run ``program``, the probe (which accepts any argv) runs."""
    return Overrides(results=str(tmp_path / "results"), sets=(
        f"command={PROBE}", f"image.build.context={ROOT}", "resources.cpus=0.5",
        "resources.memory=256m", *extra))


def argv_of(run_dir: Path) -> dict[str, list[str]]:
    out = {}
    for line in (run_dir / "trials.jsonl").read_text().splitlines():
        record = json.loads(line)
        out[record["trial_id"]] = record["metrics"]["argv"]
    return out


@pytest.mark.parametrize(("example", "trials", "sample"), [
    ("examples-sweep-bool.yaml", 8, ["--optimizer=sgd", "--flag1=False", "--flag2=True"]),
    ("sweeps-sweep-nested-cli.yaml", 8, ["--batch_size=32", "--optimizer.lr=0.001",
                                         "--optimizer.nadam.beta=0.9"]),
    ("sweeps-sweep-grid.yaml", 27, ["--epochs=5", "--sleep=0.5", "--direction=-1"]),
])
def test_wandb_grid_examples_run_end_to_end(tmp_path: Path, example: str, trials: int,
                                            sample: list[str]) -> None:
    results = run_sweep(FIXTURES / example, local_sets(tmp_path, "max_parallel=4"))
    df = results.df
    assert len(df) == trials and set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    argvs = list(argv_of(results.run_dir).values())
    assert any(all(item in argv for item in sample) for argv in argvs), argvs[:3]
    assert results.ok
    assert_nothing_left(results.run_id)


def test_wandb_docs_random_example_runs_with_a_run_cap(tmp_path: Path) -> None:
    results = run_sweep(FIXTURES / "docs-config-random.yaml",
                        local_sets(tmp_path, "run_cap=6", "max_parallel=3"))
    df = results.df
    assert len(df) == 6 and set(df["status"]) == {"succeeded"}
    for argv in argv_of(results.run_dir).values():
        batch = next(a for a in argv if a.startswith("--batch_size="))
        value = int(batch.split("=")[1])  # q: 8 is an int, so W&B gives integers
        assert 32 <= value <= 256 and value % 8 == 0
        assert "--epochs=1" in argv and any(a in argv for a in ("--optimizer=adam",
                                                                  "--optimizer=sgd"))
    assert_nothing_left(results.run_id)


READ_PARAMS = ("import json,os,sys; p=sys.argv[1]; d=json.load(open(p))\n"
               "try:\n open(p,'w'); w=True\nexcept OSError: w=False\n"
               "try:\n open('/x','w'); r=True\nexcept OSError: r=False\n"
               "print(json.dumps({'metrics': {'file': json.dumps(d, sort_keys=True), 'path': p,"
               " 'env': os.environ.get('WANDB_SWEEP_PARAM_PATH'), 'file_writable': w,"
               " 'root_writable': r}}))")


@pytest.mark.hosts
def test_args_json_file_is_read_only_on_local_tls_and_ssh_engines(tmp_path: Path) -> None:
    hosts = [{"url": "local", "slots": 2}, *hosts_entries()]
    path = write_sweep(tmp_path, {
        "command": ["python3", "-c", READ_PARAMS, "${args_json_file}"], "hosts": hosts,
        "parameters": {"lr": {"values": [0.1, 1e-05, 3]}, "a.b": {"value": "x y"},
                       "m": {"parameters": {"h": {"values": [1, 2]}}}}}, name="jsonfile")
    results = run_sweep(path)
    df = results.df
    assert len(df) == 6 and set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    assert set(df["host"]) == {"local", "h2", "h3"}
    for _, row in df.iterrows():
        expected = {"lr": row["param.lr"], "a.b": "x y", "m": {"h": row["param.m.h"]}}
        assert json.loads(row["metric.file"]) == expected
        assert row["metric.path"] == row["metric.env"] == "/run/launcher/params.json"
        assert not row["metric.file_writable"] and not row["metric.root_writable"]
    assert_nothing_left(results.run_id)
    for name, client in engine_clients().items():
        volumes = client.api.volumes(filters={"label": f"io.launcher.run={results.run_id}"})
        assert not (volumes or {}).get("Volumes"), f"params volumes left on {name}"
        client.close()


EMIT = "import sys; print('{\"metrics\": {\"acc\": %s}}' % sys.argv[1].split('=')[1])"


def test_metric_target_stops_starting_trials_and_exits_zero(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, {
        "command": ["python3", "-c", EMIT, "${args}"], "max_parallel": 1,
        "metric": {"name": "acc", "goal": "maximize", "target": 3},
        "parameters": {"x": {"values": [1, 2, 3, 4, 5, 6]}}}, name="target")
    results = run_sweep(path)
    df = results.df
    assert list(df["status"]) == ["succeeded"] * 3 + ["not_started"] * 3
    assert results.ok and not results.stopped and results.exit_code == 0
    manifest: dict[str, Any] = json.loads((results.run_dir / "manifest.json").read_text())
    assert manifest["state"] == "finished"
    assert "acc 3 reached the target 3 (maximize)" in manifest["target_reached"]
    assert_nothing_left(results.run_id)
