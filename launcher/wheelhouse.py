"""The wheelhouse: Python wheels downloaded on the host for an offline image build.

Containers here cannot verify the package index's certificates and the build runs
with no network, so ``pip download`` runs on the host, once per content of the
requirement files, into a cache folder that later builds reuse. The wheel hashes go
into the image digest, so a changed wheel means a new image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import ImageError

MANIFEST = "wheels.json"


@dataclass(frozen=True)
class Wheelhouse:
    path: Path
    key: str  # hash of the wheel names and contents


def cache_root() -> Path:
    env = os.environ.get("LAUNCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "launcher"


def target_python() -> str:
    """The Python version the wheels are for (the image's; by default the host's)."""
    return os.environ.get("LAUNCH_WHEEL_PYTHON") or f"{sys.version_info[0]}.{sys.version_info[1]}"


def ensure_wheelhouse(requirements: list[Path], on_line: object = None) -> Wheelhouse:
    """Download (once) every wheel that ``requirements`` need; return the folder."""
    h = hashlib.sha256(f"python {target_python()} {os.uname().machine}\n".encode())
    for req in requirements:
        h.update(f"{req.name}\n".encode() + req.read_bytes())
    folder = cache_root() / "wheelhouse" / h.hexdigest()[:16]
    manifest = folder / MANIFEST
    if manifest.is_file():
        return Wheelhouse(folder, json.loads(manifest.read_text())["key"])
    if callable(on_line):
        on_line(f"downloading wheels for {', '.join(r.name for r in requirements)} (once)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder.parent))
    try:
        _download(requirements, staging)
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


def _download(requirements: list[Path], dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--only-binary=:all:", "--python-version", target_python(), "--dest", str(dest)]
    for req in requirements:
        cmd += ["-r", str(req)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"pip exited {result.returncode}"
        raise ImageError(f"pip download of {', '.join(str(r) for r in requirements)} failed: "
                         f"{reason}", hint="pin versions that exist as binary wheels for "
                         f"Python {target_python()}, or set LAUNCH_WHEEL_PYTHON")
