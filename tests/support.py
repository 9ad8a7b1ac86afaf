"""Helpers shared by the integration tests: sweep files, test hosts, leftover checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEST_HOSTS = Path("/run/launcher-test-hosts")
PROBE = ["python3", "/app/experiments/probe.py", "${args}"]
FAST_TRAIN = {"epochs": {"value": 1}, "samples": {"value": 300}, "hidden": {"value": 8}}


def launch(*args: str, timeout: float = 600, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`launch ARGS` in a fresh process (CI unset, so it behaves as on a terminal-less
    user machine); ``env`` adds to the environment."""
    return subprocess.run([sys.executable, "-m", "launcher", *args], cwd=cwd or ROOT,
                          text=True, capture_output=True, timeout=timeout,
                          env={**os.environ, "CI": "", **(env or {})})


def launch_process(*args: str, env: dict[str, str] | None = None,
                   cwd: Path | None = None) -> subprocess.Popen[str]:
    """`launch ARGS` started in the background, its output piped."""
    return subprocess.Popen([sys.executable, "-m", "launcher", *args], cwd=cwd or ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "CI": "", **(env or {})})


def wait_until(condition: Callable[[], Any], seconds: float = 120.0, what: str = "") -> Any:
    """Poll ``condition`` until it is truthy (bounded); return its value."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"waited {seconds:g}s in vain{': ' + what if what else ''}")


def write_sweep(folder: Path, body: dict[str, Any], name: str = "t") -> Path:
    """A sweep file that builds the project's image and keeps results under ``folder``."""
    data = {"name": name, "results": str(folder / "results"),
            "image": {"build": {"context": str(ROOT)}},
            "resources": {"cpus": 0.5, "memory": "256m"}, **body}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def probe_sweep(folder: Path, params: dict[str, Any], name: str = "probe",
                **keys: Any) -> Path:
    """A sweep whose trials run experiments/probe.py with ``params`` as --name=value."""
    return write_sweep(folder, {"command": PROBE, "parameters": params, **keys}, name)


def hosts_entries() -> list[dict[str, Any]]:
    """The hosts of scripts/test-hosts.sh in sweep syntax (h2 over TLS, h3 over SSH)."""
    return list(yaml.safe_load((TEST_HOSTS / "hosts.yaml").read_text()))


def hosts_env() -> dict[str, str]:
    out = {}
    for line in (TEST_HOSTS / "hosts.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def engine_clients() -> dict[str, Any]:
    """Direct clients of every engine on this machine (main, and test hosts if up)."""
    import docker

    clients = {"local": docker.from_env()}
    if (TEST_HOSTS / "hosts.env").exists():
        env = hosts_env()
        for name in ("H2", "H3"):
            clients[name.lower()] = docker.DockerClient(base_url=env[f"{name}_SOCK"])
    return clients


def labelled(run_id: str) -> dict[str, list[str]]:
    """Containers (any state) of a run on each engine; empty lists when clean."""
    out = {}
    for name, client in engine_clients().items():
        found = client.api.containers(all=True, filters={"label": f"io.launcher.run={run_id}"})
        out[name] = [c["Id"][:12] for c in found]
        client.close()
    return out


def assert_nothing_left(run_id: str) -> None:
    left = {k: v for k, v in labelled(run_id).items() if v}
    assert not left, f"containers of run {run_id} left behind: {left}"


def records(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "trials.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
