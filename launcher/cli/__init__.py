"""The ``launch`` command line: parse, call one core function, render.

This package is the only place that imports click. Heavy modules (docker, pandas,
rich, matplotlib, ray) are imported inside the commands that need them so that
``launch --help`` stays instant.

    group.py    the group, shared options and helpers (imports no command module)
    sweep.py    plan, run, build, logs
    ops.py      hosts, clean, resume
    results.py  ls, results, status, verify, compare
    reports.py  report, watch, scale, export
    main.py     ``main``: errors become one line and an exit code
"""

from __future__ import annotations

from launcher.cli.group import cli
from launcher.cli.main import main

__all__ = ["cli", "main"]
