"""The results table: one row per planned trial, built from a run's records.

Columns (snake_case): trial_id, config_id, replica, seed, ``param.<dotted name>``,
``metric.<name>``, status, reason, exit_code, host, image_id, container_id, attempt,
queued_at, started_at, finished_at (ISO UTC), duration_s, and any backend provenance
(for example ray_node_id). A planned trial without a record is a ``not_started`` row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from launcher.defaults import RESULTS_ROOT
from launcher.store import RunDir, TrialRecord, atomic_write, find_run
from launcher.trial import TrialStatus, pluck

if TYPE_CHECKING:
    import pandas as pd

BASE_COLUMNS = ("trial_id", "config_id", "replica", "seed")
OUTCOME_COLUMNS = ("status", "reason", "exit_code", "host", "image_id", "container_id",
                   "attempt", "queued_at", "started_at", "finished_at", "duration_s",
                   "outputs_truncated")


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
    names = plan.parameters
    records = run.best()
    rows = []
    metric_names: dict[str, None] = {}
    extra_names: dict[str, None] = {}
    for trial in plan.trials:
        row: dict[str, Any] = {"trial_id": trial.trial_id, "config_id": trial.config_id,
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
    return df


def outcome_row(record: TrialRecord) -> dict[str, Any]:
    """The table's outcome columns (OUTCOME_COLUMNS) of one record."""
    return {"status": str(record.status), "reason": record.reason,
            "exit_code": record.exit_code, "host": record.host, "image_id": record.image_id,
            "container_id": record.container_id, "attempt": record.attempt,
            "queued_at": record.queued_at, "started_at": record.started_at,
            "finished_at": record.finished_at, "duration_s": record.duration_s,
            "outputs_truncated": record.outputs_truncated}


def _scalar(value: Any) -> Any:
    """Table cells hold scalars; structures become compact JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def write_tables(run: RunDir) -> pd.DataFrame:
    """Rebuild results.parquet and results.csv atomically from the records."""
    from launcher import tablecache

    size = tablecache.records_size(run)  # before reading: a later record makes it stale
    df = build_table(run)
    csv_text = df.to_csv(index=False)
    atomic_write(run.path / "results.csv", csv_text)
    tablecache.write(run, df, size)
    return df


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
COMPACT_HIDDEN = ("reason", "image_id", "container_id", "queued_at", "started_at",
                  "finished_at", "exit_code", "attempt")


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


def compact(df: pd.DataFrame) -> pd.DataFrame:
    """The table for a terminal: provenance columns left out (CSV and JSON keep them), and
    outputs_truncated unless a copy was truncated."""
    hidden = COMPACT_HIDDEN + (() if truncated_outputs(df) else ("outputs_truncated",))
    return df[[c for c in df.columns if c not in hidden]]


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

    if value is None or (not isinstance(value, str | list | dict) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def write_frame(df: pd.DataFrame, fmt: str, out: TextIO) -> None:
    """A DataFrame in one of tables.FORMATS (table, csv, json, markdown)."""
    from launcher.tables import write_rows

    write_rows(out, [str(c) for c in df.columns], plain_rows(df), fmt)
