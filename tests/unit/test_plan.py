"""Plan expansion: counts, identities, seeds and sampling are deterministic and stable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.overrides import Overrides
from launcher.parameters import value_key
from launcher.plan import expand, sample
from launcher.spec import load_sweep


def spec_of(tmp_path: Path, text: str, **overrides: object):  # type: ignore[no-untyped-def]
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return load_sweep(path, Overrides(**overrides))  # type: ignore[arg-type]


GRID = """\
parameters:
  lr: {values: [0.1, 0.01, 0.001]}
  model:
    parameters:
      hidden: {values: [8, 16]}
  epochs: {value: 3}
"""


def test_grid_is_the_cartesian_product_in_file_order(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, GRID, replicas=2))
    assert len(plan.trials) == 12 and plan.configurations == 6
    first = plan.trials[0]
    assert first.params == (("lr", 0.1), ("model.hidden", 8), ("epochs", 3))
    assert first.nested_params() == {"lr": 0.1, "model": {"hidden": 8}, "epochs": 3}
    assert [t.replica for t in plan.trials[:4]] == [0, 1, 0, 1]


def test_distinct_seeds_and_fixed_seeds(tmp_path: Path) -> None:
    distinct = expand(spec_of(tmp_path, GRID + "seed: 10\n", replicas=3))
    assert [t.seed for t in distinct.trials[:3]] == [10, 11, 12]
    fixed = expand(spec_of(tmp_path, GRID + "seed: 10\nseed_mode: fixed\n", replicas=3))
    assert {t.seed for t in fixed.trials} == {10}
    ids = [t.trial_id for t in fixed.trials]
    assert len(set(ids)) == len(ids), "trial ids must be unique even with one seed"


def test_ids_hash_content_not_position(tmp_path: Path) -> None:
    a = expand(spec_of(tmp_path, GRID, replicas=2))
    reordered = GRID.replace("[0.1, 0.01, 0.001]", "[0.001, 0.1]")
    b = expand(spec_of(tmp_path, reordered, replicas=2))
    by_key = {(t.params, t.seed, t.replica): t.trial_id for t in a.trials}
    shared = [t for t in b.trials if (t.params, t.seed, t.replica) in by_key]
    assert len(shared) == 8
    assert all(by_key[(t.params, t.seed, t.replica)] == t.trial_id for t in shared)
    # same parameters, different replica count: config ids unchanged
    assert {t.config_id for t in a.trials} >= {t.config_id for t in shared}


def test_grid_over_int_uniform_and_q_uniform_as_w_and_b(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, """\
parameters:
  n: {min: 1, max: 4}
  x: {distribution: q_uniform, min: 0, max: 1, q: 0.25}
  y: {distribution: q_uniform, min: 1, max: 10, q: 3}
  z: {distribution: q_uniform, min: 0, max: 3}
"""))
    def seen(name: str) -> list[object]:
        return sorted({dict(t.params)[name] for t in plan.trials})
    # W&B's numpy.arange(min, max, q): max excluded, nothing below min
    assert seen("x") == [0.0, 0.25, 0.5, 0.75]
    assert seen("y") == [1, 4, 7] and all(isinstance(v, int) for v in seen("y"))
    # q defaults to 1.0, a float, so W&B's grid gives floats
    assert seen("z") == [0.0, 1.0, 2.0] and all(isinstance(v, float) for v in seen("z"))
    assert len(plan.trials) == 4 * 4 * 3 * 3


def test_q_uniform_grid_keeps_w_and_b_float_steps() -> None:
    from launcher.parameters import q_uniform_grid

    # numpy.arange(0, 1, 0.1) -> ..., 0.30000000000000004, ..., 0.6000000000000001, ...
    assert q_uniform_grid(0, 1, 0.1) == (0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5,
                                         0.6000000000000001, 0.7000000000000001, 0.8, 0.9)


def test_duplicate_values_run_once_in_a_grid_and_keep_their_weight_in_random(
        tmp_path: Path) -> None:
    grid = expand(spec_of(tmp_path, "parameters:\n  a: {values: [1, 1, 2, 1.0, '1', true]}\n"))
    # 1 and 1.0 are one value to W&B's grid (it keeps the last spelling); '1', true differ
    assert [dict(t.params)["a"] for t in grid.trials] == [1.0, 2, "1", True]
    rand = expand(spec_of(tmp_path, "method: random\nrun_cap: 3000\nparameters:\n"
                          "  a: {values: [x, x, y]}\n"))
    share = sum(dict(t.params)["a"] == "x" for t in rand.trials) / 3000
    assert 0.63 < share < 0.70  # W&B draws an index: x is 2/3


def test_validating_80k_duplicate_values_is_one_linear_pass(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from launcher import parameters
    from launcher.spec import build_spec
    from launcher.yamlfile import parse_yaml

    values = ", ".join(str(i % 40_000) for i in range(80_000))
    doc = parse_yaml(f"parameters:\n  a: {{values: [{values}]}}\n")
    calls = 0
    real_key = parameters.value_key

    def counting_key(value: object) -> str:
        nonlocal calls
        calls += 1
        return real_key(value)

    monkeypatch.setattr(parameters, "value_key", counting_key)
    started = time.perf_counter()
    spec = build_spec(doc, Overrides())
    assert spec.configurations() == 40_000
    assert calls == 80_000  # one key per value: a dictionary pass, no pairwise comparison
    assert time.perf_counter() - started < 3.0  # pairwise would be 3.2e9 comparisons


RANDOM = """\
method: random
run_cap: 50
seed: 3
parameters:
  lr: {distribution: log_uniform_values, min: 0.0001, max: 0.1}
  batch: {values: [16, 32, 64], probabilities: [0.2, 0.3, 0.5]}
  layers: {min: 1, max: 4}
  drop: {distribution: q_uniform, min: 0, max: 0.5, q: 0.1}
  w: {distribution: inv_log_uniform_values, min: 0.5, max: 2.0}
  b: {distribution: beta, a: 2, b: 5}
  n: {distribution: q_normal, mu: 10, sigma: 2, q: 2}
"""


def test_random_samples_lie_in_their_ranges(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, RANDOM))
    assert len(plan.trials) == 50
    for t in plan.trials:
        p = dict(t.params)
        assert 0.0001 <= p["lr"] <= 0.1
        assert p["batch"] in (16, 32, 64)
        assert isinstance(p["layers"], int) and 1 <= p["layers"] <= 4
        assert 0 <= p["drop"] <= 0.5 and abs(p["drop"] * 10 - round(p["drop"] * 10)) < 1e-9
        assert 0.5 <= p["w"] <= 2.0
        assert 0 < p["b"] < 1
        assert isinstance(p["n"], int) and p["n"] % 2 == 0


def test_random_sampling_is_the_same_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(RANDOM)
    here = [t.to_json() for t in expand(load_sweep(path)).trials]
    code = ("import json,sys; from launcher.spec import load_sweep; from launcher.plan import "
            "expand; print(json.dumps(expand(load_sweep(sys.argv[1])).to_json()))")
    other = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": "123"})
    assert json.loads(other.stdout) == here


def test_random_draws_with_replacement_run_cap_trials(tmp_path: Path) -> None:
    from collections import Counter

    plan = expand(spec_of(tmp_path, "method: random\nrun_cap: 1000\nparameters:\n"
                          "  a: {values: [0, 1, 2, 3, 4]}\n"))
    assert len(plan.trials) == 1000 and plan.configurations == 5
    assert len({t.trial_id for t in plan.trials}) == 1000, "repeats are distinct trials"
    counts = Counter(dict(t.params)["a"] for t in plan.trials)
    assert all(150 < counts[v] < 250 for v in range(5)), counts
    assert plan.notes and "1000 random draws gave 5 distinct" in plan.notes[0]


def test_categorical_probabilities_hold_beside_a_continuous_parameter(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, """\
method: random
run_cap: 4000
parameters:
  kind: {values: [common, rare], probabilities: [0.9, 0.1]}
  lr: {min: 0.0, max: 1.0}
"""))
    rare = sum(dict(t.params)["kind"] == "rare" for t in plan.trials) / 4000
    assert 0.085 < rare < 0.115  # W&B: 10% (the old resampling gave 34%)


def test_q_distributions_give_floats_unless_q_is_an_integer(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, """\
method: random
run_cap: 50
parameters:
  a: {distribution: q_uniform, min: 0, max: 20}
  b: {distribution: q_uniform, min: 0, max: 20, q: 2}
  c: {distribution: q_log_uniform_values, min: 1, max: 100, q: 1.0}
  d: {distribution: q_normal, q: 1}
  e: {distribution: uniform, min: 1, max: 5}
"""))
    for t in plan.trials:
        p = dict(t.params)
        assert isinstance(p["a"], float) and p["a"].is_integer()
        assert isinstance(p["b"], int) and p["b"] % 2 == 0
        assert isinstance(p["c"], float) and isinstance(p["d"], int)
        assert isinstance(p["e"], float)


def test_random_ids_include_the_draw_and_are_stable(tmp_path: Path) -> None:
    text = "method: random\nrun_cap: 20\nparameters:\n  a: {values: [1, 2]}\n"
    a, b = expand(spec_of(tmp_path, text)), expand(spec_of(tmp_path, text))
    assert [t.trial_id for t in a.trials] == [t.trial_id for t in b.trials]
    first_two = [t for t in a.trials if dict(t.params)["a"] == 1][:2]
    assert first_two[0].config_id == first_two[1].config_id
    assert first_two[0].trial_id != first_two[1].trial_id


def test_different_seed_gives_different_random_samples(tmp_path: Path) -> None:
    a = expand(spec_of(tmp_path, RANDOM))
    b = expand(spec_of(tmp_path, RANDOM, seed=4))
    assert [t.params for t in a.trials] != [t.params for t in b.trials]


printable = st.characters(blacklist_categories=("Cs", "Cc"))
values = st.one_of(st.integers(-1000, 1000), st.text(printable, max_size=8), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False, width=32))


@settings(max_examples=60, deadline=None)
@given(grid=st.lists(st.lists(values, min_size=1, max_size=4, unique_by=value_key),
                     min_size=1, max_size=4),
       replicas=st.integers(1, 4), seed=st.integers(0, 2**31), fixed=st.booleans())
def test_grid_expansion_properties(tmp_path_factory, grid, replicas, seed, fixed) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("g")
    params = {f"p{i}": {"values": vs} for i, vs in enumerate(grid)}
    text = json.dumps({"parameters": params, "replicas": replicas, "seed": seed,
                       "seed_mode": "fixed" if fixed else "distinct"}, ensure_ascii=False)
    spec = spec_of(tmp, text)
    plan = expand(spec)
    expected_configs = 1
    for vs in grid:
        expected_configs *= len(vs)
    assert plan.configurations == expected_configs
    assert len(plan.trials) == expected_configs * replicas
    ids = [t.trial_id for t in plan.trials]
    assert len(set(ids)) == len(ids)
    assert len({t.config_id for t in plan.trials}) == expected_configs
    assert [t.trial_id for t in expand(spec).trials] == ids  # deterministic
    for t in plan.trials:
        assert t.seed == (seed if fixed else seed + t.replica)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31), cap=st.integers(1, 30))
def test_random_expansion_is_deterministic(tmp_path_factory, seed, cap) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("r")
    spec = spec_of(tmp, RANDOM.replace("run_cap: 50", f"run_cap: {cap}"), seed=seed)
    a, b = expand(spec), expand(spec)
    assert [t.to_json() for t in a.trials] == [t.to_json() for t in b.trials]
    assert len(a.trials) == cap


def test_sample_of_every_distribution_is_finite(tmp_path: Path) -> None:
    import math
    import random

    from launcher.parameters import DISTRIBUTIONS

    rng = random.Random(0)
    for kind in DISTRIBUTIONS:
        required = DISTRIBUTIONS[kind][0]
        extra = "values: [1, 2]" if kind == "categorical" else "value: 3" if kind == \
            "constant" else "min: 1\n    max: 2" if required else "q: 1"
        if kind in ("normal", "log_normal", "beta"):
            extra = "a: 2" if kind == "beta" else "mu: 0.5"
        if kind == "categorical_w_probabilities":
            extra = "values: [1, 2]\n    probabilities: [0.5, 0.5]"
        spec = spec_of(tmp_path, f"method: random\nrun_cap: 1\nparameters:\n  x:\n"
                       f"    distribution: {kind}\n    {extra}\n")
        for _ in range(20):
            v = sample(spec.parameters[0], rng)
            assert isinstance(v, int | float) and math.isfinite(v), kind
