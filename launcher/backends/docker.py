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
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from launcher import defaults
from launcher.backends.base import AllWorkersLost, Backend, RunContext, Work, WorkQueue
from launcher.backends.placement import Placement
from launcher.backends.watch import HostWatch
from launcher.container import Running, adopt_trial, mark_stopped, run_trial
from launcher.engine import PING_TIMEOUT, labelled_containers, ping, remove_by_label, short_error
from launcher.hosts import Host, probe_cpu_model
from launcher.image import BuiltImage
from launcher.store.manifest import BackendRecord
from launcher.trial import LABEL_ATTEMPT, LABEL_RUN, LABEL_TRIAL, Trial, TrialResult, TrialStatus

if TYPE_CHECKING:
    from launcher.spec import SweepSpec

IDLE_POLL = 0.5
OVERDUE_MARGIN = 30.0  # seconds past timeout + stop_grace before a trial is given up
CANCEL_MARGIN = 5.0  # seconds past a cancel + stop_grace before a trial is given up


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
        self._adopted: list[tuple[_Slot, dict[str, Any], Trial, Running]] = []
        self._cancelled_at: float | None = None

    @classmethod
    def from_spec(cls, spec: SweepSpec, *, skip_unreachable: bool = False) -> DockerBackend:
        """Connect every host of the sweep; the image is built on the local engine when
        it is one of them or answers, else on the first host."""
        from launcher.hostcheck import check_resources_fit
        from launcher.hosts import connect_all, connect_local

        hosts, skipped = connect_all(spec.hosts, cpus_per_trial=spec.resources.cpus,
                                     max_parallel=spec.max_parallel,
                                     skip_unreachable=skip_unreachable)
        try:
            check_resources_fit(hosts, spec)
            builder = next((h for h in hosts if h.spec.url == "local"), None) \
                or connect_local(cpus_per_trial=spec.resources.cpus, required=False) \
                or hosts[0]
        except BaseException:
            for host in hosts:
                host.close()
            raise
        backend = cls(hosts, spec.max_parallel, builder, owns_connections=True)
        backend._notes += [f"host {e.host} left out: {e.message}" for e in skipped]
        return backend

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
        """See Backend.launch. Adopted containers come back like any other trial; a trial
        on a host that stops answering, or far past its timeout, is given up (lost or
        timed out) without waiting for its engine."""
        assert self._run is not None, "setup() first"
        inflight: dict[Future[TrialResult], _Inflight] = {}
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
                # Refill the freed slots before the caller spends time recording results.
                self._dispatch(queue, pool, inflight)
                for result, slot in finished:
                    yield result
                    self._release(pool, slot, result)  # recorded: the container can go
        finally:
            watch.stop()
            pool.shutdown(wait=False)

    def _pool_size(self) -> int:
        """Threads for trials, plus room for trials given up on a silent host (their
        threads end only when the engine's calls time out) and for adopted ones."""
        return self._max_parallel + sum(s.host.slots for s in self._slots) + \
            len(self._adopted) + 4

    def _dispatch(self, queue: WorkQueue, pool: ThreadPoolExecutor,
                  inflight: dict[Future[TrialResult], _Inflight]) -> None:
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
            future = pool.submit(self._run_one, slot, work, running)
            inflight[future] = _Inflight(work, slot, running)

    def _run_one(self, slot: _Slot, work: Work, running: Running) -> TrialResult:
        assert self._run is not None
        try:
            if self._run.on_start:
                self._run.on_start(work, slot.host.name)
            argv = self._run.argv(work.trial)
            return run_trial(slot.host.client.api, work.trial, argv, self._run.settings,
                             host=slot.host.name, attempt=work.attempt, running=running,
                             keep=True)
        finally:
            self._forget(slot, work.trial.trial_id, running)

    def _forget(self, slot: _Slot, trial_id: str, running: Running) -> None:
        with self._lock:
            if slot.inflight.get(trial_id) is running:  # not a newer attempt's
                del slot.inflight[trial_id]

    def _finished(self, result: TrialResult, entry: _Inflight) -> tuple[TrialResult, _Slot]:
        """Tell the placement policy; it marks hosts down or quarantines them."""
        result.queued_at = entry.work.queued_at
        slot = entry.slot
        self._placement.finished(slot.index, result.status, lambda: ping(slot.host.client.api),
                                 result.reason)
        return result, slot

    def _give_up(self, inflight: dict[Future[TrialResult], _Inflight],
                 silent: dict[int, str]) -> list[tuple[TrialResult, _Slot]]:
        """Results for trials whose engine will not tell: on a host that stopped answering
        (lost), far past their timeout (timed out), or not stopped long after a cancel."""
        for index, why in silent.items():
            if not self._placement.hosts[index].down:
                self._placement.mark_down(index, f"stopped answering ({why})")
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
            result = TrialResult(entry.work.trial.trial_id, status, reason,
                                 host=entry.slot.host.name, image_id=self._image_id(),
                                 container_id=entry.running.container_id,
                                 attempt=entry.work.attempt, queued_at=entry.work.queued_at)
            self._placement.finished(entry.slot.index, status, lambda: False, reason)
            out.append((result, entry.slot))
        return out

    def _overdue(self, entry: _Inflight, clock: float) -> tuple[TrialStatus, str] | None:
        assert self._run is not None
        settings = self._run.settings
        host = self._placement.hosts[entry.slot.index]
        if host.down and not self._placement.answering(entry.slot.index):
            return TrialStatus.LOST, f"host {host.name} {host.down}"
        started = entry.running.started
        if settings.timeout is not None and started and \
                clock > started + settings.timeout + settings.stop_grace + OVERDUE_MARGIN:
            return TrialStatus.TIMED_OUT, (
                f"exceeded its timeout of {settings.timeout:g}s, and its engine did not "
                f"end it within {settings.stop_grace + OVERDUE_MARGIN:g}s more")
        if self._cancelled_at is not None and \
                clock > self._cancelled_at + settings.stop_grace + CANCEL_MARGIN:
            return TrialStatus.CANCELLED, "cancelled; its engine did not confirm the stop"
        return None

    def _image_id(self) -> str:
        return self._run.settings.image if self._run else ""

    def _release(self, pool: ThreadPoolExecutor, slot: _Slot, result: TrialResult) -> None:
        """Remove a trial's container once its result is recorded (not on a silent host:
        that would only wait for the engine's timeout)."""
        if result.container_id and self._placement.answering(slot.index):
            with contextlib.suppress(RuntimeError):  # the pool is shutting down
                pool.submit(_remove, slot.host.client.api, result.container_id)

    # -- adoption ---------------------------------------------------------------------------
    def adopt(self, trials: dict[str, Trial], recorded: Iterable[str] = ()) -> set[str]:
        """See Backend.adopt: every container labelled with this run, on every host that
        answers; the newest attempt of each trial of ``trials`` is adopted."""
        assert self._run is not None, "setup() first"
        chosen, unwanted = self._find_leftovers(trials, set(recorded))
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda sc: _remove(sc[0].host.client.api, sc[1]["Id"]), unwanted))
        for trial_id, (slot, container) in chosen.items():
            running = Running(slot.host.client.api, container_id=container["Id"])
            with self._lock:
                slot.inflight[trial_id] = running
            self._placement.started(slot.index)
            self._adopted.append((slot, container, trials[trial_id], running))
        return set(chosen)

    def _find_leftovers(self, trials: dict[str, Trial], recorded: set[str]) -> tuple[
            dict[str, tuple[_Slot, dict[str, Any]]], list[tuple[_Slot, dict[str, Any]]]]:
        """(trial id -> its newest container to adopt, the containers to remove)."""
        assert self._run is not None
        label = f"{LABEL_RUN}={self._run.run_id}"
        chosen: dict[str, tuple[_Slot, dict[str, Any]]] = {}
        unwanted: list[tuple[_Slot, dict[str, Any]]] = []
        for slot in self._slots:
            try:
                found = labelled_containers(slot.host.client.api, label)
            except Exception as e:  # a silent host: its containers wait for a later resume
                self._placement.mark_down(slot.index, f"stopped answering ({short_error(e)})")
                continue
            for container in found:
                labels = container.get("Labels") or {}
                trial_id = labels.get(LABEL_TRIAL, "")
                if trial_id not in trials or container["Id"] in recorded or \
                        container.get("State") == "created":
                    unwanted.append((slot, container))
                    continue
                previous = chosen.get(trial_id)
                if previous is not None and _attempt(previous[1]) >= _attempt(container):
                    unwanted.append((slot, container))
                    continue
                if previous is not None:
                    unwanted.append(previous)
                chosen[trial_id] = (slot, container)
        return chosen, unwanted

    def _submit_adopted(self, pool: ThreadPoolExecutor,
                        inflight: dict[Future[TrialResult], _Inflight]) -> None:
        for slot, container, trial, running in self._adopted:
            work = Work(trial, _attempt(container))
            future = pool.submit(self._adopt_one, slot, container, work, running)
            inflight[future] = _Inflight(work, slot, running)
        self._adopted = []

    def _adopt_one(self, slot: _Slot, container: dict[str, Any], work: Work,
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
        as stopped by the launcher first (see container.mark_stopped)."""
        if self._cancelled_at is None:
            self._cancelled_at = time.monotonic()
        self._stopping.set()
        grace = int(self._run.settings.stop_grace if self._run else defaults.STOP_GRACE)
        with self._lock:
            running = [r for s in self._slots for r in s.inflight.values()]
        for r in running:
            r.cancelled.set()
            threading.Thread(target=_stop, args=(r, grace), daemon=True).start()

    def teardown(self) -> None:
        """Remove every container of this run that is still on a host (by label); a host
        that does not answer is named in the notes, never an error."""
        if self._run is None:
            return
        label = f"{LABEL_RUN}={self._run.run_id}"
        for slot in self._slots:
            if not self._placement.answering(slot.index):
                continue
            api = slot.host.client.api
            try:
                if not ping(api):
                    raise TimeoutError(f"no answer within {PING_TIMEOUT:g}s")
                remove_by_label(api, label)
            except Exception as e:  # the run's result stands; say what is left where
                why = short_error(e, kind=True)
                note = (f"host {slot.host.name} could not be cleaned up ({why}); `launch "
                        "clean` removes this run's containers there later")
                if note not in self._notes:
                    self._notes.append(note)


@dataclass
class _Inflight:
    work: Work
    slot: _Slot
    running: Running


def _attempt(container: dict[str, Any]) -> int:
    try:
        return int((container.get("Labels") or {}).get(LABEL_ATTEMPT, "1"))
    except ValueError:
        return 1


def _remove(api: Any, cid: str) -> None:
    with contextlib.suppress(Exception):
        api.remove_container(cid, v=True, force=True)


def _stop(running: Running, grace: int) -> None:
    if not running.container_id:
        return
    mark_stopped(running.api, running.container_id, TrialStatus.CANCELLED)
    with contextlib.suppress(Exception):
        running.api.stop(running.container_id, timeout=grace)
