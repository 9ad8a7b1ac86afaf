"""Many hosts, measured with simulated engines (tests/simengine): the launcher's control
plane runs for real against hundreds of hollow Docker engines in one process.

What they prove: a sweep over 200 hosts survives hosts that die or freeze mid-sweep and
one that never answers (every trial exactly once on the others); set-up talks to the
hosts in parallel; a run that needs more open files than it may have is refused before
any container, and one that fits completes at a low limit.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from launcher.overrides import Overrides
from launcher.store import RunDir
from launcher.trial import TrialStatus
from tests.simengine import SimEngines, sim_sweep
from tests.support import ROOT

LAUNCH = str(Path(sys.executable).parent / "launch")


def sweep_hosts(sim: SimEngines, names: list[str] | None = None) -> list[dict[str, Any]]:
    return [{"url": h["url"], "name": h["name"]} for h in sim.hosts
            if names is None or h["name"] in names]


def test_200_hosts_with_two_failing_mid_sweep_and_one_unreachable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A frozen engine is noticed by timeouts; shortened here so that the test is quick.
    monkeypatch.setattr("launcher.hosts.API_TIMEOUT", 4)
    monkeypatch.setattr("launcher.container.WAIT_SLICE", 1.0)
    monkeypatch.setattr("launcher.engine.PING_TIMEOUT", 1.0)
    special: dict[str, dict[str, Any]] = {
        "sim-7": {"fault": "stop", "fault_after_creates": 2},  # dies mid-sweep
        "sim-8": {"fault": "hang", "fault_after_creates": 2},  # freezes mid-sweep
        "sim-9": {"fault": "stop"}}  # never answers
    with SimEngines(tmp_path, hosts=200, ncpu=2, duration=0.2, preload="all",
                    special=special) as sim:
        monkeypatch.setenv("DOCKER_HOST", sim.url("sim-0"))
        path = sim_sweep(tmp_path, sweep_hosts(sim), replicas=600)
        from launcher.api import run_sweep

        results = run_sweep(path, Overrides(skip_unreachable=True))
        stats = sim.stats()
    run = RunDir(results.run_dir)
    succeeded = Counter(r.trial_id for r in run.records()
                        if r.status is TrialStatus.SUCCEEDED)
    assert len(run.plan()) == 600
    assert set(succeeded) == set(run.plan().trial_ids()), "every trial succeeded"
    assert set(succeeded.values()) == {1}, "and exactly once"
    assert not any(r.host == "sim-9" for r in run.records())
    lost = {r.host for r in run.records() if r.status is TrialStatus.LOST}
    assert lost <= {"sim-7", "sim-8"} and lost, lost
    manifest = run.manifest()
    assert [h.name for h in manifest.skipped_hosts] == ["sim-9"]
    assert "no Docker engine answers" in manifest.skipped_hosts[0].reason
    notes = " | ".join(manifest.notes)
    assert "host sim-9 left out" in notes
    assert "host sim-7 stopped answering" in notes and "host sim-8 stopped answering" in notes
    assert stats["hosts"]["sim-9"]["requests"] == 0
    assert sum(h["creates"] for h in stats["hosts"].values()) >= 600
    left = {n: h["containers"] for n, h in stats["hosts"].items()
            if h["containers"] and n not in ("sim-7", "sim-8")}
    assert not left, f"containers left on engines that answer: {left}"
    assert results.exit_code == 0 and results.df["status"].eq("succeeded").all()


def test_setup_talks_to_50_slow_hosts_in_parallel(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    latency, hosts = 0.2, 50
    with SimEngines(tmp_path, hosts=hosts, latency=latency, preload="all") as sim:
        monkeypatch.setenv("DOCKER_HOST", sim.url("sim-0"))
        from launcher.prepare import prepared_backend
        from launcher.spec import load_sweep
        from launcher.store import new_run_id

        spec = load_sweep(sim_sweep(tmp_path, sweep_hosts(sim), replicas=hosts))
        sim.reset_stats()
        prepared = prepared_backend(spec, new_run_id(), None)
        started = time.monotonic()
        backend, image, _ = prepared.__enter__()
        setup = time.monotonic() - started
        stats = sim.stats()
        prepared.__exit__()
    serial = hosts * latency
    per_host = {n: h["requests"] for n, h in stats["hosts"].items()}
    assert image.id == sim.image_id and len(backend.workers()) == hosts
    assert min(per_host.values()) >= 2, "every host was connected to and checked"
    assert stats["inflight_peak"] >= 16, "requests to different hosts overlap"
    assert setup < serial / 3, f"set-up took {setup:.2f} s; one host after the other: " \
        f"at least {2 * serial:.0f} s"


def _launch_limited(argv: list[str], env: dict[str, str],
                    limit: int) -> subprocess.CompletedProcess[str]:
    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return subprocess.run([LAUNCH, *argv], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=600, preexec_fn=lower_limit)


@pytest.mark.parametrize(("ncpu", "fits"), [(2, True), (4, False)])
def test_open_files_limit_of_256_over_50_hosts(tmp_path: Path, ncpu: int, fits: bool) -> None:
    with SimEngines(tmp_path, hosts=50, ncpu=ncpu, duration=0.1) as sim:
        path = sim_sweep(tmp_path, sweep_hosts(sim), replicas=200)
        done = _launch_limited([str(path), "--quiet", "--json"], sim.environ, 256)
        creates = sum(h["creates"] for h in sim.stats()["hosts"].values())
    if fits:  # 50 hosts x 2 slots: the run fits in 256 files and completes
        assert done.returncode == 0, done.stderr[-2000:]
        summary = json.loads(done.stdout)
        assert summary["status"] == {"succeeded": 200}
        assert "Too many open files" not in done.stderr
    else:  # 50 hosts x 4 slots do not: refused before any container, in one line
        assert done.returncode == 1, done.stderr[-2000:]
        assert creates == 0, "no container was created"
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "open files" in lines[0] and "Traceback" not in done.stderr
        assert "ulimit -n" in lines[0]


def test_skip_unreachable_on_the_command_line(tmp_path: Path) -> None:
    with SimEngines(tmp_path, hosts=4, special={"sim-3": {"fault": "stop"}}) as sim:
        path = sim_sweep(tmp_path, sweep_hosts(sim), replicas=6)
        refused = subprocess.run([LAUNCH, str(path), "--quiet"], env=sim.environ, cwd=ROOT,
                                 capture_output=True, text=True, timeout=300)
        creates = sum(h["creates"] for h in sim.stats()["hosts"].values())
        done = subprocess.run([LAUNCH, str(path), "--skip-unreachable"], env=sim.environ,
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and creates == 0
    assert refused.stderr.count("\n") == 1 and "host sim-3" in refused.stderr
    assert "--skip-unreachable" in refused.stderr
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: host sim-3 left out: no Docker engine answers" in done.stdout
    assert "6 succeeded" in done.stdout.replace("succeeded 6", "6 succeeded")


def test_cpu_model_of_remote_engines_read_once_per_engine_off_the_critical_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with SimEngines(tmp_path, hosts=3, tcp=True, preload="all") as sim:
        monkeypatch.setenv("DOCKER_HOST", sim.url("sim-0"))
        hosts = [*sweep_hosts(sim), {"url": sim.url("sim-1").replace("127.0.0.1", "localhost"),
                                     "name": "sim-1-again"}]  # one engine under two names
        path = sim_sweep(tmp_path, hosts, replicas=8)
        from launcher.api import run_sweep

        first = run_sweep(path)
        after_first = sim.stats()["endpoints"]["POST /containers/create"]
        second = run_sweep(path)
        after_second = sim.stats()["endpoints"]["POST /containers/create"]
    models = {h.name: h.cpu_model for h in RunDir(first.run_dir).manifest().hosts}
    assert models == {"sim-0": "Simulated CPU of sim-0", "sim-1": "Simulated CPU of sim-1",
                      "sim-2": "Simulated CPU of sim-2", "sim-1-again": "Simulated CPU of sim-1"}
    assert after_first == 8 + 3, "one probe per engine, not per host entry"
    assert after_second - after_first == 8, "the next run probes nothing"
    assert {h.name: h.cpu_model for h in RunDir(second.run_dir).manifest().hosts} == models


def test_resuming_a_finished_run_touches_no_engine_and_rewrites_nothing(
        tmp_path: Path) -> None:
    with SimEngines(tmp_path, hosts=3) as sim:
        path = sim_sweep(tmp_path, sweep_hosts(sim), replicas=6)
        first = subprocess.run([LAUNCH, str(path), "--quiet"], env=sim.environ, cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
        assert first.returncode == 0, first.stderr
        run = next((tmp_path / "results" / "sim").iterdir())
        files = ("manifest.json", "plan.json", "trials.jsonl", "results.csv",
                 "results.parquet")
        before = {f: (run / f).stat().st_mtime_ns for f in files}
        requests = sum(h["requests"] for h in sim.stats()["hosts"].values())
        again = subprocess.run([LAUNCH, "resume", str(run)], env=sim.environ, cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
        assert sum(h["requests"] for h in sim.stats()["hosts"].values()) == requests
    assert again.returncode == 0, again.stderr
    assert "nothing left to run" in again.stderr and "6 succeeded" in again.stdout
    assert {f: (run / f).stat().st_mtime_ns for f in files} == before


def test_image_shipped_once_to_each_of_40_hosts(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with SimEngines(tmp_path, hosts=40, latency=0.01, image_kb=3 * 1024) as sim:
        monkeypatch.setenv("DOCKER_HOST", sim.url("sim-0"))
        from launcher.prepare import prepared_backend
        from launcher.spec import load_sweep
        from launcher.store import new_run_id

        spec = load_sweep(sim_sweep(tmp_path, sweep_hosts(sim), replicas=40))
        for _ in range(2):
            with prepared_backend(spec, new_run_id(), None) as (_, image, _ctx):
                assert image.id == sim.image_id
        stats = sim.stats()
    assert all(h["has_image"] for h in stats["hosts"].values())
    assert stats["endpoints"]["POST /images/load"] == 39, "once per host that lacked it"
    assert stats["endpoints"]["GET /images/{id}/get"] == 1, "saved once"
