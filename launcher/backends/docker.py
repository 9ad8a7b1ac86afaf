"""The Docker backend: fan trials out over Docker hosts.

Concepts: trial = one container; worker = one Docker host (local engine, unix socket,
tcp+TLS, ssh, docker context); slot = one concurrent container on a host (default:
the host's CPUs / the trial's cpus). The image reaches a host by a streamed
save -> load from the engine that built it, once per host, before any trial starts.
One shared queue feeds the slots; each trial goes to the least-loaded healthy host;
a global max_parallel caps the total. A host that stops answering is marked down and
its trials come back as ``lost`` (the caller requeues them); a host that keeps failing
trials while others succeed is quarantined. GPUs: each slot of a host owns its own
device IDs (see :mod:`launcher.gpus`), passed to the engine as a device request. Hosts
left out because they did not answer (``skip_unreachable``) are named in the manifest
and the summary. Per-host work (connecting, checking the image, teardown) runs on a
bounded pool; the CPU model of remote engines is read in the background, once per engine.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import defaults
from launcher.backends.base import AllWorkersLost, Backend, RunContext, Work, WorkQueue
from launcher.backends.placement import Placement
from launcher.container import Running, adopt_trial, run_trial
from launcher.cpumodel import CpuModels
from launcher.engine import ping, remove_by_label
from launcher.errors import HostError
from launcher.hosts import Host
from launcher.image import BuiltImage
from launcher.parallel import each
from launcher.store.manifest import BackendRecord, SkippedHost
from launcher.trial import LABEL_RUN, LABEL_TRIAL, Trial, TrialResult

if TYPE_CHECKING:
    from launcher.spec import SweepSpec

IDLE_POLL = 0.5
CPU_MODEL_WAIT = 10.0  # seconds the final manifest waits for CPU models still being read


@dataclass
class _Slot:
    """One host and the trials running on it (the placement policy keeps the counts)."""

    index: int
    host: Host
    inflight: dict[str, Running] = field(default_factory=dict)
    free_gpus: list[tuple[str, ...]] = field(default_factory=list)  # device groups not in use
    gpus_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # trial -> its group

    def __post_init__(self) -> None:
        self.free_gpus = list(reversed(self.host.gpu_groups))

    def take_gpus(self, trial_id: str) -> tuple[str, ...]:
        """The slot's own GPUs for a starting trial: trials running at once on a host
        never share one (the host's slots are capped by its GPU groups)."""
        devices = self.free_gpus.pop() if self.free_gpus else ()
        self.gpus_of[trial_id] = devices
        return devices

    def give_back_gpus(self, trial_id: str) -> None:
        devices = self.gpus_of.pop(trial_id, ())
        if devices:
            self.free_gpus.append(devices)


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, hosts: list[Host], max_parallel: int | None = None,
                 source: Host | None = None, owns_connections: bool = False,
                 skipped: list[HostError] | None = None) -> None:
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
        self._skipped = list(skipped or [])
        self._notes: list[str] = [f"host {e.host} left out: {e.message}" for e in skipped or []]
        self._notes += [note for h in hosts for note in h.notes]
        self._cpu_models: CpuModels | None = None

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> DockerBackend:
        """Connect every host of the sweep; the image is built on the local engine when
        it is one of them or answers, else on the first host."""
        from launcher.hosts import connect_all, connect_local
        from launcher.limits import check_open_files, files_needed

        check_open_files(files_needed([0] * len(spec.hosts)), f"connecting to "
                         f"{len(spec.hosts)} hosts")
        hosts, skipped = connect_all(spec.hosts, cpus_per_trial=spec.resources.cpus,
                                     max_parallel=spec.max_parallel,
                                     skip_unreachable=spec.skip_unreachable,
                                     gpus_per_trial=spec.resources.gpus,
                                     memory_per_trial=spec.resources.memory)
        try:
            slots = [h.slots for h in hosts] + [1]  # and the build engine
            check_open_files(files_needed(slots, concurrent_trials=min(
                spec.max_parallel or sum(slots), sum(slots)), outputs=spec.outputs),
                f"a run over {len(hosts)} hosts with {sum(slots) - 1} slots")
            builder = next((h for h in hosts if h.spec.url == "local"), None) \
                or connect_local(cpus_per_trial=spec.resources.cpus, required=False) \
                or hosts[0]
        except BaseException:
            for host in hosts:
                host.close()
            raise
        return cls(hosts, spec.max_parallel, builder, owns_connections=True, skipped=skipped)

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
        self._cpu_models = CpuModels(hosts, image.id, run.run_id)
        self._cpu_models.start()  # off the critical path: trials start meanwhile

    def workers(self) -> list[str]:
        return [s.host.name for s in self._slots]

    def describe(self, *, final: bool = False) -> BackendRecord:
        """The hosts (with ``final``, their CPU models, read meanwhile) and the hosts left
        out, for the manifest."""
        if final and self._cpu_models is not None:
            self._cpu_models.finish(CPU_MODEL_WAIT)
        return BackendRecord(self.name, tuple(s.host.describe() for s in self._slots),
                             self._max_parallel, skipped=tuple(
                                 SkippedHost(e.host, e.message) for e in self._skipped))

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
                # Refill the freed slots before the caller spends time recording results
                # (unless a result reached the sweep's target: then nothing new starts).
                queue.settle(finished)
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
            running = Running(slot.host.client.api, on_created=self._observer(work, slot))
            with self._lock:
                slot.inflight[work.trial.trial_id] = running
                devices = slot.take_gpus(work.trial.trial_id)
            inflight[pool.submit(self._run_one, slot, work, running, devices)] = (work, slot)

    def _observer(self, work: Work, slot: _Slot) -> Callable[[str], None] | None:
        """Tells the run context when the attempt's container exists (live views)."""
        observe = self._run.on_container if self._run else None
        return None if observe is None else functools.partial(observe, work, slot.host.name)

    def _run_one(self, slot: _Slot, work: Work, running: Running,
                 devices: tuple[str, ...] = ()) -> TrialResult:
        assert self._run is not None
        try:
            if self._run.on_start:
                self._run.on_start(work, slot.host.name)
            argv = self._run.argv(work.trial)
            return run_trial(slot.host.client.api, work.trial, argv, self._run.settings,
                             host=slot.host.name, attempt=work.attempt, running=running,
                             devices=devices)
        finally:
            with self._lock:
                slot.inflight.pop(work.trial.trial_id, None)
                slot.host.dirty |= running.left

    def _observe(self, slot: _Slot, result: TrialResult) -> None:
        """Tell the placement policy; it marks hosts down or quarantines them."""
        with self._lock:
            slot.give_back_gpus(result.trial_id)
        self._placement.finished(slot.index, result.status, lambda: _answers(slot.host),
                                 result.reason)

    def adopt(self, trials: dict[str, Trial]) -> Iterator[TrialResult]:
        """See Backend.adopt: every container labelled with this run, on every host."""
        assert self._run is not None, "setup() first"
        run = self._run
        healthy = [self._slots[i] for i in self._placement.healthy()]
        listed = each(lambda s: s.host.client.api.containers(
            all=True, filters={"label": f"{LABEL_RUN}={run.run_id}"}), healthy)
        found = []
        for slot, containers in zip(healthy, listed, strict=True):
            if isinstance(containers, BaseException):
                raise containers
            found += [(slot, c) for c in containers]
            slot.host.dirty |= bool(containers)
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
        label = (container.get("Labels") or {}).get(LABEL_TRIAL)
        if label is None:  # not a trial (a CPU-model probe, maybe this run's own, running)
            return None  # teardown removes it by the run's label
        trial = trials.get(label)
        if trial is None:  # a trial this plan does not have: nothing to adopt
            with contextlib.suppress(Exception):  # it may be gone already
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
        """Stop starting trials; stop running containers (grace, then kill), on a bounded
        pool of threads (safe from any thread; returns at once)."""
        self._stopping.set()
        grace = int(self._run.settings.stop_grace if self._run else defaults.STOP_GRACE)
        with self._lock:
            running = [r for s in self._slots for r in s.inflight.values()]
        for r in running:
            r.cancelled.set()
        if running:
            threading.Thread(target=each, args=(lambda r: _stop(r, grace), running),
                             daemon=True, name="stop-trials").start()

    def teardown(self) -> None:
        """Remove every container (and /outputs volume) of this run still on a host, by
        label, at most HOST_WORKERS hosts at once. Only hosts where a container may be
        left are asked (one whose removal failed, or still running): on a clean run of
        1,000 hosts that is none, instead of a round trip or two to each."""
        if self._run is None:
            return
        if self._cpu_models is not None:
            self._cpu_models.stop(CPU_MODEL_WAIT)
        label = f"{LABEL_RUN}={self._run.run_id}"
        volumes = self._run.settings.outputs or self._run.settings.params_file
        with self._lock:
            slots = [s for s in self._slots if (s.host.dirty or s.inflight)
                     and self._placement.answering(s.index)]
        each(lambda s: remove_by_label(s.host.client.api, label, volumes=volumes), slots)


def _answers(host: Host) -> bool:
    return ping(host.client.api)


def _stop(running: Running, grace: int) -> None:
    if not running.container_id:
        return
    with contextlib.suppress(Exception):
        running.api.stop(running.container_id, timeout=grace)
