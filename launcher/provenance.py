"""What a run's manifest says about where it came from: the sweep, the project's git
state, the launcher, the image and the backend's workers."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from pathlib import Path
from typing import Any

from launcher.backends.base import Backend
from launcher.clock import now
from launcher.image import BuiltImage
from launcher.spec import SweepSpec
from launcher.store import ImageRecord, Manifest, MetricRecord
from launcher.version import __version__


def new_manifest(spec: SweepSpec, run_id: str, image: BuiltImage,
                 backend: Backend) -> Manifest:
    """The manifest of a run of ``spec`` that starts now."""
    metric = MetricRecord(spec.metric.name, spec.metric.goal, spec.metric.target) \
        if spec.metric else None
    return Manifest.new(
        run_id=run_id, sweep=spec.name, created_at=now("seconds"),
        description=spec.description, launcher_version=__version__,
        python=platform.python_version(), sweep_path=spec.source_path,
        sweep_sha256=hashlib.sha256(spec.source_text.encode()).hexdigest(),
        git=git_state(Path(spec.image.context) if spec.image.context else spec.base_dir),
        overrides=spec.overrides.to_json(), method=spec.method, replicas=spec.replicas,
        seed=spec.seed, seed_mode=spec.seed_mode, metric=metric,
        image=ImageRecord(image.id, image.tag, image.digest, image.base, dict(image.inputs)),
        backend=backend.describe())


def git_state(folder: Path) -> dict[str, Any]:
    """Commit and dirty flag of the sweep's project (None outside a git work tree)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}
