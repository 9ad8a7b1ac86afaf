"""The W&B sweep keys that are not parameters: metric, early_terminate and the keys that
only mean something to W&B's service (project, entity, controller, apiVersion, kind, job,
image_uri, scheduler). Each is checked with W&B's own schema rules, so a file that W&B
refuses is refused here too; keys without an effect here are accepted with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from launcher.schema import Reader

IMPUTE = ("latest", "best", "worst")
IMPUTE_WHILE_RUNNING = ("latest", "best", "worst", "false")
STRING_KEYS = ("project", "entity", "apiVersion", "job", "image_uri")
SERVICE_KEYS = (*STRING_KEYS, "controller", "kind", "scheduler")
SCHEDULER_ENGINES = ("optuna", "ax", "wandb")


@dataclass(frozen=True)
class Metric:
    """``metric``: what to optimise; ``target`` stops the sweep once a trial reaches it;
    ``impute`` says what adaptive search is told about a failed trial (W&B's default:
    worst); ``impute_while_running`` is kept (trials in flight are told nothing here)."""

    name: str
    goal: str  # "minimize" | "maximize"
    target: float | None = None
    impute: str = "worst"
    impute_while_running: str = "false"

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b`` for this goal."""
        return a > b if self.goal == "maximize" else a < b

    def reached(self, value: object) -> bool:
        """Whether a finished trial's metric value reaches the target (per goal)."""
        if self.target is None or isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return value >= self.target if self.goal == "maximize" else value <= self.target


@dataclass(frozen=True)
class Hyperband:
    """``early_terminate: {type: hyperband}`` as W&B's engine reads it: bands from
    ``max_iter`` and ``s`` (``max_iter / eta^k``, k = 1..s) or from ``min_iter``
    (``min_iter * eta^k``); ``strict`` (W&B's default: true) compares the value at the band
    instead of the best value so far."""

    eta: float = 3.0
    strict: bool = True
    min_iter: int | None = None
    max_iter: int | None = None
    s: int | None = None

    def bands(self) -> tuple[int, ...]:
        """The history indices (1-based counts of metric rows) where trials are compared;
        W&B's own arithmetic, float division and int() included."""
        bands: list[int] = []
        if self.max_iter is not None and self.s is not None:
            band: float = self.max_iter
            for _ in range(self.s):
                band /= self.eta
                if band < 1:
                    break
                bands.append(int(band))
            return tuple(sorted(bands))
        assert self.min_iter is not None
        band = self.min_iter
        for _ in range(MAX_BANDS):
            if band > MAX_STEP:  # W&B lists 100 bands; none past this is ever reached
                break
            bands.append(int(band))
            band *= self.eta
        return tuple(bands)


MAX_BANDS = 100
MAX_STEP = 10**12


def parse_metric(reader: Reader, raw: object) -> Metric:
    at = ("metric",)
    data = reader.mapping(raw, at)
    reader.check_keys(data, at, ("name", "goal", "target", "impute", "impute_while_running"))
    goal = reader.choice(data.get("goal", "minimize"), (*at, "goal"), ("minimize", "maximize"))
    target = reader.number(data["target"], (*at, "target")) if "target" in data else None
    impute = reader.choice(data.get("impute", "worst"), (*at, "impute"), IMPUTE)
    running = data.get("impute_while_running", "false")
    running = reader.choice(running, (*at, "impute_while_running"), IMPUTE_WHILE_RUNNING)
    return Metric(reader.string(data.get("name"), (*at, "name")), goal, target, impute, running)


def check_service_keys(reader: Reader, data: dict[str, Any], method: str) -> list[str]:
    """Validate the keys that only W&B's service uses; one warning for each one given."""
    for key in STRING_KEYS:
        if key in data and not isinstance(data[key], str):
            raise reader.error((key,), "must be a string")
    if "kind" in data:
        reader.choice(data["kind"], ("kind",), ("sweep",))
    if "controller" in data:
        controller = reader.mapping(data["controller"], ("controller",))
        if "type" not in controller:
            raise reader.error(("controller",), "needs 'type' (local or cloud)")
        reader.choice(controller["type"], ("controller", "type"), ("local", "cloud"))
    if "scheduler" in data:
        _scheduler(reader, data, method)
    return [f"{key!r} has no effect here (only W&B's service uses it); ignored"
            for key in SERVICE_KEYS if key in data]


def _scheduler(reader: Reader, data: dict[str, Any], method: str) -> None:
    at = ("scheduler",)
    scheduler = reader.mapping(data["scheduler"], at)
    reader.check_keys(scheduler, at, ("engine", "source", "optimizer", "search_space"))
    if "engine" not in scheduler:
        raise reader.error(at, "needs 'engine'")
    engine = reader.choice(scheduler["engine"], (*at, "engine"), SCHEDULER_ENGINES)
    if engine != "wandb":
        raise reader.error((*at, "engine"), f"W&B does not support scheduler.engine {engine!r} "
                           "yet; only wandb")
    for key in ("source", "optimizer", "search_space"):
        if key in scheduler:
            reader.string(scheduler[key], (*at, key))
    if ("optimizer" in scheduler or "search_space" in scheduler) and "source" not in scheduler:
        raise reader.error(at, "optimizer and search_space need 'source'")
    if isinstance(data.get("controller"), dict) and data["controller"].get("type") == "local":
        raise reader.error(("controller",), "controller type local cannot be used together "
                           "with scheduler")
    if "early_terminate" in data:
        raise reader.error(("early_terminate",), "early_terminate cannot be used together "
                           "with scheduler")


def parse_early_terminate(reader: Reader, raw: object, metric: Metric | None) -> Hyperband:
    """W&B's hyperband_stopping schema and defaults (eta 3, strict true); the bands must not
    be empty (W&B's engine raises then) and the sweep must name the metric to compare."""
    at = ("early_terminate",)
    rule = reader.mapping(raw, at)
    reader.check_keys(rule, at, ("type", "max_iter", "min_iter", "s", "eta", "strict"))
    if "type" not in rule:
        raise reader.error(at, "needs 'type' (hyperband)")
    reader.choice(rule["type"], (*at, "type"), ("hyperband",))
    if not ("min_iter" in rule or ("max_iter" in rule and "s" in rule)):
        raise reader.error(at, "hyperband needs min_iter, or max_iter and s")
    max_iter = reader.integer(rule["max_iter"], (*at, "max_iter")) if "max_iter" in rule \
        else None
    min_iter = reader.integer(rule["min_iter"], (*at, "min_iter"), minimum=1) \
        if "min_iter" in rule else None
    s = None
    if "s" in rule:
        value = reader.number(rule["s"], (*at, "s"))
        if not value.is_integer():
            raise reader.error((*at, "s"), f"must be a whole number (W&B's engine counts bands "
                               f"with range(s)), got {rule['s']!r}")
        s = int(value)
    eta = reader.number(rule.get("eta", 3), (*at, "eta"))
    if eta <= 1:
        raise reader.error((*at, "eta"), f"must be greater than 1, got {rule['eta']!r}")
    strict = reader.boolean(rule.get("strict", True), (*at, "strict"))
    if max_iter is not None and s is None:  # W&B's engine raises KeyError on it
        raise reader.error((*at, "max_iter"), "max_iter needs s (how many bands below it)")
    rule_ = Hyperband(eta, strict, min_iter, max_iter, s)
    if not rule_.bands():
        raise reader.error(at, "hyperband has no band to compare trials at",
                           hint="increase s or max_iter, or decrease eta")
    if metric is None:
        raise reader.error(at, "early termination needs `metric` (the value it compares)",
                           hint="add metric: {name: ..., goal: ...}")
    return rule_
