"""Differential test of hyperband stopping decisions against W&B's own (current) rule, run
in W&B's venv: generated sweeps of running, finished and failed runs with histories that
hold gaps, NaN and strings, over every way to give the bands."""

from __future__ import annotations

import random
from typing import Any

import pytest

from launcher.search.hyperband import decide, metric_history
from launcher.wandb_keys import Hyperband, Metric
from tests.wandb.reference import call

pytestmark = pytest.mark.wandb
CASES = 400
STATES = ("running", "running", "running", "finished", "failed", "killed")


def rule_config(rng: random.Random) -> dict[str, Any]:
    eta = rng.choice([1.5, 2, 2.5, 3, 4])
    rule: dict[str, Any] = {"type": "hyperband", "eta": eta}
    if rng.random() < 0.5:
        rule["min_iter"] = rng.randint(1, 6)
    else:
        rule.update(max_iter=rng.randint(4, 40), s=rng.randint(1, 4))
    if rng.random() < 0.7:
        rule["strict"] = rng.random() < 0.5
    return rule


def history(rng: random.Random) -> list[Any]:
    out: list[Any] = []
    level = rng.uniform(0, 10)
    for _ in range(rng.randint(0, 30)):
        roll = rng.random()
        if roll < 0.05:
            out.append(None)  # a row without the metric
        elif roll < 0.08:
            out.append(rng.choice([float("nan"), "NaN", float("inf")]))
        else:
            level += rng.uniform(-1.5, 1.0)
            out.append(round(level, rng.choice([0, 1, 3])))
    return out


def case(rng: random.Random) -> dict[str, Any]:
    goal = rng.choice(["minimize", "maximize"])
    runs = [{"name": f"r{i}", "state": rng.choice(STATES), "history": history(rng)}
            for i in range(rng.randint(1, 12))]
    config = {"method": "grid", "metric": {"name": "loss", "goal": goal},
              "early_terminate": rule_config(rng), "parameters": {"a": {"values": [1]}}}
    return {"op": "hyperband", "config": config, "runs": runs}


def ours(job: dict[str, Any]) -> list[str]:
    raw = job["config"]["early_terminate"]
    rule = Hyperband(eta=float(raw["eta"]), strict=raw.get("strict", True),
                     min_iter=raw.get("min_iter"), max_iter=raw.get("max_iter"),
                     s=raw.get("s"))
    metric = Metric("loss", job["config"]["metric"]["goal"])
    histories = {r["name"]: metric_history([{} if v is None else {"loss": v}
                                            for v in r["history"]], "loss")
                 for r in job["runs"]}
    running = [r["name"] for r in job["runs"] if r["state"] == "running"]
    return list(decide(rule, metric, histories, running))


def test_hyperband_decisions_agree_with_wandbs_rule() -> None:
    rng = random.Random(12)
    jobs = [case(rng) for _ in range(CASES)]
    answers = call(jobs)
    stopped = 0
    problems = []
    for job, answer in zip(jobs, answers, strict=True):
        mine = ours(job)
        stopped += len(mine)
        if mine != answer["stop"]:
            problems.append(f"{job}: W&B stops {answer['stop']}, we stop {mine}")
    assert not problems, "\n".join(problems[:5])
    assert stopped >= CASES // 2, "the generated cases must stop trials too"
