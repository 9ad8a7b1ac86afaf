"""The launcher's Python API: run a sweep end to end and get its results table.

    from launcher import run_sweep
    results = run_sweep("experiments/replicas.yaml", replicas=30)
    results.df            # one row per trial
    results.run_dir       # where everything is

The command line calls the same functions; nothing here needs a terminal.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.backends.base import Backend, RunContext
from launcher.container import ContainerSettings
from launcher.errors import LauncherError, RunError, SweepError
from launcher.image import BuiltImage
from launcher.overrides import Overrides
from launcher.plan import Plan, expand
from launcher.runner import Outcome, RetryPolicy, Runner
from launcher.spec import SweepSpec, load_sweep
from launcher.store import RunDir, new_run_id, write_json
from launcher.trial import TrialStatus

if TYPE_CHECKING:
    import pandas as pd

    from launcher.hosts import Host

LineSink = Callable[[str], None]


@dataclass
class RunResults:
    """A finished (or stopped) run: its folder, its table and how it ended."""

    run_dir: Path
    outcome: Outcome | None
    notes: list[str] = field(default_factory=list)
    _df: Any = None

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def df(self) -> pd.DataFrame:
        if self._df is None:
            from launcher.results import build_table

            self._df = build_table(RunDir(self.run_dir))
        df: pd.DataFrame = self._df
        return df

    @property
    def ok(self) -> bool:
        stopped = self.outcome is None or bool(self.outcome.stopped)
        return bool((self.df["status"] == "succeeded").all()) and not stopped


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
              **simple: Any) -> RunResults:
    """Run a sweep end to end. ``simple`` takes Overrides fields (replicas=30, ...).

    ``progress`` is "auto", "rich", "plain" or "quiet" (the default for library use).
    """
    spec = resolve_spec(sweep, overrides, **simple)
    plan = expand(spec)
    run_id = new_run_id()
    with prepared_backend(spec, run_id, on_line) as (backend, image, ctx):
        run = RunDir.create(Path(spec.results), spec.name, run_id)
        with run.locked():
            write_run_files(run, spec, plan, image, backend)
            outcome, table = None, None
            try:
                outcome = execute(spec, run, backend, ctx, plan, progress)
            finally:
                table = finish_run(run, backend, outcome)
    return RunResults(run.path, outcome, backend.notes(), table)


def resume_run(ref: str | Path, results_root: str | Path = "results", *,
               retry_failed: bool = False, progress: str = "quiet",
               on_line: LineSink | None = None) -> RunResults:
    """Continue a run: adopt its containers still on the hosts, then run every planned
    trial without a terminal record (failed ones too with ``retry_failed``)."""
    from launcher.store import best_records, find_run

    run = find_run(str(ref), Path(results_root))
    with run.locked():
        spec, plan = replan(run)
        with prepared_backend(spec, run.run_id, on_line) as (backend, image, ctx):
            check_same_image(run, image)
            by_id = {t.trial_id: t for t in plan.trials}
            for result in backend.adopt(by_id):
                run.record(result)
            records = run.records()
            best = best_records(records)
            redo = {"failed", "timed_out", "oom_killed"} if retry_failed else set()
            todo = [t for t in plan.trials if t.trial_id not in best
                    or not TrialStatus(best[t.trial_id]["status"]).terminal
                    or best[t.trial_id]["status"] in redo]
            attempts = {r["trial_id"]: int(r.get("attempt") or 1) for r in records}
            outcome, table = None, None
            try:
                outcome = execute(spec, run, backend, ctx, plan, progress, todo, attempts)
            finally:
                table = finish_run(run, backend, outcome)
    return RunResults(run.path, outcome, backend.notes(), table)


def check_same_image(run: RunDir, image: BuiltImage) -> None:
    """A resumed run must use the image it started with; if not, say which files changed."""
    from launcher.buildcontext import describe_changes
    from launcher.store import recorded_build_inputs

    expected = run.manifest()["image"]["id"]
    if image.id == expected:
        return
    changes = describe_changes(recorded_build_inputs(run), image.inputs)
    raise RunError(f"the image changed since run {run.run_id} started (now {image.id[:19]}, "
                   f"the run used {expected[:19]}" + (f"; {changes})" if changes else ")"),
                   run=str(run.path), hint="restore those files, or start a new run of the "
                   "sweep")


def resume_or_run(spec: SweepSpec, *, resume: bool, retry_failed: bool = False,
                  progress: str = "quiet", on_line: LineSink | None = None) -> RunResults:
    """``launch SWEEP --resume``: continue the newest run of the sweep, if there is one."""
    from launcher.store import newest_run

    previous = newest_run(Path(spec.results), spec.name) if resume else None
    if previous is not None:
        return resume_run(previous.path, spec.results, retry_failed=retry_failed,
                          progress=progress, on_line=on_line)
    if resume and on_line:
        on_line(f"no earlier run of {spec.name} under {spec.results}: starting a new one")
    return run_sweep(spec, progress=progress, on_line=on_line)


def replan(run: RunDir) -> tuple[SweepSpec, Plan]:
    """The run's own sweep.yaml and overrides, planned again; must match plan.json."""
    from launcher.spec import build_spec
    from launcher.store import SWEEP
    from launcher.yamlfile import parse_yaml

    manifest = run.manifest()
    text = (run.path / SWEEP).read_text(encoding="utf-8")
    overrides = Overrides.from_json(manifest.get("overrides") or {})
    spec = build_spec(parse_yaml(text, str(run.path / SWEEP)), overrides,
                      source_path=manifest.get("sweep_path"), source_text=text,
                      default_name=manifest["sweep"])
    plan = expand(spec)
    planned = [t["trial_id"] for t in run.plan()["trials"]]
    if [t.trial_id for t in plan.trials] != planned:
        raise RunError(f"run {run.run_id}'s sweep no longer plans the same trials",
                       run=str(run.path), hint="was the launcher upgraded? start a new run")
    return spec, plan


class prepared_backend:
    """Connect, build the image once, set the backend up; tear it down on exit."""

    def __init__(self, spec: SweepSpec, run_id: str, on_line: LineSink | None) -> None:
        self.spec, self.run_id, self.on_line = spec, run_id, on_line
        self.backend: Backend | None = None
        self.hosts: list[Host] = []
        self.hosts_to_close: list[Host] = []

    def __enter__(self) -> tuple[Backend, BuiltImage, RunContext]:
        try:
            return self._prepare()
        except BaseException:  # a failed build or setup must not leak connections
            self.__exit__()
            raise

    def _prepare(self) -> tuple[Backend, BuiltImage, RunContext]:
        from launcher.backends import get_backend

        spec = self.spec
        macro_env, trial_env = resolve_environment(spec)
        if spec.backend == "ray":
            build_host = require_local_host(spec)
            self.hosts = [build_host]
            image = build(spec, build_host, self.on_line)
            backend = get_backend("ray", address=spec.ray_address, source=build_host,
                                  max_parallel=spec.max_parallel)
        else:
            self.hosts = connect_hosts(spec)
            # Built on the local engine when it answers, else on the first host.
            build_host = next((h for h in self.hosts if h.spec.url == "local"), None) \
                or local_host(spec, required=False) or self.hosts[0]
            if build_host not in self.hosts:
                self.hosts_to_close.append(build_host)
            image = build(spec, build_host, self.on_line)
            backend = get_backend("docker", hosts=self.hosts, max_parallel=spec.max_parallel,
                                  source=build_host)
        self.backend = backend
        settings = container_settings(spec, image, self.run_id, trial_env)
        ctx = RunContext(run_id=self.run_id, settings=settings, command=spec.command,
                         program=spec.program, environ=macro_env)
        backend.setup(image=image, run=ctx)
        return backend, image, ctx

    def __exit__(self, *exc: object) -> None:
        if self.backend is not None:
            self.backend.teardown()
        for host in self.hosts + self.hosts_to_close:
            host.close()


def connect_hosts(spec: SweepSpec) -> list[Host]:
    from launcher.hosts import connect_all

    return connect_all(spec.hosts, cpus_per_trial=spec.resources.cpus,
                       max_parallel=spec.max_parallel, gpus_per_trial=spec.resources.gpus,
                       memory_per_trial=spec.resources.memory)


def require_local_host(spec: SweepSpec) -> Host:
    host = local_host(spec)
    assert host is not None
    return host


def local_host(spec: SweepSpec, required: bool = True) -> Host | None:
    """The local engine (DOCKER_HOST or the default socket), where images are built."""
    from launcher.errors import HostError
    from launcher.hosts import connect
    from launcher.sections import HostSpec

    try:
        return connect(HostSpec("local", "local"), cpus_per_trial=spec.resources.cpus)
    except HostError:
        if required:
            raise
        return None


def build(spec: SweepSpec, host: Host, on_line: LineSink | None = None) -> BuiltImage:
    from launcher.image import ensure_image

    # The results root and the sweep file are launcher inputs and outputs, never the job's.
    leave_out = [Path(spec.results)] + ([Path(spec.source_path)] if spec.source_path else [])
    return ensure_image(host.client, spec.image, spec.base_dir, on_line, leave_out=leave_out)


def resolve_environment(spec: SweepSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(what the command's ``${envvar:NAME}`` read, the trials' ``env``), resolved before
    anything starts. Both live in memory only, never on disk."""
    from launcher.command import envvar_names
    from launcher.sections import resolve_env

    names = envvar_names(spec.command or ())
    missing = [n for n in names if n not in os.environ]
    if missing:
        raise SweepError(f"command uses ${{envvar:{missing[0]}}} but {missing[0]} is not set "
                         "in the launcher's environment", path=spec.source_path)
    try:
        trial_env = resolve_env(spec.env, os.environ)
    except ValueError as e:
        raise SweepError(str(e), path=spec.source_path) from None
    return {n: os.environ[n] for n in names}, trial_env


def container_settings(spec: SweepSpec, image: BuiltImage, run_id: str,
                       env: dict[str, str]) -> ContainerSettings:
    from launcher.runtime import home_environment

    res = spec.resources
    return ContainerSettings(
        image=image.id, run_id=run_id, sweep=spec.name,
        env={**home_environment(image.env), **env},  # the sweep's env wins
        cpus=res.cpus, memory=res.memory, pids=res.pids, gpus=res.gpus, shm=res.shm,
        tmp=res.tmp, network=spec.network, user=image.run_as(spec.user),
        outputs=spec.outputs,
        timeout=spec.timeout, stop_grace=spec.stop_grace, log_limit=spec.log_limit,
        outputs_limit=spec.outputs_limit,
        mounts=tuple((m.kind, m.source, m.target) for m in spec.mounts),
        metric=spec.metric.name if spec.metric else None,
        strict_metrics=spec.strict_metrics)


def write_run_files(run: RunDir, spec: SweepSpec, plan: Plan, image: BuiltImage,
                    backend: Backend) -> None:
    """sweep.yaml as given, plan.json, manifest.json: what was asked and where it runs."""
    from launcher.store import SWEEP, atomic_write

    atomic_write(run.path / SWEEP, spec.source_text)
    write_json(run.path / "plan.json", {"version": 1, "parameters": list(plan.parameter_names),
                                        "trials": plan.to_json()})
    run.write_manifest(manifest(spec, run, image, backend))


def manifest(spec: SweepSpec, run: RunDir, image: BuiltImage, backend: Backend) -> dict[str, Any]:
    import hashlib

    from launcher import __version__

    return {
        "run_id": run.run_id, "sweep": spec.name, "description": spec.description,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "finished_at": None, "state": "running", "launcher_version": __version__,
        "python": platform.python_version(), "sweep_path": spec.source_path,
        "sweep_sha256": hashlib.sha256(spec.source_text.encode()).hexdigest(),
        "git": git_state(Path(spec.image.context) if spec.image.context else spec.base_dir),
        "overrides": spec.overrides.to_json(),
        "method": spec.method, "replicas": spec.replicas, "seed": spec.seed,
        "seed_mode": spec.seed_mode,
        "metric": {"name": spec.metric.name, "goal": spec.metric.goal} if spec.metric else None,
        "image": {"id": image.id, "tag": image.tag, "digest": image.digest, "base": image.base,
                  # issue 13: what the digest covers, with each context file's sha256, so
                  # that resume can name what changed (read by store.recorded_build_inputs)
                  "inputs": dict(image.inputs)},
        **backend.describe(),
    }


def git_state(folder: Path) -> dict[str, Any]:
    """Commit and dirty flag of the sweep's project (None outside a git work tree)."""
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(folder), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def execute(spec: SweepSpec, run: RunDir, backend: Backend, ctx: RunContext, plan: Plan,
            progress: str, trials: list[Any] | None = None,
            start_attempts: dict[str, int] | None = None) -> Outcome:
    """Run ``trials`` (default: the whole plan) with live progress."""
    from launcher.progress import Progress

    todo = list(plan.trials) if trials is None else trials
    policy = RetryPolicy(retries=spec.retries, no_retry_exit_codes=spec.no_retry_exit_codes,
                         max_consecutive_failures=spec.max_consecutive_failures,
                         deadline=spec.deadline)
    warm_up_table_libraries()
    with Progress(len(todo), backend.workers(), mode=progress) as view:
        ctx.on_start = view.started
        runner = Runner(backend, run, policy, on_result=view.finished_trial)
        return runner.execute(todo, start_attempts)


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

    try:
        data = run.manifest()
    except (OSError, ValueError):
        return None
    data["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00",
                                                                                   "Z")
    data["state"] = ("interrupted" if outcome and outcome.interrupted else
                     "stopped" if outcome is None or outcome.stopped else "finished")
    data["stopped_because"] = outcome.stopped if outcome else "error"
    data["notes"] = backend.notes()
    run.write_manifest(data)
    return write_tables(run)


__all__ = ["LauncherError", "RunResults", "run_sweep"]
