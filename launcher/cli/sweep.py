"""Commands that read a sweep file and run it (plan, run, build) or a trial's log (logs).

Part of the command-line layer: parse, call one core function, render.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from launcher.cli.group import (
    announce,
    cli,
    load,
    results_option,
    run_argument,
    status_line,
    sweep_options,
)


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
@click.option("--resume", is_flag=True, help="Continue the newest run made from this very "
              "sweep file (same path and content) instead of starting a new one.")
@click.option("--retry-failed", is_flag=True, help="With --resume: run failed trials again.")
@click.option("--strict-metrics", is_flag=True, help="A trial whose final metrics lack the "
              "sweep's metric.name fails (same as strict_metrics: true in the file).")
@click.option("--watch", "live", is_flag=True, help="Show the live view of `launch watch` "
              "(one lane per host) instead of the progress bar.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def run_command(sweep: str, resume: bool, retry_failed: bool, strict_metrics: bool,
                live: bool, quiet: bool, as_json: bool, **kwargs: Any) -> int:
    """Run SWEEP: build the image once, fan trials out, collect one results table.

    This is also what `launch SWEEP` does; options may come before or after SWEEP.
    The run id is printed first (on stderr).
    """
    from launcher.api import resume_or_run
    from launcher.views import print_run_summary

    if strict_metrics:  # an override like any other, so that resume keeps it
        kwargs["sets"] = (*kwargs["sets"], "strict_metrics=true")
    spec = load(sweep, kwargs)
    quiet = quiet or as_json
    progress = "quiet" if quiet else "watch" if live else "auto"
    results = resume_or_run(spec, resume=resume, retry_failed=retry_failed, progress=progress,
                            on_line=None if quiet else status_line, on_run=announce)
    print_run_summary(results, as_json=as_json, out=sys.stdout)
    return results.exit_code


@cli.command()
@click.argument("sweep", type=click.Path())
@sweep_options
def build(sweep: str, **kwargs: Any) -> None:
    """Build the training image of SWEEP once (cached by content) and print its ID."""
    from launcher.prepare import build_locally

    image = build_locally(load(sweep, kwargs), status_line)
    assert image is not None  # required: no engine raises HostError
    state = "built" if image.built else "up to date"
    click.echo(f"{image.id}", nl=True)
    click.echo(f"{image.tag} ({state})", err=True)


@cli.command()
@run_argument()
@click.argument("trial_id")
@click.option("--follow", "-f", is_flag=True, help="Stream the log live while the trial "
              "runs; says what it waits for, and stops when the run is not running.")
@results_option
def logs(run: str, trial_id: str, follow: bool, results: str) -> int:
    """Show the log of one trial (TRIAL_ID or a unique prefix) of RUN."""
    from pathlib import Path

    from launcher.views import show_log

    return show_log(run, trial_id, Path(results), follow=follow, out=sys.stdout,
                    say=announce)
