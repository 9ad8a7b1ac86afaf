"""Optuna's samplers by the names of the ``sampler`` key, seeded per suggestion.

Each suggestion gets a sampler seeded with the sweep's seed and the suggestion's number,
so a run with one slot suggests the same configurations every time, also across a
resume (a sampler seeded once would replay its first random draws after a resume). The
quasi-Monte Carlo sampler keeps one seed (one scrambled sequence) and takes point n for
suggestion n, so a resumed run continues the sequence instead of starting it again.
Every trial of a sweep has the same search space, so TPE is told it instead of working
it out again from every past trial at each suggestion (a fresh sampler has no cache).
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any


def derived_seed(seed: int, number: int) -> int:
    digest = hashlib.sha256(f"launcher-search:{seed}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def make_sampler(name: str, seed: int, number: int, space: dict[str, Any]) -> Any:
    """The Optuna sampler ``name`` for suggestion ``number`` of a sweep seeded ``seed``
    whose trials all have the distributions ``space``."""
    import optuna

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    own = derived_seed(seed, number)
    if name == "tpe":  # Optuna's defaults: multivariate, constant liar for trials in flight
        return _tpe_sampler(own, space)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=own)
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=own, warn_independent_sampling=False)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=own)
    if name == "qmc":
        return _qmc_sampler(seed)
    raise ValueError(f"unknown sampler {name!r}")


def _tpe_sampler(seed: int, space: dict[str, Any]) -> Any:
    import optuna

    searched = {k: d for k, d in space.items() if not d.single()}

    class FixedSpaceTPE(optuna.samplers.TPESampler):
        """Multivariate TPE over the sweep's one search space."""

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return dict(searched)

    return FixedSpaceTPE(seed=seed, multivariate=True, constant_liar=True)


def _qmc_sampler(seed: int) -> Any:
    import optuna

    class SequenceQMC(optuna.samplers.QMCSampler):
        """QMC whose point index is the trial's number, not a counter in the study's
        storage (which a study rebuilt from the run's records would not have)."""

        def _find_sample_id(self, study: Any, search_space: Any) -> int:
            return max(0, len(study.get_trials(deepcopy=False)) - 1)

    return SequenceQMC(seed=seed, scramble=True, warn_independent_sampling=False,
                       warn_asynchronous_seeding=False)
