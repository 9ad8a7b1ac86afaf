"""The live view for the projector: `launch watch RUN` and `launch SWEEP --watch`.

One lane per host with its running containers, finished and failed counts, throughput
and the best value so far, redrawn at a fixed rate (2 per second) until the run ends.
It reads only the run directory (records and started.jsonl, see store/started.py), so
it works from any terminal on any machine that sees the results folder.

The cost is bounded whatever the run's size: each refresh reads only the bytes appended
since the last one (O(new records)), keeps counters per host, and draws at most
``MAX_LANES`` host rows (the rest are summed into one) and ``MAX_SHOWN`` containers
per lane, like the progress display.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from launcher.clock import parse_time
from launcher.defaults import RESULTS_ROOT
from launcher.store import RECORDS, STARTED, RunDir, RunState, StartedEntry, find_run
from launcher.store.records import TrialRecord, parse_records
from launcher.store.started import parse_started
from launcher.trial import TrialResult, TrialStatus
from launcher.units import format_duration

REFRESH_SECONDS = 0.5  # at least once a second, as the issue asks; fixed, not per result
MAX_LANES = 20
MAX_SHOWN = 4  # containers listed per lane; the rest are counted
RATE_WINDOW = 60.0  # seconds of finishes the throughput is measured over
FAILED = frozenset({TrialStatus.FAILED, TrialStatus.TIMED_OUT, TrialStatus.OOM_KILLED})
_RANK = {TrialStatus.SUCCEEDED: 3, TrialStatus.STOPPED: 2, **dict.fromkeys(FAILED, 2)}


@dataclass
class Lane:
    """One host: containers running now, finished attempts, recent finish times."""

    host: str
    running: dict[tuple[str, int], StartedEntry] = field(default_factory=dict)
    succeeded: int = 0
    failed: int = 0
    other: int = 0  # cancelled or lost
    finishes: deque[float] = field(default_factory=deque)  # unix times, last RATE_WINDOW s
    best: float | None = None

    def rate(self, clock: float, since: float | None) -> float:
        """Finishes per second over the last RATE_WINDOW seconds (or since the run's
        first start, when that is more recent)."""
        while self.finishes and self.finishes[0] < clock - RATE_WINDOW:
            self.finishes.popleft()
        window = min(RATE_WINDOW, clock - since) if since else RATE_WINDOW
        return len(self.finishes) / max(window, 1.0)


class RunTail:
    """Follows a run directory: reads what was appended since the last :meth:`poll`."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        manifest = run.manifest()
        self.label = run.label
        self.metric, self.goal = manifest.metric_name, manifest.goal
        self.planned = run.plan().expected  # adaptive runs: run_cap x replicas
        self.lanes: dict[str, Lane] = {h.name: Lane(h.name) for h in manifest.hosts}
        self.best_status: dict[str, TrialStatus] = {}  # per trial, the best status so far
        self.best: tuple[float, str] | None = None  # (value, trial id)
        self.first_start: float | None = None
        self.state = run.state(manifest)
        self._offsets = {RECORDS: 0, STARTED: 0}
        self._state_checked = 0.0

    def poll(self) -> None:
        """Read new records and starts; refresh the run's state about once a second."""
        for entry in parse_started(self._new_lines(STARTED)):
            self._started(entry)
        for record in parse_records(self._new_lines(RECORDS)):
            self._finished(record)
        clock = time.monotonic()
        if clock - self._state_checked >= 1.0:
            self._state_checked = clock
            self.state = self.run.state()

    def _new_lines(self, name: str) -> bytes:
        """Complete lines appended to ``name`` since the last call."""
        try:
            with open(self.run.path / name, "rb") as f:
                f.seek(self._offsets[name])
                data = f.read()
        except FileNotFoundError:
            return b""
        end = data.rfind(b"\n") + 1
        self._offsets[name] += end
        return data[:end]

    def lane(self, host: str) -> Lane:
        return self.lanes.setdefault(host or "?", Lane(host or "?"))

    def _started(self, entry: StartedEntry) -> None:
        self.lane(entry.host).running[(entry.trial_id, entry.attempt)] = entry
        when = parse_time(entry.at)
        if when and (self.first_start is None or when.timestamp() < self.first_start):
            self.first_start = when.timestamp()

    def _finished(self, record: TrialRecord) -> None:
        lane = self.lane(record.host)
        lane.running.pop((record.trial_id, record.attempt), None)
        for other in self.lanes.values():  # an adopted container may have moved lanes
            other.running.pop((record.trial_id, record.attempt), None)
        status = record.status
        if status is TrialStatus.SUCCEEDED:
            lane.succeeded += 1
        elif status in FAILED:
            lane.failed += 1
        else:
            lane.other += 1
        end = parse_time(record.finished_at)
        lane.finishes.append(end.timestamp() if end else time.time())
        previous = self.best_status.get(record.trial_id)
        if previous is None or _RANK.get(status, 1) >= _RANK.get(previous, 1):
            self.best_status[record.trial_id] = status
        if status is TrialStatus.SUCCEEDED:
            self._note_best(lane, record)

    def _note_best(self, lane: Lane, record: TrialRecord) -> None:
        value = record.metrics.get(self.metric) if self.metric else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return
        if lane.best is None or self._better(value, lane.best):
            lane.best = float(value)
        if self.best is None or self._better(value, self.best[0]):
            self.best = (float(value), record.trial_id)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.goal == "maximize" else value < than

    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING

    def counts(self) -> dict[str, int]:
        ok = sum(s is TrialStatus.SUCCEEDED for s in self.best_status.values())
        failed = sum(s in FAILED for s in self.best_status.values())
        return {"succeeded": ok, "failed": failed,
                "other": len(self.best_status) - ok - failed}


# -- rendering ---------------------------------------------------------------------------------
def headline(tail: RunTail) -> str:
    """One line: run, state, finished/planned, failures, throughput, best so far."""
    counts = tail.counts()
    done = counts["succeeded"] + counts["failed"]
    clock = time.time()
    rate = sum(lane.rate(clock, tail.first_start) for lane in tail.lanes.values())
    parts = [f"{tail.label}: {tail.state}", f"finished {done}/{tail.planned}",
             f"failed {counts['failed']}"]
    if counts["other"]:
        parts.append(f"cancelled or lost {counts['other']}")
    parts.append(f"running {sum(len(lane.running) for lane in tail.lanes.values())}")
    parts.append(f"{rate:.2f} trials/s")
    if tail.best:
        parts.append(f"best {tail.metric} {tail.best[0]:.4g} ({tail.best[1]})")
    return ", ".join(parts)


def lane_rows(tail: RunTail, now: float | None = None) -> list[list[str]]:
    """host, running (ids and elapsed), succeeded, failed, trials/s, best: at most
    MAX_LANES rows, the busiest hosts first when there are more (the rest summed)."""
    clock = time.time() if now is None else now
    lanes = list(tail.lanes.values())
    shown, rest = lanes, []
    if len(lanes) > MAX_LANES:
        lanes.sort(key=lambda lane: (-len(lane.running), lane.host))
        shown, rest = lanes[:MAX_LANES - 1], lanes[MAX_LANES - 1:]
    since = tail.first_start
    rows = [[lane.host, _containers(lane, clock), str(lane.succeeded), str(lane.failed),
             f"{lane.rate(clock, since):.2f}", _value(lane.best)] for lane in shown]
    if rest:
        rows.append([f"+{len(rest)} more hosts", str(sum(len(r.running) for r in rest)),
                     str(sum(r.succeeded for r in rest)), str(sum(r.failed for r in rest)),
                     f"{sum(r.rate(clock, since) for r in rest):.2f}", ""])
    return rows


def _containers(lane: Lane, clock: float) -> str:
    entries = sorted(lane.running.values(), key=lambda e: e.at)
    shown = []
    for entry in entries[:MAX_SHOWN]:
        start = parse_time(entry.at)
        elapsed = format_duration(clock - start.timestamp()) if start else "?"
        shown.append(f"{entry.trial_id[:8]} {elapsed}")
    more = f" +{len(entries) - MAX_SHOWN}" if len(entries) > MAX_SHOWN else ""
    return (f"{len(entries)}: " + ", ".join(shown) + more) if entries else "0"


def _value(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


LANE_COLUMNS = ("host", "running", "succeeded", "failed", "trials/s", "best")


def rich_view(tail: RunTail) -> Any:
    """The frame `launch watch` draws: the headline over a table of lanes."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in LANE_COLUMNS:
        table.add_column(column, justify="left" if column in ("host", "running") else "right",
                         overflow="ellipsis", no_wrap=True)
    for row in lane_rows(tail):
        table.add_row(*row)
    best = f" (best {tail.metric}: {tail.goal})" if tail.metric else ""
    return Group(Text(headline(tail), style="bold"), Text(f"one lane per host{best}",
                                                           style="dim"), table)


# -- the loops ---------------------------------------------------------------------------------
def watch(run: str | Path, results_root: str | Path = RESULTS_ROOT, *,
          out: TextIO | None = None, max_seconds: float | None = None) -> RunTail:
    """Draw the live view of a run until it is no longer running (or ``max_seconds``).
    On a terminal it redraws in place (rich); otherwise it prints one headline a second."""
    tail = RunTail(find_run(str(run), Path(results_root)))
    stream = out or sys.stdout
    stop = threading.Event()
    if max_seconds is not None:
        timer = threading.Timer(max_seconds, stop.set)
        timer.daemon = True
        timer.start()
    if stream.isatty():
        _watch_rich(tail, stream, stop)
    else:
        _watch_plain(tail, stream, stop)
    stop.set()
    return tail


def _watch_rich(tail: RunTail, stream: TextIO, stop: threading.Event) -> None:
    from rich.console import Console
    from rich.live import Live

    tail.poll()
    with Live(rich_view(tail), console=Console(file=stream), auto_refresh=False) as live:
        while tail.running and not stop.is_set():
            stop.wait(REFRESH_SECONDS)
            tail.poll()
            live.update(rich_view(tail), refresh=True)
        tail.poll()  # the last records, also when told to stop
        live.update(rich_view(tail), refresh=True)


def _watch_plain(tail: RunTail, stream: TextIO, stop: threading.Event) -> None:
    tail.poll()
    last = 0.0
    while True:
        clock = time.monotonic()
        if clock - last >= 1.0 or not tail.running:
            stream.write(headline(tail) + "\n")
            stream.flush()
            last = clock
        if not tail.running:
            return
        if stop.is_set():  # the run loop ended: say where it got to, once more
            tail.poll()
            stream.write(headline(tail) + "\n")
            stream.flush()
            return
        stop.wait(REFRESH_SECONDS)
        tail.poll()


class WatchInBackground:
    """`launch SWEEP --watch`: the same view on stderr in a thread while the run runs.
    Has the progress display's hooks (both no-ops: the view reads the run directory)."""

    def __init__(self, run: RunDir, stream: TextIO | None = None) -> None:
        self.run = run
        self.stream = stream or sys.stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WatchInBackground:
        self._thread = threading.Thread(target=self._loop, name="watch", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        tail = RunTail(self.run)
        if self.stream.isatty():
            _watch_rich(tail, self.stream, self._stop)
        else:
            _watch_plain(tail, self.stream, self._stop)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def started(self, work: Any, host: str) -> None:
        """Nothing: the view reads started.jsonl."""

    def finished_trial(self, result: TrialResult) -> None:
        """Nothing: the view reads the records."""
