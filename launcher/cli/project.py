"""Commands for a project of one's own (init, base-image).

Part of the command-line layer: parse, call one core function, render. Registers its
commands on the group of cli/group.py.
"""

from __future__ import annotations

from pathlib import Path

import click

from launcher.cli.group import cli


@cli.command()
@click.argument("folder", default=".", type=click.Path(file_okay=False))
def init(folder: str) -> None:
    """Write a starter project into FOLDER (default: here): Dockerfile, .dockerignore,
    requirements.txt, train.py and sweep.yaml. Never overwrites a file."""
    from launcher.project import write_starter

    for path in write_starter(Path(folder)):
        click.echo(f"wrote {path}")
    go = "" if folder == "." else f"cd {folder} && "
    click.echo(f"next: {go}launch sweep.yaml")


@cli.command("base-image")
def base_image() -> None:
    """Make sure a Python 3.11 base image exists on the local engine and print its name:
    python:3.11-slim if it can be pulled, else launcher-base:python3.11-bookworm made
    from Debian packages (about a minute, once; needs root)."""
    from launcher.project import make_base_image

    click.echo(make_base_image())
