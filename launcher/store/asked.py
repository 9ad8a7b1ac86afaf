"""``asked`` records of trials.jsonl: the configurations an adaptive search chose.

One line per configuration, appended (fsync'd) before its trials are handed to a
backend, so a resume knows every trial that may have started and the sampler's whole
history: what it suggested (its own numbers, ``suggested``) and, from the attempt
records, how each one ended. Attempt records carry no ``kind``; readers of one kind skip
the other's lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from launcher.store.plan_file import PlannedTrial

ASKED = "asked"


@dataclass(frozen=True)
class AskedConfig:
    """One configuration an adaptive search asked for, and its trials (one per replica)."""

    number: int  # 0, 1, 2, ... in the order asked; run_cap bounds how many
    config_id: str
    params: dict[str, Any]  # nested as in the sweep file
    trials: tuple[tuple[str, int, int], ...]  # (trial_id, replica, seed)
    suggested: dict[str, Any]  # the sampler's own number (or choice) per searched parameter

    def planned(self) -> list[PlannedTrial]:
        return [PlannedTrial(t, self.config_id, replica, seed, self.params)
                for t, replica, seed in self.trials]

    def line(self) -> str:
        return json.dumps({"kind": ASKED, "number": self.number, "config_id": self.config_id,
                           "params": self.params, "trials": [list(t) for t in self.trials],
                           "suggested": self.suggested}, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, raw: Any) -> AskedConfig | None:
        """The record, or None when the line is not a valid ``asked`` record."""
        if not isinstance(raw, dict) or raw.get("kind") != ASKED:
            return None
        try:
            trials = tuple((str(t), int(r), int(s)) for t, r, s in raw["trials"])
            return cls(int(raw["number"]), str(raw["config_id"]), dict(raw["params"]),
                       trials, dict(raw.get("suggested") or {}))
        except (KeyError, TypeError, ValueError):
            return None


def parse_asked(data: bytes) -> Iterator[AskedConfig]:
    """Every valid ``asked`` record, in order (each number once: the first wins)."""
    seen: set[int] = set()
    for line in data.split(b"\n"):
        if b'"kind"' not in line:
            continue
        try:
            asked = AskedConfig.from_json(json.loads(line))
        except ValueError:
            continue  # torn by a crash mid-append
        if asked is not None and asked.number not in seen:
            seen.add(asked.number)
            yield asked
