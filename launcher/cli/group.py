"""The ``launch`` group and what its commands share: options, loading a sweep, output.

Command modules (sweep, ops, results) import this module and register their commands
on :data:`cli`; this module imports none of them, so the arrows point one way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from launcher.defaults import RESULTS_ROOT

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
        "skip_unreachable": click.option("--skip-unreachable", is_flag=True, default=None,
                                         help="Leave out hosts that do not answer (the "
                                         "summary and manifest name them) instead of "
                                         "stopping."),
    }
    for name, option in reversed(options.items()):
        if name not in exclude:
            func = option(func)
    return func


results_option = click.option("--results", default=RESULTS_ROOT, show_default=True,
                              metavar="DIR", help="Results root where run ids are looked up.")


def overrides_from(kwargs: dict[str, Any]) -> Overrides:
    from launcher.overrides import Overrides

    return Overrides(
        replicas=kwargs.pop("replicas", None), seed=kwargs.pop("seed"),
        sets=kwargs.pop("sets"), hosts=kwargs.pop("hosts"),
        hosts_file=kwargs.pop("hosts_file"), backend=kwargs.pop("backend"),
        ray_address=kwargs.pop("ray_address"), results=kwargs.pop("results"),
        max_parallel=kwargs.pop("max_parallel"),
        skip_unreachable=kwargs.pop("skip_unreachable", None) or None)


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


def status_line(line: str) -> None:
    """Build and shipping output: one dim line each on stderr."""
    text = line.strip()
    if text:
        click.echo(click.style(f"  {text[:160]}", dim=True), err=True)
