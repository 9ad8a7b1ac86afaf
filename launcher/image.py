"""Build the training image once per content, and know it by its image ID.

The tag is ``launcher-job:<digest>``, where the digest covers everything that decides
the image: the Dockerfile, every file of the build context (see
:mod:`launcher.buildcontext` for what stays out), the build arguments, the base
images' IDs and the wheels. An unchanged context is never rebuilt: the tag is found
and its ID returned at once. Python dependencies reach the build as a wheelhouse
downloaded on the host for the image's platform (see :mod:`launcher.wheelhouse`) and
injected into the context as ``.wheelhouse/``; such a build runs with no network.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.buildcontext import WHEELHOUSE_DIR as WHEELHOUSE_DIR
from launcher.engine import image_id_of, short_error
from launcher.errors import ImageError
from launcher.sections import ImageSpec
from launcher.trial import LABEL_MANAGED

if TYPE_CHECKING:
    import docker

    from launcher.bases import Base, ImagePlatform
    from launcher.wheelhouse import Wheelhouse

IMAGE_REPOSITORY = "launcher-job"
LABEL_DIGEST = "io.launcher.digest"
DEFAULT_REQUIREMENTS = ("requirements.txt", "experiments/requirements.txt")
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
    env: tuple[str, ...] = ()  # the image's ENV entries (NAME=value)
    builder: str = ""  # "buildkit" or "classic" when built now
    # What the digest covers, per file: recorded in the manifest so that a resumed run
    # can say which files changed ({"files": {path: sha256}, "args", "base", "wheels"}).
    inputs: Mapping[str, Any] = field(default_factory=dict)

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
                         hint="set image.build.context, or image.tag for a prebuilt image; "
                         "`launch init` writes a starter project")
    return context


def ensure_image(client: docker.DockerClient, spec: ImageSpec, sweep_dir: Path,
                 on_line: LineSink | None = None, *,
                 leave_out: Iterable[Path] = ()) -> BuiltImage:
    """The image of ``spec`` on the engine of ``client``: a prebuilt tag, or a build.
    ``leave_out``: paths that are never part of the context (results root, sweep file)."""
    if spec.tag is not None:
        image = _prebuilt(client, spec.tag)
    else:
        image = build_image(client, spec, find_context(spec, sweep_dir), on_line,
                            leave_out=leave_out)
    config = client.api.inspect_image(image.id).get("Config") or {}
    return replace(image, user=str(config.get("User") or ""),
                   env=tuple(str(e) for e in config.get("Env") or ()))


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
                on_line: LineSink | None = None, *,
                leave_out: Iterable[Path] = ()) -> BuiltImage:
    """Build (or find) the image of ``context``; see the module docstring."""
    from launcher.bases import resolve_bases
    from launcher.buildcontext import context_digest, scan_context
    from launcher.wheelhouse import ensure_wheelhouse

    dockerfile = (context / spec.dockerfile).read_text(encoding="utf-8")
    args = dict(spec.args)
    bases = resolve_bases(client.api, dockerfile, args)
    base = ",".join(b.id for b in bases)
    requirements = _requirements(spec, context)
    wheelhouse = None
    if requirements:
        platform = _platform(client.api, bases)
        wheelhouse = ensure_wheelhouse(requirements, platform, on_line)
    files = scan_context(context, spec.dockerfile, leave_out)
    digest = context_digest(files, spec.dockerfile, args, base,
                            wheelhouse.key if wheelhouse else None)
    inputs = {"files": dict(files.digests), "args": args, "base": base,
              "wheels": wheelhouse.key if wheelhouse else None}
    tag = f"{IMAGE_REPOSITORY}:{digest[:16]}"
    existing = image_id_of(client.api, tag)
    if existing:
        return BuiltImage(id=existing, tag=tag, digest=digest, base=base, inputs=inputs)
    _warn_unpinned(requirements, on_line)
    hint = ", ".join(str(r.relative_to(context)) for r in requirements) or "requirements.txt"
    image_id, builder = _build(client, spec, files, wheelhouse, tag, args, digest,
                               (dockerfile, hint), on_line)
    return BuiltImage(id=image_id, tag=tag, digest=digest, built=True, base=base,
                      builder=builder, inputs=inputs)


def _build(client: docker.DockerClient, spec: ImageSpec, files: Any,
           wheelhouse: Wheelhouse | None, tag: str, args: dict[str, str], digest: str,
           texts: tuple[str, str], on_line: LineSink | None) -> tuple[str, str]:
    from launcher.buildcontext import context_tar
    from launcher.builder import BuildRequest, run_build

    # No network when the launcher supplies the wheels: the build is hermetic.
    network = spec.network or ("none" if wheelhouse else "default")
    with context_tar(files, wheelhouse.path if wheelhouse else None) as tar:
        request = BuildRequest(
            tar=tar, tag=tag, dockerfile=spec.dockerfile, args=args,
            labels={LABEL_MANAGED: "true", LABEL_DIGEST: digest}, network=network,
            builder=spec.builder, dockerfile_text=texts[0], requirements_hint=texts[1])
        return run_build(client.api, request, on_line)


def _platform(api: Any, bases: list[Base]) -> ImagePlatform | None:
    """The platform of the last base (the runtime stage's, as a rule), cached on disk."""
    from launcher.bases import image_platform
    from launcher.wheelhouse import cache_root

    if not bases:
        return None
    cache_file = cache_root() / "bases.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    platform = image_platform(api, bases[-1], cache)
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        cache_file.write_text(json.dumps(cache, indent=1))
    except OSError:  # a read-only cache only costs a probe next time
        pass
    return platform


def _warn_unpinned(requirements: list[Path], on_line: LineSink | None) -> None:
    from launcher.wheelhouse import unpinned

    loose = unpinned(requirements)
    if loose and on_line:
        on_line(f"warning: not pinned to one version ({'; '.join(loose[:5])}): the wheelhouse "
                "keeps the versions it downloaded first, and a new machine may get newer "
                "ones; pin them (name==version) for a reproducible image")


def _requirements(spec: ImageSpec, context: Path) -> list[Path]:
    if spec.requirements is not None:
        paths = [context / r for r in spec.requirements]
        for p in paths:
            if not p.is_file():
                raise ImageError(f"requirements file {p} does not exist",
                                 hint="fix image.build.requirements (relative to the context)")
        return paths
    return [context / r for r in DEFAULT_REQUIREMENTS if (context / r).is_file()]
