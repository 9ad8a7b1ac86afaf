"""plan.json: the trials a run planned, in launch order (the table has one row each).

An adaptive run (``method: bayes``) plans no trial up front: its plan.json records the
search space (``adaptive``) and version 2, so that a launcher that cannot read it refuses
it; its trials are the ``asked`` records of trials.jsonl (:mod:`launcher.store.asked`),
which :meth:`launcher.store.RunDir.plan` appends to the file's own trials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from launcher.errors import RunError
from launcher.trial import Trial

PLAN_VERSION = 2  # 2: adaptive plans (a search space); fixed plans are still written as 1


@dataclass(frozen=True)
class PlannedTrial:
    """One planned trial: ids, replica, seed and its parameters nested as in the file."""

    trial_id: str
    config_id: str
    replica: int
    seed: int
    params: dict[str, Any]


# W&B distributions whose values spread on a log scale: the report draws them on log axes.
LOG_KINDS = frozenset({"log_uniform", "log_uniform_values", "q_log_uniform",
                       "q_log_uniform_values", "inv_log_uniform", "inv_log_uniform_values",
                       "log_normal", "q_log_normal"})


@dataclass(frozen=True)
class AdaptivePlan:
    """What an adaptive run searches: at most ``run_cap`` configurations x ``replicas``."""

    method: str
    sampler: str
    run_cap: int
    replicas: int
    space: tuple[dict[str, Any], ...]  # one {"name", "searched_as", ...} per parameter

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "sampler": self.sampler, "run_cap": self.run_cap,
                "replicas": self.replicas, "space": [dict(d) for d in self.space]}

    @classmethod
    def from_json(cls, raw: Any) -> AdaptivePlan:
        return cls(str(raw["method"]), str(raw["sampler"]), int(raw["run_cap"]),
                   int(raw["replicas"]), tuple(dict(d) for d in raw["space"]))


@dataclass(frozen=True)
class PlanFile:
    parameters: tuple[str, ...]  # dotted names, in the sweep file's order
    trials: tuple[PlannedTrial, ...]  # the file's own, then (adaptive) the asked ones
    version: int = 1
    # dotted name -> the sweep's distribution (categorical, int_uniform, log_uniform_values,
    # ...); empty in older plans (the report then infers the scale from the values)
    kinds: dict[str, str] = field(default_factory=dict)
    adaptive: AdaptivePlan | None = None
    fixed: int | None = None  # how many of ``trials`` plan.json itself lists (None: all)

    @classmethod
    def of(cls, trials: Sequence[Trial], parameters: Sequence[str],
           kinds: dict[str, str] | None = None,
           adaptive: AdaptivePlan | None = None) -> PlanFile:
        return cls(tuple(parameters), tuple(
            PlannedTrial(t.trial_id, t.config_id, t.replica, t.seed, t.nested_params())
            for t in trials), 2 if adaptive else 1, dict(kinds or {}), adaptive)

    def log_scale(self, name: str) -> bool | None:
        """Whether the sweep drew ``name`` from a log distribution (None: not recorded)."""
        kind = self.kinds.get(name)
        return None if kind is None else kind in LOG_KINDS

    @classmethod
    def from_json(cls, raw: Any, where: str) -> PlanFile:
        try:
            version = int(raw.get("version", 1))
            trials = tuple(PlannedTrial(str(t["trial_id"]), str(t["config_id"]),
                                        int(t["replica"]), int(t["seed"]),
                                        dict(t.get("params") or {}))
                           for t in raw["trials"])
            names = tuple(str(n) for n in raw["parameters"])
            adaptive = AdaptivePlan.from_json(raw["adaptive"]) if raw.get("adaptive") \
                else None
            kinds = {str(k): str(v) for k, v in (raw.get("kinds") or {}).items()}
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise RunError(f"{where} is damaged ({type(e).__name__}: {e})",
                           hint="restore it from a backup") from None
        if version > PLAN_VERSION:
            raise RunError(f"{where} was written by a newer launcher (plan version {version};"
                           f" this launcher reads up to {PLAN_VERSION})",
                           hint="upgrade the launcher to read this run")
        return cls(names, trials, version, kinds, adaptive)

    def to_json(self) -> dict[str, Any]:
        own = self.trials[:self.fixed] if self.fixed is not None else self.trials
        out: dict[str, Any] = {
            "version": self.version, "parameters": list(self.parameters),
            "kinds": self.kinds,
            "trials": [{"trial_id": t.trial_id, "config_id": t.config_id,
                        "replica": t.replica, "seed": t.seed, "params": t.params}
                       for t in own]}
        if self.adaptive is not None:
            out["adaptive"] = self.adaptive.to_json()
        return out

    def with_asked(self, asked: Sequence[PlannedTrial]) -> PlanFile:
        """This plan with an adaptive run's asked trials after the file's own."""
        return replace(self, trials=(*self.trials, *asked), fixed=len(self.trials))

    def sha256(self) -> str:
        """A hash of the plan's content (not of its file's layout), for the manifest."""
        text = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def trial_ids(self) -> list[str]:
        return [t.trial_id for t in self.trials]

    def planned_ids(self) -> list[str]:
        """The ids plan.json itself lists (what a resume must plan again)."""
        own = self.trials[:self.fixed] if self.fixed is not None else self.trials
        return [t.trial_id for t in own]

    @property
    def expected(self) -> int:
        """Trials the run will have when it is done (adaptive: run_cap x replicas)."""
        if self.adaptive is not None:
            return self.adaptive.run_cap * self.adaptive.replicas
        return len(self.trials)

    def __len__(self) -> int:
        return len(self.trials)
