"""SweepSpec -> the list of trials. Pure and deterministic: no Docker, no clock.

Identities are content hashes, so they are stable across runs and machines:
``config_id`` hashes the canonical parameters; ``trial_id`` hashes the canonical
parameters, the seed and the replica index (unique within a run even when every
replica has the same seed), and for random search also the draw index.

Adaptive search (``method: bayes``) plans no trial up front: :mod:`launcher.search` asks
for configurations as results arrive and makes their trials with :func:`config_trials`
(the ask number takes the draw index's place in the id).

Random search is W&B's: ``run_cap`` independent draws with replacement, so a
configuration that comes up twice is two trials (with one config_id) and categorical
probabilities hold exactly. It uses ``random.Random(seed)``, which gives the same draws
in every process. Samples follow W&B's engine value for value in type: a q distribution
gives ``round(x / q) * q``, an integer only when ``q`` is one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from launcher.errors import SweepError
from launcher.parameters import ParamSpec
from launcher.spec import SweepSpec
from launcher.trial import Trial, nest

CONFIG_ID_LENGTH = 10
TRIAL_ID_LENGTH = 12
# Linux's MAX_ARG_STRLEN (128 KiB) for "LAUNCH_PARAMS=<json>" and its NUL
MAX_PARAMS_BYTES = 128 * 1024 - len("LAUNCH_PARAMS=") - 1


@dataclass(frozen=True)
class Plan:
    """The trials of a sweep, in launch order, and notes worth telling the user."""

    trials: tuple[Trial, ...]
    parameter_names: tuple[str, ...]
    configurations: int
    notes: tuple[str, ...] = ()

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.trials]


def expand(spec: SweepSpec) -> Plan:
    """Every trial of ``spec``: configurations x replicas, with seeds and ids (none for
    adaptive search: its trials are asked for while it runs)."""
    notes: list[str] = []
    names = tuple(p.name for p in spec.parameters)
    if spec.adaptive:
        return Plan((), names, 0)
    configs = _grid(spec) if spec.method == "grid" else _random(spec)
    trials: list[Trial] = []
    seen: set[str] = set()
    distinct: set[str] = set()
    for draw, params in enumerate(configs):
        # Grid ids stay as they always were; a random draw's index is part of its id.
        batch = config_trials(spec, params, "" if spec.method == "grid" else f"draw:{draw}",
                              len(trials))
        distinct.add(batch[0].config_id)
        for trial in batch:
            if trial.trial_id in seen:  # 48-bit hashes: practically never, but not silently
                raise SweepError(f"trial id collision on {trial.trial_id}; change the seed")
            seen.add(trial.trial_id)
        trials += batch
    if spec.method == "random" and len(distinct) < spec.configurations():
        notes.append(f"{spec.configurations()} random draws gave {len(distinct)} distinct "
                     "configurations; repeated ones run again, as in W&B")
    return Plan(tuple(trials), names, len(distinct), tuple(notes))


def config_trials(spec: SweepSpec, params: tuple[tuple[str, Any], ...], origin: str,
                  first_index: int) -> list[Trial]:
    """The replicas of one configuration, with seeds and ids. ``origin`` ("draw:N" for a
    random draw, "ask:N" for an adaptive one, empty for a grid point) is part of the id."""
    paths = tuple(p.key_path for p in spec.parameters)
    canonical = _canonical(nest(params, paths))
    _check_params_size(spec, canonical, len(params))
    config_id = _digest(canonical, CONFIG_ID_LENGTH)
    kind, _, number = origin.partition(":")
    prefix = f'"{kind}":{number},' if origin else ""
    out = []
    for replica in range(spec.replicas):
        seed = spec.seed + replica if spec.seed_mode == "distinct" else spec.seed
        key = f'{{{prefix}"params":{canonical},"replica":{replica},"seed":{seed}}}'
        out.append(Trial(_digest(key, TRIAL_ID_LENGTH), config_id, first_index + replica,
                         replica, seed, params, paths))
    return out


def _check_params_size(spec: SweepSpec, canonical: str, count: int) -> None:
    """A configuration reaches its trial as LAUNCH_PARAMS, one environment value (with
    ", " and ": " between items), which Linux limits to 128 KiB: above that every trial
    would fail to start."""
    if len(canonical) * 4 + 4 * count <= MAX_PARAMS_BYTES:
        return  # the common case: certainly small enough, nothing to encode
    size = len(json.dumps(json.loads(canonical), ensure_ascii=False).encode("utf-8"))
    if size > MAX_PARAMS_BYTES:
        raise SweepError(f"a configuration's parameters take {size:,} bytes together; a "
                         f"trial receives them in one environment value of at most "
                         f"{MAX_PARAMS_BYTES:,} bytes (Linux)", path=spec.source_path,
                         hint="put large inputs in a file and pass its path")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _grid(spec: SweepSpec) -> Iterator[tuple[tuple[str, Any], ...]]:
    names = [p.name for p in spec.parameters]
    product: Iterator[tuple[Any, ...]] = itertools.product(
        *(p.grid_values() for p in spec.parameters))
    if spec.run_cap:
        product = itertools.islice(product, spec.run_cap)
    for values in product:
        yield tuple(zip(names, values, strict=True))


def _random(spec: SweepSpec) -> Iterator[tuple[tuple[str, Any], ...]]:
    """``run_cap`` independent draws with replacement, as W&B's random search."""
    assert spec.run_cap is not None
    rng = random.Random(spec.seed)
    for _ in range(spec.run_cap):
        yield tuple((p.name, sample(p, rng)) for p in spec.parameters)


def sample(p: ParamSpec, rng: random.Random) -> Any:
    """One draw from ``p`` with W&B's semantics for each distribution."""
    kind = p.kind
    if kind == "constant":
        return p.value
    if kind == "categorical":  # duplicates weigh more, as in W&B (it draws an index)
        if p.probabilities:
            return rng.choices(p.values, cum_weights=_cumulative(p.probabilities))[0]
        return p.values[rng.randrange(len(p.values))]
    if kind == "int_uniform":
        assert p.min is not None and p.max is not None
        return rng.randint(int(p.min), int(p.max))
    quantized = kind.startswith("q_")
    base = kind[2:] if quantized else kind
    x = _continuous(base, p, rng)
    return quantize(x, p.q) if quantized else x


def quantize(x: float, q: int | float) -> int | float:
    """W&B's ``round(x / q) * q`` (half to even): an int when ``q`` is an int."""
    value = round(x / q) * q
    return int(value) if isinstance(q, int) else float(value)


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    out[-1] = max(out[-1], 1.0)  # renormalised weights: never leave a gap at the top
    return out


def _continuous(kind: str, p: ParamSpec, rng: random.Random) -> float:
    lo, hi = p.min, p.max
    if kind in ("normal", "log_normal"):
        x = rng.normalvariate(p.mu, p.sigma)
        return math.exp(x) if kind == "log_normal" else x
    if kind == "beta":
        return rng.betavariate(p.a, p.b)
    assert lo is not None and hi is not None
    if kind == "uniform":
        return rng.uniform(lo, hi)
    if kind == "log_uniform":
        return math.exp(rng.uniform(lo, hi))
    if kind == "log_uniform_values":
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))
    if kind == "inv_log_uniform":
        return 1.0 / math.exp(rng.uniform(lo, hi))
    if kind == "inv_log_uniform_values":
        return 1.0 / math.exp(rng.uniform(math.log(1.0 / hi), math.log(1.0 / lo)))
    raise AssertionError(f"unknown distribution {kind}")
