"""One self-contained HTML report of a run: summary, best configurations, the metric
against each parameter, how parameters act together (heatmap, parallel coordinates),
the spread over replicas, learning curves, failed and stopped trials with their logs,
a timeline of every container per host, reproducibility, and the sweep file with one
trial's command.

    from launcher.report import write_report
    write_report("latest")        # -> results/<sweep>/<run id>/report.html

Images are SVG data URIs and the style sheet is inline: the file references nothing
outside itself, so it can be mailed, archived or opened offline. A section with nothing
to show is one line. On a running run, :func:`write_live_report` rewrites the page
until the run ends, and the page reloads itself meanwhile.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.defaults import RESULTS_ROOT
from launcher.html import (
    empty,
    esc,
    facts_table,
    html_table,
    img,
    note,
    page,
    pre,
    section,
    verdict,
)
from launcher.listing import short_image
from launcher.store import Manifest, RunDir, RunState, atomic_write, find_run

if TYPE_CHECKING:
    import pandas as pd

    from launcher.results import RunTable
    from launcher.verify import Verification

MAX_CURVES = 200
MAX_FAILED = 30
LOG_EXCERPT_LINES = 8
RELOAD_SECONDS = 5
MAX_LIVE_SECONDS = 24 * 3600  # bounded: a live page stops being rewritten after a day
STOPPED = ("failed", "timed_out", "oom_killed", "lost", "cancelled")


def write_report(run: str | Path, results_root: str | Path = RESULTS_ROOT,
                 output: str | Path | None = None) -> Path:
    """Write the HTML report of a run (default: report.html in the run directory); a
    running run's page reloads itself (see :func:`write_live_report`)."""
    run_dir = find_run(str(run), Path(results_root))
    path = Path(output) if output else run_dir.path / "report.html"
    atomic_write(path, build_report(run_dir, live=run_dir.state() is RunState.RUNNING))
    return path


def write_live_report(run: str | Path, results_root: str | Path = RESULTS_ROOT,
                      output: str | Path | None = None, *, once: bool = False,
                      on_update: Callable[[str], None] | None = None) -> Path:
    """Write the report; while the run runs (and not ``once``), rewrite it every few
    seconds until the run ends, then write the final page (which no longer reloads)."""
    run_dir = find_run(str(run), Path(results_root))
    path = write_report(run_dir.path, results_root, output)
    if once or run_dir.state() is not RunState.RUNNING:
        return path
    if on_update:
        on_update(f"run {run_dir.run_id} is running: {path} reloads itself and is rewritten "
                  f"every {RELOAD_SECONDS} s until the run ends (Ctrl-C stops)")
    deadline = time.monotonic() + MAX_LIVE_SECONDS
    try:
        while run_dir.state() is RunState.RUNNING and time.monotonic() < deadline:
            time.sleep(RELOAD_SECONDS)
            write_report(run_dir.path, results_root, path)
    finally:  # the last page does not reload (also after Ctrl-C)
        atomic_write(path, build_report(run_dir, live=False))
    return path


def build_report(run: RunDir, live: bool = False) -> str:
    """The report's HTML text; ``live`` adds a reload tag and a banner."""
    from launcher.results import table_of
    from launcher.verify import verify_runs

    manifest = run.manifest()
    table = table_of(run)
    verification = verify_runs([run.path])
    labels = config_labels(table.df)
    log_scale = {name: run.plan().log_scale(name) for name in run.plan().parameters}
    body = [summary_section(table, manifest, live),
            verdict(verification) if verification.compared else "",
            best_section(table, labels), params_section(table, log_scale),
            interactions_section(table, log_scale), spread_section(table, labels),
            curves_section(run, table, labels), failed_section(run, table.df),
            timeline_section(table.df), repro_section(verification),
            sweep_section(run, table.df)]
    return page(f"{table.sweep} / {run.run_id}", "".join(body),
                reload_seconds=RELOAD_SECONDS if live else None)


def config_labels(df: pd.DataFrame) -> dict[str, str]:
    """config_id -> the values of its varying parameters (``lr=0.1 hidden=8``)."""
    from launcher.plots import category_label, varying_params

    params = varying_params(df)
    firsts = df.groupby("config_id", sort=False).first()
    return {str(c): " ".join(f"{p.removeprefix('param.')}={category_label(row[p])}"
                             for p in params) or str(c) for c, row in firsts.iterrows()}


def _ok(table: RunTable) -> pd.DataFrame:
    column = f"metric.{table.metric}"
    df = table.df
    return df[(df["status"] == "succeeded") & df[column].notna()] if column in df else df[:0]


# -- sections -------------------------------------------------------------------------------------
def summary_section(table: RunTable, manifest: Manifest, live: bool) -> str:
    from launcher.timeline import spans

    df = table.df
    counts = df["status"].value_counts()
    items = spans(df)
    wall = max((e for _, e, _, _ in items), default=0.0)
    hosts = [f"{h.name} (engine {h.engine_version or '?'}, {h.cpus or '?'} CPUs, "
             f"{h.slots or '?'} slots)" for h in manifest.hosts]
    image = manifest.image
    facts = [("run", f"{table.sweep}/{table.run_id} ({manifest.state})"),
             ("created", f"{manifest.created_at}, finished {manifest.finished_at or '-'}"),
             ("trials", f"{len(df)}: " + ", ".join(f"{n} {s}" for s, n in counts.items())),
             ("image", f"{image.id} ({image.tag or ''})"),
             ("backend", f"{manifest.backend} on {len(hosts)} host(s): " + "; ".join(hosts[:10])
              + (f"; and {len(hosts) - 10} more" if len(hosts) > 10 else "")),
             ("wall time", f"{wall:.1f} s from the first container start to the last finish, "
                           f"{len(items) / wall if wall else 0:.2f} containers/s"),
             ("metric", f"{table.metric} ({table.goal})" if table.metric else "none named"),
             ("seeds", f"seed {manifest.seed}, seed_mode {manifest.seed_mode}, "
                       f"{manifest.replicas} replicas per configuration"),
             *search_facts(table)]
    banner = (f"<p class=\"live\">Live: the run is running; this page reloads every "
              f"{RELOAD_SECONDS} s until it ends.</p>" if live else "")
    warnings = "".join(note(f"warning: {p}") for p in table.problems())
    return (f"<h1>{esc(table.sweep)}</h1><p class=\"sub\">{esc(manifest.description)}</p>"
            f"{banner}{facts_table(facts)}{warnings}")


def search_facts(table: RunTable) -> list[tuple[str, str]]:
    """Adaptive search and early termination, when the run used them."""
    from launcher.search.savings import estimate

    run = RunDir(table.run_dir)
    plan = run.plan()
    facts = []
    if plan.adaptive is not None:
        a = plan.adaptive
        facts.append(("search", f"{a.method} with the {a.sampler} sampler: "
                                f"{len(run.asked())} of {a.run_cap} configurations asked"))
    savings = estimate(run.records())
    if savings is not None:
        facts.append(("early termination", savings.text()))
    return facts


def best_section(table: RunTable, labels: dict[str, str]) -> str:
    by_config = table.by_config()
    if not len(by_config):
        return empty("Best configurations", "no configuration")
    shown = by_config.drop(columns=[c for c in by_config.columns if c.startswith("param.")])
    shown.insert(1, "configuration", shown["config_id"].map(labels))
    what = (f"sorted by mean {table.metric}, {table.goal}" if table.metric
            else "the sweep names no metric, so the order is the plan's")
    return section("Best configurations", note(f"{len(by_config)} configurations, {what}."),
                   html_table(shown, 10))


def params_section(table: RunTable, log_scale: dict[str, bool | None]) -> str:
    from launcher.plots import metric_vs_params

    title = f"{table.metric} against each parameter" if table.metric else \
        "Metric against parameters"
    if not table.metric:
        return empty(title, "the sweep names no metric")
    data = metric_vs_params(table.df, table.metric, log_scale)
    if data is None:
        return empty(title, f"no succeeded trial reported {table.metric}")
    return section(title, img(data, "metric against parameters"))


def interactions_section(table: RunTable, log_scale: dict[str, bool | None]) -> str:
    from launcher.interactions import heatmap, importance, parallel_coordinates

    title = "Parameters together"
    ok = _ok(table)
    if not table.metric or not len(ok):
        return empty(title, "no metric to compare configurations by")
    ranked = importance(ok, table.metric, log_scale)
    if len(ranked) < 2:
        return empty(title, "fewer than two parameters vary")
    names = list(ranked)
    shares = ", ".join(f"{n} {share:.0%}" for n, share in ranked.items())
    return section(title, note(f"Share of the variance of {table.metric} that each "
                               f"parameter's values explain: {shares}."),
                   img(heatmap(ok, table.metric, table.goal, (names[0], names[1]), log_scale),
                       f"heatmap of {table.metric} over {names[0]} and {names[1]}"),
                   img(parallel_coordinates(ok, table.metric, table.goal, names[:8],
                                            log_scale), "parallel coordinates"))


def spread_section(table: RunTable, labels: dict[str, str]) -> str:
    from launcher.plots import replica_spread

    if not table.metric:
        return empty("Spread over replicas", "the sweep names no metric")
    order = list(table.by_config()["config_id"])
    data = replica_spread(table.df, table.metric, labels, order)
    if data is None:
        return empty("Spread over replicas", "no configuration has two succeeded replicas")
    return section("Spread over replicas", img(data, "spread over replicas"))


def curves_section(run: RunDir, table: RunTable, labels: dict[str, str]) -> str:
    from launcher.plots import learning_curves
    from launcher.results import read_history

    # stopped trials too: their curves are where early termination decided
    ok = table.df[table.df["status"].isin(["succeeded", "stopped"])].head(MAX_CURVES)
    histories = {t: read_history(run.history_path(t)) for t in ok["trial_id"]}
    key, x_name = curve_keys(histories, table.metric)
    if not key:
        return empty("Learning curves", "no trial wrote a history (JSON lines with an epoch "
                                        "or step key)")
    curves = {t: ([float(h[x_name]) for h in rows if key in h and x_name in h],
                  [float(h[key]) for h in rows if key in h and x_name in h])
              for t, rows in histories.items() if rows}
    config_of = dict(zip(ok["trial_id"], ok["config_id"], strict=True))
    capped = note(f"The first {MAX_CURVES} succeeded or stopped trials.") \
        if len(ok) == MAX_CURVES else ""
    return section("Learning curves", img(learning_curves(curves, config_of, labels, key,
                                                          x_name), "learning curves"), capped)


def curve_keys(histories: dict[str, list[dict[str, Any]]],
               metric: str | None) -> tuple[str | None, str]:
    """The value to plot (the sweep's metric when the history has it) and the x key."""
    first = next((rows[0] for rows in histories.values() if rows), None)
    if first is None:
        return None, "step"
    x_name = "epoch" if "epoch" in first else "step"
    numeric = [k for k, v in first.items() if k not in ("epoch", "step")
               and isinstance(v, int | float) and not isinstance(v, bool)]
    key = metric if metric in numeric else (numeric[0] if numeric else None)
    return key, x_name


def failed_section(run: RunDir, df: pd.DataFrame) -> str:
    """Every trial that did not succeed: status, reason, host, attempt, end of its log."""
    title = "Failed and stopped trials"
    bad = df[df["status"].isin(STOPPED)]
    waiting = int((df["status"] == "not_started").sum())
    later = f"; {waiting} not started yet" if waiting else ""
    if not len(bad):
        return empty(title, f"none: every trial that ran succeeded{later}")
    rows = bad.head(MAX_FAILED).assign(
        log=[pre(log_excerpt(run.log_path(str(t)))) for t in bad["trial_id"].head(MAX_FAILED)])
    shown = rows[["trial_id", "status", "reason", "host", "attempt", "log"]]
    return section(title, note(f"{len(bad)} trials{later}. `launch logs RUN TRIAL` prints a "
                               "whole log; `launch resume RUN --retry-failed` runs them again."),
                   html_table(shown, MAX_FAILED, raw=("log",)))


def log_excerpt(path: Path, lines: int = LOG_EXCERPT_LINES) -> str:
    """The last lines of a log (the error is usually there)."""
    if not path.is_file():
        return "(no log)"
    tail = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return "\n".join(line[:200] for line in tail[-lines:]) or "(empty log)"


def timeline_section(df: pd.DataFrame) -> str:
    from launcher.timeline import gantt, throughput

    chart = gantt(df)
    if chart is None:
        return empty("Containers over time", "no container has finished yet")
    return section("Containers over time", img(chart, "timeline of containers per host"),
                   img(throughput(df), "throughput over time"))


def repro_section(v: Verification) -> str:
    from launcher.plots import repro_matrix

    title = "Reproducibility (same configuration and seed, same result)"
    if v.compared == 0:
        return empty(title, v.verdict)
    listed = "".join(f"<li>{esc(r['trial_id'])} on {esc(r['host'])}: "
                     f"{esc(r['differences'])}</li>" for r in v.differing.head(20)
                     .to_dict("records"))
    notes = "".join(note(n) for n in v.notes())
    return section(title, verdict(v), img(repro_matrix(v.cells()), "reproducibility matrix"),
                   f"<ul>{listed}</ul>" if listed else "", notes,
                   note(f"Image: {short_image(next(iter(v.image_ids), ''))}. Check several "
                        "runs together with `launch verify RUN_A RUN_B`."))


def sweep_section(run: RunDir, df: pd.DataFrame) -> str:
    """The sweep file as the run saved it, and the command of one trial."""
    import json

    argv = next((json.loads(a) for a in df["argv"].dropna()), None) if "argv" in df else None
    command = pre(command_text(argv)) if argv else note(
        "Not recorded (a run made by an older launcher).")
    first = df[df["argv"].notna()].iloc[0]["trial_id"] if argv else ""
    given = {k: v for k, v in run.manifest().overrides.items() if v not in (None, [], {}, "")}
    overrides = ", ".join(f"{k}={v}" for k, v in given.items()) or "none"
    return section("The sweep", note(f"sweep.yaml as this run saved it (command-line "
                                     f"overrides: {overrides}):"),
                   pre(run.sweep_text()),
                   note(f"The command of trial {first} (values are argv items, never "
                        "a shell):" if argv else "The command of a trial:"), command)


def command_text(argv: list[str]) -> str:
    """An argv as a reader would type it; a kept image entrypoint is named as such."""
    if argv and argv[0] == "<entrypoint>":
        return "(the image's entrypoint) " + shlex.join(argv[1:])
    return shlex.join(argv)
