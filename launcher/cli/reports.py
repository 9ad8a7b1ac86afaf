"""Commands that show runs to people and tools (report, watch, scale, export).

Part of the command-line layer: it parses, calls one core function and renders.
Registers its commands on the group of cli/group.py. The core functions are importable:
launcher.report, launcher.watch, launcher.scale and launcher.export.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from launcher.cli.group import (
    announce,
    cli,
    overrides_from,
    results_option,
    run_argument,
    sweep_options,
)

F = TypeVar("F", bound=Callable[..., Any])


@cli.command()
@run_argument()
@results_option
@click.option("-o", "--output", metavar="FILE",
              help="Where to write the report [report.html in the run directory].")
@click.option("--once", is_flag=True, help="On a running run, write the page once instead "
              "of keeping it up to date until the run ends.")
def report(run: str, results: str, output: str | None, once: bool) -> int:
    """Write one self-contained HTML report of RUN: best configurations, the metric
    against each parameter, a heatmap and parallel coordinates, replicas, learning
    curves, failed trials with their logs, a container timeline per host and
    reproducibility. On a running run the page reloads itself until the run ends."""
    from launcher.report import write_live_report

    path = write_live_report(run, results, output, once=once, on_update=announce)
    click.echo(str(path))
    return 0


@cli.command()
@run_argument()
@results_option
def watch(run: str, results: str) -> int:
    """The live view of RUN for a projector: one lane per host with its running
    containers, finished and failed trials, throughput and the best value so far,
    redrawn twice a second until the run ends (on a terminal; else one line a second)."""
    from launcher.watch import watch as watch_run

    watch_run(run, results)
    return 0


def scale_options(func: F) -> F:
    """The sweep overrides, with --replicas taking a list of sizes."""
    func = sweep_options(func, exclude=("replicas",))
    return click.option("--replicas", "sizes", default="1,10,50,100", show_default=True,
                        metavar="N,N,...", help="Sweep sizes to run (replicas per "
                        "configuration).")(func)


@cli.command()
@click.argument("sweep", type=click.Path())
@scale_options
@click.option("--resume", is_flag=True, help="Continue the newest interrupted study of "
              "this sweep file with these sizes: finished sizes are kept, an interrupted "
              "one is resumed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def scale(sweep: str, sizes: str, resume: bool, quiet: bool, **kwargs: Any) -> int:
    """Run SWEEP at each size, then print and plot wall time and containers per second
    against N with the ideal line, and verify that equal seeds gave equal metrics.
    Ctrl-C stops the whole study (exit 130; `--resume` continues it)."""
    from launcher.scale import parse_sizes, scale_sweep

    kwargs["replicas"] = None
    study = scale_sweep(sweep, parse_sizes(sizes), overrides_from(kwargs), resume=resume,
                        progress="quiet" if quiet else "auto", on_size=announce)
    click.echo(study.summary(), nl=False)
    return study.exit_code


@cli.command()
@run_argument()
@results_option
@click.option("--mlflow", "mlflow_uri", required=True, metavar="URI",
              help="An MLflow tracking URI: a folder (file store), sqlite:///FILE or "
                   "http(s)://SERVER. Needs `pip install 'launcher[mlflow]'`.")
@click.option("--experiment", metavar="NAME",
              help="The MLflow experiment [the sweep's name].")
def export(run: str, results: str, mlflow_uri: str, experiment: str | None) -> int:
    """Export RUN to MLflow: one MLflow run per trial with its parameters, final metrics,
    learning curve (as steps), host/image/trial tags and outputs as artifacts. Trials
    already exported to that experiment are skipped."""
    from launcher.export import export_mlflow

    done = export_mlflow(run, mlflow_uri, results, experiment=experiment, on_line=announce)
    click.echo(done.summary())
    return 0


__all__ = ["cli"]
