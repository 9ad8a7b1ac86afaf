"""One run's folder: start it, record each finished attempt, finish it, lock it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from launcher.clock import now
from launcher.errors import RunError
from launcher.store.files import append_line, atomic_write, extract_outputs, safe_trial_id
from launcher.store.files import write_json as _write_json
from launcher.store.manifest import BackendRecord, Manifest, RunState
from launcher.store.plan_file import PlanFile
from launcher.store.records import TrialRecord, best_records, parse_records
from launcher.store.started import STARTED, StartedEntry, StartedLog, parse_started, still_running
from launcher.trial import TrialResult

RECORDS = "trials.jsonl"
MANIFEST = "manifest.json"
PLAN = "plan.json"
SWEEP = "sweep.yaml"
LOCK = ".lock"
SUBFOLDERS = ("logs", "history", "outputs")


def new_run_id() -> str:
    """``YYYYMMDD-HHMMSS-xxxx``: UTC time and 4 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


@dataclass
class RunDir:
    """One run's folder. Make one with :meth:`create`, open one with :meth:`open`."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """``sweep/run id``, as `launch ls` shows it."""
        return f"{self.path.parent.name}/{self.path.name}"

    @classmethod
    def create(cls, results_root: Path, folder: str, run_id: str | None = None) -> RunDir:
        """A new, empty run folder ``results_root/folder/run_id``."""
        if folder in ("", ".", "..") or "/" in folder or "\\" in folder:
            raise RunError(f"refusing the run folder name {folder!r}")  # never outside
        path = results_root / folder / (run_id or new_run_id())
        path.mkdir(parents=True, exist_ok=False)
        for sub in SUBFOLDERS:
            (path / sub).mkdir()
        return cls(path)

    @classmethod
    def open(cls, path: Path) -> RunDir:
        if not (path / MANIFEST).is_file():
            raise RunError(f"{path} is not a run directory (no {MANIFEST})", run=str(path))
        return cls(path)

    # -- what was asked --------------------------------------------------------------------
    def start(self, *, sweep_text: str, plan: PlanFile, manifest: Manifest) -> None:
        """Write what was asked and planned, then the manifest (state running) last:
        a folder with a manifest always has its sweep file and plan."""
        atomic_write(self.path / SWEEP, sweep_text)
        _write_json(self.path / PLAN, plan.to_json())
        _write_json(self.path / MANIFEST, manifest.to_json())

    def manifest(self) -> Manifest:
        return Manifest.from_json(self._read_json(MANIFEST), self._where(MANIFEST))

    def write_manifest(self, manifest: Manifest) -> None:
        _write_json(self.path / MANIFEST, manifest.to_json())

    def plan(self) -> PlanFile:
        return PlanFile.from_json(self._read_json(PLAN), self._where(PLAN))

    def sweep_text(self) -> str:
        try:
            return (self.path / SWEEP).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise RunError(f"{self._where(SWEEP)} cannot be read ({type(e).__name__})",
                           run=str(self.path), hint="restore it from a backup") from None

    def finish(self, *, state: RunState, stopped_because: str | None, notes: list[str],
               target_reached: str | None = None,
               backend: BackendRecord | None = None) -> Manifest:
        """Record how the run ended in its manifest; returns the new manifest. ``backend``:
        the workers as known at the end (CPU models read during the run)."""
        extra = backend.to_json() if backend is not None else {}
        manifest = self.manifest().finished(state=state, at=now("seconds"),
                                            stopped_because=stopped_because, notes=notes,
                                            target_reached=target_reached, **extra)
        self.write_manifest(manifest)
        return manifest

    def request_stop(self, why: str) -> None:
        """Say in the manifest, before the launcher stops the running containers, when
        it did: a resume after a second Ctrl-C then knows that a container which ended
        after this moment was stopped by the launcher (cancelled), not failed."""
        manifest = self.manifest()
        if manifest.stop_requested_at is None:
            self.write_manifest(manifest.stopping(at=now(), why=why))

    def resumed(self) -> Manifest:
        """Mark a resumed run as running again (its stop request is handled)."""
        manifest = self.manifest().resumed(at=now("seconds"))
        self.write_manifest(manifest)
        return manifest

    def _read_json(self, name: str) -> object:
        try:
            return json.loads((self.path / name).read_bytes())
        except FileNotFoundError:
            raise RunError(f"{self._where(name)} is missing", run=str(self.path),
                           hint="this folder is not a complete run directory") from None
        except (OSError, ValueError) as e:
            raise RunError(f"{self._where(name)} is damaged ({type(e).__name__})",
                           run=str(self.path), hint="restore it from a backup") from None

    def _where(self, name: str) -> str:
        return str(self.path / name)

    # -- records ---------------------------------------------------------------------------
    def records(self) -> list[TrialRecord]:
        """Every complete record in order; a torn or damaged line is skipped."""
        try:
            data = (self.path / RECORDS).read_bytes()
        except FileNotFoundError:
            return []
        return list(parse_records(data))

    def best(self) -> dict[str, TrialRecord]:
        """One record per trial (see :func:`best_records`)."""
        return best_records(self.records())

    def has_record(self, trial_id: str) -> bool:
        return any(r.trial_id == trial_id for r in self.records())

    def record(self, result: TrialResult, argv: list[str] | None = None) -> TrialRecord:
        """Store a finished attempt: its files first, then the durable record (with the
        argv the container ran, when the caller knows it)."""
        trial_id = safe_trial_id(result.trial_id)
        if result.log:
            atomic_write(self.path / "logs" / f"{trial_id}.log", result.log)
        if result.history:
            lines = "".join(json.dumps(h, ensure_ascii=False) + "\n" for h in result.history)
            atomic_write(self.path / "history" / f"{trial_id}.jsonl", lines)
        if result.outputs is not None:
            extract_outputs(result.outputs, self.path / "outputs" / trial_id)
        return self.append(TrialRecord.of(result, argv))

    def append(self, record: TrialRecord) -> TrialRecord:
        """Append one durable record (fsync'd); the trial's files must already be there."""
        append_line(self.path / RECORDS, record.line())
        return record

    # -- containers running now ------------------------------------------------------------
    def started_log(self) -> StartedLog:
        """The append side of started.jsonl, for the run loop (see store/started.py)."""
        return StartedLog(self.path / STARTED)

    def started(self) -> list[StartedEntry]:
        try:
            return parse_started((self.path / STARTED).read_bytes())
        except FileNotFoundError:
            return []

    def running(self, records: list[TrialRecord] | None = None) -> list[StartedEntry]:
        """Containers started and not recorded yet, while the run is running (a run that
        is not running has none, whatever its files say)."""
        if self.state() is not RunState.RUNNING:
            return []
        records = self.records() if records is None else records
        return still_running(self.started(), ((r.trial_id, r.attempt) for r in records))

    # -- files of a trial --------------------------------------------------------------------
    def log_path(self, trial_id: str) -> Path:
        return self.path / "logs" / f"{safe_trial_id(trial_id)}.log"

    def history_path(self, trial_id: str) -> Path:
        return self.path / "history" / f"{safe_trial_id(trial_id)}.jsonl"

    def outputs_path(self, trial_id: str) -> Path:
        return self.path / "outputs" / safe_trial_id(trial_id)

    # -- state and locking -----------------------------------------------------------------
    def state(self, manifest: Manifest | None = None) -> RunState:
        """The run's state: ``running`` while a launcher holds the run (also a resume of
        a stopped run), ``abandoned`` for a ``running`` run whose launcher is gone, else
        what the manifest says. The one answer that `launch ls`, `status`, `watch` and the
        API give."""
        if self.holder():
            return RunState.RUNNING
        state = (manifest or self.manifest()).state
        return RunState.ABANDONED if state is RunState.RUNNING else state

    def holder(self) -> str:
        """Who holds the run's lock ("pid N on HOST"); empty when nobody does."""
        try:
            handle = open(self.path / LOCK)  # noqa: SIM115 - closed below
        except OSError:
            return ""
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return handle.read().strip() or "another process"
            fcntl.flock(handle, fcntl.LOCK_UN)
            return ""

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
