"""Drive a backend through a run: record every result durably, retry, stop on request.

Policy lives here, placement lives in the backend: failed trials are retried with
exponential backoff (``retries``, except ``no_retry_exit_codes``); trials lost to an
infrastructure fault are requeued without using a retry; ``max_consecutive_failures``
and ``deadline`` stop the sweep; the first SIGINT, SIGTERM or SIGHUP stops it gracefully
(running containers stopped, recorded as cancelled), a second one exits at once (see
:mod:`launcher.interrupts`). Once a finished trial reaches ``metric.target`` no new trial
starts and running ones finish (as in W&B); that is a normal end, not a stop.

Adaptive search (``search``) sits beside the queue: the queue asks it for the next
configuration when a freed slot finds nothing ready, and it is told each final result
once (as the backend settles it, before the slot refills, or when it is handled).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from launcher.backends.base import AllWorkersLost, Backend, WorkQueue
from launcher.errors import LauncherError
from launcher.interrupts import Interrupts
from launcher.store import RunDir
from launcher.trial import Trial, TrialResult, TrialStatus
from launcher.wandb_keys import Metric

MAX_LOST_REQUEUES = 3  # a trial lost this often is recorded as lost for good
BACKOFF_CAP = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 0
    no_retry_exit_codes: tuple[int, ...] = ()
    backoff: float = 1.0
    max_consecutive_failures: int | None = None
    deadline: float | None = None

    def delay(self, failures: int) -> float:
        return float(min(BACKOFF_CAP, self.backoff * 2.0 ** max(0, failures - 1)))


class Search(Protocol):
    """Adaptive search as the runner sees it (launcher.search.adaptive.AdaptiveSearch)."""

    def ask(self) -> list[Trial]: ...

    def remaining(self) -> int: ...

    def tell(self, result: TrialResult) -> None: ...


@dataclass
class Outcome:
    """How the run loop ended."""

    stopped: str = ""  # why the sweep stopped early; empty when it ran to the end
    interrupted: bool = False
    counts: Counter[str] = field(default_factory=Counter)
    attempts: int = 0
    target_reached: str = ""  # which trial reached metric.target, and with what value


class Runner:
    """Feeds a backend, records its results and applies the retry policy."""

    def __init__(self, backend: Backend, run: RunDir, policy: RetryPolicy,
                 on_result: Callable[[TrialResult], None] | None = None,
                 target: Metric | None = None,
                 argv_of: Callable[[Trial], list[str]] | None = None,
                 search: Search | None = None,
                 signals: Interrupts | None = None) -> None:
        self.backend = backend
        self.run = run
        self.policy = policy
        self.on_result = on_result
        self.signals = signals or Interrupts()
        self.argv_of = argv_of  # the argv a record keeps (RunContext.recorded_argv)
        self.outcome = Outcome()
        self._failures: Counter[str] = Counter()
        self._lost: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self._streak = 0
        self._queue = WorkQueue()
        self.target = target if target is not None and target.target is not None else None
        if self.target is not None:
            self._queue.hold = self._reaches_target
        self.search = search
        self._by_id: dict[str, Trial] = {}
        self._told: set[tuple[str, int]] = set()
        if search is not None:
            self._queue.supply = self
            self._queue.observe = self._tell

    # -- the queue's supply (adaptive search): trials the runner must know ----------------
    def ask(self) -> list[Trial]:
        assert self.search is not None
        trials = self.search.ask()
        for trial in trials:
            self._by_id[trial.trial_id] = trial
        return trials

    def remaining(self) -> int:
        return self.search.remaining() if self.search is not None else 0

    def execute(self, trials: list[Trial], start_attempts: dict[str, int] | None = None,
                adopt: dict[str, Trial] | None = None,
                recorded: set[str] | None = None) -> Outcome:
        """Run ``trials`` to the end (or until stopped); every result is recorded. With
        ``adopt``, this run's containers of those trials still on the workers are taken
        over first (see Backend.adopt; ``recorded``: container IDs already recorded):
        their results are recorded as they come, while new trials start."""
        by_id = self._by_id
        by_id.update(adopt or {})
        by_id.update((t.trial_id, t) for t in trials)
        timer = self._deadline_timer()
        with self.signals.stopping_with(self._interrupted):
            try:
                adopted = set() if adopt is None else self.backend.adopt(adopt,
                                                                         recorded or ())
                for trial in trials:
                    self._attempts[trial.trial_id] = (start_attempts or {}).get(
                        trial.trial_id, 0)
                    if trial.trial_id not in adopted:
                        self._queue.put(trial, self._attempts[trial.trial_id] + 1)
                for result in self.backend.launch(self._queue):
                    self._handle(result, by_id[result.trial_id])
            except AllWorkersLost as e:
                self._stop(f"every host is down or quarantined ({e})")
            except BaseException:
                self.backend.cancel()  # an error while recording: stop what still runs
                raise
            finally:
                if timer:
                    timer.cancel()
                self._queue.close()
        return self.outcome

    def stop(self, why: str, interrupted: bool = False) -> None:
        """Stop the sweep from any thread: no new trials, running ones cancelled."""
        self.outcome.interrupted |= interrupted
        self._stop(why)

    def _interrupted(self, signal_name: str) -> None:
        self.stop(f"interrupted ({signal_name})", interrupted=True)

    def _stop(self, why: str) -> None:
        if not self.outcome.stopped:
            self.outcome.stopped = why
            with contextlib.suppress(LauncherError, OSError):  # stopping matters more
                self.run.request_stop(why)
        self._queue.close()
        self.backend.cancel()

    def _handle(self, result: TrialResult, trial: Trial) -> None:
        self._tell(result)  # when the backend did not settle it already
        self.run.record(result, self.argv_of(trial) if self.argv_of else None)
        self.outcome.attempts += 1
        self._attempts[trial.trial_id] = max(self._attempts[trial.trial_id], result.attempt)
        if self.on_result:
            self.on_result(result)
        if self.target is not None and not self.outcome.target_reached and \
                self._reaches_target(result):
            value = result.metrics.get(self.target.name)
            self.outcome.target_reached = (f"{self.target.name} {value} reached the target "
                                           f"{self.target.target:g} ({self.target.goal}) in "
                                           f"trial {result.trial_id}")
            self._queue.close()  # no new trial starts; running ones finish
        if self.outcome.stopped or self.outcome.target_reached:
            self.outcome.counts[str(result.status)] += 1
            return
        status = result.status
        # Lost to the infrastructure, or cancelled by an earlier launcher (an adopted
        # container): no verdict on the trial, which runs again without using a retry.
        if status in (TrialStatus.LOST, TrialStatus.CANCELLED) and \
                self._lost[trial.trial_id] < MAX_LOST_REQUEUES:
            self._lost[trial.trial_id] += 1
            self._queue.put(trial, self._attempts[trial.trial_id] + 1)
            return
        if status in (TrialStatus.FAILED, TrialStatus.TIMED_OUT, TrialStatus.OOM_KILLED):
            if self._retry(result, trial):
                return
            self._streak += 1
        elif status in (TrialStatus.SUCCEEDED, TrialStatus.STOPPED):
            self._streak = 0
        self.outcome.counts[str(status)] += 1
        limit = self.policy.max_consecutive_failures
        if limit and self._streak >= limit:
            self._stop(f"{self._streak} trials failed in a row (max_consecutive_failures "
                       f"is {limit})")

    def _tell(self, result: TrialResult) -> None:
        """Tell the search a result that is final (no retry or requeue follows), once."""
        key = (result.trial_id, result.attempt)
        if self.search is None or key in self._told or not self._final(result):
            return
        self._told.add(key)
        self.search.tell(result)

    def _final(self, result: TrialResult) -> bool:
        """What _handle will decide: is this the trial's last attempt in this run?"""
        status = result.status
        if status is TrialStatus.LOST:
            return False  # requeued, or left for a resume
        if status in (TrialStatus.FAILED, TrialStatus.TIMED_OUT, TrialStatus.OOM_KILLED):
            return bool(self.outcome.stopped or self.outcome.target_reached) or \
                not self._will_retry(result)
        return status.terminal  # cancelled: runs again on resume

    def _reaches_target(self, result: TrialResult) -> bool:
        assert self.target is not None
        return result.status is TrialStatus.SUCCEEDED and \
            self.target.reached(result.metrics.get(self.target.name))

    def _will_retry(self, result: TrialResult) -> bool:
        if self._failures[result.trial_id] >= self.policy.retries:
            return False
        return not (result.status is TrialStatus.FAILED and
                    result.exit_code in self.policy.no_retry_exit_codes)

    def _retry(self, result: TrialResult, trial: Trial) -> bool:
        if not self._will_retry(result):
            return False
        self._failures[trial.trial_id] += 1
        delay = self.policy.delay(self._failures[trial.trial_id])
        self._queue.put(trial, self._attempts[trial.trial_id] + 1, delay=delay)
        return True

    def _deadline_timer(self) -> threading.Timer | None:
        if self.policy.deadline is None:
            return None
        timer = threading.Timer(self.policy.deadline, self._stop,
                                args=(f"deadline of {self.policy.deadline:g}s reached",))
        timer.daemon = True
        timer.start()
        return timer
