"""An in-process backend for unit tests of the runner: outcomes are scripted per attempt."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from launcher.backends.base import Backend, RunContext, WorkQueue
from launcher.image import BuiltImage
from launcher.trial import Trial, TrialResult, TrialStatus

Script = Callable[[Trial, int], tuple[TrialStatus, int | None]]


class FakeBackend(Backend):
    """Runs nothing; every attempt ends as ``script(trial, attempt)`` says."""

    name = "fake"

    def __init__(self, script: Script) -> None:
        self.script = script
        self.started: list[tuple[str, int]] = []
        self.cancelled = False
        self.torn_down = 0

    def setup(self, *, image: BuiltImage, run: RunContext) -> None:
        self.run = run

    def launch(self, queue: WorkQueue) -> Iterator[TrialResult]:
        while not queue.empty() and not self.cancelled:
            work = queue.pop_ready()
            if work is None:
                time.sleep(min(queue.next_due_in() or 0.01, 0.05))
                continue
            self.started.append((work.trial.trial_id, work.attempt))
            status, code = self.script(work.trial, work.attempt)
            yield TrialResult(work.trial.trial_id, status, exit_code=code, host="fake",
                              attempt=work.attempt, reason=str(status))

    def cancel(self) -> None:
        self.cancelled = True

    def teardown(self) -> None:
        self.torn_down += 1
