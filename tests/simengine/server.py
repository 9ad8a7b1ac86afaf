"""Many simulated engines in one asyncio process, each on its own unix socket or
loopback port, plus a control socket for statistics and fault injection.

Bounded: the process ends by itself after ``lifetime`` seconds, when its parent
process goes away, on SIGTERM, or on ``POST /shutdown``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.simengine.engine import HostConfig, SimHost
from tests.simengine.http import Request, Response, serve_connection
from tests.simengine.images import job_image


@dataclass
class Listener:
    host: SimHost
    url: str
    server: asyncio.AbstractServer | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)
    connections_peak: int = 0
    connections_total: int = 0


class Farm:
    """The engines, their listeners and the shared statistics."""

    def __init__(self, folder: Path, configs: dict[str, HostConfig], *, tcp: bool,
                 preload: str, image_kb: int) -> None:
        self.folder, self.tcp = folder, tcp
        image = job_image(image_kb * 1024)
        self.image_id = image.id
        self.endpoints: Counter[str] = Counter()
        self.inflight = self.inflight_peak = 0
        self.first_request = self.last_request = 0.0
        self.listeners: dict[str, Listener] = {}
        for i, (name, config) in enumerate(configs.items()):
            images = [job_image(image_kb * 1024)] if preload == "all" or (
                preload == "first" and i == 0) else []
            host = SimHost(name, config, images, self._count)
            host.on_fault = self._on_fault
            self.listeners[name] = Listener(host, "")
        self.stopped = asyncio.Event()

    def _count(self, endpoint: str) -> None:
        self.endpoints[endpoint] += 1

    async def start(self) -> None:
        for name, listener in self.listeners.items():
            config = listener.host.config
            path = self.folder / f"{name}.sock"
            if config.fault == "stop" and not config.fault_after_creates:
                listener.host.state = "stopped"  # never listens: unreachable from the start
                listener.url = f"unix://{path}"
                continue
            if config.fault == "hang" and not config.fault_after_creates:
                listener.host.state = "hung"

            def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        listener: Listener = listener) -> Any:
                return self._connection(listener, reader, writer)

            if self.tcp:
                listener.server = await asyncio.start_server(handler, "127.0.0.1", 0,
                                                             backlog=256)
                port = listener.server.sockets[0].getsockname()[1]
                listener.url = f"tcp://127.0.0.1:{port}"
            else:
                listener.server = await asyncio.start_unix_server(handler, str(path),
                                                                  backlog=256)
                listener.url = f"unix://{path}"

    async def _connection(self, listener: Listener, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        listener.writers.add(writer)
        listener.connections_total += 1
        listener.connections_peak = max(listener.connections_peak, len(listener.writers))

        async def handle(request: Request) -> Response:
            self.inflight += 1
            self.inflight_peak = max(self.inflight_peak, self.inflight)
            self.first_request = self.first_request or time.monotonic()
            try:
                return await listener.host.handle(request)
            finally:
                self.inflight -= 1
                self.last_request = time.monotonic()

        try:
            await serve_connection(reader, writer, handle)
        finally:
            listener.writers.discard(writer)

    def _on_fault(self, host: SimHost, kind: str) -> None:
        listener = self.listeners[host.name]
        if kind != "stop":
            return
        if listener.server is not None:  # a dead engine: nothing listens, connections cut
            listener.server.close()
            if listener.url.startswith("unix://"):
                Path(listener.url[7:]).unlink(missing_ok=True)
        for writer in list(listener.writers):
            writer.transport.abort()

    def hosts(self) -> list[dict[str, str]]:
        return [{"name": n, "url": x.url} for n, x in self.listeners.items()]

    def stats(self) -> dict[str, Any]:
        span = (self.last_request - self.first_request) if self.first_request else 0.0
        return {"endpoints": dict(self.endpoints), "inflight_peak": self.inflight_peak,
                "request_span_s": span, "image_id": self.image_id,
                "hosts": {n: {"state": x.host.state, "requests": x.host.requests,
                              "creates": x.host.creates,
                              "containers": len(x.host.containers),
                              "volumes": len(x.host.volumes),
                              "running_peak": x.host.running_peak,
                              "connections_peak": x.connections_peak,
                              "connections_total": x.connections_total,
                              "has_image": self.image_id in x.host.images}
                          for n, x in self.listeners.items()}}

    async def control(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if parts == ["stats"]:
            return Response.of_json(self.stats())
        if parts == ["shutdown"]:
            self.stopped.set()
            return Response.of_json({"ok": True})
        if parts == ["reset"]:  # statistics only
            self.endpoints.clear()
            self.inflight_peak = self.inflight
            self.first_request = self.last_request = 0.0
            for x in self.listeners.values():
                x.connections_peak, x.host.requests = len(x.writers), 0
            return Response.of_json({"ok": True})
        if len(parts) == 3 and parts[0] == "hosts" and parts[1] in self.listeners:
            host = self.listeners[parts[1]].host
            if parts[2] == "fault":
                host.fault(request.query.get("kind", "stop"))
            elif parts[2] == "latency":
                host.config.latency = float(request.query["seconds"])
            return Response.of_json({"ok": True})
        return Response.error(404, "unknown control endpoint")


async def run(folder: Path, configs: dict[str, HostConfig], *, tcp: bool, preload: str,
              image_kb: int, lifetime: float) -> None:
    farm = Farm(folder, configs, tcp=tcp, preload=preload, image_kb=image_kb)
    await farm.start()
    control = await asyncio.start_unix_server(
        lambda r, w: serve_connection(r, w, farm.control), str(folder / "control.sock"))
    ready = folder / "hosts.json"
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "hosts": farm.hosts(),
                               "image_id": farm.image_id}))
    tmp.rename(ready)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, farm.stopped.set)
    parent = os.getppid()
    deadline = time.monotonic() + lifetime
    while not farm.stopped.is_set() and time.monotonic() < deadline and os.getppid() == parent:
        try:
            await asyncio.wait_for(farm.stopped.wait(), timeout=1.0)
        except TimeoutError:
            continue
    control.close()
    for listener in farm.listeners.values():
        if listener.server is not None:
            listener.server.close()
        for writer in list(listener.writers):
            writer.transport.abort()


def raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
