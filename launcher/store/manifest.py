"""manifest.json: what a run was asked to do, where it ran and how it ended.

A :class:`Manifest` keeps the file's raw data (``attrs``) and answers through named,
typed properties, so that no other module reads its keys. Versions: the layout that
launcher 0.1.0 wrote has no ``version`` key (schema 1); it is migrated on read. A run
written by a newer launcher (a higher version) is refused.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any, TypeVar

from launcher.errors import RunError
from launcher.sections import HostSpec

SCHEMA_VERSION = 2
T = TypeVar("T")


class RunState(enum.StrEnum):
    """How far a run got. ``abandoned`` is never written: it is a ``running`` run whose
    launcher is gone (see :meth:`launcher.store.RunDir.state`)."""

    RUNNING = "running"
    FINISHED = "finished"  # every planned trial has a final status
    STOPPED = "stopped"  # deadline, failures, a lost host or an error: resumable
    INTERRUPTED = "interrupted"  # Ctrl-C or a signal: resumable
    ABANDONED = "abandoned"
    UNKNOWN = "unknown"


def from_fields(cls: type[T], raw: Any) -> T:
    """A dataclass from a JSON object, taking the keys it knows (missing: defaults)."""
    raw = raw if isinstance(raw, dict) else {}
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass(frozen=True)
class HostRecord:
    """One Docker host of the run, as it answered when the run started (never secrets)."""

    name: str = "local"
    url: str = "local"
    slots: int = 1
    cert_path: str | None = None
    engine_version: str | None = None
    engine_id: str | None = None
    engine_name: str | None = None
    cpus: int | None = None
    memory: int | None = None
    kernel: str | None = None
    os: str | None = None
    arch: str | None = None
    cpu_model: str = ""

    def spec(self) -> HostSpec:
        """How to connect to this host again (clean, logs -f, resume)."""
        return HostSpec(url=self.url, name=self.name, cert_path=self.cert_path)


@dataclass(frozen=True)
class ImageRecord:
    id: str = ""
    tag: str | None = None
    digest: str | None = None
    base: str | None = None
    # issue 13: what the digest covers, with the sha256 of every file of the build context
    # ({"files": {path: sha256}, "args", "base", "wheels"}), so that resume can name what
    # changed. None for runs made before it (schema 2 still: an added, optional key).
    inputs: dict[str, Any] | None = None


@dataclass(frozen=True)
class MetricRecord:
    name: str
    goal: str = "minimize"
    target: float | None = None  # metric.target: no new trial after one reaches it


@dataclass(frozen=True)
class SkippedHost:
    """A host of the sweep left out of the run (``skip_unreachable``), and why."""

    name: str
    reason: str = ""


@dataclass(frozen=True)
class BackendRecord:
    """What a backend tells the manifest about its workers."""

    name: str
    hosts: tuple[HostRecord, ...] = ()
    max_parallel: int | None = None
    ray: dict[str, Any] | None = None  # address, version, nodes: provenance only
    skipped: tuple[SkippedHost, ...] = ()  # issue 16: hosts left out ("skipped_hosts")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.name,
                               "hosts": [dataclasses.asdict(h) for h in self.hosts],
                               "max_parallel": self.max_parallel}
        if self.ray is not None:
            out["ray"] = self.ray
        if self.skipped:
            out["skipped_hosts"] = [dataclasses.asdict(h) for h in self.skipped]
        return out


class Manifest:
    """The manifest of one run: raw data plus named properties."""

    def __init__(self, attrs: dict[str, Any]) -> None:
        self.attrs = attrs

    @classmethod
    def from_json(cls, raw: Any, where: str) -> Manifest:
        """Migrate and check a manifest read from ``where`` (for messages)."""
        if not isinstance(raw, dict):
            raise RunError(f"{where} is damaged (not a JSON object)",
                           hint="restore it from a backup; the records are in trials.jsonl")
        version = raw.get("version", 1)
        if not isinstance(version, int) or version < 1:
            raise RunError(f"{where} has an invalid version {version!r}")
        if version > SCHEMA_VERSION:
            raise RunError(f"{where} was written by a newer launcher (run directory schema "
                           f"{version}; this launcher reads up to {SCHEMA_VERSION})",
                           hint="upgrade the launcher to read this run")
        _check_types(raw, where)
        return cls(_migrate(dict(raw), version))

    def with_fields(self, **fields: Any) -> Manifest:
        """A copy with further answers, by name (``plan_sha256``, ``hosts`` records...)."""
        attrs = dict(self.attrs)
        for key, value in fields.items():
            if key == "hosts":
                value = [dataclasses.asdict(h) for h in value]
            attrs[key] = value
        return Manifest(attrs)

    @classmethod
    def new(cls, *, run_id: str, sweep: str, created_at: str, **fields: Any) -> Manifest:
        """The manifest of a run that is starting (state running). ``fields`` are the
        properties of this class by name; ``backend`` is a :class:`BackendRecord`,
        ``image`` an :class:`ImageRecord`, ``metric`` a :class:`MetricRecord` or None."""
        backend: BackendRecord = fields.pop("backend")
        image: ImageRecord = fields.pop("image")
        metric: MetricRecord | None = fields.pop("metric", None)
        attrs = {"version": SCHEMA_VERSION, "run_id": run_id, "sweep": sweep,
                 "created_at": created_at, "finished_at": None,
                 "state": str(RunState.RUNNING), **fields,
                 "metric": dataclasses.asdict(metric) if metric else None,
                 "image": dataclasses.asdict(image), **backend.to_json(),
                 "stopped_because": None, "notes": []}
        return cls(attrs)

    def finished(self, *, state: RunState, at: str, stopped_because: str | None,
                 notes: list[str], **extra: Any) -> Manifest:
        """A copy that says how the run ended (``extra``: further answers, by name)."""
        return Manifest({**self.attrs, "state": str(state), "finished_at": at,
                         "stopped_because": stopped_because, "notes": list(notes), **extra})

    def stopping(self, *, at: str, why: str) -> Manifest:
        """A copy that says the launcher began stopping the run's containers at ``at``."""
        return Manifest({**self.attrs, "stop_requested_at": at, "stop_requested": why})

    def resumed(self, *, at: str) -> Manifest:
        """A copy for a run that a resume continues: running again, no stop pending."""
        return Manifest({**self.attrs, "state": str(RunState.RUNNING), "finished_at": None,
                         "stop_requested_at": None, "stop_requested": None,
                         "resumed_at": at})

    def to_json(self) -> dict[str, Any]:
        return dict(self.attrs)

    # -- identity and provenance ------------------------------------------------------------
    @property
    def version(self) -> int:
        return int(self.attrs.get("version", SCHEMA_VERSION))

    @property
    def run_id(self) -> str:
        return str(self.attrs.get("run_id") or "")

    @property
    def sweep(self) -> str:
        """The sweep's name as the user wrote it."""
        return str(self.attrs.get("sweep") or "")

    @property
    def description(self) -> str:
        return str(self.attrs.get("description") or "")

    @property
    def created_at(self) -> str | None:
        return self.attrs.get("created_at")

    @property
    def finished_at(self) -> str | None:
        return self.attrs.get("finished_at")

    @property
    def launcher_version(self) -> str:
        return str(self.attrs.get("launcher_version") or "")

    @property
    def sweep_path(self) -> str | None:
        return self.attrs.get("sweep_path")

    @property
    def sweep_sha256(self) -> str | None:
        return self.attrs.get("sweep_sha256")

    @property
    def plan_sha256(self) -> str | None:
        """The sha256 of the plan as written at the start (``PlanFile.sha256``)."""
        return self.attrs.get("plan_sha256")

    @property
    def settings(self) -> dict[str, Any] | None:
        """What the sweep asked of every trial (command, resources, ...) when the run
        started, to say what changed when its sweep.yaml was edited; None before it
        was recorded."""
        value = self.attrs.get("settings")
        return dict(value) if isinstance(value, dict) else None

    @property
    def git(self) -> dict[str, Any]:
        return dict(self.attrs.get("git") or {})

    @property
    def overrides(self) -> dict[str, Any]:
        """The command line's overrides (``Overrides.to_json``)."""
        return dict(self.attrs.get("overrides") or {})

    # -- what was asked ---------------------------------------------------------------------
    @property
    def method(self) -> str:
        return str(self.attrs.get("method") or "grid")

    @property
    def replicas(self) -> int:
        return int(self.attrs.get("replicas") or 1)

    @property
    def seed(self) -> int:
        return int(self.attrs.get("seed") or 0)

    @property
    def seed_mode(self) -> str:
        return str(self.attrs.get("seed_mode") or "distinct")

    @property
    def metric(self) -> MetricRecord | None:
        raw = self.attrs.get("metric")
        if not isinstance(raw, dict) or not raw.get("name"):
            return None
        target = raw.get("target")
        return MetricRecord(str(raw["name"]), str(raw.get("goal") or "minimize"),
                            float(target) if target is not None else None)

    @property
    def metric_name(self) -> str | None:
        return self.metric.name if self.metric else None

    @property
    def goal(self) -> str:
        return self.metric.goal if self.metric else "minimize"

    # -- where it ran -----------------------------------------------------------------------
    @property
    def image(self) -> ImageRecord:
        return from_fields(ImageRecord, self.attrs.get("image"))

    @property
    def backend(self) -> str:
        return str(self.attrs.get("backend") or "docker")

    @property
    def hosts(self) -> tuple[HostRecord, ...]:
        return tuple(from_fields(HostRecord, h) for h in self.attrs.get("hosts") or [])

    @property
    def max_parallel(self) -> int | None:
        value = self.attrs.get("max_parallel")
        return int(value) if value else None

    @property
    def slots(self) -> int:
        """Concurrent containers the run could have: the hosts' slots, capped by
        max_parallel (each alone when only one is known)."""
        hosts = sum(max(1, int(h.slots or 1)) for h in self.hosts)
        limit = self.max_parallel
        if limit and hosts:
            return max(1, min(limit, hosts))
        return max(1, limit or hosts or 1)

    @property
    def skipped_hosts(self) -> tuple[SkippedHost, ...]:
        """Hosts of the sweep that did not answer and were left out."""
        return tuple(from_fields(SkippedHost, h) for h in self.attrs.get("skipped_hosts") or [])

    def host_specs(self) -> list[HostSpec]:
        """How to reach the run's hosts again (the local engine for a Ray run)."""
        return [h.spec() for h in self.hosts] or [HostSpec("local", "local")]

    @property
    def ray(self) -> dict[str, Any]:
        return dict(self.attrs.get("ray") or {})

    # -- how it ended -----------------------------------------------------------------------
    @property
    def state(self) -> RunState:
        try:
            return RunState(str(self.attrs.get("state")))
        except ValueError:
            return RunState.UNKNOWN

    @property
    def stopped_because(self) -> str:
        return str(self.attrs.get("stopped_because") or "")

    @property
    def stop_requested_at(self) -> str | None:
        """When the launcher began stopping the running containers (Ctrl-C, deadline,
        failures); None when it did not, or a resume has handled it."""
        value = self.attrs.get("stop_requested_at")
        return str(value) if value else None

    @property
    def resumed_at(self) -> str | None:
        return self.attrs.get("resumed_at")

    @property
    def target_reached(self) -> str:
        """Which trial reached ``metric.target`` (empty when none did)."""
        return str(self.attrs.get("target_reached") or "")

    @property
    def notes(self) -> list[str]:
        return [str(n) for n in self.attrs.get("notes") or []]


# Keys whose JSON type the properties rely on: anything else is a damaged manifest.
_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "sweep": (str,), "state": (str,), "created_at": (str, type(None)),
    "finished_at": (str, type(None)), "sweep_sha256": (str, type(None)),
    "plan_sha256": (str, type(None)), "overrides": (dict, type(None)),
    "replicas": (int, type(None)), "seed": (int, type(None)), "metric": (dict, type(None)),
    "image": (dict, type(None)), "hosts": (list, type(None)), "notes": (list, type(None)),
    "max_parallel": (int, type(None)), "git": (dict, type(None)),
    "settings": (dict, type(None)), "stopped_because": (str, type(None))}


def _check_types(raw: dict[str, Any], where: str) -> None:
    for key, kinds in _TYPES.items():
        value = raw.get(key)
        if key in raw and (not isinstance(value, kinds) or isinstance(value, bool)):
            raise RunError(f"{where} is damaged (its {key!r} is {type(value).__name__} "
                           f"{str(value)[:40]!r})", hint="restore it from a backup; the "
                           "records are in trials.jsonl")
    for host in raw.get("hosts") or []:
        if not isinstance(host, dict):
            raise RunError(f"{where} is damaged (a host is not a JSON object)",
                           hint="restore it from a backup")


def _migrate(attrs: dict[str, Any], version: int) -> dict[str, Any]:
    """Bring an older manifest to SCHEMA_VERSION, one step at a time."""
    if version == 1:
        # 0.1.0 wrote "stopped_because": "" for a run that ended normally, "error" when
        # the launcher failed; the state said the rest. Nothing else changed shape.
        attrs["stopped_because"] = attrs.get("stopped_because") or None
        version = 2
    attrs["version"] = version
    return attrs
