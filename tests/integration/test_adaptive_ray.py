"""W&B's documented bayes and hyperband sweep files end to end on a real three-node Ray
cluster (scripts/ray-cluster.sh, as in test_ray_backend.py): the sampler is asked as
slots free on every node, live history lines travel back from the nodes, and hyperband
stops trials there."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from launcher.api import run_sweep
from launcher.store import RunDir
from tests.integration.test_adaptive_docker import (
    BAYES_DOC,
    HYPERBAND_DOC,
    asked,
    wandb_sets,
)
from tests.integration.test_ray_backend import Cluster, address, cluster  # noqa: F401
from tests.support import assert_nothing_left

pytestmark = [pytest.mark.ray, pytest.mark.docker, pytest.mark.hosts]
NODES = {"main", "h2", "h3"}


def test_wandb_docs_bayes_file_runs_on_ray(tmp_path: Path, address: str) -> None:  # noqa: F811
    results = run_sweep(BAYES_DOC, wandb_sets(tmp_path, "validation_loss", "run_cap=12",
                                              "backend=ray", f"ray.address={address}"))
    df = results.df
    assert len(df) == 12 and set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    assert set(df["host"]) == NODES, "trials ran on every node"
    assert [c["number"] for c in asked(results.run_dir)] == list(range(12))
    assert results.exit_code == 0
    assert_nothing_left(results.run_id)


def test_wandb_docs_hyperband_file_runs_on_ray(tmp_path: Path, address: str) -> None:  # noqa: F811
    results = run_sweep(HYPERBAND_DOC, wandb_sets(tmp_path, "val_loss", "run_cap=12",
                                                  "backend=ray", f"ray.address={address}",
                                                  sleep=0.3))
    df = results.df
    counts = Counter(df["status"])
    assert len(df) == 12 and set(counts) <= {"succeeded", "stopped"}, df[["status", "reason"]]
    assert counts["stopped"] >= 2 and counts["succeeded"] >= 2, counts
    stopped = df[df["status"] == "stopped"]
    assert stopped["host"].nunique() >= 2, "trials were stopped on more than one node"
    run = RunDir(results.run_dir)
    for _, row in stopped.iterrows():
        history = run.history(row["trial_id"])
        assert 3 <= len(history) < 27 and "stopped early by hyperband" in row["reason"]
        assert row["metric.val_loss"] == history[-1]["val_loss"]
    assert results.exit_code == 0
    assert_nothing_left(results.run_id)
