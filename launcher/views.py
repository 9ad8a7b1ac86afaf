"""Terminal renderings of core objects (plans, summaries). No click here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from launcher.plan import Plan
from launcher.spec import SweepSpec
from launcher.tables import exact, write_rows

if TYPE_CHECKING:
    from launcher.api import RunResults


def print_plan(spec: SweepSpec, plan: Plan, fmt: str, out: TextIO) -> None:
    """The trials as a table, CSV or JSON; a count line after the table."""
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
        for note in plan.notes:
            out.write(f"note: {note}\n")


def print_run_summary(results: RunResults, *, as_json: bool, out: TextIO) -> None:
    """The end-of-run summary (the exit code is ``results.exit_code``)."""
    from launcher.results import summarize, table_problems
    from launcher.store import RunDir

    df = results.df
    counts = {str(k): int(v) for k, v in df["status"].value_counts().items()}
    manifest = RunDir(results.run_dir).manifest()
    metric, goal = manifest.metric_name, manifest.goal
    by_config = summarize(df, metric, goal)
    resume = f"launch resume {results.run_dir}" if results.stopped else None
    problems = table_problems(df, metric)
    if as_json:
        json.dump({"run_id": results.run_id, "run_dir": str(results.run_dir),
                   "trials": len(df), "status": counts, "stopped": results.stopped,
                   "target_reached": results.target_reached or None,
                   "notes": results.notes, "problems": problems, "resume": resume,
                   "image_id": _first(df["image_id"]),
                   "configs": json.loads(by_config.to_json(orient="records"))}, out, indent=1)
        out.write("\n")
        return
    if metric:
        out.write(f"{metric} ({goal}) per configuration over replicas, best first:\n")
    columns = list(by_config.columns)
    write_rows(out, columns, by_config.itertuples(index=False), "table")
    out.write("\n" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
              f" of {len(df)} trials")
    hosts = sorted(h for h in df["host"].dropna().unique() if h)
    named = ", ".join(hosts[:10]) + (f", and {len(hosts) - 10} more" if len(hosts) > 10 else "")
    out.write(f" on {len(hosts)} host{'s' if len(hosts) != 1 else ''} ({named})\n")
    for note in results.notes:
        out.write(f"note: {note}\n")
    for problem in problems:
        out.write(f"warning: {problem}\n")
    if results.stopped:
        out.write(f"stopped: {results.stopped}\n")
    if results.target_reached:
        out.write(f"target reached: {results.target_reached}; no new trial started "
                  "after it\n")
    out.write(f"run: {results.run_dir}\n")
    if resume:
        out.write(f"resume with: {resume}\n")
    else:
        out.write(f"next: launch verify {results.run_dir}; launch report {results.run_dir}\n")


def _first(series: Any) -> str | None:
    values = [v for v in series.dropna().unique() if v]
    return str(values[0]) if len(values) == 1 else None


def show_log(run: str, trial_id: str, results_root: Path, *, follow: bool, out: TextIO) -> None:
    """Print a trial's log. With ``follow``, stream it live from a running container."""
    from launcher.errors import UsageError
    from launcher.follow import follow_log
    from launcher.store import find_run

    run_dir = find_run(run, results_root)
    ids = run_dir.plan().trial_ids()
    matches = [i for i in ids if i.startswith(trial_id)]
    if len(matches) != 1:
        raise UsageError(f"{trial_id!r} matches {len(matches)} trials of run "
                         f"{run_dir.run_id}", hint="`launch results RUN` lists them")
    path = run_dir.log_path(matches[0])
    if follow and not path.exists() and follow_log(run_dir, matches[0], out):
        return
    if not path.exists():
        raise UsageError(f"trial {matches[0]} has no log yet", hint="it has not run; "
                         "`launch logs -f` waits for it and streams it live")
    out.write(path.read_text(errors="replace"))


def print_host_reports(reports: list[Any], image: Any, out: TextIO) -> None:
    columns = ["host", "url", "reachable", "engine", "cpus", "memory_gib", "slots",
               "has_image", "problem"]
    rows = [[r.name, r.url, "yes" if r.reachable else "NO", r.engine, r.cpus, r.memory_gib,
             r.slots, r.has_image, r.problem] for r in reports]
    write_rows(out, columns, rows, "table")
    if image is not None:
        out.write(f"\nimage {image.id} ({image.tag})\n")


def print_cleaned(done: list[Any], out: TextIO) -> None:
    for c in done:
        if c.error:
            out.write(f"{c.host}: not cleaned: {c.error}\n")
        else:
            out.write(f"{c.host}: removed {c.containers} containers, {c.volumes} volumes, "
                      f"{c.images} images\n")
