"""The build context of a training image: which files, their digests, the tar sent to the engine.

What is not the job stays out even without a ``.dockerignore`` (which adds to these):
the launcher's results root and run directories, the sweep files, version-control
folders, virtualenvs and conda environments (found by their marker files, whatever
their name), caches and editor litter. So running a sweep writes results next to the
code without changing the image, and the same code gives the same image ID.

Every kept file has its own digest (recorded in the run's manifest), so a run that is
resumed against a changed context can say which files changed.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

WHEELHOUSE_DIR = ".wheelhouse"
# Folders and files that are never part of a job, wherever they are in the context.
IGNORED_NAMES = frozenset({
    ".git", ".hg", ".svn", WHEELHOUSE_DIR, "__pycache__", ".pytest_cache", ".mypy_cache",
    ".ruff_cache", ".ipynb_checkpoints", ".hypothesis", ".tox", ".nox", ".cache",
    ".DS_Store", ".idea", ".vscode", "wandb", "mlruns", "lightning_logs", "multirun",
})
IGNORED_SUFFIXES = (".pyc", ".pyo", ".swp", "~")
# A folder holding one of these is an environment or a launcher run, not source code.
ENVIRONMENT_MARKERS = ("pyvenv.cfg", "conda-meta")
RUN_MARKERS = ("manifest.json", "plan.json")
SWEEP_SIGNS = ("method", "metric", "program", "command", "replicas", "run_cap", "image",
               "seed_mode", "hosts", "resources", "early_terminate")
SNIFF_LIMIT = 256 * 1024


@dataclass(frozen=True)
class BuildContext:
    """The kept paths of a context (files, folders, links; sorted) and each file's digest:
    ``sha256hex`` (plus `` x`` when executable) or ``-> target`` for a link."""

    root: Path
    paths: tuple[str, ...]
    digests: Mapping[str, str] = field(default_factory=dict)


def scan_context(root: Path, dockerfile: str = "Dockerfile",
                 leave_out: Iterable[Path] = ()) -> BuildContext:
    """Walk ``root``: the default exclusions, then the .dockerignore (Docker's own rules),
    never descending into what is left out. ``leave_out``: more paths to keep out (the
    results root, the sweep file)."""
    from docker.utils.build import PatternMatcher

    root = root.resolve()
    skip = {p.resolve() for p in leave_out}
    matcher = PatternMatcher([*_dockerignore(root), f"!{dockerfile}"])
    negations = [p.cleaned_pattern for p in matcher.patterns if p.exclusion]
    kept: list[str] = []

    def walk(folder: Path, rel_folder: str) -> None:
        for name in sorted(os.listdir(folder)):
            path, rel = folder / name, f"{rel_folder}{name}"
            is_dir = path.is_dir() and not path.is_symlink()
            if path in skip or _never_in_context(path, name, is_dir):
                continue
            ignored = matcher.matches(rel)
            if not ignored:
                kept.append(rel)
            if is_dir and (not ignored or any(n.startswith(rel) for n in negations)):
                walk(path, rel + "/")

    walk(root, "")
    paths = tuple(sorted(kept))
    return BuildContext(root, paths, {rel: _file_digest(root / rel) for rel in paths
                                      if (root / rel).is_file() or (root / rel).is_symlink()})


def _dockerignore(root: Path) -> list[str]:
    ignore = root / ".dockerignore"
    if not ignore.is_file():
        return []
    lines = (line.strip() for line in ignore.read_text(encoding="utf-8").splitlines())
    # The launcher's wheelhouse goes in whatever the file says (it is added separately).
    return [line for line in lines if line and not line.startswith("#")
            and line.strip("/") != WHEELHOUSE_DIR]


def _never_in_context(path: Path, name: str, is_dir: bool) -> bool:
    if name in IGNORED_NAMES or name.endswith(IGNORED_SUFFIXES):
        return True
    if is_dir:
        return any((path / m).exists() for m in ENVIRONMENT_MARKERS) or all(
            (path / m).is_file() for m in RUN_MARKERS)
    return name.endswith((".yaml", ".yml")) and is_sweep_file(path)


def is_sweep_file(path: Path) -> bool:
    """A YAML file that a launcher (or W&B) reads as a sweep: a mapping with
    ``parameters`` and one of the sweep keys, or (a sweep of replicas only) two of them.
    Sweep files are launcher inputs: editing one must not change the image."""
    import yaml

    try:
        if path.stat().st_size > SNIFF_LIMIT:
            return False
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    if not isinstance(data, dict):
        return False
    signs = sum(k in data for k in SWEEP_SIGNS)
    return signs >= 2 or (signs == 1 and "parameters" in data)


def _file_digest(path: Path) -> str:
    if path.is_symlink():
        return f"-> {os.readlink(path)}"
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest() + (" x" if os.access(path, os.X_OK) else "")


def context_digest(context: BuildContext, dockerfile: str, args: Mapping[str, str],
                   base: str, wheels_key: str | None) -> str:
    """The image digest: Dockerfile name, base image IDs, build args, every kept file
    (name, executable bit, content; links by target) and the wheels."""
    h = hashlib.sha256()
    h.update(f"dockerfile={dockerfile}\nbase={base}\n".encode())
    for key in sorted(args):
        h.update(f"arg {key}={args[key]}\n".encode())
    for rel in context.paths:
        digest = context.digests.get(rel)
        if digest is None:
            continue
        if digest.startswith("-> "):
            h.update(f"link {rel} {digest[3:]}\n".encode())
        else:
            content, _, executable = digest.partition(" ")
            h.update(f"file {rel} {executable == 'x'} ".encode())
            h.update(bytes.fromhex(content))
    if wheels_key is not None:
        h.update(f"wheels {wheels_key}\n".encode())
    return h.hexdigest()


def context_tar(context: BuildContext, wheelhouse: Path | None) -> IO[bytes]:
    """The context as an uncompressed tar in a temporary file (streamed to the engine,
    never held in memory), the wheelhouse inside as ``.wheelhouse/``; stable metadata."""
    out = tempfile.TemporaryFile(prefix="launcher-context-")  # noqa: SIM115 - returned
    with tarfile.open(fileobj=out, mode="w") as tar:
        for rel in context.paths:
            _add(tar, context.root / rel, rel)
        if wheelhouse is not None:
            _add(tar, wheelhouse, WHEELHOUSE_DIR)
            for wheel in sorted(wheelhouse.glob("*.whl")):
                _add(tar, wheel, f"{WHEELHOUSE_DIR}/{wheel.name}")
    out.seek(0)
    return out


def _add(tar: tarfile.TarFile, path: Path, name: str) -> None:
    info: tarfile.TarInfo | None = tar.gettarinfo(str(path), arcname=name)
    if info is None:  # a socket or similar: nothing Docker could copy either
        return
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = 0
    if info.isfile():
        with path.open("rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def describe_changes(before: Mapping[str, Any], after: Mapping[str, Any], limit: int = 5) -> str:
    """What differs between two recorded build inputs (see ``build_inputs``), in words:
    ``changed: train.py; added: data.csv; build args: BASE``."""
    parts = []
    old, new = dict(before.get("files") or {}), dict(after.get("files") or {})
    for label, names in (("changed", [f for f in new if f in old and old[f] != new[f]]),
                         ("added", [f for f in new if f not in old]),
                         ("removed", [f for f in old if f not in new])):
        if names:
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            parts.append(f"{label}: {', '.join(sorted(names)[:limit])}{more}")
    for key, label in (("args", "build args"), ("base", "base image"), ("wheels", "wheels")):
        if before.get(key) != after.get(key):
            parts.append(f"{label} changed")
    return "; ".join(parts)
