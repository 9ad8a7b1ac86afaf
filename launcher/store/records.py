"""trials.jsonl: one durable record per finished attempt, the source of truth of a run.

A record is appended (and fsync'd) only after the trial's files are in place, so a
record always means "finished and complete". A torn line (the launcher killed
mid-write) or a damaged one is skipped; a trial recorded twice counts once
(:func:`best_records`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from launcher.trial import TrialResult, TrialStatus

# Which record wins when a trial has several: a success, then another final status
# (stopped early by hyperband is one), then an infrastructure outcome; the latest among
# equals.
_STATUS_RANK = {TrialStatus.SUCCEEDED: 3, TrialStatus.STOPPED: 2, TrialStatus.FAILED: 2,
                TrialStatus.TIMED_OUT: 2, TrialStatus.OOM_KILLED: 2, TrialStatus.CANCELLED: 1,
                TrialStatus.LOST: 1, TrialStatus.NOT_STARTED: 0}


@dataclass(frozen=True)
class TrialRecord:
    """One finished attempt of one trial (no log, history or output bytes)."""

    trial_id: str
    status: TrialStatus
    reason: str = ""
    exit_code: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    host: str = ""
    image_id: str = ""
    container_id: str = ""
    attempt: int = 1
    queued_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # backend provenance (ray node, ...)
    # issue 13: /outputs was over outputs_limit and its copy is partial. Written only when
    # true, so records without it (all older ones) read the same.
    outputs_truncated: bool = False
    # The argv the container ran (``${envvar:NAME}`` left unexpanded: never a secret on
    # disk); the image's own entrypoint, when kept, is the item "<entrypoint>".
    argv: tuple[str, ...] | None = None
    steps: int | None = None  # history lines the trial wrote (None: written before 0.2)

    @classmethod
    def of(cls, result: TrialResult, argv: list[str] | None = None) -> TrialRecord:
        return cls(result.trial_id, result.status, result.reason, result.exit_code,
                   dict(result.metrics), result.host, result.image_id, result.container_id,
                   result.attempt, result.queued_at, result.started_at, result.finished_at,
                   result.duration_s, dict(result.extra), result.outputs_truncated,
                   tuple(argv) if argv is not None else None, len(result.history))

    @classmethod
    def from_json(cls, raw: Any) -> TrialRecord | None:
        """The record, or None when the line is not a valid record."""
        if not isinstance(raw, dict) or not isinstance(raw.get("trial_id"), str) or \
                "kind" in raw:  # another kind of line (launcher.store.asked)
            return None
        try:
            status = TrialStatus(str(raw.get("status")))
            exit_code = raw.get("exit_code")
            return cls(
                raw["trial_id"], status, str(raw.get("reason") or ""),
                int(exit_code) if exit_code is not None else None,
                dict(raw.get("metrics") or {}), str(raw.get("host") or ""),
                str(raw.get("image_id") or ""), str(raw.get("container_id") or ""),
                int(raw.get("attempt") or 1), raw.get("queued_at"), raw.get("started_at"),
                raw.get("finished_at"), _float(raw.get("duration_s")),
                dict(raw.get("extra") or {}), raw.get("outputs_truncated") is True,
                _argv(raw.get("argv")), _int(raw.get("steps")))
        except (TypeError, ValueError):
            return None

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "status": str(self.status), "reason": self.reason,
                "exit_code": self.exit_code, "metrics": self.metrics, "host": self.host,
                "image_id": self.image_id, "container_id": self.container_id,
                "attempt": self.attempt, "queued_at": self.queued_at,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "duration_s": self.duration_s, "extra": self.extra, "steps": self.steps,
                **({"outputs_truncated": True} if self.outputs_truncated else {}),
                **({"argv": list(self.argv)} if self.argv is not None else {})}

    def line(self) -> str:
        return json.dumps(self.to_json(), ensure_ascii=False, default=str) + "\n"

    @property
    def rank(self) -> int:
        return _STATUS_RANK.get(self.status, 0)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _argv(value: Any) -> tuple[str, ...] | None:
    return tuple(str(v) for v in value) if isinstance(value, list) else None


def parse_records(data: bytes) -> Iterator[TrialRecord]:
    """Every valid record of a trials.jsonl, in order; torn or damaged lines skipped."""
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # torn by a crash mid-append: the trial counts as not recorded
        record = TrialRecord.from_json(raw)
        if record is not None:
            yield record


def best_records(records: Iterable[TrialRecord]) -> dict[str, TrialRecord]:
    """One record per trial: the best status wins (succeeded > other final status >
    lost/cancelled), and the latest among equals. A retry racing a late result
    therefore counts once. A container recorded as lost or cancelled keeps that record
    when it is collected again later with anything but a success: its exit then tells
    how it was killed (an engine restart, a launcher's stop), not how the trial went."""
    best: dict[str, TrialRecord] = {}
    for record in records:
        previous = best.get(record.trial_id)
        if previous is not None and _same_container_worse(previous, record):
            continue
        if previous is None or record.rank >= previous.rank:
            best[record.trial_id] = record
    return best


def _same_container_worse(previous: TrialRecord, record: TrialRecord) -> bool:
    return bool(previous.container_id) and previous.container_id == record.container_id \
        and previous.status in (TrialStatus.LOST, TrialStatus.CANCELLED) \
        and record.status is not TrialStatus.SUCCEEDED


# Statuses that `resume --retry-failed` runs again; without it only trials with no final
# status (never started, cancelled, lost) run.
RETRYABLE = frozenset({TrialStatus.FAILED, TrialStatus.TIMED_OUT, TrialStatus.OOM_KILLED})


def still_to_run(trial_ids: Iterable[str], best: dict[str, TrialRecord],
                 retry_failed: bool = False) -> list[str]:
    """The planned trials a resume runs, in plan order: those without a final record (and,
    with ``retry_failed``, those that failed, timed out or were OOM-killed). `launch
    status` counts with the same function, so its numbers are what resume will do."""
    out = []
    for trial_id in trial_ids:
        record = best.get(trial_id)
        if record is None or not record.status.terminal or (
                retry_failed and record.status in RETRYABLE):
            out.append(trial_id)
    return out
