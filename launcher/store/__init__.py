"""The run directory: the durable truth of a run, as a typed, versioned schema.

    <results>/<sweep slug>/<run id>/
      sweep.yaml  plan.json  manifest.json     what was asked, planned, where it ran
      trials.jsonl                            one fsync'd record per finished attempt (and,
                                              adaptive runs, one per asked configuration)
      started.jsonl                           one line per container created (live views)
      logs/<trial>.log  history/<trial>.jsonl  outputs/<trial>/...
      results.parquet  results.csv            derived, rebuilt from the records

This package is the only code that knows the files' keys. Everything else reads a run
through :class:`RunDir` and its types: :class:`Manifest` (raw data plus named
properties, docker-py's lesson), :class:`PlanFile` and :class:`TrialRecord`. A run
written in an older layout is migrated when it is read; a run written by a newer
launcher is refused with a message that says so.
"""

from __future__ import annotations

from launcher.store.asked import AskedConfig
from launcher.store.files import atomic_write, extract_outputs, safe_trial_id, write_json
from launcher.store.finding import find_run, iter_runs, newest_run_of_file, runs_of_sweep
from launcher.store.manifest import (
    SCHEMA_VERSION,
    BackendRecord,
    HostRecord,
    ImageRecord,
    Manifest,
    MetricRecord,
    RunState,
    SkippedHost,
)
from launcher.store.plan_file import AdaptivePlan, PlanFile, PlannedTrial
from launcher.store.records import RETRYABLE, TrialRecord, best_records, still_to_run
from launcher.store.rundir import MANIFEST, PLAN, RECORDS, SWEEP, RunDir, new_run_id
from launcher.store.started import STARTED, StartedEntry, StartedLog

__all__ = ["MANIFEST", "PLAN", "RECORDS", "RETRYABLE", "SCHEMA_VERSION", "STARTED", "SWEEP",
           "AdaptivePlan", "AskedConfig", "BackendRecord", "HostRecord", "ImageRecord",
           "Manifest", "MetricRecord", "PlanFile", "PlannedTrial", "RunDir", "RunState",
           "SkippedHost", "StartedEntry", "StartedLog", "TrialRecord", "atomic_write",
           "best_records", "extract_outputs", "find_run", "iter_runs", "new_run_id",
           "newest_run_of_file", "runs_of_sweep", "safe_trial_id", "still_to_run",
           "write_json"]
