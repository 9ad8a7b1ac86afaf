"""Simulated Docker engines ("hollow hosts", after Kubernetes' kubemark hollow nodes).

The launcher's control plane runs for real against engines that keep the Docker Engine
API (the endpoints the launcher uses through docker-py) but run nothing: a container
"exits" after a set duration with a log and outputs whose metrics depend only on its
parameters and seed. Hundreds of them are served by one asyncio process on unix
sockets or loopback ports, each with its own latency, trial duration and faults (a host
that dies or freezes, at once or after its Nth container). For measuring scale on one
machine; the real-engine tests stay the proof of Docker behaviour.

    with SimEngines(tmp_path, hosts=200, latency=0.02) as sim:
        sim.hosts              # [{"name": "sim-0", "url": "unix://.../sim-0.sock"}, ...]
        sim.environ            # DOCKER_HOST of sim-0, which holds the job image
        sim.stats()            # requests per endpoint, peaks, per-host counters
        sim.fault("sim-3", "stop")
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.simengine.images import JOB_TAG

ROOT = Path(__file__).resolve().parent.parent.parent
__all__ = ["JOB_TAG", "SimEngines", "sim_sweep"]


class SimEngines:
    """A process serving ``hosts`` simulated engines; stopped on exit (or by itself)."""

    def __init__(self, folder: Path, hosts: int, *, tcp: bool = False, latency: float = 0.0,
                 duration: float = 0.05, ncpu: int = 2, preload: str = "first",
                 special: dict[str, dict[str, Any]] | None = None, lifetime: float = 900.0,
                 image_kb: int = 64, prefix: str = "sim") -> None:
        self.folder = folder / f"{prefix}-engines"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.argv = [sys.executable, "-m", "tests.simengine", "--dir", str(self.folder),
                     "--hosts", str(hosts), "--latency", str(latency), "--duration",
                     str(duration), "--ncpu", str(ncpu), "--preload", preload, "--image-kb",
                     str(image_kb), "--lifetime", str(lifetime), "--prefix", prefix,
                     "--host-config", json.dumps(special or {})] + (["--tcp"] if tcp else [])
        self.process: subprocess.Popen[bytes] | None = None
        self.hosts: list[dict[str, str]] = []
        self.image_id = ""

    def __enter__(self) -> SimEngines:
        ready = self.folder / "hosts.json"
        ready.unlink(missing_ok=True)
        log = open(self.folder / "engines.log", "wb")
        self.process = subprocess.Popen(self.argv, cwd=ROOT, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 120
        while not ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                text = (self.folder / "engines.log").read_text(errors="replace")
                raise RuntimeError(f"the simulated engines did not start: {text[-2000:]}")
            time.sleep(0.05)
        data = json.loads(ready.read_text())
        self.hosts, self.image_id = data["hosts"], data["image_id"]
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def environ(self) -> dict[str, str]:
        """Environment that makes the first engine "the local engine" (where the image is)."""
        return {**os.environ, "DOCKER_HOST": self.hosts[0]["url"]}

    def url(self, name: str) -> str:
        return next(h["url"] for h in self.hosts if h["name"] == name)

    # -- control ---------------------------------------------------------------------------
    def _call(self, method: str, path: str) -> Any:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(30)
            s.connect(str(self.folder / "control.sock"))
            s.sendall(f"{method} {path} HTTP/1.1\r\nHost: sim\r\nContent-Length: 0\r\n\r\n"
                      .encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += s.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            while len(body) < length:
                body += s.recv(65536)
        return json.loads(body)

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/stats"))

    def reset_stats(self) -> None:
        self._call("POST", "/reset")

    def fault(self, name: str, kind: str = "stop") -> None:
        self._call("POST", f"/hosts/{name}/fault?kind={kind}")

    def set_latency(self, name: str, seconds: float) -> None:
        self._call("POST", f"/hosts/{name}/latency?seconds={seconds}")


def sim_sweep(folder: Path, hosts: list[dict[str, Any]], *, name: str = "sim",
              replicas: int = 10, **keys: Any) -> Path:
    """A sweep file whose trials run on simulated engines (image ``sim-job:1``)."""
    import yaml

    data = {"name": name, "results": str(folder / "results"), "image": {"tag": JOB_TAG},
            "command": ["python3", "train.py", "${args}"], "replicas": replicas,
            "resources": {"cpus": 1, "memory": "64m"}, "outputs": False, "hosts": hosts,
            **keys}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
