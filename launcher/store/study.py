"""scale-<stamp>.json: one scaling study (`launch scale`) beside the runs it made.

A study runs one sweep file at several sizes, one run each. Its file says which sizes
it asked for, which run each finished size is, and whether the study finished, so that
an interrupted study can be continued (`launch scale ... --resume`) instead of started
again, and no partial size is ever plotted as a result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from launcher.store.files import write_json

PREFIX = "scale-"


@dataclass(frozen=True)
class StudyFile:
    """One study: what was asked, the run of each size started so far, its state."""

    path: Path
    sweep_path: str | None
    sweep_sha256: str
    sizes: tuple[int, ...]
    runs: dict[int, str] = field(default_factory=dict)  # N -> run id
    state: str = "running"  # running, interrupted, finished
    created_at: str = ""

    @classmethod
    def new(cls, folder: Path, sweep_path: str | None, sweep_sha256: str,
            sizes: tuple[int, ...]) -> StudyFile:
        moment = datetime.now(UTC)
        stamp = moment.strftime("%Y%m%d-%H%M%S")
        return cls(folder / f"{PREFIX}{stamp}.json", sweep_path, sweep_sha256, sizes,
                   created_at=moment.isoformat(timespec="seconds").replace("+00:00", "Z"))

    @property
    def stem(self) -> str:
        """``scale-<stamp>``: the plot and the page are named after it."""
        return self.path.stem

    def with_run(self, n: int, run_id: str) -> StudyFile:
        return replace(self, runs={**self.runs, n: run_id})

    def ended(self, state: str) -> StudyFile:
        return replace(self, state=state)

    def save(self) -> StudyFile:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"version": 1, "sweep_path": self.sweep_path,
                               "sweep_sha256": self.sweep_sha256, "sizes": list(self.sizes),
                               "runs": {str(n): r for n, r in self.runs.items()},
                               "state": self.state, "created_at": self.created_at})
        return self

    @classmethod
    def load(cls, path: Path) -> StudyFile | None:
        try:
            raw: Any = json.loads(path.read_bytes())
            return cls(path, raw.get("sweep_path"), str(raw["sweep_sha256"]),
                       tuple(int(n) for n in raw["sizes"]),
                       {int(n): str(r) for n, r in (raw.get("runs") or {}).items()},
                       str(raw.get("state") or "running"), str(raw.get("created_at") or ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


def unfinished_study(folder: Path, sweep_path: str | None, sweep_sha256: str,
                     sizes: tuple[int, ...]) -> StudyFile | None:
    """The newest study in ``folder`` of this sweep file and these sizes that did not
    finish (interrupted, or its launcher died)."""
    for path in sorted(folder.glob(f"{PREFIX}*.json"), reverse=True):
        study = StudyFile.load(path)
        if study and study.state != "finished" and study.sizes == sizes and \
                (study.sweep_path, study.sweep_sha256) == (sweep_path, sweep_sha256):
            return study
    return None
