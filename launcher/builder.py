"""Run one image build on an engine: BuildKit when the engine has it, else the classic builder.

BuildKit is reached through the engine's own build endpoint (``version=2``), which every
Linux engine since Docker 18.09 serves without the CLI's buildx plugin; the context is
the launcher's tar, streamed from a temporary file. Its progress comes back as BuildKit
status messages (protobuf), decoded here just enough to show the steps, their output
and their errors. An engine that refuses BuildKit gets the classic builder.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from launcher.engine import image_id_of, short_error
from launcher.errors import ImageError

BUILDERS = ("auto", "buildkit", "classic")
BUILD_LOG_TAIL = 15
LineSink = Callable[[str], None]
_HEREDOC = re.compile(r"^\s*(RUN|COPY|ADD)\b.*<<-?\s*[\"']?[A-Za-z_]", re.M | re.I)
_NO_NETWORK = re.compile(r"Temporary failure in name resolution|Network is unreachable|"
                         r"Could not resolve|Failed to establish a new connection|"
                         r"NewConnectionError|Name or service not known", re.I)


@dataclass(frozen=True)
class BuildRequest:
    """One build: the tar stream of the context and what the engine is told."""

    tar: IO[bytes]
    tag: str
    dockerfile: str
    args: dict[str, str]
    labels: dict[str, str]
    network: str  # "none" or "default"
    builder: str = "auto"  # one of BUILDERS
    dockerfile_text: str = ""
    requirements_hint: str = "the requirements file"


@dataclass
class BuildLog:
    lines: list[str] = field(default_factory=list)
    on_line: LineSink | None = None

    def add(self, text: str) -> None:
        for line in text.rstrip("\n").splitlines():
            self.lines.append(line)
            if self.on_line and line.strip():
                self.on_line(line)


def run_build(api: Any, request: BuildRequest, on_line: LineSink | None = None) -> tuple[str, str]:
    """Build; return (image ID, the builder used). Failures raise ImageError with the log."""
    import docker.errors

    log = BuildLog(on_line=on_line)
    builder = "buildkit" if request.builder != "classic" and _has_buildkit(api) else "classic"
    if request.builder == "buildkit" and builder == "classic":
        raise ImageError("image.build.builder is buildkit but this engine has no BuildKit",
                         hint="use Docker 18.09 or newer on Linux, or set "
                         "image.build.builder: classic")
    try:
        if builder == "buildkit":
            try:
                _buildkit(api, request, log)
            except _BuildKitRefused:
                if request.builder == "buildkit":
                    raise ImageError("this engine refused a BuildKit build", hint="set "
                                     "image.build.builder: classic") from None
                builder = "classic"
                request.tar.seek(0)
        if builder == "classic":
            _classic(api, request, log)
    except docker.errors.APIError as e:
        log.add(short_error(e, 2000))
        raise build_failed(log.lines, request) from e
    image_id = image_id_of(api, request.tag)
    if not image_id:
        raise build_failed([*log.lines, "the build ended without an image"], request)
    return image_id, builder


def _has_buildkit(api: Any) -> bool:
    version = api.version()
    parts = tuple(int(p) for p in str(version.get("ApiVersion", "0.0")).split(".")[:2])
    return str(version.get("Os", "linux")) == "linux" and parts >= (1, 39)


class _BuildKitRefused(Exception):
    pass


def _buildkit(api: Any, request: BuildRequest, log: BuildLog) -> None:
    import docker.errors

    params: dict[str, Any] = {
        "t": request.tag, "dockerfile": request.dockerfile, "version": "2", "rm": "1",
        "forcerm": "1", "buildargs": json.dumps(request.args),
        "labels": json.dumps(request.labels)}
    if request.network != "default":
        params["networkmode"] = request.network
    response = api._post(api._url("/build"), params=params, data=request.tar,
                         headers={"Content-Type": "application/x-tar"}, stream=True,
                         timeout=None)
    try:
        chunks: Iterator[dict[str, Any]] = api._stream_helper(response, decode=True)
        trace = _Trace(log)
        for chunk in chunks:
            if "error" in chunk:
                log.add(str(chunk["error"]))
                raise build_failed(log.lines, request)
            if chunk.get("id") == "moby.buildkit.trace":
                trace.feed(base64.b64decode(chunk.get("aux") or ""))
            elif chunk.get("stream"):
                log.add(str(chunk["stream"]))
    except docker.errors.APIError as e:
        if "buildkit" in short_error(e).lower() and not log.lines:
            raise _BuildKitRefused from e
        raise


def _classic(api: Any, request: BuildRequest, log: BuildLog) -> None:
    stream = api.build(fileobj=request.tar, custom_context=True, tag=request.tag,
                       dockerfile=request.dockerfile, buildargs=request.args,
                       network_mode=None if request.network == "default" else request.network,
                       rm=True, forcerm=True, decode=True, labels=request.labels)
    for chunk in stream:
        if "error" in chunk:
            log.add(str(chunk.get("error", "")))
            raise build_failed(log.lines, request)
        if chunk.get("stream"):
            log.add(str(chunk["stream"]))


class _Trace:
    """BuildKit's StatusResponse messages, read just enough for a build log: each step's
    name when it starts, its output, its error. (moby/buildkit control.proto: field 1
    vertexes {1 digest, 3 name, 5 started, 7 error}, field 3 logs {1 vertex, 4 msg}.)"""

    def __init__(self, log: BuildLog) -> None:
        self.log = log
        self.started: dict[bytes, int] = {}
        self.failed: set[bytes] = set()

    def feed(self, raw: bytes) -> None:
        for number, value in _fields(raw):
            if number == 1 and isinstance(value, bytes):
                self._vertex(dict(_fields(value)))
            elif number == 3 and isinstance(value, bytes):
                message = dict(_fields(value)).get(4, b"")
                if isinstance(message, bytes):
                    self.log.add(message.decode("utf-8", "replace"))

    def _vertex(self, vertex: dict[int, bytes | int]) -> None:
        digest, name, error = vertex.get(1, b""), vertex.get(3, b""), vertex.get(7, b"")
        assert isinstance(digest, bytes) and isinstance(name, bytes)
        if 5 in vertex and digest not in self.started:
            self.started[digest] = len(self.started) + 1
            self.log.add(f"#{self.started[digest]} {name.decode('utf-8', 'replace')}")
        if isinstance(error, bytes) and error and digest not in self.failed:
            self.failed.add(digest)
            self.log.add(f"ERROR: {error.decode('utf-8', 'replace')}")


def _fields(raw: bytes) -> Iterator[tuple[int, bytes | int]]:
    """(field number, value) of a protobuf message: varints as int, the rest as bytes."""
    i = 0
    while i < len(raw):
        key, i = _varint(raw, i)
        kind = key & 7
        if kind == 0:
            value, i = _varint(raw, i)
            yield key >> 3, value
        elif kind == 2:
            size, i = _varint(raw, i)
            yield key >> 3, raw[i:i + size]
            i += size
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            yield key >> 3, raw[i:i + width]
            i += width
        else:  # groups are not used by BuildKit; stop rather than misread
            return


def _varint(raw: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while i < len(raw):
        byte = raw[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    return value, i


def build_failed(lines: list[str], request: BuildRequest) -> ImageError:
    """A failed build as one line with advice; the whole log rides along."""
    text = "\n".join(lines)
    missing = re.search(r"No matching distribution found for (\S+)", text)
    if missing and request.network == "none" and ".wheelhouse" not in request.dockerfile_text:
        # pip looked for the package index, not at the wheels the launcher supplied
        return ImageError(f"the image build could not download {missing.group(1)}: pip looked "
                          "for a package index, and the Dockerfile does not install from "
                          ".wheelhouse/",
                          build_log=text, hint=_offline_advice(request))
    if missing:
        return ImageError(f"the image build needs {missing.group(1)}, which is not in the "
                          "wheelhouse", build_log=text,
                          hint=f"add it, pinned, to {request.requirements_hint}; the launcher "
                          "downloads its wheels on the host")
    tail = " | ".join(line.strip() for line in lines[-BUILD_LOG_TAIL:] if line.strip())
    return ImageError(f"the image build failed: {tail[-1500:]}", build_log=text,
                      hint=_advice(text, request))


def _offline_advice(request: BuildRequest) -> str:
    if ".wheelhouse" not in request.dockerfile_text:
        return ("the build has no network, and the launcher put the wheels of "
                f"{request.requirements_hint} into .wheelhouse/ of the context: COPY it "
                "and `pip install --no-index --find-links` from it (as the Dockerfile of "
                "`launch init` does), or set image.build.network: default")
    return ("the build has no network (image.build.network: none, the default when the "
            "launcher supplies the wheels); set image.build.network: default if the "
            "Dockerfile must download something")


def _advice(text: str, request: BuildRequest) -> str:
    if request.network == "none" and _NO_NETWORK.search(text):
        return _offline_advice(request)
    if "externally-managed-environment" in text:
        return ("this base's Python refuses system-wide installs (PEP 668): install into a "
                "venv (RUN python3 -m venv /opt/venv, then /opt/venv/bin/pip install ...), as "
                "the Dockerfile of `launch init` does")
    if re.search(r"\bpython: (not found|No such file)", text):
        return "this base has python3 but no python: call python3"
    if "unknown instruction" in text and _HEREDOC.search(request.dockerfile_text):
        return ("heredocs (RUN <<EOF) need Dockerfile syntax 1.4, newer than this engine's "
                "built-in one: use Docker 23 or newer, or add `# syntax=docker/dockerfile:1` "
                "where a registry is reachable")
    if "--mount" in text and ("requires BuildKit" in text or "unknown flag" in text):
        return "RUN --mount needs BuildKit: leave image.build.builder at auto or buildkit"
    return "fix the Dockerfile; `launch --debug build` shows everything"
