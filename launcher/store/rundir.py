"""One run's folder: start it, record each finished attempt, finish it, lock it."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from launcher.clock import now
from launcher.errors import RunError
from launcher.secrets import Masker
from launcher.store.asked import AskedConfig, parse_asked
from launcher.store.files import (
    append_line,
    atomic_write,
    extract_outputs,
    read_json_objects,
    safe_trial_id,
    write_error,
)
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
    """One run's folder. Make one with :meth:`create`, open one with :meth:`open`.
    ``mask`` hides the run's secrets in everything it writes (see launcher.secrets)."""

    path: Path
    mask: Masker = field(default_factory=Masker, compare=False, repr=False)

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
        path = results_root / folder / (run_id or new_run_id())
        if folder in ("", ".", "..") or "/" in folder or "\\" in folder or \
                path.resolve().parent.parent != results_root.resolve():
            raise RunError(f"the run folder {path} would not be a folder of the sweep "
                           f"{folder!r} under the results root {results_root}",
                           hint="give the sweep a plain name")
        try:
            path.mkdir(parents=True, exist_ok=False)
            for sub in SUBFOLDERS:
                (path / sub).mkdir()
        except OSError as e:
            raise write_error(path, e) from None
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
        manifest = manifest.with_fields(plan_sha256=plan.sha256())
        _write_json(self.path / MANIFEST, manifest.to_json())

    def changed_inputs(self, manifest: Manifest) -> list[str]:
        """Which of sweep.yaml and plan.json no longer match the hashes the run started
        with (a run too old to have a hash is taken as it is)."""
        changed = []
        try:
            sweep = hashlib.sha256((self.path / SWEEP).read_bytes()).hexdigest()
        except OSError:
            sweep = ""
        if manifest.sweep_sha256 and sweep != manifest.sweep_sha256:
            changed.append(SWEEP)
        if manifest.plan_sha256 and self.plan().sha256() != manifest.plan_sha256:
            changed.append(PLAN)
        return changed

    def manifest(self) -> Manifest:
        return Manifest.from_json(self._read_json(MANIFEST), self._where(MANIFEST))

    def write_manifest(self, manifest: Manifest) -> None:
        _write_json(self.path / MANIFEST, manifest.to_json())

    def plan(self) -> PlanFile:
        """plan.json, and for an adaptive run the trials asked so far after its own."""
        plan = PlanFile.from_json(self._read_json(PLAN), self._where(PLAN))
        if plan.adaptive is None:
            return plan
        return plan.with_asked([t for a in self.asked() for t in a.planned()])

    def sweep_text(self) -> str:
        try:
            return (self.path / SWEEP).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunError(f"{self._where(SWEEP)} is missing", run=str(self.path),
                           hint="restore it from a backup (`launch resume` needs it; the "
                           "results can still be read)") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RunError(f"{self._where(SWEEP)} is damaged ({type(e).__name__})",
                           run=str(self.path), hint="restore it from a backup (`launch resume` "
                           "needs it; the results can still be read)") from None

    def finish(self, *, state: RunState, stopped_because: str | None, notes: list[str],
               target_reached: str | None = None,
               backend: BackendRecord | None = None) -> Manifest:
        """Record how the run ended in its manifest; returns the new manifest. ``backend``:
        the workers as known at the end (CPU models read during the run); hosts of an
        earlier launcher of the run that it no longer uses stay listed (`launch clean`
        finds their leftovers)."""
        before = self.manifest()
        extra = backend.to_json() if backend is not None else {}
        if backend is not None:
            urls = {h.url for h in backend.hosts}
            extra["hosts"] = [*extra["hosts"], *(dataclasses.asdict(h) for h in before.hosts
                                                 if h.url not in urls)]
        mask = self.mask.text
        manifest = before.finished(
            state=state, at=now("seconds"), notes=[mask(n) for n in notes],
            stopped_because=mask(stopped_because) if stopped_because else None,
            target_reached=mask(target_reached) if target_reached else None, **extra)
        self.write_manifest(manifest)
        return manifest

    def request_stop(self, why: str) -> None:
        """Say in the manifest, before the launcher stops the running containers, when
        it did (shown by `launch status`; which containers the launcher stopped, their
        names say: see container.mark_stopped)."""
        manifest = self.manifest()
        if manifest.stop_requested_at is None:
            self.write_manifest(manifest.stopping(at=now(), why=self.mask.text(why)))

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
        return list(parse_records(self._records_bytes()))

    def _records_bytes(self) -> bytes:
        try:
            return (self.path / RECORDS).read_bytes()
        except FileNotFoundError:
            return b""

    def best(self) -> dict[str, TrialRecord]:
        """One record per trial (see :func:`best_records`)."""
        return best_records(self.records())

    def asked(self) -> list[AskedConfig]:
        """The configurations an adaptive search asked for, in order."""
        return list(parse_asked(self._records_bytes()))

    def ask(self, asked: AskedConfig) -> AskedConfig:
        """Record an asked configuration durably, before any of its trials starts."""
        append_line(self.path / RECORDS, asked.line())
        return asked

    def has_record(self, trial_id: str) -> bool:
        return any(r.trial_id == trial_id for r in self.records())

    def record(self, result: TrialResult, argv: list[str] | None = None) -> TrialRecord:
        """Store a finished attempt: its files first, then the durable record (with the
        argv the container ran, when the caller knows it). The run's secrets are masked
        in ``result`` itself (so what is shown afterwards is masked)."""
        trial_id = safe_trial_id(result.trial_id)
        self._mask(result)
        if result.log:
            atomic_write(self.path / "logs" / f"{trial_id}.log", result.log)
        if result.history:
            lines = "".join(json.dumps(h, ensure_ascii=False) + "\n" for h in result.history)
            atomic_write(self.path / "history" / f"{trial_id}.jsonl", lines)
        if result.outputs is not None:
            extract_outputs(result.outputs, self.path / "outputs" / trial_id, self.mask)
        return self.append(TrialRecord.of(result, self.mask.value(argv) if argv else argv))

    def _mask(self, result: TrialResult) -> None:
        if not self.mask:
            return
        result.log = self.mask.text(result.log)
        result.reason = self.mask.text(result.reason)
        result.history = self.mask.value(result.history)
        result.metrics = self.mask.value(result.metrics)
        result.extra = self.mask.value(result.extra)

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

    def history(self, trial_id: str) -> list[dict[str, Any]]:
        """A finished trial's history lines (empty when it wrote none)."""
        return read_json_objects(self.history_path(trial_id))

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
