"""The backend contract: every backend's tests inherit :class:`BackendContract`.

A subclass provides two fixtures: ``backend`` (a fresh, not yet set-up backend) and
``image`` (the BuiltImage to set it up with). The tests drive the backend directly
through setup / launch / cancel / teardown with trials of experiments/probe.py, so
the same statuses, limits and hardening hold for every backend (like Hydra's
LauncherTestSuite).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from launcher.backends.base import Backend, RunContext, WorkQueue
from launcher.container import ContainerSettings
from launcher.image import BuiltImage
from launcher.sections import Resources
from launcher.store import new_run_id
from launcher.trial import Trial, TrialResult, TrialStatus
from tests.support import PROBE


def probe_trial(n: int, **options: Any) -> Trial:
    params = tuple((f"probe-{k.replace('_', '-')}", v) for k, v in options.items())
    return Trial(f"{n:012x}", f"{n:010x}", n, 0, n, params)


class BackendContract:
    """Tests every backend must pass. Subclasses define the fixtures."""

    timeout = 60.0

    @pytest.fixture
    def backend(self) -> Backend:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture
    def image(self) -> BuiltImage:  # pragma: no cover - overridden
        raise NotImplementedError

    def context(self, image: BuiltImage, command: tuple[str, ...] = tuple(PROBE),
                **settings: Any) -> RunContext:
        run_id = new_run_id()
        base: dict[str, Any] = {"image": image.id, "run_id": run_id, "sweep": "contract",
                                "resources": Resources(cpus=0.5, memory=256 * 2**20),
                                "stop_grace": 1.0, "outputs": True}
        return RunContext(run_id=run_id, settings=ContainerSettings(**{**base, **settings}),
                          command=command)

    def run_all(self, backend: Backend, image: BuiltImage, trials: list[Trial],
                **settings: Any) -> dict[str, TrialResult]:
        ctx = self.context(image, **settings)
        backend.setup(image=image, run=ctx)
        try:
            results = list(backend.launch(WorkQueue(trials)))
        finally:
            backend.teardown()
        assert len(results) == len(trials), "one result per trial"
        return {r.trial_id: r for r in results}

    def test_every_trial_yields_one_result_with_provenance(self, backend: Backend,
                                                           image: BuiltImage) -> None:
        trials = [probe_trial(i) for i in range(4)]
        results = self.run_all(backend, image, trials)
        assert set(results) == {t.trial_id for t in trials}
        for trial in trials:
            r = results[trial.trial_id]
            assert r.status is TrialStatus.SUCCEEDED, r.reason
            assert r.exit_code == 0 and r.image_id == image.id and r.host
            assert r.container_id and r.started_at and r.finished_at
            assert r.metrics["env"]["LAUNCH_TRIAL_ID"] == trial.trial_id
            assert r.metrics["env"]["LAUNCH_SEED"] == str(trial.seed)

    def test_failure_and_timeout_are_results_not_exceptions(self, backend: Backend,
                                                             image: BuiltImage) -> None:
        trials = [probe_trial(1, exit=3), probe_trial(2, sleep=30), probe_trial(3)]
        results = self.run_all(backend, image, trials, timeout=2.0)
        failed, slow, fine = (results[t.trial_id] for t in trials)
        assert failed.status is TrialStatus.FAILED and failed.exit_code == 3
        assert "exit code 3" in failed.reason
        assert slow.status is TrialStatus.TIMED_OUT and "timeout of 2s" in slow.reason
        assert fine.status is TrialStatus.SUCCEEDED

    def test_out_of_memory_is_reported_as_oom_killed(self, backend: Backend,
                                                     image: BuiltImage) -> None:
        trial = probe_trial(1, alloc_mb=400)
        result = self.run_all(backend, image, [trial],
                              resources=Resources(cpus=0.5, memory=64 * 2**20))[trial.trial_id]
        assert result.status is TrialStatus.OOM_KILLED, (result.status, result.reason)
        assert "out of memory" in result.reason

    def test_container_is_hardened(self, backend: Backend, image: BuiltImage) -> None:
        trial = probe_trial(1)
        m = self.run_all(backend, image, [trial])[trial.trial_id].metrics
        assert m["uid"] != 0 and m["cap_eff_zero"] is True and m["no_new_privs"] == 1
        assert m["root_write_fails"] is True and m["docker_sock_exists"] is False
        assert m["tmp_writable"] is True and m["outputs_writable"] is True

    def test_cancel_stops_running_trials(self, backend: Backend, image: BuiltImage) -> None:
        ctx = self.context(image)
        backend.setup(image=image, run=ctx)
        trials = [probe_trial(i, sleep=60) for i in range(2)]
        timer = threading.Timer(3.0, backend.cancel)
        started = time.monotonic()
        timer.start()
        try:
            results = list(backend.launch(WorkQueue(trials)))
        finally:
            timer.cancel()
            backend.teardown()
        assert time.monotonic() - started < 30
        assert results and all(r.status is TrialStatus.CANCELLED for r in results)

    def test_live_history_lines_arrive_and_stop_trial_stops_one_trial(
            self, backend: Backend, image: BuiltImage) -> None:
        """Early termination's part of the contract: every running trial's history lines
        reach on_history while it runs; stop_trial ends that one trial as stopped, with
        its history and last values, and leaves the others alone."""
        command = ("python3", "/app/experiments/objective.py", "--metric=loss", "${args}")
        ctx = self.context(image, command=command)
        seen: dict[str, list[int]] = {}
        lock = threading.Lock()

        def on_history(trial_id: str, attempt: int, rows: list[dict[str, Any]]) -> None:
            with lock:
                steps = seen.setdefault(trial_id, [])
                steps += [int(r["step"]) for r in rows]
                reached = len(steps) >= 4 and trial_id == victim.trial_id
            if reached:
                backend.stop_trial(trial_id, attempt, "stopped early by the contract test")

        ctx.on_history = on_history
        params = (("steps", 40), ("sleep", 0.25))
        victim = Trial(f"{1:012x}", "c1", 0, 0, 1, params)
        other = Trial(f"{2:012x}", "c2", 1, 0, 2, (("steps", 8), ("sleep", 0.25)))
        backend.setup(image=image, run=ctx)
        try:
            results = {r.trial_id: r for r in backend.launch(WorkQueue([victim, other]))}
        finally:
            backend.teardown()
        stopped, done = results[victim.trial_id], results[other.trial_id]
        assert stopped.status is TrialStatus.STOPPED, (stopped.status, stopped.reason)
        assert stopped.reason == "stopped early by the contract test"
        assert 4 <= len(stopped.history) < 40 and stopped.metrics["loss"] == \
            stopped.history[-1]["loss"]
        assert done.status is TrialStatus.SUCCEEDED and len(done.history) == 8
        assert seen[other.trial_id] == list(range(1, 9)), "every line arrived live, in order"

    def test_teardown_is_idempotent(self, backend: Backend, image: BuiltImage) -> None:
        backend.setup(image=image, run=self.context(image))
        backend.teardown()
        backend.teardown()
