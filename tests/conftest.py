"""Shared test set-up: real engines for marked tests; under CI they must be there.

Tests marked ``docker``, ``hosts``, ``engines``, ``ray``, ``browser`` or ``wandb`` need real
parts (``engines``: Docker engines of the test run's own, see tests/engines.py). On a
developer machine without them they are skipped with the command that provides
them; when ``CI=true`` a missing part fails the test instead, so CI can never pass
by skipping.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
TEST_HOSTS_STATE = Path("/run/launcher-test-hosts")


@functools.cache
def _docker_problem() -> str | None:
    try:
        import docker

        docker.from_env(timeout=10).ping()
    except Exception as e:  # any failure means "no engine"; the message says which
        return f"no Docker engine answers ({type(e).__name__}: {e}); run `make docker`"
    return None


@functools.cache
def _hosts_problem() -> str | None:
    hosts = TEST_HOSTS_STATE / "hosts.yaml"
    if not hosts.exists():
        return "the test Docker hosts are not up; run `scripts/test-hosts.sh up`"
    status = subprocess.run([str(ROOT / "scripts/test-hosts.sh"), "status"],
                            capture_output=True, text=True, timeout=60)
    if status.returncode != 0:
        return f"the test Docker hosts do not answer: {status.stdout}{status.stderr}"
    return None


@functools.cache
def _ray_problem() -> str | None:
    try:
        import ray  # noqa: F401
    except ImportError:
        return "ray is not installed; run `pip install -e .[ray]`"
    return None


@functools.cache
def _engines_problem() -> str | None:
    from tests.engines import engines_problem

    return engines_problem()


@functools.cache
def _browser_problem() -> str | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return "headless Chromium is missing; run `scripts/ensure-browser.sh`"
    return None


@functools.cache
def _wandb_problem() -> str | None:
    python = ROOT / ".cache/wandb-sweeps/bin/python"
    if not python.exists():
        return "W&B's sweep engine is missing; run `scripts/wandb-sweeps-venv.sh`"
    return None


_CHECKS = {"wandb": (_wandb_problem,), "docker": (_docker_problem,),
           "hosts": (_docker_problem, _hosts_problem),
           "ray": (_docker_problem, _ray_problem), "browser": (_browser_problem,),
           "engines": (_docker_problem, _engines_problem)}


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker, checks in _CHECKS.items():
        if item.get_closest_marker(marker) is None:
            continue
        for check in checks:
            problem = check()
            if problem:
                if IN_CI:
                    pytest.fail(f"CI=true but {problem}", pytrace=False)
                pytest.skip(problem)
