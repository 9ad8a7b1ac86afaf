"""Live history lines of a running container: follow its stdout, hand over history rows.

One follower thread per running trial reads the engine's log stream (``follow``) and
passes each batch of history rows (JSON objects with a ``step`` or ``epoch`` key, the
contract's history format) to a sink. It is cheap by construction: a line that does not
start with ``{`` is never parsed, and one chunk of the stream (one write of the job)
becomes one call of the sink. The stream ends when the container stops.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from launcher.trial import HISTORY_KEYS

Rows = list[dict[str, Any]]
RowSink = Callable[[Rows], None]
MAX_LINE = 1 << 20  # a longer line without a newline is dropped, not buffered forever


def history_row(line: bytes) -> dict[str, Any] | None:
    """The history row of one stdout line, or None when it is not one."""
    line = line.strip()
    if not line.startswith(b"{") or not line.endswith(b"}"):
        return None
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if isinstance(row, dict) and "metrics" not in row and any(k in row for k in HISTORY_KEYS):
        return row
    return None


def last_values(history: Rows) -> dict[str, Any]:
    """The last value of every key of a history (a stopped trial's metrics)."""
    out: dict[str, Any] = {}
    for row in history:
        out.update((k, v) for k, v in row.items() if k not in HISTORY_KEYS)
    return out


class LineSplitter:
    """Whole lines out of a byte stream cut anywhere."""

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._rest + chunk
        lines = data.split(b"\n")
        self._rest = lines.pop()
        if len(self._rest) > MAX_LINE:
            self._rest = b""
        return lines

    def flush(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return [rest] if rest else []


def pump(chunks: Iterable[bytes], sink: RowSink) -> int:
    """Feed a log stream's history rows to ``sink``, a batch per chunk; returns the rows."""
    splitter = LineSplitter()
    count = 0
    for chunk in chunks:
        rows = [r for r in map(history_row, splitter.feed(chunk)) if r is not None]
        if rows:
            count += len(rows)
            sink(rows)
    rows = [r for r in map(history_row, splitter.flush()) if r is not None]
    if rows:
        count += len(rows)
        sink(rows)
    return count


def follow(api: Any, container_id: str, sink: RowSink) -> threading.Thread:
    """A daemon thread that pumps the container's stdout into ``sink`` until it stops."""

    def work() -> None:
        with contextlib.suppress(Exception):  # the container went away: nothing to follow
            stream = api.logs(container_id, stdout=True, stderr=False, stream=True,
                              follow=True)
            try:
                pump(stream, sink)
            finally:
                with contextlib.suppress(Exception):
                    stream.close()

    thread = threading.Thread(target=work, name=f"follow-{container_id[:12]}", daemon=True)
    thread.start()
    return thread
