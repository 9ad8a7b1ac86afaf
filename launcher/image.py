"""Build the training image once per content, and know it by its image ID.

The tag is ``launcher-job:<digest>``, where the digest covers everything that decides
the image: the Dockerfile, every file of the build context that .dockerignore keeps,
the build arguments, the base image's ID and the wheels. An unchanged context is never
rebuilt: the tag is found and its ID returned at once. Python dependencies reach the
build as a wheelhouse downloaded on the host (see :mod:`launcher.wheelhouse`) and
injected into the context as ``.wheelhouse/``; the build runs with network mode none.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.engine import image_id_of, short_error
from launcher.errors import ImageError
from launcher.sections import ImageSpec
from launcher.trial import LABEL_MANAGED

if TYPE_CHECKING:
    import docker

IMAGE_REPOSITORY = "launcher-job"
LABEL_DIGEST = "io.launcher.digest"
WHEELHOUSE_DIR = ".wheelhouse"
DEFAULT_REQUIREMENTS = ("requirements.txt", "experiments/requirements.txt")
# Where no registry answers, an official base is replaced by one made from Debian packages
# by scripts/base-image.sh. LAUNCH_BASE_IMAGE names another replacement.
LOCAL_BASES = {"python:3.11-slim": "launcher-base:python3.11-bookworm"}
BUILD_LOG_TAIL = 15
NON_ROOT_USER = "10001:10001"

LineSink = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    """The one image a run uses. ``id`` (sha256 of its config) is what hosts must match."""

    id: str
    tag: str
    digest: str = ""
    built: bool = False  # False when an image with the same digest already existed
    base: str = ""
    user: str = ""  # the image's configured USER ("" means root)

    def run_as(self, requested: str | None) -> str:
        """The container user: as the sweep asks, else the image's if it is not root,
        else the launcher's unprivileged 10001 (the uid the project's Dockerfile uses)."""
        if requested:
            return requested
        if self.user and self.user.split(":")[0] not in ("root", "0"):
            return self.user
        return NON_ROOT_USER


def find_context(spec: ImageSpec, sweep_dir: Path) -> Path:
    """The build context: as given, else the nearest folder up from the sweep with the
    Dockerfile (the sweep's project), else the current directory."""
    if spec.context is not None:
        context = Path(spec.context)
        if not context.is_dir():
            raise ImageError(f"build context {context} does not exist",
                             hint="fix image.build.context in the sweep file (it is relative "
                             "to the sweep file)")
    else:
        candidates = [sweep_dir.resolve(), *sweep_dir.resolve().parents]
        context = next((d for d in candidates if (d / spec.dockerfile).is_file()), Path.cwd())
    if not (context / spec.dockerfile).is_file():
        raise ImageError(f"no {spec.dockerfile} in the build context {context}",
                         hint="set image.build.context, or image.tag for a prebuilt image")
    return context


def ensure_image(client: docker.DockerClient, spec: ImageSpec, sweep_dir: Path,
                 on_line: LineSink | None = None) -> BuiltImage:
    """The image of ``spec`` on the engine of ``client``: a prebuilt tag, or a build."""
    if spec.tag is not None:
        image = _prebuilt(client, spec.tag)
    else:
        image = build_image(client, spec, find_context(spec, sweep_dir), on_line)
    config = client.api.inspect_image(image.id).get("Config") or {}
    return replace(image, user=str(config.get("User") or ""))


def _prebuilt(client: docker.DockerClient, tag: str) -> BuiltImage:
    import docker.errors

    try:
        return BuiltImage(id=client.images.get(tag).id, tag=tag)
    except docker.errors.ImageNotFound:
        pass
    try:
        return BuiltImage(id=client.images.pull(tag).id, tag=tag)
    except docker.errors.APIError as e:
        raise ImageError(f"image {tag} is not on the engine and cannot be pulled "
                         f"({short_error(e)})", hint="build it first, or load it with "
                         "`docker load`") from e


def build_image(client: docker.DockerClient, spec: ImageSpec, context: Path,
                on_line: LineSink | None = None) -> BuiltImage:
    """Build (or find) the image of ``context``; see the module docstring."""
    from launcher.wheelhouse import ensure_wheelhouse

    dockerfile = (context / spec.dockerfile).read_text(encoding="utf-8")
    args = dict(spec.args)
    base = resolve_bases(client, dockerfile, args)
    requirements = _requirements(spec, context)
    wheelhouse = ensure_wheelhouse(requirements, on_line) if requirements else None
    files = context_files(context, spec.dockerfile)
    digest = context_digest(context, files, spec.dockerfile, args, base, wheelhouse)
    tag = f"{IMAGE_REPOSITORY}:{digest[:16]}"
    existing = image_id_of(client.api, tag)
    if existing:
        return BuiltImage(id=existing, tag=tag, digest=digest, built=False, base=base)
    tarball = context_tar(context, files, wheelhouse.path if wheelhouse else None)
    image_id = _run_build(client, tarball, tag, spec.dockerfile, args, digest, on_line)
    return BuiltImage(id=image_id, tag=tag, digest=digest, built=True, base=base)


def resolve_bases(client: docker.DockerClient, dockerfile: str, args: dict[str, str]) -> str:
    """Make sure every FROM image is on the engine; return their IDs joined.

    An official base that cannot be pulled is replaced by its locally made twin when
    that exists (``args`` is updated), so registry-less machines build the same file.
    """
    defaults = dict(re.findall(r"^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)=(\S+)", dockerfile, re.M))
    stages: set[str] = set()
    ids: list[str] = []
    for match in re.finditer(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", dockerfile,
                             re.M | re.I):
        ref, alias = match.group(1), match.group(2)
        arg = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", ref)
        name = args.get(arg.group(1), defaults.get(arg.group(1), "")) if arg else ref
        if name and name != "scratch" and name not in stages:
            name = _available_base(client, name, arg.group(1) if arg else None, args)
            image_id = image_id_of(client.api, name) or ""
            if image_id not in ids:
                ids.append(image_id)
        if alias:
            stages.add(alias)
    return ",".join(ids)


def _available_base(client: docker.DockerClient, name: str, arg: str | None,
                    args: dict[str, str]) -> str:
    import docker.errors

    if image_id_of(client.api, name):
        return name
    local = os.environ.get("LAUNCH_BASE_IMAGE") or LOCAL_BASES.get(name)
    if arg and local and image_id_of(client.api, local):
        args[arg] = local
        return local
    try:
        client.images.pull(name)
        return name
    except docker.errors.APIError as e:
        hint = ("run scripts/base-image.sh to make one from Debian packages" if local
                else "load it with `docker load`, or name another one in image.build.args")
        raise ImageError(f"base image {name} is not on the engine and cannot be pulled "
                         f"({short_error(e)})", hint=hint) from e


def _requirements(spec: ImageSpec, context: Path) -> list[Path]:
    if spec.requirements is not None:
        paths = [context / r for r in spec.requirements]
        for p in paths:
            if not p.is_file():
                raise ImageError(f"requirements file {p} does not exist",
                                 hint="fix image.build.requirements (relative to the context)")
        return paths
    return [context / r for r in DEFAULT_REQUIREMENTS if (context / r).is_file()]


def context_files(context: Path, dockerfile: str) -> list[str]:
    """Relative paths of the context that .dockerignore keeps (Docker's own rules)."""
    from docker.utils.build import exclude_paths

    patterns: list[str] = []
    ignore = context / ".dockerignore"
    if ignore.is_file():
        patterns = [line.strip() for line in ignore.read_text().splitlines()
                    if line.strip() and not line.strip().startswith("#")]
    patterns = [p for p in patterns if p.strip("/") != WHEELHOUSE_DIR]
    kept = exclude_paths(str(context), patterns, dockerfile=dockerfile)
    return sorted(p for p in kept if not p.startswith(WHEELHOUSE_DIR + "/")
                  and p != WHEELHOUSE_DIR)


def context_digest(context: Path, files: Iterable[str], dockerfile: str, args: dict[str, str],
                   base: str, wheelhouse: Any) -> str:
    h = hashlib.sha256()
    h.update(f"dockerfile={dockerfile}\nbase={base}\n".encode())
    for key in sorted(args):
        h.update(f"arg {key}={args[key]}\n".encode())
    for rel in files:
        path = context / rel
        if path.is_file() and not path.is_symlink():
            h.update(f"file {rel} {os.access(path, os.X_OK)} ".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
        elif path.is_symlink():
            h.update(f"link {rel} {os.readlink(path)}\n".encode())
    if wheelhouse is not None:
        h.update(f"wheels {wheelhouse.key}\n".encode())
    return h.hexdigest()


def context_tar(context: Path, files: Iterable[str], wheelhouse: Path | None) -> io.BytesIO:
    """The context as an uncompressed tar with the wheelhouse inside; stable metadata."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for rel in files:
            _add(tar, context / rel, rel)
        if wheelhouse is not None:
            _add(tar, wheelhouse, WHEELHOUSE_DIR)
            for wheel in sorted(wheelhouse.glob("*.whl")):
                _add(tar, wheel, f"{WHEELHOUSE_DIR}/{wheel.name}")
    buf.seek(0)
    return buf


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info = tar.gettarinfo(str(path), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if info.isfile():
        with path.open("rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def _run_build(client: docker.DockerClient, tarball: io.BytesIO, tag: str, dockerfile: str,
               args: dict[str, str], digest: str, on_line: LineSink | None) -> str:
    import docker.errors

    log: list[str] = []
    try:
        stream = client.api.build(
            fileobj=tarball, custom_context=True, tag=tag, dockerfile=dockerfile,
            buildargs=args, network_mode="none", rm=True, forcerm=True, decode=True,
            labels={LABEL_MANAGED: "true", LABEL_DIGEST: digest})
        for chunk in stream:
            if "error" in chunk:
                log.append(str(chunk.get("error", "")).rstrip())
                raise _build_failed(log)
            text = str(chunk.get("stream", "")).rstrip("\n")
            if text:
                log.append(text)
                if on_line:
                    on_line(text)
    except docker.errors.APIError as e:
        log.append(short_error(e))
        raise _build_failed(log) from e
    image_id = image_id_of(client.api, tag)
    if not image_id:
        raise _build_failed([*log, "the build ended without an image"])
    return image_id


def _build_failed(log: list[str]) -> ImageError:
    text = "\n".join(log)
    missing = re.search(r"No matching distribution found for (\S+)", text)
    if missing:
        return ImageError(f"the image build needs {missing.group(1)}, which is not in the "
                          "wheelhouse", build_log=text,
                          hint="add it, pinned, to the requirements file the launcher reads "
                          "(experiments/requirements.txt); the launcher downloads its wheels "
                          "on the host")
    tail = " | ".join(line.strip() for line in log[-BUILD_LOG_TAIL:] if line.strip())
    return ImageError(f"the image build failed: {tail[-1500:]}", build_log=text,
                      hint="fix the Dockerfile; `launch --debug build` shows everything")
