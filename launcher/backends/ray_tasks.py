"""What runs inside Ray tasks, on a node: the probe, the trial, the cleanup.

Called by the driver in :mod:`launcher.backends.ray` (see its docstring for the design).
Each function talks to the node's own Docker engine, the one ``docker.from_env()`` finds
in the node's environment, and imports what it needs when it runs, so a worker process
loads no more than it uses. The trial task is :func:`launcher.container.run_trial` plus
what Ray adds: the node's identity, the image brought from the object store under a
per-engine file lock, cancellation, and outputs as bytes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from launcher.engine import (
    API_TIMEOUT,
    NODE_API_TIMEOUT,
    image_id_of,
    remove_by_label,
    short_error,
)
from launcher.trial import LABEL_RUN, Trial, TrialResult, TrialStatus

if TYPE_CHECKING:
    from launcher.command import Argv
    from launcher.container import ContainerSettings

HOST_LABEL = "launcher-host"
IMAGE_MISSING = "ray_image_missing"  # a task's request for the image (never a column)
POLL = 0.5
CHECK_EVERY = 2.0  # seconds between stop checks of a trial that prints no history lines
PUSH_TIMEOUT = 30.0
LOAD_WAIT = 900.0  # how long a task waits for another task's docker load on its node
CHUNK = 1024 * 1024


def node_ip() -> str:
    import ray.util

    api: Any = ray.util
    return str(api.get_node_ip_address())


def this_node() -> dict[str, str]:
    import ray

    context = ray.get_runtime_context()
    label: Any = (context.get_node_labels() or {}).get(HOST_LABEL)
    if isinstance(label, list):  # some Ray versions give lists of values
        label = label[0] if label else None
    address = node_ip()
    return {"node_id": context.get_node_id(), "address": address, "host": str(label or address)}


def probe_node(image_id: str, tag: str) -> dict[str, Any]:
    """What setup needs to know about this node's engine."""
    import docker

    report: dict[str, Any] = {**this_node(), "engine_id": "", "has_image": False,
                              "docker_host": os.environ.get("DOCKER_HOST", ""), "error": ""}
    try:
        client = docker.from_env(timeout=NODE_API_TIMEOUT)
    except Exception as e:
        report["error"] = f"its Docker engine does not answer: {short_error(e, kind=True)}"
        return report
    try:
        report["engine_id"] = str(client.api.info()["ID"])
        report["has_image"] = image_id_of(client.api, image_id) == image_id
        tagged = image_id_of(client.api, tag) if tag else None
        if tagged is not None and tagged != image_id:
            report["error"] = (f"holds a different image under the tag {tag} ({tagged[:19]}, "
                               f"this run uses {image_id[:19]})")
            report["hint"] = f"remove it there (docker rmi {tag}) so that the launcher ships it"
    except Exception as e:
        report["error"] = f"its Docker engine does not answer: {short_error(e, kind=True)}"
    finally:
        client.close()
    return report


# This worker process's client of its node's engine and the images it has seen there.
# A Ray worker process runs many trial tasks one after the other: connecting (and
# checking the image) once per process instead of once per trial saves round trips.
_ENGINE: dict[str, Any] = {}
_IMAGES: set[str] = set()


def _engine_api() -> Any:
    api = _ENGINE.get("api")
    if api is None:
        from launcher.hosts import connect
        from launcher.sections import HostSpec

        host = connect(HostSpec("local", "local", slots=1), timeout=NODE_API_TIMEOUT)
        host.client.api.timeout = API_TIMEOUT
        _ENGINE["api"] = api = host.client.api
    return api


def _forget_engine() -> None:
    api = _ENGINE.pop("api", None)
    _IMAGES.clear()
    if api is not None:
        with contextlib.suppress(Exception):
            api.close()


def trial_task(trial: Trial, argv: Argv, settings: ContainerSettings, attempt: int,
               image_box: list[Any], channel: Any = None) -> tuple[TrialResult, bytes | None]:
    """One trial on this node's engine; outputs come back as bytes. With ``channel`` (a
    :class:`launcher.backends.ray_live.LiveChannel`), its history lines go there live and
    a stop request that comes back stops the container (status stopped)."""
    node = this_node()
    result = TrialResult(trial.trial_id, TrialStatus.LOST, host=node["host"],
                         image_id=settings.image, attempt=attempt)
    try:
        api = _engine_api()
    except Exception as e:
        why = short_error(e, kind=True)
        result.reason = f"node {node['host']}: its Docker engine does not answer: {why}"
    else:
        try:
            problem = "" if settings.image in _IMAGES else \
                _ensure_image(api, settings.image, image_box)
            if problem:
                result.reason = f"node {node['host']}: {problem}"
                result.extra[IMAGE_MISSING] = not image_box
            else:
                _IMAGES.add(settings.image)
                result = _run_cancellable(api, trial, argv, settings, node["host"], attempt,
                                          channel)
                if result.status is TrialStatus.LOST:  # check the engine again next time
                    _forget_engine()
        except Exception as e:  # the engine failed us while checking or loading the image
            result.reason = f"node {node['host']}: {short_error(e, kind=True)}"
            _forget_engine()
    result.extra.update(ray_node_id=node["node_id"], ray_node_address=node["address"])
    outputs = None
    if result.outputs is not None:
        outputs = result.outputs.read()
        result.outputs.close()
        result.outputs = None
    return result, outputs


def _run_cancellable(api: Any, trial: Trial, argv: Argv, settings: ContainerSettings,
                     host: str, attempt: int, channel: Any = None) -> TrialResult:
    """run_trial in a thread; when Ray cancels the task, stop the container like the Docker
    backend does, so the trial ends as ``cancelled`` with its log."""
    import ray

    from launcher.container import Running, run_trial

    running = Running(api, attempt=attempt)
    live = _Live(channel, trial.trial_id, attempt, running, settings) if channel else None
    box: list[TrialResult | BaseException] = []
    # The GPUs Ray gave this task (its num_gpus), so tasks on one node never share one.
    devices = tuple(str(g) for g in ray.get_gpu_ids()) if settings.resources.gpus else ()

    def work() -> None:
        try:
            box.append(run_trial(api, trial, argv, settings, host=host, attempt=attempt,
                                 running=running, devices=devices))
        except BaseException as e:  # run_trial returns failures; anything else is a bug
            box.append(e)

    thread = threading.Thread(target=work, name=f"trial-{trial.trial_id}", daemon=True)
    thread.start()
    context = ray.get_runtime_context()
    while thread.is_alive():
        thread.join(POLL)
        if live is not None and thread.is_alive():
            live.exchange()
        if thread.is_alive() and not running.cancelled.is_set() and context.is_canceled():
            running.cancelled.set()
            if running.container_id:
                with contextlib.suppress(Exception):
                    api.stop(running.container_id, timeout=int(settings.stop_grace))
    if live is not None:
        live.exchange(final=True)  # the lines printed just before the end
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


class _Live:
    """A running trial's side of the live channel: rows up, a stop request down."""

    def __init__(self, channel: Any, trial_id: str, attempt: int, running: Any,
                 settings: ContainerSettings) -> None:
        self.channel, self.trial_id, self.attempt = channel, trial_id, attempt
        self.running, self.grace = running, int(settings.stop_grace)
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._last = time.monotonic()
        running.on_history = self._collect

    def _collect(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows += rows

    def exchange(self, final: bool = False) -> None:
        """Push the rows seen since the last call; stop the container if asked to."""
        import ray

        with self._lock:
            rows, self._rows = self._rows, []
        if not rows and (final or time.monotonic() - self._last < CHECK_EVERY):
            return
        self._last = time.monotonic()
        try:
            reason = ray.get(self.channel.push.remote(self.trial_id, self.attempt, rows),
                             timeout=PUSH_TIMEOUT)
        except Exception:  # the driver is gone or slow: the trial runs on, untouched
            return
        if reason and not final and not self.running.stop_reason and \
                self.running.container_id:
            self.running.stop_reason = reason
            threading.Thread(target=_stop_quietly, daemon=True, args=(
                self.running.api, self.running.container_id, self.grace)).start()


def _stop_quietly(api: Any, container_id: str, grace: int) -> None:
    with contextlib.suppress(Exception):
        api.stop(container_id, timeout=grace)


def _ensure_image(api: Any, image_id: str, image_box: list[Any]) -> str:
    """Empty when the engine holds the image (loaded by this task or another); else why not."""
    import fcntl

    if image_id_of(api, image_id) == image_id:
        return ""
    if not image_box:
        return f"image {image_id[:19]} is missing here; the launcher sends it"
    engine = "".join(c for c in str(api.info()["ID"]) if c.isalnum())
    path = os.path.join(tempfile.gettempdir(),
                        f"launcher-load-{engine[:32]}-{image_id.split(':')[-1][:16]}.lock")
    with open(path, "a") as lock:
        deadline = time.monotonic() + LOAD_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return f"waited {LOAD_WAIT:g}s for another task's docker load"
                time.sleep(POLL)
        if image_id_of(api, image_id) == image_id:
            return ""  # another task loaded it while this one waited
        try:
            _load(api, image_box[0])
        except Exception as e:
            return f"docker load failed: {short_error(e, kind=True)}"
    if image_id_of(api, image_id) != image_id:
        return (f"after docker load the engine does not hold image {image_id[:19]} (it may "
                "rewrite images; check `docker images` there)")
    return ""


def _load(api: Any, ref: Any) -> None:
    """``docker load`` from the object store (read in place, streamed in chunks)."""
    import ray

    view = memoryview(ray.get(ref)).cast("B")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(view), CHUNK):
            yield bytes(view[start:start + CHUNK])

    for status in api.load_image(chunks()):
        if isinstance(status, dict) and status.get("error"):
            raise RuntimeError(str(status["error"]))


def remove_run_containers(run_id: str) -> int:
    """Force-remove this run's containers (and volumes) on this node's engine."""
    import docker

    client = docker.from_env(timeout=60)
    try:
        return remove_labelled(client.api, run_id)
    finally:
        client.close()


def remove_labelled(api: Any, run_id: str) -> int:
    """Remove the run's containers and volumes on this engine; count the containers."""
    return remove_by_label(api, f"{LABEL_RUN}={run_id}")[0]
