"""Resuming a run safely: the run's own sweep file and plan, checked against the hashes
its manifest keeps; what is left to run; where it runs now.

A resume must never run half a sweep differently: an edited sweep.yaml or plan.json is
refused, saying what changed (the manifest keeps the sweep's settings for that). The
hosts may change (``launch resume RUN --host ...``): they do not change what runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from launcher.errors import RunChanged, SweepError
from launcher.overrides import Overrides
from launcher.plan import Plan, expand
from launcher.sections import HostSpec
from launcher.spec import SweepSpec
from launcher.store import (
    PLAN,
    SWEEP,
    HostRecord,
    Manifest,
    RunDir,
    TrialRecord,
    still_to_run,
)
from launcher.trial import Trial

SHOWN_CHANGES = 4


def replan(run: RunDir, hosts: tuple[HostSpec, ...] | None = None) -> tuple[SweepSpec, Plan]:
    """The run's own sweep.yaml and overrides (``hosts`` in place of its hosts), planned
    again; refused when the sweep file or plan.json changed since the run started."""
    from launcher.provenance import sweep_settings

    manifest = run.manifest()
    changed = run.changed_inputs(manifest)
    where = run.path / SWEEP
    try:
        spec = _spec(run, manifest, hosts)
    except SweepError as e:
        if SWEEP in changed:
            raise RunChanged(f"{where} changed since run {run.run_id} started and no longer "
                             f"reads ({e})", run=str(run.path), hint=_PUT_BACK) from None
        raise
    if SWEEP in changed:
        what = describe_changes(manifest.settings, sweep_settings(spec))
        planned, before = len(expand(spec).trials), len(run.plan().planned_ids())
        if planned != before:
            what += f"; it now plans {planned} trials, the run planned {before}"
        raise RunChanged(f"{where} changed since run {run.run_id} started ({what})",
                         run=str(run.path), hint=_PUT_BACK)
    if PLAN in changed:
        raise RunChanged(f"{run.path / PLAN} changed since run {run.run_id} started (its hash "
                         "is not the one in the manifest)", run=str(run.path),
                         hint="restore it from a backup, or start a new run")
    plan = expand(spec)
    if [t.trial_id for t in plan.trials] != run.plan().planned_ids():
        raise RunChanged(f"run {run.run_id}'s sweep no longer plans the same trials",
                         run=str(run.path), hint="was the launcher upgraded? start a new run")
    return spec, plan


_PUT_BACK = "put back the sweep file the run started with, or start a new run of the edited one"


def _spec(run: RunDir, manifest: Manifest, hosts: tuple[HostSpec, ...] | None) -> SweepSpec:
    from launcher.safety import check_sweep
    from launcher.schema import Reader
    from launcher.spec import build_spec
    from launcher.yamlfile import parse_yaml

    text = run.sweep_text()
    doc = parse_yaml(text, str(run.path / SWEEP))
    spec = build_spec(doc, Overrides.from_json(manifest.overrides),
                      source_path=manifest.sweep_path, source_text=text,
                      default_name=manifest.sweep)
    if hosts:
        spec = replace(spec, hosts=hosts)
        check_sweep(Reader(doc), mounts=spec.mounts, hosts=hosts, user=spec.user,
                    backend=spec.backend, unsafe=spec.unsafe)
    return spec


def check_same_sweep(spec: SweepSpec, run: RunDir) -> None:
    """``launch SWEEP --resume``: the sweep given must ask what the run's own asked (its
    hosts may differ), else the resume would quietly run another sweep's trials."""
    from launcher.provenance import sweep_settings

    manifest = run.manifest()
    digest = hashlib.sha256(spec.source_text.encode("utf-8")).hexdigest()
    if not manifest.sweep_sha256 or digest == manifest.sweep_sha256:
        return
    before, after = manifest.settings, sweep_settings(spec)
    if before == after and [t.trial_id for t in expand(spec).trials] == \
            run.plan().planned_ids():
        return  # hosts, comments or layout: the same trials, asked the same way
    raise RunChanged(f"{spec.source_path} is not the sweep run {run.run_id} started with "
                     f"({describe_changes(before, after)})", run=str(run.path),
                     hint="run it without --resume to start a new run")


def describe_changes(before: dict[str, Any] | None, after: dict[str, Any]) -> str:
    """What differs between two ``sweep_settings``, in a few words."""
    if before is None:
        return "its hash differs from the one in the manifest"
    changes = [f"{key}: {_short(before.get(key))} -> {_short(after.get(key))}"
               for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    if not changes:
        return "its settings are the same: the parameters, hosts, comments or layout changed"
    more = f"; and {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
    return "; ".join(changes[:SHOWN_CHANGES]) + more


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def todo(trials: Sequence[Trial], best: dict[str, TrialRecord],
         retry_failed: bool) -> list[Trial]:
    """The known trials (planned, and asked by an adaptive search) a resume runs (see
    :func:`launcher.store.still_to_run`, which `launch status` counts with)."""
    wanted = set(still_to_run([t.trial_id for t in trials], best, retry_failed))
    return [t for t in trials if t.trial_id in wanted]


def all_hosts(before: tuple[HostRecord, ...], now: tuple[HostRecord, ...]) -> list[HostRecord]:
    """The run's hosts after a resume on other hosts: the new ones, then the earlier ones
    (their leftovers stay findable by `launch clean`)."""
    urls = {h.url for h in now}
    return [*now, *(h for h in before if h.url not in urls)]
