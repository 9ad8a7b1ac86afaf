"""Small helpers over a Docker engine's low-level API, shared by every backend and tool.

Everything here takes a docker-py ``APIClient`` (``client.api``) and does one engine
call or one loop of them: the image-ID lookup that "the same image on every host" is
checked with, removal of what the launcher labelled, one way to shorten an engine
error for a one-line message, and the timeouts every engine call uses.
"""

from __future__ import annotations

from typing import Any

API_TIMEOUT = 120  # seconds for any later call that has no timeout of its own
NODE_API_TIMEOUT = 30  # seconds for short calls made from a Ray node
WAIT_SLICE = 60.0  # seconds per wait call; below API_TIMEOUT
MIN_API_VERSION = "1.41"  # Docker 20.10


def image_id_of(api: Any, ref: str) -> str | None:
    """The ID of image ``ref`` (a tag or an ID) on the engine of ``api``; None if absent."""
    import docker.errors

    try:
        return str(api.inspect_image(ref)["Id"])
    except docker.errors.ImageNotFound:
        return None


def remove_by_label(api: Any, label: str) -> tuple[int, int]:
    """Force-remove containers, then volumes, carrying ``label``; return the counts."""
    containers = volumes = 0
    for container in api.containers(all=True, filters={"label": label}):
        try:
            api.remove_container(container["Id"], v=True, force=True)
            containers += 1
        except Exception:  # removed meanwhile by its own trial thread
            continue
    for volume in (api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
        try:
            api.remove_volume(volume["Name"], force=True)
            volumes += 1
        except Exception:  # still in use by a container being removed
            continue
    return containers, volumes


def short_error(e: BaseException, limit: int = 300, *, kind: bool = False) -> str:
    """An error in one line: the engine's own explanation when it has one; with ``kind``
    the exception's class first (for errors that say little without it)."""
    text = " ".join(str(getattr(e, "explanation", None) or e).split())[:limit]
    if kind:
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text
