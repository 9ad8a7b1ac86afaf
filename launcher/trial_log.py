"""A trial's log: capped on the engine's disk, and read only as far as it is kept.

The engine keeps a trial's stdout and stderr in a json-file log of at most
LOG_FILES x ``log_limit`` bytes (it rotates away the oldest part), so 2 GB of output
cost a few MB on the engine's disk. The launcher keeps ``log_limit`` bytes: the first
half (the head of what the engine kept) and the last half (the tail, where the final
``{"metrics": ...}`` line is). It reads the head as a stream that it closes once the
half is full, and the tail with the engine's own ``tail`` (the engine reads its file
from the end), never the whole log.
"""

from __future__ import annotations

import json
from typing import Any

from launcher.engine import container_logs
from launcher.trial import HISTORY_KEYS

LOG_FILES = 2  # json-file rotation: the current file and one before it
TAIL_LINE_GUESS = 80  # bytes per line when asking the engine for the last lines


def log_config(limit: int) -> Any:
    """The engine-side cap of a trial's log (a LogConfig of the create call)."""
    from docker.types import LogConfig

    size = max(limit, 64 * 1024)
    return LogConfig(type="json-file", config={"max-size": str(size),
                                               "max-file": str(LOG_FILES)})


def read_log(api: Any, cid: str, limit: int) -> tuple[str, bool]:
    """(the kept log, whether it was cut): head and tail halves of ``limit`` bytes."""
    half = max(1, limit // 2)
    stream = container_logs(api, cid)
    head = bytearray()
    more = False
    try:
        for chunk in stream:
            head += chunk
            if len(head) > half:
                more = True
                break
    finally:
        stream.close()  # the rest is never read
    if not more:
        return head.decode("utf-8", "replace"), False
    lines = max(100, half // TAIL_LINE_GUESS)
    tail = b"".join(container_logs(api, cid, tail=lines))
    return _joined(bytes(head[:half]), tail[-half:]), True


def _joined(head: bytes, tail: bytes) -> str:
    """Head and tail, each cut at a line boundary, with a marker between them."""
    head_text = head.decode("utf-8", "replace")
    if "\n" in head_text:
        head_text = head_text[:head_text.rindex("\n") + 1]
    tail_text = tail.decode("utf-8", "replace").split("\n", 1)[-1]
    return head_text + "[...]\n" + tail_text


def parse_stdout(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """History lines (JSON with ``step``/``epoch``) and the last ``{"metrics": ...}``."""
    history: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("metrics"), dict):
            metrics = obj["metrics"]
        elif any(k in obj for k in HISTORY_KEYS):
            history.append(obj)
    return history, metrics


def last_error_line(log: str) -> str:
    for line in reversed(log.strip().splitlines()):
        if line.strip() and not line.lstrip().startswith("{"):
            return line.strip()[:200]
    return "no error message"
