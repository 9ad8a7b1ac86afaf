"""A project of one's own: the starter that ``launch init`` writes, and the base image.

The starter (``launcher/starter/``) is a complete, working project: a Dockerfile that
builds offline from the launcher's wheelhouse and online where a package index is
reachable, a ``.dockerignore``, pinned ``requirements.txt``, a seeded ``train.py`` that
follows the image <-> launcher contract, and a ``sweep.yaml``. It is also the
repository's scikit-learn example, so what a new project starts from is tested.
"""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

from launcher.errors import LauncherError, UsageError

STARTER_FILES = ("Dockerfile", ".dockerignore", "requirements.txt", "train.py", "sweep.yaml")


def starter_folder() -> Path:
    return Path(str(resources.files("launcher") / "starter"))


def write_starter(folder: Path) -> list[Path]:
    """Write the starter project into ``folder`` (made if missing). Refuses to overwrite:
    if any of its files exists, nothing is written."""
    existing = [name for name in STARTER_FILES if (folder / name).exists()]
    if existing:
        raise UsageError(f"{folder} already has {', '.join(existing)}; nothing was written",
                         hint="run `launch init` in an empty folder, or `launch init NEW_DIR`")
    folder.mkdir(parents=True, exist_ok=True)
    source = starter_folder()
    written = []
    for name in STARTER_FILES:
        target = folder / name
        target.write_bytes((source / name).read_bytes())
        written.append(target)
    return written


def make_base_image() -> str:
    """Run the base-image script (pull python:3.11-slim, else make
    launcher-base:python3.11-bookworm from Debian packages); return the image's name."""
    script = Path(str(resources.files("launcher") / "data" / "base-image.sh"))
    try:
        result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    except OSError as e:
        raise LauncherError(f"cannot run {script}: {e}") from e
    if result.returncode != 0:
        raise LauncherError("the base image could not be made (the lines above say why)",
                            hint="it needs root, a Docker engine and Debian's package mirror")
    return result.stdout.strip()
