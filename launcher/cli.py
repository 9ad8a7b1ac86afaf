"""The ``launch`` command line: parse, call one core function, render.

This is the only module that imports click. Heavy modules (docker, pandas, rich,
matplotlib, ray) are imported inside the commands that need them so that
``launch --help`` stays instant. Errors become one line and an exit code in
:func:`main`, and nowhere else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from launcher.errors import EXIT_INTERRUPTED, LauncherError

if TYPE_CHECKING:
    from launcher.overrides import Overrides
    from launcher.spec import SweepSpec

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_COMMAND = "run"


class DefaultGroup(click.Group):
    """``launch SWEEP ...`` means ``launch run SWEEP ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = next((a for a in args if a not in ("--debug",)), None)
        if first is not None and not first.startswith("-") and first not in self.commands:
            args = list(args)
            args.insert(args.index(first), DEFAULT_COMMAND)
        return super().parse_args(ctx, args)


def sweep_options(func: F, exclude: tuple[str, ...] = ()) -> F:
    """The overrides every command that reads a sweep file accepts (but ``exclude``)."""
    options = {
        "replicas": click.option("--replicas", type=int, help="Runs per configuration."),
        "seed": click.option("--seed", type=int, help="Base seed (replica r gets seed+r "
                             "unless seed_mode is fixed)."),
        "sets": click.option("--set", "sets", multiple=True, metavar="KEY.PATH=VALUE",
                             help="Override any sweep key, e.g. --set resources.cpus=2 "
                             "(repeatable; +KEY adds a new parameter)."),
        "hosts": click.option("--host", "hosts", multiple=True,
                              metavar="URL[,slots=N][,name=NAME][,cert_path=DIR]",
                              help="A Docker host; replaces the file's hosts (repeatable)."),
        "hosts_file": click.option("--hosts", "hosts_file", type=click.Path(dir_okay=False),
                                   metavar="FILE", help="Read the host list from a YAML file."),
        "backend": click.option("--backend", type=click.Choice(["docker", "ray"]),
                                help="Where trials run."),
        "ray_address": click.option("--ray-address", metavar="auto|ray://HOST:PORT",
                                    help="An existing Ray cluster (with --backend ray)."),
        "results": click.option("--results", metavar="DIR", help="Results root directory."),
        "max_parallel": click.option("--max-parallel", type=int,
                                     help="At most this many trials at once."),
    }
    for name, option in reversed(options.items()):
        if name not in exclude:
            func = option(func)
    return func


def overrides_from(kwargs: dict[str, Any]) -> Overrides:
    from launcher.overrides import Overrides

    return Overrides(
        replicas=kwargs.pop("replicas", None), seed=kwargs.pop("seed"),
        sets=kwargs.pop("sets"), hosts=kwargs.pop("hosts"),
        hosts_file=kwargs.pop("hosts_file"), backend=kwargs.pop("backend"),
        ray_address=kwargs.pop("ray_address"), results=kwargs.pop("results"),
        max_parallel=kwargs.pop("max_parallel"))


def load(path: str, kwargs: dict[str, Any]) -> SweepSpec:
    """Load the sweep with the command line's overrides and print its warnings."""
    from launcher.spec import load_sweep

    spec = load_sweep(path, overrides_from(kwargs))
    for warning in spec.warnings:
        click.echo(f"warning: {warning}", err=True)
    return spec


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="launcher", prog_name="launch")
def cli(debug: bool) -> None:
    """Run one ML experiment image at scale.

    \b
    launch SWEEP.yaml [--replicas N] ...   run a sweep (same as `launch run`)
    launch plan SWEEP.yaml                 show the trials without running them

    Exit codes: 0 success, 1 runtime error or failed trials, 2 bad command line or
    sweep file, 130 interrupted.
    """


@cli.command()
@click.argument("sweep", type=click.Path())
@sweep_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Output format.")
def plan(sweep: str, fmt: str, **kwargs: Any) -> None:
    """Validate SWEEP and list its trials, without touching Docker."""
    from launcher.plan import expand
    from launcher.views import print_plan

    spec = load(sweep, kwargs)
    print_plan(spec, expand(spec), fmt, sys.stdout)


@cli.command("run")
@click.argument("sweep", type=click.Path())
@sweep_options
@click.option("--resume", is_flag=True, help="Continue the newest run of this sweep "
              "under the results root instead of starting a new one.")
@click.option("--retry-failed", is_flag=True, help="With --resume: run failed trials again.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def run_command(sweep: str, resume: bool, retry_failed: bool, quiet: bool, as_json: bool,
                **kwargs: Any) -> int:
    """Run SWEEP: build the image once, fan trials out, collect one results table.

    This is also what `launch SWEEP` does.
    """
    from launcher.api import resume_or_run
    from launcher.views import print_run_summary

    spec = load(sweep, kwargs)
    quiet = quiet or as_json
    results = resume_or_run(spec, resume=resume, retry_failed=retry_failed,
                            progress="quiet" if quiet else "auto",
                            on_line=None if quiet else status_line)
    return print_run_summary(results, as_json=as_json, out=sys.stdout)


@cli.command()
@click.argument("sweep", type=click.Path())
@sweep_options
def build(sweep: str, **kwargs: Any) -> None:
    """Build the training image of SWEEP once (cached by content) and print its ID."""
    from launcher.api import build as build_image
    from launcher.api import local_host

    spec = load(sweep, kwargs)
    host = local_host(spec)
    assert host is not None
    try:
        image = build_image(spec, host, status_line)
    finally:
        host.close()
    state = "built" if image.built else "up to date"
    click.echo(f"{image.id}", nl=True)
    click.echo(f"{image.tag} ({state})", err=True)


@cli.command()
@click.argument("run")
@click.argument("trial_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing as the log grows.")
@click.option("--results", default="results", show_default=True, help="Results root.")
def logs(run: str, trial_id: str, follow: bool, results: str) -> None:
    """Show the log of one trial of RUN (a run directory, or a run id or prefix)."""
    from pathlib import Path

    from launcher.views import show_log

    show_log(run, trial_id, Path(results), follow=follow, out=sys.stdout)


def status_line(line: str) -> None:
    """Build and shipping output: one dim line each on stderr."""
    text = line.strip()
    if text:
        click.echo(click.style(f"  {text[:160]}", dim=True), err=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error becomes one line and an exit code here."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("LAUNCH_DEBUG") == "1"
    try:
        code = cli.main(args=args, prog_name="launch", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("launch: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
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
    sys.exit(code if isinstance(code, int) else 0)


# Commands kept in their own modules register themselves on `cli` when imported.
from launcher import cli_ops, cli_results  # noqa: E402, F401
