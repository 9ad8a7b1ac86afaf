"""The results table: one row per planned trial, built from a run's records.

Columns (snake_case): run_id, sweep, trial_id, config_id, replica, seed,
``param.<dotted name>``, ``metric.<name>``, status, reason, exit_code, host, image_id,
container_id, attempt, queued_at, started_at, finished_at (timestamps, UTC), duration_s,
argv (the container's argv as JSON text), and any backend provenance (for example
ray_node_id). A planned trial without a record is a ``not_started`` row. Tables of
several runs concatenate into one (``run_id`` tells them apart).

history.parquet beside it has every trial's learning curve (:func:`load_history`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from launcher.defaults import RESULTS_ROOT
from launcher.store import RECORDS, RunDir, TrialRecord, atomic_write, find_run
from launcher.store.files import read_json_objects
from launcher.trial import TrialStatus, pluck

if TYPE_CHECKING:
    import pandas as pd

BASE_COLUMNS = ("run_id", "sweep", "trial_id", "config_id", "replica", "seed")
OUTCOME_COLUMNS = ("status", "reason", "exit_code", "host", "image_id", "container_id",
                   "attempt", "queued_at", "started_at", "finished_at", "duration_s",
                   "outputs_truncated", "argv")
TIME_COLUMNS = ("queued_at", "started_at", "finished_at")
HISTORY_FILE = "history.parquet"


def load_results(run: str | Path, results_root: str | Path = RESULTS_ROOT) -> pd.DataFrame:
    """The results table of a run (a run directory, or a run id or prefix)."""
    return load_table(find_run(str(run), Path(results_root)))


def load_table(run: RunDir) -> pd.DataFrame:
    """The results table of ``run``: results.parquet when it is up to date with the
    records (a finished run), else built from the records (see launcher.tablecache)."""
    from launcher import tablecache

    cached = tablecache.read(run)
    return cached if cached is not None else build_table(run)


def build_table(run: RunDir) -> pd.DataFrame:
    """Rows of every planned trial joined with its best record (see store.best_records)."""
    import pandas as pd

    plan = run.plan()
    sweep = run.manifest().sweep or run.path.parent.name
    names = plan.parameters
    records = run.best()
    rows = []
    metric_names: dict[str, None] = {}
    extra_names: dict[str, None] = {}
    for trial in plan.trials:
        row: dict[str, Any] = {"run_id": run.run_id, "sweep": sweep,
                               "trial_id": trial.trial_id, "config_id": trial.config_id,
                               "replica": trial.replica, "seed": trial.seed}
        for name in names:
            row[f"param.{name}"] = _scalar(pluck(trial.params, name))
        record = records.get(trial.trial_id)
        if record is None:
            row.update(dict.fromkeys(OUTCOME_COLUMNS))
            row["status"] = str(TrialStatus.NOT_STARTED)
            row["reason"] = "not run (yet)"
        else:
            row.update(outcome_row(record))
            for key, value in record.metrics.items():
                metric_names[key] = None
                row[f"metric.{key}"] = _scalar(value)
            for key, value in record.extra.items():
                extra_names[key] = None
                row[key] = _scalar(value)
        rows.append(row)
    columns = [*BASE_COLUMNS, *(f"param.{n}" for n in names),
               *(f"metric.{m}" for m in metric_names), *OUTCOME_COLUMNS, *extra_names]
    df = pd.DataFrame(rows, columns=columns)
    for column in ("exit_code", "attempt"):
        df[column] = df[column].astype("Int64")
    df["outputs_truncated"] = df["outputs_truncated"].eq(True)  # not started: False
    for column in TIME_COLUMNS:
        df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601")
    return df


def outcome_row(record: TrialRecord) -> dict[str, Any]:
    """The table's outcome columns (OUTCOME_COLUMNS) of one record."""
    return {"status": str(record.status), "reason": record.reason,
            "exit_code": record.exit_code, "host": record.host, "image_id": record.image_id,
            "container_id": record.container_id, "attempt": record.attempt,
            "queued_at": record.queued_at, "started_at": record.started_at,
            "finished_at": record.finished_at, "duration_s": record.duration_s,
            "outputs_truncated": record.outputs_truncated,
            "argv": json.dumps(list(record.argv), ensure_ascii=False)
            if record.argv is not None else None}


def _scalar(value: Any) -> Any:
    """Table cells hold scalars; structures become compact JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def write_tables(run: RunDir) -> pd.DataFrame:
    """Rebuild results.parquet (also the read commands' cache, see launcher.tablecache),
    results.csv and history.parquet atomically from the records and history files."""
    from launcher import tablecache

    size = tablecache.records_size(run)  # before reading: a later record makes it stale
    df = build_table(run)
    csv_text = df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    atomic_write(run.path / "results.csv", csv_text)
    tablecache.write(run, df, size)
    history = build_history(run, df)
    if len(history):
        atomic_write(run.path / HISTORY_FILE, parquet_bytes(history))
    return df


def parquet_bytes(df: pd.DataFrame) -> bytes:
    from launcher.tablecache import parquet_safe

    buf = io.BytesIO()
    parquet_safe(df)[0].to_parquet(buf, index=False)
    return buf.getvalue()


def build_history(run: RunDir, table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every trial's learning curve in one long table: run_id, trial_id, config_id, then
    one column per key of the history lines (step or epoch, the metrics), one row per
    line, in plan order."""
    import pandas as pd

    table = build_table(run) if table is None else table
    frames = []
    for trial_id, config_id in zip(table["trial_id"], table["config_id"], strict=True):
        rows = read_history(run.history_path(str(trial_id)))
        if rows:
            frame = pd.DataFrame(rows)
            frame.insert(0, "config_id", config_id)
            frame.insert(0, "trial_id", trial_id)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["run_id", "trial_id", "config_id"])
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "run_id", run.run_id)
    return out


def read_history(path: Path) -> list[dict[str, Any]]:
    """The JSON-object lines of one history file (others skipped); [] when absent."""
    return read_json_objects(path)


def load_history(run: str | Path, results_root: str | Path = RESULTS_ROOT) -> pd.DataFrame:
    """Every trial's learning curve of a run (a run directory, or a run reference): its
    history.parquet, or built from the history files while the run is still going."""
    import pandas as pd

    run_dir = find_run(str(run), Path(results_root))
    path = run_dir.path / HISTORY_FILE
    records = run_dir.path / RECORDS
    if path.is_file() and (not records.exists() or
                           path.stat().st_mtime >= records.stat().st_mtime):
        return pd.read_parquet(path)
    return build_history(run_dir)


def summarize(df: pd.DataFrame, metric: str | None, goal: str = "minimize") -> pd.DataFrame:
    """Per configuration over replicas: mean, std, min, max and count of the metric,
    best first by the sweep's goal; plus how many trials succeeded."""
    params = [c for c in df.columns if c.startswith("param.")]
    ok = df[df["status"] == str(TrialStatus.SUCCEEDED)]
    keys = ["config_id", *params]
    grouped = df.groupby("config_id", sort=False)
    first = grouped[params].first() if params else None
    out = grouped.size().to_frame("trials")
    out["succeeded"] = ok.groupby("config_id").size().reindex(out.index).fillna(0).astype(int)
    column = f"metric.{metric}" if metric else None
    if column and column in df.columns:
        values = ok.assign(_v=ok[column].astype(float)).groupby("config_id")["_v"]
        stats = values.agg(["mean", "std", "min", "max", "count"])
        out = out.join(stats)
    if first is not None:
        out = first.join(out)
    if "mean" in out.columns:  # best first (after the join, which keeps the left's order)
        out = out.sort_values("mean", ascending=goal == "minimize", na_position="last",
                              kind="stable")
    return out.reset_index()[[k for k in keys if k in out.reset_index().columns] +
                             [c for c in out.columns if c not in keys]]


# -- the `launch results` view ------------------------------------------------------------
COMPACT_HIDDEN = ("run_id", "sweep", "reason", "image_id", "container_id", "queued_at",
                  "started_at", "finished_at", "exit_code", "attempt", "argv")


@dataclass(frozen=True)
class RunTable:
    """A run's results table and what is needed to read it (what `launch results` shows).

    ``df`` has one row per planned trial; :meth:`by_config` aggregates the sweep's metric
    over replicas, best first. Read-only: derived again from the run directory on load.
    """

    run_dir: Path
    sweep: str
    df: pd.DataFrame
    metric: str | None
    goal: str

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    def by_config(self) -> pd.DataFrame:
        """One row per configuration: parameters, trials, succeeded, and mean, std, min,
        max, count of the sweep's metric over succeeded replicas (every numeric metric,
        prefixed, when the sweep names none), best first by the sweep's goal."""
        return aggregate(self.df, self.metric, self.goal)

    def best(self, n: int = 5) -> pd.DataFrame:
        return self.by_config().head(n)

    def problems(self) -> list[str]:
        """See :func:`table_problems`."""
        return table_problems(self.df, self.metric)


def open_results(run: str | Path, results_root: str | Path = RESULTS_ROOT) -> RunTable:
    """The results of a run (a run directory, or a run id or unique prefix)."""
    run_dir = find_run(str(run), Path(results_root))
    return table_of(run_dir)


def table_of(run: RunDir) -> RunTable:
    """The RunTable of an open run directory."""
    manifest = run.manifest()
    return RunTable(run.path, manifest.sweep or run.path.parent.name, load_table(run),
                    manifest.metric_name, manifest.goal)


def results_by_config(run: str | Path, results_root: str | Path = RESULTS_ROOT) -> pd.DataFrame:
    """``launch results RUN --by config`` as a DataFrame."""
    return open_results(run, results_root).by_config()


def sweep_metric(run: RunDir) -> tuple[str | None, str]:
    """The sweep's metric name (or None) and goal, from the run's manifest."""
    manifest = run.manifest()
    return manifest.metric_name, manifest.goal


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("metric.")]


def numeric_metrics(df: pd.DataFrame) -> list[str]:
    """Metric names whose non-empty values are all numbers."""
    import pandas as pd

    names = []
    for column in metric_columns(df):
        values = df[column].dropna()
        if len(values) and pd.to_numeric(values, errors="coerce").notna().all():
            names.append(column.removeprefix("metric."))
    return names


def aggregate(df: pd.DataFrame, metric: str | None, goal: str = "minimize") -> pd.DataFrame:
    """Per configuration over replicas (see :meth:`RunTable.by_config`)."""
    if metric and f"metric.{metric}" in df.columns:
        names = ("mean", "std", "min", "max", "count")
        return summarize(df, metric, goal).rename(columns={s: f"{metric}.{s}" for s in names})
    out = summarize(df, None, goal)
    ok = df[df["status"] == str(TrialStatus.SUCCEEDED)]
    for name in numeric_metrics(df):
        stats = ok.assign(_v=ok[f"metric.{name}"].astype(float)).groupby("config_id")["_v"] \
            .agg(["mean", "std", "min", "max", "count"])
        stats.columns = [f"{name}.{c}" for c in stats.columns]
        out = out.merge(stats, how="left", left_on="config_id", right_index=True)
    return out


def compact(df: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The table for a terminal: provenance columns left out (CSV and JSON keep them; and
    outputs_truncated unless a copy was truncated), the rest ordered by use, so that what
    fits the width is what matters: the id, the parameters that vary, the sweep's
    metric, status and host, then the rest."""
    hidden = COMPACT_HIDDEN + (() if truncated_outputs(df) else ("outputs_truncated",))
    shown = [c for c in df.columns if c not in hidden]
    varying = [c for c in shown if c.startswith("param.")
               and df[c].astype(str).nunique(dropna=True) > 1]
    stats = ("mean", "std", "count", "min", "max")
    metric_first = [c for c in shown if c in stats or (metric and (
        c == f"metric.{metric}" or c.startswith(f"{metric}.")))]
    ident = [c for c in ("trial_id",) if c in shown] or [c for c in ("config_id",)
                                                         if c in shown]
    middle = [c for c in ("status", "succeeded", "trials", "host", "duration_s") if c in shown]
    first = [*ident, *varying, *metric_first, *middle]
    return df[[*first, *(c for c in shown if c not in first)]]


def truncated_outputs(df: pd.DataFrame) -> int:
    """How many trials' /outputs were over outputs_limit (their copies are partial)."""
    return int(df["outputs_truncated"].sum()) if "outputs_truncated" in df.columns else 0


def table_problems(df: pd.DataFrame, metric: str | None) -> list[str]:
    """What a reader of the table must know: a metric no trial reported, truncated outputs."""
    out = [p for p in [metric_problem(df, metric)] if p]
    if truncated_outputs(df):
        out.append(f"the outputs of {truncated_outputs(df)} trials were over outputs_limit: "
                   "their copies are truncated (column outputs_truncated; raise "
                   "outputs_limit to keep everything)")
    return out


def metric_problem(df: pd.DataFrame, metric: str | None) -> str | None:
    """When trials finished but none reported the sweep's metric: what they reported
    instead and the line the job must print. None when all is well."""
    from launcher.trial import missing_metric

    finished = df["status"] != str(TrialStatus.NOT_STARTED)
    column = f"metric.{metric}"
    if not metric or not finished.any() or (column in df.columns and df[column].notna().any()):
        return None
    reported = [c.removeprefix("metric.") for c in metric_columns(df)]
    return missing_metric(metric, reported, any_trial=True)


def plain_rows(df: pd.DataFrame) -> list[list[Any]]:
    """Rows of plain Python values (None for missing), exact floats, for tables.write_rows."""
    return [[_plain(v) for v in row] for row in df.astype(object).itertuples(index=False,
                                                                             name=None)]


def _plain(value: Any) -> Any:
    import pandas as pd

    from launcher.clock import iso

    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return iso(value)
    return value.item() if hasattr(value, "item") else value


def write_frame(df: pd.DataFrame, fmt: str, out: TextIO) -> None:
    """A DataFrame in one of tables.FORMATS (table, csv, json, markdown); the table fits
    the terminal (see launcher/terminal.py)."""
    from launcher.tables import write_rows
    from launcher.terminal import print_table

    if fmt == "table":
        print_table([str(c) for c in df.columns], plain_rows(df), out)
    else:
        write_rows(out, [str(c) for c in df.columns], plain_rows(df), fmt)


def frame_text(df: pd.DataFrame) -> str:
    """A DataFrame as a table that fits the terminal (for summaries)."""
    from launcher.terminal import render_table

    return render_table([str(c) for c in df.columns], plain_rows(df))
