"""The stopped status (early termination) in the store, the table, the summary, status and
the report, on a hand-made run (no Docker)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from launcher.api import RunResults
from launcher.listing import run_status
from launcher.report import build_report
from launcher.results import aggregate, build_table
from launcher.runner import Outcome
from launcher.search.savings import estimate
from launcher.store import RunDir, TrialRecord, best_records
from launcher.trial import TrialStatus
from launcher.views import print_run_summary
from tests.unit.fake_runs import make_run

WHY = "stopped early by hyperband: its value of acc at step 3, 0.3, is not in the top 1/3"


def trials() -> list[dict[str, Any]]:
    out = []
    for i, (status, acc, steps) in enumerate((("succeeded", 0.9, 10), ("succeeded", 0.8, 10),
                                              ("stopped", 0.3, 3), ("stopped", 0.2, 3))):
        out.append({"trial_id": f"t{i}", "config_id": f"c{i}", "params": {"lr": 0.1 * i},
                    "status": status, "metrics": {"acc": acc}, "started": i * 0.5,
                    "duration": float(steps), "reason": WHY if status == "stopped" else "",
                    "history": [{"epoch": e, "acc": acc * e / steps}
                                for e in range(1, steps + 1)]})
    return out


def a_run(tmp_path: Path) -> Path:
    return make_run(tmp_path, "20260102-120000-aaaa", trials(),
                    metric={"name": "acc", "goal": "maximize"})


def test_a_stopped_trial_is_a_row_with_its_last_value_and_reason(tmp_path: Path) -> None:
    df = build_table(RunDir(a_run(tmp_path))).set_index("trial_id")
    assert list(df["status"]) == ["succeeded", "succeeded", "stopped", "stopped"]
    assert df.loc["t2", "metric.acc"] == 0.3 and df.loc["t2", "reason"] == WHY
    by_config = aggregate(df.reset_index(), "acc", "maximize").set_index("config_id")
    assert by_config.loc["c2", "succeeded"] == 0, "a partial value never counts as a result"
    assert list(by_config.index[:2]) == ["c0", "c1"]


def test_stopped_is_a_final_status_between_success_and_infrastructure() -> None:
    assert TrialStatus.STOPPED.terminal and not TrialStatus.STOPPED.ok
    records = [TrialRecord("t", TrialStatus.CANCELLED), TrialRecord("t", TrialStatus.STOPPED),
               TrialRecord("t", TrialStatus.LOST)]
    assert best_records(records)["t"].status is TrialStatus.STOPPED
    records.append(TrialRecord("t", TrialStatus.SUCCEEDED))
    assert best_records(records)["t"].status is TrialStatus.SUCCEEDED


def test_savings_are_estimated_against_running_to_the_end(tmp_path: Path) -> None:
    savings = estimate(RunDir(a_run(tmp_path)).records())
    assert savings is not None and savings.stopped == 2
    # each stopped trial ran 3 of 10 steps in 3 s: 7 s left each
    assert savings.used_s == 26.0 and savings.saved_s == 14.0
    assert round(savings.share, 3) == round(14 / 40, 3)


def test_a_run_whose_other_trials_were_stopped_early_exits_zero(tmp_path: Path) -> None:
    results = RunResults(a_run(tmp_path), Outcome())
    assert results.ok and results.exit_code == 0
    out = io.StringIO()
    print_run_summary(results, as_json=False, out=out)
    text = out.getvalue()
    assert "2 stopped, 2 succeeded of 4 trials" in text
    assert "early termination: 2 trials stopped early, about 14 container-seconds saved " \
        "(35% of an estimated 40 s without early termination)" in text
    out = io.StringIO()
    print_run_summary(results, as_json=True, out=out)
    assert json.loads(out.getvalue())["stopped_early"] == {
        "trials": 2, "container_s": 26.0, "saved_s": 14.0, "saved_share": 0.35}


def test_status_shows_the_best_value_and_what_was_stopped(tmp_path: Path) -> None:
    text = run_status(a_run(tmp_path), tmp_path).summary()
    assert "4 trials: succeeded 2, stopped 2" in text and "finished 4/4" in text
    assert "best acc 0.9 (maximize, trial t0)" in text
    assert "early termination: 2 trials stopped early" in text


def test_the_report_says_what_was_stopped_and_draws_the_stopped_curves(tmp_path: Path) -> None:
    html = build_report(RunDir(a_run(tmp_path)))
    assert "2 stopped" in html and "2 trials stopped early, about 14 container-seconds" in html
    assert "first 20 succeeded or stopped" not in html  # 4 curves, not capped
    assert "Learning curves" in html and "No trial wrote a history" not in html
