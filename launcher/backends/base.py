"""The backend interface (small, like Hydra's Launcher) and the shared work queue.

A backend places trials on workers and yields their results as they finish:

- ``setup(image=..., run=...)``: make the image runnable on every worker (ship it where
  it is missing, verify its ID); fail fast with a clear error. Starts no trial.
- ``launch(queue)``: run the queue's work, yield one TrialResult per finished attempt.
  A trial that fails, times out or is OOM-killed is a result with a status, never an
  exception. The caller may put more work (retries) into the queue between results.
- ``adopt(trials)``: after a launcher died, take over its containers (see the method).
- ``cancel()``: stop starting trials and stop the running ones (safe from any thread).
- ``stop_trial(trial_id, attempt, reason)``: stop one running trial on purpose (early
  termination); its result comes back with status ``stopped``, its log and history kept.
- ``teardown()``: idempotent; removes everything the backend started.

Live metric lines: when the run context has ``on_history``, a backend passes it the
history lines (JSON lines with ``step``/``epoch``) of every running trial as they are
printed. Backends know nothing of samplers or stopping rules: adaptive search fills the
queue through its ``supply`` when it runs dry, early termination reads the live lines and
calls ``stop_trial``.
"""

from __future__ import annotations

import heapq
import itertools
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from launcher.clock import now
from launcher.command import Argv, render
from launcher.container import ContainerSettings
from launcher.image import BuiltImage
from launcher.store.manifest import BackendRecord
from launcher.trial import Trial, TrialResult

if TYPE_CHECKING:
    from launcher.hosts import Host
    from launcher.spec import SweepSpec


@dataclass(frozen=True)
class Work:
    """One attempt of one trial, waiting for a slot."""

    trial: Trial
    attempt: int = 1
    queued_at: str = field(default_factory=now)


class Supply(Protocol):
    """More work on demand (adaptive search): asked only when the queue runs dry."""

    def ask(self) -> list[Trial]: ...

    def remaining(self) -> int: ...


class WorkQueue:
    """Trials ready to run, plus retries that become ready after a backoff delay, plus
    (adaptive search) a supply asked for the next trials whenever a slot finds it dry."""

    def __init__(self, trials: Iterable[Trial] = ()) -> None:
        self._ready: deque[Work] = deque(Work(t) for t in trials)
        self._delayed: list[tuple[float, int, Work]] = []
        self._seq = itertools.count()
        self.closed = False
        # Set by the runner for metric.target: a finished result that says "start nothing
        # more". Backends call settle() before they refill the slots that results freed.
        self.hold: Callable[[TrialResult], bool] | None = None
        # Set by the runner for adaptive search: results are told before the freed slot
        # asks for the next configuration.
        self.observe: Callable[[TrialResult], None] | None = None
        self.supply: Supply | None = None

    def settle(self, results: Iterable[TrialResult]) -> None:
        """Tell the observer each finished result; close the queue at once when one
        reaches the sweep's target."""
        results = list(results)
        if self.observe is not None:
            for r in results:
                self.observe(r)
        if self.hold is not None and any(self.hold(r) for r in results):
            self.close()

    def put(self, trial: Trial, attempt: int, delay: float = 0.0) -> None:
        work = Work(trial, attempt)
        if delay <= 0:
            self._ready.append(work)
        else:
            heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._seq), work))

    def pop_ready(self) -> Work | None:
        if self.closed:
            return None
        clock = time.monotonic()
        while self._delayed and self._delayed[0][0] <= clock:
            self._ready.append(heapq.heappop(self._delayed)[2])
        if not self._ready and self.supply is not None and self.supply.remaining():
            self._ready.extend(Work(t) for t in self.supply.ask())
        return self._ready.popleft() if self._ready else None

    def next_due_in(self) -> float | None:
        """Seconds until a delayed retry becomes ready (None: nothing is delayed)."""
        if not self._delayed:
            return None
        return max(0.0, self._delayed[0][0] - time.monotonic())

    def empty(self) -> bool:
        more = self.supply is not None and self.supply.remaining() > 0
        return self.closed or not (self._ready or self._delayed or more)

    def close(self) -> list[Work]:
        """Stop handing out work; return what was left."""
        self.closed = True
        left = list(self._ready) + [w for _, _, w in sorted(self._delayed)]
        self._ready.clear()
        self._delayed.clear()
        return left

    def __len__(self) -> int:
        return len(self._ready) + len(self._delayed)


Observer = Callable[[Work, str], None]  # called when an attempt starts on a worker
# called when an attempt's container exists on a worker: (work, worker, container id)
ContainerObserver = Callable[[Work, str, str], None]
HistorySink = Callable[[str, int, list[dict[str, Any]]], None]  # trial_id, attempt, lines


@dataclass
class RunContext:
    """What a backend needs to know about the run (the same for every trial)."""

    run_id: str
    settings: ContainerSettings
    command: tuple[str, ...] | None = None
    program: str | None = None
    environ: dict[str, str] = field(default_factory=dict)
    on_start: Observer | None = None
    on_container: ContainerObserver | None = None
    on_history: HistorySink | None = None  # live history lines (early termination)
    secrets: tuple[str, ...] = ()  # ${envvar:...} values: masked in everything written
    # Adaptive search asks for a trial when a slot frees up: no queue ahead of the slots.
    asks_as_slots_free: bool = False

    def argv(self, trial: Trial) -> Argv:
        return render(self.command, self.program, trial, self.environ)

    def recorded_argv(self, trial: Trial) -> list[str]:
        """The argv as the run's records keep it: ``${envvar:NAME}`` stays a macro (its
        value is never written to disk) and a kept image entrypoint is "<entrypoint>"."""
        masked = {name: f"${{envvar:{name}}}" for name in self.environ}
        argv = render(self.command, self.program, trial, masked)
        return [*argv.entrypoint] if argv.entrypoint is not None else \
            ["<entrypoint>", *argv.command]


class AllWorkersLost(Exception):
    """Every worker is down or quarantined; the run stops (and can be resumed)."""


class Backend(ABC):
    """Places trials on workers. See the module docstring for the contract."""

    name: str = "backend"

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> Backend:
        """A backend for ``spec``, connected to its workers (it owns its section of the
        sweep file); with ``spec.skip_unreachable`` workers that do not answer are left
        out (named in its notes) while one does. Backends made in code (tests) use their
        constructors instead."""
        raise NotImplementedError(f"the {cls.name} backend cannot be built from a sweep")

    def builder(self) -> Host:
        """The engine the image is built on."""
        raise NotImplementedError(f"the {self.name} backend has no build engine")

    def hosts(self) -> list[Host]:
        """The Docker hosts trials run on, when the backend has its own (for finding a
        run's image again); empty otherwise."""
        return []

    def close(self) -> None:  # noqa: B027 - a hook: most test backends hold nothing
        """Close the backend's connections (after teardown); idempotent."""

    @abstractmethod
    def setup(self, *, image: BuiltImage, run: RunContext) -> None: ...

    @abstractmethod
    def launch(self, queue: WorkQueue) -> Iterator[TrialResult]: ...

    @abstractmethod
    def cancel(self) -> None: ...

    @abstractmethod
    def teardown(self) -> None: ...

    def stop_trial(self, trial_id: str, attempt: int, reason: str) -> None:
        """Stop one running attempt on purpose; it ends as ``stopped`` with ``reason``.
        Safe from any thread; an attempt that already ended is left alone."""
        raise NotImplementedError(f"the {self.name} backend cannot stop a single trial")

    def adopt(self, trials: dict[str, Trial], recorded: Iterable[str] = ()) -> set[str]:
        """Take over this run's containers still on the workers (a launcher died): those of
        ``trials`` are reported by the next ``launch`` like any other (running ones waited
        for, exited ones collected), while new trials start beside them; the others, and
        any whose container ID is in ``recorded`` (already recorded), are removed.
        Returns the ids of the adopted trials. The default adopts nothing (``teardown``
        removes leftovers)."""
        return set()

    def describe(self, *, final: bool = False) -> BackendRecord:
        """Provenance of the workers for the manifest (``final``: at the end of the run,
        with what was learned meanwhile)."""
        return BackendRecord(self.name)

    def workers(self) -> list[str]:
        """Worker names, for the progress display."""
        return []

    def notes(self) -> list[str]:
        """Things the summary should say (quarantined hosts, ...)."""
        return []
