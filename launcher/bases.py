"""Base images of a Dockerfile: make sure each FROM is on the engine, and learn the
platform of the image the wheels are for.

Any ``FROM NAME`` works when the engine has NAME or can pull it. Where no registry
answers, an official base given as a build argument (``ARG BASE=python:3.11-slim``,
``FROM ${BASE}``) is replaced by its locally made twin (``launch base-image`` makes
``launcher-base:python3.11-bookworm`` from Debian packages); anything else fails
with one line that says what to do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Any

from launcher.engine import image_id_of, short_error
from launcher.errors import ImageError

# Official bases and their locally made twins; LAUNCH_BASE_IMAGE names another twin.
LOCAL_BASES = {"python:3.11-slim": "launcher-base:python3.11-bookworm"}
DEFAULT_TWIN = "launcher-base:python3.11-bookworm"
_ARG = re.compile(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)", re.M | re.I)
_FROM = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", re.M | re.I)
_REF = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
PROBE = ("import sys, platform, json; print(json.dumps({'python': '%d.%d' % "
         "sys.version_info[:2], 'machine': platform.machine(), 'libc': platform.libc_ver()}))")


@dataclass(frozen=True)
class Base:
    """One external base of the Dockerfile, as it will be built."""

    name: str
    id: str
    arg: str | None = None  # the build argument that names it, if any


def resolve_bases(api: Any, dockerfile: str, args: dict[str, str],
                  engine: str = "local") -> list[Base]:
    """Every external FROM image, present on the engine (pulled if needed). An official
    base named by a build argument that cannot be pulled is replaced by its local twin
    (``args`` is updated), so registry-less machines build the same file."""
    defaults = {k: v.strip("\"'") for k, v in _ARG.findall(dockerfile)}
    stages: set[str] = set()
    bases: list[Base] = []
    for ref, alias in _FROM.findall(dockerfile):
        arg_match = _REF.fullmatch(ref)
        arg = arg_match.group(1) if arg_match else None
        name = args.get(arg, defaults.get(arg, "")) if arg else ref
        if name and name.lower() != "scratch" and name not in stages:
            name = _available(api, name, arg, args, engine)
            base = Base(name, image_id_of(api, name) or "", arg)
            if base.id not in [b.id for b in bases]:
                bases.append(base)
        if alias:
            stages.add(alias)
    return bases


def _available(api: Any, name: str, arg: str | None, args: dict[str, str], engine: str) -> str:
    import docker.errors

    if image_id_of(api, name):
        return name
    twin = os.environ.get("LAUNCH_BASE_IMAGE") or LOCAL_BASES.get(name)
    if arg and twin and image_id_of(api, twin):
        args[arg] = twin
        return twin
    repository, _, tag = name.partition(":")
    try:
        api.pull(repository, tag=tag or "latest")
        return name
    except docker.errors.APIError as e:
        raise ImageError(f"base image {name} is not on engine {engine} and cannot be pulled "
                         f"({short_error(e, 120)})", hint=_what_to_do(name, arg, twin)) from e


def _what_to_do(name: str, arg: str | None, twin: str | None) -> str:
    twin = twin or DEFAULT_TWIN
    make = f"`launch base-image` makes {twin} from Debian packages"
    if arg:
        return f"{make}; or build on another base with --set image.build.args.{arg}=IMAGE"
    return (f"write `ARG BASE={name}` and `FROM ${{BASE}}` in the Dockerfile, then {make} and "
            f"the launcher uses it; or `docker load` {name} onto the engine")


@dataclass(frozen=True)
class ImagePlatform:
    """What the wheels must fit: the image's Python (major.minor), CPU and C library."""

    python: str
    machine: str = "x86_64"
    libc: str = "glibc"
    libc_version: str = "2.17"

    def pip_platforms(self) -> list[str]:
        """pip's ``--platform`` values for this image (newest compatible first)."""
        arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(self.machine, self.machine)
        major, _, minor = self.libc_version.partition(".")
        if self.libc == "musl":
            return [f"musllinux_{major}_{m}_{arch}" for m in range(int(minor or 2), 0, -1)]
        newest = int(minor) if major == "2" and minor.isdigit() else 17
        return [*(f"manylinux_2_{m}_{arch}" for m in range(max(newest, 17), 16, -1)),
                f"manylinux2014_{arch}"]

    def describe(self) -> str:
        return f"CPython {self.python} on {self.libc} {self.libc_version} {self.machine}"


def image_platform(api: Any, base: Base, cache: dict[str, Any] | None = None) -> ImagePlatform:
    """The platform of ``base`` (its python3 run once in a throwaway container, cached by
    image ID); the launcher's own Python version and the engine's CPU when it has no
    python3 (a base that installs Python later)."""
    if cache is not None and base.id in cache:
        return ImagePlatform(**cache[base.id])
    found = _probe(api, base.id)
    if found is None:
        machine = str(api.inspect_image(base.id).get("Architecture") or "amd64")
        return ImagePlatform(f"{sys.version_info[0]}.{sys.version_info[1]}", machine)
    libc, version = found["libc"] if found["libc"][0] else ("musl", "1.2")
    platform = ImagePlatform(found["python"], found["machine"], libc or "glibc", version)
    if cache is not None:
        cache[base.id] = platform.__dict__
    return platform


def _probe(api: Any, image_id: str) -> dict[str, Any] | None:
    cid = ""
    try:
        cid = api.create_container(
            image_id, entrypoint=["python3", "-c", PROBE], user="65534:65534",
            network_disabled=True, host_config=api.create_host_config(
                network_mode="none", read_only=True, cap_drop=["ALL"],
                security_opt=["no-new-privileges"], mem_limit=128 * 2**20))["Id"]
        api.start(cid)
        if int(api.wait(cid, timeout=60)["StatusCode"]) != 0:
            return None
        found = json.loads(api.logs(cid, stdout=True, stderr=False).decode().strip())
        return found if isinstance(found, dict) else None
    except Exception:  # no python3 in the base: the caller falls back to defaults
        return None
    finally:
        if cid:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)
