"""method: bayes through the runner with an in-process backend (no Docker): the sampler is
asked when a slot frees and told each result; run_cap, determinism, resume from the run's
records, impute, pruned trials and metric.target."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from launcher.backends.base import WorkQueue
from launcher.runner import RetryPolicy, Runner
from launcher.search.adaptive import AdaptiveSearch, adaptive_plan
from launcher.search.outcome import (
    COMPLETE,
    FAILED,
    PRUNED,
    ReplicaOutcome,
    Worst,
    config_outcome,
)
from launcher.spec import SweepSpec, load_sweep
from launcher.store import PlanFile, RunDir
from launcher.trial import Trial, TrialResult, TrialStatus
from launcher.wandb_keys import Metric
from tests.fake_backend import FakeBackend

S = TrialStatus.SUCCEEDED
Objective = Callable[[dict[str, Any]], float | None]


def branin(p: dict[str, Any]) -> float | None:
    x1, x2 = float(p["x1"]), float(p["x2"])
    a, b, c, r, s, t = 1.0, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return a * (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


def sweep(tmp_path: Path, extra: str = "", run_cap: int = 12, name: str = "s") -> SweepSpec:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nmethod: bayes\nrun_cap: {run_cap}\nseed: 7\n"
                    "metric: {name: loss, goal: minimize}\n"
                    "parameters:\n  x1: {min: -5.0, max: 10.0}\n  x2: {min: 0.0, max: 15.0}\n"
                    + extra)
    return load_sweep(path)


class SlotBackend(FakeBackend):
    """``slots`` trials at a time, finished oldest first, metric from ``objective``; like
    the Docker backend it settles results with the queue before it refills the slot."""

    def __init__(self, objective: Objective, slots: int = 1,
                 status: Callable[[Trial], TrialStatus] = lambda t: S,
                 stop_after: int | None = None) -> None:
        super().__init__(lambda t, a: (S, 0))
        self.objective, self.slots, self.status = objective, slots, status
        self.stop_after = stop_after
        self.in_flight: list[int] = []

    def launch(self, queue: WorkQueue) -> Iterator[TrialResult]:
        running: list[Trial] = []
        finished = 0
        while not self.cancelled:
            while len(running) < self.slots and (work := queue.pop_ready()) is not None:
                self.started.append((work.trial.trial_id, work.attempt))
                running.append(work.trial)
            self.in_flight.append(len(running))
            if not running:
                return
            trial = running.pop(0)
            status = self.status(trial)
            value = self.objective(trial.nested_params())
            history = [{"step": 1, "loss": value}] if value is not None else []
            result = TrialResult(trial.trial_id, status, exit_code=0 if status is S else 1,
                                 metrics={"loss": value} if status is S else {},
                                 history=history)
            queue.settle([result])
            yield result
            finished += 1
            if self.stop_after is not None and finished >= self.stop_after:
                return  # the launcher "dies": whatever runs stays unrecorded


def new_run(tmp_path: Path, spec: SweepSpec) -> RunDir:
    run = RunDir.create(tmp_path / "results", spec.folder)
    (run.path / "manifest.json").write_text("{}")
    (run.path / "plan.json").write_text("{}")
    return run


def run_search(tmp_path: Path, spec: SweepSpec, backend: SlotBackend,
               run: RunDir | None = None) -> tuple[RunDir, AdaptiveSearch]:
    run = run or new_run(tmp_path, spec)
    search = AdaptiveSearch(spec, run)
    Runner(backend, run, RetryPolicy(), target=spec.metric, search=search).execute([])
    return run, search


def configs(run: RunDir) -> list[tuple[float, float]]:
    return [(a.params["x1"], a.params["x2"]) for a in run.asked()]


def test_with_one_slot_and_a_seed_two_runs_suggest_the_same_configurations(
        tmp_path: Path) -> None:
    spec = sweep(tmp_path)
    first, _ = run_search(tmp_path / "a", spec, SlotBackend(branin))
    second, _ = run_search(tmp_path / "b", spec, SlotBackend(branin))
    assert len(configs(first)) == 12 and configs(first) == configs(second)
    other, _ = run_search(tmp_path / "c", replace(spec, seed=8), SlotBackend(branin))
    assert configs(other) != configs(first)


def test_the_sampler_is_asked_as_slots_free_and_run_cap_bounds_the_trials(
        tmp_path: Path) -> None:
    spec = sweep(tmp_path, "replicas: 2\n", run_cap=9)
    backend = SlotBackend(branin, slots=4)
    run, search = run_search(tmp_path, spec, backend)
    assert len(run.asked()) == 9 and search.told == 9
    assert len(backend.started) == 18 and len(run.best()) == 18
    assert max(backend.in_flight) == 4 and backend.in_flight.count(4) >= 6
    for asked in run.asked():  # replicas share the configuration, seeds differ
        assert [r for _, r, _ in asked.trials] == [0, 1]
        assert [s for _, _, s in asked.trials] == [7, 8]


def test_tpe_finds_better_configurations_than_its_random_start(tmp_path: Path) -> None:
    spec = sweep(tmp_path, run_cap=40)
    run, search = run_search(tmp_path, spec, SlotBackend(branin, slots=4))
    values = [branin(a.params) for a in run.asked()]
    assert min(v for v in values[20:] if v is not None) < min(v for v in values[:10]
                                                              if v is not None)
    assert search.study.best_value == pytest.approx(min(v for v in values if v is not None))


def test_resume_rebuilds_the_history_repeats_nothing_and_keeps_run_cap(tmp_path: Path) -> None:
    spec = sweep(tmp_path, run_cap=10)
    backend = SlotBackend(branin, slots=3, stop_after=5)  # dies with trials in flight
    run, _ = run_search(tmp_path, spec, backend)
    finished = {r.trial_id for r in run.best().values() if r.status.terminal}
    asked_before = len(run.asked())
    assert len(finished) == 5 and asked_before > 5
    search, asked = AdaptiveSearch.open(spec, run)
    assert search.asked == asked_before and search.told == 5
    assert len(search.study.trials) == asked_before
    pending = [t for t in asked if t.trial_id not in finished]
    resumed = SlotBackend(branin, slots=3)
    Runner(resumed, run, RetryPolicy(), search=search).execute(pending)
    started = [t for t, _ in resumed.started]
    assert not set(started) & finished, "a finished trial ran again"
    assert set(started) >= {t.trial_id for t in pending}
    assert len(run.asked()) == 10 and len(run.best()) == 10
    ids = [t for a in run.asked() for t, _, _ in a.trials]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("sampler", ["tpe", "qmc"])
def test_a_resumed_run_with_one_slot_suggests_what_a_whole_one_does(tmp_path: Path,
                                                                     sampler: str) -> None:
    """QMC continues its sequence; TPE (seeded per suggestion) repeats no start-up draw."""
    spec = sweep(tmp_path, f"sampler: {sampler}\n", run_cap=14)
    run, _ = run_search(tmp_path, spec, SlotBackend(branin, stop_after=4))
    search, asked = AdaptiveSearch.open(spec, run)
    Runner(SlotBackend(branin), run, RetryPolicy(), search=search).execute(
        [t for t in asked if t.trial_id not in run.best()])
    points = configs(run)
    assert len(points) == 14 and len(set(points)) == 14
    whole, _ = run_search(tmp_path / "whole", spec, SlotBackend(branin))
    assert configs(whole) == points


@pytest.mark.parametrize("sampler", ["tpe", "random", "cmaes", "qmc"])
def test_every_installed_sampler_searches(tmp_path: Path, sampler: str) -> None:
    spec = sweep(tmp_path, f"sampler: {sampler}\n", run_cap=14)
    run, search = run_search(tmp_path, spec, SlotBackend(branin, slots=2))
    assert len(run.asked()) == 14 and search.told == 14
    for a in run.asked():
        assert -5 <= a.params["x1"] <= 10 and 0 <= a.params["x2"] <= 15


def test_metric_target_stops_asking(tmp_path: Path) -> None:
    spec = sweep(tmp_path, run_cap=40)
    target = replace(spec, metric=Metric("loss", "minimize", target=50.0))
    run = new_run(tmp_path, target)
    search = AdaptiveSearch(target, run)
    outcome = Runner(SlotBackend(branin, slots=2), run, RetryPolicy(), target=target.metric,
                     search=search).execute([])
    assert outcome.target_reached and not outcome.stopped
    reached = [i for i, a in enumerate(run.asked()) if (branin(a.params) or 99) <= 50]
    # nothing is asked after the first success that reaches it; the other slot finishes
    assert reached and len(run.asked()) <= reached[0] + 2 < 40


def test_failed_trials_are_imputed_worst_and_stopped_ones_told_as_pruned(tmp_path: Path) -> None:
    spec = sweep(tmp_path, run_cap=6)

    def status(t: Trial) -> TrialStatus:
        return {1: TrialStatus.FAILED, 3: TrialStatus.STOPPED}.get(t.index, S)

    run, search = run_search(tmp_path, spec, SlotBackend(branin, status=status))
    states = [t.state.name for t in search.study.trials]
    assert states == ["COMPLETE", "COMPLETE", "COMPLETE", "PRUNED", "COMPLETE", "COMPLETE"]
    first = branin(run.asked()[0].params)
    second = search.study.trials[1].value
    assert second is not None and first is not None
    # the failure wrote a history line: worst of every value seen so far
    assert second == max(first, branin(run.asked()[1].params) or 0)
    pruned = search.study.trials[3]
    assert pruned.intermediate_values == {1: branin(run.asked()[3].params)}
    reopened, _ = AdaptiveSearch.open(spec, run)
    assert [t.state.name for t in reopened.study.trials] == states
    assert [t.value for t in reopened.study.trials] == [t.value for t in search.study.trials]


def outcome(status: TrialStatus, value: float | None, *history: float) -> ReplicaOutcome:
    return ReplicaOutcome(status, value, tuple(history))


def test_impute_follows_wandbs_strategies() -> None:
    failed = outcome(TrialStatus.FAILED, None, 5.0, 3.0, 4.0)
    for goal, impute, expected in (("minimize", "worst", 9.0), ("maximize", "worst", 1.0),
                                   ("minimize", "best", 3.0), ("maximize", "best", 5.0),
                                   ("minimize", "latest", 4.0)):
        metric = Metric("loss", goal, impute=impute)
        worst = Worst(metric)
        for seen in (outcome(S, 2.0, 9.0, 1.0), failed):
            worst.see(seen)
        told = config_outcome([failed], metric, worst)
        assert (told.state, told.value) == (COMPLETE, expected), (goal, impute)
    nothing = outcome(TrialStatus.FAILED, None)
    for impute in ("worst", "best", "latest"):
        metric = Metric("loss", "minimize", impute=impute)
        assert config_outcome([nothing], metric, Worst(metric)).state == FAILED


def test_replicas_are_told_as_their_mean_once_all_ended() -> None:
    metric = Metric("loss", "minimize")
    told = config_outcome([outcome(S, 1.0), outcome(S, 3.0),
                           outcome(TrialStatus.FAILED, None)], metric, Worst(metric))
    assert (told.state, told.value) == (COMPLETE, 2.0)
    pruned = config_outcome([outcome(S, 1.0), outcome(TrialStatus.STOPPED, None, 8, 6),
                             outcome(TrialStatus.STOPPED, None, 9, 7, 5)], metric,
                            Worst(metric))
    assert (pruned.state, pruned.value, pruned.step) == (PRUNED, 5.5, 2)


def test_plan_json_records_the_search_space(tmp_path: Path) -> None:
    spec = sweep(tmp_path, "  opt: {values: [adam, sgd]}\n  epochs: 3\n")
    plan = PlanFile.of([], [p.name for p in spec.parameters], adaptive=adaptive_plan(spec))
    raw = plan.to_json()
    assert raw["version"] == 2 and raw["trials"] == []
    assert raw["adaptive"]["run_cap"] == 12 and raw["adaptive"]["sampler"] == "tpe"
    space = {d["name"]: d["searched_as"] for d in raw["adaptive"]["space"]}
    assert space == {"x1": "float [-5, 10]", "x2": "float [0, 15]",
                     "opt": "categorical over 2 values", "epochs": "constant (not searched)"}
    assert PlanFile.from_json(raw, "plan.json").adaptive == plan.adaptive
