"""method: bayes -- Optuna's ask-and-tell beside the work queue.

Whenever the queue runs dry (a slot freed up), :meth:`AdaptiveSearch.ask` asks the
sampler for one configuration, records it durably (an ``asked`` record) and returns its
trials, one per replica; :meth:`tell` takes each final result, and once every replica
of a configuration has one, the sampler is told (see :mod:`launcher.search.outcome`).
Trials in flight are known to the sampler as running (TPE's constant liar keeps a batch
of suggestions apart), so the trials in flight stay at the slots.

Resume: :meth:`open` rebuilds the study from the run's own records -- every asked
configuration with what the sampler suggested and, from the attempt records and
history files, how it ended -- so the search goes on where it stopped, ``run_cap``
counts every configuration ever asked, and the asked ones without a final result run
again under their own trial ids (never a finished one).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from launcher.errors import RunError
from launcher.plan import config_trials
from launcher.search.outcome import (
    COMPLETE,
    PRUNED,
    ReplicaOutcome,
    Told,
    Worst,
    config_outcome,
)
from launcher.search.samplers import make_sampler
from launcher.search.space import Dimension, search_space
from launcher.spec import SweepSpec
from launcher.store import AdaptivePlan, AskedConfig, RunDir, TrialRecord
from launcher.trial import Trial, TrialResult


def adaptive_plan(spec: SweepSpec) -> AdaptivePlan:
    """What plan.json records of an adaptive sweep: its search space."""
    dims = {d.name: d for d in search_space(spec.parameters)}
    space = tuple({"name": p.name, "distribution": p.kind,
                   "searched_as": dims[p.name].describe() if p.name in dims else
                   "constant (not searched)"} for p in spec.parameters)
    assert spec.run_cap is not None
    return AdaptivePlan(spec.method, spec.sampler, spec.run_cap, spec.replicas, space)


@dataclass
class _Asked:
    """A configuration in flight: its Optuna trial and the replicas' outcomes so far."""

    number: int
    trial: Any  # optuna.Trial
    trial_ids: tuple[str, ...]
    outcomes: dict[str, ReplicaOutcome] = field(default_factory=dict)


class AdaptiveSearch:
    """Asks Optuna for configurations and tells it results (thread-safe)."""

    def __init__(self, spec: SweepSpec, run: RunDir) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        assert spec.metric is not None and spec.run_cap is not None
        self.spec, self.run, self.metric = spec, run, spec.metric
        self.dims: list[Dimension] = search_space(spec.parameters)
        self._distributions: dict[str, Any] = {d.name: d.distribution() for d in self.dims}
        direction = optuna.study.StudyDirection.MAXIMIZE if spec.metric.goal == "maximize" \
            else optuna.study.StudyDirection.MINIMIZE
        self.study = optuna.create_study(direction=direction,
                                         sampler=self._sampler(0))
        self._lock = threading.Lock()
        self._open: dict[str, _Asked] = {}  # trial_id -> its configuration, until told
        self._worst = Worst(spec.metric)
        self.asked = 0
        self.told = 0

    @property
    def run_cap(self) -> int:
        assert self.spec.run_cap is not None
        return self.spec.run_cap

    def _sampler(self, number: int) -> Any:
        return make_sampler(self.spec.sampler, self.spec.seed, number, self._distributions)

    def remaining(self) -> int:
        """Configurations still to ask (run_cap counts every one ever asked)."""
        return max(0, self.run_cap - self.asked)

    # -- asking --------------------------------------------------------------------------
    def ask(self) -> list[Trial]:
        """The next configuration's trials, recorded before they are returned; [] once
        run_cap configurations were asked."""
        with self._lock:
            if not self.remaining():
                return []
            number = self.asked
            self.study.sampler = self._sampler(number)
            optuna_trial = self.study.ask(self._distributions)
            suggested = dict(optuna_trial.params)
            trials = self._trials(number, suggested)
            self.run.ask(AskedConfig(number, trials[0].config_id, trials[0].nested_params(),
                                     tuple((t.trial_id, t.replica, t.seed) for t in trials),
                                     suggested))
            self.asked += 1
            self._track(number, optuna_trial, trials)
            return trials

    def _trials(self, number: int, suggested: dict[str, Any]) -> list[Trial]:
        dims = {d.name: d for d in self.dims}
        params = tuple((p.name, dims[p.name].value(suggested[p.name]) if p.name in dims
                        else p.value) for p in self.spec.parameters)
        return config_trials(self.spec, params, f"ask:{number}", number * self.spec.replicas)

    def _track(self, number: int, optuna_trial: Any, trials: list[Trial]) -> None:
        entry = _Asked(number, optuna_trial, tuple(t.trial_id for t in trials))
        for t in trials:
            self._open[t.trial_id] = entry

    # -- telling -------------------------------------------------------------------------
    def tell(self, result: TrialResult) -> None:
        """A final result of one of this search's trials (others are ignored; so is a
        result that is not final: the trial runs again)."""
        if not result.status.terminal:
            return
        self.tell_outcome(result.trial_id, ReplicaOutcome.of(
            result.status, result.metrics, result.history, self.metric))

    def tell_outcome(self, trial_id: str, outcome: ReplicaOutcome) -> None:
        with self._lock:
            entry = self._open.pop(trial_id, None)
            if entry is None:
                return
            self._worst.see(outcome)
            entry.outcomes[trial_id] = outcome
            if len(entry.outcomes) < len(entry.trial_ids):
                return
            told = config_outcome([entry.outcomes[t] for t in entry.trial_ids], self.metric,
                                  self._worst)
            _tell(self.study, entry.trial, told)
            self.told += 1

    # -- resume --------------------------------------------------------------------------
    @classmethod
    def open(cls, spec: SweepSpec, run: RunDir) -> tuple[AdaptiveSearch, list[Trial]]:
        """The search of a run that already asked configurations, rebuilt from its
        records, and every trial it asked for (those without a final record run again;
        the sampler knows them as running until they end)."""
        search = cls(spec, run)
        best = run.best()
        asked_trials: list[Trial] = []
        for asked in run.asked():
            asked_trials += search._restore(asked, best)
        return search, asked_trials

    def _restore(self, asked: AskedConfig, best: dict[str, TrialRecord]) -> list[Trial]:
        import optuna

        trials = self._check(asked)
        finals = {t.trial_id: best[t.trial_id] for t in trials
                  if t.trial_id in best and best[t.trial_id].status.terminal}
        self.asked = max(self.asked, asked.number + 1)
        if len(finals) < len(trials):
            self.study.enqueue_trial(asked.suggested)
            self._track(asked.number, self.study.ask(self._distributions), trials)
            for trial_id, record in finals.items():  # replicas that did finish
                self.tell_outcome(trial_id, self._outcome(record))
            return trials
        outcomes = [self._outcome(finals[t.trial_id]) for t in trials]
        for outcome in outcomes:
            self._worst.see(outcome)
        told = config_outcome(outcomes, self.metric, self._worst)
        state = {COMPLETE: optuna.trial.TrialState.COMPLETE,
                 PRUNED: optuna.trial.TrialState.PRUNED}.get(told.state,
                                                             optuna.trial.TrialState.FAIL)
        self.study.add_trial(optuna.trial.create_trial(
            state=state, value=told.value if told.state in (COMPLETE, PRUNED) else None,
            params=asked.suggested, distributions=self._distributions,
            intermediate_values={told.step: told.value} if told.state == PRUNED and
            told.step is not None and told.value is not None else None))
        self.told += 1
        return trials

    def _check(self, asked: AskedConfig) -> list[Trial]:
        """The asked configuration's trials, made again; they must keep their ids."""
        params = tuple((p.name, _lookup(asked.params, p.key_path))
                       for p in self.spec.parameters)
        trials = config_trials(self.spec, params, f"ask:{asked.number}",
                               asked.number * self.spec.replicas)
        if [t.trial_id for t in trials] != [t for t, _, _ in asked.trials] or \
                set(asked.suggested) != set(self._distributions):
            raise RunError(f"run {self.run.run_id}'s asked configuration {asked.number} no "
                           "longer makes the same trials", run=str(self.run.path),
                           hint="was the launcher or the sweep changed? start a new run")
        return trials

    def _outcome(self, record: TrialRecord) -> ReplicaOutcome:
        return ReplicaOutcome.of(record.status, record.metrics,
                                 self.run.history(record.trial_id), self.metric)


def _tell(study: Any, trial: Any, told: Told) -> None:
    import optuna

    if told.state == COMPLETE:
        study.tell(trial, told.value)
    elif told.state == PRUNED:
        if told.value is not None and told.step is not None:
            trial.report(told.value, told.step)
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)


def _lookup(nested: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = nested
    for part in path:
        node = node[part]
    return node
