"""No way out of the container: a sweep that could reach the engine or the host's root
is refused with exit 2 and one line before any container exists on the engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.engines import ScratchEngine
from tests.support import ROOT, probe_sweep

pytestmark = [pytest.mark.docker, pytest.mark.engines]


def launch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "CI": ""})


def created_since(engine: ScratchEngine, since: float) -> list[dict[str, Any]]:
    """Every container the engine created since ``since`` (from its own event log)."""
    client = engine.client()
    try:
        return list(client.events(since=since, until=time.time() + 1, decode=True,
                                  filters={"type": "container", "event": "create"}))
    finally:
        client.close()


def socket_path(engine: ScratchEngine) -> str:
    return engine.url.removeprefix("unix://")


def attempt(tmp_path: Path, engine: ScratchEngine, **keys: Any) -> tuple[str, int]:
    """Run a sweep with ``keys`` on ``engine``: (stderr, containers created meanwhile)."""
    path = probe_sweep(tmp_path, {"x": {"value": 1}}, name="escape", **keys)
    since = time.time()
    out = launch(str(path), "--quiet", "--host", engine.host())
    assert out.returncode == 2, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"launch: error: {path}:"), out.stderr
    return lines[0], len(created_since(engine, since))


def test_the_engine_socket_root_and_system_paths_are_refused_before_any_container(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    engine = engines[0]
    link = tmp_path / "looks-like-data"
    link.symlink_to(socket_path(engine))
    data = tmp_path / "data"
    data.mkdir()
    cases: dict[str, dict[str, Any]] = {
        "its own socket": {"mounts": [{"bind": socket_path(engine), "target": "/d"}]},
        "the default socket": {"mounts": [{"bind": "/var/run/docker.sock", "target": "/d"}]},
        "a symlink to the socket": {"mounts": [{"bind": str(link), "target": "/d"}]},
        "the socket's folder": {"mounts": [{"bind": str(Path(socket_path(engine)).parent),
                                            "target": "/d"}]},
        "/var/run": {"mounts": [{"bind": "/var/run", "target": "/d"}]},
        "the host's root": {"mounts": [{"bind": "/", "target": "/host"}]},
        "/etc": {"mounts": [{"bind": "/etc", "target": "/host-etc"}]},
        "root with a data bind": {"user": "0", "mounts": [{"bind": str(data), "target": "/d"}]},
        "the docker group with a data bind": {"user": "10001:docker",
                                              "mounts": [{"bind": str(data), "target": "/d"}]},
    }
    for case, keys in cases.items():
        line, created = attempt(tmp_path, engine, **keys)
        assert created == 0, f"{case}: {created} containers were created"
        assert "unsafe" in line, f"{case}: {line}"
    # the check above can fail: an allowed sweep does create containers on that engine
    path = probe_sweep(tmp_path, {"x": {"value": 1}}, name="contained",
                       mounts=[{"bind": str(data), "target": "/d"}])
    since = time.time()
    fine = launch(str(path), "--quiet", "--host", engine.host())
    assert fine.returncode == 0, fine.stderr
    assert len(created_since(engine, since)) >= 1


def test_unsafe_opt_in_runs_with_a_warning(tmp_path: Path, engines: list[ScratchEngine]) -> None:
    engine = engines[0]
    path = probe_sweep(tmp_path, {"x": {"value": 1}}, name="optin",
                       mounts=[{"bind": "/etc/hostname", "target": "/d"}],
                       unsafe={"system_binds": True})
    out = launch(str(path), "--quiet", "--host", engine.host())
    assert out.returncode == 0, out.stderr
    assert "warning: unsafe.system_binds: trials may bind the engine's socket" in out.stderr


def test_hostile_sweeps_are_refused_before_any_container(tmp_path: Path,
                                                         engines: list[ScratchEngine]) -> None:
    engine = engines[0]
    cases: dict[str, tuple[dict[str, Any], str]] = {
        "a mount target that is /": ({"mounts": [{"volume": "data", "target": "/outputs/.."}]},
                                     "without '..'"),
        "more CPUs than the host has": ({"resources": {"cpus": 1000, "memory": "256m"}},
                                        f"but host {engine.name} has"),
        "a 3 MB parameter value": ({"parameters": {"x": {"value": "v" * 3_000_000}}},
                                   "limited to 100 KiB"),
    }
    for case, (keys, says) in cases.items():
        params = keys.pop("parameters", {"x": {"value": 1}})
        path = probe_sweep(tmp_path, params, **{"name": "hostile", **keys})
        since = time.time()
        out = launch(str(path), "--quiet", "--host", engine.host())
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1, f"{case}: {out.stderr}"
        assert says in lines[0] and str(path) in lines[0], f"{case}: {lines[0]}"
        assert not created_since(engine, since), f"{case}: a container was created"
    assert not (tmp_path / "results").exists(), "no run folder, inside or outside the root"
