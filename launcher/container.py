"""Run ONE trial in ONE container on ONE engine: create, start, wait, collect, remove.

Shared by every backend (the Ray task calls the same :func:`run_trial`), so statuses,
limits, hardening, logs and outputs are identical everywhere. Each step is one engine
call and nothing more: Docker's own work is the floor a fan-out is measured against,
so no inspect is spent unless the exit code needs explaining, and /outputs is copied
only when the sweep asks for outputs.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import defaults
from launcher.clock import from_docker, now, seconds_since_docker
from launcher.engine import WAIT_SLICE, short_error
from launcher.live import follow, last_values
from launcher.outputs import copy_outputs, metrics_from_tar
from launcher.runtime import HOME, device_requests, tmpfs_options
from launcher.sections import Resources
from launcher.trial import (
    ENV_PARAM_PATH,
    ENV_PARAMS,
    ENV_SEED,
    ENV_TRIAL_ID,
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
from launcher.trial_log import last_error_line, log_config, parse_stdout, read_log

if TYPE_CHECKING:
    import docker

    from launcher.command import Argv

FOLLOW_GRACE = 5.0  # seconds to let a live-line follower read the end of the stream
STOP_MARK = "launcher-"  # + why + "-" + short id: see mark_stopped
KILLED_FROM_OUTSIDE = (128 + 15, 128 + 9)  # SIGTERM, SIGKILL
# A file may outgrow outputs_limit by this much before the kernel refuses the write: it is
# left out of the copy (truncated outputs, the trial keeps its status), while a runaway
# file is stopped long before the engine's disk fills up.
FSIZE_SLACK = 8 * 1024 * 1024
STOPPED_EARLIER = "stopped by the launcher (an earlier one, which exited before recording it)"
STOPPED_EARLY_EARLIER = ("stopped early (early termination) by an earlier launcher, which "
                         "exited before recording it")


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
        from docker.types import Mount, Ulimit

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
            mounts=mounts or None, shm_size=res.shm, log_config=log_config(self.log_limit),
            # No file in the trial may grow far past what would be copied back: the kernel
            # refuses the write (EFBIG) instead of the engine's disk filling up.
            ulimits=[Ulimit(name="fsize", soft=self.file_limit, hard=self.file_limit)]
            if self.outputs else None,
            device_requests=device_requests(devices, res.gpus))
        return {"image": self.image, "command": argv.command, "entrypoint": argv.entrypoint,
                "environment": env, "labels": labels, "user": self.user or "",
                "host_config": host_config, "network_disabled": self.network == "none"}

    @property
    def file_limit(self) -> int:
        """The largest file a trial may write (RLIMIT_FSIZE), see FSIZE_SLACK."""
        return self.outputs_limit + FSIZE_SLACK


class Cancelled(Exception):
    """Raised inside run_trial when the run is being cancelled."""


@dataclass
class Running:
    """What a backend needs to stop a running trial from another thread, to know how
    long it has run (``started``: monotonic seconds, 0 until the container runs), and
    where the trial's live history lines go (early termination)."""

    api: Any
    container_id: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0
    left: bool = False  # a container of this trial may still be on the engine
    kept: bool = False  # its container ended and is left for the caller: see release()
    params_volume: str = ""  # removed after the container
    on_created: Callable[[str], None] | None = None  # told the container's id once it exists
    attempt: int = 1
    on_history: Callable[[list[dict[str, Any]]], None] | None = None
    stop_reason: str = ""  # set when the trial is stopped on purpose (status stopped)


def run_trial(api: docker.APIClient, trial: Trial, argv: Argv, settings: ContainerSettings,
              *, host: str, attempt: int = 1, running: Running | None = None,
              devices: tuple[str, ...] = (), keep: bool = False) -> TrialResult:
    """Run one trial to the end. Failures are results with a status, never exceptions.
    ``devices``: the GPU device IDs of the slot it runs in. With ``keep`` a container
    that ended normally is left for the caller to remove (:func:`release`) once its
    result is recorded (a launcher killed in between finds it again on resume)."""
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
        running.started = time.monotonic()
        follower = follow(api, cid, running.on_history) if running.on_history else None
        exit_code = _wait(api, cid, settings, result, settings.timeout)
        result.duration_s = round(time.monotonic() - started, 3)
        if follower is not None:
            follower.join(FOLLOW_GRACE)  # its stream ends with the container
        result.finished_at = now()
        _finish(api, cid, exit_code, settings, result, running)

    return _guarded(api, result, running, steps, keep)


def adopt_trial(api: docker.APIClient, container: dict[str, Any], trial: Trial,
                settings: ContainerSettings, *, host: str,
                running: Running | None = None, keep: bool = False) -> TrialResult | None:
    """Take over a container of this run found on a host after the launcher was killed:
    wait for it if it runs, then collect (and remove) it exactly like :func:`run_trial`.
    A container that never started is removed and None returned (the trial reruns).
    One that a launcher stopped (its name says why) keeps that reason; one stopped from
    outside (an engine restart) is ``lost`` (see :func:`_classify`)."""
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
    running.started = time.monotonic() - seconds_since_docker(state.get("StartedAt"))

    def steps() -> None:
        left = None
        if settings.timeout is not None:
            left = max(0.0, settings.timeout - seconds_since_docker(state.get("StartedAt")))
        # Its whole history so far, then the new lines: early termination judges it too.
        follower = follow(api, cid, running.on_history) if running.on_history else None
        exit_code = _wait(api, cid, settings, result, left)
        if follower is not None:
            follower.join(FOLLOW_GRACE)
        finished = api.inspect_container(cid)["State"]
        result.finished_at = from_docker(finished.get("FinishedAt"))
        result.duration_s = round(seconds_since_docker(state.get("StartedAt"))
                                  - seconds_since_docker(finished.get("FinishedAt")), 3)
        _finish(api, cid, exit_code, settings, result, running)

    return _guarded(api, result, running, steps, keep)


def _guarded(api: Any, result: TrialResult, running: Running,
             steps: Callable[[], None], keep: bool = False) -> TrialResult:
    """Run ``steps``; turn every known failure into a status; remove the container (with
    ``keep``, only when the steps did not end normally)."""
    import docker.errors
    import requests.exceptions

    unreachable = ended = False
    try:
        steps()
        ended = True
    except Cancelled:
        result.status, result.reason = TrialStatus.CANCELLED, "cancelled before it started"
    except docker.errors.APIError as e:
        _engine_error(result, e, running)
    except (requests.exceptions.RequestException, OSError) as e:
        unreachable = True  # a removal would wait for the client timeout: teardown does it
        result.status = TrialStatus.CANCELLED if running.cancelled.is_set() else TrialStatus.LOST
        result.reason = f"host {result.host} stopped answering: {type(e).__name__}"
    finally:
        if unreachable:
            pass  # a removal would wait for the client timeout: teardown does it
        elif keep and ended:
            running.kept = True
        else:
            running.left = not release(api, running)
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
    mark_stopped(api, cid, TrialStatus.TIMED_OUT)
    api.stop(cid, timeout=int(settings.stop_grace))  # the engine kills after the grace
    result.status = TrialStatus.TIMED_OUT
    return int(api.wait(cid, timeout=60)["StatusCode"])


def _is_read_timeout(e: Exception) -> bool:
    """docker-py reports a read timeout as ReadTimeout, or (unix sockets) ConnectionError."""
    import requests.exceptions

    return isinstance(e, requests.exceptions.ReadTimeout) or (
        isinstance(e, requests.exceptions.ConnectionError) and "timed out" in str(e).lower())


def _collect(api: Any, cid: str, settings: ContainerSettings, result: TrialResult) -> None:
    log, truncated = read_log(api, cid, settings.log_limit)
    result.log = log + (f"\n[launcher: log truncated to {settings.log_limit} bytes: its "
                        "head and tail]\n" if truncated else "")
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
    elif running.stop_reason and exit_code != 0:  # exit 0: it finished before the stop
        result.status, result.reason = TrialStatus.STOPPED, running.stop_reason
        result.metrics = result.metrics or last_values(result.history)
    elif result.status is TrialStatus.TIMED_OUT:
        result.reason = f"exceeded its timeout of {settings.timeout:g}s"
    elif exit_code == 0 and settings.strict_metrics and settings.metric and (
            settings.metric not in result.metrics):
        result.status = TrialStatus.FAILED
        result.reason = missing_metric(settings.metric, result.metrics)
    elif exit_code == 0:
        result.status = TrialStatus.SUCCEEDED
    else:
        _classify_failure(api.inspect_container(cid), exit_code, settings, result)


def _classify_failure(info: dict[str, Any], exit_code: int | None,
                      settings: ContainerSettings, result: TrialResult) -> None:
    """A non-zero exit that this launcher did not cause: the job's failure, an OOM kill,
    a stop by an earlier launcher (its mark in the container's name), or a kill from
    outside (SIGTERM/SIGKILL: an engine restart, `docker stop`): that is no verdict on
    the trial, which is ``lost`` and runs again."""
    stopped_as = stop_mark(str(info.get("Name") or ""))
    if info["State"].get("OOMKilled"):
        result.status = TrialStatus.OOM_KILLED
        result.reason = f"killed: out of memory (limit {settings.resources.memory // 2**20} MiB)"
    elif stopped_as is TrialStatus.CANCELLED:
        result.status = stopped_as
        result.reason = STOPPED_EARLIER
    elif stopped_as is TrialStatus.TIMED_OUT:
        result.status = stopped_as
        result.reason = f"exceeded its timeout of {settings.timeout or 0:g}s"
    elif stopped_as is TrialStatus.STOPPED:
        result.status, result.reason = stopped_as, STOPPED_EARLY_EARLIER
        result.metrics = result.metrics or last_values(result.history)
    elif exit_code in KILLED_FROM_OUTSIDE:
        result.status = TrialStatus.LOST
        result.reason = (f"killed from outside the launcher (exit code {exit_code}: an engine "
                         "restart or a stop by hand); it runs again")
    else:
        result.status = TrialStatus.FAILED
        result.reason = f"exit code {exit_code}: {last_error_line(result.log)}"[:300]


def mark_stopped(api: Any, cid: str, why: TrialStatus) -> None:
    """Say in the container's name why the launcher stops it, before stopping it: a
    launcher that dies meanwhile leaves the reason for the next one (names are the one
    thing of a container that can still change)."""
    with contextlib.suppress(Exception):
        api.rename(cid, f"{STOP_MARK}{why}-{cid[:12]}")


def stop_mark(name: str) -> TrialStatus | None:
    """The reason :func:`mark_stopped` left in a container's name, if any."""
    name = name.lstrip("/")
    for status in (TrialStatus.CANCELLED, TrialStatus.TIMED_OUT, TrialStatus.STOPPED):
        if name.startswith(f"{STOP_MARK}{status}-"):
            return status
    return None


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


def release(api: Any, running: Running) -> bool:
    """Remove a trial's container and its anonymous volumes, then its parameters volume;
    False when something may be left (teardown then looks, by the run's label)."""
    removed = not running.container_id or _remove(api, running.container_id)
    if running.params_volume:
        from launcher.paramsfile import remove_params_volume

        remove_params_volume(api, running.params_volume)
        removed = False  # its removal is not confirmed: teardown looks
    return removed


def _remove(api: Any, cid: str) -> bool:
    """Remove a container and its anonymous volumes; False when that failed."""
    try:
        api.remove_container(cid, v=True, force=True)
    except Exception:  # left for teardown, which finds it by label
        return False
    return True
