"""Live history lines of Ray trials, and stop requests back to them: one small actor per run.

A trial task runs its container on its node, whose engine the driver usually cannot
reach, so the lines travel through Ray: the task pushes each batch of history rows to
this mailbox (at most every half second, one actor call) and the reply says whether the
driver asked to stop the trial; the driver drains the mailbox on its own poll and posts
stop requests. A streaming generator task would carry the lines up, but the only way
down would be ``ray.cancel``, which loses the trial's result (its log, history and last
value); one actor per run keeps both ways in one cheap, ordered channel.
"""

from __future__ import annotations

from typing import Any


class LiveChannel:
    """The mailbox (a Ray actor with no CPU): rows up, stop reasons down."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, int, list[dict[str, Any]]]] = []
        self._stops: dict[tuple[str, int], str] = {}

    def push(self, trial_id: str, attempt: int, rows: list[dict[str, Any]]) -> str:
        """A task's new rows; returns why to stop it ("" to go on)."""
        if rows:
            self._rows.append((trial_id, attempt, rows))
        return self._stops.get((trial_id, attempt), "")

    def drain(self) -> list[tuple[str, int, list[dict[str, Any]]]]:
        rows, self._rows = self._rows, []
        return rows

    def stop(self, trial_id: str, attempt: int, reason: str) -> None:
        self._stops.setdefault((trial_id, attempt), reason)


def open_channel() -> Any:
    """The run's live-lines actor (no CPU: it only passes messages)."""
    import ray

    return ray.remote(LiveChannel).options(num_cpus=0).remote()
