"""What a run's manifest says about where it came from: the sweep, the project's git
state, the launcher, the image and the backend's workers."""

from __future__ import annotations

import dataclasses
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
        backend=backend.describe(), settings=sweep_settings(spec))


def sweep_settings(spec: SweepSpec) -> dict[str, Any]:
    """What the sweep asks of every trial, as JSON: the manifest keeps it so that a
    resume can say what changed in an edited sweep file. Hosts (and skip_unreachable),
    results and max_parallel are left out: a resume may change where trials run. ``env``
    values are as written (``${envvar:NAME}``, never the secret)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        if f.name in SETTINGS_LEFT_OUT:
            continue
        out[f.name] = _json(getattr(spec, f.name))
    return out


SETTINGS_LEFT_OUT = ("name", "description", "parameters", "hosts", "results", "max_parallel",
                     "skip_unreachable", "source_path", "source_text", "overrides", "warnings")


def _json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _json(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple | list | frozenset | set):
        items = [_json(v) for v in value]
        return sorted(items, key=str) if isinstance(value, frozenset | set) else items
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return value


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
