"""What changed between two runs.

    from launcher.compare import compare_runs
    c = compare_runs("latest~1", "latest")
    c.by              # "trial" or "config": how the runs were aligned
    c.changes         # parameters whose values differ: [ParamChange("epochs", ...)]
    c.df              # the alignment: one row per trial (by trial) or configuration
    c.regressions     # what got worse by the sweep's goal, or stopped succeeding
    print(c.summary())

Runs that share trials (same parameters, seed and replica: runs of one sweep at two
sizes) are aligned trial by trial. Runs that share none (a parameter changed, so every
trial id changed) are aligned by configuration on the parameters both runs share (see
launcher/alignment.py): the metric's mean, std and n per configuration and per run, and
whether the difference is beyond the replicas' noise. A regression is something that
succeeded in A and not in B, or whose metric got worse by the sweep's goal by more than
``atol + rtol * |A|`` (and, by configuration, not within the noise). Only the sweep's
metric is judged. Nothing aligned means nothing comparable: exit code 2.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.alignment import (
    ParamChange,
    align_configs,
    alignment_key,
    config_regressions,
    parameter_changes,
    worse,
)
from launcher.defaults import RESULTS_ROOT
from launcher.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError
from launcher.listing import short_image
from launcher.signatures import values_match
from launcher.trial import TrialStatus

if TYPE_CHECKING:
    import pandas as pd

SIDE_COLUMNS = ("status", "image_id", "host")
OK = str(TrialStatus.SUCCEEDED)


def align(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """One row per trial_id of either table: ``present`` (both, a, b), the identity
    columns, and ``<column>.a`` / ``<column>.b`` for status, image_id, host and metrics."""
    import pandas as pd

    metrics = _metric_names(a, b)
    side = [*SIDE_COLUMNS, *(f"metric.{m}" for m in metrics)]
    ident = ["trial_id", "config_id", "replica", "seed"]

    def pick(df: pd.DataFrame) -> pd.DataFrame:
        return df.reindex(columns=[*ident, *side])

    merged = pd.merge(pick(a), pick(b), on="trial_id", how="outer", suffixes=(".a", ".b"),
                      indicator=True, sort=False)
    for column in ident[1:]:
        merged[column] = merged[f"{column}.a"].combine_first(merged[f"{column}.b"])
    merged = merged.astype({"replica": "Int64", "seed": "Int64"})
    merged["present"] = merged["_merge"].map({"both": "both", "left_only": "a",
                                              "right_only": "b"}).astype(str)
    order: dict[str, int] = {}
    for trial_id in [*a["trial_id"], *b["trial_id"]]:
        order.setdefault(trial_id, len(order))  # A's order, then B's new trials
    merged = merged.assign(_order=merged["trial_id"].map(order)).sort_values("_order")
    columns = [*ident, "present", *(f"{c}.{s}" for c in side for s in ("a", "b"))]
    out = merged[columns].reset_index(drop=True)
    for m in metrics:
        a_values = pd.to_numeric(out[f"metric.{m}.a"], errors="coerce")
        b_values = pd.to_numeric(out[f"metric.{m}.b"], errors="coerce")
        if a_values.notna().any() or b_values.notna().any():
            out[f"metric.{m}.delta"] = b_values - a_values
    return out


def _metric_names(a: pd.DataFrame, b: pd.DataFrame) -> list[str]:
    names = [c for c in a.columns if c.startswith("metric.")]
    names += [c for c in b.columns if c.startswith("metric.") and c not in names]
    return [c.removeprefix("metric.") for c in names]


def metric_deltas(aligned: pd.DataFrame, rtol: float = 0.0, atol: float = 0.0) -> pd.DataFrame:
    """Per metric over trials in both runs: compared, changed (beyond the tolerance), and
    mean, min and max of B - A for numeric metrics."""
    import pandas as pd

    both = aligned[aligned["present"] == "both"]
    rows = []
    for column in [c for c in aligned.columns if c.startswith("metric.") and c.endswith(".a")]:
        name = column.removeprefix("metric.").removesuffix(".a")
        pairs = both[[column, f"metric.{name}.b"]].dropna()
        changed = sum(not values_match(bv, av, rtol, atol) for av, bv in pairs.itertuples(
            index=False, name=None))
        row: dict[str, Any] = {"metric": name, "compared": len(pairs), "changed": changed}
        delta_column = f"metric.{name}.delta"
        if delta_column in both:
            deltas = both.loc[pairs.index, delta_column].dropna()
            row.update(mean_delta=deltas.mean(), min_delta=deltas.min(), max_delta=deltas.max())
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "compared", "changed", "mean_delta",
                                       "min_delta", "max_delta"])


def find_regressions(aligned: pd.DataFrame, metric: str | None, goal: str = "minimize",
                     rtol: float = 0.0, atol: float = 0.0) -> pd.DataFrame:
    """Trials in both runs that stopped succeeding, or whose ``metric`` got worse by
    ``goal`` beyond ``atol + rtol * |A|``. Columns: trial_id, config_id, seed, kind, detail."""
    import pandas as pd

    both = aligned[aligned["present"] == "both"]
    ident = ["trial_id", "config_id", "seed"]
    stopped = both[(both["status.a"] == OK) & (both["status.b"] != OK)]
    parts = [stopped[ident].assign(
        kind="status", detail="status " + stopped["status.a"].astype(str) + " -> "
        + stopped["status.b"].astype(str), _order=stopped.index * 2)]
    if metric and f"metric.{metric}.a" in both and f"metric.{metric}.b" in both:
        before = pd.to_numeric(both[f"metric.{metric}.a"], errors="coerce").astype(float)
        after = pd.to_numeric(both[f"metric.{metric}.b"], errors="coerce").astype(float)
        beyond = (after - before).abs() > atol + rtol * before.abs()
        direction = after < before if goal == "maximize" else after > before
        worse_rows = both[beyond & direction]  # NaN on either side compares False
        detail = [f"{metric} {a:.6g} -> {b:.6g} ({goal})" for a, b in
                  zip(before[worse_rows.index], after[worse_rows.index], strict=True)]
        parts.append(worse_rows[ident].assign(kind="metric", detail=detail,
                                              _order=worse_rows.index * 2 + 1))
    out = pd.concat(parts, ignore_index=True).sort_values("_order", kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)[
        ["trial_id", "config_id", "seed", "kind", "detail"]]


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side; read-only. ``df`` is :func:`align`'s table (``by`` "trial")
    or :func:`launcher.alignment.align_configs`' (``by`` "config")."""

    run_a: str
    run_b: str
    df: pd.DataFrame
    metric: str | None  # the metric judged for regressions (the sweep's), or None
    goal: str
    rtol: float = 0.0
    atol: float = 0.0
    notes: tuple[str, ...] = ()
    by: str = "trial"
    changes: tuple[ParamChange, ...] = ()

    def only(self, side: str) -> pd.DataFrame:
        """Trials (or configurations) only in run ``"a"`` or only in run ``"b"``."""
        return self.df[self.df["present"] == side]

    @property
    def compared(self) -> int:
        """Trials (or configurations) aligned in both runs."""
        both = self.df[self.df["present"] == "both"]
        if self.by == "config":
            return int(((both["n.a"] > 0) | (both["n.b"] > 0)).sum())
        return len(both)

    @property
    def comparable(self) -> bool:
        return self.compared > 0

    @property
    def status_changes(self) -> pd.DataFrame:
        if self.by == "config":
            return self.df[:0]
        both = self.df[self.df["present"] == "both"]
        return both[both["status.a"] != both["status.b"]]

    @property
    def image_changes(self) -> pd.DataFrame:
        if self.by == "config":
            return self.df[:0]
        both = self.df[(self.df["present"] == "both") & self.df["image_id.a"].notna()
                       & self.df["image_id.b"].notna()]
        return both[both["image_id.a"] != both["image_id.b"]]

    @property
    def regressions(self) -> pd.DataFrame:
        if self.by == "config":
            return config_regressions(self.df, self.metric, self.goal, self.rtol, self.atol)
        return find_regressions(self.df, self.metric, self.goal, self.rtol, self.atol)

    def deltas(self) -> pd.DataFrame:
        return metric_deltas(self.df, self.rtol, self.atol)

    def exit_code(self, fail_on_regression: bool = False) -> int:
        """2 when nothing could be compared; 1 for regressions with ``fail_on_regression``."""
        if not self.comparable:
            return EXIT_USAGE
        return EXIT_FAILURE if fail_on_regression and len(self.regressions) else EXIT_OK

    @property
    def judged(self) -> str:
        """What counts as a regression, in words."""
        if not self.metric:
            return ("the sweep names no metric: only trials that stopped succeeding count as "
                    "regressions")
        noise = ", and not within the replicas' noise" if self.by == "config" else ""
        return (f"regressions: {self.metric} worse by its goal ({self.goal}) beyond "
                f"rtol={self.rtol:g} atol={self.atol:g}{noise}, or a "
                f"{'configuration' if self.by == 'config' else 'trial'} that stopped "
                "succeeding")

    def summary(self) -> str:
        """The text `launch compare` prints."""
        return render_comparison(self)

    def to_json(self) -> dict[str, Any]:
        """What `launch compare --json` prints."""
        return comparison_json(self)


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, *, metric: str | None = None,
                   goal: str = "minimize", rtol: float = 0.0, atol: float = 0.0,
                   names: tuple[str, str] = ("A", "B"),
                   notes: tuple[str, ...] = ()) -> Comparison:
    """Compare two results tables: trial by trial when they share trials, else by
    configuration (see :class:`Comparison`)."""
    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must be >= 0")
    changes = tuple(parameter_changes(a, b))
    if set(a["trial_id"]) & set(b["trial_id"]):
        return Comparison(names[0], names[1], align(a, b), metric, goal, rtol, atol, notes,
                          "trial", changes)
    key = alignment_key(a, b)
    out = list(notes)
    if not key and (a["config_id"].nunique() > 1 or b["config_id"].nunique() > 1):
        # Several configurations on each side and no value in common: pooling them would
        # compare different things, so nothing is aligned.
        out.append("the runs share no configuration: no parameter has a value in common")
        a, b = a[:0], b[:0]
    table = align_configs(a, b, key, metric, rtol, atol)
    return Comparison(names[0], names[1], table, metric, goal, rtol, atol, tuple(out),
                      "config", changes)


def compare_runs(run_a: str | Path, run_b: str | Path, results_root: str | Path = RESULTS_ROOT,
                 *, rtol: float = 0.0, atol: float = 0.0) -> Comparison:
    """Compare run B against run A (run directories, or run references). The metric
    and goal judged for regressions are B's sweep's (A's when B names none)."""
    from launcher.results import load_table, sweep_metric
    from launcher.store import find_run

    a, b = (find_run(str(r), Path(results_root)) for r in (run_a, run_b))
    if a.path.resolve() == b.path.resolve():
        raise UsageError("compare needs two different runs", hint="`launch ls` lists them")
    (metric_a, goal_a), (metric_b, goal_b) = sweep_metric(a), sweep_metric(b)
    metric, goal = (metric_b, goal_b) if metric_b else (metric_a, goal_a)
    notes = []
    if metric_a and metric_b and (metric_a, goal_a) != (metric_b, goal_b):
        notes.append(f"the runs' sweeps name different metrics ({metric_a} {goal_a}, "
                     f"{metric_b} {goal_b}): judging B's")
    names = tuple(f"{r.path.parent.name}/{r.run_id}" for r in (a, b))
    return compare_tables(load_table(a), load_table(b), metric=metric, goal=goal, rtol=rtol,
                          atol=atol, names=(names[0], names[1]), notes=tuple(notes))



# -- what `launch compare` prints -------------------------------------------------------
MAX_LISTED = 20
NOTHING_HINT = ("compare two runs of one sweep file, or of one that changed a parameter "
                "while keeping others; `launch results RUN --by config` shows one run")


def image_summary(c: Comparison) -> str:
    """``sha256:a -> sha256:b`` for the images of the compared runs (one when unchanged)."""
    if c.by == "config":
        return ""

    def images(side: str) -> str:
        ids = sorted({str(i) for i in c.df[f"image_id.{side}"].dropna() if i})
        return ",".join(short_image(i) for i in ids) or "none"

    a, b = images("a"), images("b")
    return a if a == b else f"{a} -> {b}"


def render_comparison(c: Comparison) -> str:
    """Runs, what changed, how they were aligned, the table, regressions, the verdict."""
    count = {s: int(c.df[f"trials.{s}"].sum()) if c.by == "config" else
             int(c.df["present"].isin(["both", s]).sum()) for s in ("a", "b")}
    lines = [f"A: {c.run_a} ({count['a']} trials)", f"B: {c.run_b} ({count['b']} trials)"]
    lines += [f"changed: {change.text()}" for change in c.changes] or \
        ["changed: no parameter (same values in both runs)"]
    lines += _trial_lines(c) if c.by == "trial" else _config_lines(c)
    regressions = c.regressions
    what = "configuration" if c.by == "config" else "trial"
    for row in regressions.head(MAX_LISTED).to_dict("records"):
        lines.append(f"regression: {row.get('configuration') or row.get('trial_id')} "
                     f"{row['detail']}")
    lines += [f"note: {n}" for n in c.notes]
    lines.append(f"note: {c.judged}")
    if not c.comparable:
        lines.append(f"nothing to compare: no {what} has results in both runs "
                     f"({NOTHING_HINT})")
    elif len(regressions):
        lines.append(f"{len(regressions)} regression{'s' if len(regressions) != 1 else ''} "
                     f"in {c.compared} {what}s compared")
    else:
        lines.append(f"no regressions in {c.compared} {what}s compared")
    return "\n".join(lines) + "\n"


def _trial_lines(c: Comparison) -> list[str]:
    from launcher.results import frame_text

    both = int((c.df["present"] == "both").sum())
    lines = [f"aligned trial by trial: {both} in both, {len(c.only('a'))} only in A, "
             f"{len(c.only('b'))} only in B; image {image_summary(c)}", ""]
    deltas = c.deltas()
    if len(deltas):
        lines += [frame_text(deltas).rstrip(), ""]
    for title, rows in (("only in A", c.only("a")), ("only in B", c.only("b"))):
        if len(rows):
            ids = ", ".join(rows["trial_id"].head(MAX_LISTED))
            more = f" (+{len(rows) - MAX_LISTED} more)" if len(rows) > MAX_LISTED else ""
            lines.append(f"{title}: {ids}{more}")
    for row in c.status_changes.head(MAX_LISTED).to_dict("records"):
        lines.append(f"status: {row['trial_id']} {row['status.a']} -> {row['status.b']}")
    if len(c.image_changes):
        lines.append(f"image changed in {len(c.image_changes)} trials")
    return lines


def _config_lines(c: Comparison) -> list[str]:
    from launcher.results import frame_text

    key = [col.removeprefix("param.") for col in c.df.columns if col.startswith("param.")]
    on = f"on {', '.join(key)}" if key else "as one configuration each"
    lines = [f"aligned by configuration {on} (the runs share no trial)",
             ""]
    if not len(c.df):
        return lines
    metric = c.metric or "succeeded"
    shown = c.df.assign(beyond_noise=c.df["beyond_noise"].map(_yes_no))
    shown = shown[["configuration", "n.a", "mean.a", "std.a", "n.b", "mean.b", "std.b",
                   "delta", "beyond_noise"]]
    shown.columns = ["configuration", "n A", f"{metric} A", "std A", "n B", f"{metric} B",
                     "std B", "delta", "beyond noise"]
    return [*lines, frame_text(shown.round(4)).rstrip(), ""]


def _yes_no(value: Any) -> str:
    return "?" if value is None or value != value else "yes" if value else "no"


def comparison_json(c: Comparison) -> dict[str, Any]:
    """A plain JSON object: runs, alignment, changes, rows, regressions, exit code."""
    rows = json.loads(c.df.to_json(orient="records", date_format="iso"))
    return {"run_a": c.run_a, "run_b": c.run_b, "aligned_by": c.by,
            "changes": [change.to_json() for change in c.changes],
            "metric": c.metric, "goal": c.goal, "compared": c.compared,
            "comparable": c.comparable, "rows": rows,
            "regressions": json.loads(c.regressions.to_json(orient="records")),
            "notes": [*c.notes, c.judged],
            "exit_code": c.exit_code(False), "exit_code_fail_on_regression": c.exit_code(True)}


__all__ = ["Comparison", "ParamChange", "align", "compare_runs", "compare_tables",
           "find_regressions", "metric_deltas", "worse"]
