"""Finding runs under a results root: the references every command that takes RUN accepts.

    results/grid/20261202-125108-7a71   a run directory
    20261202-125108-7a71                a run id
    20261202-1251 / 7a71                any unique prefix or suffix of a run id
    grid/2026... / grid/7a71            the same within one sweep's folder
    latest, latest~1, grid/latest~2     the newest run (under the root, or of one sweep), or
                                        the one N before it
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from launcher.errors import RunError, UnknownRun
from launcher.store.rundir import MANIFEST, PLAN, RECORDS, SWEEP, RunDir

_RUN_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{4}")
_LATEST = re.compile(r"(?:(?P<sweep>[^/]+)/)?latest(?:~(?P<back>\d+))?")


def find_run(ref: str, results_root: Path) -> RunDir:
    """The run that ``ref`` names (see the module docstring); UnknownRun (a usage error)
    when none or several match."""
    path = Path(ref)
    if (path / MANIFEST).is_file():
        return RunDir(path)
    if path.is_dir() and any((path / name).exists() for name in (PLAN, RECORDS, SWEEP)):
        raise RunError(f"{path / MANIFEST} is missing", run=str(path),
                       hint="restore it from a backup; the records are in trials.jsonl")
    if not results_root.is_dir():
        raise UnknownRun(f"no run {ref!r}: the results root {results_root} does not exist",
                         hint="pass a run directory, or --results DIR")
    latest = _LATEST.fullmatch(ref)
    if latest:
        return _latest(results_root, latest.group("sweep"), int(latest.group("back") or 0),
                       ref)
    matches = [d for d in iter_runs(results_root) if _matches(d, ref)]
    if not matches:
        raise UnknownRun(f"no run matches {ref!r} under {results_root}",
                         hint="`launch ls` lists the runs; `latest` is the newest")
    if len(matches) > 1:
        names = ", ".join(f"{d.parent.name}/{d.name}" for d in matches[:5])
        more = ", ..." if len(matches) > 5 else ""
        raise UnknownRun(f"{ref!r} matches {len(matches)} runs ({names}{more})",
                         hint="give more of the run id")
    return RunDir(matches[0])


def _matches(run: Path, ref: str) -> bool:
    sweep, _, rest = ref.rpartition("/")
    if sweep and sweep != run.parent.name:
        return False
    return bool(rest) and (run.name.startswith(rest) or run.name.endswith(rest))


def _latest(results_root: Path, sweep: str | None, back: int, ref: str) -> RunDir:
    runs = [d for d in iter_runs(results_root) if sweep is None or d.parent.name == sweep]
    if back >= len(runs):
        where = f"of sweep {sweep} " if sweep else ""
        raise UnknownRun(f"no run {ref!r}: there are {len(runs)} runs {where}under "
                         f"{results_root}", hint="`launch ls` lists the runs")
    return RunDir(runs[-1 - back])


def iter_runs(results_root: Path) -> Iterator[Path]:
    """Run directories under the root, oldest first (run ids start with their UTC time)."""
    runs = [d for d in results_root.glob("*/*") if _RUN_ID.fullmatch(d.name)
            and (d / MANIFEST).is_file()]
    yield from sorted(runs, key=lambda d: (d.name, d.parent.name))


def runs_of_sweep(results_root: Path, folder: str) -> list[RunDir]:
    """The runs in the sweep folder ``folder`` under the root, newest first."""
    if not results_root.is_dir():
        return []
    return [RunDir(d) for d in reversed(list(iter_runs(results_root)))
            if d.parent.name == folder]


def newest_run_of_file(results_root: Path, folder: str, sweep_path: str | None,
                       sweep_sha256: str) -> tuple[RunDir | None, list[RunDir]]:
    """The newest run in ``folder`` made from this very sweep file (same path and same
    content hash), and the newer runs of the same sweep name made from another file or
    another version of it (what `--resume` must not pick, but may mention)."""
    from launcher.errors import LauncherError

    others: list[RunDir] = []
    for run in runs_of_sweep(results_root, folder):
        try:
            manifest = run.manifest()
        except LauncherError:
            continue
        if manifest.sweep_sha256 == sweep_sha256 and manifest.sweep_path == sweep_path:
            return run, others
        others.append(run)
    return None, others
