"""launcher: run one ML experiment image at scale and collect one results table.

The public API is small and lazy (importing it does not import docker or pandas):

    load_sweep(path, overrides=None) -> SweepSpec
    run_sweep(path_or_spec, ...) -> RunResults   (``.df`` is the results table)
    resume_run(run) -> RunResults                 (continue a killed or stopped run)
    load_results(run) -> pandas.DataFrame
    open_results(run) -> RunTable                 (.df, .by_config(), .best(n))
    verify_runs([run, ...]) -> Verification       (same seed, same result?)
    compare_runs(run_a, run_b) -> Comparison      (deltas, regressions)
    write_report(run) -> Path                     (self-contained HTML with plots)
    LauncherError                               (root of every error raised on purpose)
"""

from __future__ import annotations

from typing import Any

from launcher.errors import LauncherError

__all__ = ["LauncherError", "compare_runs", "load_results", "load_sweep", "open_results",
           "resume_run", "run_sweep", "verify_runs", "write_report"]
__version__ = "0.1.0"

_LAZY = {
    "load_sweep": "launcher.spec",
    "run_sweep": "launcher.api",
    "resume_run": "launcher.api",
    "load_results": "launcher.results",
    "open_results": "launcher.results",
    "verify_runs": "launcher.verify",
    "compare_runs": "launcher.compare",
    "write_report": "launcher.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")
