"""Hyperband stopping decisions: a hand-computed example, W&B's own test cases (ported from
wandb/sweeps tests/test_hyperband_stopping.py) and the incremental stopper against the
whole-snapshot rule at every line."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.search.hyperband import HyperbandStopper, decide, metric_history
from launcher.wandb_keys import Hyperband, Metric
from tests.support import ROOT

LOSS = Metric("loss", "minimize")
HYPER_DATA = ROOT / "tests" / "fixtures" / "wandb" / "sweeps-tests-hyper-data.json"


def rows(*values: Any) -> list[dict[str, Any]]:
    return [{"loss": v} for v in values]


def stops(rule: Hyperband, metric: Metric, runs: dict[str, tuple[str, list[Any]]]) -> list[str]:
    """W&B's stop_runs: runs are name -> (state, values); the names it stops, in order."""
    histories = {n: metric_history([{metric.name: v} for v in h], metric.name)
                 for n, (_, h) in runs.items()}
    running = [n for n, (state, _) in runs.items() if state == "running"]
    return list(decide(rule, metric, histories, running))


def test_hand_computed_example() -> None:
    # min_iter 2, eta 2: bands at history rows 2, 4, 8, ...; threshold = sorted(values at
    # the band)[int(n / 2)]. At band 2 the values are a 4, b 5, c 6, d 4.5 -> sorted
    # [4, 4.5, 5, 6], index int(4 / 2) = 2 -> threshold 5. c (6 > 5) stops, d (4.5) goes on.
    # At band 4 only a (2) and b (3) got there -> [2, 3][1] = 3; e is running at row 5 with
    # value 3.5 at band 4 -> stops when strict, goes on when not (its best so far is 1).
    rule = Hyperband(eta=2, min_iter=2)
    assert rule.bands()[:4] == (2, 4, 8, 16)
    runs: dict[str, tuple[str, list[Any]]] = {
        "a": ("finished", [5, 4, 3, 2]), "b": ("finished", [6, 5, 4, 3]),
        "c": ("running", [7, 6]), "d": ("running", [9, 4.5]),
        "e": ("running", [1, 7, 8, 3.5, 3])}
    # e's row-2 value 7 is in band 2 too: [4, 4.5, 5, 6, 7][2] = 5, still 5.
    verdicts = decide(rule, LOSS, {k: h for k, (_, h) in runs.items()},
                      [k for k, (s, _) in runs.items() if s == "running"])
    assert set(verdicts) == {"c", "e"}
    assert (verdicts["c"].band, verdicts["c"].value, verdicts["c"].threshold) == (2, 6, 5)
    assert (verdicts["e"].band, verdicts["e"].value, verdicts["e"].threshold) == (4, 3.5, 3)
    relaxed = Hyperband(eta=2, min_iter=2, strict=False)
    assert stops(relaxed, LOSS, runs) == ["c"]


def test_the_history_index_counts_rows_with_a_finite_metric_not_the_step_value() -> None:
    lines: list[dict[str, Any]] = [
        {"step": 10, "loss": 5}, {"step": 20}, {"step": 30, "loss": float("nan")},
        {"step": 40, "loss": "NaN"}, {"step": 50, "loss": True}, {"step": 60, "loss": 3}]
    assert metric_history(lines, "loss") == [5.0, 3.0]


@pytest.mark.parametrize(("rule", "bands"), [
    (Hyperband(eta=3, min_iter=3), (3, 9, 27)),
    (Hyperband(eta=3, max_iter=81, s=3), (3, 9, 27)),
    (Hyperband(eta=3, max_iter=18, s=2), (2, 6)),
    (Hyperband(eta=2, max_iter=5, s=2), (1, 2)),
    (Hyperband(eta=3, max_iter=9, s=2), (1, 3)),
    (Hyperband(eta=1.5, min_iter=30), (30, 45, 67)),
    (Hyperband(eta=3, max_iter=27, s=2), (3, 9)),
])
def test_bands_follow_wandbs_arithmetic(rule: Hyperband, bands: tuple[int, ...]) -> None:
    assert rule.bands()[:len(bands)] == bands


# W&B's own cases (tests/test_hyperband_stopping.py): runs as (state, history).
WANDB_CASES: list[tuple[str, Hyperband, Metric, dict[str, tuple[str, list[Any]]],
                        list[str]]] = [
    ("min_iter_bands", Hyperband(eta=3, min_iter=3), LOSS,
     {"run": ("running", [10] * 4), "run2": ("running", [10 - i for i in range(10)])}, ["run"]),
    ("min_iter_bands_max", Hyperband(eta=3, min_iter=3), Metric("accuracy", "maximize"),
     {"run": ("running", [10] * 4), "run2": ("running", [10 + i for i in range(10)])},
     ["run"]),
    ("max_iter_bands", Hyperband(eta=3, max_iter=81, s=3), LOSS,
     {"run": ("running", [10] * 4), "run2": ("running", [10 - i for i in range(10)])}, ["run"]),
    ("init_from_max_iter", Hyperband(eta=3, max_iter=18, s=2), LOSS,
     {"run": ("running", [10] * 4), "run2": ("running", [10 - i for i in range(10)])}, ["run"]),
    ("single_run", Hyperband(eta=3, max_iter=18, s=2, strict=False), LOSS,
     {"run": ("running", [10 - i for i in range(10)])}, []),
    ("2runs_band1_pass", Hyperband(eta=3, max_iter=18, s=2, strict=False), LOSS,
     {"run": ("running", [10, 10, 6]), "run2": ("running", [10 - i for i in range(10)])}, []),
    ("5runs_band1_stop_2", Hyperband(eta=2, max_iter=5, s=2), LOSS,
     {"a": ("finished", [10, 9]), "b": ("running", [10, 10]), "c": ("running", [10, 8, 8]),
      "d": ("running", [10, 7, 7]), "e": ("finished", [10, 6, 6])}, ["b"]),
    ("5runs_band1_stop_2_1stnoband", Hyperband(eta=2, max_iter=5, s=2), LOSS,
     {"a": ("finished", [10]), "b": ("running", [11]), "c": ("running", [10, 8, 8]),
      "d": ("running", [10, 7, 7]), "e": ("finished", [10, 6, 6])}, ["b", "c"]),
    ("eta_3", Hyperband(eta=3, max_iter=9, s=2, strict=False), LOSS,
     {"a": ("finished", [9, 8]), "b": ("running", [11, 11]), "c": ("running", [10, 8, 3]),
      "d": ("running", [10, 7, 4]), "e": ("running", [10, 6, 6])}, ["b", "e"]),
    ("eta_3_max", Hyperband(eta=3, max_iter=9, s=2, strict=False), Metric("loss", "maximize"),
     {"a": ("finished", [-10, -9]), "b": ("running", [-11, -11]),
      "c": ("running", [-10, -8, -5, -3]), "d": ("running", [-10, -6, -2]),
      "e": ("running", [-10, -6, -6, -6])}, ["b", "e"]),
    ("nan_metrics", Hyperband(eta=3, max_iter=300, s=2), Metric("loss", "minimize"),
     {"c": ("running", [19.68] + ["NaN"] * 56), "d": ("finished", [6.2, 6.0, 5.5, 5.1]),
      "e": ("finished", [6.7, 5.4, 4.8, 5.1])}, []),
]


@pytest.mark.parametrize(("name", "rule", "metric", "runs", "expected"), WANDB_CASES,
                         ids=[c[0] for c in WANDB_CASES])
def test_wandbs_own_cases(name: str, rule: Hyperband, metric: Metric,
                          runs: dict[str, tuple[str, list[Any]]], expected: list[str]) -> None:
    assert stops(rule, metric, runs) == expected


def hyper_data() -> list[list[float]]:
    return list(json.loads(HYPER_DATA.read_text())["metric"])


def test_wandbs_extensive_relaxed_case_stops_15_then_10_then_5() -> None:
    rule, metric = Hyperband(eta=1.5, min_iter=30, strict=False), Metric("metric", "maximize")
    data, stopped = hyper_data(), set()
    for rows_seen, expected in ((32, 15), (47, 10), (100, 5)):
        histories = {i: r[:rows_seen] for i, r in enumerate(data) if i not in stopped}
        now = decide(rule, metric, histories, histories)
        assert len(now) == expected
        stopped |= set(now)
    assert len(stopped) == 30


@pytest.mark.parametrize("shuffled", [False, True])
def test_wandbs_extensive_strict_case_stops_about_one_third_per_band(shuffled: bool) -> None:
    rule, metric = Hyperband(eta=1.5, min_iter=30), Metric("metric", "maximize")
    data = hyper_data()
    if shuffled:
        random.Random(0).shuffle(data)
    stopped: set[int] = set()
    expected_total = 0
    for band in rule.bands()[:3]:
        histories = {i: r[:band + 5] for i, r in enumerate(data) if i not in stopped}
        expected_total += int(len(histories) * (1 - 1 / 1.5))
        stopped |= set(decide(rule, metric, histories, histories))
    assert abs(len(stopped) - expected_total) <= 1


def test_the_stopper_tells_who_to_stop_and_why() -> None:
    asked: list[tuple[str, int, str]] = []
    stopper = HyperbandStopper(Hyperband(eta=2, min_iter=2), LOSS,
                               lambda t, a, why: asked.append((t, a, why)))
    stopper.finished("a", 1, rows(5, 4, 3, 2))
    stopper.finished("b", 1, rows(6, 5, 4, 3))
    stopper.observe("c", 1, rows(7))
    assert not asked
    stopper.observe("c", 1, rows(6))  # band 2: [4, 5, 6][1] = 5 < 6
    assert [(t, a) for t, a, _ in asked] == [("c", 1)]
    assert "loss at step 2, 6, is not in the top 1/2 of the 3 trials there (threshold 5" \
        in asked[0][2]
    stopper.observe("c", 1, rows(1, 1, 1))  # lines after the stop change nothing
    assert len(asked) == 1


def test_a_new_value_at_a_band_can_stop_a_trial_that_passed_it_before() -> None:
    asked: list[str] = []
    stopper = HyperbandStopper(Hyperband(eta=2, min_iter=2), LOSS,
                               lambda t, a, why: asked.append(t))
    stopper.observe("slow", 1, rows(9, 5, 5))  # alone at band 2: threshold 5, passes
    stopper.observe("fast", 1, rows(9, 1))  # band 2 now [1, 5][1] = 5: slow still passes
    stopper.observe("fast2", 1, rows(9, 2))  # [1, 2, 5][1] = 2: slow (5 > 2) is stopped
    assert asked == ["slow"]


Event = tuple[str, int, list[float]]


@st.composite
def events(draw: st.DrawFn) -> tuple[Hyperband, Metric, list[Event]]:
    rule = draw(st.sampled_from([Hyperband(eta=2, min_iter=1), Hyperband(eta=3, min_iter=2),
                                 Hyperband(eta=2, max_iter=9, s=3, strict=False),
                                 Hyperband(eta=1.5, min_iter=2, strict=False)]))
    metric = draw(st.sampled_from([LOSS, Metric("loss", "maximize")]))
    out: list[Event] = []
    for _ in range(draw(st.integers(1, 40))):
        kind = draw(st.sampled_from([0, 0, 0, 1]))  # mostly lines, sometimes an end
        values = draw(st.lists(st.integers(0, 9).map(float), min_size=1, max_size=3))
        out.append((draw(st.sampled_from("abcdef")), kind, values))
    return rule, metric, out


@settings(max_examples=300, deadline=None, derandomize=True)
@given(events())
def test_the_incremental_stopper_decides_like_the_whole_snapshot_rule(
        case: tuple[Hyperband, Metric, list[Event]]) -> None:
    rule, metric, sequence = case
    stopped_now: list[str] = []
    stopper = HyperbandStopper(rule, metric, lambda t, a, why: stopped_now.append(t))
    histories: dict[str, list[float]] = {}
    running: set[str] = set()
    ended: set[str] = set()
    for name, kind, values in sequence:
        if name in ended:
            continue
        stopped_now.clear()
        histories.setdefault(name, [])
        if kind == 0:
            running.add(name)
            histories[name] += values
            stopper.observe(name, 1, [{"loss": v} for v in values])
        else:
            running.discard(name)
            ended.add(name)
            histories[name] += values
            stopper.finished(name, 1, [{"loss": v} for v in histories[name]])
        # W&B checks after every line; the snapshot after a batch equals the last check
        # once the trials it would have stopped earlier are out of the running set
        expected = _replay(rule, metric, histories, running, name, kind, values)
        assert sorted(stopped_now) == sorted(expected), (sequence, name)
        for stopped in stopped_now:
            running.discard(stopped)
            ended.add(stopped)


def _replay(rule: Hyperband, metric: Metric, histories: dict[str, list[float]],
            running: set[str], name: str, kind: int, values: list[float]) -> list[str]:
    """W&B's rule applied after each of the event's lines in turn."""
    base = {k: list(v) for k, v in histories.items()}
    base[name] = base[name][:len(base[name]) - len(values)]
    live = set(running)
    out: list[str] = []
    for value in values:
        base[name].append(value)
        for key in decide(rule, metric, base, sorted(live)):
            out.append(key)
            live.discard(key)
    return out
