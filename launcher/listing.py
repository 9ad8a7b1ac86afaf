"""Which runs exist, and how far one has got: what `launch ls` and `launch status` show.

Both read only the run directories (manifest, plan and the durable records), never
Docker, so they work on any machine that has the results folder, also while a launcher
is still writing to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.clock import short_time
from launcher.defaults import RESULTS_ROOT
from launcher.errors import LauncherError, UsageError
from launcher.store import RunDir, RunState, find_run, iter_runs
from launcher.trial import TrialStatus

if TYPE_CHECKING:
    import pandas as pd

LS_COLUMNS = ("sweep", "run_id", "date", "state", "trials", "succeeded", "image_id", "hosts")


def list_runs(results_root: str | Path = RESULTS_ROOT) -> pd.DataFrame:
    """One row per run under the results root, oldest first (columns: LS_COLUMNS)."""
    import pandas as pd

    root = Path(results_root)
    if not root.is_dir():
        raise UsageError(f"the results root {root} does not exist",
                         hint="pass --results DIR, the folder given as `results` in the sweep")
    return pd.DataFrame([_run_row(RunDir(path)) for path in iter_runs(root)],
                        columns=list(LS_COLUMNS))


def _run_row(run: RunDir) -> dict[str, Any]:
    try:
        manifest = run.manifest()
        planned, succeeded = _counts(run)
    except LauncherError:
        return {"sweep": run.path.parent.name, "run_id": run.run_id, "state": "unreadable"}
    hosts = [h.name or h.url for h in manifest.hosts]
    return {"sweep": manifest.sweep or run.path.parent.name, "run_id": run.run_id,
            "date": short_time(manifest.created_at), "state": str(run.state(manifest)),
            "trials": planned, "succeeded": succeeded, "image_id": short_image(manifest.image.id),
            "hosts": ",".join(hosts)}


def _counts(run: RunDir) -> tuple[int, int]:
    """Planned and succeeded trials: one column of the cached table of a finished run,
    else the plan and the records."""
    from launcher import tablecache

    cached = tablecache.read(run, columns=["status"])
    if cached is not None:
        return len(cached), int((cached["status"] == str(TrialStatus.SUCCEEDED)).sum())
    records = run.best()
    return len(run.plan()), sum(r.status is TrialStatus.SUCCEEDED for r in records.values())


def short_image(image_id: str | None) -> str:
    """``sha256:0123456789ab``: the 12 hex digits Docker shows."""
    if not image_id:
        return ""
    algo, _, digest = str(image_id).rpartition(":")
    return f"{algo or 'sha256'}:{digest[:12]}"


# -- status of one run ---------------------------------------------------------------------
@dataclass(frozen=True)
class RunStatus:
    """A run's progress from its records. Records are written when a trial finishes, so
    ``running`` is an upper bound: the slots the run may keep busy while work remains."""

    run_dir: Path
    state: str  # the manifest's state, "abandoned" when its launcher is gone
    holder: str  # who holds the run's lock ("pid N on HOST"), empty when nobody
    planned: int
    counts: dict[str, int]  # finished trials per status
    slots: int
    per_host: pd.DataFrame  # host, finished, then one column per status, mean_s, last
    first_start: datetime | None
    last_finish: datetime | None

    @property
    def finished(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> int:
        return self.planned - self.finished

    @property
    def in_progress(self) -> bool:
        return self.state == "running"

    @property
    def running(self) -> int:
        return min(self.remaining, self.slots) if self.in_progress else 0

    @property
    def rate(self) -> float | None:
        """Finished trials per second so far."""
        if not self.first_start or not self.last_finish or not self.finished:
            return None
        span = (self.last_finish - self.first_start).total_seconds()
        return self.finished / span if span > 0 else None

    def summary(self) -> str:
        """The text `launch status` prints."""
        from launcher.results import plain_rows
        from launcher.tables import render_rows

        counts = ", ".join(f"{s} {n}" for s, n in sorted(self.counts.items())) or "none yet"
        lines = [f"run {self.run_dir.parent.name}/{self.run_dir.name}: {self.state}"
                 + (f" ({self.holder})" if self.holder else ""),
                 f"finished {self.finished}/{self.planned}: {counts}",
                 f"remaining {self.remaining}" + (f", running at most {self.running} "
                                                  f"({self.slots} slots)"
                                                  if self.in_progress else "")]
        if self.rate:
            eta = (f", about {self.remaining / self.rate:.0f} s left"
                   if self.in_progress and self.remaining else "")
            lines.append(f"throughput {self.rate:.2f} trials/s{eta}")
        if len(self.per_host):
            lines.append("")
            lines.append(render_rows(list(self.per_host.columns), plain_rows(self.per_host),
                                     "table").rstrip("\n"))
        return "\n".join(lines) + "\n"


def run_status(run: str | Path, results_root: str | Path = RESULTS_ROOT) -> RunStatus:
    """How far a run (a run directory, or a run id or prefix) has got."""
    import pandas as pd

    run_dir = find_run(str(run), Path(results_root))
    manifest = run_dir.manifest()
    planned, done = finished_trials(run_dir)
    state = run_dir.state(manifest)
    holder = run_dir.holder() if state is RunState.RUNNING else ""
    starts = pd.to_datetime(done["started_at"], utc=True, errors="coerce", format="ISO8601")
    ends = pd.to_datetime(done["finished_at"], utc=True, errors="coerce", format="ISO8601")
    return RunStatus(run_dir.path, str(state), holder, planned,
                     {str(k): int(v) for k, v in done["status"].value_counts().items()},
                     manifest.slots, per_host_table(done), _moment(starts.min()),
                     _moment(ends.max()))


STATUS_COLUMNS = ["host", "status", "duration_s", "started_at", "finished_at"]


def finished_trials(run: RunDir) -> tuple[int, pd.DataFrame]:
    """Planned trials, and the finished ones (STATUS_COLUMNS): columns of the cached
    table of a finished run, else from the plan and the records."""
    import pandas as pd

    from launcher import tablecache

    cached = tablecache.read(run, columns=STATUS_COLUMNS)
    if cached is not None:
        return len(cached), cached[cached["status"] != str(TrialStatus.NOT_STARTED)]
    records = list(run.best().values())
    return len(run.plan()), pd.DataFrame(
        {"host": [r.host for r in records], "status": [str(r.status) for r in records],
         "duration_s": [r.duration_s for r in records],
         "started_at": [r.started_at for r in records],
         "finished_at": [r.finished_at for r in records]}, columns=STATUS_COLUMNS)


def _moment(value: Any) -> datetime | None:
    return None if value is None or pd_isna(value) else value.to_pydatetime()


def pd_isna(value: Any) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def per_host_table(done: pd.DataFrame) -> pd.DataFrame:
    """Finished trials per host: counts per status, mean duration, last finish time."""
    import pandas as pd

    if not len(done):
        return pd.DataFrame(columns=["host", "finished"])
    df = pd.DataFrame({"host": done["host"].fillna("").replace("", "(none)"),
                       "status": done["status"].astype(str),
                       "duration_s": pd.to_numeric(done["duration_s"], errors="coerce"),
                       "finished_at": done["finished_at"].fillna("").astype(str)
                       .str.replace("T", " ").str.slice(11, 19)})
    counts = pd.crosstab(df["host"], df["status"])
    out = counts.sum(axis=1).to_frame("finished").join(counts)
    grouped = df.groupby("host")
    out["mean_s"] = grouped["duration_s"].mean().round(2)
    out["last"] = grouped["finished_at"].max()
    return out.reset_index()


