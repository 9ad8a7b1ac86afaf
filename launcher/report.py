"""One self-contained HTML report of a run: summary, best configurations, the metric
against each parameter, the spread over replicas, learning curves, a timeline of every
container per host, the throughput and the reproducibility matrix.

    from launcher.report import write_report
    write_report("20261130-1024")        # -> results/<sweep>/<run id>/report.html

Images are PNG data URIs and the style sheet is inline: the file references nothing
outside itself, so it can be mailed, archived or opened offline.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.defaults import RESULTS_ROOT
from launcher.listing import short_image
from launcher.store import Manifest, RunDir, atomic_write, find_run

if TYPE_CHECKING:
    import pandas as pd

    from launcher.results import RunTable
    from launcher.verify import Verification

MAX_CURVES = 200
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1080px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:26px;margin:4px 0 2px}h2{font-size:19px;margin:32px 0 8px;
border-bottom:1px solid #e3e3e3;padding-bottom:4px}
.sub{color:#666;margin:0 0 16px}.note{color:#555;font-size:14px}
.verdict{font-size:17px;padding:10px 14px;border-radius:6px;margin:8px 0}
.ok{background:#e6f4ea;color:#1e5631}.bad{background:#fde8e8;color:#8a1c1c}
.none{background:#f0f0f0;color:#444}
img{max-width:100%;height:auto;display:block;margin:8px 0}
table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
th{background:#fafafa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts td:first-child{color:#666;padding-right:18px}
"""


def write_report(run: str | Path, results_root: str | Path = RESULTS_ROOT,
                 output: str | Path | None = None) -> Path:
    """Write the HTML report of a run (default: report.html in the run directory)."""
    run_dir = find_run(str(run), Path(results_root))
    path = Path(output) if output else run_dir.path / "report.html"
    atomic_write(path, build_report(run_dir))
    return path


def build_report(run: RunDir) -> str:
    """The report's HTML text."""
    from launcher.results import table_of
    from launcher.verify import verify_runs

    manifest = run.manifest()
    verification = verify_runs([run.path])
    table = table_of(run)
    labels = config_labels(table.df)
    body = [summary_section(table, manifest), verdict(verification),
            best_section(table, labels),
            params_section(table), spread_section(table, labels),
            curves_section(run, table, labels), timeline_section(table.df),
            repro_section(verification)]
    title = f"{table.sweep} / {run.run_id}"
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            + "".join(body) + "</main></body></html>\n")


# -- building blocks -------------------------------------------------------------------------
def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def img(data: bytes | None, alt: str) -> str:
    if not data:
        return f"<p class=\"note\">(no data for: {esc(alt)})</p>"
    encoded = base64.b64encode(data).decode("ascii")
    return f"<img src=\"data:image/png;base64,{encoded}\" alt=\"{esc(alt)}\">"


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{''.join(parts)}</section>"


def note(text: str) -> str:
    return f"<p class=\"note\">{esc(text)}</p>"


def html_table(df: pd.DataFrame, max_rows: int = 20) -> str:
    from launcher.results import plain_rows
    from launcher.tables import cell

    head = "".join(f"<th>{esc(c)}</th>" for c in df.columns)
    rows = []
    for row in plain_rows(df.head(max_rows)):
        cells = "".join(f"<td class=\"num\">{esc(cell(v))}</td>" if isinstance(v, int | float)
                        else f"<td>{esc(cell(v))}</td>" for v in row)
        rows.append(f"<tr>{cells}</tr>")
    more = note(f"... {len(df) - max_rows} more rows") if len(df) > max_rows else ""
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def config_labels(df: pd.DataFrame) -> dict[str, str]:
    """config_id -> the values of its varying parameters (``lr=0.1 hidden=8``)."""
    from launcher.plots import varying_params

    params = varying_params(df)
    firsts = df.groupby("config_id", sort=False).first()
    return {str(c): " ".join(f"{p.removeprefix('param.')}={row[p]}" for p in params) or str(c)
            for c, row in firsts.iterrows()}


# -- sections -----------------------------------------------------------------------------------
def summary_section(table: RunTable, manifest: Manifest) -> str:
    from launcher.timeline import spans

    df = table.df
    counts = df["status"].value_counts()
    items = spans(df)
    wall = max((e for _, e, _, _ in items), default=0.0)
    hosts = [f"{h.name} (engine {h.engine_version or '?'}, {h.cpus or '?'} CPUs, "
             f"{h.slots or '?'} slots)" for h in manifest.hosts]
    image = manifest.image
    facts = [("run", f"{table.sweep}/{table.run_id} ({manifest.state})"),
             ("created", f"{manifest.created_at}, finished {manifest.finished_at}"),
             ("trials", f"{len(df)}: " + ", ".join(f"{n} {s}" for s, n in counts.items())),
             ("image", f"{image.id} ({image.tag or ''})"),
             ("backend", f"{manifest.backend} on {len(hosts)} host(s): " + "; ".join(hosts[:10])
              + (f"; and {len(hosts) - 10} more" if len(hosts) > 10 else "")),
             ("wall time", f"{wall:.1f} s from the first container start to the last finish, "
                           f"{len(items) / wall if wall else 0:.2f} containers/s"),
             ("metric", f"{table.metric} ({table.goal})" if table.metric else "none named"),
             ("seeds", f"seed {manifest.seed}, seed_mode {manifest.seed_mode}, "
                       f"{manifest.replicas} replicas per configuration")]
    rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in facts)
    description = manifest.description
    warnings = "".join(note(f"warning: {p}") for p in table.problems())
    return (f"<h1>{esc(table.sweep)}</h1><p class=\"sub\">{esc(description)}</p>"
            f"<table class=\"facts\">{rows}</table>{warnings}")


def best_section(table: RunTable, labels: dict[str, str]) -> str:
    by_config = table.by_config()
    shown = by_config.drop(columns=[c for c in by_config.columns if c.startswith("param.")])
    shown.insert(1, "configuration", shown["config_id"].map(labels))
    what = (f"sorted by mean {table.metric}, {table.goal}" if table.metric
            else "the sweep names no metric, so the order is the plan's")
    return section("Best configurations", note(f"{len(by_config)} configurations, {what}."),
                   html_table(shown, 10))


def params_section(table: RunTable) -> str:
    from launcher.plots import metric_vs_params

    if not table.metric:
        return section("Metric against parameters", note("The sweep names no metric."))
    return section(f"{table.metric} against each parameter",
                   img(metric_vs_params(table.df, table.metric), "metric against parameters"))


def spread_section(table: RunTable, labels: dict[str, str]) -> str:
    from launcher.plots import replica_spread

    if not table.metric:
        return ""
    order = list(table.by_config()["config_id"])
    data = replica_spread(table.df, table.metric, labels, order)
    if data is None:
        return section("Spread over replicas", note("No configuration has two succeeded "
                                                    "replicas."))
    return section("Spread over replicas", img(data, "spread over replicas"))


def curves_section(run: RunDir, table: RunTable, labels: dict[str, str]) -> str:
    from launcher.plots import learning_curves

    ok = table.df[table.df["status"] == "succeeded"].head(MAX_CURVES)
    histories = {t: read_history(run.history_path(t)) for t in ok["trial_id"]}
    key, x_name = curve_keys(histories, table.metric)
    if not key:
        return section("Learning curves", note("No trial wrote a history (JSON lines with "
                                               "an epoch or step key)."))
    curves = {t: ([float(h[x_name]) for h in rows if key in h and x_name in h],
                  [float(h[key]) for h in rows if key in h and x_name in h])
              for t, rows in histories.items() if rows}
    config_of = dict(zip(ok["trial_id"], ok["config_id"], strict=True))
    capped = note(f"The first {MAX_CURVES} succeeded trials.") if len(ok) == MAX_CURVES else ""
    return section("Learning curves", img(learning_curves(curves, config_of, labels, key,
                                                          x_name), "learning curves"), capped)


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


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


def timeline_section(df: pd.DataFrame) -> str:
    from launcher.timeline import gantt, throughput

    return section("Containers over time", img(gantt(df), "timeline of containers per host"),
                   img(throughput(df), "throughput over time"))


def verdict(v: Verification) -> str:
    """The reproducibility verdict as a colored line."""
    kind = "ok" if v.ok else "none" if v.compared == 0 else "bad"
    return f"<p class=\"verdict {kind}\">{esc(v.verdict)}</p>"


def repro_section(v: Verification) -> str:
    from launcher.plots import repro_matrix

    listed = "".join(f"<li>{esc(r['trial_id'])} on {esc(r['host'])}: "
                     f"{esc(r['differences'])}</li>" for r in v.differing.head(20)
                     .to_dict("records"))
    image = img(repro_matrix(v.cells()), "reproducibility matrix") if v.compared else ""
    notes = "".join(note(n) for n in v.notes())
    return section("Reproducibility (same configuration and seed, same result)",
                   verdict(v), image,
                   f"<ul>{listed}</ul>" if listed else "", notes,
                   note(f"Image: {short_image(next(iter(v.image_ids), ''))}. Check several "
                        "runs together with `launch verify RUN_A RUN_B`."))
