"""Parameter definitions of a sweep file, with the rules of W&B's sweep engine.

Each leaf parameter becomes one :class:`ParamSpec` with a display name (``model.hidden``
for leaf ``hidden`` of group ``model``), its ``path`` (the group names, then the leaf's
own name, which may itself contain dots: ``a.b`` is one W&B parameter, not a group) and an
explicit distribution. W&B's inference rules apply when ``distribution`` is absent:
``value`` -> constant, ``values`` -> categorical (with ``probabilities``:
categorical_w_probabilities), integer ``min``/``max`` -> int_uniform, else uniform.

Numbers keep the type they were written with, because W&B's results depend on it: a
q distribution gives integers only when ``q`` is an integer, and a q_uniform grid gives
integers only when ``min``, ``max`` and ``q`` all are.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from launcher.schema import Reader
from launcher.yamlfile import MAX_LIST_ITEMS, KeyPath

Number = int | float
# distribution -> (required keys, optional keys with defaults)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], dict[str, Number]]] = {
    "constant": (("value",), {}),
    "categorical": (("values",), {}),
    "categorical_w_probabilities": (("values", "probabilities"), {}),
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
# W&B's engine refuses these (min/max are exponents); accepted here with a warning.
DEPRECATED = {"log_uniform": "log_uniform_values", "inv_log_uniform": "inv_log_uniform_values",
              "q_log_uniform": "q_log_uniform_values"}
PARAM_KEYS = ("value", "values", "probabilities", "distribution",
              "min", "max", "mu", "sigma", "q", "a", "b", "parameters")
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")  # W&B's rule for parameter names
PROBABILITY_TOLERANCE = (1e-8, 1e-5)  # numpy.isclose(sum, 1): absolute, relative
MAX_VALUES = MAX_LIST_ITEMS  # per parameter (the YAML reader refuses longer lists first)
MAX_VALUE_BYTES = 100 * 1024  # one value as JSON; below Linux's 128 KiB per argument
_POSITIVE_BOUNDS = ("log_uniform_values", "q_log_uniform_values", "inv_log_uniform_values")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One leaf parameter: its names, distribution and arguments (as written)."""

    name: str
    kind: str
    value: Any = None
    values: tuple[Any, ...] = ()
    probabilities: tuple[float, ...] | None = None
    min: Number | None = None
    max: Number | None = None
    mu: Number = 0.0
    sigma: Number = 1.0
    q: Number = 1.0
    a: Number = 1.0
    b: Number = 1.0
    path: tuple[str, ...] = ()  # () means (name,)
    distinct: tuple[Any, ...] = ()  # categorical: each distinct value once (the grid's)

    @property
    def key_path(self) -> tuple[str, ...]:
        return self.path or (self.name,)

    def grid_values(self) -> tuple[Any, ...]:
        """Every value a grid visits, as W&B's grid visits them (kinds in GRID_KINDS)."""
        if self.kind == "constant":
            return (self.value,)
        if self.kind == "categorical":
            return self.distinct
        assert self.min is not None and self.max is not None
        if self.kind == "int_uniform":
            return tuple(range(int(self.min), int(self.max) + 1))
        return q_uniform_grid(self.min, self.max, self.q)

    def grid_size(self) -> int:
        if self.kind in ("constant", "categorical"):
            return len(self.grid_values())
        assert self.min is not None and self.max is not None
        if self.kind == "int_uniform":
            return int(self.max) - int(self.min) + 1
        return max(0, math.ceil((self.max - self.min) / self.q))


def q_uniform_grid(lo: Number, hi: Number, q: Number) -> tuple[Number, ...]:
    """``numpy.arange(lo, hi, q)``, value for value, as W&B's grid enumerates q_uniform:
    ``hi`` itself is excluded; integers only when all three are integers."""
    if all(isinstance(x, int) for x in (lo, hi, q)):
        return tuple(range(int(lo), int(hi), int(q)))
    lo, hi, q = float(lo), float(hi), float(q)
    n = max(0, math.ceil((hi - lo) / q))
    if n < 2:
        return (lo,)[:n]
    second = lo + q
    delta = second - lo  # numpy fills start + i * (second - start)
    return (lo, second, *(lo + i * delta for i in range(2, n)))


def value_key(value: Any) -> str:
    """When two values are the same value to W&B's grid (its yaml hash after turning a
    whole float into an int): 1 and 1.0 are one value; 1, '1' and true are three."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def distinct_values(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """Each distinct value once, at its first place (W&B keeps the last spelling of it).
    Linear time: one dictionary pass."""
    slot: dict[str, int] = {}
    out: list[Any] = []
    for v in values:
        key = value_key(v)
        if key in slot:
            out[slot[key]] = v
        else:
            slot[key] = len(out)
            out.append(v)
    return tuple(out)


def parse_parameters(reader: Reader, raw: object, at: KeyPath) -> tuple[ParamSpec, ...]:
    """Validate a ``parameters`` mapping (possibly nested) into flat ParamSpecs."""
    params: list[ParamSpec] = []
    group = reader.mapping(raw, at)
    if not group:
        raise reader.error(at, "must name at least one parameter (W&B refuses an empty "
                           "parameters mapping)", hint="leave `parameters` out for a "
                           "sweep of replicas only")
    _collect(reader, group, at, (), params)
    seen: dict[str, ParamSpec] = {}
    for p in params:
        if p.name in seen:
            raise reader.error(_file_path(at, p.key_path), f"parameter {p.name!r} is given "
                               "twice: as a dotted name and as a nested group",
                               hint="rename one of them")
        seen[p.name] = p
    return tuple(params)


def _file_path(at: KeyPath, key_path: tuple[str, ...]) -> KeyPath:
    out: KeyPath = at
    for i, part in enumerate(key_path):
        out = (*out, part) if i == 0 else (*out, "parameters", part)
    return out


def _collect(reader: Reader, raw: dict[str, Any], at: KeyPath, prefix: tuple[str, ...],
             out: list[ParamSpec]) -> None:
    for name, definition in raw.items():
        where = (*at, name)
        if not NAME_PATTERN.fullmatch(name):
            raise reader.error(where, f"parameter name {name!r} must start with a letter or "
                               "_ and hold only letters, digits, _ . and - (W&B's rule)")
        if isinstance(definition, dict) and "parameters" in definition:
            reader.check_keys(definition, where, ["parameters"])
            group = reader.mapping(definition["parameters"], (*where, "parameters"))
            if not group:
                raise reader.error((*where, "parameters"), "a parameter group must not be empty")
            _collect(reader, group, (*where, "parameters"), (*prefix, name), out)
        else:
            path = (*prefix, name)
            spec = _parse_leaf(reader, definition, where, ".".join(path))
            out.append(spec if len(path) == 1 and "." not in name else _with_path(spec, path))


def _with_path(spec: ParamSpec, path: tuple[str, ...]) -> ParamSpec:
    from dataclasses import replace

    return replace(spec, path=path)


def _parse_leaf(reader: Reader, definition: object, at: KeyPath, name: str) -> ParamSpec:
    if not isinstance(definition, dict):
        # A bare scalar or list is shorthand for `value` / `values` (not in W&B).
        definition = {"values": definition} if isinstance(definition, list) else {
            "value": definition}
    reader.check_keys(definition, at, PARAM_KEYS)
    kind = _infer_kind(reader, definition, at)
    required, optional = DISTRIBUTIONS[kind]
    allowed = {"distribution", *required, *optional}
    for key in definition:
        if key not in allowed:
            hint = "use distribution: categorical_w_probabilities, or leave distribution " \
                "out" if key == "probabilities" else None
            raise reader.error((*at, key), f"{key!r} has no meaning for distribution {kind}",
                               hint=hint)
    for key in required:
        if key not in definition:
            raise reader.error(at, f"distribution {kind} needs {key!r}"
                               + (" (its bounds)" if key in ("min", "max") else ""))
    if kind == "constant":
        check_value_size(reader, definition["value"], (*at, "value"))
        return ParamSpec(name, kind, value=definition["value"])
    if kind.startswith("categorical"):
        return _categorical(reader, definition, at, name)
    nums = {key: _number(reader, definition[key], (*at, key))
            for key in (*required, *optional) if key in definition}
    args = {**optional, **nums}
    _check_numeric(reader, kind, args, definition, at)
    return ParamSpec(name, kind, **args)  # type: ignore[arg-type]


def _number(reader: Reader, value: object, at: KeyPath) -> Number:
    """A finite number, keeping int as int (W&B's results depend on the type)."""
    reader.number(value, at)
    assert isinstance(value, int | float)
    return value


def _infer_kind(reader: Reader, definition: dict[str, Any], at: KeyPath) -> str:
    if "distribution" in definition:
        return reader.choice(definition["distribution"], (*at, "distribution"), DISTRIBUTIONS)
    if "value" in definition:
        return "constant"
    if "values" in definition:
        return "categorical_w_probabilities" if "probabilities" in definition \
            else "categorical"
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
    for i, v in enumerate(values):
        check_value_size(reader, v, (*at, "values", i))
    probabilities = None
    if "probabilities" in definition:
        probabilities = _probabilities(reader, definition["probabilities"], len(values), at)
    return ParamSpec(name, "categorical", values=tuple(values), probabilities=probabilities,
                     distinct=distinct_values(tuple(values)))


def _probabilities(reader: Reader, raw: object, n: int, at: KeyPath) -> tuple[float, ...]:
    """Non-negative weights, one per value, that sum to 1 within numpy.isclose's tolerance
    (as W&B checks); renormalised so that they sum to exactly 1."""
    where = (*at, "probabilities")
    if not isinstance(raw, list) or len(raw) != n:
        raise reader.error(where, f"must be a list of {n} numbers, one per value")
    weights = [reader.number(p, (*where, i)) for i, p in enumerate(raw)]
    for i, p in enumerate(weights):
        if p < 0:
            raise reader.error((*where, i), f"must not be negative, got {p:g}")
    total = math.fsum(weights)
    absolute, relative = PROBABILITY_TOLERANCE
    if abs(total - 1.0) > absolute + relative:
        raise reader.error(where, f"must sum to 1, they sum to {total:g}")
    return tuple(p / total for p in weights)


def check_value_size(reader: Reader, value: Any, at: KeyPath) -> None:
    """A value travels as one argv item and in LAUNCH_PARAMS, one environment value:
    Linux refuses either above 128 KiB, so every trial would fail."""
    if value is None or isinstance(value, bool | int | float) or (
            isinstance(value, str) and len(value) * 6 + 2 <= MAX_VALUE_BYTES):
        return  # certainly small enough: nothing to encode (100,000 values stay fast)
    size = len(json.dumps(value, ensure_ascii=False, default=str).encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise reader.error(at, f"a value of {size:,} bytes; parameter values are limited to "
                           f"{MAX_VALUE_BYTES // 1024} KiB (Linux passes at most 128 KiB in one "
                           "argument)", hint="put large inputs in a file and pass its path")


def _check_numeric(reader: Reader, kind: str, args: dict[str, Number],
                   definition: dict[str, Any], at: KeyPath) -> None:
    if "min" in args and "max" in args and args["min"] >= args["max"]:
        raise reader.error((*at, "min"), f"min ({args['min']:g}) must be less than max "
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
