"""Live progress of a run on stderr: a rich bar with per-host counts on a terminal,
plain lines otherwise, nothing with ``--quiet``. Thread-safe: trials start on worker
threads.

The cost per result is constant: a result only updates counters; the terminal is
redrawn by rich's own refresh thread at a fixed rate (REDRAWS_PER_SECOND), and a frame
shows at most MAX_HOST_ROWS hosts (failing and busy ones first) and one line for the
rest, so 1,000 hosts cost no more per result than one.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from typing import Any, TextIO

from launcher.backends.base import Work
from launcher.search.hyperband import is_number
from launcher.trial import TrialResult, TrialStatus
from launcher.units import format_duration
from launcher.wandb_keys import Metric

REDRAWS_PER_SECOND = 4
MAX_HOST_ROWS = 20


class Progress:
    """Counts per host (running, done, failed) and an ETA."""

    def __init__(self, total: int, workers: list[str], *, mode: str = "auto",
                 stream: TextIO | None = None, metric: Metric | None = None) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "rich" if self.stream.isatty() else "plain"
        self.mode = mode
        self.total = total
        self.workers = workers
        self.running: Counter[str] = Counter()
        self.done: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.finished = 0
        self.stopped = 0  # stopped early (hyperband)
        self.metric = metric
        self.best: tuple[float, str] | None = None  # the sweep metric's best value, trial
        self.started_at = time.monotonic()
        self._lock = threading.Lock()
        self._live: Any = None
        self._bar: Any = None

    def __enter__(self) -> Progress:
        if self.mode == "rich":
            self._start_rich()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._refresh()
            self._live.stop()

    def started(self, work: Work, host: str) -> None:
        with self._lock:
            self.running[host] += 1

    def finished_trial(self, result: TrialResult) -> None:
        with self._lock:
            self.running[result.host] = max(0, self.running[result.host] - 1)
            if result.status is TrialStatus.SUCCEEDED:
                self.done[result.host] += 1
                self._note_best(result)
            elif result.status is TrialStatus.STOPPED:
                self.stopped += 1
            elif result.status not in (TrialStatus.LOST, TrialStatus.CANCELLED):
                self.failed[result.host] += 1
            if result.status.terminal or result.status is TrialStatus.CANCELLED:
                self.finished += 1
        if self.mode == "plain":
            self._line(result)

    def _note_best(self, result: TrialResult) -> None:
        if self.metric is None:
            return
        value: Any = result.metrics.get(self.metric.name)
        if is_number(value) and (self.best is None or self.metric.better(value, self.best[0])):
            self.best = (float(value), result.trial_id)

    def best_text(self) -> str:
        """``best val_acc 0.97 (trial 3f2a...)``, or empty before the first success."""
        if self.metric is None or self.best is None:
            return ""
        return f"best {self.metric.name} {self.best[0]:.6g} (trial {self.best[1]})"

    def eta(self) -> str:
        if not self.finished:
            return "?"
        elapsed = time.monotonic() - self.started_at
        return format_duration(elapsed / self.finished * max(0, self.total - self.finished))

    def _line(self, r: TrialResult) -> None:
        took = f" in {format_duration(r.duration_s)}" if r.duration_s is not None else ""
        why = f": {r.reason}" if r.reason and not r.status.ok else ""
        best = f", {self.best_text()}" if self.best_text() else ""
        self.stream.write(f"[{self.finished:>{len(str(self.total))}}/{self.total}] "
                          f"{r.trial_id} {r.status} on {r.host or '-'}{took}{why} "
                          f"(eta {self.eta()}{best})\n")
        self.stream.flush()

    def _start_rich(self) -> None:
        from rich.console import Console
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(file=self.stream)
        self._bar = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                             console=console)
        self._task = self._bar.add_task("trials", total=self.total)
        self._live = Live(self._render(), console=console,
                          refresh_per_second=REDRAWS_PER_SECOND, get_renderable=self._render)
        self._live.start()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        if self._bar is None:
            return ""
        self._bar.update(self._task, completed=self.finished)
        table = Table(box=None, pad_edge=False)
        for column in ("host", "running", "succeeded", "failed"):
            table.add_column(column, justify="left" if column == "host" else "right")
        for row in self.host_rows():
            table.add_row(*row)
        with self._lock:
            lines = [self.best_text()] + ([f"stopped early: {self.stopped}"] if self.stopped
                                          else [])
        return Group(self._bar, table, *(line for line in lines if line))

    def host_rows(self) -> list[tuple[str, str, str, str]]:
        """(host, running, succeeded, failed) for at most MAX_HOST_ROWS rows: every host
        when they fit, else the hosts with failures, then the busiest, then a last row
        that sums up the others."""
        with self._lock:
            counts = [(h, self.running[h], self.done[h], self.failed[h]) for h in self.workers]
        if len(counts) > MAX_HOST_ROWS:
            ranked = sorted(counts, key=lambda c: (-c[3], -c[1], -c[2]))
            shown, rest = ranked[:MAX_HOST_ROWS - 1], ranked[MAX_HOST_ROWS - 1:]
            order = {h: i for i, h in enumerate(self.workers)}
            counts = sorted(shown, key=lambda c: order[c[0]])
            counts.append((f"... {len(rest)} more hosts", sum(c[1] for c in rest),
                           sum(c[2] for c in rest), sum(c[3] for c in rest)))
        return [(h, str(r), str(d), str(f)) for h, r, d, f in counts]

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()
