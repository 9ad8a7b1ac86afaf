"""Helpers of the fault-injection tests: a launcher process watched line by line, signals
with their timing, and what the run directory and the engines hold afterwards."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from launcher.store import RunDir, RunState
from tests.engines import ScratchEngine
from tests.support import launch_process, records, wait_until


class Launcher:
    """`launch ...` in a subprocess whose output is read as it comes."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.proc = launch_process(*args, env=env)
        self.out: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stdout, self.out),
                                               (self.proc.stderr, self.err))]
        for reader in self._readers:
            reader.start()
        self.signalled_at: list[float] = []

    @staticmethod
    def _read(stream: Any, lines: list[str]) -> None:
        for line in stream:
            lines.append(line)

    def wait_for(self, text: str, seconds: float = 180) -> None:
        """Until a line of stderr or stdout holds ``text`` (bounded)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(text in line for line in [*self.err, *self.out]):
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)  # the readers may still have lines
                if any(text in line for line in [*self.err, *self.out]):
                    return
                raise AssertionError(f"launch exited ({self.proc.returncode}) before "
                                     f"{text!r}: {self.stderr}")
            time.sleep(0.05)
        raise AssertionError(f"no {text!r} within {seconds:g}s: {self.stderr}")

    def send(self, sig: signal.Signals) -> None:
        self.signalled_at.append(time.monotonic())
        self.proc.send_signal(sig)

    def finish(self, seconds: float = 300) -> tuple[int, float]:
        """(exit code, seconds from the last signal to the exit; 0 without a signal)."""
        self.proc.wait(timeout=seconds)
        ended = time.monotonic()
        for reader in self._readers:
            reader.join(timeout=10)
        took = ended - self.signalled_at[-1] if self.signalled_at else 0.0
        return self.proc.returncode, took

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    @property
    def stdout(self) -> str:
        return "".join(self.out)


def the_run(results: Path, sweep: str) -> RunDir:
    return RunDir(wait_until(lambda: next((results / sweep).glob("2*"), None), 120,
                             f"a run of {sweep}"))


def running_containers(engine: ScratchEngine, run_id: str) -> int:
    client = engine.client()
    try:
        return len(client.api.containers(filters={"label": f"io.launcher.run={run_id}",
                                                   "status": "running"}))
    finally:
        client.close()


def statuses(run: RunDir) -> Counter[str]:
    return Counter(pd.read_csv(run.path / "results.csv")["status"])


def record_statuses(run: RunDir) -> Counter[str]:
    return Counter(r["status"] for r in records(run.path))


def succeeded_once_each(run: RunDir) -> None:
    """Every planned trial succeeded, and no trial has two successful records (a
    finished trial never ran again)."""
    df = pd.read_csv(run.path / "results.csv")
    assert sorted(df["trial_id"]) == sorted(run.plan().trial_ids())
    assert set(df["status"]) == {"succeeded"}, df[["status", "reason"]].to_string()
    wins = Counter(r["trial_id"] for r in records(run.path) if r["status"] == "succeeded")
    assert max(wins.values()) == 1, f"a finished trial ran again: {wins.most_common(3)}"


def nothing_left(run_id: str, *engines: ScratchEngine) -> None:
    left = {e.name: e.containers(f"io.launcher.run={run_id}") for e in engines}
    assert not any(left.values()), f"containers left behind: {left}"


def state(run: RunDir) -> RunState:
    return run.manifest().state


def summary(proc: Launcher) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(proc.stdout)
    return data
