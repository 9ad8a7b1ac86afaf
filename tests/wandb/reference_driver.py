"""Runs INSIDE the W&B reference venv (.cache/wandb-sweeps, made by
scripts/wandb-sweeps-venv.sh): W&B's own sweep engine gives its verdicts, grids and
samples for the differential test. It never imports the launcher.

stdin: a JSON list of jobs; stdout: a JSON list of answers, one per job.
    {"op": "verdict", "config": {...}}
        -> {"ok": bool, "error": str, "grid": [config, ...] | null}
           grid: every configuration W&B's grid search visits (method grid, at most
           GRID_LIMIT), each as {name: value} with nested groups as nested dicts
    {"op": "marginals", "config": {...}, "paths": [[...], ...], "ours": [[...], ...],
     "n": 2000, "seed": 0}
        -> {"results": [{"path", "test", "p", "types_wandb", "types_ours"}, ...]}
           n random draws from W&B's engine, compared with ours per parameter:
           chi-square (discrete values) or two-sample KS (continuous)
    {"op": "hyperband", "config": {...}, "runs": [{"name", "state", "history": [...]}]}
        -> {"stop": [name, ...]}: the runs W&B's current hyperband rule stops
           (tests/fixtures/wandb/sweeps-hyperband_stopping.py.txt, run here on 0.2.0's
           SweepRun with the current schema's defaults: eta 3, strict true)
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections import Counter
from copy import deepcopy
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats as stats
from sweeps import RunState, SweepConfig, SweepRun
from sweeps.config.schema import fill_validate_metric
from sweeps.grid_search import grid_search_next_runs
from sweeps.params import HyperParameter, HyperParameterSet
from sweeps.random_search import random_search_next_runs

GRID_LIMIT = 20_000
CURRENT_HYPERBAND = (Path(__file__).resolve().parents[1] / "fixtures" / "wandb"
                     / "sweeps-hyperband_stopping.py.txt")
CONTINUOUS = {HyperParameter.UNIFORM, HyperParameter.LOG_UNIFORM_V1,
              HyperParameter.LOG_UNIFORM_V2, HyperParameter.INV_LOG_UNIFORM_V1,
              HyperParameter.INV_LOG_UNIFORM_V2, HyperParameter.NORMAL,
              HyperParameter.LOG_NORMAL, HyperParameter.BETA}


def plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def run_values(run: Any) -> dict[str, Any]:
    return {k: plain(v["value"]) for k, v in run.config.items()}


def verdict(config: dict[str, Any]) -> dict[str, Any]:
    try:
        SweepConfig(config)
    except Exception as e:  # every refusal counts, whatever its class
        return {"ok": False, "error": f"{type(e).__name__}: {e}"[:300], "grid": None}
    if config.get("method") != "grid":
        return {"ok": True, "error": "", "grid": None}
    try:
        first = grid_search_next_runs([], config, n=1)
    except Exception as e:
        return {"ok": False, "error": f"grid: {type(e).__name__}: {e}"[:300], "grid": None}
    size = grid_size(config)
    if first == [None] or size > GRID_LIMIT:
        return {"ok": True, "error": "", "grid": None}
    runs = grid_search_next_runs([], config, n=size + 1)
    return {"ok": True, "error": "", "grid": [run_values(r) for r in runs if r is not None]}


def grid_size(config: dict[str, Any]) -> int:
    size = 1
    for p in HyperParameterSet.from_config(config["parameters"]):
        if p.type == HyperParameter.CATEGORICAL:
            size *= len(p.config["values"])
        elif p.type == HyperParameter.INT_UNIFORM:
            size *= p.config["max"] - p.config["min"] + 1
        elif p.type == HyperParameter.Q_UNIFORM:
            size *= len(np.arange(p.config["min"], p.config["max"], p.config["q"]))
    return size


def pluck(values: dict[str, Any], path: list[str]) -> Any:
    node: Any = values
    for part in path:
        node = node[part]
    return node


def key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def marginals(job: dict[str, Any]) -> dict[str, Any]:
    random.seed(job["seed"])
    np.random.seed(job["seed"])
    runs = random_search_next_runs(job["config"], n=job["n"])
    theirs = [run_values(r) for r in runs]
    kinds = {p.name: p.type for p in HyperParameterSet.from_config(job["config"]["parameters"])}
    out = []
    for path, ours in zip(job["paths"], job["ours"], strict=True):
        wandb = [pluck(v, path) for v in theirs]
        kind = kinds.get(HyperParameterSet.NESTING_DELIMITER.join(path))
        test, p = ("ks", ks(wandb, ours)) if kind in CONTINUOUS else ("chi2", chi2(wandb, ours))
        out.append({"path": path, "test": test, "p": p,
                    "types_wandb": sorted({type(v).__name__ for v in wandb}),
                    "types_ours": sorted({type(v).__name__ for v in ours})})
    return {"results": out}


def ks(a: list[float], b: list[float]) -> float:
    finite_a = [x for x in a if isinstance(x, int | float) and math.isfinite(x)]
    finite_b = [x for x in b if isinstance(x, int | float) and math.isfinite(x)]
    return float(stats.ks_2samp(finite_a, finite_b).pvalue)


def chi2(a: list[Any], b: list[Any]) -> float:
    """Two-sample chi-square on value counts; values rarer than 5 expected are pooled."""
    ca, cb = Counter(map(key, a)), Counter(map(key, b))
    values = sorted(set(ca) | set(cb), key=lambda v: -(ca[v] + cb[v]))
    rows, pooled = [], [0, 0]
    for v in values:
        if ca[v] + cb[v] >= 10:
            rows.append([ca[v], cb[v]])
        else:
            pooled[0] += ca[v]
            pooled[1] += cb[v]
    if sum(pooled) >= 10:
        rows.append(pooled)
    if len(rows) < 2:
        return 1.0
    return float(stats.chi2_contingency(np.array(rows).T)[1])


def current_hyperband() -> Any:
    """W&B's current hyperband_stop_runs, its package imports served by 0.2.0 and the
    current schema's hyperband defaults (0.2.0's schema has no ``strict``)."""
    source = CURRENT_HYPERBAND.read_text()
    for line in ("from .config import SweepConfig, fill_validate_early_terminate\n",
                 "from .config.schema import dereferenced_sweep_config_jsonschema, "
                 "fill_validate_metric\n", "from .run import RunState, SweepRun\n"):
        assert line in source, line
        source = source.replace(line, "")
    keys = ("type", "max_iter", "min_iter", "s", "eta", "strict")
    properties: dict[str, Any] = {k: {} for k in keys}

    def fill_validate_early_terminate(config: dict[str, Any]) -> dict[str, Any]:
        config = deepcopy(config)
        config["early_terminate"] = {"eta": 3, "strict": True, **config["early_terminate"]}
        return config

    namespace: dict[str, Any] = {
        "__name__": "current_hyperband", "SweepConfig": SweepConfig, "RunState": RunState,
        "SweepRun": SweepRun, "fill_validate_metric": fill_validate_metric,
        "fill_validate_early_terminate": fill_validate_early_terminate,
        "dereferenced_sweep_config_jsonschema": {"definitions": {"hyperband_stopping": {
            "properties": properties}}}}
    exec(compile(source, str(CURRENT_HYPERBAND), "exec"), namespace)
    return namespace["hyperband_stop_runs"]


def hyperband(job: dict[str, Any], stop_runs: Any) -> dict[str, Any]:
    runs = [SweepRun(name=r["name"], state=RunState(r["state"]),
                     history=[{job["config"]["metric"]["name"]: v} if v is not None else {}
                              for v in r["history"]]) for r in job["runs"]]
    return {"stop": [r.name for r in stop_runs(runs, job["config"])]}


def main() -> None:
    jobs = json.load(sys.stdin)
    answers = []
    stop_runs = None
    for job in jobs:
        if job["op"] == "hyperband":
            stop_runs = stop_runs or current_hyperband()
            answers.append(hyperband(job, stop_runs))
        else:
            answers.append(verdict(job["config"]) if job["op"] == "verdict" else marginals(job))
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
