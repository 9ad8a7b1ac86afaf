"""What the sampler is told about a finished configuration (pure, no Optuna).

A configuration is told once all its replicas have a final status:

- any replica stopped early (hyperband): ``pruned``, with the mean of the stopped
  replicas' last values as its intermediate value at the smallest step they reached;
- else any replica succeeded with a finite metric: ``complete``, the mean over those;
- else (failed, timed out, OOM-killed, or no metric): W&B's ``metric.impute`` --
  ``worst``: the worst value any finished trial has shown so far (history and final,
  W&B's "worst extremum"); ``best``: the replicas' own best values; ``latest``: their
  last history values -- and ``failed`` when there is nothing to impute from (W&B
  imputes 0 there, which would mislead a sampler).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from launcher.search.hyperband import is_number, metric_history
from launcher.trial import TrialStatus
from launcher.wandb_keys import Metric

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"


@dataclass(frozen=True)
class ReplicaOutcome:
    """One replica's final status, metric value and metric history."""

    status: TrialStatus
    value: float | None
    history: tuple[float, ...] = ()

    @classmethod
    def of(cls, status: TrialStatus, metrics: dict[str, Any],
           history: list[dict[str, Any]], metric: Metric) -> ReplicaOutcome:
        value: Any = metrics.get(metric.name)
        return cls(status, float(value) if is_number(value) else None,
                   tuple(metric_history(history, metric.name)))

    def values(self) -> list[float]:
        return [*self.history, *([self.value] if self.value is not None else [])]


@dataclass(frozen=True)
class Told:
    state: str  # COMPLETE, PRUNED or FAILED
    value: float | None = None
    step: int | None = None  # PRUNED: the history index of ``value``


class Worst:
    """The worst metric value of any finished trial so far (for ``impute: worst``)."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric
        self.value: float | None = None

    def see(self, replica: ReplicaOutcome) -> None:
        for v in replica.values():
            if self.value is None or self.metric.better(self.value, v):
                self.value = v


def config_outcome(replicas: list[ReplicaOutcome], metric: Metric, worst: Worst) -> Told:
    """What to tell the sampler about a configuration whose replicas all ended."""
    stopped = [r for r in replicas if r.status is TrialStatus.STOPPED and r.history]
    if any(r.status is TrialStatus.STOPPED for r in replicas):
        if not stopped:
            return Told(PRUNED)
        return Told(PRUNED, fmean(r.history[-1] for r in stopped),
                    min(len(r.history) for r in stopped))
    done = [r.value for r in replicas if r.status is TrialStatus.SUCCEEDED and
            r.value is not None]
    if done:
        return Told(COMPLETE, fmean(done))
    return _imputed(replicas, metric, worst)


def _imputed(replicas: list[ReplicaOutcome], metric: Metric, worst: Worst) -> Told:
    if metric.impute == "worst":
        return Told(COMPLETE, worst.value) if worst.value is not None else Told(FAILED)
    pick = max if metric.goal == "maximize" else min
    if metric.impute == "best":
        own = [pick(r.values()) for r in replicas if r.values()]
    else:  # latest
        own = [r.history[-1] for r in replicas if r.history]
    own = [v for v in own if math.isfinite(v)]
    return Told(COMPLETE, fmean(own)) if own else Told(FAILED)
