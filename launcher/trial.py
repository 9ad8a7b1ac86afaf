"""Trials, their outcomes, and the image <-> launcher contract.

The contract, in one place (the training job's docstring says the same from its side):

In
    argv rendered from the sweep (``command``, or ``program``, or the image's entrypoint
    plus ``--name=value`` items), never through a shell; environment variables
    ``LAUNCH_TRIAL_ID``, ``LAUNCH_SEED`` and ``LAUNCH_PARAMS`` (JSON, nested as in the
    sweep file); with ``${args_json_file}`` also a read-only ``/run/launcher/params.json``
    whose path is in ``WANDB_SWEEP_PARAM_PATH``.
Out
    JSON lines on stdout with a ``step`` or ``epoch`` key (the history); a final stdout
    line ``{"metrics": {...}}``; the same metrics in ``/outputs/metrics.json``; other
    files under ``/outputs`` are artifacts. Exit code 0 means success. Metrics hold only
    deterministic values, so equal seeds can be checked for equal results.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

ENV_TRIAL_ID = "LAUNCH_TRIAL_ID"
ENV_SEED = "LAUNCH_SEED"
ENV_PARAMS = "LAUNCH_PARAMS"
# ${args_json_file}: the parameters as a JSON file, mounted read-only (W&B's macro and
# environment variable)
PARAMS_DIR = "/run/launcher"
PARAMS_PATH = PARAMS_DIR + "/params.json"
ENV_PARAM_PATH = "WANDB_SWEEP_PARAM_PATH"
OUTPUTS_DIR = "/outputs"
METRICS_FILE = "metrics.json"
HISTORY_KEYS = ("step", "epoch")

# Labels on every container and volume the launcher starts; `clean` finds them by these.
LABEL_MANAGED = "io.launcher.managed"
LABEL_RUN = "io.launcher.run"
LABEL_TRIAL = "io.launcher.trial"
LABEL_SWEEP = "io.launcher.sweep"
LABEL_ATTEMPT = "io.launcher.attempt"


class TrialStatus(enum.StrEnum):
    """How a trial ended. Terminal statuses are never run again on resume. ``stopped``:
    early termination (hyperband) stopped it on purpose; a normal end, not a failure."""

    SUCCEEDED = "succeeded"
    STOPPED = "stopped"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    OOM_KILLED = "oom_killed"
    LOST = "lost"
    CANCELLED = "cancelled"
    NOT_STARTED = "not_started"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def ok(self) -> bool:
        return self is TrialStatus.SUCCEEDED


_TERMINAL = frozenset({TrialStatus.SUCCEEDED, TrialStatus.STOPPED, TrialStatus.FAILED,
                       TrialStatus.TIMED_OUT, TrialStatus.OOM_KILLED})


@dataclass(frozen=True, slots=True)
class Trial:
    """One container to run: a configuration, a replica index and its seed.

    ``params`` is flat and ordered as in the sweep file, with dotted names for nested
    groups; ``paths`` says where each sits (a W&B name may itself hold dots: ``a.b`` is
    one key, not a group); :meth:`nested_params` gives the shape of the file.
    """

    trial_id: str
    config_id: str
    index: int
    replica: int
    seed: int
    params: tuple[tuple[str, Any], ...]
    paths: tuple[tuple[str, ...], ...] = ()  # empty: every dot separates a group

    def nested_params(self) -> dict[str, Any]:
        return nest(self.params, self.paths)

    def to_json(self) -> dict[str, Any]:
        return {"trial_id": self.trial_id, "config_id": self.config_id,
                "replica": self.replica, "seed": self.seed, "params": self.nested_params()}


def nest(flat: tuple[tuple[str, Any], ...] | list[tuple[str, Any]],
         paths: tuple[tuple[str, ...], ...] = ()) -> dict[str, Any]:
    """``[("model.hidden", 8)]`` -> ``{"model": {"hidden": 8}}``; with ``paths``, only the
    given groups nest (``[("a.b", 1)]`` with path ``("a.b",)`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for i, (name, value) in enumerate(flat):
        *groups, leaf = paths[i] if paths else name.split(".")
        node = out
        for group in groups:
            node = node.setdefault(group, {})
        node[leaf] = value
    return out


def pluck(nested: dict[str, Any], dotted_name: str) -> Any:
    """The value of ``model.hidden`` in ``{"model": {"hidden": 8}}`` or in
    ``{"model.hidden": 8}`` (None when absent)."""
    if dotted_name in nested:
        return nested[dotted_name]
    parts = dotted_name.split(".")
    for end in range(len(parts) - 1, 0, -1):
        node = nested.get(".".join(parts[:end]))
        if isinstance(node, dict):
            found = pluck(node, ".".join(parts[end:]))
            if found is not None:
                return found
    return None


@dataclass(slots=True)
class TrialResult:
    """What one attempt of one trial produced. Failures are results, not exceptions."""

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
    outputs_truncated: bool = False  # /outputs was over outputs_limit: the copy is partial
    # Everything below is written to files by the store, not kept in the table.
    log: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    outputs: IO[bytes] | None = None  # a tar stream of /outputs, when collected
    extra: dict[str, Any] = field(default_factory=dict)  # backend provenance (ray node, ...)


def metrics_line(metric: str) -> str:
    """The final stdout line a job prints to report ``metric`` (the contract's "Out")."""
    return json.dumps({"metrics": {metric: 0.93}})


def missing_metric(metric: str, reported: Iterable[str], *, any_trial: bool = False) -> str:
    """Why metrics miss the sweep's metric (of one job, or of every trial with
    ``any_trial``), what was reported instead, and the line that fixes it."""
    names = sorted(set(reported))
    head = (f"no trial reported the sweep's metric {metric!r}" if any_trial
            else f"the job reported no {metric!r}")
    said = f"reported: {', '.join(names)}" if names else "no final metrics line"
    return f"{head} ({said}); the job's last stdout line must be like {metrics_line(metric)}"
