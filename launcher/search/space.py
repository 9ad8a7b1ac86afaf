"""W&B parameters -> the sampler's search space, and the sampler's numbers -> values.

Pure: no Optuna import until :meth:`Dimension.distribution` is called. The mapping keeps
W&B's values exactly (the same set of values, the same types) and its priors where the
sampler can hold them:

    W&B distribution            searched as                         the trial's value
    constant                    (not searched)                      the value
    categorical                 categorical over the distinct values the value itself
    values + probabilities      float u in [0, 1]                   the value whose share of
                                                                    [0, 1] holds u (W&B's
                                                                    bayes ppf: the shares are
                                                                    the probabilities)
    int_uniform                 int [min, max]                      k
    uniform                     float [min, max]                    x
    q_uniform                   int k in [round(min/q), round(max/q)]   k*q (q as step)
    log_uniform_values          float [min, max], log               x
    log_uniform (exponents)     float [e^min, e^max], log           x
    inv_log_uniform_values      float [min, max], log               x (1/x of a log-uniform
                                                                    1/x is log-uniform too)
    inv_log_uniform             float [e^-max, e^-min], log         x
    q_log_uniform[_values]      int k, log, in [round(lo/q) (>= 1), round(hi/q)]   k*q
    normal, log_normal          float u in [P(-4 sigma), P(+4 sigma)]   mu + sigma*ppf(u)
                                                                    (exp of it for log_normal)
    beta                        float u in the same range           beta's ppf(u) (scipy)
    q_normal, q_log_normal, q_beta   the same u                     round(value/q)*q

Unbounded and skewed distributions go through their quantile function, as W&B's own
bayes search does (it searches [0, 1] per parameter and maps it with the ppf): the
sampler's random start-up draws then follow the distribution, and tails out to 4 sigma
stay reachable. q distributions give an int only when q is one, as in W&B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from launcher.parameters import ParamSpec

TAIL = NormalDist().cdf(-4.0)  # u range of the quantile-mapped distributions
QUANTILE_KINDS = ("normal", "log_normal", "beta")


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: the sampler's range and how its number becomes a value."""

    name: str
    kind: str  # "float", "int" or "categorical"
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    choices: tuple[Any, ...] = ()  # categorical: the values; weighted: the values too
    weights: tuple[float, ...] = ()  # values + probabilities: each value's share of [0, 1]
    q: int | float | None = None  # the value is k * q (int k) or round(value / q) * q
    quantile: str = ""  # normal, log_normal or beta: u in (0, 1) through this ppf
    mu: float = 0.0
    sigma: float = 1.0
    a: float = 1.0
    b: float = 1.0

    def value(self, x: Any) -> Any:
        """The parameter's value for the sampler's number (or choice index) ``x``."""
        if self.kind == "categorical":
            return self.choices[int(x)]
        if self.weights:
            return self.choices[_share_index(self.weights, float(x))]
        if self.quantile:
            return self._quantized(self._ppf(float(x)))
        if self.kind == "int":
            k = int(x)
            if self.q is None:
                return k
            return k * self.q if isinstance(self.q, int) else float(k * self.q)
        return float(x)

    def _ppf(self, u: float) -> float:
        if self.quantile == "beta":
            from scipy.special import betaincinv

            return float(betaincinv(self.a, self.b, u))
        z = self.mu + self.sigma * NormalDist().inv_cdf(u)
        return math.exp(z) if self.quantile == "log_normal" else z

    def _quantized(self, x: float) -> int | float:
        if self.q is None:
            return x
        value = round(x / self.q) * self.q
        return int(value) if isinstance(self.q, int) else float(value)

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "categorical":
            return CategoricalDistribution(tuple(range(len(self.choices))))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log)
        return FloatDistribution(self.low, self.high, log=self.log)

    def describe(self) -> str:
        """One line for `launch plan`: how the sampler sees this parameter."""
        if self.kind == "categorical":
            return f"categorical over {len(self.choices)} values"
        if self.weights:
            return (f"u in [0, 1], value by probability share ({len(self.choices)} values,"
                    " W&B's ppf)")
        if self.quantile:
            law = {"normal": f"normal(mu={self.mu:g}, sigma={self.sigma:g})",
                   "log_normal": f"exp(normal(mu={self.mu:g}, sigma={self.sigma:g}))",
                   "beta": f"beta(a={self.a:g}, b={self.b:g})"}[self.quantile]
            step = f", rounded to q={self.q:g}" if self.q is not None else ""
            return f"u in [{self.low:.2g}, {self.high:.6g}] -> ppf of {law}{step}"
        log = ", log" if self.log else ""
        if self.kind == "int":
            if self.q is None:
                return f"int [{int(self.low)}, {int(self.high)}]{log}"
            return f"int k in [{int(self.low)}, {int(self.high)}]{log}, value k*{self.q:g}"
        return f"float [{self.low:.6g}, {self.high:.6g}]{log}"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "searched_as": self.describe()}


def _share_index(weights: tuple[float, ...], u: float) -> int:
    """The value whose cumulative share of [0, 1] holds ``u`` (values of weight 0 never)."""
    total = 0.0
    last = max(i for i, w in enumerate(weights) if w > 0)
    for i, w in enumerate(weights):
        total += w
        if w > 0 and u < total:
            return i
    return last


def dimension(p: ParamSpec) -> Dimension | None:
    """The sampler's dimension of ``p`` (None for a constant: nothing to search)."""
    kind = p.kind
    if kind == "constant":
        return None
    if kind == "categorical":
        if p.probabilities is not None:
            return Dimension(p.name, "float", 0.0, 1.0, choices=p.values,
                             weights=p.probabilities)
        return Dimension(p.name, "categorical", choices=p.distinct)
    quantized = kind.startswith("q_")
    base = kind[2:] if quantized else kind
    q = p.q if quantized else None
    if base in QUANTILE_KINDS:
        return Dimension(p.name, "float", TAIL, 1.0 - TAIL, q=q, quantile=base,
                         mu=float(p.mu), sigma=float(p.sigma), a=float(p.a), b=float(p.b))
    assert p.min is not None and p.max is not None
    if kind == "int_uniform":
        return Dimension(p.name, "int", int(p.min), int(p.max))
    lo, hi, log = _bounds(base, float(p.min), float(p.max))
    if q is None:
        return Dimension(p.name, "float", lo, hi, log=log)
    k_lo, k_hi = round(lo / q), round(hi / q)
    if log:
        k_lo = max(1, k_lo)  # a log-scaled int starts at 1
    return Dimension(p.name, "int", k_lo, max(k_lo, k_hi), log=log, q=q)


def _bounds(base: str, lo: float, hi: float) -> tuple[float, float, bool]:
    """(low, high, log) of the values of a bounded distribution."""
    if base == "uniform":
        return lo, hi, False
    if base == "log_uniform":
        return math.exp(lo), math.exp(hi), True
    if base == "inv_log_uniform":
        return math.exp(-hi), math.exp(-lo), True
    # log_uniform_values and inv_log_uniform_values: bounds are values
    return lo, hi, True


def search_space(parameters: tuple[ParamSpec, ...]) -> list[Dimension]:
    """The searched dimensions, in the sweep file's order."""
    return [d for d in map(dimension, parameters) if d is not None]


def needs_scipy(parameters: tuple[ParamSpec, ...]) -> bool:
    """A beta distribution's quantile function comes from scipy."""
    return any(p.kind in ("beta", "q_beta") for p in parameters)
