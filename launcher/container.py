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
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from launcher import defaults
from launcher.clock import from_docker, now, seconds_since_docker
from launcher.engine import WAIT_SLICE, short_error
from launcher.sections import Resources
from launcher.trial import (
    ENV_PARAMS,
    ENV_SEED,
    ENV_TRIAL_ID,
    LABEL_ATTEMPT,
    LABEL_MANAGED,
    LABEL_RUN,
    LABEL_SWEEP,
    LABEL_TRIAL,
    METRICS_FILE,
    OUTPUTS_DIR,
    Trial,
    TrialResult,
    TrialStatus,
)
from launcher.trial_log import last_error_line, log_config, parse_stdout, read_log

if TYPE_CHECKING:
    import docker

    from launcher.command import Argv

STOP_MARK = "launcher-"  # + why + "-" + short id: see mark_stopped
KILLED_FROM_OUTSIDE = (128 + 15, 128 + 9)  # SIGTERM, SIGKILL
SPOOL_BYTES = 8 * 1024 * 1024  # outputs larger than this are spooled to disk
TMPFS = f"rw,nosuid,nodev,size={defaults.TMP_SIZE}"


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

    def create_kwargs(self, api: Any, trial: Trial, argv: Argv, attempt: int) -> dict[str, Any]:
        """Arguments of the engine's container-create call (low-level API)."""
        from docker.types import DeviceRequest, Mount, Ulimit

        env = {**self.env, ENV_TRIAL_ID: trial.trial_id, ENV_SEED: str(trial.seed),
               ENV_PARAMS: json.dumps(trial.nested_params(), ensure_ascii=False)}
        tmpfs = {"/tmp": TMPFS}
        if not self.outputs:  # nothing to copy back: a tmpfs is cheaper than a volume
            tmpfs[OUTPUTS_DIR] = TMPFS + self._tmpfs_owner()
        labels = {LABEL_MANAGED: "true", LABEL_RUN: self.run_id, LABEL_SWEEP: self.sweep,
                  LABEL_TRIAL: trial.trial_id, LABEL_ATTEMPT: str(attempt)}
        mounts = [Mount(target=t, source=s, type=k, read_only=True) for k, s, t in self.mounts]
        res = self.resources
        if self.outputs:  # an anonymous volume, labelled so that `launch clean` finds it
            mounts.append(Mount(target=OUTPUTS_DIR, source=None, type="volume",
                                labels=labels))
        host_config = api.create_host_config(
            network_mode=self.network, cap_drop=["ALL"],
            security_opt=["no-new-privileges"], read_only=True, privileged=False,
            tmpfs=tmpfs, mem_limit=res.memory, memswap_limit=res.memory,
            nano_cpus=int(res.cpus * 1e9), pids_limit=res.pids, init=True,
            mounts=mounts or None, log_config=log_config(self.log_limit),
            # No file in the trial may grow past what would be copied back: the kernel
            # refuses the write (EFBIG) instead of the engine's disk filling up.
            ulimits=[Ulimit(name="fsize", soft=self.outputs_limit, hard=self.outputs_limit)]
            if self.outputs else None,
            device_requests=[DeviceRequest(count=res.gpus, capabilities=[["gpu"]])]
            if res.gpus else None)
        return {"image": self.image, "command": argv.command, "entrypoint": argv.entrypoint,
                "environment": env, "labels": labels, "user": self.user or "",
                "host_config": host_config, "network_disabled": self.network == "none"}


    def _tmpfs_owner(self) -> str:
        """A tmpfs over the image's /outputs keeps the folder's mode but not its owner
        (engine copy-up), so it is given to the container's numeric user explicitly."""
        uid, _, gid = (self.user or "").partition(":")
        if uid.isdigit():
            return f",uid={uid},gid={gid if gid.isdigit() else uid}"
        return ",mode=1777"


class Cancelled(Exception):
    """Raised inside run_trial when the run is being cancelled."""


@dataclass
class Running:
    """What a backend needs to stop a running trial from another thread, and to know how
    long it has run (``started``: monotonic seconds, 0 until the container runs)."""

    api: Any
    container_id: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0


def run_trial(api: docker.APIClient, trial: Trial, argv: Argv, settings: ContainerSettings,
              *, host: str, attempt: int = 1, running: Running | None = None,
              keep: bool = False) -> TrialResult:
    """Run one trial to the end. Failures are results with a status, never exceptions.
    With ``keep`` a container that ended normally is left for the caller to remove once
    its result is recorded (a launcher killed in between finds it again on resume)."""
    result = TrialResult(trial.trial_id, TrialStatus.NOT_STARTED, host=host,
                         image_id=settings.image, attempt=attempt)
    running = running or Running(api)

    def steps() -> None:
        cid = api.create_container(**settings.create_kwargs(api, trial, argv, attempt))["Id"]
        result.container_id = running.container_id = cid
        if running.cancelled.is_set():
            raise Cancelled
        result.started_at = now()
        started = time.monotonic()
        api.start(cid)
        running.started = time.monotonic()
        exit_code = _wait(api, cid, settings, result, settings.timeout)
        result.duration_s = round(time.monotonic() - started, 3)
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
        exit_code = _wait(api, cid, settings, result, left)
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

    ended = False
    try:
        steps()
        ended = True
    except Cancelled:
        result.status, result.reason = TrialStatus.CANCELLED, "cancelled before it started"
    except OutputsTooLarge as e:
        result.status, result.reason = TrialStatus.FAILED, str(e)
    except docker.errors.APIError as e:
        _engine_error(result, e, running)
    except (requests.exceptions.RequestException, OSError) as e:
        result.status = TrialStatus.CANCELLED if running.cancelled.is_set() else TrialStatus.LOST
        result.reason = f"host {result.host} stopped answering: {type(e).__name__}"
    finally:
        if running.container_id and not (keep and ended):
            _remove(api, running.container_id)
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
        result.outputs = _copy_outputs(api, cid, settings.outputs_limit)
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
        result.status, result.reason = stopped_as, "cancelled by an earlier launcher"
    elif stopped_as is TrialStatus.TIMED_OUT:
        result.status = stopped_as
        result.reason = f"exceeded its timeout of {settings.timeout or 0:g}s"
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
    for status in (TrialStatus.CANCELLED, TrialStatus.TIMED_OUT):
        if name.startswith(f"{STOP_MARK}{status}-"):
            return status
    return None


def _engine_error(result: TrialResult, e: Exception, running: Running) -> None:
    explanation = short_error(e, 240)
    status_code = getattr(getattr(e, "response", None), "status_code", None) or 0
    if running.cancelled.is_set():
        result.status, result.reason = TrialStatus.CANCELLED, "cancelled"
    elif status_code >= 500 or (status_code == 404 and "No such image" in explanation):
        result.status, result.reason = TrialStatus.LOST, f"engine error: {explanation}"
    else:
        result.status, result.reason = TrialStatus.FAILED, f"engine refused: {explanation}"


def _remove(api: Any, cid: str) -> None:
    with contextlib.suppress(Exception):
        api.remove_container(cid, v=True, force=True)


def _copy_outputs(api: Any, cid: str, limit: int) -> IO[bytes] | None:
    """/outputs as a tar stream (spooled to disk when large), up to ``limit`` bytes."""
    import docker.errors

    try:
        stream, _ = api.get_archive(cid, OUTPUTS_DIR)
    except docker.errors.NotFound:
        return None
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - returned
    size = 0
    for chunk in stream:
        size += len(chunk)
        if size > limit:
            spool.close()
            raise OutputsTooLarge(limit)
        spool.write(chunk)
    spool.seek(0)
    return spool


class OutputsTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"/outputs is larger than outputs_limit ({limit} bytes)")


def metrics_from_tar(tar_stream: IO[bytes] | None) -> dict[str, Any] | None:
    """The metrics in /outputs/metrics.json of a get_archive tar, if there is one."""
    import tarfile

    if tar_stream is None:
        return None
    try:
        with tarfile.open(fileobj=tar_stream, mode="r|") as tar:
            for member in tar:
                if member.isfile() and member.name.split("/", 1)[-1] == METRICS_FILE:
                    f = tar.extractfile(member)
                    data = json.loads(f.read()) if f else None
                    return data if isinstance(data, dict) else None
    except (tarfile.TarError, ValueError):
        return None
    finally:
        tar_stream.seek(0)
    return None
