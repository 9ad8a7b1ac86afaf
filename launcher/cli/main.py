"""The console entry point: every error becomes one line and an exit code here, and
nowhere else. Importing this module registers every command on the group."""

from __future__ import annotations

import os
import sys

import click

from launcher.cli import ops, project, reports, results, sweep  # noqa: F401 - registers
from launcher.cli.group import cli
from launcher.errors import EXIT_INTERRUPTED, LauncherError
from launcher.interrupts import Interrupted


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error becomes one line and an exit code here."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("LAUNCH_DEBUG") == "1"
    try:
        code = cli.main(args=args, prog_name="launch", standalone_mode=False)
    except click.exceptions.Abort as e:  # click turns KeyboardInterrupt into Abort
        cause = e.__cause__
        if isinstance(cause, Interrupted):
            click.echo(f"launch: interrupted by {cause.signal_name} while setting up; no "
                       "trial had started (a run being resumed is as it was)", err=True)
        else:
            click.echo("launch: interrupted", err=True)
        _exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except LauncherError as e:
        if debug:
            raise
        click.echo(f"launch: error: {e}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("launch: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as e:  # a bug, not a user error: say so in one line
        if debug:
            raise
        click.echo(f"launch: internal error: {type(e).__name__}: {e} (run with --debug for "
                   "the traceback, and please report it)", err=True)
        sys.exit(1)
    # Commands return their exit code (None is success); click returns 0 after --help.
    _exit(code if isinstance(code, int) else 0)


def _exit(code: int) -> None:
    """Exit now, also when a thread still waits on an engine that stopped answering (a
    trial given up, a shipment abandoned): everything the run keeps is on disk already."""
    import threading

    waiting = [t for t in threading.enumerate()
               if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not waiting:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
