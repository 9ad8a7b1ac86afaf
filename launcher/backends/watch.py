"""Which hosts still answer while their trials run.

A frozen engine (stopped with SIGSTOP, or hung) accepts connections and never answers:
every call made to it blocks until the client's timeout, minutes later. While a host has
trials running, a :class:`HostWatch` pings it every few seconds with a short deadline, so
that a silent host is known within seconds and its trials can run elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from launcher.engine import PING_TIMEOUT, ping

WATCH_INTERVAL = 5.0  # seconds between two rounds of pings
WATCH_WORKERS = 8  # hosts pinged at once


class HostWatch:
    """Pings the busy hosts of ``apis`` (by index) in the background."""

    def __init__(self, apis: list[Any], busy: Callable[[int], bool], *,
                 interval: float = WATCH_INTERVAL, timeout: float = PING_TIMEOUT) -> None:
        self.apis = apis
        self.busy = busy
        self.interval = interval
        self.timeout = timeout
        self._silent: dict[int, str] = {}
        self._reported: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="host-watch", daemon=True)

    def start(self) -> HostWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def silent(self) -> dict[int, str]:
        """Hosts found silent since the last call: index -> why (each reported once)."""
        with self._lock:
            found, self._silent = self._silent, {}
        return found

    def _loop(self) -> None:
        with ThreadPoolExecutor(max_workers=WATCH_WORKERS, thread_name_prefix="ping") as pool:
            while not self._stop.wait(self.interval):
                watched = [i for i in range(len(self.apis))
                           if i not in self._reported and self.busy(i)]
                answers = pool.map(lambda i: ping(self.apis[i], self.timeout), watched)
                for index, answered in zip(watched, answers, strict=True):
                    if not answered and not self._stop.is_set():
                        with self._lock:
                            self._reported.add(index)
                            self._silent[index] = f"no answer within {self.timeout:g}s"
