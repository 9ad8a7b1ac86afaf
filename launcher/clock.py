"""Times as the launcher writes and reads them: ISO 8601 in UTC with a ``Z``.

Records and manifests hold text (``2026-12-02T12:51:08.973Z``); Docker reports
nanosecond RFC 3339 times. One place converts between them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def now(timespec: str = "milliseconds") -> str:
    """The current UTC time as ISO text ending in ``Z``."""
    return datetime.now(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_time(stamp: Any) -> datetime | None:
    """ISO UTC text (``...Z``) or a datetime (a table's timestamp) as an aware datetime;
    None when absent or invalid (also pandas' NaT)."""
    if isinstance(stamp, datetime):
        if stamp != stamp:  # NaT is a datetime that equals nothing
            return None
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    if not stamp or not isinstance(stamp, str):
        return None
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    """An aware datetime as the records' text: ``2026-12-02T12:51:08.973Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def short_time(stamp: str | None) -> str:
    """``2026-12-02 12:51:08``: for tables."""
    return stamp.replace("T", " ").rstrip("Z")[:19] if stamp else ""


def from_docker(docker_time: str | None) -> str | None:
    """Docker's nanosecond RFC 3339 time -> the records' millisecond form (None: never)."""
    if not docker_time or docker_time.startswith("0001-"):
        return None
    return docker_time[:23].rstrip("Z") + "Z"


def seconds_since_docker(docker_time: str | None) -> float:
    """Seconds since a Docker timestamp (0 when unknown)."""
    if not docker_time or docker_time.startswith("0001-"):
        return 0.0
    when = datetime.fromisoformat(docker_time[:26].rstrip("Z")).replace(tzinfo=UTC)
    return (datetime.now(UTC) - when).total_seconds()
