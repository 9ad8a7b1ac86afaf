"""The runner's policy, with a scripted in-process backend (no Docker)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from launcher.backends.base import WorkQueue
from launcher.runner import RetryPolicy, Runner
from launcher.store import RunDir
from launcher.trial import Trial, TrialResult, TrialStatus
from launcher.wandb_keys import Metric
from tests.fake_backend import FakeBackend

S, F, LOST = TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.LOST


def trials(n: int) -> list[Trial]:
    return [Trial(f"{i:012x}", "c", i, 0, i, ()) for i in range(n)]


def run_dir(tmp_path: Path) -> RunDir:
    run = RunDir.create(tmp_path, "s", "20260101-000000-abcd")
    (run.path / "manifest.json").write_text("{}")
    return run


def test_failed_trials_are_retried_until_they_succeed(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, attempt: (S, 0) if attempt == 3 else (F, 1))
    outcome = Runner(backend, run_dir(tmp_path), RetryPolicy(retries=2, backoff=0.01)).execute(
        trials(2))
    assert Counter(a for _, a in backend.started) == {1: 2, 2: 2, 3: 2}
    assert outcome.counts == {"succeeded": 2} and not outcome.stopped


def test_retries_run_out(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, a: (F, 1))
    run = run_dir(tmp_path)
    Runner(backend, run, RetryPolicy(retries=1, backoff=0.01)).execute(trials(1))
    assert [r.attempt for r in run.records()] == [1, 2]


def test_no_retry_exit_codes_are_final(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, a: (F, 42))
    Runner(backend, run_dir(tmp_path), RetryPolicy(retries=5, no_retry_exit_codes=(42,),
                                                   backoff=0.01)).execute(trials(1))
    assert len(backend.started) == 1


def test_lost_trials_are_requeued_without_using_a_retry(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, a: (LOST, None) if a <= 2 else (S, 0))
    outcome = Runner(backend, run_dir(tmp_path), RetryPolicy(retries=0)).execute(trials(3))
    assert outcome.counts == {"succeeded": 3} and len(backend.started) == 9


def test_a_trial_lost_too_often_stays_lost(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, a: (LOST, None))
    outcome = Runner(backend, run_dir(tmp_path), RetryPolicy()).execute(trials(1))
    assert outcome.counts == {"lost": 1} and len(backend.started) == 4


def test_max_consecutive_failures_stops_and_says_why(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, a: (F, 1) if int(t.trial_id, 16) >= 2 else (S, 0))
    outcome = Runner(backend, run_dir(tmp_path),
                     RetryPolicy(max_consecutive_failures=3)).execute(trials(10))
    assert "3 trials failed in a row" in outcome.stopped and backend.cancelled
    assert len(backend.started) == 5


def test_backoff_doubles_and_is_capped() -> None:
    policy = RetryPolicy(backoff=1.0)
    assert [policy.delay(n) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, 60.0]


def test_start_attempts_continue_after_resume(tmp_path: Path) -> None:
    backend = FakeBackend(lambda t, a: (S, 0))
    t = trials(1)
    Runner(backend, run_dir(tmp_path), RetryPolicy()).execute(t, {t[0].trial_id: 4})
    assert backend.started == [(t[0].trial_id, 5)]


class TwoSlotBackend(FakeBackend):
    """Two trials at a time, metric acc = the trial's index; like the Docker backend it
    settles finished results with the queue before it refills the freed slot."""

    def launch(self, queue: WorkQueue) -> Iterator[TrialResult]:
        running: list[Trial] = []
        while True:
            while len(running) < 2 and (work := queue.pop_ready()) is not None:
                self.started.append((work.trial.trial_id, work.attempt))
                running.append(work.trial)
            if not running:
                return
            trial = running.pop(0)
            result = TrialResult(trial.trial_id, S, exit_code=0, metrics={"acc": trial.index})
            queue.settle([result])
            yield result


def test_metric_target_starts_nothing_new_and_lets_running_trials_finish(tmp_path: Path) -> None:
    backend = TwoSlotBackend(lambda t, a: (S, 0))
    target = Metric("acc", "maximize", target=3)
    run = run_dir(tmp_path)
    outcome = Runner(backend, run, RetryPolicy(), target=target).execute(trials(10))
    assert [int(t, 16) for t, _ in backend.started] == [0, 1, 2, 3, 4]  # 4 was running
    assert outcome.counts == {"succeeded": 5} and not outcome.stopped
    assert not backend.cancelled, "running trials finish; nothing is cancelled"
    assert "acc 3 reached the target 3 (maximize) in trial 000000000003" in \
        outcome.target_reached
    assert len(run.records()) == 5


def test_metric_target_follows_the_goal() -> None:
    low = Metric("loss", "minimize", target=0.1)
    assert low.reached(0.05) and low.reached(0.1) and not low.reached(0.2)
    assert not low.reached(None) and not low.reached("0.01") and not low.reached(True)
    assert Metric("acc", "maximize", target=0.9).reached(0.95)
    assert not Metric("acc", "maximize").reached(1.0)  # no target: never reached
