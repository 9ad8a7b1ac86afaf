"""The Docker backend's bookkeeping: each host's trials, GPUs and kept containers, the
attempts in flight, and which of a run's leftover containers a resume adopts.

No engine calls here: the backend lists and removes, these decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from launcher.backends.base import Work
from launcher.container import Running
from launcher.hosts import Host
from launcher.trial import LABEL_ATTEMPT, LABEL_TRIAL, Trial

Container = dict[str, Any]  # one entry of the engine's container list


@dataclass
class Slot:
    """One host and the trials running on it (the placement policy keeps the counts)."""

    index: int
    host: Host
    inflight: dict[str, Running] = field(default_factory=dict)
    kept: set[str] = field(default_factory=set)  # ended containers waiting for their record
    free_gpus: list[tuple[str, ...]] = field(default_factory=list)  # device groups not in use
    gpus_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # trial -> its group

    def __post_init__(self) -> None:
        self.free_gpus = list(reversed(self.host.gpu_groups))

    def take_gpus(self, trial_id: str) -> tuple[str, ...]:
        """The slot's own GPUs for a starting trial: trials running at once on a host
        never share one (the host's slots are capped by its GPU groups)."""
        devices = self.free_gpus.pop() if self.free_gpus else ()
        self.gpus_of[trial_id] = devices
        return devices

    def give_back_gpus(self, trial_id: str) -> None:
        devices = self.gpus_of.pop(trial_id, ())
        if devices:
            self.free_gpus.append(devices)


@dataclass
class Inflight:
    """An attempt being run (or adopted) by a thread of the backend."""

    work: Work
    slot: Slot
    running: Running


def attempt_of(container: Container) -> int:
    try:
        return int((container.get("Labels") or {}).get(LABEL_ATTEMPT, "1"))
    except ValueError:
        return 1


def choose_leftovers(found: list[tuple[Slot, list[Container]]], trials: dict[str, Trial],
                     recorded: set[str]) -> tuple[dict[str, tuple[Slot, Container]],
                                                  list[tuple[Slot, Container]]]:
    """(trial id -> its newest container to adopt, the containers to remove) among a run's
    containers ``found`` on each host. Removed: those of trials not in ``trials``, those
    already ``recorded`` (by container ID), those never started, older attempts. A
    container without a trial label (a CPU-model probe, maybe this run's own, still
    running) is neither: teardown removes it."""
    chosen: dict[str, tuple[Slot, Container]] = {}
    unwanted: list[tuple[Slot, Container]] = []
    for slot, containers in found:
        for container in containers:
            trial_id = (container.get("Labels") or {}).get(LABEL_TRIAL)
            if trial_id is None:
                continue
            if trial_id not in trials or container["Id"] in recorded or \
                    container.get("State") == "created":
                unwanted.append((slot, container))
                continue
            previous = chosen.get(trial_id)
            if previous is not None and attempt_of(previous[1]) >= attempt_of(container):
                unwanted.append((slot, container))
                continue
            if previous is not None:
                unwanted.append(previous)
            chosen[trial_id] = (slot, container)
    return chosen, unwanted
