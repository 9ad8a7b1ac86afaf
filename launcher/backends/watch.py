"""Which hosts still answer while their trials run.

A frozen engine (stopped with SIGSTOP, or hung) accepts connections and never answers:
every call made to it blocks until the client's timeout, minutes later. While a host has
trials running, a :class:`HostWatch` pings it every few seconds with a short deadline, so
that a silent host is known within seconds and its trials can run elsewhere: one ping per
busy host per round, whatever its number of trials. :func:`overdue` is the verdict on a
trial that an engine which still answers does not end (past its timeout, or a cancel).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from launcher import engine
from launcher.trial import TrialStatus

if TYPE_CHECKING:
    from launcher.container import ContainerSettings

WATCH_INTERVAL = 5.0  # seconds between two rounds of pings
WATCH_WORKERS = 8  # hosts pinged at once
OVERDUE_MARGIN = 30.0  # seconds past timeout + stop_grace before a trial is given up
CANCEL_MARGIN = 5.0  # seconds past a cancel + stop_grace before a trial is given up


def overdue(started: float, settings: ContainerSettings, cancelled_at: float | None,
            clock: float) -> tuple[TrialStatus, str] | None:
    """The verdict on a trial that its engine (which still answers pings) did not end:
    far past its timeout (timed out), or long after a cancel (cancelled); else None.
    ``started``, ``cancelled_at`` and ``clock``: monotonic seconds (0: not started)."""
    if settings.timeout is not None and started and \
            clock > started + settings.timeout + settings.stop_grace + OVERDUE_MARGIN:
        return TrialStatus.TIMED_OUT, (
            f"exceeded its timeout of {settings.timeout:g}s, and its engine did not "
            f"end it within {settings.stop_grace + OVERDUE_MARGIN:g}s more")
    if cancelled_at is not None and clock > cancelled_at + settings.stop_grace + CANCEL_MARGIN:
        return TrialStatus.CANCELLED, "cancelled; its engine did not confirm the stop"
    return None


class HostWatch:
    """Pings the busy hosts of ``apis`` (by index) in the background."""

    def __init__(self, apis: list[Any], busy: Callable[[int], bool], *,
                 interval: float = WATCH_INTERVAL, timeout: float | None = None) -> None:
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
                # read at each round (default: engine.PING_TIMEOUT, which tests shorten)
                timeout = engine.PING_TIMEOUT if self.timeout is None else self.timeout
                answers = pool.map(lambda i, t=timeout: engine.ping(self.apis[i], t), watched)
                for index, answered in zip(watched, answers, strict=True):
                    if not answered and not self._stop.is_set():
                        with self._lock:
                            self._reported.add(index)
                            self._silent[index] = f"no answer within {timeout:g}s"
