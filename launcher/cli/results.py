"""Commands that read runs (ls, results, status, verify, compare).

Part of the command-line layer: it parses, calls one core function and
renders. Registers its commands on the group of cli/group.py. The core
functions are importable for notebooks: launcher.listing, launcher.results,
launcher.verify and launcher.compare.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from launcher.cli.group import cli, json_option, results_option, run_argument
from launcher.tables import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                             show_default=True, help="Output format (the table fits the "
                             "terminal; csv and json have every column).")


def tolerance_options(func: F) -> F:
    func = click.option("--atol", type=click.FloatRange(min=0), default=0.0, show_default=True,
                        help="Absolute tolerance for float metrics.")(func)
    return click.option("--rtol", type=click.FloatRange(min=0), default=0.0, show_default=True,
                        help="Relative tolerance for float metrics (0: exact).")(func)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=1, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


@cli.command("ls")
@results_option
@format_option
@json_option
def ls_command(results: str, fmt: str, as_json: bool) -> int:
    """List the runs under the results root: sweep, run id, date, state, trials,
    succeeded, image ID and hosts, oldest first."""
    from launcher.listing import list_runs
    from launcher.results import write_frame

    fmt = "json" if as_json else fmt
    runs = list_runs(results)
    if not len(runs) and fmt == "table":
        click.echo(f"no runs under {results}")
        return 0
    write_frame(runs, fmt, sys.stdout)
    return 0


@cli.command("results")
@run_argument()
@results_option
@format_option
@click.option("--by", type=click.Choice(["config"]),
              help="Aggregate over replicas per configuration (mean, std, min, max, count "
                   "of the sweep's metric, best first).")
def results_command(run: str, results: str, fmt: str, by: str | None) -> int:
    """Print the results table of RUN. The terminal table shows the most useful columns
    that fit (the sweep's metric first); csv and json have them all."""
    from launcher.results import compact, open_results, write_frame

    table = open_results(run, results)
    df = table.by_config() if by else table.df
    if fmt == "table":
        df = compact(df, table.metric)
    write_frame(df, fmt, sys.stdout)
    for problem in table.problems():  # on stderr: csv and json stay machine-readable
        click.echo(f"warning: {problem}", err=True)
    return 0


@cli.command()
@run_argument()
@results_option
@json_option
def status(run: str, results: str, as_json: bool) -> int:
    """Show how far RUN has got: trials per status, what `launch resume` would run, the
    containers running now (host, container, elapsed) and the hosts."""
    from launcher.listing import run_status

    found = run_status(run, results)
    if as_json:
        print_json(found.to_json())
    else:
        click.echo(found.summary(), nl=False)
    return 0


@cli.command()
@run_argument("runs", nargs=-1, required=True, metavar="RUN [RUN ...]")
@results_option
@tolerance_options
@click.option("--ignore", multiple=True, metavar="NAME",
              help="Leave output files with this name (or pattern) out (repeatable).")
@json_option
def verify(runs: tuple[str, ...], results: str, rtol: float, atol: float,
           ignore: tuple[str, ...], as_json: bool) -> int:
    """Check that equal configuration and seed gave equal metrics, output files and image
    across replicas, hosts and RUNs. Exit 1 if anything differs, 2 if nothing to compare."""
    from launcher.verify import verify_runs

    verification = verify_runs(runs, results, rtol=rtol, atol=atol, ignore=ignore)
    if as_json:
        print_json(verification.to_json())
    else:
        click.echo(verification.summary(), nl=False)
    return verification.exit_code


@cli.command()
@run_argument("run_a", metavar="RUN_A")
@run_argument("run_b", metavar="RUN_B")
@results_option
@tolerance_options
@click.option("--fail-on-regression", is_flag=True,
              help="Exit 1 if the sweep's metric got worse beyond the tolerance (and, by "
                   "configuration, beyond the replicas' noise), or something stopped "
                   "succeeding.")
@json_option
def compare(run_a: str, run_b: str, results: str, rtol: float, atol: float,
            fail_on_regression: bool, as_json: bool) -> int:
    """Compare RUN_B against RUN_A: what changed (parameters), then trial by trial when
    they share trials, else per configuration (mean, std, n, beyond the noise?).
    Exit 2 when nothing is comparable."""
    from launcher.compare import compare_runs

    comparison = compare_runs(run_a, run_b, results, rtol=rtol, atol=atol)
    if as_json:
        print_json(comparison.to_json())
    else:
        click.echo(comparison.summary(), nl=False)
    return comparison.exit_code(fail_on_regression)


__all__ = ["cli", "format_option", "print_json", "tolerance_options"]
