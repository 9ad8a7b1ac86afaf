"""The wheelhouse: Python wheels downloaded on the host for an offline image build.

Containers here cannot verify the package index's certificates and the build runs
with no network, so ``pip download`` runs on the host, once per content of the
requirement files and image platform, into a cache folder that later builds reuse.
The wheels are for the image's platform (its Python, CPU and C library, see
:class:`launcher.bases.ImagePlatform`), not the host's: a laptop on macOS or arm64
fills the wheelhouse with wheels the image can install. The wheel hashes go into
the image digest, so a changed wheel means a new image.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from launcher.errors import ImageError

if TYPE_CHECKING:
    from launcher.bases import ImagePlatform

MANIFEST = "wheels.json"
_PINNED = re.compile(r"===?|@|--hash|\.whl\b")
_NO_WHEEL = re.compile(r"(?:Could not find a version that satisfies the requirement|"
                       r"No matching distribution found for) ([^\s(]+)")


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    key: str  # hash of the wheel names and contents


def cache_root() -> Path:
    env = os.environ.get("LAUNCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "launcher"


def target_python(platform: ImagePlatform | None = None) -> str:
    """The Python version the wheels are for: LAUNCH_WHEEL_PYTHON, else the image's,
    else the launcher's own."""
    return os.environ.get("LAUNCH_WHEEL_PYTHON") or (
        platform.python if platform else f"{sys.version_info[0]}.{sys.version_info[1]}")


def ensure_wheelhouse(requirements: list[Path], platform: ImagePlatform | None = None,
                      on_line: object = None) -> Wheelhouse:
    """Download (once) every wheel that ``requirements`` need; return the folder."""
    flags = pip_target_flags(platform)
    h = hashlib.sha256(f"{' '.join(flags)}\n".encode())
    for req in requirements:
        h.update(f"{req.name}\n".encode() + req.read_bytes())
    folder = cache_root() / "wheelhouse" / h.hexdigest()[:16]
    manifest = folder / MANIFEST
    if manifest.is_file():
        return Wheelhouse(folder, json.loads(manifest.read_text())["key"])
    if callable(on_line):
        on_line(f"downloading wheels for {', '.join(r.name for r in requirements)} "
                f"({describe(platform)}; once)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        _download(requirements, staging, flags, platform)
        wheels = {w.name: hashlib.sha256(w.read_bytes()).hexdigest()
                  for w in sorted(staging.glob("*.whl"))}
        key = hashlib.sha256(json.dumps(wheels, sort_keys=True).encode()).hexdigest()
        (staging / MANIFEST).write_text(json.dumps({"key": key, "wheels": wheels}, indent=1))
        try:
            staging.rename(folder)
        except OSError:  # another launcher finished the same download first
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Wheelhouse(folder, json.loads(manifest.read_text())["key"])


def pip_target_flags(platform: ImagePlatform | None) -> list[str]:
    """pip download's flags for the image: binary wheels only, its Python and platforms."""
    flags = ["--only-binary=:all:", "--python-version", target_python(platform)]
    if platform is not None:
        flags += ["--implementation", "cp"]
        for tag in platform.pip_platforms():
            flags += ["--platform", tag]
    return flags


def describe(platform: ImagePlatform | None) -> str:
    return platform.describe() if platform else f"CPython {target_python()}"


def _download(requirements: list[Path], dest: Path, flags: list[str],
              platform: ImagePlatform | None) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           *flags, "--dest", str(dest)]
    for req in requirements:
        cmd += ["-r", str(req)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode == 0:
        return
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    reason = lines[-1].strip() if lines else f"pip exited {result.returncode}"
    missing = _NO_WHEEL.search(result.stderr)
    if missing:
        reason = (f"{missing.group(1)} has no binary wheel for the image's platform "
                  f"({describe(platform)}) on the package index")
    raise ImageError(f"pip download of {', '.join(str(r) for r in requirements)} failed: "
                     f"{reason}", hint="pin a version that publishes a binary wheel for that "
                     "platform (or put the wheel you built in the requirements as a path)")


def unpinned(requirements: list[Path]) -> list[str]:
    """Requirements without an exact version (``==``): a new release would change the
    image the next time the wheelhouse is made."""
    out = []
    for req in requirements:
        for raw in req.read_text(encoding="utf-8").splitlines():
            line = raw.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-")) or _PINNED.search(line):
                continue
            out.append(f"{req.name}: {line}")
    return out
