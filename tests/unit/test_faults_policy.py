"""The pure parts of fault handling: signal phases, requeueing adopted results, which
record wins after a fault, what changed in a sweep, secrets masking, stop marks."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from launcher.container import KILLED_FROM_OUTSIDE, ContainerSettings, _classify_failure, stop_mark
from launcher.interrupts import Interrupted, Interrupts
from launcher.resume import describe_changes
from launcher.runner import RetryPolicy, Runner
from launcher.secrets import MASK, Masker
from launcher.store import RunDir, TrialRecord, best_records
from launcher.trial import Trial, TrialResult, TrialStatus
from tests.fake_backend import FakeBackend

S, LOST, CANCELLED = TrialStatus.SUCCEEDED, TrialStatus.LOST, TrialStatus.CANCELLED


# -- signals ---------------------------------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_first_signal_acts_by_phase(sig: signal.Signals) -> None:
    setup = Interrupts()
    with pytest.raises(Interrupted) as info:
        setup.handle(sig)
    assert info.value.signal_name == sig.name and isinstance(info.value, KeyboardInterrupt)
    running, stopped = Interrupts(), list[str]()
    with running.stopping_with(stopped.append):
        running.handle(sig)  # recording goes on: no exception
    assert stopped == [sig.name] and running.received == sig.name
    finishing = Interrupts()
    with finishing.deferred():
        finishing.handle(sig)
    assert finishing.received == sig.name


def test_a_signal_just_before_the_run_loop_stops_it_at_once() -> None:
    interrupts, stopped = Interrupts(), list[str]()
    with interrupts.deferred():
        interrupts.handle(signal.SIGTERM)
    with interrupts.stopping_with(stopped.append):
        pass
    assert stopped == ["SIGTERM"]


SECOND = textwrap.dedent("""
    import os, signal, sys, time
    from launcher.interrupts import handled_signals
    with handled_signals() as s, s.stopping_with(lambda name: print("stop", name, flush=True)):
        print("ready", flush=True)
        time.sleep(30)
    print("not reached", flush=True)
""")


def test_a_second_signal_exits_at_once_with_130() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SECOND], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGHUP)
    assert proc.stdout.readline().strip() == "stop SIGHUP"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=5)
    assert proc.returncode == 130 and "not reached" not in out
    assert "second interrupt, exiting now" in err


# -- the runner and adopted results ----------------------------------------------------------
def trials(n: int) -> list[Trial]:
    return [Trial(f"{i:012x}", "c", i, 0, i, ()) for i in range(n)]


class AdoptingBackend(FakeBackend):
    """Reports one adopted container per trial of ``adopt`` with ``status`` first."""

    def __init__(self, status: TrialStatus) -> None:
        super().__init__(lambda t, a: (S, 0))
        self.adopted_status = status
        self.adopted: list[Trial] = []

    def adopt(self, trials: dict[str, Trial], recorded: Any = ()) -> set[str]:
        self.adopted = list(trials.values())
        return set(trials)

    def launch(self, queue: Any) -> Any:
        for trial in self.adopted:
            yield TrialResult(trial.trial_id, self.adopted_status, attempt=1, host="fake")
        self.adopted = []
        yield from super().launch(queue)


@pytest.mark.parametrize("status", [LOST, CANCELLED])
def test_adopted_lost_or_cancelled_trials_run_again(tmp_path: Path,
                                                   status: TrialStatus) -> None:
    run = RunDir.create(tmp_path, "s", "20260101-000000-abcd")
    (run.path / "manifest.json").write_text("{}")
    backend = AdoptingBackend(status)
    t = trials(3)
    outcome = Runner(backend, run, RetryPolicy()).execute(t, adopt={x.trial_id: x for x in t})
    assert outcome.counts == {"succeeded": 3}
    assert [a for _, a in backend.started] == [2, 2, 2], "rerun as the next attempt"
    assert [r.status for r in run.records()] == [status] * 3 + [S] * 3


# -- which record wins -------------------------------------------------------------------------
def test_a_lost_container_collected_later_does_not_become_failed() -> None:
    lost = TrialRecord("t1", LOST, container_id="c1", attempt=1)
    killed = TrialRecord("t1", TrialStatus.FAILED, exit_code=143, container_id="c1")
    assert best_records([lost, killed])["t1"].status is LOST
    done = TrialRecord("t1", S, container_id="c1")
    assert best_records([lost, done])["t1"].status is S  # it did finish after all
    other = TrialRecord("t1", TrialStatus.FAILED, exit_code=1, container_id="c2", attempt=2)
    assert best_records([lost, other])["t1"].status is TrialStatus.FAILED


def test_a_stop_from_outside_is_lost_and_a_launchers_stop_keeps_its_reason() -> None:
    settings = ContainerSettings(image="i", run_id="r", sweep="s", timeout=5)

    def verdict(name: str, code: int, oom: bool = False) -> TrialResult:
        result = TrialResult("t", TrialStatus.NOT_STARTED)
        _classify_failure({"Name": name, "State": {"OOMKilled": oom}}, code, settings, result)
        return result

    for code in KILLED_FROM_OUTSIDE:
        assert verdict("/happy_fox", code).status is LOST
    assert verdict("/launcher-cancelled-abc", 143).status is CANCELLED
    assert verdict("/launcher-timed_out-abc", 137).status is TrialStatus.TIMED_OUT
    # hyperband's stop, left by a launcher that died before recording it
    assert verdict("/launcher-stopped-abc", 143).status is TrialStatus.STOPPED
    assert verdict("/happy_fox", 137, oom=True).status is TrialStatus.OOM_KILLED
    assert verdict("/happy_fox", 1).status is TrialStatus.FAILED
    assert stop_mark("/launcher-cancelled-0123") is CANCELLED and stop_mark("/x") is None
    assert stop_mark("/launcher-stopped-0123") is TrialStatus.STOPPED


# -- what changed in a sweep -----------------------------------------------------------------
def test_changes_are_named_in_a_few_words() -> None:
    before = {"command": ["python3", "a.py"], "resources": {"memory": 1}, "seed": 0}
    after = {"command": ["python3", "b.py"], "resources": {"memory": 2}, "seed": 0}
    text = describe_changes(before, after)
    assert text == ("command: ['python3', 'a.py'] -> ['python3', 'b.py']; resources: "
                    "{'memory': 1} -> {'memory': 2}")
    assert "the parameters, hosts, comments or layout changed" in describe_changes(after, after)
    assert "hash differs" in describe_changes(None, after)


# -- secrets ---------------------------------------------------------------------------------
def test_secrets_are_masked_in_text_values_and_streams() -> None:
    secret = 'p@ss"wörd-42'
    masker = Masker([secret, "ab"])  # too short to mask
    assert masker.text(f"x {secret} y ab") == f"x {MASK} y ab"
    assert masker.value({"k": [secret, 3], secret: 1}) == {"k": [MASK, 3], MASK: 1}
    assert secret not in masker.text(json.dumps({"v": secret}))
    assert "p@ss" not in masker.text(json.dumps({"v": secret}, ensure_ascii=False))
    data = (b"....." + secret.encode() + b"\n") * 5000
    for chunk_size in (1, 7, 4096):
        out = b"".join(masker.stream(io.BytesIO(data), chunk=chunk_size))
        assert secret.encode() not in out and out.count(MASK.encode()) == 5000
    assert not Masker([]) and Masker([]).text("abc") == "abc"


def test_a_run_masks_what_it_records(tmp_path: Path) -> None:
    run = RunDir.create(tmp_path, "s", "20260101-000000-abcd")
    (run.path / "manifest.json").write_text("{}")
    run.mask = Masker(["hunter2-secret"])
    result = TrialResult("aaaaaaaaaaaa", TrialStatus.FAILED, reason="bad hunter2-secret",
                         log="token hunter2-secret\n", metrics={"t": "hunter2-secret"},
                         history=[{"epoch": 1, "t": "hunter2-secret"}])
    run.record(result)
    for path in run.path.rglob("*"):
        if path.is_file():
            assert b"hunter2-secret" not in path.read_bytes(), path
    assert result.reason == f"bad {MASK}"  # what is shown afterwards is masked too


# -- `launch SWEEP --resume` with another sweep ----------------------------------------------
def test_resume_with_a_sweep_that_asks_something_else_is_refused(tmp_path: Path) -> None:
    import hashlib

    from launcher.errors import RunChanged
    from launcher.overrides import Overrides
    from launcher.plan import expand
    from launcher.provenance import sweep_settings
    from launcher.resume import check_same_sweep
    from launcher.spec import load_sweep
    from launcher.store import BackendRecord, ImageRecord, Manifest, PlanFile

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nparameters: {x: {values: [1, 2]}}\nresources: {memory: 1g}\n")
    spec = load_sweep(path)
    plan = expand(spec)
    run = RunDir.create(tmp_path / "results", "s", "20260101-000000-abcd")
    run.start(sweep_text=spec.source_text, plan=PlanFile.of(plan.trials, plan.parameter_names),
              manifest=Manifest.new(run_id=run.run_id, sweep="s", created_at="now",
                                    backend=BackendRecord("docker"), image=ImageRecord(),
                                    settings=sweep_settings(spec),
                                    sweep_sha256=hashlib.sha256(
                                        spec.source_text.encode()).hexdigest()))
    check_same_sweep(spec, run)  # the same file
    path.write_text(path.read_text() + "# a comment\nhosts: [local]\n")
    check_same_sweep(load_sweep(path), run)  # hosts and comments: the same trials
    with pytest.raises(RunChanged, match=r"resources: .*1073741824.* -> .*2147483648"):
        check_same_sweep(load_sweep(path, Overrides(sets=("resources.memory=2g",))), run)
    with pytest.raises(RunChanged, match="run it without --resume") as info:
        check_same_sweep(load_sweep(path, Overrides(replicas=2)), run)
    assert info.value.exit_code == 2
