"""How much container time early termination saved, estimated from a run's records (pure).

A stopped trial that ran ``k`` of its history steps would have run on to ``N`` steps, the
length of the trials that finished (the longest history among them; among all trials when
none finished yet), for ``N - k`` more steps at the seconds per step of the finished
trials (their median; the stopped trial's own pace when none finished). A container's
start and its job's set-up are paid either way, so they are not counted as saved.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from launcher.store import TrialRecord
from launcher.trial import TrialStatus


@dataclass(frozen=True)
class Savings:
    stopped: int  # trials stopped early
    used_s: float  # container-seconds of every recorded attempt
    saved_s: float  # estimated container-seconds the stopped trials did not run

    @property
    def share(self) -> float:
        """Saved, as a share of what the run would have used without stopping."""
        total = self.used_s + self.saved_s
        return self.saved_s / total if total else 0.0

    def text(self) -> str:
        return (f"{self.stopped} trial{'s' if self.stopped != 1 else ''} stopped early, about "
                f"{self.saved_s:.0f} container-seconds saved ({self.share:.0%} of an estimated "
                f"{self.used_s + self.saved_s:.0f} s without early termination)")


def estimate(records: Iterable[TrialRecord]) -> Savings | None:
    """The savings of a run's records (every attempt); None when nothing was stopped."""
    records = list(records)
    stopped = [r for r in records if r.status is TrialStatus.STOPPED]
    if not stopped:
        return None
    done = [r for r in records if r.status is TrialStatus.SUCCEEDED and r.steps]
    full = max(r.steps or 0 for r in (done or records))
    paces = [r.duration_s / r.steps for r in done if r.duration_s and r.steps]
    pace = statistics.median(paces) if paces else None
    saved = 0.0
    for r in stopped:
        if r.steps and r.duration_s and full > r.steps:
            saved += (full - r.steps) * (pace if pace is not None else r.duration_s / r.steps)
    used = sum(r.duration_s or 0.0 for r in records)
    return Savings(len(stopped), round(used, 3), round(saved, 3))
