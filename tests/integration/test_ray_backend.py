"""The Ray backend on a real three-node Ray cluster on this machine.

``scripts/ray-cluster.sh`` starts the cluster once for this module (a head bound to the
main engine, two worker nodes bound to the test engines h2 and h3, each with one CPU and
the node label ``launcher-host``) on a free port and a state folder of its own, and stops
exactly those processes afterwards. The backend passes the shared contract there, ships a
fresh image to the nodes that lack it once each, survives the loss of a node mid-sweep,
cancels cleanly, and gives the same metrics as the Docker backend.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from launcher.api import run_sweep
from launcher.backends.base import Backend, WorkQueue
from launcher.backends.ray import RayBackend
from launcher.errors import HostError
from launcher.image import BuiltImage
from launcher.trial import LABEL_RUN, LABEL_SWEEP, LABEL_TRIAL, TrialStatus
from tests.contract import BackendContract, probe_trial
from tests.support import (
    FAST_TRAIN,
    ROOT,
    assert_nothing_left,
    engine_clients,
    hosts_env,
    probe_sweep,
    records,
    write_sweep,
)

pytestmark = [pytest.mark.ray, pytest.mark.docker]
SCRIPT = str(ROOT / "scripts" / "ray-cluster.sh")
NODES = {"main", "h2", "h3"}


@dataclass
class Cluster:
    address: str
    env: dict[str, str]

    def script(self, *args: str) -> str:
        done = subprocess.run([SCRIPT, *args], env=self.env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, f"ray-cluster.sh {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    state = tmp_path_factory.mktemp("ray-cluster")
    env = {**os.environ, "LAUNCHER_RAY_STATE": str(state),
           "LAUNCHER_RAY_PORT": str(free_port())}
    node = Cluster("", env)
    try:
        node.address = node.script("up").splitlines()[-1]
        with token_auth():
            yield node
    finally:
        subprocess.run([SCRIPT, "down"], env=env, capture_output=True, timeout=120)


@contextlib.contextmanager
def token_auth() -> Iterator[None]:
    """RAY_AUTH_MODE=token for this process, as a user's shell would set it. Ray reads it
    when it is imported, so the config is reloaded the way Ray's own ray.init does."""
    from ray._raylet import Config  # type: ignore[attr-defined]

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_AUTH_MODE", "token")
        Config.initialize("")
        try:
            yield
        finally:
            patch.undo()
            Config.initialize("")


@pytest.fixture
def address(cluster: Cluster) -> str:
    """The cluster's address, with every node up (a test before may have killed one)."""
    cluster.script("up")
    return cluster.address


@pytest.fixture
def fresh_image(project_image: BuiltImage) -> Iterator[BuiltImage]:
    """An image no engine has: the project's image with a label of its own."""
    import docker

    nonce = uuid.uuid4().hex[:12]
    tag = f"launcher-ray-test:{nonce}"
    client = docker.from_env()
    dockerfile = f"FROM {project_image.id}\nLABEL io.launcher.test-nonce={nonce}\n"
    image, _ = client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    yield BuiltImage(id=image.id, tag=tag)
    for engine in engine_clients().values():
        with contextlib.suppress(docker.errors.APIError):
            engine.images.remove(image.id, force=True)
        engine.close()
    client.close()


def image_loads(since: int, image_id: str) -> dict[str, int]:
    """How often each engine loaded ``image_id`` since ``since`` (engine events)."""
    counts = {}
    for name, engine in engine_clients().items():
        events = engine.api.events(since=since, until=int(time.time()) + 1, decode=True,
                                   filters={"type": "image", "event": "load"})
        counts[name] = sum(1 for e in events if e.get("id") == image_id
                           or (e.get("Actor") or {}).get("ID") == image_id)
        engine.close()
    return counts


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300,
                          env={**(env or os.environ), "CI": ""})


@pytest.mark.hosts
class TestRayBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, address: str, local_host: Any) -> Backend:
        return RayBackend(address=address, source=local_host)

    @pytest.fixture
    def image(self, project_image: BuiltImage) -> BuiltImage:
        return project_image


@pytest.mark.hosts
def test_sweep_lands_on_every_node_and_ships_the_image_once_per_node(
        tmp_path: Path, address: str, fresh_image: BuiltImage) -> None:
    since = int(time.time()) - 1
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 1}}, name="rayspread",
                       image={"tag": fresh_image.tag}, replicas=12)
    results = run_sweep(path, backend="ray", ray_address=address)
    df = results.df
    assert len(df) == 12 and df["trial_id"].is_unique
    assert set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    assert set(df["host"]) == NODES and df["ray_node_id"].nunique() == 3
    assert df["ray_node_address"].notna().all() and set(df["image_id"]) == {fresh_image.id}
    # Six trials started at once (two per node), yet each node lacking it loaded it once.
    assert image_loads(since, fresh_image.id) == {"local": 0, "h2": 1, "h3": 1}
    manifest = json.loads((results.run_dir / "manifest.json").read_text())
    assert manifest["backend"] == "ray"
    assert {n["name"] for n in manifest["ray"]["nodes"]} == NODES
    assert_nothing_left(results.run_id)


@pytest.mark.hosts
def test_a_node_that_lacks_the_image_after_setup_gets_it_from_the_driver(
        tmp_path: Path, address: str, fresh_image: BuiltImage,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Like a node that joins after setup: the driver puts the image when a task asks."""
    probe = RayBackend._probe_nodes

    def nodes_claiming_the_image(self: RayBackend, image: BuiltImage) -> Any:
        return [dataclasses.replace(n, has_image=True) for n in probe(self, image)]

    monkeypatch.setattr(RayBackend, "_probe_nodes", nodes_claiming_the_image)
    since = int(time.time()) - 1
    path = probe_sweep(tmp_path, {"probe-exit": {"value": 0}}, name="raylate",
                       image={"tag": fresh_image.tag}, replicas=6)
    results = run_sweep(path, backend="ray", ray_address=address)
    df = results.df
    assert len(df) == 6 and set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    asked = [r for r in records(results.run_dir) if r["status"] == "lost"]
    assert asked and all("missing here; the launcher sends it" in r["reason"] for r in asked)
    loads = image_loads(since, fresh_image.id)
    assert loads["local"] == 0 and max(loads.values()) == 1
    assert_nothing_left(results.run_id)


@pytest.mark.hosts
@pytest.mark.slow
def test_losing_a_node_mid_sweep_still_runs_every_trial_once(
        tmp_path: Path, cluster: Cluster, address: str) -> None:
    import docker

    name = f"raykill-{uuid.uuid4().hex[:8]}"
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 6}}, name=name, replicas=9)
    h2 = docker.DockerClient(base_url=hosts_env()["H2_SOCK"])
    on_h2: list[str] = []

    def kill_h2_when_it_runs_a_trial() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not on_h2:
            found = h2.api.containers(filters={"label": f"{LABEL_SWEEP}={name}"})
            on_h2.extend(c["Labels"][LABEL_TRIAL] for c in found)
            time.sleep(0.2)
        if on_h2:
            cluster.script("kill-node", "h2")

    killer = threading.Thread(target=kill_h2_when_it_runs_a_trial, daemon=True)
    killer.start()
    results = run_sweep(path, backend="ray", ray_address=address)
    killer.join(timeout=130)
    h2.close()
    assert on_h2, "no trial ran on h2 before the kill"
    df = results.df.set_index("trial_id")
    assert len(df) == 9 and set(df["status"]) == {"succeeded"}, df[["status", "reason"]]
    # Ray retried the killed node's trials elsewhere; the store holds one record each.
    assert set(df.loc[on_h2, "host"]) <= {"main", "h3"}
    assert collections.Counter(r["trial_id"] for r in records(results.run_dir)) == \
        collections.Counter(df.index)
    assert any("Ray node h2" in note and "left the cluster" in note for note in results.notes)
    assert_nothing_left(results.run_id)


@pytest.mark.hosts
def test_cancel_stops_trials_on_every_node_and_leaves_no_container(
        address: str, local_host: Any, project_image: BuiltImage) -> None:
    backend = RayBackend(address=address, source=local_host)
    ctx = BackendContract().context(project_image)
    backend.setup(image=project_image, run=ctx)
    engines_busy: set[str] = set()

    def cancel_when_trials_run_on_every_node() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(engines_busy) < 3:
            for name, engine in engine_clients().items():
                if engine.api.containers(filters={"label": f"{LABEL_RUN}={ctx.run_id}"}):
                    engines_busy.add(name)
                engine.close()
            time.sleep(0.3)
        backend.cancel()

    canceller = threading.Thread(target=cancel_when_trials_run_on_every_node, daemon=True)
    canceller.start()
    started = time.monotonic()
    try:
        results = list(backend.launch(WorkQueue([probe_trial(i, sleep=60) for i in range(6)])))
    finally:
        backend.teardown()
    canceller.join(timeout=70)
    assert engines_busy == {"local", "h2", "h3"}
    assert len(results) == 6 and {r.status for r in results} == {TrialStatus.CANCELLED}
    assert time.monotonic() - started < 50
    stopped = [r for r in results if r.reason == "cancelled while running" and r.container_id]
    assert len(stopped) >= 3, [(r.reason, r.host) for r in results]
    assert_nothing_left(ctx.run_id)


@pytest.mark.hosts
def test_docker_and_ray_backends_give_equal_metrics_for_equal_seeds(
        tmp_path: Path, address: str) -> None:
    path = write_sweep(tmp_path, {"parameters": {**FAST_TRAIN, "lr": {"values": [0.1, 0.3]}},
                                  "metric": {"name": "val_acc", "goal": "maximize"},
                                  "replicas": 2, "seed_mode": "distinct"}, name="twins")
    on_docker = run_sweep(path)
    on_ray = run_sweep(path, backend="ray", ray_address=address)
    a, b = on_docker.df.set_index("trial_id"), on_ray.df.set_index("trial_id")
    assert set(a["status"]) == set(b["status"]) == {"succeeded"}
    assert sorted(a.index) == sorted(b.index) and len(a) == 4
    metrics = [c for c in a.columns if c.startswith("metric.")]
    assert "metric.val_acc" in metrics and set(metrics) == {c for c in b.columns
                                                             if c.startswith("metric.")}
    assert a.loc[b.index, metrics].equals(b[metrics]), "same trial, same seed, same metrics"
    assert b["host"].nunique() > 1 and a["image_id"].iloc[0] == b["image_id"].iloc[0]
    root = str(tmp_path / "results")
    compare = launch("compare", on_docker.run_id, on_ray.run_id, "--results", root)
    assert compare.returncode == 0, compare.stdout + compare.stderr
    verify = launch("verify", on_docker.run_id, on_ray.run_id, "--results", root)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_without_an_address_an_embedded_ray_runs_the_sweep_and_stops(tmp_path: Path) -> None:
    import ray

    path = probe_sweep(tmp_path, {"probe-exit": {"values": [0, 3]}}, name="embedded")
    results = run_sweep(path, backend="ray")
    df = results.df.set_index("param.probe-exit")
    assert df.loc[0, "status"] == "succeeded" and df.loc[3, "status"] == "failed"
    assert df.loc[3, "exit_code"] == 3 and "exit code 3" in str(df.loc[3, "reason"])
    assert set(df["host"]) == {"local"} and df["ray_node_id"].nunique() == 1
    assert not ray.is_initialized(), "the embedded Ray is shut down after the run"
    manifest = json.loads((results.run_dir / "manifest.json").read_text())
    assert manifest["ray"]["address"] == "embedded"
    assert_nothing_left(results.run_id)


def test_an_unreachable_cluster_is_a_clear_error_before_any_run(tmp_path: Path) -> None:
    path = probe_sweep(tmp_path, {"probe-exit": {"value": 0}}, name="nocluster")
    started = time.monotonic()
    with pytest.raises(HostError, match=r"nothing answers at 127\.0\.0\.1") as error:
        run_sweep(path, backend="ray", ray_address=f"127.0.0.1:{free_port()}")
    assert "ray status" in str(error.value) and time.monotonic() - started < 60
    assert not (tmp_path / "results").exists(), "no run starts"


@pytest.mark.hosts
def test_the_command_line_reaches_the_cluster_and_explains_a_missing_token(
        tmp_path: Path, address: str) -> None:
    path = probe_sweep(tmp_path, {"probe-exit": {"value": 0}}, name="raycli", replicas=3)
    env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    ok = launch(str(path), "--backend", "ray", "--ray-address", address, "--json",
                env={**env, "RAY_AUTH_MODE": "token"})
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout)
    assert summary["status"] == {"succeeded": 3}
    refused = launch(str(path), "--backend", "ray", "--ray-address", address, env=env)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    error = refused.stderr.strip().splitlines()[-1]
    assert "wants its authentication token" in error and "RAY_AUTH_MODE=token" in error
