"""Run ONE trial in ONE container on ONE engine: create, start, wait, collect, remove.

Shared by every backend (the Ray task calls the same :func:`run_trial`), so statuses,
limits, hardening, logs and outputs are identical everywhere. Each step is one engine
call and nothing more: Docker's own work is the floor a fan-out is measured against,
so no inspect is spent unless the exit code needs explaining, and /outputs is copied
only when the sweep asks for outputs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import defaults
from launcher.clock import from_docker, now, seconds_since_docker
from launcher.engine import WAIT_SLICE, container_logs, ping, short_error
from launcher.outputs import copy_outputs, metrics_from_tar
from launcher.runtime import HOME, device_requests, tmpfs_options
from launcher.sections import Resources
from launcher.trial import (
    ENV_PARAM_PATH,
    ENV_PARAMS,
    ENV_SEED,
    ENV_TRIAL_ID,
    HISTORY_KEYS,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_RUN,
    LABEL_SWEEP,
    LABEL_TRIAL,
    OUTPUTS_DIR,
    PARAMS_DIR,
    PARAMS_PATH,
    Trial,
    TrialResult,
    TrialStatus,
    missing_metric,
)

if TYPE_CHECKING:
    import docker

    from launcher.command import Argv

@dataclass(frozen=True)
class ContainerSettings:
    """Everything about a trial's container that is the same for every trial of a run."""

    image: str
    run_id: str
    sweep: str
    env: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    network: str = defaults.NETWORK
    user: str | None = None
    outputs: bool = True
    timeout: float | None = None
    stop_grace: float = defaults.STOP_GRACE
    log_limit: int = defaults.LOG_LIMIT
    outputs_limit: int = defaults.OUTPUTS_LIMIT
    mounts: tuple[tuple[str, str, str], ...] = ()  # (kind, source, target), read-only
    params_file: bool = False  # the command uses ${args_json_file} (see paramsfile.py)
    metric: str | None = None  # the sweep's metric.name
    strict_metrics: bool = False  # a success without ``metric`` is a failed trial

    def labels(self, trial: Trial, attempt: int) -> dict[str, str]:
        return {LABEL_MANAGED: "true", LABEL_RUN: self.run_id, LABEL_SWEEP: self.sweep,
                LABEL_TRIAL: trial.trial_id, LABEL_ATTEMPT: str(attempt)}

    def create_kwargs(self, api: Any, trial: Trial, argv: Argv, attempt: int,
                      params_volume: str = "", devices: tuple[str, ...] = ()) -> dict[str, Any]:
        """Arguments of the engine's container-create call (low-level API); ``devices``:
        the GPUs of the slot the trial runs in."""
        from docker.types import Mount

        env = {**self.env, ENV_TRIAL_ID: trial.trial_id, ENV_SEED: str(trial.seed),
               ENV_PARAMS: json.dumps(trial.nested_params(), ensure_ascii=False)}
        if params_volume:
            env[ENV_PARAM_PATH] = PARAMS_PATH
        res = self.resources
        tmpfs = {"/tmp": tmpfs_options(res.tmp, None), HOME: tmpfs_options(res.tmp, self.user)}
        if not self.outputs:  # nothing to copy back: a tmpfs is cheaper than a volume
            tmpfs[OUTPUTS_DIR] = tmpfs_options(res.tmp, self.user)
        labels = self.labels(trial, attempt)
        mounts = [Mount(target=t, source=s, type=k, read_only=True) for k, s, t in self.mounts]
        if params_volume:
            mounts.append(Mount(PARAMS_DIR, params_volume, type="volume", read_only=True))
        if self.outputs:  # an anonymous volume, labelled so that `launch clean` finds it
            mounts.append(Mount(target=OUTPUTS_DIR, source=None, type="volume",
                                labels=labels))
        host_config = api.create_host_config(
            network_mode=self.network, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], read_only=True, privileged=False,
            tmpfs=tmpfs, mem_limit=res.memory, memswap_limit=res.memory,
            nano_cpus=int(res.cpus * 1e9), pids_limit=res.pids, init=True,
            mounts=mounts or None, shm_size=res.shm,
            device_requests=device_requests(devices, res.gpus))
        return {"image": self.image, "command": argv.command, "entrypoint": argv.entrypoint,
                "environment": env, "labels": labels, "user": self.user or "",
                "host_config": host_config, "network_disabled": self.network == "none"}


class Cancelled(Exception):
    """Raised inside run_trial when the run is being cancelled."""


@dataclass
class Running:
    """What a backend needs to stop a running trial from another thread."""

    api: Any
    container_id: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    left: bool = False  # a container of this trial may still be on the engine
    params_volume: str = ""  # removed after the container
    on_created: Callable[[str], None] | None = None  # told the container's id once it exists


def run_trial(api: docker.APIClient, trial: Trial, argv: Argv, settings: ContainerSettings,
              *, host: str, attempt: int = 1, running: Running | None = None,
              devices: tuple[str, ...] = ()) -> TrialResult:
    """Run one trial to the end. Failures are results with a status, never exceptions.
    ``devices``: the GPU device IDs of the slot it runs in."""
    result = TrialResult(trial.trial_id, TrialStatus.NOT_STARTED, host=host,
                         image_id=settings.image, attempt=attempt)
    running = running or Running(api)

    def steps() -> None:
        running.left = True  # from here on, until it is removed
        if settings.params_file:
            from launcher.paramsfile import create_params_volume

            running.params_volume = create_params_volume(
                api, settings.image, settings.run_id, trial, settings.labels(trial, attempt))
        kwargs = settings.create_kwargs(api, trial, argv, attempt, running.params_volume,
                                        devices)
        cid = api.create_container(**kwargs)["Id"]
        result.container_id = running.container_id = cid
        if running.on_created:
            running.on_created(cid)
        if running.cancelled.is_set():
            raise Cancelled
        result.started_at = now()
        started = time.monotonic()
        api.start(cid)
        exit_code = _wait(api, cid, settings, result, settings.timeout)
        result.duration_s = round(time.monotonic() - started, 3)
        result.finished_at = now()
        _finish(api, cid, exit_code, settings, result, running)

    return _guarded(api, result, running, steps)


def adopt_trial(api: docker.APIClient, container: dict[str, Any], trial: Trial,
                settings: ContainerSettings, *, host: str,
                running: Running | None = None) -> TrialResult | None:
    """Take over a container of this run found on a host after the launcher was killed:
    wait for it if it runs, then collect and remove it exactly like :func:`run_trial`.
    A container that never started is removed and None returned (the trial reruns)."""
    cid = container["Id"]
    attempt = int((container.get("Labels") or {}).get(LABEL_ATTEMPT, "1"))
    result = TrialResult(trial.trial_id, TrialStatus.NOT_STARTED, host=host,
                         image_id=settings.image, attempt=attempt, container_id=cid)
    running = running or Running(api, container_id=cid)
    if settings.params_file:
        from launcher.paramsfile import volume_name

        running.params_volume = volume_name(settings.run_id, trial.trial_id, attempt)
    state = api.inspect_container(cid)["State"]
    if state.get("Status") == "created":
        _remove(api, cid)
        return None
    result.started_at = from_docker(state.get("StartedAt"))

    def steps() -> None:
        left = None
        if settings.timeout is not None:
            left = max(0.0, settings.timeout - seconds_since_docker(state.get("StartedAt")))
        exit_code = _wait(api, cid, settings, result, left)
        finished = api.inspect_container(cid)["State"]
        result.finished_at = from_docker(finished.get("FinishedAt"))
        result.duration_s = round(seconds_since_docker(state.get("StartedAt"))
                                  - seconds_since_docker(finished.get("FinishedAt")), 3)
        _finish(api, cid, exit_code, settings, result, running)

    return _guarded(api, result, running, steps)


def _guarded(api: Any, result: TrialResult, running: Running,
             steps: Callable[[], None]) -> TrialResult:
    """Run ``steps``; turn every known failure into a status; always remove the container."""
    import docker.errors
    import requests.exceptions

    unreachable = False
    try:
        steps()
    except Cancelled:
        result.status, result.reason = TrialStatus.CANCELLED, "cancelled before it started"
    except docker.errors.APIError as e:
        _engine_error(result, e, running)
    except (requests.exceptions.RequestException, OSError) as e:
        unreachable = True  # a removal would wait for the client timeout: teardown does it
        result.status = TrialStatus.CANCELLED if running.cancelled.is_set() else TrialStatus.LOST
        result.reason = f"host {result.host} stopped answering: {type(e).__name__}"
    finally:
        if running.container_id and not unreachable:
            running.left = not _remove(api, running.container_id)
        if running.params_volume and not unreachable:
            from launcher.paramsfile import remove_params_volume

            remove_params_volume(api, running.params_volume)
            running.left = True  # its removal is not confirmed: teardown looks
    return result


def _finish(api: Any, cid: str, exit_code: int, settings: ContainerSettings,
            result: TrialResult, running: Running) -> None:
    _collect(api, cid, settings, result)
    _classify(api, cid, exit_code, settings, result, running)


def _wait(api: Any, cid: str, settings: ContainerSettings, result: TrialResult,
          timeout: float | None) -> int:
    """The exit code; after ``timeout`` the container is stopped, then killed."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        # Long waits are cut into slices: an HTTP read must not outlive the client timeout.
        left = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - time.monotonic())
        if left <= 0:
            break
        try:
            return int(api.wait(cid, timeout=left)["StatusCode"])
        except Exception as e:
            if not _is_read_timeout(e):
                raise
            if not ping(api):  # a frozen engine would keep this wait open for ever
                raise ConnectionError("the engine stopped answering") from e
    api.stop(cid, timeout=int(settings.stop_grace))  # the engine kills after the grace
    result.status = TrialStatus.TIMED_OUT
    return int(api.wait(cid, timeout=60)["StatusCode"])


def _is_read_timeout(e: Exception) -> bool:
    """docker-py reports a read timeout as ReadTimeout, or (unix sockets) ConnectionError."""
    import requests.exceptions

    return isinstance(e, requests.exceptions.ReadTimeout) or (
        isinstance(e, requests.exceptions.ConnectionError) and "timed out" in str(e).lower())


def _collect(api: Any, cid: str, settings: ContainerSettings, result: TrialResult) -> None:
    stream = container_logs(api, cid)
    log, truncated = capped_text(stream, settings.log_limit)
    result.log = log + (f"\n[launcher: log truncated to {settings.log_limit} bytes]\n"
                        if truncated else "")
    result.history, result.metrics = parse_stdout(log)
    if settings.outputs:
        result.outputs, result.outputs_truncated = copy_outputs(api, cid,
                                                                settings.outputs_limit)
        from_file = metrics_from_tar(result.outputs)
        if from_file is not None:
            result.metrics = from_file


def _classify(api: Any, cid: str, exit_code: int | None, settings: ContainerSettings,
              result: TrialResult, running: Running) -> None:
    result.exit_code = exit_code
    if running.cancelled.is_set():
        result.status, result.reason = TrialStatus.CANCELLED, "cancelled while running"
    elif result.status is TrialStatus.TIMED_OUT:
        result.reason = f"exceeded its timeout of {settings.timeout:g}s"
    elif exit_code == 0 and settings.strict_metrics and settings.metric and (
            settings.metric not in result.metrics):
        result.status = TrialStatus.FAILED
        result.reason = missing_metric(settings.metric, result.metrics)
    elif exit_code == 0:
        result.status = TrialStatus.SUCCEEDED
    elif api.inspect_container(cid)["State"].get("OOMKilled"):
        result.status = TrialStatus.OOM_KILLED
        result.reason = f"killed: out of memory (limit {settings.resources.memory // 2**20} MiB)"
    else:
        result.status = TrialStatus.FAILED
        result.reason = f"exit code {exit_code}: {last_error_line(result.log)}"[:300]


def _engine_error(result: TrialResult, e: Exception, running: Running) -> None:
    explanation = short_error(e, 240)
    status_code = getattr(getattr(e, "response", None), "status_code", None) or 0
    if running.cancelled.is_set():
        result.status, result.reason = TrialStatus.CANCELLED, "cancelled"
    elif "could not select device driver" in explanation:  # a 500, but no retry helps
        result.status = TrialStatus.FAILED
        result.reason = (f"host {result.host} cannot give containers GPUs ({explanation}): "
                         "install the NVIDIA container toolkit there, or set resources.gpus: 0")
    elif status_code >= 500 or (status_code == 404 and "No such image" in explanation):
        result.status, result.reason = TrialStatus.LOST, f"engine error: {explanation}"
    else:
        result.status, result.reason = TrialStatus.FAILED, f"engine refused: {explanation}"


def _remove(api: Any, cid: str) -> bool:
    """Remove a container and its anonymous volumes; False when that failed."""
    try:
        api.remove_container(cid, v=True, force=True)
    except Exception:  # left for teardown, which finds it by label
        return False
    return True


def capped_text(chunks: Iterable[bytes], limit: int) -> tuple[str, bool]:
    """Keep the first and last halves of a stream larger than ``limit`` bytes.

    The tail matters most: the final ``{"metrics": ...}`` line is there.
    """
    head, tail = bytearray(), bytearray()
    half = limit // 2
    truncated = False
    for chunk in chunks:
        if len(head) < half:
            take = half - len(head)
            head += chunk[:take]
            chunk = chunk[take:]
        if chunk:
            tail += chunk
            if len(tail) > 2 * half:
                del tail[: len(tail) - half]
                truncated = True
    if len(tail) > half:
        truncated = True
        del tail[: len(tail) - half]
    text = head.decode("utf-8", "replace")
    if truncated:
        text += "\n[...]\n" + tail.decode("utf-8", "replace").split("\n", 1)[-1]
    else:
        text += tail.decode("utf-8", "replace")
    return text, truncated


def parse_stdout(text: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """History lines (JSON with ``step``/``epoch``) and the last ``{"metrics": ...}``."""
    history: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("{") and line.endswith("}")):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if isinstance(obj.get("metrics"), dict):
            metrics = obj["metrics"]
        elif any(k in obj for k in HISTORY_KEYS):
            history.append(obj)
    return history, metrics


def last_error_line(log: str) -> str:
    for line in reversed(log.strip().splitlines()):
        if line.strip() and not line.lstrip().startswith("{"):
            return line.strip()[:200]
    return "no error message"
