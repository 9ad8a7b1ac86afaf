"""One launcher run in a fresh process, measured from inside: ``python -m
benchmarks.scale_probe SWEEP.yaml [--tty]``.

Prints one JSON object: wall time of set-up (connect, image, backend set-up: what
``launcher.api.prepared_backend`` does on entry) and teardown (its exit), the run's wall
time, the launcher's CPU (this process, every thread; the simulated engines run in
another process), and peaks of threads, open files and RSS sampled every 20 ms. With
``--tty`` stderr is a pseudo-terminal, so the progress display is the rich one a user
sees (its output is read and thrown away).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any


class Peaks:
    """Samples /proc/self every ``every`` seconds in a daemon thread."""

    def __init__(self, every: float = 0.02) -> None:
        self.threads = self.fds = 0
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="peaks")

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every)

    def sample(self) -> None:
        self.threads = max(self.threads, threading.active_count())
        with contextlib.suppress(OSError):
            self.fds = max(self.fds, len(os.listdir("/proc/self/fd")))


def _tty_stderr() -> None:
    """Make stderr a pseudo-terminal and drain it, so that rich draws as on a terminal."""
    master, slave = os.openpty()
    os.dup2(slave, 2)
    sys.stderr = os.fdopen(2, "w", buffering=1)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True, name="tty-drain").start()


def _timed_phases() -> dict[str, float]:
    """Wrap prepared_backend's entry (set-up) and exit (teardown) with timers."""
    import launcher.api as api

    phases = {"setup_s": 0.0, "teardown_s": 0.0}
    enter, leave = api.prepared_backend.__enter__, api.prepared_backend.__exit__

    def timed_enter(self: Any) -> Any:
        started = time.perf_counter()
        try:
            return enter(self)
        finally:
            phases["setup_s"] += time.perf_counter() - started

    def timed_exit(self: Any, *exc: object) -> None:
        started = time.perf_counter()
        try:
            leave(self, *exc)
        finally:
            phases["teardown_s"] += time.perf_counter() - started

    api.prepared_backend.__enter__ = timed_enter  # type: ignore[method-assign]
    api.prepared_backend.__exit__ = timed_exit  # type: ignore[method-assign]
    return phases


def main(argv: list[str]) -> None:
    path = argv[0]
    tty = "--tty" in argv
    if tty:
        _tty_stderr()
    import docker  # noqa: F401 - imports are not what is measured
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import launcher.api as api

    phases = _timed_phases()
    cpu, wall = time.process_time(), time.perf_counter()
    with Peaks() as peaks:
        results = api.run_sweep(path, progress="auto" if tty else "quiet")
        peaks.sample()
    out: dict[str, Any] = {"wall_s": time.perf_counter() - wall, **phases,
                           "cpu_s": time.process_time() - cpu, "threads_peak": peaks.threads,
                           "fds_peak": peaks.fds,
                           "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                           / 1024}
    df = results.df
    out["trials"] = len(df)
    out["succeeded"] = int((df["status"] == "succeeded").sum())
    out["hosts_used"] = int(df["host"].nunique())
    out["run_dir"] = str(Path(results.run_dir))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
