"""Commands that read finished runs (ls, results, status, verify, compare, report, scale).

Part of the command-line layer: it parses, calls one core function and
renders. Registers its commands on the group of cli/group.py. The core
functions are importable for notebooks: launcher.listing, launcher.results,
launcher.verify, launcher.compare, launcher.report and launcher.scale.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from launcher.cli.group import cli, overrides_from, results_option, sweep_options
from launcher.tables import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                             show_default=True, help="Output format.")
run_argument = click.argument("run", metavar="RUN")


def tolerance_options(func: F) -> F:
    func = click.option("--atol", type=click.FloatRange(min=0), default=0.0, show_default=True,
                        help="Absolute tolerance for float metrics.")(func)
    return click.option("--rtol", type=click.FloatRange(min=0), default=0.0, show_default=True,
                        help="Relative tolerance for float metrics (0: exact).")(func)


@cli.command("ls")
@results_option
@format_option
def ls_command(results: str, fmt: str) -> int:
    """List the runs under the results root: sweep, run id, date, state, trials,
    succeeded, image ID and hosts, oldest first."""
    from launcher.listing import list_runs
    from launcher.results import write_frame

    runs = list_runs(results)
    if not len(runs) and fmt == "table":
        click.echo(f"no runs under {results}")
        return 0
    write_frame(runs, fmt, sys.stdout)
    return 0


@cli.command("results")
@run_argument
@results_option
@format_option
@click.option("--by", type=click.Choice(["config"]),
              help="Aggregate over replicas per configuration (mean, std, min, max, count "
                   "of the sweep's metric, best first).")
def results_command(run: str, results: str, fmt: str, by: str | None) -> int:
    """Print the results table of RUN (a run directory, or a run id or unique prefix).

    The terminal table leaves out provenance columns; csv and json have them all.
    """
    from launcher.results import compact, open_results, write_frame

    table = open_results(run, results)
    df = table.by_config() if by else compact(table.df) if fmt == "table" else table.df
    write_frame(df, fmt, sys.stdout)
    for problem in table.problems():  # on stderr: csv and json stay machine-readable
        click.echo(f"warning: {problem}", err=True)
    return 0


@cli.command()
@run_argument
@results_option
def status(run: str, results: str) -> int:
    """Show how far RUN has got, from its records: trials per status, remaining, per host."""
    from launcher.listing import run_status

    click.echo(run_status(run, results).summary(), nl=False)
    return 0


@cli.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN [RUN ...]")
@results_option
@tolerance_options
@click.option("--ignore", multiple=True, metavar="NAME",
              help="Leave output files with this name (or pattern) out (repeatable).")
def verify(runs: tuple[str, ...], results: str, rtol: float, atol: float,
           ignore: tuple[str, ...]) -> int:
    """Check that equal configuration and seed gave equal metrics, output files and image
    across replicas, hosts and RUNs. Exit 1 if anything differs, 2 if nothing to compare."""
    from launcher.verify import verify_runs

    verification = verify_runs(runs, results, rtol=rtol, atol=atol, ignore=ignore)
    click.echo(verification.summary(), nl=False)
    return verification.exit_code


@cli.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@results_option
@tolerance_options
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 if the sweep's metric got worse beyond the tolerance, or a trial "
                   "stopped succeeding.")
def compare(run_a: str, run_b: str, results: str, rtol: float, atol: float,
            fail_on_regression: bool) -> int:
    """Compare RUN_B against RUN_A trial by trial: metric deltas, trials only in one run,
    image and status changes, regressions."""
    from launcher.compare import compare_runs

    comparison = compare_runs(run_a, run_b, results, rtol=rtol, atol=atol)
    click.echo(comparison.summary(), nl=False)
    return comparison.exit_code(fail_on_regression)


@cli.command()
@run_argument
@results_option
@click.option("-o", "--output", metavar="FILE",
              help="Where to write the report [report.html in the run directory].")
def report(run: str, results: str, output: str | None) -> int:
    """Write one self-contained HTML report of RUN: best configurations, plots of metrics,
    replicas, learning curves, a container timeline per host and reproducibility."""
    from launcher.report import write_report

    click.echo(str(write_report(run, results, output)))
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
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
def scale(sweep: str, sizes: str, quiet: bool, **kwargs: Any) -> int:
    """Run SWEEP at each size, then print and plot wall time and containers per second
    against N with the ideal line, and verify that equal seeds gave equal metrics."""
    from launcher.scale import parse_sizes, scale_sweep

    kwargs["replicas"] = None
    study = scale_sweep(sweep, parse_sizes(sizes), overrides_from(kwargs),
                        progress="quiet" if quiet else "auto",
                        on_size=None if quiet else lambda line: click.echo(line, err=True))
    click.echo(study.summary(), nl=False)
    return study.exit_code


__all__ = ["cli"]
