"""Terminal renderings of core objects (plans, summaries). No click here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from launcher.plan import Plan
from launcher.spec import SweepSpec
from launcher.tables import exact, write_rows

if TYPE_CHECKING:
    from launcher.api import RunResults


def print_plan(spec: SweepSpec, plan: Plan, fmt: str, out: TextIO) -> None:
    """The trials as a table, CSV or JSON; a count line after the table. An adaptive
    sweep has no fixed list: its search space instead."""
    if spec.adaptive:
        print_search_space(spec, fmt, out)
        return
    if fmt == "json":
        json.dump(plan.to_json(), out, indent=1, ensure_ascii=False)
        out.write("\n")
        return
    names = plan.parameter_names
    columns = ["trial_id", "config_id", "replica", "seed", *(f"param.{n}" for n in names)]
    # parameter values exactly as the trial receives them (17.0 stays 17.0, as in W&B)
    rows = ([t.trial_id, t.config_id, t.replica, t.seed, *(exact(v) for _, v in t.params)]
            for t in plan.trials)
    write_rows(out, columns, rows, fmt)
    if fmt == "table":
        out.write(f"\n{len(plan.trials)} trials: {plan.configurations} configurations x "
                  f"{spec.replicas} replicas ({spec.method}, seed_mode {spec.seed_mode}, "
                  f"sweep {spec.name})\n")
        if _early(spec):
            out.write(f"early termination: {_early(spec)}\n")
        for note in plan.notes:
            out.write(f"note: {note}\n")


def print_search_space(spec: SweepSpec, fmt: str, out: TextIO) -> None:
    """`launch plan` of method: bayes: what is searched and how, and that the trials are
    chosen as results arrive."""
    from launcher.search.adaptive import adaptive_plan

    adaptive = adaptive_plan(spec)
    if fmt == "json":
        json.dump({**adaptive.to_json(), "trials": [],
                   "early_terminate": _early(spec) or None}, out, indent=1, ensure_ascii=False)
        out.write("\n")
        return
    rows = ([d["name"], d["distribution"], d["searched_as"]] for d in adaptive.space)
    write_rows(out, ["parameter", "distribution", "searched as"], rows, fmt)
    if fmt == "table":
        out.write(f"\nno fixed list of trials: {spec.method} ({spec.sampler} sampler, seed "
                  f"{spec.seed}) chooses up to {adaptive.run_cap} configurations x "
                  f"{spec.replicas} replicas = {adaptive.run_cap * spec.replicas} trials as "
                  f"results arrive, one whenever a slot frees (sweep {spec.name})\n")
        if _early(spec):
            out.write(f"early termination: {_early(spec)}\n")


def _early(spec: SweepSpec) -> str:
    rule = spec.early_terminate
    if rule is None:
        return ""
    bands = ", ".join(str(b) for b in rule.bands()[:6])
    return (f"hyperband, eta {rule.eta:g}, {'strict' if rule.strict else 'not strict'}, "
            f"bands at history steps {bands}{', ...' if len(rule.bands()) > 6 else ''}")


def print_run_summary(results: RunResults, *, as_json: bool, out: TextIO) -> None:
    """The end-of-run summary (the exit code is ``results.exit_code``)."""
    from launcher.results import summarize, table_problems
    from launcher.search.savings import estimate
    from launcher.store import RunDir

    df = results.df
    counts = {str(k): int(v) for k, v in df["status"].value_counts().items()}
    run = RunDir(results.run_dir)
    manifest = run.manifest()
    metric, goal = manifest.metric_name, manifest.goal
    by_config = summarize(df, metric, goal)
    resume = f"launch resume {results.run_dir}" if results.stopped else None
    savings = estimate(run.records())
    problems = table_problems(df, metric)
    if as_json:
        json.dump({"run_id": results.run_id, "run_dir": str(results.run_dir),
                   "trials": len(df), "status": counts, "stopped": results.stopped,
                   "stopped_early": None if savings is None else {
                       "trials": savings.stopped, "container_s": savings.used_s,
                       "saved_s": savings.saved_s, "saved_share": round(savings.share, 4)},
                   "target_reached": results.target_reached or None,
                   "notes": results.notes, "problems": problems, "resume": resume,
                   "image_id": _first(df["image_id"]),
                   "configs": json.loads(by_config.to_json(orient="records"))}, out, indent=1)
        out.write("\n")
        return
    _print_configs(by_config, metric, goal, out)
    out.write("\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
              f" of {len(df)} trials")
    hosts = sorted(h for h in df["host"].dropna().unique() if h)
    named = ", ".join(hosts[:10]) + (f", and {len(hosts) - 10} more" if len(hosts) > 10 else "")
    out.write(f" on {len(hosts)} host{'s' if len(hosts) != 1 else ''} ({named})\n")
    for note in results.notes:
        out.write(f"note: {note}\n")
    if savings is not None:
        out.write(f"early termination: {savings.text()}\n")
    for problem in problems:
        out.write(f"warning: {problem}\n")
    if results.stopped:
        out.write(f"stopped: {results.stopped}\n")
    if results.target_reached:
        out.write(f"target reached: {results.target_reached}; no new trial started "
                  "after it\n")
    out.write(f"run: {results.run_dir}\n")
    for line in next_steps(df, str(results.run_dir), resume):
        out.write(line + "\n")


def _print_configs(by_config: Any, metric: str | None, goal: str, out: TextIO) -> None:
    """The per-configuration table, fitted to the terminal; constant parameters once."""
    from launcher.results import compact, write_frame

    constant = [c for c in by_config.columns if c.startswith("param.")
                and by_config[c].astype(str).nunique(dropna=True) <= 1]
    if metric:
        out.write(f"{metric} ({goal}) per configuration over replicas, best first:\n")
    write_frame(compact(by_config.drop(columns=constant), metric), "table", out)
    if constant and len(by_config):
        first = by_config.iloc[0]
        same = ", ".join(f"{c.removeprefix('param.')}={first[c]}" for c in constant)
        out.write(f"same in every configuration: {same}\n")


FAILED = ("failed", "timed_out", "oom_killed")


def next_steps(df: Any, run: str, resume: str | None) -> list[str]:
    """Hints that apply to this run only: resume when it stopped, how to read a failed
    trial's log and retry it, verify when replicas share a seed, report when anything
    finished."""
    lines = [f"resume with: {resume}"] if resume else []
    failed = df[df["status"].isin(FAILED)]
    if len(failed):
        first = failed.iloc[0]
        lines.append(f"{len(failed)} trial{'s' if len(failed) != 1 else ''} failed "
                     f"(e.g. {first['trial_id']}: {first['reason'] or first['status']}); "
                     f"see its log: launch logs {run} {first['trial_id']}")
        lines.append(f"run failed trials again: launch resume {run} --retry-failed")
    ok = df[df["status"] == "succeeded"]
    steps = []
    if len(ok) and ok.groupby(["config_id", "seed"]).size().max() > 1:
        steps.append(f"launch verify {run}")
    if len(ok) or len(failed):
        steps.append(f"launch report {run}")
    if steps:
        lines.append("next: " + "; ".join(steps))
    return lines


def _first(series: Any) -> str | None:
    values = [v for v in series.dropna().unique() if v]
    return str(values[0]) if len(values) == 1 else None


def show_log(run: str, trial_id: str, results_root: Path, *, follow: bool, out: TextIO,
             say: Callable[[str], None]) -> int:
    """Print a trial's log; with ``follow``, stream it live from its running container
    (see launcher/follow.py). Returns the exit code."""
    from launcher.errors import RunError, UsageError
    from launcher.follow import follow_log
    from launcher.store import RunState, find_run

    run_dir = find_run(run, results_root)
    ids = run_dir.plan().trial_ids()
    matches = [i for i in ids if i.startswith(trial_id)]
    if len(matches) != 1:
        raise UsageError(f"{trial_id!r} matches {len(matches)} trials of run "
                         f"{run_dir.run_id}", hint="`launch results RUN` lists them")
    path = run_dir.log_path(matches[0])
    if follow and not run_dir.has_record(matches[0]):
        outcome = follow_log(run_dir, matches[0], out, say)
        if outcome == "streamed":
            return 0
    if path.exists():
        out.write(path.read_text(errors="replace"))
        return 0
    state = run_dir.state()
    if state is RunState.RUNNING:
        raise UsageError(f"trial {matches[0]} has no log yet: it has not finished",
                         hint="`launch logs -f` waits for it and streams it live")
    raise RunError(f"trial {matches[0]} has no log: it never ran, and run {run_dir.run_id} "
                   f"is {state}, so nothing will start it",
                   hint=f"`launch resume {run_dir.run_id}` continues the run")


def print_host_reports(reports: list[Any], image: Any, out: TextIO, *,
                       as_json: bool = False) -> None:
    import dataclasses

    from launcher.terminal import print_table

    if as_json:
        json.dump({"hosts": [dataclasses.asdict(r) for r in reports],
                   "image": {"id": image.id, "tag": image.tag} if image else None},
                  out, indent=1)
        out.write("\n")
        return
    columns = ["host", "reachable", "engine", "cpus", "memory_gib", "slots", "has_image",
               "problem", "url"]
    rows = [[r.name, "yes" if r.reachable else "NO", r.engine, r.cpus, r.memory_gib,
             r.slots, r.has_image, r.problem, r.url] for r in reports]
    print_table(columns, rows, out)
    if image is not None:
        out.write(f"\nimage {image.id} ({image.tag})\n")


def print_cleaned(done: list[Any], out: TextIO) -> None:
    for c in done:
        if c.error:
            out.write(f"{c.host}: not cleaned: {c.error}\n")
        else:
            out.write(f"{c.host}: removed {c.containers} containers, {c.volumes} volumes, "
                      f"{c.images} images\n")
