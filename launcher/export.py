"""Export a run to MLflow: `launch export RUN --mlflow URI`.

One MLflow run per trial, in an experiment named after the sweep: the trial's
parameters (dotted names), its final metrics, its learning curve as metric steps
(``step`` or ``epoch`` of each history line), tags for the trial, configuration,
replica, seed, host, image, status and the launcher's run id, and its /outputs files
and log as artifacts. MLflow's own start and end times are the trial's. Trials already
exported to the experiment (found by their tags) are skipped, so exporting again after
a resume adds only the new trials.

MLflow is an optional extra (``pip install 'launcher[mlflow]'``, the small
``mlflow-skinny`` client). A plain folder or ``file:`` URI is MLflow's file store,
which MLflow 3 only opens with ``MLFLOW_ALLOW_FILE_STORE=true``: asking for it by
name is taken as that consent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.clock import parse_time
from launcher.defaults import RESULTS_ROOT
from launcher.errors import LauncherError, UsageError
from launcher.store import RunDir, find_run

if TYPE_CHECKING:
    import pandas as pd

TAG_RUN = "launcher.run_id"
TAG_TRIAL = "launcher.trial_id"
BATCH = 1000  # MLflow's log_batch takes at most 1000 metrics per call
FINISHED = {"succeeded": "FINISHED", "failed": "FAILED", "timed_out": "FAILED",
            "oom_killed": "FAILED", "lost": "KILLED", "cancelled": "KILLED",
            "stopped": "KILLED"}  # stopped early on purpose (hyperband)


@dataclass(frozen=True)
class Exported:
    """What an export did."""

    uri: str
    experiment: str
    exported: int
    skipped: int
    not_started: int

    def summary(self) -> str:
        skipped = f", {self.skipped} already there" if self.skipped else ""
        waiting = f", {self.not_started} not started (nothing to export)" \
            if self.not_started else ""
        return (f"exported {self.exported} trials to MLflow experiment {self.experiment!r} "
                f"at {self.uri}{skipped}{waiting}")


def export_mlflow(run: str | Path, uri: str, results_root: str | Path = RESULTS_ROOT, *,
                  experiment: str | None = None,
                  on_line: Callable[[str], None] | None = None) -> Exported:
    """Export every trial of a run that has a record; see the module docstring."""
    from launcher.results import table_of

    run_dir = find_run(str(run), Path(results_root))
    table = table_of(run_dir)
    client = mlflow_client(uri)
    name = experiment or table.sweep
    experiment_id = _experiment(client, name)
    done = _exported_trials(client, experiment_id, run_dir.run_id)
    started = table.df[table.df["status"] != "not_started"]
    todo = started[~started["trial_id"].isin(done)]
    if on_line:
        on_line(f"exporting {len(todo)} trials of run {run_dir.run_id} to {uri} "
                f"(experiment {name!r})")
    for row in todo.to_dict("records"):
        export_trial(client, experiment_id, run_dir, {str(k): v for k, v in row.items()},
                     table.df)
    return Exported(uri, name, len(todo), len(started) - len(todo),
                    len(table.df) - len(started))


def mlflow_client(uri: str) -> Any:
    """An MlflowClient for ``uri``; a one-line error when MLflow is not installed."""
    if "://" not in uri or uri.startswith("file:"):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        if "://" not in uri:
            uri = Path(uri).resolve().as_uri()
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UsageError("MLflow is not installed",
                         hint="pip install 'launcher[mlflow]'") from None
    return MlflowClient(tracking_uri=uri)


def _experiment(client: Any, name: str) -> str:
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_experiment_by_name(name)
        return str(found.experiment_id if found else client.create_experiment(name))
    except MlflowException as e:
        raise LauncherError(f"MLflow refused the experiment {name!r}: {e.message}") from None


def _exported_trials(client: Any, experiment_id: str, run_id: str) -> set[str]:
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_RUN}` = '{run_id}'",
                              max_results=50000)
    return {r.data.tags.get(TAG_TRIAL) for r in runs}


def export_trial(client: Any, experiment_id: str, run: RunDir, row: dict[str, Any],
                 table: pd.DataFrame) -> str:
    """One MLflow run for one trial (a row of the results table); returns its id."""
    from mlflow.entities import Metric, Param

    start, end = _millis(row.get("started_at")), _millis(row.get("finished_at"))
    created = client.create_run(experiment_id, start_time=start, tags=trial_tags(row, run),
                                run_name=str(row["trial_id"]))
    mlflow_id = created.info.run_id
    params = [Param(c.removeprefix("param."), _text(row[c])) for c in table.columns
              if c.startswith("param.")]
    metrics = list(history_metrics(run.history_path(str(row["trial_id"])), start or 0))
    last_step = max((m.step for m in metrics), default=0)
    for column in (c for c in table.columns if c.startswith("metric.")):
        value = _number(row.get(column))
        if value is not None:
            metrics.append(Metric(column.removeprefix("metric."), value, end or start or 0,
                                  last_step))
    client.log_batch(mlflow_id, params=params[:100])
    for i in range(0, len(metrics), BATCH):
        client.log_batch(mlflow_id, metrics=metrics[i:i + BATCH])
    outputs = run.outputs_path(str(row["trial_id"]))
    if outputs.is_dir() and any(outputs.iterdir()):
        client.log_artifacts(mlflow_id, str(outputs), artifact_path="outputs")
    if run.log_path(str(row["trial_id"])).is_file():
        client.log_artifact(mlflow_id, str(run.log_path(str(row["trial_id"]))))
    client.set_terminated(mlflow_id, FINISHED.get(str(row["status"]), "FAILED"), end_time=end)
    return str(mlflow_id)


def trial_tags(row: dict[str, Any], run: RunDir) -> dict[str, str]:
    tags = {TAG_RUN: run.run_id, TAG_TRIAL: str(row["trial_id"]),
            "launcher.config_id": str(row["config_id"]), "launcher.replica": str(row["replica"]),
            "launcher.seed": str(row["seed"]), "launcher.sweep": str(row.get("sweep") or ""),
            "launcher.status": str(row["status"]), "launcher.host": _text(row.get("host")),
            "launcher.image_id": _text(row.get("image_id")),
            "launcher.container_id": _text(row.get("container_id")),
            "launcher.reason": _text(row.get("reason"))[:500]}
    return {k: v for k, v in tags.items() if v}


def history_metrics(path: Path, start_ms: int) -> Iterator[Any]:
    """Every numeric value of every history line as an MLflow metric at its step."""
    from mlflow.entities import Metric

    from launcher.results import read_history

    for index, line in enumerate(read_history(path)):
        step = line.get("step", line.get("epoch", index))
        step = int(step) if isinstance(step, int | float) else index
        for key, value in line.items():
            number = _number(value)
            if key not in ("step", "epoch") and number is not None:
                yield Metric(key, number, start_ms, step)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            import numpy as np

            if isinstance(value, np.number) and not isinstance(value, np.bool_):
                return float(value)
        except ImportError:
            pass
        return None
    return float(value) if value == value else None


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _millis(value: Any) -> int | None:
    moment = parse_time(value)
    return int(moment.timestamp() * 1000) if moment else None
