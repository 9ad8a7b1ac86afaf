"""The command line: help everywhere and fast, exit codes, one-line errors, plan output."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from launcher.cli import cli

LAUNCH = [sys.executable, "-m", "launcher"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAUNCH, *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "LAUNCH_DEBUG": ""})


def test_every_command_has_help_text() -> None:
    runner = CliRunner()
    for name, command in cli.commands.items():
        assert command.help and len(command.help) > 20, name
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage:" in result.output


def test_help_is_fast_for_every_command() -> None:
    """Heavy libraries are imported lazily; measured in a fresh interpreter."""
    for args in [["--help"], *([name, "--help"] for name in cli.commands)]:
        started = time.perf_counter()
        result = run(*args)
        elapsed = time.perf_counter() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < 1.0, (args, elapsed)  # the benchmark measures the 0.3 s target
    code = ("import sys, launcher.cli; heavy = {'docker', 'pandas', 'rich', 'matplotlib', "
            "'ray', 'numpy'} & set(sys.modules); print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    path = tmp_path / "demo.yaml"
    path.write_text("parameters:\n  lr: {values: [0.1, 0.2]}\n  depth: {value: 2}\n"
                    "replicas: 2\n")
    return path


def test_plan_table_prints_rows_and_a_count(sweep: Path) -> None:
    result = run("plan", str(sweep))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["trial_id", "config_id", "replica", "seed", "param.lr",
                                "param.depth"]
    assert len([line for line in lines if line.strip()]) == 1 + 4 + 1
    assert "4 trials: 2 configurations x 2 replicas" in result.stdout


def test_plan_json_and_csv_shapes(sweep: Path) -> None:
    trials = json.loads(run("plan", str(sweep), "--format", "json").stdout)
    assert trials[0].keys() == {"trial_id", "config_id", "replica", "seed", "params"}
    assert trials[0]["params"] == {"lr": 0.1, "depth": 2}
    rows = list(csv.DictReader(io.StringIO(run("plan", str(sweep), "--format", "csv").stdout)))
    assert [r["trial_id"] for r in rows] == [t["trial_id"] for t in trials]


def test_bad_sweep_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("parameters: {x: 1}\nreplica: 3\n")
    result = run("plan", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "bad.yaml:2: unknown key 'replica' (did you mean 'replicas'?)" in result.stderr


def test_missing_file_and_bad_option_exit_2(tmp_path: Path) -> None:
    assert run("plan", str(tmp_path / "none.yaml")).returncode == 2
    result = run("plan", str(tmp_path / "none.yaml"), "--replicas", "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = run("--debug", "plan", str(tmp_path / "none.yaml"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_plan_piped_into_head_is_quiet(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("parameters:\n  a: {min: 1, max: 3000}\nreplicas: 10\n")
    shell = f"{sys.executable} -m launcher plan {big} | head -1"
    result = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True,
                            text=True)
    # click exits 1 quietly on EPIPE, like other tools it does not print a traceback
    assert result.stderr == "" and result.stdout.startswith("trial_id")


def test_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    for command in ("results", "verify", "report", "status", "resume"):
        result = run(command, "20990101", "--results", str(tmp_path))
        assert result.returncode == 2, (command, result.stderr)
        assert "no run" in result.stderr and "Traceback" not in result.stderr
