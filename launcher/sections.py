"""Validation of the launcher's own sweep-file sections: image, hosts, resources, env, mounts."""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from launcher import defaults
from launcher.command import ENVVAR_MACRO
from launcher.schema import Reader, scalar_text
from launcher.units import parse_memory
from launcher.yamlfile import KeyPath

HOST_SCHEMES = ("local", "unix://", "tcp://", "ssh://", "context:")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")
MIN_MEMORY = 6 * 1024 * 1024  # Docker refuses containers with less


@dataclass(frozen=True)
class ImageSpec:
    """A prebuilt ``tag``, or a build of ``dockerfile`` in ``context`` with ``args``."""

    tag: str | None = None
    context: str | None = None  # absolute; None: the sweep file's project (found at build)
    dockerfile: str = "Dockerfile"
    args: tuple[tuple[str, str], ...] = ()
    requirements: tuple[str, ...] | None = None  # None: the usual places in the context
    network: str | None = None  # "none" | "default"; None: none when the launcher
    #                             supplies the wheels, else the engine's default
    builder: str = "auto"  # "auto" (BuildKit when the engine has it) | "buildkit" | "classic"


@dataclass(frozen=True)
class HostSpec:
    """One Docker host as written in the sweep: where it is and how many trials it runs."""

    url: str
    name: str
    slots: int | None = None
    cert_path: str | None = None
    gpus: tuple[str, ...] | None = None  # device IDs; None: as the engine reports them


@dataclass(frozen=True)
class RaySection:
    """The sweep's ``ray:`` section: the cluster to hand trials to (None: an embedded,
    local Ray just for the run)."""

    address: str | None = None


@dataclass(frozen=True)
class Resources:
    """What one trial's container may use (the engine enforces it)."""

    cpus: float = defaults.CPUS
    memory: int = defaults.MEMORY
    pids: int = defaults.PIDS
    gpus: int = defaults.GPUS
    shm: int | None = None  # /dev/shm; None: the engine's default (64 MiB)
    tmp: int = parse_memory(defaults.TMP_SIZE)  # the /tmp tmpfs (and the HOME tmpfs)


@dataclass(frozen=True)
class Mount:
    """A read-only data input: a named volume, or (local host only) a bind of a local path."""

    kind: str  # "volume" | "bind"
    source: str
    target: str


def parse_image(reader: Reader, raw: object, base: Path) -> ImageSpec:
    if raw is None:
        return ImageSpec()
    if isinstance(raw, str):
        return ImageSpec(tag=raw)
    image = reader.mapping(raw, ("image",))
    reader.check_keys(image, ("image",), ("build", "tag"))
    if "build" in image and "tag" in image:
        raise reader.error(("image",), "give either image.build or image.tag, not both")
    if "tag" in image:
        return ImageSpec(tag=reader.string(image["tag"], ("image", "tag")))
    at: KeyPath = ("image", "build")
    build = reader.mapping(image.get("build") or {}, at)
    reader.check_keys(build, at, ("context", "dockerfile", "args", "requirements", "network",
                                  "builder"))
    context = None
    if "context" in build:
        context = str((base / reader.string(build["context"], (*at, "context"))).resolve())
    args = reader.mapping(build.get("args") or {}, (*at, "args"))
    requirements = None
    if "requirements" in build:
        requirements = reader.string_list(build["requirements"], (*at, "requirements"))
    return ImageSpec(
        context=context,
        dockerfile=reader.string(build.get("dockerfile", "Dockerfile"), (*at, "dockerfile")),
        args=tuple((str(k), scalar_text(v)) for k, v in args.items()),
        requirements=requirements,
        network=reader.choice(build["network"], (*at, "network"), ("none", "default"))
        if "network" in build else None,
        builder=reader.choice(build.get("builder", "auto"), (*at, "builder"),
                              ("auto", "buildkit", "classic")),
    )


def parse_hosts(reader: Reader, raw: object, at: KeyPath, base: Path) -> tuple[HostSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise reader.error(at, "must be a non-empty list of hosts")
    hosts: list[HostSpec] = []
    for i, entry in enumerate(raw):
        hosts.append(_host(reader, entry, (*at, i), base, [h.name for h in hosts]))
    urls = [h.url for h in hosts]
    for i, url in enumerate(urls):
        if url in urls[:i]:
            raise reader.error((*at, i), f"host {url} is listed twice")
    return tuple(hosts)


def _host(reader: Reader, entry: object, at: KeyPath, base: Path, taken: list[str]) -> HostSpec:
    if isinstance(entry, str):
        entry = {"url": entry}
    host = reader.mapping(entry, at)
    reader.check_keys(host, at, ("url", "name", "slots", "cert_path", "gpus"))
    url = reader.string(host.get("url"), (*at, "url"))
    if not url.startswith(HOST_SCHEMES) or (url != "local" and url.startswith("local")):
        raise reader.error((*at, "url"), f"host URL {url!r} must be local, unix://PATH, "
                           "tcp://HOST:PORT, ssh://USER@HOST or context:NAME")
    slots = reader.integer(host["slots"], (*at, "slots"), minimum=1) if "slots" in host else None
    cert_path = None
    if "cert_path" in host:
        cert_path = str((base / reader.string(host["cert_path"], (*at, "cert_path")))
                        .expanduser())
    name = reader.string(host["name"], (*at, "name")) if "name" in host else _default_name(
        url, taken)
    if not _HOST_NAME.fullmatch(name):
        raise reader.error((*at, "name"), f"host name {name!r} must match [A-Za-z0-9._-]+")
    if name in taken:
        raise reader.error((*at, "name"), f"host name {name!r} is used twice")
    return HostSpec(url=url, name=name, slots=slots, cert_path=cert_path,
                    gpus=_gpus(reader, host["gpus"], (*at, "gpus")) if "gpus" in host else None)


def _gpus(reader: Reader, raw: object, at: KeyPath) -> tuple[str, ...]:
    """A host's GPUs: a count (devices 0..N-1) or a list of device IDs (indexes or UUIDs)."""
    if isinstance(raw, list):
        return reader.string_list(raw, at)
    return tuple(str(i) for i in range(reader.integer(raw, at, minimum=0)))


def _default_name(url: str, taken: list[str]) -> str:
    """A short table-friendly name: local, the host part of a URL, or the context name."""
    if url == "local":
        name = "local"
    elif url.startswith("context:"):
        name = url.split(":", 1)[1]
    elif url.startswith("unix://"):
        path = Path(url[len("unix://"):])
        name = path.parent.name if path.stem == "docker" and path.parent.name else path.stem
    else:
        name = urlsplit(url).hostname or url
    name = re.sub(r"[^A-Za-z0-9._-]", "-", name) or "host"
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}-{n}", n + 1
    return candidate


def parse_resources(reader: Reader, raw: object) -> Resources:
    if raw is None:
        return Resources()
    res = reader.mapping(raw, ("resources",))
    reader.check_keys(res, ("resources",), ("cpus", "memory", "pids", "gpus", "shm", "tmp"))
    out = Resources()
    cpus = reader.number(res.get("cpus", out.cpus), ("resources", "cpus"), positive=True)
    memory = _size(reader, res, "memory", out.memory, MIN_MEMORY, "6m (Docker's minimum)")
    pids = reader.integer(res.get("pids", out.pids), ("resources", "pids"), minimum=1)
    gpus = reader.integer(res.get("gpus", out.gpus), ("resources", "gpus"), minimum=0)
    shm = _size(reader, res, "shm", None, 1024**2, "1m") if "shm" in res else None
    tmp = _size(reader, res, "tmp", out.tmp, 1024**2, "1m")
    return Resources(cpus=cpus, memory=memory, pids=pids, gpus=gpus, shm=shm, tmp=tmp)


def _size(reader: Reader, res: dict[str, Any], key: str, default: int | None, minimum: int,
          said: str) -> int:
    if key not in res:
        assert default is not None
        return default
    try:
        size = parse_memory(res[key])
    except ValueError as e:
        raise reader.error(("resources", key), str(e)) from None
    if size < minimum:
        raise reader.error(("resources", key), f"must be at least {said}")
    return size


def parse_env(reader: Reader, raw: object) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    env = reader.mapping(raw, ("env",))
    out = []
    for name, value in env.items():
        if not _ENV_NAME.fullmatch(name):
            raise reader.error(("env", name), f"{name!r} is not a valid environment name")
        if name.startswith("LAUNCH_"):
            raise reader.error(("env", name), "LAUNCH_* names are set by the launcher")
        if isinstance(value, dict | list) or value is None:
            raise reader.error(("env", name), "must be a string, number or boolean")
        out.append((name, scalar_text(value)))
    return tuple(out)


def envvar_references(env: tuple[tuple[str, str], ...]) -> list[str]:
    """Launcher environment variables that ``${envvar:NAME}`` env values read."""
    return [m.group(1) for _, value in env for m in ENVVAR_MACRO.finditer(value)]


def resolve_env(env: tuple[tuple[str, str], ...], environ: dict[str, str] | Any) -> dict[str, str]:
    """Substitute ``${envvar:NAME}``; such values live only in memory, never on disk."""
    missing = [n for n in envvar_references(env) if n not in environ]
    if missing:
        raise ValueError(f"env uses ${{envvar:{missing[0]}}} but {missing[0]} is not set in "
                         "the launcher's environment")
    return {name: ENVVAR_MACRO.sub(lambda m: str(environ[m.group(1)]), value)
            for name, value in env}


RESERVED_TARGETS = ("/outputs", "/tmp", "/proc", "/sys", "/dev")


def _target_problem(target: str) -> str | None:
    """Why a mount target is refused: it must be a plain absolute path that lies neither
    on nor inside the trial's own folders (``/outputs/..`` is ``/``)."""
    if not target.startswith("/") or ".." in target.split("/"):
        return "must be an absolute path without '..'"
    clean = posixpath.normpath(target)
    if clean == "/" or any(clean == r or clean.startswith(r + "/") for r in RESERVED_TARGETS):
        return f"must not be / nor on or inside {', '.join(RESERVED_TARGETS)}"
    return None


def parse_mounts(reader: Reader, raw: object, base: Path) -> tuple[Mount, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise reader.error(("mounts",), "must be a list of {volume|bind, target}")
    mounts = []
    for i, entry in enumerate(raw):
        at: KeyPath = ("mounts", i)
        m = reader.mapping(entry, at)
        reader.check_keys(m, at, ("volume", "bind", "target"))
        if ("volume" in m) == ("bind" in m):
            raise reader.error(at, "give exactly one of volume: NAME or bind: PATH")
        target = reader.string(m.get("target"), (*at, "target"))
        problem = _target_problem(target)
        if problem:
            raise reader.error((*at, "target"), f"{target!r} {problem}")
        if "volume" in m:
            mounts.append(Mount("volume", reader.string(m["volume"], (*at, "volume")), target))
        else:
            # As written (made absolute): launcher.safety resolves it to check it, and the
            # engine is given the resolved path.
            source = os.path.abspath(base / reader.string(m["bind"], (*at, "bind")))
            mounts.append(Mount("bind", source, target))
    return tuple(mounts)
