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
from launcher.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, LauncherError
from launcher.interrupts import Interrupts, handled_signals
from launcher.overrides import Overrides
from launcher.plan import Plan, expand
from launcher.prepare import LineSink, prepared_backend
from launcher.resume import all_hosts, check_same_sweep, replan, todo
from launcher.runner import Outcome, RetryPolicy, Runner
from launcher.secrets import Masker
from launcher.sections import HostSpec
from launcher.spec import SweepSpec, load_sweep
from launcher.store import AdaptivePlan, PlanFile, RunDir, RunState, new_run_id
from launcher.trial import Trial, TrialResult

if TYPE_CHECKING:
    import pandas as pd

    from launcher.search.adaptive import AdaptiveSearch
    from launcher.search.hyperband import HyperbandStopper
    from launcher.wandb_keys import Metric

# a run where these are all that is left ended well (stopped: early termination's verdict)
DONE = frozenset({"succeeded", "stopped"})


@dataclass
class RunResults:
    """A finished (or stopped) run: its folder, its table and how it ended."""

    run_dir: Path
    outcome: Outcome | None  # None: the run loop never ended normally (an error)
    notes: list[str] = field(default_factory=list)
    _df: Any = None
    signal: str = ""  # the first SIGINT/SIGTERM/SIGHUP received, if any

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
        return bool(self.outcome and self.outcome.interrupted) or bool(self.signal)

    @property
    def ok(self) -> bool:
        done = DONE | {"not_started"} if self.target_reached else DONE
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
    SIGINT, SIGTERM and SIGHUP are handled while it runs (see launcher.interrupts).
    """
    from launcher.provenance import new_manifest

    spec = resolve_spec(sweep, overrides, **simple)
    plan = expand(spec)
    run_id = new_run_id()
    with handled_signals() as signals:
        prepared = prepared_backend(spec, run_id, on_line, signals=signals)
        with prepared as (backend, image, ctx):
            with signals.deferred():
                run = RunDir.create(Path(spec.results), spec.folder, run_id)
                run.mask = Masker(ctx.secrets)
            if on_run:  # the run exists from here on (a failed set-up starts none)
                on_run(f"run {run_id}  ({run.path})")
            with run.locked():
                kinds = {p.name: p.kind for p in spec.parameters}
                with signals.deferred():
                    run.start(sweep_text=spec.source_text,
                              plan=PlanFile.of(plan.trials, plan.parameter_names, kinds,
                                                adaptive_of(spec)),
                              manifest=new_manifest(spec, run_id, image, backend))
                loop = RunLoop(spec, run, backend, ctx, signals, prepared.notes,
                               new_search(spec, run))
                outcome, table = loop.drive(plan, progress, list(plan.trials))
        return loop.results(outcome, table)


def resume_run(ref: str | Path, results_root: str | Path = RESULTS_ROOT, *,
               retry_failed: bool = False, progress: str = "quiet",
               on_line: LineSink | None = None, on_run: LineSink | None = None,
               hosts: tuple[HostSpec, ...] | None = None) -> RunResults:
    """Continue a run: adopt its containers still on the hosts (their results are recorded
    as they come, while new trials start), and run every planned trial without a final
    record (failed ones too with ``retry_failed``): what `launch status` counts as still
    to run. ``hosts`` replace the run's hosts; hosts that do not answer are left out. The
    run's sweep file and plan must be the ones it started with, and its image is found
    again, reloaded or rebuilt from the same content (see launcher.resume and
    launcher.same_image)."""
    from launcher.store import find_run

    run = find_run(str(ref), Path(results_root))
    with handled_signals() as signals, run.locked():
        spec, plan = replan(run, hosts)  # a damaged or edited run is refused first
        if on_run:
            on_run(f"resuming run {run.run_id}  ({run.path})")
        manifest = run.manifest()
        search, asked = open_search(spec, run)  # an adaptive run's trials so far
        left = todo([*plan.trials, *asked], run.best(), retry_failed)
        if manifest.state is RunState.FINISHED and not left:
            if on_line:
                on_line(f"run {run.label} has nothing left to run")
            return RunResults(run.path, Outcome(), manifest.notes)
        prepared = prepared_backend(spec, run.run_id, on_line, signals=signals,
                                    image=manifest.image)
        with prepared as (backend, _image, ctx):
            run.mask = Masker(ctx.secrets)
            with signals.deferred():
                if hosts:
                    run.write_manifest(manifest.with_fields(
                        hosts=all_hosts(manifest.hosts, backend.describe().hosts)))
                run.resumed()
            records = run.records()
            attempts = {r.trial_id: r.attempt for r in records}
            recorded = {r.container_id for r in records if r.container_id}
            loop = RunLoop(spec, run, backend, ctx, signals, prepared.notes, search)
            outcome, table = loop.drive(plan, progress, left, attempts,
                                        adopt={t.trial_id: t for t in left}, recorded=recorded)
        return loop.results(outcome, table)


def adaptive_of(spec: SweepSpec) -> AdaptivePlan | None:
    """What plan.json records of an adaptive sweep (its search space)."""
    if not spec.adaptive:
        return None
    from launcher.search.adaptive import adaptive_plan

    return adaptive_plan(spec)


def new_search(spec: SweepSpec, run: RunDir) -> AdaptiveSearch | None:
    if not spec.adaptive:
        return None
    from launcher.search.adaptive import AdaptiveSearch

    return AdaptiveSearch(spec, run)


def open_search(spec: SweepSpec, run: RunDir) -> tuple[AdaptiveSearch | None, list[Trial]]:
    """An adaptive run's search rebuilt from its records, and every trial it asked for."""
    if not spec.adaptive:
        return None, []
    from launcher.search.adaptive import AdaptiveSearch

    return AdaptiveSearch.open(spec, run)


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
        check_same_sweep(spec, previous)  # holds by the identity above; a guard
        say(f"resuming run {previous.run_id}  ({previous.path}): the newest run made from "
            f"{spec.source_path} with this content")
        return resume_run(previous.path, spec.results, retry_failed=retry_failed,
                          progress=progress, on_line=on_line, hosts=spec.hosts)
    skipped = f" ({len(others)} run(s) named {spec.name} came from another file or " \
        f"another version of it, e.g. {others[0].label})" if others else ""
    say(f"no earlier run of {spec.source_path} with this content under {spec.results}: "
        f"starting a new one{skipped}")
    return run_sweep(spec, progress=progress, on_line=on_line, on_run=on_run)


@dataclass
class RunLoop:
    """The part of a run between set-up and teardown: the trials, then the run's files."""

    spec: SweepSpec
    run: RunDir
    backend: Backend
    ctx: RunContext
    signals: Interrupts
    notes: list[str]
    search: AdaptiveSearch | None = None  # method: bayes

    def drive(self, plan: Plan, progress: str, trials: list[Trial],
            attempts: dict[str, int] | None = None, adopt: dict[str, Trial] | None = None,
            recorded: set[str] | None = None) -> tuple[Outcome | None, Any]:
        """Run ``trials``; the tables and the manifest are written however it ends."""
        outcome, table = None, None
        try:
            outcome = execute(self.spec, self.run, self.backend, self.ctx, plan, progress,
                              trials, attempts, adopt=adopt, recorded=recorded,
                              signals=self.signals, search=self.search)
        finally:
            with self.signals.deferred():
                table = finish_run(self.run, self.backend, outcome, self.notes)
        return outcome, table

    def results(self, outcome: Outcome | None, table: Any) -> RunResults:
        """After the teardown: its notes are part of the summary."""
        return RunResults(self.run.path, outcome, [*self.notes, *self.backend.notes()], table,
                          signal=self.signals.received)


def execute(spec: SweepSpec, run: RunDir, backend: Backend, ctx: RunContext, plan: Plan,
            progress: str, trials: list[Trial] | None = None,
            start_attempts: dict[str, int] | None = None, *,
            adopt: dict[str, Trial] | None = None, recorded: set[str] | None = None,
            signals: Interrupts | None = None, search: AdaptiveSearch | None = None) -> Outcome:
    """Run ``trials`` (default: the whole plan; and what adaptive search asks for) with
    live progress and, when the sweep asks for it, early termination, adopting the run's
    containers of ``adopt`` first."""
    todo = list(plan.trials) if trials is None else trials
    policy = RetryPolicy(retries=spec.retries, no_retry_exit_codes=spec.no_retry_exit_codes,
                         max_consecutive_failures=spec.max_consecutive_failures,
                         deadline=spec.deadline)
    total = len(todo) + (search.remaining() * spec.replicas if search else 0)
    stopper = early_stopper(spec, run, backend)
    ctx.on_history = stopper.observe if stopper else None
    warm_up_table_libraries()
    with run.started_log() as started, \
            live_view(run, total, backend, progress, spec.metric) as view:
        ctx.on_start = view.started
        ctx.on_container = lambda work, host, cid: started.add(
            work.trial.trial_id, work.attempt, host, cid)

        def on_result(result: TrialResult) -> None:
            view.finished_trial(result)
            if stopper is not None:
                stopper.finished(result.trial_id, result.attempt, result.history)

        runner = Runner(backend, run, policy, on_result=on_result, target=spec.metric,
                        argv_of=ctx.recorded_argv, search=search, signals=signals)
        return runner.execute(todo, start_attempts, adopt=adopt, recorded=recorded)


def early_stopper(spec: SweepSpec, run: RunDir, backend: Backend) -> HyperbandStopper | None:
    """Hyperband over the live metric lines, knowing every trial the run already finished
    (their histories count for the thresholds, as in W&B)."""
    if spec.early_terminate is None or spec.metric is None:
        return None
    from launcher.search.hyperband import HyperbandStopper

    stopper = HyperbandStopper(spec.early_terminate, spec.metric, backend.stop_trial)
    for record in run.best().values():
        if record.status.terminal:
            stopper.finished(record.trial_id, record.attempt, run.history(record.trial_id))
    return stopper


def live_view(run: RunDir, total: int, backend: Backend, progress: str,
              metric: Metric | None = None) -> Any:
    """The progress bar, or with "watch" the live view of `launch watch` in a thread."""
    from launcher.progress import Progress

    if progress == "watch":
        from launcher.watch import WatchInBackground

        return WatchInBackground(run)
    return Progress(total, backend.workers(), mode=progress, metric=metric)


def warm_up_table_libraries() -> None:
    """Import pandas and pyarrow in the background while the trials run: the launcher
    mostly waits on the engines then, and the table at the end would otherwise wait
    for half a second of imports after the last container."""
    def work() -> None:
        with contextlib.suppress(Exception):
            import pandas  # noqa: F401
            import pyarrow.parquet  # noqa: F401

    threading.Thread(target=work, name="warm-up", daemon=True).start()


def finish_run(run: RunDir, backend: Backend, outcome: Outcome | None,
               notes: list[str] | None = None) -> pd.DataFrame | None:
    """Derived tables and the final manifest; safe to call after a failure. Returns the
    table, so that the summary does not build it a second time."""
    from launcher.results import write_tables

    why: str | None = "error" if outcome is None else outcome.stopped or None
    if outcome is not None and outcome.interrupted:
        state = RunState.INTERRUPTED
    else:
        state = RunState.STOPPED if why else RunState.FINISHED
    try:
        run.finish(state=state, stopped_because=why, notes=[*(notes or []), *backend.notes()],
                   target_reached=outcome.target_reached or None if outcome else None,
                   backend=backend.describe(final=True))
    except LauncherError:
        return None  # the manifest itself is unreadable: nothing more can be said
    return write_tables(run)


__all__ = ["LauncherError", "RunResults", "resume_run", "run_sweep"]
