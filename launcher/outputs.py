"""A trial's /outputs, copied out of its container after it exits, within outputs_limit.

Outputs that fit are copied as the engine's tar stream, byte for byte. Larger ones are
not an error: the trial keeps its status and metrics, and its copy keeps whole files in
archive order while they fit (``metrics.json`` always, when it is small; the whole
archive is read to find it), the rest is left out and the copy is marked truncated (a
column of the results table, a line of the summary and of the report).
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO, Any

from launcher.trial import METRICS_FILE, OUTPUTS_DIR

SPOOL_BYTES = 8 * 1024 * 1024  # outputs larger than this are spooled to disk
METRICS_MAX = 1024 * 1024  # a metrics.json this small is kept even past the limit


def copy_outputs(api: Any, cid: str, limit: int) -> tuple[IO[bytes] | None, bool]:
    """(/outputs as a tar stream or None, whether the copy was truncated)."""
    import docker.errors

    try:
        stream, _ = api.get_archive(cid, OUTPUTS_DIR)
    except docker.errors.NotFound:
        return None, False
    chunks = iter(stream)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned
    size = 0
    for chunk in chunks:
        size += len(chunk)
        spool.write(chunk)
        if size > limit:
            spool.seek(0)
            truncated = _keep_what_fits(_Chained(spool, chunks), limit)
            spool.close()
            return truncated, True
    spool.seek(0)
    return spool, False


def _keep_what_fits(source: io.RawIOBase, limit: int) -> IO[bytes]:
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned
    kept = 0
    with tarfile.open(fileobj=out, mode="w") as dst:
        try:
            with tarfile.open(fileobj=source, mode="r|") as src:
                for member in src:
                    metrics = member.name.split("/", 1)[-1] == METRICS_FILE
                    if member.isdir():
                        dst.addfile(member)
                    elif member.isfile() and (kept + member.size <= limit or (
                            metrics and member.size <= METRICS_MAX)):
                        dst.addfile(member, src.extractfile(member))
                        kept += member.size
        except (tarfile.TarError, OSError):  # a stream cut short: keep what was whole
            pass
    out.seek(0)
    return out


class _Chained(io.RawIOBase):
    """A file over what was spooled, then the rest of the engine's stream."""

    def __init__(self, head: IO[bytes], rest: Iterator[bytes]) -> None:
        self.head, self.rest = head, rest
        self.buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if not self.buffer:
            self.buffer = self.head.read(len(target)) or next(self.rest, b"")
        data = self.buffer[:len(target)]
        self.buffer = self.buffer[len(data):]
        target[:len(data)] = data
        return len(data)


def metrics_from_tar(tar_stream: IO[bytes] | None) -> dict[str, Any] | None:
    """The metrics in /outputs/metrics.json of a get_archive tar, if there is one."""
    if tar_stream is None:
        return None
    try:
        with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
            for member in tar:
                if member.isfile() and member.name.split("/", 1)[-1] == METRICS_FILE:
                    f = tar.extractfile(member)
                    data = json.loads(f.read()) if f else None
                    return data if isinstance(data, dict) else None
    except (tarfile.TarError, ValueError):
        return None
    finally:
        tar_stream.seek(0)
    return None
