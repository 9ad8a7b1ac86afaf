"""Where the next trial goes, and which hosts are out of the run: a pure policy.

- least loaded: the healthy host with a free slot and the lowest running/slots share
  (the earliest listed among equals);
- down: a host whose trial came back ``lost`` and that no longer answers a ping;
- quarantine: a host that failed ``quarantine_after`` trials in a row while another
  healthy host succeeded since the first of those failures (a host-specific fault,
  not a bad sweep: when every host fails, none is quarantined).

No Docker here: the backend tells it what happened and asks it what to do, so the
policy is unit-tested on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from launcher.trial import TrialStatus

QUARANTINE_AFTER = 5  # consecutive failures on one host while other hosts succeed


@dataclass
class HostLoad:
    """What the policy knows about one host."""

    name: str
    slots: int
    running: int = 0
    down: str = ""  # why the host is out of the run; empty while healthy
    streak: int = 0  # consecutive results that were not successes
    streak_since: float = 0.0
    last_success: float = -1.0


class Placement:
    def __init__(self, hosts: list[tuple[str, int]], *,
                 quarantine_after: int = QUARANTINE_AFTER,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hosts = [HostLoad(name, max(1, slots)) for name, slots in hosts]
        self.quarantine_after = quarantine_after
        self.clock = clock
        self.notes: list[str] = []

    def pick(self) -> int | None:
        """The index of the host for the next trial; None when no healthy slot is free."""
        free = [i for i, h in enumerate(self.hosts) if not h.down and h.running < h.slots]
        return min(free, key=lambda i: self.hosts[i].running / self.hosts[i].slots,
                   default=None)

    def started(self, i: int) -> None:
        self.hosts[i].running += 1

    def finished(self, i: int, status: TrialStatus, answers: Callable[[], bool],
                 reason: str = "") -> None:
        """A trial on host ``i`` ended with ``status`` (and ``reason``); ``answers`` pings
        the host (only called when the trial was lost)."""
        host = self.hosts[i]
        host.running -= 1
        now = self.clock()
        if status in (TrialStatus.SUCCEEDED, TrialStatus.STOPPED):  # it ran as asked
            host.streak, host.last_success = 0, now
            return
        if status is TrialStatus.CANCELLED:
            return
        if host.streak == 0:
            host.streak_since = now
        host.streak += 1
        if status is TrialStatus.LOST and not host.down and not answers():
            self.mark_down(i, f"stopped answering ({reason})" if reason else
                           "stopped answering")
        others_fine = any(o.last_success > host.streak_since for o in self.hosts
                          if o is not host and not o.down)
        if host.streak >= self.quarantine_after and others_fine and not host.down:
            self.mark_down(i, f"quarantined after {host.streak} failed trials in a row "
                              "while other hosts succeeded")

    def mark_down(self, i: int, why: str) -> None:
        self.hosts[i].down = why
        self.notes.append(f"host {self.hosts[i].name} {why}")

    def healthy(self) -> list[int]:
        return [i for i, h in enumerate(self.hosts) if not h.down]

    def answering(self, i: int) -> bool:
        """False for a host that stopped answering (quarantined hosts still answer)."""
        return not self.hosts[i].down.startswith("stopped answering")

    def down_summary(self) -> str:
        return "; ".join(f"{h.name}: {h.down}" for h in self.hosts)
