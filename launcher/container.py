"""Run ONE trial in ONE container on ONE engine: create, start, wait, collect, remove.

Shared by every backend (the Ray task calls the same :func:`run_trial`), so statuses,
limits, hardening, logs and outputs are identical everywhere. Each step is one engine
call and nothing more: Docker's own work is the floor a fan-out is measured against,
so no inspect is spent unless the exit code needs explaining, and /outputs is copied
only when the sweep asks for outputs.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

from launcher import defaults
from launcher.clock import from_docker, now, seconds_since_docker
from launcher.engine import WAIT_SLICE, container_logs, ping, short_error
from launcher.sections import Resources
from launcher.trial import (
    ENV_PARAMS,
    ENV_SEED,
    ENV_TRIAL_ID,
    HISTORY_KEYS,
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

if TYPE_CHECKING:
    import docker

    from launcher.command import Argv

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
        from docker.types import DeviceRequest, Mount

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
            mounts=mounts or None,
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
    """What a backend needs to stop a running trial from another thread."""

    api: Any
    container_id: str = ""
    cancelled: threading.Event = field(default_factory=threading.Event)
    left: bool = False  # a container of this trial may still be on the engine


def run_trial(api: docker.APIClient, trial: Trial, argv: Argv, settings: ContainerSettings,
              *, host: str, attempt: int = 1, running: Running | None = None) -> TrialResult:
    """Run one trial to the end. Failures are results with a status, never exceptions."""
    result = TrialResult(trial.trial_id, TrialStatus.NOT_STARTED, host=host,
                         image_id=settings.image, attempt=attempt)
    running = running or Running(api)

    def steps() -> None:
        running.left = True  # from here on, until it is removed
        cid = api.create_container(**settings.create_kwargs(api, trial, argv, attempt))["Id"]
        result.container_id = running.container_id = cid
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
    except OutputsTooLarge as e:
        result.status, result.reason = TrialStatus.FAILED, str(e)
    except docker.errors.APIError as e:
        _engine_error(result, e, running)
    except (requests.exceptions.RequestException, OSError) as e:
        unreachable = True  # a removal would wait for the client timeout: teardown does it
        result.status = TrialStatus.CANCELLED if running.cancelled.is_set() else TrialStatus.LOST
        result.reason = f"host {result.host} stopped answering: {type(e).__name__}"
    finally:
        if running.container_id and not unreachable:
            running.left = not _remove(api, running.container_id)
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
