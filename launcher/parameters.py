"""Parameter definitions of a sweep file, in the Weights & Biases format.

Each leaf parameter becomes one :class:`ParamSpec` with a dotted name
(``model.hidden`` for a nested group) and an explicit distribution. W&B's inference
rules apply when ``distribution`` is absent: ``value`` -> constant, ``values`` ->
categorical, integer ``min``/``max`` -> int_uniform, otherwise -> uniform.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from launcher.schema import Reader
from launcher.yamlfile import MAX_LIST_ITEMS, KeyPath

# distribution -> (required keys, optional keys with defaults)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {
    "constant": (("value",), {}),
    "categorical": (("values",), {}),
    "int_uniform": (("min", "max"), {}),
    "uniform": (("min", "max"), {}),
    "q_uniform": (("min", "max"), {"q": 1.0}),
    "log_uniform": (("min", "max"), {}),
    "log_uniform_values": (("min", "max"), {}),
    "q_log_uniform": (("min", "max"), {"q": 1.0}),
    "q_log_uniform_values": (("min", "max"), {"q": 1.0}),
    "inv_log_uniform": (("min", "max"), {}),
    "inv_log_uniform_values": (("min", "max"), {}),
    "normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "log_normal": ((), {"mu": 0.0, "sigma": 1.0}),
    "q_log_normal": ((), {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    "beta": ((), {"a": 1.0, "b": 1.0}),
    "q_beta": ((), {"a": 1.0, "b": 1.0, "q": 1.0}),
}
# Distributions that a grid can enumerate; the others are continuous.
GRID_KINDS = frozenset({"constant", "categorical", "int_uniform", "q_uniform"})
PARAM_KEYS = ("value", "values", "probabilities", "distribution",
              "min", "max", "mu", "sigma", "q", "a", "b", "parameters")
MAX_VALUES = MAX_LIST_ITEMS  # per parameter (the YAML reader refuses longer lists first)
MAX_VALUE_BYTES = 100 * 1024  # one value as JSON; below Linux's 128 KiB per argument
_NAME = re.compile(r"[^\s.=\[\]]+")
_POSITIVE_BOUNDS = ("log_uniform_values", "q_log_uniform_values",
                    "inv_log_uniform_values")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One leaf parameter: its dotted name, distribution and arguments."""

    name: str
    kind: str
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] | None = None
    min: float | None = None
    max: float | None = None
    mu: float = 0.0
    sigma: float = 1.0
    q: float = 1.0
    a: float = 1.0
    b: float = 1.0

    def grid_values(self) -> tuple[Any, ...]:
        """Every value a grid visits; only for kinds in GRID_KINDS."""
        if self.kind == "constant":
            return (self.value,)
        if self.kind == "categorical":
            return self.values
        assert self.min is not None and self.max is not None
        if self.kind == "int_uniform":
            return tuple(range(int(self.min), int(self.max) + 1))
        steps = int(math.floor((self.max - self.min) / self.q + 1e-9))
        return tuple(round_q(self.min + i * self.q, self.q) for i in range(steps + 1))

    def grid_size(self) -> int:
        if self.kind == "constant":
            return 1
        if self.kind == "categorical":
            return len(self.values)
        assert self.min is not None and self.max is not None
        if self.kind == "int_uniform":
            return int(self.max) - int(self.min) + 1
        return int(math.floor((self.max - self.min) / self.q + 1e-9)) + 1


def round_q(x: float, q: float) -> float | int:
    """Round to the grid of q, keeping integers integral (W&B's q_* semantics)."""
    value = round(x / q) * q
    if float(q).is_integer():
        return int(round(value))
    return round(value, 12)


def parse_parameters(reader: Reader, raw: object, at: KeyPath) -> tuple[ParamSpec, ...]:
    """Validate a ``parameters`` mapping (possibly nested) into flat ParamSpecs."""
    params: list[ParamSpec] = []
    _collect(reader, reader.mapping(raw, at), at, "", params)
    return tuple(params)


def _collect(reader: Reader, raw: dict[str, Any], at: KeyPath, prefix: str,
             out: list[ParamSpec]) -> None:
    for name, definition in raw.items():
        where = (*at, name)
        if not _NAME.fullmatch(name):
            raise reader.error(where, f"parameter name {name!r} must have no spaces, dots, "
                               "'=' or brackets")
        if isinstance(definition, dict) and "parameters" in definition:
            reader.check_keys(definition, where, ["parameters"])
            group = reader.mapping(definition["parameters"], (*where, "parameters"))
            if not group:
                raise reader.error((*where, "parameters"), "a parameter group must not be empty")
            _collect(reader, group, (*where, "parameters"), f"{prefix}{name}.", out)
        else:
            out.append(_parse_leaf(reader, definition, where, prefix + name))


def _parse_leaf(reader: Reader, definition: object, at: KeyPath, name: str) -> ParamSpec:
    if not isinstance(definition, dict):
        # A bare scalar or list is shorthand for `value` / `values`.
        definition = {"values": definition} if isinstance(definition, list) else {
            "value": definition}
    reader.check_keys(definition, at, PARAM_KEYS)
    kind = _infer_kind(reader, definition, at)
    required, optional = DISTRIBUTIONS[kind]
    allowed = {"distribution", *required, *optional}
    if kind == "categorical":
        allowed.add("probabilities")
    for key in definition:
        if key not in allowed:
            raise reader.error((*at, key), f"{key!r} has no meaning for distribution {kind}")
    for key in required:
        if key not in definition:
            raise reader.error(at, f"distribution {kind} needs {key!r}"
                               + (" (its bounds)" if key in ("min", "max") else ""))
    if kind == "constant":
        check_value_size(reader, definition["value"], (*at, "value"))
        return ParamSpec(name, kind, value=definition["value"])
    if kind == "categorical":
        return _categorical(reader, definition, at, name)
    nums = {key: reader.number(definition[key], (*at, key))
            for key in (*required, *optional) if key in definition}
    args = {**optional, **nums}
    _check_numeric(reader, kind, args, definition, at)
    return ParamSpec(name, kind, **args)  # type: ignore[arg-type]


def _infer_kind(reader: Reader, definition: dict[str, Any], at: KeyPath) -> str:
    if "distribution" in definition:
        return reader.choice(definition["distribution"], (*at, "distribution"), DISTRIBUTIONS)
    if "value" in definition:
        return "constant"
    if "values" in definition:
        return "categorical"
    if "min" in definition or "max" in definition:
        bounds = [definition.get("min"), definition.get("max")]
        if all(isinstance(b, int) and not isinstance(b, bool) for b in bounds):
            return "int_uniform"
        return "uniform"
    raise reader.error(at, "a parameter needs 'value', 'values', 'min'/'max', 'distribution' "
                       "or nested 'parameters'")


def _categorical(reader: Reader, definition: dict[str, Any], at: KeyPath,
                 name: str) -> ParamSpec:
    values = definition["values"]
    if not isinstance(values, list):
        raise reader.error((*at, "values"), "must be a list")
    if not values:
        raise reader.error((*at, "values"), "must not be empty")
    if len(values) > MAX_VALUES:
        raise reader.error((*at, "values"), f"has {len(values):,} values; a parameter may "
                           f"have at most {MAX_VALUES:,}", hint="use min/max, or split the "
                           "sweep")
    seen: set[str] = set()  # one pass: 500k values must not take minutes
    for i, v in enumerate(values):
        check_value_size(reader, v, (*at, "values", i))
        key = f"{type(v).__name__}:{json.dumps(v, sort_keys=True, default=str)}"
        if key in seen:
            raise reader.error((*at, "values", i), f"duplicate value {v!r}"[:200])
        seen.add(key)
    probabilities = None
    if "probabilities" in definition:
        raw = definition["probabilities"]
        if not isinstance(raw, list) or len(raw) != len(values):
            raise reader.error((*at, "probabilities"),
                               f"must be a list of {len(values)} numbers, one per value")
        probabilities = tuple(reader.number(p, (*at, "probabilities", i))
                              for i, p in enumerate(raw))
        if any(p < 0 for p in probabilities) or abs(sum(probabilities) - 1.0) > 1e-6:
            raise reader.error((*at, "probabilities"),
                               f"must be non-negative and sum to 1, they sum to "
                               f"{sum(probabilities):g}")
    return ParamSpec(name, "categorical", values=tuple(values), probabilities=probabilities)


def check_value_size(reader: Reader, value: Any, at: KeyPath) -> None:
    """A value travels as one argv item and in LAUNCH_PARAMS, one environment value:
    Linux refuses either above 128 KiB, so every trial would fail."""
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise reader.error(at, f"a value of {size:,} bytes; parameter values are limited to "
                           f"{MAX_VALUE_BYTES // 1024} KiB (Linux passes at most 128 KiB in one "
                           "argument)", hint="put large inputs in a file and pass its path")


def _check_numeric(reader: Reader, kind: str, args: dict[str, float],
                   definition: dict[str, Any], at: KeyPath) -> None:
    if "min" in args and "max" in args and args["min"] > args["max"]:
        raise reader.error((*at, "min"), f"min ({args['min']:g}) is greater than max "
                           f"({args['max']:g})")
    if kind == "int_uniform":
        for key in ("min", "max"):
            reader.integer(definition[key], (*at, key))
    if kind in _POSITIVE_BOUNDS and args["min"] <= 0:
        raise reader.error((*at, "min"), f"{kind} needs min > 0 (bounds are values, "
                           "not logarithms)")
    for key in ("q", "sigma", "a", "b"):
        if key in args and args[key] <= 0:
            raise reader.error((*at, key), f"must be greater than 0, got {args[key]:g}")
