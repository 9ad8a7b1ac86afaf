"""Commands that operate on hosts and runs (hosts, clean, resume).

Part of the command-line layer: it parses, calls one core function and
renders. Registers its commands on the group of cli/group.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from launcher.cli.group import (
    announce,
    cli,
    json_option,
    load,
    results_option,
    run_argument,
    status_line,
    sweep_options,
)


@cli.command()
@click.argument("sweep", type=click.Path())
@sweep_options
@click.option("--no-image", is_flag=True, help="Do not build or look for the image.")
@json_option
def hosts(sweep: str, no_image: bool, as_json: bool, **kwargs: Any) -> int:
    """Check every host of SWEEP: reachable, engine, CPUs, memory, slots, image."""
    from launcher.hostcheck import check_hosts
    from launcher.prepare import build_locally
    from launcher.views import print_host_reports

    spec = load(sweep, kwargs)
    image = None if no_image else build_locally(spec, None if as_json else status_line,
                                                required=False)
    reports = check_hosts(spec, image)
    print_host_reports(reports, image, sys.stdout, as_json=as_json)
    return 0 if all(r.reachable for r in reports) else 1


@cli.command()
@run_argument(required=False)
@click.option("--all", "everything", is_flag=True,
              help="Every launcher container and volume, on every host any run used.")
@click.option("--images", is_flag=True, help="Also remove old launcher-built images "
              "(the newest is kept) on the local engine.")
@results_option
def clean(run: str | None, everything: bool, images: bool, results: str) -> int:
    """Remove containers and volumes the launcher labelled: of RUN, or --all."""
    from launcher.cleanup import clean_all, clean_images, clean_runs
    from launcher.errors import UsageError
    from launcher.sections import HostSpec
    from launcher.store import find_run
    from launcher.views import print_cleaned

    if not (run or everything or images):
        raise UsageError("say what to clean: RUN, --all or --images")
    done = []
    if everything:
        done += clean_all(Path(results))
    elif run:
        done += clean_runs([find_run(run, Path(results))])
    if images:
        done.append(clean_images(HostSpec("local", "local")))
    print_cleaned(done, sys.stdout)
    return 1 if any(c.error for c in done) else 0


@cli.command()
@run_argument()
@click.option("--retry-failed", is_flag=True, help="Also run failed, timed-out and "
              "OOM-killed trials again.")
@click.option("--host", "hosts", multiple=True,
              metavar="URL[,slots=N][,name=NAME][,cert_path=DIR]",
              help="Run the rest on this host instead of the run's hosts (repeatable).")
@click.option("--hosts", "hosts_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Run the rest on the hosts of this YAML file.")
@results_option
@click.option("--watch", "live", is_flag=True, help="Show the live view of `launch watch`.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary.")
def resume(run: str, retry_failed: bool, hosts: tuple[str, ...], hosts_file: str | None,
           results: str, live: bool, quiet: bool, as_json: bool) -> int:
    """Continue RUN: adopt its containers, then run the trials not finished yet (what
    `launch status` counts as still to run), on the hosts that answer."""
    from launcher.api import resume_run
    from launcher.overrides import host_specs
    from launcher.views import print_run_summary

    quiet = quiet or as_json
    resumed = resume_run(run, results, retry_failed=retry_failed,
                         progress="quiet" if quiet else "watch" if live else "auto",
                         on_line=None if quiet else status_line, on_run=announce,
                         hosts=host_specs(hosts, hosts_file))
    print_run_summary(resumed, as_json=as_json, out=sys.stdout)
    return resumed.exit_code
