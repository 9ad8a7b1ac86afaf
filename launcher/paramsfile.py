"""``${args_json_file}``: the trial's parameters as a JSON file, read-only in the container.

A bind mount of a local file cannot reach a remote engine, and the engine refuses to copy
into a read-only root or a read-only volume. So the file travels through the engine API:
a small labelled volume per attempt, filled by copying the file (``put_archive``) into a
never-started helper container that mounts it writable, then mounted read-only into the
trial's container at :data:`~launcher.trial.PARAMS_DIR`. It works the same on the local
engine, over TLS or SSH and on Ray nodes; the volume is removed with the container (and
``launch clean`` finds a leftover by its labels).
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from typing import Any

from launcher.command import params_json
from launcher.trial import LABEL_ATTEMPT, PARAMS_PATH, Trial

_HELPER_TARGET = "/params"


def volume_name(run_id: str, trial_id: str, attempt: int | str) -> str:
    """One volume per attempt; the name is derived, so an adopted trial finds it again."""
    return f"launcher-params-{run_id}-{trial_id}-{attempt}"


def create_params_volume(api: Any, image: str, run_id: str, trial: Trial,
                         labels: dict[str, str]) -> str:
    """Make this attempt's volume holding ``params.json``; return its name."""
    from docker.types import Mount

    name = volume_name(run_id, trial.trial_id, labels[LABEL_ATTEMPT])
    api.create_volume(name=name, labels=labels)
    helper = api.create_container(
        image=image, command=["true"], labels=labels, network_disabled=True,
        host_config=api.create_host_config(
            network_mode="none", mounts=[Mount(_HELPER_TARGET, name, type="volume")]))["Id"]
    try:
        api.put_archive(helper, _HELPER_TARGET, _tar(params_json(trial).encode("utf-8")))
    finally:
        api.remove_container(helper, force=True)
    return name


def remove_params_volume(api: Any, name: str) -> None:
    with contextlib.suppress(Exception):
        api.remove_volume(name, force=True)


def _tar(data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(PARAMS_PATH.rsplit("/", 1)[-1])
        info.size, info.mode = len(data), 0o444
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
