"""Durations and memory sizes as people write them in sweep files (``90s``, ``2g``)."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_MEMORY = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?", re.IGNORECASE)
_MEMORY_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_duration(value: object) -> float:
    """Seconds from a number or a string such as ``90s``, ``10m``, ``1h30m``, ``500ms``.

    Raises ValueError with a sentence fit for a one-line error.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 90s or 10m, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 90s or 10m, got {value!r}")
    text = value.strip().lower().replace(" ", "")
    try:
        return float(text)
    except ValueError:
        pass
    total, pos = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration such as 90s, 10m or 2h, got {value!r}")
    return total


def parse_memory(value: object) -> int:
    """Bytes from a number or a Docker-style size such as ``512m``, ``2g``, ``1.5GiB``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a memory size such as 512m or 2g, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        match = _MEMORY.fullmatch(value.strip())
        if match:
            return int(float(match.group(1)) * _MEMORY_FACTOR[match.group(2).lower()])
    raise ValueError(f"expected a memory size such as 512m or 2g, got {value!r}")


def format_duration(seconds: float) -> str:
    """A short human form: ``950ms``, ``42s``, ``3m05s``, ``2h01m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
