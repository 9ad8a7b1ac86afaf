"""Plan expansion: counts, identities, seeds and sampling are deterministic and stable."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from launcher.overrides import Overrides
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


def test_grid_over_int_uniform_and_q_uniform(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, """\
parameters:
  n: {min: 1, max: 4}
  x: {distribution: q_uniform, min: 0.0, max: 1.0, q: 0.25}
"""))
    assert len(plan.trials) == 4 * 5
    assert sorted({dict(t.params)["x"] for t in plan.trials}) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_run_cap_limits_a_grid(tmp_path: Path) -> None:
    assert len(expand(spec_of(tmp_path, GRID + "run_cap: 4\n")).trials) == 4


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


def test_random_with_a_small_space_yields_distinct_configs_and_a_note(tmp_path: Path) -> None:
    plan = expand(spec_of(tmp_path, "method: random\nrun_cap: 10\nparameters:\n"
                          "  a: {values: [1, 2]}\n  b: {values: [x, y]}\n"))
    assert plan.configurations == 4 and len({t.config_id for t in plan.trials}) == 4
    assert plan.notes and "only 4 distinct" in plan.notes[0]


def test_different_seed_gives_different_random_samples(tmp_path: Path) -> None:
    a = expand(spec_of(tmp_path, RANDOM))
    b = expand(spec_of(tmp_path, RANDOM, seed=4))
    assert [t.params for t in a.trials] != [t.params for t in b.trials]


printable = st.characters(blacklist_categories=("Cs", "Cc"))
values = st.one_of(st.integers(-1000, 1000), st.text(printable, max_size=8), st.booleans(),
                   st.floats(allow_nan=False, allow_infinity=False, width=32))


@settings(max_examples=60, deadline=None)
@given(grid=st.lists(st.lists(values, min_size=1, max_size=4, unique_by=lambda v: (type(v), v)),
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
        spec = spec_of(tmp_path, f"method: random\nrun_cap: 1\nparameters:\n  x:\n"
                       f"    distribution: {kind}\n    {extra}\n")
        for _ in range(20):
            v = sample(spec.parameters[0], rng)
            assert isinstance(v, int | float) and math.isfinite(v), kind
