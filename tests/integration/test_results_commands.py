"""ls, results, status, verify, compare and scale on run directories that the Docker
backend produced from experiments/train.py (a few fast trials each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from launcher.api import run_sweep
from tests.support import FAST_TRAIN, write_sweep

pytestmark = pytest.mark.docker

METRIC = {"name": "val_acc", "goal": "maximize"}
GRID = {**FAST_TRAIN, "lr": {"values": [0.1, 0.3]}}


def launch(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, "LAUNCH_DEBUG": ""},
                          timeout=300)


def _run(folder: Path, name: str, **body: Any) -> Path:
    sweep = write_sweep(folder, {"metric": METRIC, "seed": 3, **body}, name)
    results = run_sweep(sweep)
    return results.run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Real runs: the same grid twice at two sizes (fixed seeds), an unseeded job with
    shared seeds, a distinct-seed run, and the grid again with a timeout too short."""
    folder = tmp_path_factory.mktemp("runs")
    out = {
        "a": _run(folder, "grid", parameters=GRID, replicas=2, seed_mode="fixed"),
        "b": _run(folder, "grid", parameters=GRID, replicas=3, seed_mode="fixed"),
        "unseeded": _run(folder, "unseeded", replicas=3, seed_mode="fixed",
                         parameters={**FAST_TRAIN, "unseeded": {"value": True}}),
        "distinct": _run(folder, "distinct", parameters=FAST_TRAIN, replicas=2),
        "slow": _run(folder, "grid", parameters=GRID, replicas=2, seed_mode="fixed",
                     timeout=0.05, stop_grace=0),
    }
    yield out


def test_ls_lists_every_run_with_trials_and_image(runs: dict[str, Path]) -> None:
    root = runs["a"].parent.parent
    result = launch("ls", "--results", str(root), "--format", "json")
    assert result.returncode == 0, result.stderr
    listed = {r["run_id"]: r for r in json.loads(result.stdout)}
    assert set(listed) == {p.name for p in runs.values()}
    a = listed[runs["a"].name]
    assert (a["sweep"], a["trials"], a["succeeded"], a["hosts"]) == ("grid", 4, 4, "local")
    assert a["image_id"].startswith("sha256:") and len(a["image_id"]) == 19
    assert listed[runs["slow"].name]["succeeded"] == 0


def test_results_by_config_is_sorted_by_the_sweeps_goal(runs: dict[str, Path]) -> None:
    root = runs["b"].parent.parent
    result = launch("results", runs["b"].name, "--results", str(root), "--by", "config",
                    "--format", "json")
    assert result.returncode == 0, result.stderr
    configs = json.loads(result.stdout)
    assert [c["val_acc.count"] for c in configs] == [3, 3]
    assert configs[0]["val_acc.mean"] >= configs[1]["val_acc.mean"]
    assert configs[0]["val_acc.std"] == 0.0  # replicas share the seed
    table = launch("results", str(runs["b"]), "--format", "csv")
    assert len(table.stdout.splitlines()) == 1 + 6 and "container_id" in table.stdout


def test_status_counts_a_finished_run_per_host(runs: dict[str, Path]) -> None:
    result = launch("status", str(runs["slow"]))
    assert result.returncode == 0, result.stderr
    assert "4 trials: timed out 4" in result.stdout
    assert "finished 4/4 (final status); nothing left for `launch resume` (4 with " \
        "--retry-failed)" in result.stdout
    assert "local" in result.stdout


def test_verify_within_and_across_runs_of_different_sizes(runs: dict[str, Path]) -> None:
    one = launch("verify", str(runs["a"]))
    assert one.returncode == 0, one.stdout + one.stderr
    assert "4/4 trials on 1 host reproduce: identical metrics and outputs, image sha256:" \
        in one.stdout
    both = launch("verify", str(runs["a"]), str(runs["b"]))
    assert both.returncode == 0, both.stdout
    assert "10/10 trials on 1 host reproduce across 2 runs" in both.stdout
    assert "local" in both.stdout.splitlines()[1] and "10/10" in both.stdout.splitlines()[1]


def test_verify_catches_the_job_that_ignores_its_seed(runs: dict[str, Path]) -> None:
    result = launch("verify", str(runs["unseeded"]))
    assert result.returncode == 1, result.stdout
    differing = [line for line in result.stdout.splitlines() if line.startswith("differs:")]
    assert len(differing) == 2  # three replicas, three results: two differ from the first
    assert "weights_sha256" in differing[0] and "file model.npy" in differing[0]
    assert "2/3 trials do not reproduce (metrics differ in 2, outputs differ in 2)" \
        in result.stdout


def test_verify_with_nothing_to_compare_exits_2(runs: dict[str, Path]) -> None:
    result = launch("verify", str(runs["distinct"]))
    assert result.returncode == 2
    assert "nothing to compare" in result.stdout and "seed_mode: fixed" in result.stdout


def test_verify_leaves_out_trials_that_did_not_succeed(runs: dict[str, Path]) -> None:
    result = launch("verify", str(runs["a"]), str(runs["slow"]))
    assert result.returncode == 0, result.stdout
    assert "left out 4 trials that did not succeed (timed_out 4)" in result.stdout


def test_compare_runs_of_different_sizes(runs: dict[str, Path]) -> None:
    result = launch("compare", str(runs["a"]), str(runs["b"]), "--fail-on-regression")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "aligned trial by trial: 4 in both, 0 only in A, 2 only in B" in result.stdout
    assert "no regressions in 4 trials compared" in result.stdout
    assert "val_acc worse by its goal (maximize)" in result.stdout


def test_compare_fails_on_trials_that_stopped_succeeding(runs: dict[str, Path]) -> None:
    plain = launch("compare", str(runs["a"]), str(runs["slow"]))
    assert plain.returncode == 0
    result = launch("compare", str(runs["a"]), str(runs["slow"]), "--fail-on-regression")
    assert result.returncode == 1
    assert result.stdout.count("status: ") == 4
    assert "succeeded -> timed_out" in result.stdout
    assert "4 regressions in 4 trials compared" in result.stdout


def test_scale_runs_each_size_plots_and_verifies(tmp_path: Path) -> None:
    sweep = write_sweep(tmp_path, {"metric": METRIC, "parameters": FAST_TRAIN,
                                   "seed_mode": "fixed"}, "scaled")
    result = launch("scale", str(sweep), "--replicas", "1,3", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:4] == ["N", "wall_s", "ideal_s", "efficiency"]
    assert lines[1].split()[0] == "1" and lines[2].split()[0] == "3"
    assert "verify: 4/4 trials on 1 host reproduce across 2 runs" in result.stdout
    plot = Path(next(line for line in lines if line.startswith("plot: "))[6:])
    assert plot.read_bytes().startswith(b"<?xml") and plot.parent.name == "scaled"
    assert plot.suffix == ".svg"
    page = Path(next(line for line in lines if line.startswith("page: "))[6:])
    assert "data:image/svg+xml;base64," in page.read_text()
    efficiency = [float(line.split()[3]) for line in lines[1:3]]
    assert all(0 < e <= 1.0 for e in efficiency), lines  # the ideal is never beaten
