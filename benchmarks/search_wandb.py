"""W&B's own bayes search in the same simulation (runs INSIDE W&B's venv,
.cache/wandb-sweeps, made by scripts/wandb-sweeps-venv.sh; never imports the launcher).

stdin: {"functions": [...], "seeds": [...], "run_cap": N, "in_flight": K}
stdout: {"best": {function: [best value per seed]}, "suggest_ms": {function: [ms, ...]}}

Each suggestion is W&B's ``bayes_search_next_run`` over every run so far: finished ones
with their summary metric, the ones in flight as running (W&B's way to spread a batch).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sweeps import RunState, SweepRun
from sweeps.bayes_search import bayes_search_next_run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.search_sim import SPACES, simulate


def one(function: str, seed: int, run_cap: int, in_flight: int) -> tuple[float, list[float]]:
    random.seed(seed)
    np.random.seed(seed)
    config = {"method": "bayes", "metric": {"name": "value", "goal": "minimize"},
              "parameters": {k: {"min": lo, "max": hi}
                             for k, (lo, hi) in SPACES[function].items()}}
    runs: list[Any] = []
    took: list[float] = []

    def ask() -> tuple[Any, dict[str, float]]:
        started = time.perf_counter()
        run = bayes_search_next_run(runs, config)
        took.append((time.perf_counter() - started) * 1000)
        run.state = RunState.running
        run.name = str(len(runs))
        runs.append(run)
        return run, {k: float(v["value"]) for k, v in run.config.items()}

    def tell(run: Any, value: float) -> None:
        index = runs.index(run)
        runs[index] = SweepRun(name=run.name, config=run.config, state=RunState.finished,
                               summary_metrics={"value": value})

    values = simulate(function, ask, tell, run_cap=run_cap, in_flight=in_flight, seed=seed)
    return min(values), took


def main() -> None:
    job = json.load(sys.stdin)
    best: dict[str, list[float]] = {}
    ms: dict[str, list[float]] = {}
    for function in job["functions"]:
        for seed in job["seeds"]:
            value, took = one(function, seed, job["run_cap"], job["in_flight"])
            best.setdefault(function, []).append(value)
            ms.setdefault(function, []).extend(took)
    json.dump({"best": best, "suggest_ms": ms}, sys.stdout)


if __name__ == "__main__":
    main()
