"""How many trials a host runs at once, and which GPUs each of its slots owns.

A host's slots are its CPUs divided by a trial's ``resources.cpus`` (or the host's own
``slots``), capped by its memory (``MemTotal`` / ``resources.memory``) and, when trials
ask for GPUs, by its GPUs (GPUs / ``resources.gpus``). Every slot owns a fixed group of
device IDs, so two trials running at the same time on one host never share a GPU.

The GPUs of a host are its ``gpus`` entry in the sweep (a count or a list of device
IDs), else what the engine's info reports as generic resources (dockerd's
``node-generic-resources``, e.g. ``NVIDIA-GPU=GPU-3a2c...`` or a count), else none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from launcher.errors import HostError


@dataclass(frozen=True)
class Capacity:
    slots: int
    gpu_groups: tuple[tuple[str, ...], ...] = ()  # one group of device IDs per slot
    notes: tuple[str, ...] = field(default_factory=tuple)


def engine_gpus(info: dict[str, Any]) -> list[str]:
    """GPU device IDs in an engine's info: named GPU resources by their ID, counted
    ones as 0..N-1."""
    named: list[str] = []
    count = 0
    for resource in info.get("GenericResources") or []:
        for kind, spec in (resource or {}).items():
            if "GPU" not in str((spec or {}).get("Kind", "")).upper():
                continue
            if kind == "NamedResourceSpec":
                named.append(str(spec.get("Value")))
            elif kind == "DiscreteResourceSpec":
                count += int(spec.get("Value") or 0)
    return named or [str(i) for i in range(count)]


def host_capacity(host: str, slots: int, info: dict[str, Any], *, gpus_per_trial: int = 0,
                  memory_per_trial: int = 0, gpus: tuple[str, ...] | None = None) -> Capacity:
    """``slots`` capped by the host's memory and GPUs; the GPU group of each slot."""
    notes = []
    memory = int(info.get("MemTotal") or 0)
    if memory and memory_per_trial and memory // memory_per_trial < slots:
        slots = max(1, memory // memory_per_trial)
        notes.append(f"host {host}: {slots} slots, as many as its memory "
                     f"({memory / 2**30:.1f} GiB) holds at resources.memory")
    if not gpus_per_trial:
        return Capacity(slots, (), tuple(notes))
    devices = list(gpus) if gpus is not None else engine_gpus(info)
    fits = len(devices) // gpus_per_trial
    if fits == 0:
        raise HostError(f"has {len(devices)} GPUs, a trial needs {gpus_per_trial} "
                        "(resources.gpus)", host=host, hint="give the host `gpus: N` (or a "
                        "list of device IDs) in the sweep's hosts, or configure the engine's "
                        "node-generic-resources")
    if fits < slots:
        slots = fits
        notes.append(f"host {host}: {slots} slots, one per {gpus_per_trial} of its "
                     f"{len(devices)} GPUs")
    groups = tuple(tuple(devices[i * gpus_per_trial:(i + 1) * gpus_per_trial])
                   for i in range(slots))
    return Capacity(slots, groups, tuple(notes))
