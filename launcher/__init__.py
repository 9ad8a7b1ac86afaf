"""launcher: run one ML experiment image at scale and collect one results table.

The public API is small and lazy (importing it does not import docker or pandas):

    load_sweep(path, overrides=None) -> SweepSpec
    run_sweep(path_or_spec, ...) -> RunResults   (``.df`` is the results table)
    load_results(run) -> pandas.DataFrame
    LauncherError                               (root of every error raised on purpose)
"""

from __future__ import annotations

from typing import Any

from launcher.errors import LauncherError

__all__ = ["LauncherError", "load_results", "load_sweep", "run_sweep"]
__version__ = "0.1.0"

_LAZY = {
    "load_sweep": "launcher.spec",
    "run_sweep": "launcher.api",
    "load_results": "launcher.results",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")
