"""The Docker backend: fan trials out over Docker hosts.

Concepts: trial = one container; worker = one Docker host (local engine, unix socket,
tcp+TLS, ssh, docker context); slot = one concurrent container on a host (default:
the host's CPUs / the trial's cpus). The image reaches a host by a streamed
save -> load from the engine that built it, once per host, before any trial starts.
One shared queue feeds the slots; each trial goes to the least-loaded healthy host;
a global max_parallel caps the total. A host that stops answering is marked down and
its trials come back as ``lost`` (the caller requeues them); a host that keeps failing
trials while others succeed is quarantined. Unsupported: GPUs are requested from the
engine (device requests) but untested here.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import defaults
from launcher.backends.base import AllWorkersLost, Backend, RunContext, Work, WorkQueue
from launcher.backends.placement import Placement
from launcher.container import Running, adopt_trial, run_trial
from launcher.engine import remove_by_label
from launcher.hosts import Host, probe_cpu_model
from launcher.image import BuiltImage
from launcher.store.manifest import BackendRecord
from launcher.trial import LABEL_RUN, LABEL_TRIAL, Trial, TrialResult

if TYPE_CHECKING:
    from launcher.spec import SweepSpec

IDLE_POLL = 0.5


@dataclass
class _Slot:
    """One host and the trials running on it (the placement policy keeps the counts)."""

    index: int
    host: Host
    inflight: dict[str, Running] = field(default_factory=dict)


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, hosts: list[Host], max_parallel: int | None = None,
                 source: Host | None = None, owns_connections: bool = False) -> None:
        self._slots = [_Slot(i, h) for i, h in enumerate(hosts)]
        self._placement = Placement([(h.name, h.slots) for h in hosts])
        self._source = source or hosts[0]
        self._owned = [*hosts, *([source] if source and source not in hosts else [])] \
            if owns_connections else []
        self._max_parallel = max_parallel or sum(h.slots for h in hosts)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._run: RunContext | None = None
        self._image: BuiltImage | None = None
        self._notes: list[str] = []

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> DockerBackend:
        """Connect every host of the sweep; the image is built on the local engine when
        it is one of them or answers, else on the first host."""
        from launcher.hostcheck import check_resources_fit
        from launcher.hosts import connect_all, connect_local

        hosts = connect_all(spec.hosts, cpus_per_trial=spec.resources.cpus,
                            max_parallel=spec.max_parallel)
        try:
            check_resources_fit(hosts, spec)
            builder = next((h for h in hosts if h.spec.url == "local"), None) \
                or connect_local(cpus_per_trial=spec.resources.cpus, required=False) \
                or hosts[0]
        except BaseException:
            for host in hosts:
                host.close()
            raise
        return cls(hosts, spec.max_parallel, builder, owns_connections=True)

    def builder(self) -> Host:
        return self._source

    def close(self) -> None:
        for host in self._owned:
            host.close()
        self._owned = []

    # -- setup -----------------------------------------------------------------------------
    def setup(self, *, image: BuiltImage, run: RunContext) -> None:
        from launcher.shipping import ensure_image_on_hosts

        self._image, self._run = image, run
        hosts = [s.host for s in self._slots]
        ensure_image_on_hosts(image, self._source, hosts)
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            list(pool.map(lambda h: probe_cpu_model(h, image.id), hosts))

    def workers(self) -> list[str]:
        return [s.host.name for s in self._slots]

    def describe(self) -> BackendRecord:
        return BackendRecord(self.name, tuple(s.host.describe() for s in self._slots),
                             self._max_parallel)

    def notes(self) -> list[str]:
        return [*self._placement.notes, *self._notes]

    # -- launch ----------------------------------------------------------------------------
    def launch(self, queue: WorkQueue) -> Iterator[TrialResult]:
        assert self._run is not None, "setup() first"
        inflight: dict[Future[TrialResult], tuple[Work, _Slot]] = {}
        with ThreadPoolExecutor(max_workers=self._max_parallel,
                                thread_name_prefix="trial") as pool:
            while True:
                self._dispatch(queue, pool, inflight)
                if not inflight:
                    if queue.empty() or self._stopping.is_set():
                        return
                    if not self._placement.healthy():
                        raise AllWorkersLost(self._placement.down_summary())
                    time.sleep(min(queue.next_due_in() or IDLE_POLL, IDLE_POLL))
                    continue
                done, _ = wait(inflight, timeout=IDLE_POLL, return_when=FIRST_COMPLETED)
                finished = []
                for future in done:
                    work, slot = inflight.pop(future)
                    result = future.result()
                    result.queued_at = work.queued_at
                    self._observe(slot, result)
                    finished.append(result)
                # Refill the freed slots before the caller spends time recording results.
                self._dispatch(queue, pool, inflight)
                yield from finished

    def _dispatch(self, queue: WorkQueue, pool: ThreadPoolExecutor,
                  inflight: dict[Future[TrialResult], tuple[Work, _Slot]]) -> None:
        while not self._stopping.is_set() and len(inflight) < self._max_parallel:
            index = self._placement.pick()
            if index is None:
                return
            work = queue.pop_ready()
            if work is None:
                return
            slot = self._slots[index]
            self._placement.started(index)
            running = Running(slot.host.client.api)
            with self._lock:
                slot.inflight[work.trial.trial_id] = running
            inflight[pool.submit(self._run_one, slot, work, running)] = (work, slot)

    def _run_one(self, slot: _Slot, work: Work, running: Running) -> TrialResult:
        assert self._run is not None
        try:
            if self._run.on_start:
                self._run.on_start(work, slot.host.name)
            argv = self._run.argv(work.trial)
            return run_trial(slot.host.client.api, work.trial, argv, self._run.settings,
                             host=slot.host.name, attempt=work.attempt, running=running)
        finally:
            with self._lock:
                slot.inflight.pop(work.trial.trial_id, None)

    def _observe(self, slot: _Slot, result: TrialResult) -> None:
        """Tell the placement policy; it marks hosts down or quarantines them."""
        self._placement.finished(slot.index, result.status, lambda: _answers(slot.host),
                                 result.reason)

    def adopt(self, trials: dict[str, Trial]) -> Iterator[TrialResult]:
        """See Backend.adopt: every container labelled with this run, on every host."""
        assert self._run is not None, "setup() first"
        run = self._run
        healthy = [self._slots[i] for i in self._placement.healthy()]
        found = [(slot, c) for slot in healthy for c in slot.host.client.api.containers(
            all=True, filters={"label": f"{LABEL_RUN}={run.run_id}"})]
        if not found:
            return
        with ThreadPoolExecutor(max_workers=min(len(found), 16)) as pool:
            futures = [pool.submit(self._adopt_one, slot, c, trials) for slot, c in found]
            for future in as_completed(futures):
                result = future.result()
                if result is not None:
                    yield result

    def _adopt_one(self, slot: _Slot, container: dict[str, Any],
                   trials: dict[str, Trial]) -> TrialResult | None:
        assert self._run is not None
        api = slot.host.client.api
        trial = trials.get((container.get("Labels") or {}).get(LABEL_TRIAL, ""))
        if trial is None:  # not a trial of this plan: nothing to adopt
            api.remove_container(container["Id"], v=True, force=True)
            return None
        running = Running(api, container_id=container["Id"])
        with self._lock:
            slot.inflight[trial.trial_id] = running
        try:
            return adopt_trial(api, container, trial, self._run.settings,
                               host=slot.host.name, running=running)
        finally:
            with self._lock:
                slot.inflight.pop(trial.trial_id, None)

    # -- stopping --------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop starting trials; stop running containers (grace, then kill)."""
        self._stopping.set()
        grace = int(self._run.settings.stop_grace if self._run else defaults.STOP_GRACE)
        with self._lock:
            running = [r for s in self._slots for r in s.inflight.values()]
        for r in running:
            r.cancelled.set()
            threading.Thread(target=_stop, args=(r, grace), daemon=True).start()

    def teardown(self) -> None:
        """Remove every container of this run that is still on a host (by label)."""
        if self._run is None:
            return
        for slot in self._slots:
            if not self._placement.answering(slot.index):
                continue
            remove_by_label(slot.host.client.api, f"{LABEL_RUN}={self._run.run_id}")


def _answers(host: Host) -> bool:
    try:
        host.client.api.ping()
        return True
    except Exception:  # any failure to answer means down
        return False


def _stop(running: Running, grace: int) -> None:
    if not running.container_id:
        return
    with contextlib.suppress(Exception):
        running.api.stop(running.container_id, timeout=grace)
