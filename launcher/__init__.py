"""launcher: run one ML experiment image at scale and collect one results table.

The public API is small, typed and lazy (importing it does not import docker or pandas):

    load_sweep(path, overrides=None) -> SweepSpec
    run_sweep(path_or_spec, ...) -> RunResults   (``.df`` is the results table)
    resume_run(run) -> RunResults                 (continue a killed or stopped run)
    load_results(run) -> pandas.DataFrame          (one row per trial; run_id, sweep, argv, ...)
    load_history(run) -> pandas.DataFrame          (every trial's learning curve)
    open_results(run) -> RunTable                 (.df, .by_config(), .best(n))
    verify_runs([run, ...]) -> Verification       (same seed, same result?)
    compare_runs(run_a, run_b) -> Comparison      (what changed, aligned, regressions)
    write_report(run) -> Path                     (self-contained HTML with plots)
    export_mlflow(run, uri) -> Exported           (one MLflow run per trial; [mlflow] extra)

A run is a run directory or a reference: a run id, a unique prefix or suffix of one,
``latest`` or ``latest~N``.
    LauncherError                               (root of every error raised on purpose)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from launcher.errors import LauncherError
from launcher.version import __version__ as __version__

if TYPE_CHECKING:  # what a type checker sees; at run time these load on first use
    from launcher.api import RunResults, resume_run, run_sweep
    from launcher.compare import Comparison, compare_runs
    from launcher.export import Exported, export_mlflow
    from launcher.report import write_report
    from launcher.results import RunTable, load_history, load_results, open_results
    from launcher.spec import SweepSpec, load_sweep
    from launcher.verify import Verification, verify_runs

__all__ = ["Comparison", "Exported", "LauncherError", "RunResults", "RunTable", "SweepSpec",
           "Verification", "compare_runs", "export_mlflow", "load_history", "load_results",
           "load_sweep", "open_results", "resume_run", "run_sweep", "verify_runs",
           "write_report"]

_LAZY = {
    "load_sweep": "launcher.spec", "SweepSpec": "launcher.spec",
    "run_sweep": "launcher.api", "resume_run": "launcher.api", "RunResults": "launcher.api",
    "load_results": "launcher.results", "open_results": "launcher.results",
    "RunTable": "launcher.results", "load_history": "launcher.results",
    "export_mlflow": "launcher.export", "Exported": "launcher.export",
    "verify_runs": "launcher.verify", "Verification": "launcher.verify",
    "compare_runs": "launcher.compare", "Comparison": "launcher.compare",
    "write_report": "launcher.report",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # the next access is a plain attribute
        return value
    raise AttributeError(f"module 'launcher' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
