"""GPUs: a host whose engine reports N GPUs gets slots capped by them, each slot its own
device IDs, and trials running at once never share one (no engine: fakes only here; the
device request's shape in a real engine is checked in tests/integration/test_own_code.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import launcher.backends.docker as docker_backend
from launcher.backends.base import RunContext, WorkQueue
from launcher.container import ContainerSettings
from launcher.errors import HostError
from launcher.gpus import engine_gpus, host_capacity
from launcher.hosts import connect
from launcher.sections import HostSpec, Resources
from launcher.trial import Trial, TrialResult, TrialStatus

GIB = 2**30


def info(gpus: int = 0, named: tuple[str, ...] = (), cpus: int = 16,
         memory: int = 64 * GIB) -> dict[str, Any]:
    resources: list[dict[str, Any]] = [
        {"NamedResourceSpec": {"Kind": "NVIDIA-GPU", "Value": n}} for n in named]
    if gpus:
        resources.append({"DiscreteResourceSpec": {"Kind": "NVIDIA-GPU", "Value": gpus}})
    return {"NCPU": cpus, "MemTotal": memory, "GenericResources": resources or None}


def test_the_engine_info_gives_the_gpus() -> None:
    assert engine_gpus(info(gpus=3)) == ["0", "1", "2"]
    assert engine_gpus(info(named=("GPU-a", "GPU-b"))) == ["GPU-a", "GPU-b"]
    assert engine_gpus(info()) == [] and engine_gpus({}) == []
    other = {"GenericResources": [{"DiscreteResourceSpec": {"Kind": "SSD", "Value": 2}}]}
    assert engine_gpus(other) == []


@pytest.mark.parametrize(("gpus", "per_trial", "slots", "groups"), [
    (4, 1, 4, [("0",), ("1",), ("2",), ("3",)]),
    (4, 2, 2, [("0", "1"), ("2", "3")]),
    (8, 1, 4, [("0",), ("1",), ("2",), ("3",)]),  # CPUs allow 4: the first 4 GPUs
    (3, 2, 1, [("0", "1")]),
])
def test_slots_are_capped_by_gpus_and_own_distinct_devices(
        gpus: int, per_trial: int, slots: int, groups: list[tuple[str, ...]]) -> None:
    capacity = host_capacity("g", 4, info(gpus=gpus), gpus_per_trial=per_trial)
    assert capacity.slots == slots and list(capacity.gpu_groups) == groups
    devices = [d for group in capacity.gpu_groups for d in group]
    assert len(devices) == len(set(devices))


def test_slots_are_capped_by_memory_and_say_so() -> None:
    capacity = host_capacity("m", 16, info(memory=8 * GIB), memory_per_trial=2 * GIB)
    assert capacity.slots == 4 and "memory" in capacity.notes[0]
    assert host_capacity("m", 2, info(memory=8 * GIB), memory_per_trial=2 * GIB).notes == ()


def test_a_host_without_enough_gpus_is_an_error_before_anything_runs() -> None:
    with pytest.raises(HostError, match=r"host g: has 1 GPUs, a trial needs 2"):
        host_capacity("g", 4, info(gpus=1), gpus_per_trial=2)
    with pytest.raises(HostError, match="gpus: N"):
        host_capacity("g", 4, info(), gpus_per_trial=1)


def test_the_hosts_own_list_wins_over_the_engine() -> None:
    capacity = host_capacity("g", 8, info(gpus=8), gpus_per_trial=1, gpus=("5", "7"))
    assert capacity.gpu_groups == (("5",), ("7",))


class FakeClient:
    """A docker client whose engine info reports GPUs; no I/O."""

    def __init__(self, engine_info: dict[str, Any]) -> None:
        self.engine_info = engine_info
        self.api = FakeApi(engine_info)

    def info(self) -> dict[str, Any]:
        return dict(self.engine_info)

    def close(self) -> None:
        pass


class FakeApi:
    """The low-level client as launcher.engine.engine_info uses it: GET /info."""

    base_url, api_version, timeout = "http+docker://fake", "1.41", 60

    def __init__(self, engine_info: dict[str, Any]) -> None:
        self.engine_info = engine_info

    def get(self, url: str, **kwargs: Any) -> Any:
        assert url.endswith("/info")
        return FakeResponse(self.engine_info)

    def get_adapter(self, url: str) -> object:
        return object()  # no pool to size


class FakeResponse:
    status_code, text, headers = 200, "", {"Api-Version": "1.41"}

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def raise_for_status(self) -> None:
        pass

    def json(self) -> dict[str, Any]:
        return dict(self.data)


def test_connect_reads_the_gpus_from_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("launcher.hosts._client", lambda spec, pool: FakeClient(info(gpus=2)))
    host = connect(HostSpec("local", "gpu-box"), cpus_per_trial=1, gpus_per_trial=1,
                   memory_per_trial=GIB)
    assert host.slots == 2 and host.gpu_groups == (("0",), ("1",))


def test_trials_running_at_once_on_a_host_never_share_a_gpu(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("launcher.hosts._client", lambda spec, pool: FakeClient(info(gpus=3)))
    hosts = [connect(HostSpec("local", name), cpus_per_trial=1, gpus_per_trial=1)
             for name in ("a", "b")]
    lock = threading.Lock()
    running: dict[str, set[tuple[str, ...]]] = {"a": set(), "b": set()}
    seen: list[tuple[str, tuple[str, ...]]] = []
    clashes: list[str] = []

    def fake_run_trial(api: Any, trial: Trial, argv: Any, settings: Any, *, host: str,
                       attempt: int, running: Any, devices: tuple[str, ...],
                       keep: bool = False) -> TrialResult:
        with lock:
            if devices in running_on(host) or len(devices) != 1:
                clashes.append(f"{host} {devices}")
            running_on(host).add(devices)
            seen.append((host, devices))
        time.sleep(0.02)
        with lock:
            running_on(host).discard(devices)
        return TrialResult(trial.trial_id, TrialStatus.SUCCEEDED, host=host)

    def running_on(host: str) -> set[tuple[str, ...]]:
        return running[host]

    monkeypatch.setattr(docker_backend, "run_trial", fake_run_trial)
    backend = docker_backend.DockerBackend(hosts)
    backend._run = RunContext(run_id="r", settings=ContainerSettings(
        image="sha256:x", run_id="r", sweep="s", resources=Resources(gpus=1)),
        command=("true",))
    trials = [Trial(f"{i:012x}", "c", i, 0, i, ()) for i in range(30)]
    results = list(backend.launch(WorkQueue(trials)))
    assert len(results) == 30 and not clashes
    assert {d for _, d in seen} == {("0",), ("1",), ("2",)}
    assert {h for h, _ in seen} == {"a", "b"}
