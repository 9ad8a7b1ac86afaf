"""Just enough HTTP/1.1 for docker-py: keep-alive, Content-Length and chunked request
bodies, Content-Length responses. One asyncio task per connection; no pipelining
(requests never pipelines)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

REASONS = {200: "OK", 201: "Created", 204: "No Content", 304: "Not Modified",
           400: "Bad Request", 404: "Not Found", 409: "Conflict", 500: "Server Error"}


@dataclass
class Request:
    method: str
    path: str  # unquoted, without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def flag(self, name: str) -> bool:
        return self.query.get(name, "").lower() in ("1", "true", "yes")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data).encode(), {"Content-Type": "application/json"})

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.of_json({"message": message}, status)

    def encode(self) -> bytes:
        head = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}",
                f"Content-Length: {len(self.body)}", "Server: sim-engine",
                *(f"{k}: {v}" for k, v in self.headers.items())]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


Handler = Callable[[Request], Awaitable[Response]]


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection; None when the client closed it."""
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
        key, _, value = raw.decode("latin-1").partition(":")
        headers[key.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    parts = urlsplit(target)
    return Request(method.upper(), unquote(parts.path), dict(parse_qsl(parts.query)),
                   headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks: list[bytes] = []
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # CRLF after each chunk


async def serve_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                           handler: Handler) -> None:
    """Answer requests on one connection until the client closes it."""
    try:
        while (request := await read_request(reader)) is not None:
            response = await handler(request)
            writer.write(response.encode())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass  # the client went away mid-request
    finally:
        writer.close()
