"""The ``launch`` group and what its commands share: options, loading a sweep, output.

Command modules (sweep, ops, results) import this module and register their commands
on :data:`cli`; this module imports none of them, so the arrows point one way.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from launcher.defaults import RESULTS_ROOT

if TYPE_CHECKING:
    from launcher.overrides import Overrides
    from launcher.spec import SweepSpec

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_COMMAND = "run"


GROUP_OPTIONS = ("--debug", "--version", "-h", "--help")
SWEEP_SUFFIXES = (".yaml", ".yml", ".json")


class DefaultGroup(click.Group):
    """``launch SWEEP ...`` means ``launch run SWEEP ...``, with the run's options before
    or after the file (``launch --replicas 3 SWEEP``). A word that is neither a command
    nor a file but close to a command's name is a mistyped command ("did you mean")."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = list(args)
        at = next((i for i, a in enumerate(args) if a not in GROUP_OPTIONS), None)
        if at is not None and args[at] not in self.commands:
            self._check_mistyped(args[at])
            args.insert(at, DEFAULT_COMMAND)
        return super().parse_args(ctx, args)

    def _check_mistyped(self, word: str) -> None:
        import difflib
        import os

        from launcher.errors import UsageError

        if word.startswith("-") or os.path.exists(word) or "/" in word or \
                word.endswith(SWEEP_SUFFIXES):
            return
        close = difflib.get_close_matches(word, list(self.commands), n=1, cutoff=0.6)
        if close:
            raise UsageError(f"no command {word!r} (did you mean {close[0]!r}?)",
                             hint="`launch --help` lists the commands; a sweep file "
                             "runs with `launch FILE`")
        raise UsageError(f"no command or sweep file {word!r}",
                         hint="`launch --help` lists the commands")


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
    launch watch latest                    the live view of the newest run

    RUN is a run directory, a run id, any unique prefix or suffix of one, or
    latest, latest~1, ... (also SWEEP/latest). Exit codes: 0 success, 1 runtime error
    or failed trials, 2 bad command line or sweep file, 130 interrupted. Shell
    completion: eval "$(_LAUNCH_COMPLETE=bash_source launch)" (zsh_source, fish_source).
    """


def color(stream: Any = None) -> bool:
    """Colour on a terminal, never with NO_COLOR set (https://no-color.org)."""
    from launcher.terminal import use_color

    return use_color(stream or sys.stderr)


def status_line(line: str) -> None:
    """Build and shipping output: one dim line each on stderr."""
    text = line.strip()
    if text:
        click.echo(click.style(f"  {text[:160]}", dim=True) if color() else f"  {text[:160]}",
                   err=True)


def announce(line: str) -> None:
    """What must be said even with --quiet: which run this is (on stderr, first)."""
    click.echo(click.style(line, bold=True) if color() else line, err=True)


def complete_run(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[Any]:
    """Shell completion of RUN: the run ids under the results root, and `latest`."""
    from pathlib import Path

    from click.shell_completion import CompletionItem

    from launcher.store import iter_runs

    root = Path(ctx.params.get("results") or RESULTS_ROOT)
    names = ["latest", *(d.name for d in iter_runs(root))] if root.is_dir() else ["latest"]
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def run_argument(name: str = "run", **kwargs: Any) -> Callable[[F], F]:
    """A RUN argument: a run directory, run id, unique prefix or suffix, or latest[~N]."""
    return click.argument(name, metavar=kwargs.pop("metavar", "RUN"),
                          shell_complete=complete_run, **kwargs)


json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON instead of text (for scripts).")
