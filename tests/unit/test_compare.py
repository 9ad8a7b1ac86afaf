"""Comparing two results tables: alignment, deltas, regressions (no Docker)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from launcher.compare import align, compare_runs, compare_tables, find_regressions, worse
from launcher.errors import UsageError
from tests.unit.fake_runs import OTHER_IMAGE, make_run, table, trial_row


def _a_and_b() -> tuple[pd.DataFrame, pd.DataFrame]:
    a = table(trial_row("t1", acc=0.90, sha="x"), trial_row("t2", acc=0.80, sha="y"),
              trial_row("t3", acc=0.70, sha="z"))
    b = table(trial_row("t1", acc=0.90, sha="x"), trial_row("t2", acc=0.85, sha="q"),
              trial_row("t3", status="failed", image=OTHER_IMAGE),
              trial_row("t4", replica=3, acc=0.99, sha="w"))
    return a, b


def test_align_keeps_every_trial_of_either_run() -> None:
    a, b = _a_and_b()
    aligned = align(a.drop(index=0), b)
    assert list(aligned["trial_id"]) == ["t2", "t3", "t1", "t4"]
    assert list(aligned["present"]) == ["both", "both", "b", "b"]
    assert aligned.loc[aligned["trial_id"] == "t4", "replica"].item() == 3
    row = aligned[aligned["trial_id"] == "t2"].iloc[0]
    assert row["metric.acc.delta"] == pytest.approx(0.05)
    assert "metric.sha.delta" not in aligned.columns  # text has no delta


def test_deltas_count_changes_per_metric() -> None:
    a, b = _a_and_b()
    deltas = compare_tables(a, b, metric="acc", goal="maximize").deltas().set_index("metric")
    assert deltas.loc["acc", "compared"] == 2 and deltas.loc["acc", "changed"] == 1
    assert deltas.loc["acc", "max_delta"] == pytest.approx(0.05)
    assert deltas.loc["sha", "changed"] == 1


def test_regressions_follow_the_goal_and_status() -> None:
    a, b = _a_and_b()
    up = compare_tables(a, b, metric="acc", goal="maximize")
    assert list(up.regressions["detail"]) == ["status succeeded -> failed"]
    down = compare_tables(a, b, metric="acc", goal="minimize")
    assert set(down.regressions["trial_id"]) == {"t2", "t3"}
    assert "acc 0.8 -> 0.85 (minimize)" in set(down.regressions["detail"])
    assert down.exit_code(fail_on_regression=True) == 1
    assert down.exit_code(fail_on_regression=False) == 0


def test_tolerance_hides_small_regressions() -> None:
    assert worse(0.80, 0.79, "maximize")
    assert not worse(0.80, 0.79, "maximize", atol=0.02)
    assert not worse(0.80, 0.79, "maximize", rtol=0.05)
    assert not worse(0.80, 0.81, "maximize") and worse(0.80, 0.81, "minimize")
    assert not worse(None, 0.5, "maximize") and not worse(float("nan"), 0.5, "minimize")


def test_without_a_metric_only_status_counts() -> None:
    a, b = _a_and_b()
    c = compare_tables(a, b, metric=None)
    assert list(c.regressions["kind"]) == ["status"]
    assert "names no metric" in c.judged


def test_status_and_image_changes_and_one_sided_trials() -> None:
    a, b = _a_and_b()
    c = compare_tables(a, b, metric="acc", goal="maximize", names=("A1", "B1"))
    assert list(c.status_changes["trial_id"]) == ["t3"]
    assert list(c.image_changes["trial_id"]) == ["t3"]
    assert list(c.only("b")["trial_id"]) == ["t4"] and not len(c.only("a"))
    text = c.summary()
    assert "aligned trial by trial: 3 in both, 0 only in A, 1 only in B" in text
    assert "status: t3 succeeded -> failed" in text
    assert "1 regression in 3 trials compared" in text


def test_find_regressions_on_an_empty_alignment() -> None:
    a, _ = _a_and_b()
    assert len(find_regressions(align(a, a[:0]), "acc", "maximize")) == 0


def _trial(tid: str, acc: float, status: str = "succeeded") -> dict[str, Any]:
    return {"trial_id": tid, "config_id": "cfg", "params": {"lr": 0.1}, "status": status,
            "metrics": {"acc": acc} if status == "succeeded" else {}}


def test_compare_runs_of_different_sizes_with_the_sweeps_metric(tmp_path: Path) -> None:
    metric = {"name": "acc", "goal": "maximize"}
    make_run(tmp_path, "20260102-120000-aaaa", [_trial("t1", 0.9)], metric=metric)
    make_run(tmp_path, "20260102-130000-bbbb", [_trial("t1", 0.8), _trial("t2", 0.9)],
             metric=metric)
    c = compare_runs("20260102-12", "20260102-13", tmp_path)
    assert (c.metric, c.goal) == ("acc", "maximize")
    assert list(c.regressions["trial_id"]) == ["t1"] and len(c.only("b")) == 1
    assert c.exit_code(True) == 1
    with pytest.raises(UsageError):
        compare_runs("20260102-12", "20260102-12", tmp_path)
