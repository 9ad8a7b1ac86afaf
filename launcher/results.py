"""The results table: one row per planned trial, built from a run's records.

Columns (snake_case): trial_id, config_id, replica, seed, ``param.<dotted name>``,
``metric.<name>``, status, reason, exit_code, host, image_id, container_id, attempt,
queued_at, started_at, finished_at (ISO UTC), duration_s, and any backend provenance
(for example ray_node_id). A planned trial without a record is a ``not_started`` row.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.store import RunDir, atomic_write, best_records, find_run
from launcher.trial import TrialStatus, pluck

if TYPE_CHECKING:
    import pandas as pd

BASE_COLUMNS = ("trial_id", "config_id", "replica", "seed")
OUTCOME_COLUMNS = ("status", "reason", "exit_code", "host", "image_id", "container_id",
                   "attempt", "queued_at", "started_at", "finished_at", "duration_s")


def load_results(run: str | Path, results_root: str | Path = "results") -> pd.DataFrame:
    """The results table of a run (a run directory, or a run id or prefix)."""
    return build_table(find_run(str(run), Path(results_root)))


def build_table(run: RunDir) -> pd.DataFrame:
    """Rows of every planned trial joined with its best record (see store.best_records)."""
    import pandas as pd

    plan = run.plan()
    names: list[str] = plan["parameters"]
    records = best_records(run.records())
    rows = []
    metric_names: dict[str, None] = {}
    extra_names: dict[str, None] = {}
    for trial in plan["trials"]:
        row: dict[str, Any] = {k: trial[k] for k in BASE_COLUMNS}
        for name in names:
            row[f"param.{name}"] = _scalar(pluck(trial["params"], name))
        record = records.get(trial["trial_id"])
        if record is None:
            row.update({k: None for k in OUTCOME_COLUMNS})
            row["status"] = str(TrialStatus.NOT_STARTED)
            row["reason"] = "not run (yet)"
        else:
            row.update({k: record.get(k) for k in OUTCOME_COLUMNS})
            for key, value in (record.get("metrics") or {}).items():
                metric_names[key] = None
                row[f"metric.{key}"] = _scalar(value)
            for key, value in (record.get("extra") or {}).items():
                extra_names[key] = None
                row[key] = _scalar(value)
        rows.append(row)
    columns = [*BASE_COLUMNS, *(f"param.{n}" for n in names),
               *(f"metric.{m}" for m in metric_names), *OUTCOME_COLUMNS, *extra_names]
    df = pd.DataFrame(rows, columns=columns)
    for column in ("exit_code", "attempt"):
        df[column] = df[column].astype("Int64")
    return df


def _scalar(value: Any) -> Any:
    """Table cells hold scalars; structures become compact JSON text."""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return value


def write_tables(run: RunDir) -> pd.DataFrame:
    """Rebuild results.parquet and results.csv atomically from the records."""
    df = build_table(run)
    csv_text = df.to_csv(index=False)
    atomic_write(run.path / "results.csv", csv_text)
    buf = io.BytesIO()
    _parquet_safe(df).to_parquet(buf, index=False)
    atomic_write(run.path / "results.parquet", buf.getvalue())
    return df


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: mixed-type object columns become text."""
    out = df.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column].dropna()}
            if len(kinds) > 1:
                out[column] = out[column].map(lambda v: None if v is None else str(v))
    return out


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
        out = out.sort_values("mean", ascending=goal == "minimize", na_position="last")
    if first is not None:
        out = first.join(out)
    return out.reset_index()[[k for k in keys if k in out.reset_index().columns] +
                             [c for c in out.columns if c not in keys]]
