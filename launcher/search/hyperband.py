"""W&B's hyperband stopping rule, fed with the live metric lines of running trials.

The rule, as W&B's engine applies it (``sweeps/hyperband_stopping.py``): a trial's
history is the list of its metric's values, one per history line that holds a finite
number (the index counts such lines; the ``step`` value itself is not used). At each band
b, the threshold is ``sorted(values at index b of every trial that got there)[int(n /
eta)]``, values negated for ``goal: maximize``; running, finished and stopped trials all
count. A running trial is stopped when its best value so far (or, with ``strict``, W&B's
default, its value at the band) is worse than the threshold of the highest band it has
reached.

:func:`decide` is that rule over a whole snapshot, line for line W&B's arithmetic.
:class:`HyperbandStopper` keeps the same state incrementally, so a new line costs a
list append, and a sort only when the line lands on a band: thresholds only change when a
value is added at a band, and a trial's verdict only when it reaches a band or its band's
threshold changes, so checking then gives W&B's answers at every line.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from launcher.wandb_keys import Hyperband, Metric

Key = tuple[str, int]  # (trial_id, attempt): a retried trial is a new run, as in W&B
StopRequest = Callable[[str, int, str], None]  # trial_id, attempt, reason


def is_number(value: Any) -> bool:
    """W&B's ``is_number``: a finite int or float, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool) and \
        math.isfinite(value)


def metric_history(rows: Iterable[Mapping[str, Any]], name: str) -> list[float]:
    """The metric's values, one per history row that holds a finite number."""
    return [float(r[name]) for r in rows if name in r and is_number(r[name])]


def threshold(values: list[float], eta: float) -> float:
    """W&B's threshold over the (sign-adjusted) values at one band."""
    if not values:
        return math.inf
    return sorted(values)[int(1.0 / eta * len(values))]


@dataclass(frozen=True)
class Verdict:
    """Why a trial is stopped, in the metric's own sign."""

    band: int
    value: float
    threshold: float
    reached: int  # trials with a value at the band

    def reason(self, rule: Hyperband, metric: Metric) -> str:
        what = "its value" if rule.strict else "its best value so far"
        return (f"stopped early by hyperband: {what} of {metric.name} at step {self.band}, "
                f"{self.value:.6g}, is not in the top 1/{rule.eta:g} of the {self.reached} "
                f"trials there (threshold {self.threshold:.6g}, {metric.goal})")


def decide(rule: Hyperband, metric: Metric, histories: Mapping[Any, list[float]],
           running: Iterable[Any]) -> dict[Any, Verdict]:
    """Which running trials W&B's engine stops, given every trial's metric history."""
    sign = -1.0 if metric.goal == "maximize" else 1.0
    signed = {k: [sign * v for v in h] for k, h in histories.items() if h}
    bands = rule.bands()
    limits = [threshold([h[b - 1] for h in signed.values() if len(h) >= b], rule.eta)
              for b in bands]
    out = {}
    for key in running:
        history = signed.get(key, [])
        reached = [(b, t) for b, t in zip(bands, limits, strict=True) if b <= len(history)]
        if not reached:
            continue
        band, limit = reached[-1]
        value = history[band - 1] if rule.strict else min(history)
        if value > limit:
            n = sum(len(h) >= band for h in signed.values())
            out[key] = Verdict(band, sign * value, sign * limit, n)
    return out


@dataclass
class _Trial:
    history: list[float] = field(default_factory=list)  # sign-adjusted
    running: bool = True


class HyperbandStopper:
    """Incremental :func:`decide`, thread-safe (live lines arrive on many threads).

    ``observe`` takes a running trial's new history rows; ``finished`` a trial's whole
    history when it ends (also after a resume, for the trials already done). ``stop`` is
    called, outside the lock, for each trial the rule stops.
    """

    def __init__(self, rule: Hyperband, metric: Metric, stop: StopRequest) -> None:
        self.rule, self.metric, self._stop = rule, metric, stop
        self._sign = -1.0 if metric.goal == "maximize" else 1.0
        self.bands = rule.bands()
        self._at_band = {b: i for i, b in enumerate(self.bands)}
        self._values: list[list[float]] = [[] for _ in self.bands]  # sorted, per band
        self._trials: dict[Key, _Trial] = {}
        self._lock = threading.Lock()
        self.stopped: dict[Key, Verdict] = {}

    def observe(self, trial_id: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> None:
        values = metric_history(rows, self.metric.name)
        if not values:
            return
        with self._lock:
            trial = self._trials.setdefault((trial_id, attempt), _Trial())
            if not trial.running:
                return  # a late line after the trial ended
            verdicts = self._extend((trial_id, attempt), trial, values)
        self._request(verdicts)

    def finished(self, trial_id: str, attempt: int, rows: Iterable[Mapping[str, Any]]) -> None:
        """The trial ended: its whole history counts (lines not seen live are added)."""
        values = metric_history(rows, self.metric.name)
        with self._lock:
            trial = self._trials.setdefault((trial_id, attempt), _Trial())
            trial.running = False
            verdicts = self._extend((trial_id, attempt), trial, values[len(trial.history):])
        self._request(verdicts)

    def _extend(self, key: Key, trial: _Trial, values: list[float]) -> dict[Key, Verdict]:
        verdicts: dict[Key, Verdict] = {}
        for value in values:
            trial.history.append(self._sign * value)
            band = len(trial.history)
            if band in self._at_band:
                bisect.insort(self._values[self._at_band[band]], trial.history[-1])
                verdicts.update(self._check_band(band))
        return verdicts

    def _check_band(self, band: int) -> dict[Key, Verdict]:
        """The running trials whose highest band is ``band``, against its threshold."""
        index = self._at_band[band]
        values = self._values[index]
        limit = values[int(1.0 / self.rule.eta * len(values))]
        upper = self.bands[index + 1] if index + 1 < len(self.bands) else math.inf
        out = {}
        for key, trial in self._trials.items():
            if not trial.running or key in self.stopped or not band <= len(trial.history) \
                    < upper:
                continue
            value = trial.history[band - 1] if self.rule.strict else min(trial.history)
            if value > limit:
                out[key] = Verdict(band, self._sign * value, self._sign * limit, len(values))
                trial.running = False  # stopped: no longer checked, its history still counts
                self.stopped[key] = out[key]
        return out

    def _request(self, verdicts: dict[Key, Verdict]) -> None:
        for (trial_id, attempt), verdict in verdicts.items():
            self._stop(trial_id, attempt, verdict.reason(self.rule, self.metric))

    def thresholds(self) -> list[float]:
        """The current threshold per band, in the metric's own sign (for reports)."""
        with self._lock:
            return [self._sign * threshold(v, self.rule.eta) for v in self._values]
