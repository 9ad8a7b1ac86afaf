"""SIGINT, SIGTERM and SIGHUP during a run, at every phase.

The first signal is acted on at once, in a way that fits the phase:

- setting up (connecting, building, shipping the image): :class:`Interrupted` is raised
  in the main thread, which unwinds the set-up (nothing has run yet);
- running (adopting containers, trials, recording results): the run loop is asked to
  stop: no new trials, running ones stopped, every result that comes back recorded;
- finishing (tables, manifest, teardown): noted, and the short remaining work is done.

A second signal exits at once with 130; what is left is cleaned up by ``launch resume``
(a container whose result was not recorded yet is adopted there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from launcher.errors import EXIT_INTERRUPTED

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """A signal arrived while the run was being set up (nothing had started)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class Interrupts:
    """What the handler does with a first signal, by phase; the first signal's name."""

    def __init__(self) -> None:
        self.received = ""
        self._stop: Callable[[str], None] | None = None
        self._deferred = 0

    @contextlib.contextmanager
    def stopping_with(self, stop: Callable[[str], None]) -> Iterator[None]:
        """While the block runs, a first signal calls ``stop(signal name)``."""
        previous, self._stop = self._stop, stop
        try:
            if self.received:  # a signal came just before: stop at once
                stop(self.received)
            yield
        finally:
            self._stop = previous

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """While the block runs, a first signal is only noted (files being written)."""
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1

    def handle(self, signum: int, frame: FrameType | None = None) -> None:
        name = signal.Signals(signum).name
        if self.received:
            _say("second interrupt, exiting now; `launch resume` continues the run and "
                 "cleans up what is left")
            os._exit(EXIT_INTERRUPTED)
        self.received = name
        if self._stop is not None:
            _say(f"{name}: stopping (running trials are being stopped and recorded; "
                 "interrupt again to exit at once)")
            self._stop(name)
        elif self._deferred:
            _say(f"{name}: finishing the run's files first (interrupt again to exit at once)")
        else:
            _say(f"{name}: stopping the set-up")
            raise Interrupted(name)


def _say(text: str) -> None:
    with contextlib.suppress(Exception):
        sys.stderr.write(f"\nlaunch: {text}\n")
        sys.stderr.flush()


@contextlib.contextmanager
def handled_signals(interrupts: Interrupts | None = None) -> Iterator[Interrupts]:
    """Handle SIGINT, SIGTERM and SIGHUP for the block (in the main thread only; elsewhere
    the caller's handlers stay). Nested use keeps the outer handling."""
    current = signal.getsignal(signal.SIGTERM)
    if isinstance(current, _Handler):
        yield current.interrupts
        return
    interrupts = interrupts or Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    handler = _Handler(interrupts)
    previous: dict[int, Any] = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield interrupts
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Handler:
    """The installed handler (a class, so that nested use can recognise it)."""

    def __init__(self, interrupts: Interrupts) -> None:
        self.interrupts = interrupts

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.interrupts.handle(signum, frame)
