"""Differential test against W&B's own sweep engine: accept/refuse verdicts, grid sets and
random marginals (chi-square for discrete values, two-sample KS for continuous ones,
2,000 draws each) on W&B's published configurations and hypothesis-generated ones.
Every disagreement must be one of the README's "Differences from W&B"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from launcher.yamlfile import read_yaml_file
from tests.wandb.reference import (
    DRAWS,
    P_MIN,
    as_current,
    call,
    documented_difference,
    grid_set,
    ours,
    random_columns,
)

pytestmark = pytest.mark.wandb
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wandb"


def published() -> list[tuple[str, dict[str, Any]]]:
    out = [(p.name, read_yaml_file(p).data) for p in sorted(FIXTURES.glob("*.yaml"))]
    for entry in json.loads((FIXTURES / "sweeps-tests-configs.json").read_text()):
        out.append((f"{entry['file']}:{entry['line']}", entry["config"]))
    # W&B runs random and bayes sweeps until stopped; here they need run_cap, so each such
    # file is also compared as a random sweep with one (the marginals come from these)
    for name, config in list(out):
        if isinstance(config, dict) and config.get("method") in ("random", "bayes") \
                and "run_cap" not in config:
            out.append((f"{name} (random, run_cap 20)", {**config, "method": "random",
                                                           "run_cap": 20}))
    return out


def compare(configs: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Check every config; return counts of what was compared."""
    prepared = [(name, config, as_current(config)) for name, config in configs]
    jobs = [{"op": "verdict", "config": c if isinstance(c, dict) else {"method": "refused"}}
            for _, _, c in prepared]
    answers = call(jobs)
    counts = {"configs": 0, "agree": 0, "documented": 0, "grids": 0, "marginals": 0}
    marginal_jobs, problems = [], []
    for (name, config, current), answer in zip(prepared, answers, strict=True):
        counts["configs"] += 1
        wandb_ok = isinstance(current, dict) and answer["ok"]
        spec = ours(config)
        our_ok = not isinstance(spec, str)
        if wandb_ok != our_ok:
            why = documented_difference(config)
            if why is None:
                problems.append(f"{name}: W&B {'accepts' if wandb_ok else 'refuses'} "
                                f"({answer['error'] or current}), we "
                                f"{'accept' if our_ok else 'refuse'} "
                                f"({spec if not our_ok else ''})")
            counts["documented"] += 1
            print(f"documented difference: {name}: {why}")
            continue
        counts["agree"] += 1
        if not (wandb_ok and our_ok) or isinstance(spec, str):
            continue
        if spec.method == "grid" and answer["grid"] is not None:
            theirs = {json.dumps(g, sort_keys=True) for g in answer["grid"]}
            mine = grid_set(spec)
            if theirs != mine and documented_difference(config) is None:
                problems.append(f"{name}: grid differs: only W&B {sorted(theirs - mine)[:3]}"
                                f", only ours {sorted(mine - theirs)[:3]}")
            counts["grids"] += 1
        if spec.method == "random" and spec.parameters:
            paths, columns = random_columns(spec)
            marginal_jobs.append((name, {"op": "marginals", "config": current, "paths": paths,
                                         "ours": columns, "n": DRAWS, "seed": 0}))
    for (name, _job), answer in zip(marginal_jobs, call([j for _, j in marginal_jobs]),
                                   strict=True):
        for r in answer["results"]:
            counts["marginals"] += 1
            if r["p"] < P_MIN or r["types_wandb"] != r["types_ours"]:
                problems.append(f"{name}: {'.'.join(r['path'])}: {r['test']} p={r['p']:.2g}, "
                                f"types W&B {r['types_wandb']} ours {r['types_ours']}")
    assert not problems, "\n".join(problems)
    return counts


def test_published_wandb_configurations_agree_with_wandb() -> None:
    counts = compare(published())
    print(counts)
    assert counts["configs"] >= 70 and counts["grids"] >= 10 and counts["marginals"] >= 20


NAMES = st.sampled_from(["lr", "batch", "a.b", "opt", "drop", "x_1", "1bad", "has space"])
NUM = st.one_of(st.integers(-5, 20), st.floats(-5, 20, allow_nan=False).map(
    lambda x: round(x, 3)))
VALUE = st.one_of(st.integers(-3, 5), st.sampled_from([0.5, 1e-5, "adam", "sgd", True, None]),
                  st.lists(st.integers(0, 3), max_size=2))


@st.composite
def parameter(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["values", "probs", "value", "range", "q_uniform", "uniform",
                                 "q_log_uniform_values", "log_uniform_values", "normal",
                                 "q_normal", "beta", "inv_log_uniform_values", "int_uniform",
                                 "q_beta", "log_normal", "categorical_w_probabilities"]))
    if kind in ("values", "probs", "categorical_w_probabilities"):
        values = draw(st.lists(VALUE, min_size=1, max_size=5))
        out: dict[str, Any] = {"values": values}
        if kind != "values":
            weights = draw(st.lists(st.integers(0, 4), min_size=len(values),
                                    max_size=len(values) + draw(st.integers(0, 1))))
            total = sum(weights) or 1
            out["probabilities"] = [round(w / total, 5) for w in weights]
            if kind == "categorical_w_probabilities":
                out["distribution"] = kind
        return out
    if kind == "value":
        return {"value": draw(VALUE)}
    out = {} if kind == "range" else {"distribution": kind}
    if kind in ("normal", "q_normal", "log_normal"):
        out.update({"mu": draw(NUM), "sigma": draw(st.sampled_from([0.5, 1, 2, 3.5]))})
    elif kind in ("beta", "q_beta"):
        out.update({"a": draw(st.sampled_from([0.5, 1, 2, 5])),
                    "b": draw(st.sampled_from([0.5, 1, 3]))})
    else:
        lo = draw(NUM)
        out.update({"min": lo, "max": draw(st.one_of(NUM, st.just(lo)))})
    if kind.startswith("q_") and draw(st.booleans()):
        out["q"] = draw(st.sampled_from([1, 2, 3, 0.25, 0.1, 0.5, 1.0]))
    return out


@st.composite
def sweep(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(st.sampled_from(["grid", "random"]))
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    config: dict[str, Any] = {"method": method, "parameters": {n: draw(parameter())
                                                               for n in names}}
    if method == "random" or draw(st.booleans()):
        config["run_cap"] = draw(st.integers(1, 50))
    if draw(st.booleans()):
        config["metric"] = {"name": "loss", "goal": draw(st.sampled_from(
            ["minimize", "maximize", "max"]))}
    return config


def test_generated_configurations_agree_with_wandb() -> None:
    totals = {"configs": 0, "agree": 0, "grids": 0, "marginals": 0}

    # Batches of configurations: one engine call per batch (scipy's start-up dominates).
    @settings(max_examples=25, derandomize=True, deadline=None, database=None,
              phases=[Phase.generate])  # shrinking would rerun whole batches
    @given(st.lists(sweep(), min_size=12, max_size=12))
    def batch(configs: list[dict[str, Any]]) -> None:
        counts = compare([(f"generated: {json.dumps(c)}", c) for c in configs])
        for key in totals:
            totals[key] += counts[key]

    batch()
    print(totals)
    assert totals["configs"] == 300 and totals["agree"] >= 100
    assert totals["grids"] >= 20 and totals["marginals"] >= 30
