"""The launcher's Python API: run a sweep end to end and get its results table.

    from launcher import run_sweep
    results = run_sweep("experiments/replicas.yaml", replicas=30)
    results.df            # one row per trial
    results.run_dir       # where everything is
    results.exit_code     # what `launch` exits with

The command line calls the same functions; nothing here needs a terminal.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.backends.base import Backend, RunContext
from launcher.defaults import RESULTS_ROOT
from launcher.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, LauncherError, RunError
from launcher.overrides import Overrides
from launcher.plan import Plan, expand
from launcher.prepare import LineSink, prepared_backend
from launcher.runner import Outcome, RetryPolicy, Runner
from launcher.spec import SweepSpec, load_sweep
from launcher.store import PlanFile, RunDir, RunState, TrialRecord, new_run_id, still_to_run
from launcher.trial import Trial, TrialResult, TrialStatus

if TYPE_CHECKING:
    import pandas as pd

    from launcher.image import BuiltImage


@dataclass
class RunResults:
    """A finished (or stopped) run: its folder, its table and how it ended."""

    run_dir: Path
    outcome: Outcome | None  # None: the run loop never ended normally (an error)
    notes: list[str] = field(default_factory=list)
    _df: Any = None

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def df(self) -> pd.DataFrame:
        if self._df is None:
            from launcher.results import load_table

            self._df = load_table(RunDir(self.run_dir))
        df: pd.DataFrame = self._df
        return df

    @property
    def stopped(self) -> str:
        """Why the run stopped early; empty when it ran to the end."""
        return "error" if self.outcome is None else self.outcome.stopped

    @property
    def interrupted(self) -> bool:
        return bool(self.outcome and self.outcome.interrupted)

    @property
    def ok(self) -> bool:
        done = {"succeeded", "not_started"} if self.target_reached else {"succeeded"}
        # after metric.target, trials left unstarted are fine
        return bool(self.df["status"].isin(done).all()) and not self.stopped

    @property
    def target_reached(self) -> str:
        """Which trial reached ``metric.target`` (empty when none did)."""
        return self.outcome.target_reached if self.outcome else ""

    @property
    def exit_code(self) -> int:
        """130 when interrupted, 0 when every trial succeeded (or the target was
        reached), else 1."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_OK if self.ok else EXIT_FAILURE


def resolve_spec(sweep: str | Path | SweepSpec, overrides: Overrides | None = None,
                 **simple: Any) -> SweepSpec:
    """A SweepSpec from a path (with overrides), or the spec itself."""
    if isinstance(sweep, SweepSpec):
        return sweep
    if simple:
        overrides = replace(overrides or Overrides(), **simple)
    return load_sweep(sweep, overrides)


def run_sweep(sweep: str | Path | SweepSpec, overrides: Overrides | None = None, *,
              progress: str = "quiet", on_line: LineSink | None = None,
              on_run: LineSink | None = None, **simple: Any) -> RunResults:
    """Run a sweep end to end. ``simple`` takes Overrides fields (replicas=30, ...).

    ``progress`` is "auto", "rich", "plain", "watch" (the live view of `launch watch`) or
    "quiet" (the default for library use). ``on_run`` hears the run id as soon as the run
    exists (after the image is built and the hosts are set up, before any trial).
    """
    from launcher.provenance import new_manifest

    spec = resolve_spec(sweep, overrides, **simple)
    plan = expand(spec)
    run_id = new_run_id()
    with prepared_backend(spec, run_id, on_line) as (backend, image, ctx):
        run = RunDir.create(Path(spec.results), spec.folder, run_id)
        if on_run:  # the run exists from here on (a failed set-up starts none)
            on_run(f"run {run_id}  ({run.path})")
        with run.locked():
            kinds = {p.name: p.kind for p in spec.parameters}
            run.start(sweep_text=spec.source_text,
                      plan=PlanFile.of(plan.trials, plan.parameter_names, kinds),
                      manifest=new_manifest(spec, run_id, image, backend))
            outcome, table = None, None
            try:
                outcome = execute(spec, run, backend, ctx, plan, progress)
            finally:
                table = finish_run(run, backend, outcome)
    return RunResults(run.path, outcome, backend.notes(), table)


def resume_run(ref: str | Path, results_root: str | Path = RESULTS_ROOT, *,
               retry_failed: bool = False, progress: str = "quiet",
               on_line: LineSink | None = None,
               on_run: LineSink | None = None) -> RunResults:
    """Continue a run: adopt its containers still on the hosts, then run every planned
    trial without a final record (failed ones too with ``retry_failed``)."""
    from launcher.store import find_run

    run = find_run(str(ref), Path(results_root))
    if on_run:
        on_run(f"resuming run {run.run_id}  ({run.path})")
    with run.locked():
        spec, plan = replan(run)
        manifest = run.manifest()
        if manifest.state is RunState.FINISHED and not todo(plan, run.best(), retry_failed):
            if on_line:
                on_line(f"run {run.label} has nothing left to run")
            return RunResults(run.path, Outcome(), manifest.notes)
        with prepared_backend(spec, run.run_id, on_line) as (backend, image, ctx):
            check_same_image(run, image)
            for result in backend.adopt({t.trial_id: t for t in plan.trials}):
                stopped_by_launcher(result, manifest.stop_requested_at)
                run.record(result, ctx.recorded_argv(plan_trial(plan, result.trial_id)))
            run.resumed()
            records = run.records()
            attempts = {r.trial_id: r.attempt for r in records}
            outcome, table = None, None
            try:
                outcome = execute(spec, run, backend, ctx, plan, progress,
                                  todo(plan, run.best(), retry_failed), attempts)
            finally:
                table = finish_run(run, backend, outcome)
    return RunResults(run.path, outcome, backend.notes(), table)


def check_same_image(run: RunDir, image: BuiltImage) -> None:
    """A resumed run must use the image it started with; if not, say which files changed."""
    from launcher.buildcontext import describe_changes

    recorded = run.manifest().image
    if image.id == recorded.id:
        return
    changes = describe_changes(recorded.inputs or {}, image.inputs)
    raise RunError(f"the image changed since run {run.run_id} started (now {image.id[:19]}, "
                   f"the run used {recorded.id[:19]}" + (f"; {changes})" if changes else ")"),
                   run=str(run.path), hint="restore those files, or start a new run of the "
                   "sweep")


def todo(plan: Plan, best: dict[str, TrialRecord], retry_failed: bool) -> list[Trial]:
    """The planned trials a resume runs (see :func:`launcher.store.still_to_run`)."""
    wanted = set(still_to_run(plan_ids(plan), best, retry_failed))
    return [t for t in plan.trials if t.trial_id in wanted]


def plan_ids(plan: Plan) -> list[str]:
    return [t.trial_id for t in plan.trials]


def plan_trial(plan: Plan, trial_id: str) -> Trial:
    return next(t for t in plan.trials if t.trial_id == trial_id)


def stopped_by_launcher(result: TrialResult, stop_requested_at: str | None) -> None:
    """An adopted container that failed after the launcher began stopping the run (the
    first Ctrl-C, then a second one before it could record the container) was stopped
    by the launcher: it is cancelled, and reruns, not failed (exit code 143)."""
    from launcher.clock import parse_time

    stop, end = parse_time(stop_requested_at), parse_time(result.finished_at)
    if stop and end and result.status is TrialStatus.FAILED and end >= stop:
        result.status = TrialStatus.CANCELLED
        result.reason = f"stopped by the launcher (after {result.reason})"


def resume_or_run(spec: SweepSpec, *, resume: bool, retry_failed: bool = False,
                  progress: str = "quiet", on_line: LineSink | None = None,
                  on_run: LineSink | None = None) -> RunResults:
    """``launch SWEEP --resume``: continue the newest run made from this very sweep file
    (same path, same content), if there is one; else start a new run."""
    import hashlib

    from launcher.store import newest_run_of_file

    if not resume:
        return run_sweep(spec, progress=progress, on_line=on_line, on_run=on_run)
    sha = hashlib.sha256(spec.source_text.encode()).hexdigest()
    previous, others = newest_run_of_file(Path(spec.results), spec.folder, spec.source_path,
                                          sha)
    say = on_run or (lambda line: None)
    if previous is not None:
        say(f"resuming run {previous.run_id}  ({previous.path}): the newest run made from "
            f"{spec.source_path} with this content")
        return resume_run(previous.path, spec.results, retry_failed=retry_failed,
                          progress=progress, on_line=on_line)
    skipped = f" ({len(others)} run(s) named {spec.name} came from another file or " \
        f"another version of it, e.g. {others[0].label})" if others else ""
    say(f"no earlier run of {spec.source_path} with this content under {spec.results}: "
        f"starting a new one{skipped}")
    return run_sweep(spec, progress=progress, on_line=on_line, on_run=on_run)


def replan(run: RunDir) -> tuple[SweepSpec, Plan]:
    """The run's own sweep.yaml and overrides, planned again; must match plan.json."""
    from launcher.spec import build_spec
    from launcher.store import SWEEP
    from launcher.yamlfile import parse_yaml

    manifest = run.manifest()
    text = run.sweep_text()
    spec = build_spec(parse_yaml(text, str(run.path / SWEEP)),
                      Overrides.from_json(manifest.overrides),
                      source_path=manifest.sweep_path, source_text=text,
                      default_name=manifest.sweep)
    plan = expand(spec)
    if [t.trial_id for t in plan.trials] != run.plan().trial_ids():
        raise RunError(f"run {run.run_id}'s sweep no longer plans the same trials",
                       run=str(run.path), hint="was the launcher upgraded? start a new run")
    return spec, plan


def execute(spec: SweepSpec, run: RunDir, backend: Backend, ctx: RunContext, plan: Plan,
            progress: str, trials: list[Trial] | None = None,
            start_attempts: dict[str, int] | None = None) -> Outcome:
    """Run ``trials`` (default: the whole plan) with live progress."""
    todo = list(plan.trials) if trials is None else trials
    policy = RetryPolicy(retries=spec.retries, no_retry_exit_codes=spec.no_retry_exit_codes,
                         max_consecutive_failures=spec.max_consecutive_failures,
                         deadline=spec.deadline)
    warm_up_table_libraries()
    with run.started_log() as started, live_view(run, todo, backend, progress) as view:
        ctx.on_start = view.started
        ctx.on_container = lambda work, host, cid: started.add(
            work.trial.trial_id, work.attempt, host, cid)
        runner = Runner(backend, run, policy, on_result=view.finished_trial,
                        target=spec.metric, argv_of=ctx.recorded_argv)
        return runner.execute(todo, start_attempts)


def live_view(run: RunDir, todo: list[Trial], backend: Backend, progress: str) -> Any:
    """The progress bar, or with "watch" the live view of `launch watch` in a thread."""
    from launcher.progress import Progress

    if progress == "watch":
        from launcher.watch import WatchInBackground

        return WatchInBackground(run)
    return Progress(len(todo), backend.workers(), mode=progress)


def warm_up_table_libraries() -> None:
    """Import pandas and pyarrow in the background while the trials run: the launcher
    mostly waits on the engines then, and the table at the end would otherwise wait
    for half a second of imports after the last container."""
    def work() -> None:
        with contextlib.suppress(Exception):
            import pandas  # noqa: F401
            import pyarrow.parquet  # noqa: F401

    threading.Thread(target=work, name="warm-up", daemon=True).start()


def finish_run(run: RunDir, backend: Backend, outcome: Outcome | None) -> pd.DataFrame | None:
    """Derived tables and the final manifest; safe to call after a failure. Returns the
    table, so that the summary does not build it a second time."""
    from launcher.results import write_tables

    why: str | None = "error" if outcome is None else outcome.stopped or None
    if outcome is not None and outcome.interrupted:
        state = RunState.INTERRUPTED
    else:
        state = RunState.STOPPED if why else RunState.FINISHED
    try:
        run.finish(state=state, stopped_because=why, notes=backend.notes(),
                   target_reached=outcome.target_reached or None if outcome else None,
                   backend=backend.describe(final=True))
    except LauncherError:
        return None  # the manifest itself is unreadable: nothing more can be said
    return write_tables(run)


__all__ = ["LauncherError", "RunResults", "resume_run", "run_sweep"]
