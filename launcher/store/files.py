"""Durable file writes and safe unpacking: what every file of a run directory relies on."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import tarfile
from pathlib import Path
from typing import IO, Any

from launcher.errors import RunError
from launcher.secrets import Masker

_TRIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a file name that cannot leave its folder


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``path`` so that readers see the old or the new file, never a mix."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_error(path, e) from None


def write_error(path: Path, e: OSError) -> RunError:
    """A failed write in a run directory, in one line that says what to do."""
    why = e.strerror or type(e).__name__
    hint = "free some space there, then `launch resume` the run" if e.errno in (
        errno.ENOSPC, errno.EDQUOT) else "check the folder's permissions"
    return RunError(f"cannot write {path}: {why}", hint=hint)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it. A line torn by an earlier crash is sealed first (it
    stays unreadable, and is skipped by readers)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = "\n" + line
        data = line.encode("utf-8")
        if os.write(fd, data) != len(data):  # a short write: the disk filled up
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)
    except OSError as e:
        raise write_error(path, e) from None
    finally:
        os.close(fd)


def read_json_objects(path: Path) -> list[dict[str, Any]]:
    """The JSON-object lines of a file (others skipped); [] when it is absent."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def safe_trial_id(trial_id: str) -> str:
    """Trial ids become file names: only plain names (letters, digits, _ and -) pass."""
    if not _TRIAL_ID.fullmatch(trial_id):
        raise RunError(f"refusing a trial id that is not a launcher id: {trial_id!r}")
    return trial_id


def _extract_masked(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path,
                    mask: Masker) -> None:
    safe = tarfile.data_filter(member, str(dest))  # raises for anything unsafe
    target = dest / safe.name
    target.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    with open(target, "wb") as f:
        if source is not None:
            for chunk in mask.stream(source):
                f.write(chunk)
    os.chmod(target, (safe.mode or 0o644) & 0o755)


def extract_outputs(tar_stream: IO[bytes], dest: Path, mask: Masker | None = None) -> None:
    """Unpack a get_archive tar of /outputs into ``dest``: regular files and folders only,
    nothing outside ``dest`` (Python's "data" extraction filter); the run's secrets are
    masked in the files' contents."""
    try:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
            for member in tar:
                _, _, rel = member.name.partition("/")  # get_archive prefixes "outputs/"
                if not rel or not (member.isfile() or member.isdir()):
                    continue
                member.name = rel
                if mask and member.isfile():
                    _extract_masked(tar, member, dest, mask)
                else:
                    tar.extract(member, dest, filter="data")
    except OSError as e:
        raise write_error(dest, e) from None
    finally:
        tar_stream.close()
