"""Backends: where trials run. An explicit factory with lazy imports (ray is optional).

Each backend builds itself from the sweep (``Backend.from_spec``), so the rest of the
launcher never asks which backend it holds.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING

from launcher.errors import UsageError

if TYPE_CHECKING:
    from launcher.backends.base import Backend
    from launcher.spec import SweepSpec

# name -> (module, class, the Python package it needs)
BACKENDS = {"docker": ("launcher.backends.docker", "DockerBackend", "docker"),
            "ray": ("launcher.backends.ray", "RayBackend", "ray")}
KNOWN_BACKENDS = tuple(BACKENDS)


def get_backend(spec: SweepSpec) -> Backend:
    """The backend the sweep asks for, connected to its workers; a bad name lists the
    valid ones, a missing optional package says how to install it."""
    if spec.backend not in BACKENDS:
        raise UsageError(f"unknown backend {spec.backend!r}; known backends: "
                         f"{', '.join(KNOWN_BACKENDS)}")
    module, cls, package = BACKENDS[spec.backend]
    if importlib.util.find_spec(package) is None:
        raise UsageError(f"the {spec.backend} backend needs {package}, which is not installed",
                         hint=f"pip install 'launcher[{package}]', or use --backend docker")
    backend_class: type[Backend] = getattr(importlib.import_module(module), cls)
    return backend_class.from_spec(spec)
