"""Small helpers over a Docker engine's low-level API, shared by every backend and tool.

Everything here takes a docker-py ``APIClient`` (``client.api``) and does one engine
call or one loop of them: the image-ID lookup that "the same image on every host" is
checked with, removal of what the launcher labelled, one way to shorten an engine
error for a one-line message, and the timeouts every engine call uses.
"""

from __future__ import annotations

import json
from collections.abc import Generator
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


def engine_info(api: Any, timeout: float) -> dict[str, Any]:
    """The engine's /info in one round trip, also settling the API version.

    The client was made with MIN_API_VERSION pinned; every engine answer carries its own
    API version in a header, so the version is negotiated from this answer instead of a
    /version call first (one round trip per host instead of two). An engine that no
    longer speaks the pinned version (Docker 29 wants 1.44) costs the extra call.
    """
    from docker.constants import DEFAULT_DOCKER_API_VERSION

    response = api.get(f"{api.base_url}/v{api.api_version}/info", timeout=timeout)
    if response.status_code == 400 and "version" in response.text.lower():
        server = str(api.version(api_version=False)["ApiVersion"])
        api._version = _older(server, DEFAULT_DOCKER_API_VERSION)
        response = api.get(f"{api.base_url}/v{api.api_version}/info", timeout=timeout)
    _raise_for_status(response)
    server = response.headers.get("Api-Version")
    if server:
        # docker-py keeps the version in _version; setting it is what its own
        # negotiation does, without the extra round trip.
        api._version = _older(server, DEFAULT_DOCKER_API_VERSION)
    return dict(response.json())


def _raise_for_status(response: Any) -> None:
    import requests
    from docker.errors import create_api_error_from_http_exception

    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as e:
        create_api_error_from_http_exception(e)  # raises the matching docker error


def _older(a: str, b: str) -> str:
    return min(a, b, key=lambda v: tuple(int(x) for x in v.split(".")))


def one_pool(api: Any, size: int) -> None:
    """One connection pool per engine, keeping up to ``size`` connections.

    docker-py's unix-socket and SSH adapters keep a pool per request URL (a container's
    ID makes a new one: about 26 sockets per host); requests' own adapter (tcp) keeps one
    per host and port. Growing the size drops idle connections (they reopen on use).
    """
    adapter = api.get_adapter(api.base_url)
    if hasattr(adapter, "pools") and hasattr(adapter, "max_pool_size"):
        if getattr(adapter, "_launcher_pool", 0) >= size:
            return
        if not getattr(adapter, "_launcher_pool", 0):
            by_url = type(adapter).get_connection
            adapter.get_connection = lambda url, proxies=None: by_url(adapter, "engine",
                                                                      proxies)
        adapter.max_pool_size = size
        adapter._launcher_pool = size
        adapter.pools.clear()
        return
    manager = getattr(adapter, "poolmanager", None)
    if manager is not None and manager.connection_pool_kw.get("maxsize", 0) < size:
        manager.connection_pool_kw["maxsize"] = size
        manager.clear()


def container_logs(api: Any, cid: str,
                   tail: int | None = None) -> Generator[bytes, None, None]:
    """A finished container's stdout and stderr, as they come (with ``tail``, only its
    last lines: the engine reads its log file from the end).

    docker-py's ``logs()`` first inspects the container to learn whether it has a TTY
    (one more round trip per trial); the launcher never gives its containers one, so
    the stream is always multiplexed: 8-byte frame headers (stream, size) and payloads.
    Closing the iterator early closes the response: nothing more is read.
    """
    params = {"stdout": 1, "stderr": 1, "follow": 0, "timestamps": 0,
              "tail": "all" if tail is None else str(tail)}
    response = api.get(f"{api.base_url}/v{api.api_version}/containers/{cid}/logs",
                       params=params, stream=True, timeout=api.timeout)
    try:
        _raise_for_status(response)
        raw = response.raw
        while len(header := raw.read(8)) == 8:
            size = int.from_bytes(header[4:8], "big")
            if size:
                yield raw.read(size)
    finally:
        response.close()


def ping(api: Any, timeout: float | None = None) -> bool:
    """True when the engine answers its /_ping within ``timeout`` [PING_TIMEOUT] seconds
    (a frozen engine accepts the connection and never answers: only a deadline tells)."""
    try:
        return bool(api.get(f"{api.base_url}/_ping",
                            timeout=PING_TIMEOUT if timeout is None else timeout).ok)
    except Exception:  # any failure to answer means no
        return False


def labelled_containers(api: Any, label: str,
                        timeout: float = PING_TIMEOUT) -> list[dict[str, Any]]:
    """Containers (any state) carrying ``label``, listed within ``timeout`` seconds."""
    response = api._get(api._url("/containers/json"), timeout=timeout,
                        params={"all": 1, "filters": json.dumps({"label": [label]})})
    found: list[dict[str, Any]] = api._result(response, True)
    return found


def remove_by_label(api: Any, label: str, *, volumes: bool = True) -> tuple[int, int]:
    """Force-remove containers, then (with ``volumes``) volumes, carrying ``label``;
    return the counts."""
    containers = removed_volumes = 0
    for container in api.containers(all=True, filters={"label": label}):
        try:
            api.remove_container(container["Id"], v=True, force=True)
            containers += 1
        except Exception:  # removed meanwhile by its own trial thread
            continue
    if not volumes:
        return containers, 0
    for volume in (api.volumes(filters={"label": label}) or {}).get("Volumes") or []:
        try:
            api.remove_volume(volume["Name"], force=True)
            removed_volumes += 1
        except Exception:  # still in use by a container being removed
            continue
    return containers, removed_volumes


def short_error(e: BaseException, limit: int = 300, *, kind: bool = False) -> str:
    """An error in one line: the engine's own explanation when it has one; with ``kind``
    the exception's class first (for errors that say little without it)."""
    text = " ".join(str(getattr(e, "explanation", None) or e).split())[:limit]
    if kind:
        return f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text
