"""The Ray backend: one Ray task per trial, the task runs the trial's container on its node.

Concepts
    trial   one Ray task (``num_cpus`` = resources.cpus, ``memory``, ``num_gpus``) that runs
            one container with :func:`launcher.container.run_trial`, the Docker backend's own
            code, so statuses, limits, hardening, logs and outputs are identical. Outputs
            travel back as bytes (already capped by ``outputs_limit``).
    worker  a Ray node with its Docker engine: the one ``docker.from_env()`` finds in the
            node's raylet environment (its ``DOCKER_HOST``, else the default socket).
    slot    a share of a node: Ray runs as many trials at once on a node as its CPUs
            (memory, GPUs) allow for the trial's resources. The launcher keeps at most
            ``max_parallel`` trials in flight, else as many as the cluster's CPUs hold when
            the run starts, and submits the next as one ends (so adaptive search asks when
            a slot frees). Ray places the tasks (SPREAD); the launcher keeps no cluster
            state.
    host    the ``host`` column is the node's ``launcher-host`` label when it has one
            (``ray start --labels launcher-host=NAME``; the embedded Ray is ``local``), else
            the node's IP. The table also gets ``ray_node_id`` and ``ray_node_address``.

How the image gets there
    ``setup`` runs a probe task on every alive node: the engine answers, holds the image or
    not, holds no other image under the run's tag (else HostError). When a node lacks the
    image, the driver ``docker save``s it once from the engine it was built on into Ray's
    object store. The first trial task on such a node ``docker load``s it under an fcntl
    lock keyed by the engine's ID and the image ID; the other tasks there wait for that
    load and find the image. A kernel lock dies with its holder, so a task killed while
    loading never blocks the others (a named actor per node would need its own life cycle
    and dies with its node anyway). The image ID is checked on the node before a container
    starts. A node that joins later and lacks the image makes the driver put it then (once).

Live lines (early termination)
    A task's history lines travel to the driver through one small actor per run
    (:mod:`launcher.backends.ray_live`), which also carries ``stop_trial`` requests back:
    the task stops its container and the trial ends as ``stopped`` with its log and
    history, like on the Docker backend.

Faults and stopping
    Ray retries a task whose node or worker dies (``max_retries``; exceptions raised by the
    task are not retried: trial failures are results anyway). The run store counts a trial
    once even when Ray ran it twice. ``cancel`` cancels the tasks: a running task sees it
    and stops its container like the Docker backend does (grace, then kill); a task that
    does not end in time is force-cancelled. ``teardown`` removes the run's containers on
    every node (a cleanup task per alive node; the engines of dead nodes on this machine
    directly), disconnects, and stops Ray only when it started it (no address given).

Requirements and what is unsupported
    Every node needs a Docker engine and, next to Ray, the Python package ``docker``; the
    launcher's own code travels with the job (a ``py_modules`` runtime env), so nodes run
    exactly the driver's version. What runs on the nodes is in
    :mod:`launcher.backends.ray_tasks`. Bind mounts must exist on every node. The progress
    display learns a trial's node when it ends, so it shows no per-node running counts.
    GPUs are requested (``num_gpus`` and device requests) but untested here; Ray Client
    (``ray://``) addresses are untested here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from launcher.backends.base import Backend, RunContext, Work, WorkQueue
from launcher.backends.ray_live import open_channel
from launcher.backends.ray_tasks import (
    CHUNK,
    HOST_LABEL,
    IMAGE_MISSING,
    POLL,
    node_ip,
    probe_node,
    remove_labelled,
    remove_run_containers,
    trial_task,
)
from launcher.engine import API_TIMEOUT, short_error
from launcher.errors import HostError
from launcher.image import BuiltImage
from launcher.store.manifest import BackendRecord
from launcher.trial import LABEL_RUN, Trial, TrialResult, TrialStatus

if TYPE_CHECKING:
    from launcher.hosts import Host
    from launcher.spec import SweepSpec

EMBEDDED_HOST = "local"
MAX_RETRIES = 3  # Ray's retries of a task whose node or worker died
FORCE_AFTER = 15.0  # seconds past the stop grace before running tasks are force-cancelled
CONNECT_TIMEOUT = 10.0
PROBE_TIMEOUT = 120.0
CLEANUP_TIMEOUT = 60.0


@dataclass(frozen=True)
class _Node:
    """A Ray node as its probe task saw it."""

    node_id: str
    address: str
    host: str
    docker_host: str
    engine_id: str
    has_image: bool

    def describe(self) -> dict[str, Any]:
        return {"name": self.host, "ray_node_id": self.node_id, "address": self.address,
                "docker_host": self.docker_host, "engine_id": self.engine_id}


class RayBackend(Backend):
    name = "ray"

    def __init__(self, address: str | None = None, source: Host | None = None,
                 max_parallel: int | None = None, num_cpus: int | None = None,
                 owns_source: bool = False) -> None:
        self._address = address
        self._source = source
        self._owns_source = owns_source
        self._max_parallel = max_parallel
        self._num_cpus = num_cpus or len(os.sched_getaffinity(0)) or 1
        self._run: RunContext | None = None
        self._image: BuiltImage | None = None
        self._nodes: list[_Node] = []
        self._image_ref: Any = None
        self._connected = False  # this backend called ray.init (and so calls ray.shutdown)
        self._torn_down = False
        self._stopping = threading.Event()
        self._notes: list[str] = []
        self._window = max_parallel or 1
        self._channel: Any = None  # the live-lines actor, when the run wants live lines

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> RayBackend:
        """The sweep's ``ray:`` section: a cluster's address, or an embedded Ray. The
        image is built on the local engine and sent to the nodes that lack it."""
        from launcher.hosts import connect_local

        builder = connect_local(cpus_per_trial=spec.resources.cpus)
        assert builder is not None  # required=True raises instead
        return cls(spec.ray.address, builder, spec.max_parallel, owns_source=True)

    def builder(self) -> Host:
        if self._source is None:
            raise HostError("no local Docker engine to build the image on", host="local")
        return self._source

    def close(self) -> None:
        if self._owns_source and self._source is not None:
            self._source.close()
            self._owns_source = False

    # -- setup -----------------------------------------------------------------------------
    def setup(self, *, image: BuiltImage, run: RunContext) -> None:
        self._image, self._run = image, run
        self._stopping.clear()
        self._torn_down = False
        try:
            self._connect()
            self._window = _window(self._max_parallel, run.settings.resources.cpus,
                                   ahead=not run.asks_as_slots_free)
            self._nodes = self._probe_nodes(image)
            if any(not n.has_image for n in self._nodes):
                self._put_image()
        except BaseException:
            self.teardown()  # nobody else will: the caller's set-up failed
            raise

    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return  # the caller's own connection: use it and leave it open
        where = f"ray {self._address or '(embedded)'}"
        problem = _unreachable(self._address) if self._address else ""
        if problem:  # Ray itself would retry for many minutes
            raise HostError(problem, host=where, hint=_CONNECT_HINT)
        try:
            if self._address:  # the cluster's nodes get this launcher's own code
                ray.init(address=self._address, log_to_driver=False,
                         logging_level=logging.ERROR, runtime_env={"py_modules": [_package()]})
            else:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(address="local", num_cpus=self._num_cpus, include_dashboard=False,
                         labels={HOST_LABEL: EMBEDDED_HOST}, log_to_driver=False,
                         logging_level=logging.ERROR)
        except Exception as e:
            verb, hint = ("connect to", _CONNECT_HINT) if self._address else ("start", _START_HINT)
            why = short_error(e, kind=True)
            if "InvalidAuthToken" in _causes(e):
                why, hint = "the cluster wants its authentication token", _TOKEN_HINT
            raise HostError(f"cannot {verb} Ray: {why}", host=where, hint=hint) from e
        self._connected = True

    def _probe_nodes(self, image: BuiltImage) -> list[_Node]:
        import ray

        alive = _alive_nodes()
        refs = [_on_node(probe_node, node_id).remote(image.id, image.tag) for node_id in alive]
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=PROBE_TIMEOUT)
        nodes = []
        for node_id, ref in zip(alive, refs, strict=True):
            if ref in pending:
                ray.cancel(ref, force=True)
                raise HostError(f"its probe task did not finish within {PROBE_TIMEOUT:g}s",
                                host=f"ray node {node_id[:12]}", hint=_NODE_HINT)
            try:
                report = ray.get(ref)
            except ray.exceptions.RayError as e:
                raise HostError(f"its probe task failed: {short_error(e, kind=True)}",
                                host=f"ray node {node_id[:12]}", hint=_NODE_HINT) from e
            if report["error"]:
                raise HostError(report["error"], host=f"ray node {report['host']}",
                                hint=report.get("hint") or _NODE_HINT)
            nodes.append(_Node(node_id, report["address"], report["host"],
                               report["docker_host"], report["engine_id"], report["has_image"]))
        if not nodes:
            raise HostError("the cluster has no alive node", host=f"ray {self._address}")
        return nodes

    def _put_image(self) -> None:
        """``docker save`` from the engine the image was built on, once, into the object store."""
        import docker
        import numpy as np
        import ray

        if self._image_ref is not None or self._image is None:
            return
        client = self._source.client if self._source else docker.from_env(timeout=API_TIMEOUT)
        data = bytearray()
        try:
            for chunk in client.api.get_image(self._image.tag or self._image.id,
                                              chunk_size=CHUNK):
                data += chunk
        except Exception as e:
            why = short_error(e, kind=True)
            raise HostError(f"cannot save the image to send it to the Ray nodes: {why}",
                            host=self._source.name if self._source else "local") from e
        finally:
            if self._source is None:
                client.close()
        self._image_ref = ray.put(np.frombuffer(data, dtype=np.uint8))

    def workers(self) -> list[str]:
        return list(dict.fromkeys(n.host for n in self._nodes))

    def describe(self, *, final: bool = False) -> BackendRecord:
        import ray

        return BackendRecord(self.name, max_parallel=self._window, ray={
            "address": self._address or "embedded", "version": ray.__version__,
            "nodes": [n.describe() for n in self._nodes]})

    def notes(self) -> list[str]:
        return list(self._notes)

    # -- launch ----------------------------------------------------------------------------
    def launch(self, queue: WorkQueue) -> Iterator[TrialResult]:

        assert self._run is not None, "setup() first"
        if self._run.on_history is not None and self._channel is None:
            self._channel = open_channel()  # the run wants live lines
        inflight: dict[Any, Work] = {}
        cancelled_at: float | None = None
        try:
            while True:
                if not self._stopping.is_set():
                    self._dispatch(queue, inflight)
                elif cancelled_at is None:
                    cancelled_at = time.monotonic()
                    _cancel(inflight, force=False)
                elif time.monotonic() - cancelled_at > self._run.settings.stop_grace + FORCE_AFTER:
                    _cancel(inflight, force=True)
                    cancelled_at = float("inf")  # forced once
                if not inflight:
                    if queue.empty() or self._stopping.is_set():
                        break
                    time.sleep(min(queue.next_due_in() or POLL, POLL))
                    continue
                ready = _ready(list(inflight))
                self._drain_live()  # every poll: live lines flow while nothing finishes
                for ref in ready:
                    yield self._collect(ref, inflight.pop(ref))
        finally:
            _cancel(inflight, force=True)  # only when the caller stopped iterating early
        self._note_lost_nodes()

    def _dispatch(self, queue: WorkQueue, inflight: dict[Any, Work]) -> None:
        while len(inflight) < self._window:
            work = queue.pop_ready()
            if work is None:
                return
            inflight[self._submit(work)] = work

    def _submit(self, work: Work) -> Any:
        assert self._run is not None
        s = self._run.settings
        res = s.resources
        task = _remote(trial_task).options(
            num_cpus=res.cpus, memory=res.memory or None, num_gpus=res.gpus or None,
            max_retries=MAX_RETRIES, retry_exceptions=False, scheduling_strategy="SPREAD",
            name=f"trial-{work.trial.trial_id}")
        box = [] if self._image_ref is None else [self._image_ref]  # a list: never resolved
        return task.remote(work.trial, self._run.argv(work.trial), s, work.attempt, box,
                           self._channel)

    def _drain_live(self) -> None:
        """Hand the history lines the tasks pushed to the run's sink."""
        import ray

        if self._channel is None or self._run is None or self._run.on_history is None:
            return
        try:
            batches = ray.get(self._channel.drain.remote(), timeout=CONNECT_TIMEOUT)
        except ray.exceptions.RayError:
            return  # lines are late, not lost: the next poll drains them
        for trial_id, attempt, rows in batches:
            self._run.on_history(trial_id, attempt, rows)

    def stop_trial(self, trial_id: str, attempt: int, reason: str) -> None:
        """Ask the trial's task (through the live channel) to stop its container."""
        if self._channel is not None:
            self._channel.stop.remote(trial_id, attempt, reason)

    def _collect(self, ref: Any, work: Work) -> TrialResult:
        import ray

        result: TrialResult
        outputs: bytes | None
        try:
            result, outputs = _ray_get(ref)
        except ray.exceptions.TaskCancelledError:
            result = _no_run(work, TrialStatus.CANCELLED, "cancelled before it started")
        except ray.exceptions.RayError as e:
            stopping = self._stopping.is_set()
            result = _no_run(work, TrialStatus.CANCELLED if stopping else TrialStatus.LOST,
                             f"Ray lost the task: {short_error(e, kind=True)}")
        else:
            if outputs is not None:
                result.outputs = io.BytesIO(outputs)
        result.queued_at = work.queued_at
        if result.extra.pop(IMAGE_MISSING, False):
            self._put_image()  # a node that joined after setup; the runner requeues the trial
        assert self._run is not None
        if self._run.on_start:  # Ray tells where a task ran only when it ends
            self._run.on_start(work, result.host)
        return result

    def _note_lost_nodes(self) -> None:
        alive = set(_alive_nodes())
        for node in self._nodes:
            note = f"Ray node {node.host} ({node.node_id[:12]}) left the cluster during the run"
            if node.node_id not in alive and note not in self._notes:
                self._notes.append(note)

    def adopt(self, trials: dict[str, Trial], recorded: Iterable[str] = ()) -> set[str]:
        """Nothing to adopt: a container outlives its task only when the launcher died, and
        then Ray ended the task. The run's leftovers are removed before trials run again."""
        assert self._run is not None, "setup() first"
        self._remove_containers(self._run.run_id)
        return set()

    # -- stopping --------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop submitting; the launch loop cancels the tasks in flight (safe from any thread)."""
        self._stopping.set()

    def teardown(self) -> None:
        """Remove the run's containers everywhere, disconnect, stop an embedded Ray. Idempotent."""
        import ray

        if self._run is not None and not self._torn_down and ray.is_initialized():
            self._torn_down = True
            self._remove_containers(self._run.run_id)
            if self._channel is not None:
                with contextlib.suppress(Exception):
                    ray.kill(self._channel)
        self._channel = None
        self._image_ref = None
        if self._connected:
            self._connected = False
            ray.shutdown()  # a cluster we connected to keeps running: this only disconnects

    def _remove_containers(self, run_id: str) -> None:
        import ray

        alive = _alive_nodes()
        refs = [_on_node(remove_run_containers, node_id).remote(run_id) for node_id in alive]
        _, pending = ray.wait(refs, num_returns=len(refs), timeout=CLEANUP_TIMEOUT)
        for ref in pending:
            ray.cancel(ref, force=True)
        for node in self._nodes:
            if node.node_id not in alive and not _remove_on_dead_node(node, run_id):
                self._notes.append(
                    f"Ray node {node.host} died; containers labelled {LABEL_RUN}={run_id} "
                    f"may be left on its engine (remove them there with `docker rm -f`)")
        if pending:
            self._notes.append(f"{len(pending)} node(s) did not confirm the removal of this "
                               "run's containers in time")


_CONNECT_HINT = ("check the address and that the cluster runs (`ray status --address ADDRESS`); "
                 "a cluster with token authentication needs RAY_AUTH_MODE=token and its token "
                 "in ~/.ray/auth_token or RAY_AUTH_TOKEN")
_TOKEN_HINT = ("run with RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token or "
               "RAY_AUTH_TOKEN (`ray get-auth-token` on the head prints it)")
_START_HINT = "see the logs under /tmp/ray/session_latest/logs, or give a cluster address"
_NODE_HINT = ("every Ray node needs a Docker engine (its DOCKER_HOST or the default socket) and "
              "the Python package docker")


def _package() -> str:
    """The folder of the launcher package (shipped to a cluster's nodes)."""
    import launcher

    return os.path.dirname(os.path.abspath(launcher.__file__))


def _alive_nodes() -> list[str]:
    """IDs of the cluster's alive nodes."""
    import ray

    api: Any = ray  # ray.nodes() is untyped
    return [str(n["NodeID"]) for n in api.nodes() if n.get("Alive")]


def _ready(refs: list[Any]) -> list[Any]:
    """The refs that are done: waits up to POLL for one, then takes all that are done
    (each call looks at the bounded window of refs in flight, never at every trial)."""
    import ray

    ready, rest = ray.wait(refs, num_returns=1, timeout=POLL)
    if ready and rest:
        more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
        ready += more
    return list(ready)


def _window(max_parallel: int | None, cpus: float, *, ahead: bool = True) -> int:
    """Trials in flight: ``max_parallel``, else what the cluster's CPUs can run at once
    plus a quarter (so that a freed CPU finds its next task already queued in Ray);
    without ``ahead`` (adaptive search, whose next trial depends on the results) the
    slots alone."""
    import ray

    if max_parallel:
        return max_parallel
    api: Any = ray  # ray.cluster_resources() is untyped
    slots = max(1, int(float(api.cluster_resources().get("CPU", 1)) // max(cpus, 0.01)))
    return slots + max(2, slots // 4) if ahead else slots


def _ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


def _unreachable(address: str) -> str:
    """Why nothing answers at a ``[ray://]HOST:PORT`` address; empty when something does
    (or the address is ``auto``, which Ray resolves and checks itself)."""
    import socket

    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return ""
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as e:
        return f"nothing answers at {host}:{port} ({e.strerror or type(e).__name__})"
    return ""


def _causes(e: BaseException | None) -> str:
    """The text of an exception and of everything it was raised from."""
    text = ""
    for _ in range(10):  # chains are short; a bound keeps a cycle harmless
        if e is None:
            break
        text, e = f"{text} {e}", e.__cause__ or e.__context__
    return text


@functools.cache
def _remote(fn: Any) -> Any:
    """One Ray remote function per task function (Ray exports it once per job)."""
    import ray

    return ray.remote(fn)


def _on_node(fn: Any, node_id: str) -> Any:
    """``fn`` as a small Ray task pinned to one node (no CPU needed)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return _remote(fn).options(num_cpus=0, max_retries=0, scheduling_strategy=(
        NodeAffinitySchedulingStrategy(node_id, soft=False)))


def _cancel(inflight: dict[Any, Work], *, force: bool) -> None:
    import ray

    for ref in inflight:
        with contextlib.suppress(Exception):
            ray.cancel(ref, force=force)


def _no_run(work: Work, status: TrialStatus, reason: str) -> TrialResult:
    return TrialResult(work.trial.trial_id, status, reason, attempt=work.attempt)


def _remove_on_dead_node(node: _Node, run_id: str) -> bool:
    """A dead node's engine, reached from here when it is a socket of this machine and
    still the same engine. False when it cannot be reached."""
    import docker

    url = node.docker_host or "unix:///var/run/docker.sock"
    here = node_ip()
    if node.address != here or not url.startswith("unix://") or not os.path.exists(url[7:]):
        return False
    try:
        client = docker.DockerClient(base_url=url, timeout=30)
    except Exception:
        return False
    try:
        if str(client.api.info()["ID"]) != node.engine_id:
            return False
        remove_labelled(client.api, run_id)
        return True
    except Exception:
        return False
    finally:
        client.close()
