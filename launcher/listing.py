"""Which runs exist, and how far one has got: what `launch ls` and `launch status` show.

Both read only the run directories (manifest, plan and the durable records), never
Docker, so they work on any machine that has the results folder, also while a launcher
is still writing to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.clock import parse_time, short_time
from launcher.defaults import RESULTS_ROOT
from launcher.errors import LauncherError, UsageError
from launcher.store import (
    RETRYABLE,
    MetricRecord,
    PlanFile,
    RunDir,
    RunState,
    StartedEntry,
    TrialRecord,
    find_run,
    iter_runs,
)
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
    return run.plan().expected, sum(r.status is TrialStatus.SUCCEEDED for r in records.values())


def short_image(image_id: str | None) -> str:
    """``sha256:0123456789ab``: the 12 hex digits Docker shows."""
    if not image_id:
        return ""
    algo, _, digest = str(image_id).rpartition(":")
    return f"{algo or 'sha256'}:{digest[:12]}"


# -- status of one run ---------------------------------------------------------------------
@dataclass(frozen=True)
class RunStatus:
    """A run's progress from its files: the durable records (finished attempts) and
    started.jsonl (containers running now). ``counts`` has one entry per planned trial
    (its best status, ``not_started`` without a record), so ``to_run`` is exactly what
    `launch resume` would run (and ``to_run_retry_failed`` with --retry-failed)."""

    run_dir: Path
    state: str  # see RunDir.state: running, finished, stopped, interrupted, abandoned
    holder: str  # who holds the run's lock ("pid N on HOST"), empty when nobody
    planned: int
    counts: dict[str, int]  # planned trials per best status (not_started included)
    to_run: int
    to_run_retry_failed: int
    running: tuple[StartedEntry, ...]
    slots: int
    per_host: pd.DataFrame  # host, finished, then one column per status, mean_s, last
    first_start: datetime | None
    last_finish: datetime | None
    best: str = ""  # "best val_acc 0.97 (...)", empty when no trial succeeded yet
    early: str = ""  # what early termination stopped and saved, empty when nothing
    search: str = ""  # adaptive runs: how many configurations were asked so far

    @property
    def finished(self) -> int:
        """Trials with a final status (succeeded, failed, timed out, OOM-killed)."""
        return self.planned - self.to_run

    @property
    def in_progress(self) -> bool:
        return self.state == "running"

    @property
    def rate(self) -> float | None:
        """Finished trials per second so far."""
        if not self.first_start or not self.last_finish or not self.finished:
            return None
        span = (self.last_finish - self.first_start).total_seconds()
        return self.finished / span if span > 0 else None

    def running_rows(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """trial_id, attempt, host, container (12 digits), started_at, elapsed_s."""
        clock = now or datetime.now(UTC)
        rows = []
        for e in self.running:
            start = parse_time(e.at)
            rows.append({"trial_id": e.trial_id, "attempt": e.attempt, "host": e.host,
                         "container": e.container_id[:12], "started_at": e.at,
                         "elapsed_s": round((clock - start).total_seconds(), 1)
                         if start else None})
        return rows

    def summary(self) -> str:
        """The text `launch status` prints."""
        return render_status(self)

    def to_json(self) -> dict[str, Any]:
        """What `launch status --json` prints."""
        import json

        return {"run": f"{self.run_dir.parent.name}/{self.run_dir.name}",
                "run_dir": str(self.run_dir), "state": self.state, "holder": self.holder,
                "planned": self.planned, "counts": self.counts, "finished": self.finished,
                "to_run": self.to_run, "to_run_retry_failed": self.to_run_retry_failed,
                "running": self.running_rows(), "slots": self.slots,
                "throughput_per_s": self.rate, "best": self.best or None,
                "early_termination": self.early or None, "search": self.search or None,
                "per_host": json.loads(self.per_host.to_json(orient="records"))}


def run_status(run: str | Path, results_root: str | Path = RESULTS_ROOT) -> RunStatus:
    """How far a run (a run directory or a run reference) has got."""
    import pandas as pd

    run_dir = find_run(str(run), Path(results_root))
    manifest = run_dir.manifest()
    state = run_dir.state(manifest)
    metric = manifest.metric
    trials = trial_statuses(run_dir, metric.name if metric else None)
    status = trials["status"]
    final = status.isin(FINAL)
    done = trials[status != str(TrialStatus.NOT_STARTED)]
    starts = pd.to_datetime(done["started_at"], utc=True, errors="coerce", format="ISO8601")
    ends = pd.to_datetime(done["finished_at"], utc=True, errors="coerce", format="ISO8601")
    counts = {str(k): int(v) for k, v in status.value_counts().items()}
    # Only early termination's estimate needs every attempt's record; read them only then.
    early = _early(run_dir.records()) if counts.get(str(TrialStatus.STOPPED)) else ""
    return RunStatus(
        run_dir.path, str(state), run_dir.holder() if state is RunState.RUNNING else "",
        len(trials), counts, int((~final).sum()), int((~final | status.isin(RETRY)).sum()),
        tuple(run_dir.running()) if state is RunState.RUNNING else (), manifest.slots,
        per_host_table(done), _moment(starts.min()), _moment(ends.max()),
        best_text(trials, metric), early,
        _asked(run_dir.plan()) if manifest.method == "bayes" else "")


def best_text(trials: pd.DataFrame, metric: MetricRecord | None) -> str:
    """The best value of the sweep's metric among succeeded trials so far."""
    import pandas as pd

    column = f"metric.{metric.name}" if metric else ""
    if metric is None or column not in trials.columns:
        return ""
    ok = trials[trials["status"] == str(TrialStatus.SUCCEEDED)]
    values = pd.to_numeric(ok[column], errors="coerce")
    if not values.notna().any():
        return ""
    at = int(values.argmax() if metric.goal == "maximize" else values.argmin())
    return (f"best {metric.name} {float(values.iloc[at]):.6g} ({metric.goal}, "
            f"trial {ok['trial_id'].iloc[at]})")


def _early(records: list[TrialRecord]) -> str:
    from launcher.search.savings import estimate

    savings = estimate(records)
    return f"early termination: {savings.text()}" if savings else ""


def _asked(plan: PlanFile) -> str:
    """An adaptive run's progress: its plan holds the asked trials, replicas each."""
    if plan.adaptive is None:
        return ""
    a = plan.adaptive
    asked = (len(plan) - len(plan.planned_ids())) // max(1, a.replicas)
    return f"{a.method} ({a.sampler}): {asked} of {a.run_cap} configurations asked so far"


# What `launch resume` leaves alone (a final status), and what --retry-failed reruns:
# the same sets as store.still_to_run, applied to a column.
FINAL = frozenset(str(s) for s in TrialStatus if s.terminal)
RETRY = frozenset(str(s) for s in RETRYABLE)
STATUS_COLUMNS = ["status", "host", "duration_s", "started_at", "finished_at"]


def trial_statuses(run: RunDir, metric: str | None = None) -> pd.DataFrame:
    """One row per planned trial (STATUS_COLUMNS, trial_id and ``metric.<metric>``):
    columns of the cached table of a finished run, else the plan joined with the best
    records."""
    import pandas as pd

    from launcher import tablecache

    column = f"metric.{metric}" if metric else None
    columns = [*STATUS_COLUMNS, "trial_id", *([column] if column else [])]
    cached = tablecache.read(run, columns=columns)
    if cached is not None:
        return cached
    best = run.best()
    ids = run.plan().trial_ids()
    rows = [best.get(t) for t in ids]
    data: dict[str, list[Any]] = {
        "status": [str(r.status) if r else str(TrialStatus.NOT_STARTED) for r in rows],
        "host": [r.host if r else None for r in rows],
        "duration_s": [r.duration_s if r else None for r in rows],
        "started_at": [r.started_at if r else None for r in rows],
        "finished_at": [r.finished_at if r else None for r in rows],
        "trial_id": list(ids)}
    if column and metric:
        data[column] = [r.metrics.get(metric) if r else None for r in rows]
    return pd.DataFrame(data, columns=columns)


def _moment(value: Any) -> datetime | None:
    import pandas as pd

    return None if value is None or pd.isna(value) else value.to_pydatetime()


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


# -- what `launch status` prints --------------------------------------------------------
MAX_RUNNING_LISTED = 20
ORDER = [str(s) for s in TrialStatus]


def render_status(s: RunStatus) -> str:
    """State, counts per status, what resume would run, running containers, per host."""
    from launcher.results import frame_text

    name = f"{s.run_dir.parent.name}/{s.run_dir.name}"
    counts = ", ".join(f"{k.replace('_', ' ')} {s.counts[k]}" for k in ORDER
                       if s.counts.get(k))
    lines = [f"run {name}: {s.state}" + (f" ({s.holder})" if s.holder else ""),
             f"{s.planned} trials: {counts}",
             f"finished {s.finished}/{s.planned} (final status); {_to_run(s)}"]
    if s.in_progress:
        lines.append(f"running now: {len(s.running)} container(s) on {s.slots} slot(s)")
    lines += [line for line in (s.search, s.best, s.early) if line]
    if s.rate:
        eta = (f", about {s.to_run / s.rate:.0f} s left"
               if s.in_progress and s.to_run else "")
        lines.append(f"throughput {s.rate:.2f} trials/s{eta}")
    rows = s.running_rows()
    if rows:
        import pandas as pd

        shown = pd.DataFrame(rows[:MAX_RUNNING_LISTED])[["trial_id", "host", "container",
                                                         "elapsed_s", "attempt"]]
        lines += ["", frame_text(shown).rstrip()]
        if len(rows) > MAX_RUNNING_LISTED:
            lines.append(f"... and {len(rows) - MAX_RUNNING_LISTED} more running "
                         "(--json lists them all)")
    if len(s.per_host):
        lines += ["", frame_text(s.per_host).rstrip()]
    return "\n".join(lines) + "\n"


def _to_run(s: RunStatus) -> str:
    """What `launch resume` would run, in its own words."""
    retry = s.to_run_retry_failed - s.to_run
    extra = f" ({retry} more with --retry-failed)" if retry else ""
    if s.in_progress:
        return f"{s.to_run} still to run or running{extra}"
    if not s.to_run:
        return "nothing left for `launch resume`" + extra.replace(" more ", " ")
    return f"`launch resume` would run {s.to_run}{extra}"
