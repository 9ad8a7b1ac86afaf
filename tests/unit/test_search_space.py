"""method: bayes and early_terminate in the sweep file, and the mapping of every W&B
distribution to the sampler's space (and back to W&B's values and types)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from statistics import NormalDist

import pytest

from launcher.parameters import ParamSpec
from launcher.plan import quantize, sample
from launcher.search.space import TAIL, Dimension, dimension
from launcher.wandb_keys import Hyperband
from tests.unit.test_wandb_compat import load
from tests.unit.test_wandb_compat import refusal as refused

BAYES = "method: bayes\nrun_cap: 5\nmetric: {name: loss}\n"


def test_a_bayes_sweep_with_hyperband_loads(tmp_path: Path) -> None:
    spec = load(tmp_path, BAYES + "sampler: qmc\nparameters:\n  lr: {min: 0.1, max: 1.0}\n"
                "early_terminate: {type: hyperband, max_iter: 27, s: 2}\n")
    assert spec.adaptive and spec.sampler == "qmc" and spec.configurations() == 5
    assert spec.early_terminate == Hyperband(eta=3, strict=True, max_iter=27, s=2)
    assert spec.early_terminate.bands() == (3, 9)
    assert not any("early_terminate" in w for w in spec.warnings)


@pytest.mark.parametrize(("text", "line", "words"), [
    ("method: bayes\nrun_cap: 5\nparameters: {x: {values: [1, 2]}}\n", 1,
     "method 'bayes' needs `metric`"),
    (BAYES + "parameters: {x: 1, y: 2}\n", 4, "needs at least one parameter to search"),
    ("method: random\nrun_cap: 2\nsampler: tpe\nparameters: {x: [1, 2]}\n", 3,
     "sampler chooses how method: bayes searches"),
    (BAYES + "sampler: tree\nparameters: {x: [1, 2]}\n", 4, "must be one of tpe, gp, cmaes"),
    (BAYES + "sampler: gp\nparameters: {x: [1, 2]}\n", 4,
     "with sampler gp needs the Python package torch, not installed"),
    ("early_terminate: {type: hyperband, min_iter: 3}\nparameters: {x: [1, 2]}\n", 1,
     "early termination needs `metric`"),
    ("metric: {name: a}\nearly_terminate: {type: hyperband, max_iter: 2, s: 2}\n"
     "parameters: {x: [1]}\n", 2, "no band"),
    ("metric: {name: a}\nearly_terminate: {type: hyperband, max_iter: 27, min_iter: 2}\n"
     "parameters: {x: [1]}\n", 2, "max_iter needs s"),
    ("metric: {name: a}\nearly_terminate: {type: hyperband, max_iter: 27, s: 1.5}\n"
     "parameters: {x: [1]}\n", 2, "must be a whole number"),
])
def test_adaptive_keys_are_checked_with_file_and_line(tmp_path: Path, text: str, line: int,
                                                      words: str) -> None:
    error = refused(tmp_path, text)
    assert error.line == line, str(error)
    assert words in str(error)
    assert str(error).count("\n") == 0, "one line"


def test_a_missing_sampler_dependency_is_one_line_that_names_it(tmp_path: Path) -> None:
    error = refused(tmp_path, BAYES + "sampler: gp\nparameters: {x: [1, 2]}\n")
    assert "torch" in str(error) and "pip install torch" in (error.hint or "")
    assert error.exit_code == 2


def p(kind: str, **args: object) -> ParamSpec:
    return ParamSpec("x", kind, **args)  # type: ignore[arg-type]


def dim(spec: ParamSpec) -> Dimension:
    d = dimension(spec)
    assert d is not None
    return d


def test_constant_is_not_searched() -> None:
    assert dimension(p("constant", value=3)) is None


def test_categorical_is_a_choice_among_distinct_values() -> None:
    d = dim(ParamSpec("x", "categorical", values=(1, [2], "a", 1), distinct=(1, [2], "a")))
    assert (d.kind, len(d.choices)) == ("categorical", 3)
    assert [d.value(i) for i in range(3)] == [1, [2], "a"]
    assert d.distribution().choices == (0, 1, 2)


def test_probabilities_are_shares_of_a_uniform_latent_as_in_wandbs_bayes() -> None:
    d = dim(ParamSpec("x", "categorical", values=("a", "b", "c"), probabilities=(0.2, 0.0, 0.8)))
    assert (d.kind, d.low, d.high) == ("float", 0.0, 1.0)
    assert [d.value(u) for u in (0.0, 0.1999, 0.2, 0.5, 1.0)] == ["a", "a", "c", "c", "c"]
    draws = [d.value(random.Random(i).random()) for i in range(4000)]
    assert "b" not in draws and abs(draws.count("a") / 4000 - 0.2) < 0.03


@pytest.mark.parametrize(("spec", "kind", "low", "high", "log"), [
    (p("int_uniform", min=-3, max=7), "int", -3, 7, False),
    (p("uniform", min=0.5, max=2.5), "float", 0.5, 2.5, False),
    (p("log_uniform_values", min=1e-4, max=0.1), "float", 1e-4, 0.1, True),
    (p("log_uniform", min=-2, max=3), "float", math.exp(-2), math.exp(3), True),
    (p("inv_log_uniform_values", min=0.01, max=10), "float", 0.01, 10, True),
    (p("inv_log_uniform", min=-1, max=2), "float", math.exp(-2), math.exp(1), True),
])
def test_bounded_distributions_keep_their_bounds_and_scale(spec: ParamSpec, kind: str,
                                                           low: float, high: float,
                                                           log: bool) -> None:
    d = dim(spec)
    assert (d.kind, d.log) == (kind, log)
    assert math.isclose(d.low, low) and math.isclose(d.high, high)
    dist = d.distribution()
    assert (dist.low, dist.log) == (pytest.approx(low), log)
    x = (d.low + d.high) / 2
    assert type(d.value(x)) is (int if kind == "int" else float)


def test_every_value_wandb_can_draw_is_inside_the_space() -> None:
    """For the bounded kinds the sampler's range covers exactly W&B's values."""
    rng = random.Random(0)
    for spec in (p("int_uniform", min=-3, max=7), p("uniform", min=0.5, max=2.5),
                 p("log_uniform_values", min=1e-4, max=0.1),
                 p("inv_log_uniform_values", min=0.01, max=10),
                 p("log_uniform", min=-2, max=3), p("inv_log_uniform", min=-1, max=2)):
        d = dim(spec)
        for _ in range(500):
            v = sample(spec, rng)
            slack = 1e-12 * max(abs(d.low), abs(d.high))
            assert d.low - slack <= v <= d.high + slack, (spec.kind, v)


@pytest.mark.parametrize(("spec", "k_range", "values"), [
    (p("q_uniform", min=0, max=10, q=2), (0, 5), {0, 2, 4, 6, 8, 10}),
    (p("q_uniform", min=0.5, max=2.5, q=1), (0, 2), {0, 1, 2}),  # round(0.5) = 0, as W&B
    (p("q_uniform", min=0.0, max=1.0, q=0.25), (0, 4), {0.0, 0.25, 0.5, 0.75, 1.0}),
    (p("q_log_uniform_values", min=32, max=256, q=8), (4, 32), set(range(32, 257, 8))),
    (p("q_log_uniform_values", min=1, max=100, q=10), (1, 10), set(range(10, 101, 10))),
])
def test_q_is_a_step_the_value_is_k_times_q_with_wandbs_type(
        spec: ParamSpec, k_range: tuple[int, int], values: set[float]) -> None:
    d = dim(spec)
    assert d.kind == "int" and (int(d.low), int(d.high)) == k_range
    mine = {d.value(k) for k in range(int(d.low), int(d.high) + 1)}
    assert mine == values
    assert all(type(v) is type(quantize(1.0, spec.q)) for v in mine)
    rng = random.Random(1)
    wandb = {sample(spec, rng) for _ in range(3000)}
    assert wandb <= mine | {0}, "every W&B value (0 aside for log) is reachable"


@pytest.mark.parametrize("kind", ["normal", "q_normal", "log_normal", "q_log_normal"])
def test_the_normal_family_goes_through_its_quantile_function(kind: str) -> None:
    spec = p(kind, mu=1.0, sigma=2.0, q=0.5)
    d = dim(spec)
    assert (d.kind, d.low, d.high) == ("float", TAIL, 1 - TAIL)
    z = 1.0 + 2.0 * NormalDist().inv_cdf(0.8)
    expected = math.exp(z) if "log" in kind else z
    value = d.value(0.8)
    if kind.startswith("q_"):
        assert value == round(expected / 0.5) * 0.5 and isinstance(value, float)
    else:
        assert math.isclose(value, expected)
    assert math.isclose(dim(p("normal", mu=1.0, sigma=2.0)).value(TAIL), 1.0 - 8.0,
                        rel_tol=1e-9)  # 4 sigma out


@pytest.mark.parametrize("kind", ["beta", "q_beta"])
def test_beta_goes_through_its_quantile_function(kind: str) -> None:
    from scipy.stats import beta

    d = dim(p(kind, a=2.0, b=5.0, q=0.1))
    expected = float(beta.ppf(0.3, 2.0, 5.0))
    value = d.value(0.3)
    if kind == "q_beta":
        assert value == pytest.approx(round(expected / 0.1) * 0.1)
    else:
        assert value == pytest.approx(expected)


def test_every_wandb_distribution_has_a_mapping() -> None:
    from launcher.parameters import DISTRIBUTIONS

    args = {"min": 1, "max": 10, "q": 1, "mu": 0.0, "sigma": 1.0, "a": 1.0, "b": 1.0}
    for kind in DISTRIBUTIONS:
        if kind == "constant":
            continue
        if kind.startswith("categorical"):
            spec = ParamSpec("x", "categorical", values=(1, 2), distinct=(1, 2),
                             probabilities=(0.5, 0.5) if "prob" in kind else None)
        else:
            spec = ParamSpec("x", kind, **{k: v for k, v in args.items()  # type: ignore
                                           if k in ("min", "max") or kind.endswith(
                                               ("normal", "beta")) or k == "q"})
        d = dim(spec)
        dist = d.distribution()
        x = dist.choices[0] if d.kind == "categorical" else (dist.low + dist.high) / 2
        assert d.value(x) is not None and d.describe()
