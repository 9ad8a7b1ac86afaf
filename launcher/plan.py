"""SweepSpec -> the list of trials. Pure and deterministic: no Docker, no clock.

Identities are content hashes, so they are stable across runs and machines:
``config_id`` hashes the canonical parameters; ``trial_id`` hashes the canonical
parameters, the seed and the replica index (unique within a run even when every
replica has the same seed). Random sampling uses ``random.Random(seed)``, which gives
the same samples in every process; a sampled configuration equal to an earlier one
is drawn again, so a small categorical space yields fewer, distinct configurations.
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
from launcher.parameters import ParamSpec, round_q
from launcher.spec import SweepSpec
from launcher.trial import Trial, nest

CONFIG_ID_LENGTH = 10
TRIAL_ID_LENGTH = 12
RESAMPLE_FACTOR = 50  # draws allowed per wanted configuration before giving up
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
    """Every trial of ``spec``: configurations x replicas, with seeds and ids."""
    notes: list[str] = []
    if spec.method == "grid":
        configs: Iterator[tuple[tuple[str, Any], ...]] = _grid(spec)
    else:
        configs = iter(_random(spec, notes))
    trials: list[Trial] = []
    seen: set[str] = set()
    n_configs = 0
    for params in configs:
        canonical = _canonical(nest(params))
        _check_params_size(spec, canonical, len(params))
        config_id = _digest(canonical, CONFIG_ID_LENGTH)
        for replica in range(spec.replicas):
            seed = spec.seed + replica if spec.seed_mode == "distinct" else spec.seed
            key = f'{{"params":{canonical},"replica":{replica},"seed":{seed}}}'
            trial_id = _digest(key, TRIAL_ID_LENGTH)
            if trial_id in seen:  # 48-bit hashes: practically never, but never silently
                raise SweepError(f"trial id collision on {trial_id}; change the seed")
            seen.add(trial_id)
            trials.append(Trial(trial_id, config_id, len(trials), replica, seed, params))
        n_configs += 1
    return Plan(tuple(trials), tuple(p.name for p in spec.parameters), n_configs, tuple(notes))


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


def _random(spec: SweepSpec, notes: list[str]) -> list[tuple[tuple[str, Any], ...]]:
    assert spec.run_cap is not None
    rng = random.Random(spec.seed)
    wanted = spec.run_cap
    out: list[tuple[tuple[str, Any], ...]] = []
    seen: set[str] = set()
    for _ in range(wanted * RESAMPLE_FACTOR):
        if len(out) == wanted:
            break
        params = tuple((p.name, sample(p, rng)) for p in spec.parameters)
        key = _canonical(params)
        if key not in seen:
            seen.add(key)
            out.append(params)
    if len(out) < wanted:
        notes.append(f"run_cap is {wanted} but the space has only {len(out)} distinct "
                     "configurations; each runs once")
    return out


def sample(p: ParamSpec, rng: random.Random) -> Any:
    """One draw from ``p`` with W&B's semantics for each distribution."""
    kind = p.kind
    if kind == "constant":
        return p.value
    if kind == "categorical":
        if p.probabilities:
            return rng.choices(p.values, weights=p.probabilities)[0]
        return p.values[rng.randrange(len(p.values))]
    if kind == "int_uniform":
        assert p.min is not None and p.max is not None
        return rng.randint(int(p.min), int(p.max))
    quantized = kind.startswith("q_")
    base = kind[2:] if quantized else kind
    x = _continuous(base, p, rng)
    return round_q(x, p.q) if quantized else x


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
