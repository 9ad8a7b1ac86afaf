"""The search-quality simulation every contender goes through (standard library only, so
W&B's venv can run it too): ``in_flight`` trials at once, each taking a random time that
depends only on the seed and the trial's number, a new one asked whenever one finishes,
until ``run_cap`` have finished. The objective is experiments/objective.py's own function,
so the values are those a containerized trial reports."""

from __future__ import annotations

import heapq
import importlib.util
import random
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SPACES: dict[str, dict[str, tuple[float, float]]] = {
    "branin": {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)},
    "hartmann6": {f"x{i}": (0.0, 1.0) for i in range(1, 7)},
}
OPTIMA = {"branin": 0.397887, "hartmann6": -3.32237}

Ask = Callable[[], tuple[Any, dict[str, float]]]  # -> (handle, params)
Tell = Callable[[Any, float], None]


def objective_module() -> ModuleType:
    """experiments/objective.py, loaded by path (it is a script, not a package)."""
    if "launcher_objective" in sys.modules:
        return sys.modules["launcher_objective"]
    spec = importlib.util.spec_from_file_location("launcher_objective",
                                                  ROOT / "experiments" / "objective.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["launcher_objective"] = module
    spec.loader.exec_module(module)
    return module


def evaluate(function: str, params: dict[str, Any]) -> float:
    module = objective_module()
    args = {k: str(v) for k, v in params.items()}
    return float(module.evaluate(function, args))


def simulate(function: str, ask: Ask, tell: Tell, *, run_cap: int, in_flight: int,
             seed: int) -> list[float]:
    """The values of ``run_cap`` trials, in the order they finished."""
    clock = 0.0
    running: list[tuple[float, int, Any, float]] = []  # (finish time, number, handle, value)
    asked = 0

    def start() -> None:
        nonlocal asked
        handle, params = ask()
        took = random.Random(f"{seed}:{asked}").expovariate(1.0)
        heapq.heappush(running, (clock + took, asked, handle, evaluate(function, params)))
        asked += 1

    while asked < min(in_flight, run_cap):
        start()
    values = []
    while running:
        clock, _, handle, value = heapq.heappop(running)
        tell(handle, value)
        values.append(value)
        if asked < run_cap:
            start()
    return values
