"""started.jsonl: one line per container the run created, so that `launch status`,
`launch watch` and `launch logs -f` can show what runs right now.

Records (trials.jsonl) are written only when a trial finishes; this file is the
"started" signal beside them. It is advisory, not a source of truth: lines are appended
with one ``write`` on an ``O_APPEND`` descriptor (atomic for lines this short, so worker
threads never interleave) and never fsync'd, which keeps a start at a few microseconds
next to the engine's tens of milliseconds. A line lost in a crash only hides a running
container from the live views; results never read this file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from launcher.clock import now

STARTED = "started.jsonl"


@dataclass(frozen=True)
class StartedEntry:
    """One container of one attempt, created on ``host`` at ``at`` (ISO UTC)."""

    trial_id: str
    attempt: int
    host: str
    container_id: str
    at: str

    def line(self) -> bytes:
        return (json.dumps({"trial_id": self.trial_id, "attempt": self.attempt,
                            "host": self.host, "container_id": self.container_id,
                            "at": self.at}, ensure_ascii=False) + "\n").encode("utf-8")


class StartedLog:
    """The append side, held open while a run's trials run (thread-safe)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def add(self, trial_id: str, attempt: int, host: str, container_id: str) -> None:
        entry = StartedEntry(trial_id, attempt, host, container_id, now())
        if self._fd >= 0:
            os.write(self._fd, entry.line())

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> StartedLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def parse_started(data: bytes) -> list[StartedEntry]:
    """Every complete line; a torn or damaged one is skipped."""
    out = []
    for line in data.split(b"\n"):
        try:
            raw = json.loads(line)
            out.append(StartedEntry(str(raw["trial_id"]), int(raw["attempt"]),
                                    str(raw["host"]), str(raw["container_id"]),
                                    str(raw["at"])))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def still_running(started: Iterable[StartedEntry],
                  finished: Iterable[tuple[str, int]]) -> list[StartedEntry]:
    """Started attempts that have no record yet (``finished``: (trial_id, attempt) of
    every record), oldest first; a later start of the same attempt replaces an earlier
    one (an adopted container)."""
    done = set(finished)
    latest: dict[tuple[str, int], StartedEntry] = {}
    for entry in started:
        latest[(entry.trial_id, entry.attempt)] = entry
    return [e for key, e in latest.items() if key not in done]
