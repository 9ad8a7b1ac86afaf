"""Commands that operate on hosts and runs (hosts, resume, clean).

Part of the command-line layer: like cli.py, it parses, calls one core function and
renders. Imported by cli.py, which owns the group and the error handling.
"""

from __future__ import annotations

from launcher.cli import cli

__all__ = ["cli"]
