"""One simulated Docker engine: the endpoints the launcher uses, in memory.

Containers never run anything: a started container "exits" after the host's trial
duration (or ``sim_duration`` among the trial's parameters) with exit code 0 (or
``sim_exit``); its log is a history line and a ``{"metrics": ...}`` line whose values
depend only on the trial's parameters and seed, so equal seeds reproduce. Every answer
is delayed by the host's latency (a network round trip). Faults: ``stop`` (the engine
dies: listening stops, connections are cut) and ``hang`` (it stops answering but keeps
connections open), either at once or after the host's Nth container create.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
import secrets
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.simengine.http import Request, Response
from tests.simengine.images import Image, load

API_VERSION = "1.43"
_VERSIONED = re.compile(r"^/v\d+\.\d+(/.*)$")


@dataclass
class HostConfig:
    latency: float = 0.0  # seconds added to every answer
    duration: float = 0.05  # seconds a container "runs"
    ncpu: int = 2
    fault: str = ""  # "stop" or "hang"
    fault_after_creates: int = 0  # 0: the fault is there from the start


@dataclass
class Container:
    id: str
    image: str
    labels: dict[str, str]
    env: dict[str, str]
    volume: str | None
    entrypoint: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    status: str = "created"
    exit_code: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    timer: asyncio.TimerHandle | None = None


def _stamp(t: float) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class SimHost:
    """State and API of one engine."""

    def __init__(self, name: str, config: HostConfig, images: list[Image],
                 stats: Callable[[str], None]) -> None:
        self.name, self.config = name, config
        self.engine_id = ":".join(secrets.token_hex(2).upper() for _ in range(12))
        self.images = {i.id: i for i in images}
        self.containers: dict[str, Container] = {}
        self.volumes: dict[str, dict[str, str]] = {}
        self.creates = 0
        self.state = "up"  # "up", "hung" or "stopped"
        self.on_fault: Callable[[SimHost, str], None] = lambda host, fault: None
        self.count = stats
        self.requests = 0
        self.running_peak = 0
        self._forever = asyncio.Event()  # never set: what a hung engine waits for

    # -- plumbing --------------------------------------------------------------------------
    async def handle(self, request: Request) -> Response:
        if self.state != "up":
            await self._forever.wait()
        self.requests += 1
        if self.config.latency:
            await asyncio.sleep(self.config.latency)
        path = request.path
        match = _VERSIONED.match(path)
        if match:
            path = match.group(1)
        self.count(request.method + " " + re.sub(r"/[0-9a-f]{64}|/sim-job[^/]*|/sha256:[0-9a-f]+",
                                                 "/{id}", path))
        try:
            response = await self._route(request, path)
        except KeyError as e:
            response = Response.error(404, f"No such object: {e.args[0]}")
        if self.state != "up":  # it froze or died while this request waited
            await self._forever.wait()
        return response

    def fault(self, kind: str) -> None:
        """Die ("stop") or freeze ("hang") now."""
        self.state = "stopped" if kind == "stop" else "hung"
        self.on_fault(self, kind)

    async def _route(self, r: Request, path: str) -> Response:
        parts = path.strip("/").split("/")
        head = parts[0]
        if head == "_ping":
            return Response(200, b"OK", {"Api-Version": API_VERSION})
        if head == "version":
            return Response.of_json(self._version())
        if head == "info":
            return Response.of_json(self._info())
        if head == "images":
            return self._images(r, parts[1:])
        if head == "containers":
            return await self._containers(r, parts[1:])
        if head == "volumes":
            return self._volumes(r, parts[1:])
        return Response.error(404, f"page not found: {path}")

    def _version(self) -> dict[str, Any]:
        return {"Version": "24.0.0-sim", "ApiVersion": API_VERSION, "MinAPIVersion": "1.12",
                "Os": "linux", "Arch": "amd64", "KernelVersion": "6.0.0-sim"}

    def _info(self) -> dict[str, Any]:
        running = sum(c.status == "running" for c in self.containers.values())
        return {"ID": self.engine_id, "Name": self.name, "NCPU": self.config.ncpu,
                "MemTotal": 8 * 2**30, "ServerVersion": "24.0.0-sim",
                "KernelVersion": "6.0.0-sim", "OperatingSystem": "Simulated Linux",
                "Architecture": "x86_64", "Containers": len(self.containers),
                "ContainersRunning": running, "Images": len(self.images)}

    # -- images ----------------------------------------------------------------------------
    def _find_image(self, ref: str) -> Image:
        short = ref.removeprefix("sha256:")
        for image in self.images.values():
            digest = image.id.split(":")[1]
            if ref in image.tags or digest == short or (len(short) >= 12
                                                        and digest.startswith(short)):
                return image
        raise KeyError(f"No such image: {ref}")

    def _images(self, r: Request, parts: list[str]) -> Response:
        if parts == ["json"]:
            return Response.of_json([{"Id": i.id, "RepoTags": i.tags, "Created": 0,
                                      "Labels": {}} for i in self.images.values()])
        if parts == ["load"] and r.method == "POST":
            image = load(r.body)
            for other in self.images.values():  # a tag moves to the loaded image
                other.tags = [t for t in other.tags if t not in image.tags]
            self.images[image.id] = image
            lines = [{"stream": f"Loaded image: {t}\n"} for t in image.tags] or \
                [{"stream": f"Loaded image ID: {image.id}\n"}]
            return Response(200, b"".join(json.dumps(x).encode() + b"\n" for x in lines),
                            {"Content-Type": "application/json"})
        ref = "/".join(parts[:-1])
        image = self._find_image(ref)
        if parts[-1] == "json":
            return Response.of_json(image.inspect())
        if parts[-1] == "get":
            return Response(200, image.save(), {"Content-Type": "application/x-tar"})
        if r.method == "DELETE":
            del self.images[image.id]
            return Response.of_json([{"Deleted": image.id}])
        return Response.error(404, "unknown image endpoint")

    # -- containers ------------------------------------------------------------------------
    async def _containers(self, r: Request, parts: list[str]) -> Response:
        if parts == ["create"]:
            return self._create(r.json())
        if parts == ["json"]:
            return Response.of_json(self._list(r))
        c = self._container(parts[0])
        action = parts[1] if len(parts) > 1 else ""
        if r.method == "DELETE" and not action:
            return self._remove(c, r)
        if action == "start":
            return self._start(c)
        if action == "wait":
            if c.status == "running":
                await c.done.wait()
            return Response.of_json({"StatusCode": c.exit_code, "Error": None})
        if action in ("stop", "kill"):
            self._finish(c, 143 if action == "stop" else 137)
            return Response(204)
        if action == "json":
            return Response.of_json(self._inspect(c))
        if action == "logs":
            return Response(200, self._log(c), {"Content-Type": "application/vnd.docker."
                                                "multiplexed-stream"})
        if action == "archive":
            return self._archive(c)
        return Response.error(404, f"unknown container endpoint {action}")

    def _container(self, ref: str) -> Container:
        found = self.containers.get(ref) or next(
            (c for i, c in self.containers.items() if i.startswith(ref)), None)
        if found is None:
            raise KeyError(f"No such container: {ref}")
        return found

    def _create(self, body: dict[str, Any]) -> Response:
        image = body.get("Image", "")
        try:
            self._find_image(image)
        except KeyError:
            return Response.error(404, f"No such image: {image}")
        self.creates += 1
        cid = secrets.token_hex(32)
        labels = dict(body.get("Labels") or {})
        env = dict(e.split("=", 1) for e in body.get("Env") or [] if "=" in e)
        mounts = (body.get("HostConfig") or {}).get("Mounts") or []
        volume = None
        if any(m.get("Type") == "volume" and not m.get("Source") for m in mounts):
            volume = secrets.token_hex(32)
            self.volumes[volume] = labels
        self.containers[cid] = Container(cid, image, labels, env, volume,
                                         list(body.get("Entrypoint") or []))
        if self.config.fault and self.creates == self.config.fault_after_creates:
            asyncio.get_running_loop().call_soon(self.fault, self.config.fault)
        return Response.of_json({"Id": cid, "Warnings": []}, 201)

    def _start(self, c: Container) -> Response:
        if c.status != "created":
            return Response(304)
        params = json.loads(c.env.get("LAUNCH_PARAMS") or "{}")
        duration = float(params.get("sim_duration", self.config.duration))
        c.status, c.started_at = "running", time.time()
        c.timer = asyncio.get_running_loop().call_later(
            duration, self._finish, c, int(params.get("sim_exit", 0)))
        self.running_peak = max(self.running_peak,
                                sum(x.status == "running" for x in self.containers.values()))
        return Response(204)

    def _finish(self, c: Container, code: int) -> None:
        if c.status != "running":
            return
        if c.timer:
            c.timer.cancel()
        c.status, c.exit_code, c.finished_at = "exited", code, time.time()
        c.done.set()

    def _remove(self, c: Container, r: Request) -> Response:
        if c.status == "running" and not r.flag("force"):
            return Response.error(409, "You cannot remove a running container")
        self._finish(c, 137)
        del self.containers[c.id]
        if c.volume and r.flag("v"):
            self.volumes.pop(c.volume, None)
        return Response(204)

    def _list(self, r: Request) -> list[dict[str, Any]]:
        wanted = json.loads(r.query.get("filters") or "{}").get("label") or []
        if isinstance(wanted, dict):
            wanted = [k for k, v in wanted.items() if v]
        everything = r.flag("all")
        return [{"Id": c.id, "Image": c.image, "ImageID": c.image, "Labels": c.labels,
                 "State": c.status, "Status": c.status, "Created": int(c.created)}
                for c in self.containers.values()
                if (everything or c.status == "running") and _labelled(c.labels, wanted)]

    def _inspect(self, c: Container) -> dict[str, Any]:
        return {"Id": c.id, "Image": c.image, "Name": f"/{c.id[:12]}",
                "Config": {"Tty": False, "Labels": c.labels, "Image": c.image,
                           "Env": [f"{k}={v}" for k, v in c.env.items()]},
                "State": {"Status": c.status, "Running": c.status == "running",
                          "ExitCode": c.exit_code, "OOMKilled": False,
                          "StartedAt": _stamp(c.started_at), "FinishedAt": _stamp(c.finished_at)}}

    def _metrics(self, c: Container) -> dict[str, Any]:
        seed = c.env.get("LAUNCH_SEED", "0")
        digest = hashlib.sha256((c.env.get("LAUNCH_PARAMS", "") + seed).encode()).digest()
        return {"loss": int.from_bytes(digest[:4], "big") / 2**32, "seed": int(seed)}

    def _log(self, c: Container) -> bytes:
        metrics = self._metrics(c)
        text = (json.dumps({"step": 1, "loss": metrics["loss"]}) + "\n" +
                json.dumps({"metrics": metrics}) + "\n").encode()
        if c.entrypoint == ["cat", "/proc/cpuinfo"]:  # the launcher reads the CPU model
            text = f"processor\t: 0\nmodel name\t: Simulated CPU of {self.name}\n".encode()
        return bytes([1, 0, 0, 0]) + len(text).to_bytes(4, "big") + text

    def _archive(self, c: Container) -> Response:
        if c.volume is None:
            return Response.error(404, "Could not find the file /outputs in container")
        buf = io.BytesIO()
        data = json.dumps(self._metrics(c)).encode()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            folder = tarfile.TarInfo("outputs")
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
            info = tarfile.TarInfo("outputs/metrics.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        stat = base64.b64encode(json.dumps({"name": "outputs", "size": 4096, "mode": 2147484141,
                                            "mtime": _stamp(c.finished_at),
                                            "linkTarget": ""}).encode()).decode()
        return Response(200, buf.getvalue(), {"Content-Type": "application/x-tar",
                                              "X-Docker-Container-Path-Stat": stat})

    # -- volumes ---------------------------------------------------------------------------
    def _volumes(self, r: Request, parts: list[str]) -> Response:
        if not parts:
            wanted = json.loads(r.query.get("filters") or "{}").get("label") or []
            if isinstance(wanted, dict):
                wanted = [k for k, v in wanted.items() if v]
            found = [{"Name": n, "Driver": "local", "Labels": labels}
                     for n, labels in self.volumes.items() if _labelled(labels, wanted)]
            return Response.of_json({"Volumes": found, "Warnings": None})
        if r.method == "DELETE":
            if parts[0] not in self.volumes:
                return Response.error(404, f"get {parts[0]}: no such volume")
            del self.volumes[parts[0]]
            return Response(204)
        return Response.error(404, "unknown volume endpoint")


def _labelled(labels: dict[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True
