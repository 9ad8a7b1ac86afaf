"""Nothing lost: kills, resumes, interrupts, host failures, locks, retries and limits."""

from __future__ import annotations

import functools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from launcher.api import run_sweep
from launcher.store import Manifest, RunDir, RunState
from tests.engines import ScratchEngine
from tests.support import (
    ROOT,
    assert_nothing_left,
    engine_clients,
    launch,
    launch_process,
    probe_sweep,
    records,
    wait_until,
)

pytestmark = pytest.mark.docker


class StartCounter:
    """Counts container starts per trial on every engine, from the engines' own events."""

    def __init__(self, sweep: str) -> None:
        self.starts: list[tuple[str, float]] = []  # (trial id, unix time)
        self._clients = engine_clients()
        self._streams: list[Any] = []
        self._threads = []
        for client in self._clients.values():
            stream = client.events(decode=True, filters={
                "type": "container", "event": "start", "label": f"io.launcher.sweep={sweep}"})
            self._streams.append(stream)
            thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read(self, stream: Iterator[dict[str, Any]]) -> None:
        try:
            for event in stream:
                attributes = event.get("Actor", {}).get("Attributes", {})
                self.starts.append((attributes.get("io.launcher.trial", "?"),
                                    event.get("timeNano", 0) / 1e9))
        except Exception:  # the stream is closed when the test ends
            return

    def close(self) -> None:
        time.sleep(0.5)  # let the last events arrive
        for stream in self._streams:
            stream.close()
        for client in self._clients.values():
            client.close()


def _recorded(run_path: Path) -> int:
    return len(records(run_path)) if (run_path / "trials.jsonl").exists() else 0


def _progressed(proc: subprocess.Popen[str], run_path: Path, before: int) -> bool:
    """The launcher exited, or recorded another trial."""
    return proc.poll() is not None or _recorded(run_path) > before


def iso_to_unix(text: str) -> float:
    return pd.Timestamp(text).timestamp()


@pytest.mark.hosts
@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    sweep = f"kill{random.randrange(10**6)}"
    path = probe_sweep(tmp_path, {"probe-sleep": {"values": [0.3, 0.6, 0.9]}}, name=sweep,
                       replicas=20, seed_mode="distinct")
    hosts = ["--host", "local,slots=2", "--hosts", "/run/launcher-test-hosts/hosts.yaml"]
    counter = StartCounter(sweep)
    rng = random.Random(7)
    kills = 0
    try:
        proc = launch_process(str(path), "--quiet", *hosts)
        run_path = wait_until(lambda: next((tmp_path / "results" / sweep).glob("*"), None))
        while kills < 12:
            # a random point while trials run: after the next record, plus up to a second
            wait_until(functools.partial(_progressed, proc, run_path, _recorded(run_path)))
            time.sleep(rng.uniform(0.0, 1.0))
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = launch_process("resume", str(run_path), "--quiet")
        proc.communicate(timeout=600)
        if proc.returncode != 0:  # the last kill came late: one more resume finishes it
            final = launch("resume", str(run_path), "--quiet")
            assert final.returncode == 0, final.stderr
    finally:
        counter.close()
    assert kills >= 10, f"only {kills} kills happened"
    run = RunDir(run_path)
    df = pd.read_parquet(run.path / "results.parquet")
    planned = run.plan().trial_ids()
    assert len(planned) == 60 and sorted(df["trial_id"]) == sorted(planned)
    assert set(df["status"]) == {"succeeded"}, df["status"].value_counts()
    first_done: dict[str, float] = {}
    for record in records(run.path):
        if record["status"] == "succeeded" and record["trial_id"] not in first_done:
            first_done[record["trial_id"]] = iso_to_unix(record["finished_at"])
    repeated = [t for t, when in counter.starts if t in first_done and when >
                first_done[t] + 0.5]
    assert not repeated, f"finished trials ran again: {Counter(repeated)}"
    starts = Counter(t for t, _ in counter.starts)
    assert set(starts) == set(planned), "every trial started at least once"
    assert_nothing_left(run.run_id)
    print(f"\n{kills} SIGKILLs; container starts per trial: {Counter(starts.values())}")


@pytest.mark.engines
def test_a_host_dying_mid_sweep_leaves_the_sweep_to_the_others(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    # The engine killed here is one of the test run's own (scripts/scratch-engine.sh):
    # the shared test hosts are never stopped.
    dying, other = engines
    path = probe_sweep(tmp_path, {"probe-sleep": {"values": [1.0]}}, name="hostdies",
                       replicas=18)
    proc = launch_process(str(path), "--json", "--host", "local,slots=2", "--host",
                          dying.host(slots=2), "--host", other.host(slots=2))
    try:
        time.sleep(4.0)
        dying.kill()
        out, err = proc.communicate(timeout=300)
    finally:
        dying.start()
    assert out.strip(), err
    summary = json.loads(out)
    assert proc.returncode == 0, err
    df = pd.read_parquet(Path(summary["run_dir"]) / "results.parquet")
    assert len(df) == 18 and set(df["status"]) == {"succeeded"}
    assert any(dying.name in note and "stopped answering" in note
               for note in summary["notes"])
    lost = [r for r in records(Path(summary["run_dir"])) if r["status"] == "lost"]
    assert all(r["host"] == dying.name for r in lost)
    clean = launch("clean", summary["run_dir"])  # the restarted engine kept dead containers
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert_nothing_left(summary["run_id"])
    assert not dying.containers(f"io.launcher.run={summary['run_id']}")


def test_sigint_stops_with_130_and_the_run_resumes(tmp_path: Path) -> None:
    # ${envvar:SLEEP} is read from the launcher's environment and is no parameter, so the
    # resumed run plans the same trials but they no longer sleep.
    path = probe_sweep(tmp_path, {"x": {"values": [1, 2, 3, 4]}}, name="sigint",
                       command=["python3", "/app/experiments/probe.py",
                                "--probe-sleep=${envvar:SLEEP}", "${args}"], stop_grace="2s")
    proc = subprocess.Popen([sys.executable, "-m", "launcher", str(path)], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "CI": "", "SLEEP": "30"})
    time.sleep(5.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume with: launch resume" in out
    run = RunDir(next((tmp_path / "results" / "sigint").glob("*")))
    assert run.manifest().state is RunState.INTERRUPTED
    statuses = set(pd.read_csv(run.path / "results.csv")["status"])
    assert "cancelled" in statuses and "succeeded" not in statuses
    assert_nothing_left(run.run_id)
    resumed = subprocess.run([sys.executable, "-m", "launcher", "resume", str(run.path),
                              "--quiet"], cwd=ROOT, text=True, capture_output=True,
                             timeout=300, env={**os.environ, "CI": "", "SLEEP": "0"})
    assert resumed.returncode == 0, resumed.stderr
    df = pd.read_csv(run.path / "results.csv")
    assert len(df) == 4 and set(df["status"]) == {"succeeded"}


def test_a_second_launcher_on_the_same_run_is_refused(tmp_path: Path) -> None:
    results = run_sweep(probe_sweep(tmp_path, {"probe-exit": {"value": 0}}))
    run = RunDir(results.run_dir)
    with run.locked():
        second = launch("resume", str(run.path))
    assert second.returncode == 1
    assert f"run {run.run_id} is in use by another launcher (pid {os.getpid()}" in second.stderr


def test_resume_refuses_a_changed_image(tmp_path: Path) -> None:
    # the run's image is gone everywhere and its build context has other content now
    results = run_sweep(probe_sweep(tmp_path, {"probe-exit": {"values": [0, 1]}}))
    run = RunDir(results.run_dir)
    manifest = run.manifest()
    run.write_manifest(Manifest({**manifest.to_json(), "image": {
        **manifest.to_json()["image"], "id": "sha256:" + "0" * 64, "digest": "f" * 64}}))
    resumed = launch("resume", str(results.run_dir), "--retry-failed")
    assert resumed.returncode == 1 and "the image changed since run" in resumed.stderr
    assert "its build context now has digest" in resumed.stderr
    assert "start a new run" in resumed.stderr


def test_retries_backoff_and_no_retry_exit_codes(tmp_path: Path) -> None:
    results = run_sweep(probe_sweep(tmp_path, {"probe-exit": {"values": [3, 4]}},
                                    retries=2, no_retry_exit_codes=[4]))
    attempts = Counter(r["trial_id"] for r in records(results.run_dir))
    df = results.df.set_index("param.probe-exit")
    assert attempts[df.loc[3, "trial_id"]] == 3 and df.loc[3, "attempt"] == 3
    assert attempts[df.loc[4, "trial_id"]] == 1
    times = sorted(iso_to_unix(r["started_at"]) for r in records(results.run_dir)
                   if r["trial_id"] == df.loc[3, "trial_id"])
    assert times[2] - times[1] >= 1.5, "the second retry waits about twice the first"


def test_max_consecutive_failures_stops_the_sweep(tmp_path: Path) -> None:
    path = probe_sweep(tmp_path, {"probe-exit": {"value": 1}}, replicas=12,
                       max_consecutive_failures=3, max_parallel=1)
    results = run_sweep(path)
    assert results.outcome is not None
    assert "3 trials failed in a row" in results.outcome.stopped
    counts = results.df["status"].value_counts()
    # the trial that had already taken the freed slot is cancelled, the rest never start
    assert counts["failed"] == 3 and counts.get("cancelled", 0) <= 1
    assert counts["not_started"] + counts.get("cancelled", 0) == 9
    assert RunDir(results.run_dir).manifest().state is RunState.STOPPED


def test_deadline_cancels_running_trials_and_leaves_a_resumable_run(tmp_path: Path) -> None:
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 60}}, replicas=3,
                       deadline="3s", stop_grace="1s")
    started = time.monotonic()
    results = run_sweep(path)
    assert time.monotonic() - started < 30
    assert results.outcome is not None and "deadline of 3s reached" in results.outcome.stopped
    assert set(results.df["status"]) <= {"cancelled", "not_started"}
    assert_nothing_left(results.run_id)


HOSTILE = ["$(touch /tmp/pwned)", "; rm -rf /", "`id`", "../../etc/passwd", "a\nb\r\nc",
           "naïve ☃ 日本語", "x" * 65536, "--probe-exit=9", "${HOME}", "' \" \\"]


def test_hostile_values_arrive_verbatim_and_touch_nothing(tmp_path: Path) -> None:
    before = set(tmp_path.parent.iterdir())
    path = probe_sweep(tmp_path, {"value": {"values": HOSTILE}}, name="hostile")
    results = run_sweep(path)
    assert not Path("/tmp/pwned").exists()
    df = results.df
    assert set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    for _, row in df.iterrows():
        probe = json.loads((results.run_dir / "outputs" / row["trial_id"] /
                            "probe.json").read_text())
        value = json.loads(probe["env"]["LAUNCH_PARAMS"])["value"]
        assert probe["argv"] == [f"--value={value}"]
        assert value in HOSTILE
    assert sorted(json.loads((results.run_dir / "outputs" / t / "probe.json").read_text())
                  ["env"]["LAUNCH_PARAMS"] for t in df["trial_id"]) == sorted(
        json.dumps({"value": v}, ensure_ascii=False) for v in HOSTILE)
    assert set(tmp_path.parent.iterdir()) == before, "nothing written beside the test folder"
    written = {p.relative_to(tmp_path) for p in tmp_path.rglob("*")}
    assert all(str(p).startswith(("hostile.yaml", "results")) for p in written)


def test_trial_container_is_hardened_per_engine_inspect(tmp_path: Path) -> None:
    import docker

    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 20}}, name="hardened",
                       stop_grace="1s")
    client = docker.from_env()
    proc = launch_process(str(path), "--quiet")
    try:
        found: list[dict[str, Any]] = []
        for _ in range(60):
            found = client.api.containers(filters={"label": "io.launcher.sweep=hardened",
                                                   "status": "running"})
            if found:
                break
            time.sleep(0.5)
        assert found, "the trial container never ran"
        info = client.api.inspect_container(found[0]["Id"])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        client.close()
    host = info["HostConfig"]
    assert host["Privileged"] is False and host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert "no-new-privileges" in host["SecurityOpt"] and host["ReadonlyRootfs"] is True
    assert host["PidsLimit"] == 512 and host["Memory"] == 256 * 2**20
    assert host["MemorySwap"] == host["Memory"] and host["NanoCpus"] == 5 * 10**8
    assert host["NetworkMode"] == "none" and info["Config"]["User"] == "10001"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert "/var/run/docker.sock" not in mounts and "/run/docker.sock" not in mounts
    assert not any("docker.sock" in m.get("Source", "") for m in info["Mounts"])
    # /tmp and the trial's HOME (its caches) are the only writable places besides /outputs
    assert set(host.get("Tmpfs") or {}) == {"/tmp", "/home/trial"}
    assert mounts["/outputs"]["Type"] == "volume"
