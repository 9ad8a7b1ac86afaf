"""The Docker backend: fan trials out over Docker hosts.

Concepts: trial = one container; worker = one Docker host (local engine, unix socket,
tcp+TLS, ssh, docker context); slot = one concurrent container on a host (default:
the host's CPUs / the trial's cpus). The image reaches a host by a streamed
save -> load from the engine that built it, once per host, before any trial starts.
One shared queue feeds the slots; each trial goes to the least-loaded healthy host;
a global max_parallel caps the total. A host that stops answering (a failed call, or no
answer to the pings of :class:`~launcher.backends.watch.HostWatch`: a frozen engine) is
marked down and its trials come back as ``lost`` at once (the caller requeues them); a
host that keeps failing trials while others succeed is quarantined. A finished trial's
container is removed only after its result is recorded, so a launcher killed in between
finds it again on resume (adoption, inside the run loop: new trials start beside adopted
ones). GPUs: each slot of a host owns its own device IDs (see :mod:`launcher.gpus`),
passed to the engine as a device request. Hosts left out because they did not answer
(``skip_unreachable``) are named in the manifest and the summary. Per-host work
(connecting, checking the image, teardown) runs on a bounded pool; the CPU model of
remote engines is read in the background, once per engine. Live
history lines (when the run asks for them): one follower thread per running container
reads its log stream from the engine. ``stop_trial`` stops one container (grace, then
kill); it ends as ``stopped``.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from launcher import defaults
from launcher.backends.base import AllWorkersLost, Backend, RunContext, Work, WorkQueue
from launcher.backends.placement import Placement
from launcher.backends.slots import Container, Inflight, Slot, attempt_of, choose_leftovers
from launcher.backends.watch import HostWatch, overdue
from launcher.container import Running, adopt_trial, mark_stopped, release, run_trial
from launcher.cpumodel import CpuModels
from launcher.engine import labelled_containers, ping, remove_by_label, short_error
from launcher.errors import HostError
from launcher.hosts import Host
from launcher.image import BuiltImage
from launcher.parallel import each
from launcher.store.manifest import BackendRecord, SkippedHost
from launcher.trial import LABEL_RUN, Trial, TrialResult, TrialStatus

if TYPE_CHECKING:
    from launcher.spec import SweepSpec

IDLE_POLL = 0.5
CPU_MODEL_WAIT = 10.0  # seconds the final manifest waits for CPU models still being read


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, hosts: list[Host], max_parallel: int | None = None,
                 source: Host | None = None, owns_connections: bool = False,
                 skipped: list[HostError] | None = None) -> None:
        self._slots = [Slot(i, h) for i, h in enumerate(hosts)]
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
        self._adopted: list[tuple[Slot, Container, Trial, Running]] = []
        self._cancelled_at: float | None = None

    @classmethod
    def from_spec(cls, spec: SweepSpec) -> DockerBackend:
        """Connect every host of the sweep; the image is built on the local engine when
        it is one of them or answers, else on the first host."""
        from launcher.hostcheck import check_resources_fit
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
            check_resources_fit(hosts, spec)
            slots = [h.slots for h in hosts] + [1]  # and the build engine
            check_open_files(files_needed(slots, concurrent_trials=min(
                spec.max_parallel or sum(slots), sum(slots)), outputs=spec.outputs,
                live_lines=spec.early_terminate is not None),
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

    def hosts(self) -> list[Host]:
        return [s.host for s in self._slots]

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
        """See Backend.launch. Adopted containers come back like any other trial; a trial
        on a host that stops answering, or far past its timeout, is given up (lost or
        timed out) without waiting for its engine."""
        assert self._run is not None, "setup() first"
        inflight: dict[Future[TrialResult], Inflight] = {}
        pool = ThreadPoolExecutor(max_workers=self._pool_size(), thread_name_prefix="trial")
        watch = HostWatch([s.host.client.api for s in self._slots],
                          busy=lambda i: bool(self._slots[i].inflight)).start()
        try:
            self._submit_adopted(pool, inflight)
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
                finished = [self._finished(f.result(), inflight.pop(f)) for f in done]
                finished += self._give_up(inflight, watch.silent())
                # Refill the freed slots before the caller spends time recording results
                # (unless a result reached the sweep's target: then nothing new starts).
                queue.settle([result for result, _ in finished])
                self._dispatch(queue, pool, inflight)
                for result, entry in finished:
                    yield result
                    self._release(pool, entry)  # recorded: the container can go
        finally:
            watch.stop()
            pool.shutdown(wait=False)

    def _pool_size(self) -> int:
        """Threads for trials, plus room for trials given up on a silent host (their
        threads end only when the engine's calls time out) and for adopted ones."""
        return self._max_parallel + sum(s.host.slots for s in self._slots) + \
            len(self._adopted) + 4

    def _dispatch(self, queue: WorkQueue, pool: ThreadPoolExecutor,
                  inflight: dict[Future[TrialResult], Inflight]) -> None:
        while not self._stopping.is_set() and len(inflight) < self._max_parallel:
            index = self._placement.pick()
            if index is None:
                return
            work = queue.pop_ready()
            if work is None:
                return
            slot = self._slots[index]
            self._placement.started(index)
            running = Running(slot.host.client.api, on_created=self._observer(work, slot),
                              attempt=work.attempt)
            sink = self._run.on_history if self._run else None
            if sink is not None:
                running.on_history = functools.partial(sink, work.trial.trial_id,
                                                       work.attempt)
            with self._lock:
                slot.inflight[work.trial.trial_id] = running
                devices = slot.take_gpus(work.trial.trial_id)
            future = pool.submit(self._run_one, slot, work, running, devices)
            inflight[future] = Inflight(work, slot, running)

    def _observer(self, work: Work, slot: Slot) -> Callable[[str], None] | None:
        """Tells the run context when the attempt's container exists (live views)."""
        observe = self._run.on_container if self._run else None
        return None if observe is None else functools.partial(observe, work, slot.host.name)

    def _run_one(self, slot: Slot, work: Work, running: Running,
                 devices: tuple[str, ...] = ()) -> TrialResult:
        assert self._run is not None
        try:
            if self._run.on_start:
                self._run.on_start(work, slot.host.name)
            argv = self._run.argv(work.trial)
            return run_trial(slot.host.client.api, work.trial, argv, self._run.settings,
                             host=slot.host.name, attempt=work.attempt, running=running,
                             devices=devices, keep=True)
        finally:
            self._forget(slot, work.trial.trial_id, running)

    def _forget(self, slot: Slot, trial_id: str, running: Running) -> None:
        """The attempt's thread is done: its slot entry goes (not a newer attempt's), and
        the host is known to hold its container until that is released."""
        with self._lock:
            if slot.inflight.get(trial_id) is running:
                del slot.inflight[trial_id]
            if running.kept:
                slot.kept.add(running.container_id)
            slot.host.dirty |= running.left and not running.kept

    def _finished(self, result: TrialResult,
                  entry: Inflight) -> tuple[TrialResult, Inflight]:
        """Tell the placement policy; it marks hosts down or quarantines them."""
        result.queued_at = entry.work.queued_at
        slot = entry.slot
        with self._lock:
            slot.give_back_gpus(result.trial_id)
        self._placement.finished(slot.index, result.status, lambda: ping(slot.host.client.api),
                                 result.reason)
        return result, entry

    def _give_up(self, inflight: dict[Future[TrialResult], Inflight],
                 silent: dict[int, str]) -> list[tuple[TrialResult, Inflight]]:
        """Results for trials whose engine will not tell: on a host that stopped answering
        (lost), far past their timeout (timed out), or not stopped long after a cancel."""
        for index, why in silent.items():
            if not self._placement.hosts[index].down:
                self._placement.mark_down(index, f"stopped answering ({why})")
        assert self._run is not None
        out = []
        clock = time.monotonic()
        for future, entry in list(inflight.items()):
            verdict = self._overdue(entry, clock)
            if verdict is None:
                continue
            del inflight[future]
            status, reason = verdict
            index = entry.slot.index
            if not self._placement.hosts[index].down:  # its engine does not do its work
                self._placement.mark_down(index, f"stopped answering (it did not end trial "
                                                 f"{entry.work.trial.trial_id} in time)")
            self._forget(entry.slot, entry.work.trial.trial_id, entry.running)
            with self._lock:
                entry.slot.give_back_gpus(entry.work.trial.trial_id)
                entry.slot.host.dirty = True  # its container is in an unknown state
            result = TrialResult(entry.work.trial.trial_id, status, reason,
                                 host=entry.slot.host.name, image_id=self._run.settings.image,
                                 container_id=entry.running.container_id,
                                 attempt=entry.work.attempt, queued_at=entry.work.queued_at)
            self._placement.finished(entry.slot.index, status, lambda: False, reason)
            out.append((result, entry))
        return out

    def _overdue(self, entry: Inflight, clock: float) -> tuple[TrialStatus, str] | None:
        host = self._placement.hosts[entry.slot.index]
        if host.down and not self._placement.answering(entry.slot.index):
            return TrialStatus.LOST, f"host {host.name} {host.down}"
        assert self._run is not None
        return overdue(entry.running.started, self._run.settings, self._cancelled_at, clock)

    def _release(self, pool: ThreadPoolExecutor, entry: Inflight) -> None:
        """Remove a trial's container once its result is recorded (not on a silent host:
        that would only wait for the engine's timeout; teardown or `launch clean` do)."""
        slot, running = entry.slot, entry.running
        if running.kept and self._placement.answering(slot.index):
            with contextlib.suppress(RuntimeError):  # the pool is shutting down
                pool.submit(self._remove_kept, slot, running)

    def _remove_kept(self, slot: Slot, running: Running) -> None:
        removed = release(slot.host.client.api, running)
        with self._lock:
            slot.kept.discard(running.container_id)
            slot.host.dirty |= not removed

    # -- adoption ---------------------------------------------------------------------------
    def adopt(self, trials: dict[str, Trial], recorded: Iterable[str] = ()) -> set[str]:
        """See Backend.adopt: every container labelled with this run, on every host that
        answers; the newest attempt of each trial of ``trials`` is adopted."""
        assert self._run is not None, "setup() first"
        chosen, unwanted = self._find_leftovers(trials, set(recorded))
        each(lambda sc: _remove(sc[0].host.client.api, sc[1]["Id"]), unwanted)
        for trial_id, (slot, container) in chosen.items():
            running = Running(slot.host.client.api, container_id=container["Id"],
                              attempt=attempt_of(container))
            if self._run.on_history is not None:
                running.on_history = functools.partial(self._run.on_history, trial_id,
                                                       running.attempt)
            with self._lock:
                slot.inflight[trial_id] = running
            self._placement.started(slot.index)
            self._adopted.append((slot, container, trials[trial_id], running))
        return set(chosen)

    def _find_leftovers(self, trials: dict[str, Trial], recorded: set[str]) -> tuple[
            dict[str, tuple[Slot, Container]], list[tuple[Slot, Container]]]:
        """This run's containers on every host that answers (see choose_leftovers); a
        silent host is marked down, its containers wait for a later resume."""
        assert self._run is not None
        label = f"{LABEL_RUN}={self._run.run_id}"
        listed = each(lambda s: labelled_containers(s.host.client.api, label), self._slots)
        found = []
        for slot, containers in zip(self._slots, listed, strict=True):
            if isinstance(containers, BaseException):
                self._placement.mark_down(slot.index, f"stopped answering "
                                                      f"({short_error(containers)})")
                continue
            slot.host.dirty |= bool(containers)
            found.append((slot, containers))
        return choose_leftovers(found, trials, recorded)

    def _submit_adopted(self, pool: ThreadPoolExecutor,
                        inflight: dict[Future[TrialResult], Inflight]) -> None:
        for slot, container, trial, running in self._adopted:
            work = Work(trial, attempt_of(container))
            future = pool.submit(self._adopt_one, slot, container, work, running)
            inflight[future] = Inflight(work, slot, running)
        self._adopted = []

    def _adopt_one(self, slot: Slot, container: Container, work: Work,
                   running: Running) -> TrialResult:
        assert self._run is not None
        try:
            if self._run.on_start:
                self._run.on_start(work, slot.host.name)
            result = adopt_trial(slot.host.client.api, container, work.trial,
                                 self._run.settings, host=slot.host.name, running=running,
                                 keep=True)
            return result or TrialResult(work.trial.trial_id, TrialStatus.LOST,
                                         "its container never started", host=slot.host.name,
                                         attempt=work.attempt)
        finally:
            self._forget(slot, work.trial.trial_id, running)

    # -- stopping --------------------------------------------------------------------------
    def cancel(self) -> None:
        """Stop starting trials; stop running containers (grace, then kill), each marked
        as stopped by the launcher first (see container.mark_stopped), on a bounded pool
        of threads (safe from any thread; returns at once)."""
        if self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
        self._stopping.set()
        grace = int(self._run.settings.stop_grace if self._run else defaults.STOP_GRACE)
        with self._lock:
            running = [r for s in self._slots for r in s.inflight.values()]
        for r in running:
            r.cancelled.set()
        if running:
            threading.Thread(target=each, args=(lambda r: _stop(r, grace), running),
                             daemon=True, name="stop-trials").start()

    def stop_trial(self, trial_id: str, attempt: int, reason: str) -> None:
        """Stop one running container on purpose (grace, then kill): status stopped."""
        grace = int(self._run.settings.stop_grace if self._run else defaults.STOP_GRACE)
        with self._lock:
            found = [r for s in self._slots for t, r in s.inflight.items()
                     if t == trial_id and r.attempt == attempt]
        for r in found:
            r.stop_reason = r.stop_reason or reason
            threading.Thread(target=_stop, args=(r, grace, TrialStatus.STOPPED),
                             daemon=True).start()

    def teardown(self) -> None:
        """Remove every container (and /outputs volume) of this run still on a host, by
        label, at most HOST_WORKERS hosts at once. Only hosts where a container may be
        left are asked (one whose removal failed, or still running): on a clean run of
        1,000 hosts that is none, instead of a round trip or two to each. A host that
        does not answer is named in the notes, never an error."""
        if self._run is None:
            return
        if self._cpu_models is not None:
            self._cpu_models.stop(CPU_MODEL_WAIT)
        label = f"{LABEL_RUN}={self._run.run_id}"
        volumes = self._run.settings.outputs or self._run.settings.params_file
        with self._lock:
            slots = [s for s in self._slots if (s.host.dirty or s.inflight or s.kept)
                     and self._placement.answering(s.index)]
        outcomes = each(lambda s: _clean(s.host.client.api, label, volumes), slots)
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, BaseException):  # the run's result stands
                note = (f"host {slot.host.name} could not be cleaned up "
                        f"({short_error(outcome, kind=True)}); `launch clean` removes this "
                        "run's containers there later")
                if note not in self._notes:
                    self._notes.append(note)



def _clean(api: Any, label: str, volumes: bool) -> None:
    if not ping(api):
        raise TimeoutError("no answer to a ping")
    remove_by_label(api, label, volumes=volumes)


def _remove(api: Any, cid: str) -> None:
    with contextlib.suppress(Exception):
        api.remove_container(cid, v=True, force=True)


def _stop(running: Running, grace: int, why: TrialStatus = TrialStatus.CANCELLED) -> None:
    if not running.container_id:
        return
    mark_stopped(running.api, running.container_id, why)
    with contextlib.suppress(Exception):
        running.api.stop(running.container_id, timeout=grace)
