"""Small helpers over a Docker engine's low-level API, shared by every backend and tool.

Everything here takes a docker-py ``APIClient`` (``client.api``) and does one engine
call or one loop of them: the image-ID lookup that "the same image on every host" is
checked with, removal of what the launcher labelled, one way to shorten an engine
error for a one-line message, and the timeouts every engine call uses.
"""

from __future__ import annotations

import json
from typing import Any

API_TIMEOUT = 120  # seconds for any later call that has no timeout of its own
CONNECT_TIMEOUT = 20.0  # seconds an engine has to answer while the launcher connects
PING_TIMEOUT = 10.0  # seconds for "does this engine still answer?"
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


def ping(api: Any, timeout: float = PING_TIMEOUT) -> bool:
    """True when the engine answers its /_ping within ``timeout`` seconds (a frozen
    engine accepts the connection and never answers: only a deadline tells)."""
    try:
        return bool(api.get(f"{api.base_url}/_ping", timeout=timeout).ok)
    except Exception:  # any failure to answer means no
        return False


def labelled_containers(api: Any, label: str,
                        timeout: float = PING_TIMEOUT) -> list[dict[str, Any]]:
    """Containers (any state) carrying ``label``, listed within ``timeout`` seconds."""
    response = api._get(api._url("/containers/json"), timeout=timeout,
                        params={"all": 1, "filters": json.dumps({"label": [label]})})
    found: list[dict[str, Any]] = api._result(response, True)
    return found


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
