"""Our side of the differential test, and the bridge to W&B's engine in its own venv.

W&B's engine (the ``sweeps`` package 0.2.0, the newest release) runs in
``.cache/wandb-sweeps`` (scripts/wandb-sweeps-venv.sh) through reference_driver.py. Where
W&B's current code differs from that release, the launcher follows the current code and
the bridge emulates it: keys the current schema added (run_cap, job, image_uri,
metric.impute_while_running, early_terminate.strict) are checked as the current schema
checks them and then removed before 0.2.0 sees the file.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path
from typing import Any

from launcher.errors import SweepError
from launcher.overrides import Overrides
from launcher.parameters import value_key
from launcher.plan import expand
from launcher.spec import SweepSpec, build_spec
from launcher.yamlfile import YamlDoc

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".cache/wandb-sweeps/bin/python"
DRIVER = Path(__file__).with_name("reference_driver.py")
DRAWS = 2000
P_MIN = 1e-3  # deterministic seeds on both sides: a p-value below this is a real difference
DEPRECATED = {"log_uniform", "inv_log_uniform", "q_log_uniform"}
STRICT_POSITIVE = ("sigma", "a", "b")


def call(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = subprocess.run([str(PYTHON), str(DRIVER)], input=json.dumps(jobs),
                         capture_output=True, text=True, timeout=900, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return list(json.loads(out.stdout))


def as_current(config: dict[str, Any]) -> dict[str, Any] | str:
    """The config for 0.2.0 with the current schema's additions checked and removed, or
    the current schema's refusal (a string)."""
    config = json.loads(json.dumps(config))
    if "run_cap" in config:
        cap = config.pop("run_cap")
        if isinstance(cap, bool) or not isinstance(cap, int | float) or cap != int(cap) \
                or cap <= 0:
            return "run_cap must be an integer > 0"
    for key in ("job", "image_uri"):
        if key in config and not isinstance(config.pop(key), str):
            return f"{key} must be a string"
    metric = config.get("metric")
    if isinstance(metric, dict) and "impute_while_running" in metric and \
            metric.pop("impute_while_running") not in ("latest", "best", "worst", "false"):
        return "bad impute_while_running"
    rule = config.get("early_terminate")
    if isinstance(rule, dict) and "strict" in rule and not isinstance(rule.pop("strict"), bool):
        return "strict must be a boolean"
    return config


def ours(config: dict[str, Any], **overrides: Any) -> SweepSpec | str:
    try:
        return build_spec(YamlDoc(data=config, path="<config>"), Overrides(**overrides))
    except SweepError as e:
        return str(e)


def leaves(params: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    out: list[tuple[tuple[str, ...], Any]] = []
    if not isinstance(params, dict):
        return out
    for name, definition in params.items():
        if isinstance(definition, dict) and "parameters" in definition:
            out += leaves(definition["parameters"], (*prefix, name))
        else:
            out.append(((*prefix, name), definition))
    return out


def documented_difference(config: dict[str, Any]) -> str | None:
    """Why the launcher may rightly decide otherwise than W&B on this config (README,
    "Differences from W&B"), or None when the verdicts must agree."""
    method, params = config.get("method"), config.get("parameters")
    if "method" not in config:
        return "method defaults to grid"
    if method == "custom":
        return "method custom is not supported yet"
    if method in ("random", "bayes") and "run_cap" not in config:
        return f"{method} search needs run_cap"
    if method == "bayes" and "metric" not in config:
        return "bayes search needs metric (W&B fails only when it suggests)"
    reason = _early_terminate_difference(config)
    if reason:
        return reason
    if "parameters" not in config:
        return "parameters may be left out (a sweep of replicas only)"
    if "scheduler" in config or "metrics" in config:
        return "scheduler and metrics are W&B's newest keys"
    if not isinstance(params, dict):
        return None
    for path, leaf in leaves(params):
        reason = _leaf_difference(leaf, nested=len(path) > 1)
        if reason:
            return reason
    return None


def _early_terminate_difference(config: dict[str, Any]) -> str | None:
    """Hyperband settings W&B's schema accepts and its engine fails on when it stops runs."""
    rule = config.get("early_terminate")
    if not isinstance(rule, dict) or rule.get("type") != "hyperband":
        return None
    if "metric" not in config:
        return "early_terminate needs metric (W&B fails only when it stops runs)"
    if "max_iter" in rule and "s" not in rule:
        return "max_iter without s (W&B's engine raises KeyError)"
    s = rule.get("s")
    if isinstance(s, float) and not s.is_integer():
        return "a fractional s (W&B's engine fails on range(s))"
    from launcher.wandb_keys import Hyperband

    try:
        bands = Hyperband(eta=float(rule.get("eta", 3)), min_iter=rule.get("min_iter"),
                          max_iter=rule.get("max_iter"),
                          s=int(s) if isinstance(s, int | float) else None).bands()
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None  # the schema's own checks decide
    return None if bands else "hyperband without a band (W&B raises when it stops runs)"


def _leaf_difference(leaf: Any, nested: bool) -> str | None:
    if not isinstance(leaf, dict):
        return "a bare value or list is shorthand for value/values"
    if leaf.get("distribution") in DEPRECATED:
        return "deprecated log distributions are accepted with a warning"
    for key, value in leaf.items():
        if key in ("min", "max", "mu", "sigma", "q", "a", "b", "value") and \
                isinstance(value, float) and not math.isfinite(value):
            return "non-finite numbers are refused"
        if key in STRICT_POSITIVE and isinstance(value, int | float) and value == 0:
            return f"{key}: 0 is refused"
    values = leaf.get("values")
    if isinstance(values, list):
        floats = {value_key(v) for v in values if isinstance(v, float) and v.is_integer()}
        ints = {value_key(v) for v in values if isinstance(v, int) and not isinstance(v, bool)}
        if floats & ints:
            return "W&B's current grid treats 1 and 1.0 as one value (0.2.0 does not)"
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            return "non-finite numbers are refused"
    if nested:
        return "the same rules apply inside nested groups (W&B checks only the top level)"
    return None


def grid_set(spec: SweepSpec) -> set[str]:
    """Every configuration of the whole grid (W&B's engine ignores run_cap; its service
    stops the sweep there, so run_cap is compared by count, not here)."""
    from dataclasses import replace

    whole = replace(spec, run_cap=None, replicas=1)
    return {json.dumps(t.nested_params(), sort_keys=True) for t in expand(whole).trials}


def random_columns(spec: SweepSpec) -> tuple[list[list[str]], list[list[Any]]]:
    """Our DRAWS draws of every parameter, as columns."""
    from dataclasses import replace

    plan = expand(replace(spec, run_cap=DRAWS, replicas=1))
    paths = [list(p.key_path) for p in spec.parameters]
    return paths, [[t.params[i][1] for t in plan.trials] for i in range(len(paths))]
