"""Which Python packages an adaptive sweep needs, checked before anything starts.

Optuna itself, plus what each sampler imports when it samples (Optuna imports them
lazily, so a missing one would only fail after containers ran): ``cmaes`` for CMA-ES,
``scipy`` for quasi-Monte Carlo and for the beta distribution's quantile function,
``torch`` (and scipy) for the Gaussian-process sampler.
"""

from __future__ import annotations

import importlib.util

from launcher.parameters import ParamSpec
from launcher.search.space import needs_scipy

SAMPLER_PACKAGES: dict[str, tuple[str, ...]] = {
    "tpe": (), "random": (), "cmaes": ("cmaes",), "qmc": ("scipy",), "gp": ("torch", "scipy")}
EXTRA = "pip install 'launcher[search]'"


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def missing_packages(sampler: str, parameters: tuple[ParamSpec, ...]) -> list[str]:
    """The packages method: bayes with ``sampler`` needs that are not installed."""
    wanted = ["optuna", *SAMPLER_PACKAGES[sampler]]
    if needs_scipy(parameters) and "scipy" not in wanted:
        wanted.append("scipy")
    return [p for p in wanted if not installed(p)]


def install_hint(missing: list[str]) -> str:
    extra = [p for p in missing if p not in ("optuna", "cmaes", "scipy")]
    if len(extra) < len(missing):
        return EXTRA + (f" and pip install {' '.join(extra)}" if extra else "")
    return f"pip install {' '.join(extra)}"
