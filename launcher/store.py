"""The run directory: the durable truth of a run, and everything derived from it.

    <results>/<sweep>/<run id>/
      sweep.yaml  plan.json  manifest.json     what was asked, planned, where it ran
      trials.jsonl                            one fsync'd record per finished attempt
      logs/<trial>.log  history/<trial>.jsonl  outputs/<trial>/...
      results.parquet  results.csv            derived, rebuilt from the records

A record is appended (and fsync'd) only after the trial's files are in place, so a
record always means "finished and complete". A torn last line (the launcher killed
mid-write) is ignored; a trial recorded twice counts once (see :func:`best_records`).
Derived files are written atomically: temp file, fsync, rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from launcher.errors import RunError, UnknownRun
from launcher.trial import TrialResult, TrialStatus

RECORDS = "trials.jsonl"
MANIFEST = "manifest.json"
PLAN = "plan.json"
SWEEP = "sweep.yaml"
LOCK = ".lock"
_TRIAL_ID = re.compile(r"[0-9a-f]{6,64}")
_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
_STATUS_RANK = {TrialStatus.SUCCEEDED: 3, TrialStatus.FAILED: 2, TrialStatus.TIMED_OUT: 2,
                TrialStatus.OOM_KILLED: 2, TrialStatus.CANCELLED: 1, TrialStatus.LOST: 1,
                TrialStatus.NOT_STARTED: 0}


def new_run_id() -> str:
    """``YYYYMMDD-HHMMSS-xxxx``: UTC time and 4 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``path`` so that readers see the old or the new file, never a mix."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=1, ensure_ascii=False, default=str) + "\n")


@dataclass
class RunDir:
    """One run's folder. Open it with :meth:`create` or :meth:`open`."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @classmethod
    def create(cls, results_root: Path, sweep_name: str, run_id: str | None = None) -> RunDir:
        run_id = run_id or new_run_id()
        path = results_root / sweep_name / run_id
        path.mkdir(parents=True, exist_ok=False)
        for sub in ("logs", "history", "outputs"):
            (path / sub).mkdir()
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        if not (path / MANIFEST).is_file():
            raise RunError(f"{path} is not a run directory (no {MANIFEST})", run=str(path))
        return cls(path)

    # -- what was asked ----------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return dict(json.loads((self.path / MANIFEST).read_text()))

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.path / MANIFEST, manifest)

    def plan(self) -> dict[str, Any]:
        return dict(json.loads((self.path / PLAN).read_text()))

    # -- records ---------------------------------------------------------------------------
    def records(self) -> list[dict[str, Any]]:
        """Every complete record in order; a torn or corrupt line is skipped."""
        path = self.path / RECORDS
        if not path.exists():
            return []
        out = []
        for line in path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # torn by a crash mid-append: the trial counts as not recorded
            if isinstance(record, dict) and "trial_id" in record and "status" in record:
                out.append(record)
        return out

    def record(self, result: TrialResult) -> None:
        """Store a finished attempt: its files first, then the durable record."""
        trial_id = safe_trial_id(result.trial_id)
        if result.log:
            atomic_write(self.path / "logs" / f"{trial_id}.log", result.log)
        if result.history:
            lines = "".join(json.dumps(h, ensure_ascii=False) + "\n" for h in result.history)
            atomic_write(self.path / "history" / f"{trial_id}.jsonl", lines)
        if result.outputs is not None:
            extract_outputs(result.outputs, self.path / "outputs" / trial_id)
        line = json.dumps(result.record(), ensure_ascii=False, default=str) + "\n"
        fd = os.open(self.path / RECORDS, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # seal a line torn by a crash; it stays unreadable
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- locking ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the run's lock for the block (see :meth:`lock`)."""
        handle = self.lock()
        try:
            yield
        finally:
            handle.close()

    def lock(self) -> IO[str]:
        """Hold the run for this process; a second launcher is refused with a message."""
        handle = open(self.path / LOCK, "a+")  # noqa: SIM115 - held until the run ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunError(f"run {self.run_id} is in use by another launcher ({holder})",
                           run=str(self.path), hint="wait for it to finish, or stop it; "
                           "then `launch resume` continues the run") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        handle.flush()
        return handle


def best_records(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One record per trial: the best status wins (succeeded > other terminal >
    lost/cancelled), and the latest among equals. A retry racing a late result
    therefore counts once."""
    best: dict[str, dict[str, Any]] = {}
    for record in records:
        previous = best.get(record["trial_id"])
        rank = _STATUS_RANK.get(TrialStatus(record["status"]), 0)
        if previous is None or rank >= _STATUS_RANK.get(TrialStatus(previous["status"]), 0):
            best[record["trial_id"]] = record
    return best


def safe_trial_id(trial_id: str) -> str:
    """Trial ids become file names: only the launcher's own hex ids are accepted."""
    if not _TRIAL_ID.fullmatch(trial_id):
        raise RunError(f"refusing a trial id that is not a launcher id: {trial_id!r}")
    return trial_id


def extract_outputs(tar_stream: IO[bytes], dest: Path) -> None:
    """Unpack a get_archive tar of /outputs into ``dest``: regular files and folders only,
    nothing outside ``dest`` (Python's "data" extraction filter)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
        for member in tar:
            _, _, rel = member.name.partition("/")  # get_archive prefixes "outputs/"
            if not rel or not (member.isfile() or member.isdir()):
                continue
            member.name = rel
            tar.extract(member, dest, filter="data")
    tar_stream.close()


def find_run(ref: str, results_root: Path) -> RunDir:
    """A run directory, a run id, a unique prefix of one, or ``sweep/run id``."""
    path = Path(ref)
    if (path / MANIFEST).is_file():
        return RunDir(path)
    if not results_root.is_dir():
        raise UnknownRun(f"no run {ref!r}: the results root {results_root} does not exist",
                       hint="pass a run directory, or --results DIR")
    matches = [d for d in iter_runs(results_root)
               if d.name.startswith(ref) or f"{d.parent.name}/{d.name}".startswith(ref)]
    if not matches:
        raise UnknownRun(f"no run matches {ref!r} under {results_root}",
                       hint="`launch ls` lists the runs")
    if len(matches) > 1:
        names = ", ".join(f"{d.parent.name}/{d.name}" for d in matches[:5])
        raise UnknownRun(f"{ref!r} matches {len(matches)} runs ({names}...)",
                       hint="give more of the run id")
    return RunDir(matches[0])


def iter_runs(results_root: Path) -> Iterator[Path]:
    """Run directories under the root, oldest first."""
    runs = [d for d in results_root.glob("*/*") if _RUN_ID.fullmatch(d.name)
            and (d / MANIFEST).is_file()]
    yield from sorted(runs, key=lambda d: d.name)


def newest_run(results_root: Path, sweep_name: str) -> RunDir | None:
    runs = [d for d in iter_runs(results_root) if d.parent.name == sweep_name]
    return RunDir(runs[-1]) if runs else None


# -- issue 13: the build inputs recorded with the run's image --------------------------
def recorded_build_inputs(run: RunDir) -> dict[str, Any]:
    """manifest.json's ``image.inputs``: the build args, base image IDs, wheels key and
    the sha256 of every file of the build context (empty for runs made before it)."""
    return dict((run.manifest().get("image") or {}).get("inputs") or {})
