"""Fault injection on engines of the test run's own: signals at every phase, engines
killed, restarted and frozen, launchers killed mid-adoption. Each test asserts that
nothing finished is lost, nothing finished runs again, statuses are right and nothing
is left on any engine."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from launcher.container import STOPPED_EARLIER
from launcher.image import BuiltImage
from launcher.store import RunState
from tests.engines import ScratchEngine
from tests.integration.faults import (
    Launcher,
    nothing_left,
    record_statuses,
    running_containers,
    state,
    statuses,
    succeeded_once_each,
    the_run,
)
from tests.support import launch, probe_sweep, records, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.engines]
SLEEPY = ["python3", "/app/experiments/probe.py", "--probe-sleep=${envvar:SLEEP}", "${args}"]


def killed_launcher(proc: Launcher) -> None:
    proc.send(signal.SIGKILL)
    proc.finish(60)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_adoption_keeps_what_finished_and_stops_the_rest(
        tmp_path: Path, engines: list[ScratchEngine], sig: signal.Signals) -> None:
    a = engines[0]
    path = probe_sweep(tmp_path, {"probe-sleep": {"values": [2, 25]}}, replicas=4,
                       name=f"adopt{sig.name.lower()}", stop_grace="2s")
    first = Launcher(str(path), "--quiet", "--host", a.host(slots=8))
    run = the_run(tmp_path / "results", path.stem)
    wait_until(lambda: running_containers(a, run.run_id) == 8, what="8 running containers")
    killed_launcher(first)
    # the four short trials end while no launcher watches: their results are not recorded
    wait_until(lambda: running_containers(a, run.run_id) == 4, what="4 finished")
    assert not records(run.path) if (run.path / "trials.jsonl").exists() else True
    resumed = Launcher("resume", str(run.path))
    wait_until(lambda: sum("succeeded" in line for line in resumed.err) == 4, 120,
               "the adopted, finished trials recorded")
    resumed.send(sig)
    code, took = resumed.finish()
    print(f"\n{sig.name} during adoption: exit {code} {took:.1f}s after the signal")
    assert code == 130 and took < 2 + 6, resumed.stderr  # stop_grace 2s, and a margin
    assert "resume with: launch resume" in resumed.stdout  # the summary was printed
    assert state(run) is RunState.INTERRUPTED
    assert statuses(run) == {"succeeded": 4, "cancelled": 4}
    nothing_left(run.run_id, a)
    final = launch("resume", str(run.path), "--quiet")
    assert final.returncode == 0, final.stderr
    succeeded_once_each(run)


def test_adoption_starts_new_trials_while_adopted_ones_run(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    a = engines[0]
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 8}}, replicas=8, name="overlap")
    first = Launcher(str(path), "--quiet", "--host", a.host(slots=4))
    run = the_run(tmp_path / "results", path.stem)
    wait_until(lambda: running_containers(a, run.run_id) == 4, what="4 running")
    killed_launcher(first)
    first_containers = set(a.containers(f"io.launcher.run={run.run_id}"))
    resumed = launch("resume", str(run.path), "--quiet", "--host", a.host(slots=8))
    assert resumed.returncode == 0, resumed.stderr
    succeeded_once_each(run)
    adopted = [r for r in records(run.path) if r["container_id"] in first_containers]
    new = [r for r in records(run.path) if r["container_id"] not in first_containers]
    assert len(adopted) == 4 and len(new) == 4
    assert max(r["started_at"] for r in new) < min(r["finished_at"] for r in adopted), \
        "the new trials started while the adopted ones still ran"
    nothing_left(run.run_id, a)


def test_a_second_interrupt_exits_at_once_and_resume_reruns_the_cancelled(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    a = engines[0]
    # jobs that ignore SIGTERM: the first interrupt's graceful stop takes stop_grace
    path = probe_sweep(tmp_path, {"x": {"values": [1, 2, 3, 4]}}, name="twice",
                       command=["python3", "-c", STUBBORN, "${envvar:SLEEP}", "${args}"],
                       stop_grace="20s")
    first = Launcher(str(path), "--quiet", "--host", a.host(slots=4), env={"SLEEP": "60"})
    run = the_run(tmp_path / "results", path.stem)
    wait_until(lambda: running_containers(a, run.run_id) == 4, what="4 running")
    first.send(signal.SIGINT)
    time.sleep(1.0)
    assert first.proc.poll() is None, "still stopping the stubborn containers"
    first.send(signal.SIGINT)
    code, took = first.finish()
    print(f"\nsecond SIGINT: exit {code} {took:.2f}s after it")
    assert code == 130 and took < 2, first.stderr
    assert "second interrupt, exiting now" in first.stderr
    resumed = launch("resume", str(run.path), "--quiet", env={"SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    succeeded_once_each(run)
    counts = record_statuses(run)
    assert counts == {"cancelled": 4, "succeeded": 4}, counts  # stopped, then ran again
    reasons = {r["reason"] for r in records(run.path) if r["status"] == "cancelled"}
    assert reasons == {STOPPED_EARLIER}, reasons
    nothing_left(run.run_id, a)


STUBBORN = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "time.sleep(float(sys.argv[1])); print('{\"metrics\": {\"ok\": 1}}')")


def test_containers_killed_by_an_engine_restart_are_lost_and_run_again(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    a, b = engines
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 6}}, replicas=8, name="restart")
    first = Launcher(str(path), "--quiet", "--host", a.host(slots=2), "--host",
                     b.host(slots=2))
    run = the_run(tmp_path / "results", path.stem)
    wait_until(lambda: running_containers(a, run.run_id) == 2, what="2 running on a")
    killed_launcher(first)
    a.kill()
    a.start()  # its dockerd comes back and kills the containers it finds (exit 143)
    resumed = launch("resume", str(run.path), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    succeeded_once_each(run)
    on_a = [r for r in records(run.path) if r["host"] == a.name]
    assert on_a and all(r["status"] in ("lost", "succeeded") for r in on_a), on_a
    assert "failed" not in record_statuses(run)
    assert any("killed from outside the launcher (exit code 143" in r["reason"]
               for r in on_a), [r["reason"] for r in on_a]
    nothing_left(run.run_id, a, b)


def test_a_frozen_engine_is_marked_down_and_its_trials_run_elsewhere(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    a, b = engines
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 4}}, replicas=6, name="frozen",
                       timeout="20s")
    proc = Launcher(str(path), "--quiet", "--json", "--host", a.host(slots=2), "--host",
                    b.host(slots=2))
    run = the_run(tmp_path / "results", path.stem)
    try:
        wait_until(lambda: running_containers(a, run.run_id) == 2, what="2 running on a")
        a.freeze()
        frozen_at = time.monotonic()
        code, _ = proc.finish(300)
        took = time.monotonic() - frozen_at
    finally:
        a.thaw()
    print(f"\nfrozen engine: the sweep ended {took:.1f}s after the freeze")
    assert code == 0, proc.stderr
    assert took < 60, "the frozen host's trials ran elsewhere within seconds"
    notes = " ".join(json.loads(proc.stdout)["notes"])
    assert f"host {a.name} stopped answering (no answer within 10s)" in notes
    succeeded_once_each(run)
    assert {r["status"] for r in records(run.path) if r["host"] == a.name} <= {"lost",
                                                                               "succeeded"}
    clean = launch("clean", str(run.path))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    nothing_left(run.run_id, a, b)


def test_one_interrupt_is_enough_with_a_frozen_engine(tmp_path: Path,
                                                      engines: list[ScratchEngine]) -> None:
    a = engines[0]
    path = probe_sweep(tmp_path, {"x": {"values": [1, 2]}}, name="frozenint", command=SLEEPY,
                       stop_grace="2s")
    proc = Launcher(str(path), "--quiet", "--host", a.host(slots=2), env={"SLEEP": "60"})
    run = the_run(tmp_path / "results", path.stem)
    try:
        wait_until(lambda: running_containers(a, run.run_id) == 2, what="2 running")
        a.freeze()
        proc.send(signal.SIGINT)
        code, took = proc.finish(120)
    finally:
        a.thaw()
    print(f"\nSIGINT with a frozen engine: exit {code} {took:.1f}s after the signal")
    assert code == 130 and took < 30, proc.stderr
    assert state(run) is RunState.INTERRUPTED
    resumed = launch("resume", str(run.path), "--quiet", env={"SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    succeeded_once_each(run)
    nothing_left(run.run_id, a)


def test_sigterm_or_sighup_while_trials_run(tmp_path: Path,
                                           engines: list[ScratchEngine]) -> None:
    a = engines[0]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        path = probe_sweep(tmp_path, {"x": {"values": [1, 2, 3]}}, name=f"run{sig.name}",
                           command=SLEEPY, stop_grace="2s")
        proc = Launcher(str(path), "--host", a.host(slots=3), env={"SLEEP": "60"})
        run = the_run(tmp_path / "results", path.stem)
        run_id = run.run_id
        wait_until(lambda: running_containers(a, run_id) == 3, what="3 running")  # noqa: B023
        proc.send(sig)
        code, took = proc.finish(120)
        print(f"\n{sig.name} while running: exit {code} {took:.1f}s after the signal")
        assert code == 130 and took < 2 + 6, proc.stderr
        assert f"launch: {sig.name}: stopping" in proc.stderr
        assert "resume with: launch resume" in proc.stdout
        assert state(run) is RunState.INTERRUPTED and statuses(run) == {"cancelled": 3}
        nothing_left(run.run_id, a)
        resumed = launch("resume", str(run.path), "--quiet", env={"SLEEP": "0"})
        assert resumed.returncode == 0, resumed.stderr
        succeeded_once_each(run)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_an_interrupt_while_shipping_the_image_exits_at_once(
        tmp_path: Path, engines: list[ScratchEngine], sig: signal.Signals,
        project_image: BuiltImage) -> None:
    a, b = engines
    tag = project_image.tag
    b.remove_image(tag)
    path = probe_sweep(tmp_path, {"x": {"value": 1}}, name=f"ship{sig.name.lower()}")
    proc = Launcher(str(path), "--host", a.host(), "--host", b.host())
    proc.wait_for("setting up 2 worker(s)")
    time.sleep(1.0)  # the image is streaming to b now (it takes several seconds)
    proc.send(sig)
    code, took = proc.finish(60)
    print(f"\n{sig.name} while shipping: exit {code} {took:.2f}s after the signal")
    assert code == 130 and took < 2, proc.stderr
    assert f"interrupted by {sig.name} while setting up" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "results" / path.stem).exists(), "no run was started"
    assert not b.has_image(tag), "the shipping was cut short"
    for engine in (a, b):
        assert not engine.containers("io.launcher.sweep=" + path.stem)


def test_an_engine_dying_while_idle_or_during_shipping(tmp_path: Path,
                                                       engines: list[ScratchEngine],
                                                       project_image: BuiltImage) -> None:
    a, b = engines
    path = probe_sweep(tmp_path, {"probe-sleep": {"values": [8, 0.5]}}, name="idle")
    proc = Launcher(str(path), "--quiet", "--json", "--host", a.host(slots=1), "--host",
                    b.host(slots=1))
    run = the_run(tmp_path / "results", path.stem)
    wait_until(lambda: record_statuses(run) if (run.path / "trials.jsonl").exists() else 0,
               what="b's short trial recorded")
    b.kill()  # b is idle now: a still runs the long trial
    try:
        code, _ = proc.finish(120)
        assert code == 0, proc.stderr  # every trial succeeded: cleanup trouble is a note
        notes = " ".join(json.loads(proc.stdout)["notes"])
        # b's one container was removed once its result was recorded, so teardown has
        # nothing to ask the dead engine: no error, and no "could not be cleaned up" note
        # (that note is for a dead host that may still hold a container of the run)
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        assert f"host {b.name}" not in notes, notes
    finally:
        b.start()
    succeeded_once_each(run)
    assert not b.containers("io.launcher.sweep=" + path.stem), "nothing left on b"
    # an engine that dies while the image streams to it: one line, exit 1, nothing left
    tag = project_image.tag
    b.remove_image(tag)
    path = probe_sweep(tmp_path, {"x": {"value": 1}}, name="shipdies")
    proc = Launcher(str(path), "--host", a.host(), "--host", b.host())
    proc.wait_for("setting up 2 worker(s)")
    time.sleep(1.0)
    b.kill()
    try:
        code, _ = proc.finish(120)
    finally:
        b.start()
    lines = proc.stderr.strip().splitlines()
    assert code == 1 and lines[-1].startswith(f"launch: error: host {b.name}: "), proc.stderr
    assert "internal error" not in proc.stderr
    assert not a.containers("io.launcher.sweep=shipdies")
