"""Finding runs under a results root: by folder, run id, unique prefix or sweep/run id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from launcher.errors import RunError, UnknownRun
from launcher.store.rundir import MANIFEST, PLAN, RECORDS, SWEEP, RunDir

_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")


def find_run(ref: str, results_root: Path) -> RunDir:
    """A run directory, a run id, a unique prefix of one, or ``sweep/run id``."""
    path = Path(ref)
    if (path / MANIFEST).is_file():
        return RunDir(path)
    if path.is_dir() and any((path / name).exists() for name in (PLAN, RECORDS, SWEEP)):
        raise RunError(f"{path / MANIFEST} is missing", run=str(path),
                       hint="restore it from a backup; the records are in trials.jsonl")
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


def newest_run(results_root: Path, folder: str) -> RunDir | None:
    """The newest run in the sweep folder ``folder`` under the root, if any."""
    runs = [d for d in iter_runs(results_root) if d.parent.name == folder]
    return RunDir(runs[-1]) if runs else None
