"""What changed between two runs: trials aligned by trial_id (same parameters, seed and
replica), so runs of different sizes compare on the trials they share.

    from launcher.compare import compare_runs
    c = compare_runs("20261130-1024", "20261201-0900")
    c.df              # one row per trial in either run: status, image, metric .a/.b/.delta
    c.deltas()        # per metric: compared, changed, mean/min/max delta (B - A)
    c.regressions     # trials that got worse by the sweep's goal, or stopped succeeding
    print(c.summary())

A regression is a trial that succeeded in A and not in B, or (when the sweep names a
metric) whose metric got worse by the sweep's goal by more than ``atol + rtol * |A|``.
Only the sweep's metric is judged: other metrics have no direction to be worse in.
The pure functions (:func:`align`, :func:`metric_deltas`, :func:`find_regressions`,
:func:`compare_tables`) work on results tables and are what the unit tests drive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.defaults import RESULTS_ROOT
from launcher.errors import EXIT_FAILURE, EXIT_OK, UsageError
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


def worse(before: Any, after: Any, goal: str, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """True when ``after`` is worse than ``before`` by ``goal`` beyond the tolerance."""
    try:
        a, b = float(before), float(after)
    except (TypeError, ValueError):
        return False
    if a != a or b != b:  # NaN: a missing value is not a measurable regression
        return False
    if abs(b - a) <= atol + rtol * abs(a):
        return False
    return b < a if goal == "maximize" else b > a


@dataclass(frozen=True)
class Comparison:
    """Two runs side by side; read-only. ``df`` is :func:`align`'s table."""

    run_a: str
    run_b: str
    df: pd.DataFrame
    metric: str | None  # the metric judged for regressions (the sweep's), or None
    goal: str
    rtol: float = 0.0
    atol: float = 0.0
    notes: tuple[str, ...] = ()

    def only(self, side: str) -> pd.DataFrame:
        """Trials only in run ``"a"`` or only in run ``"b"``."""
        return self.df[self.df["present"] == side]

    @property
    def status_changes(self) -> pd.DataFrame:
        both = self.df[self.df["present"] == "both"]
        return both[both["status.a"] != both["status.b"]]

    @property
    def image_changes(self) -> pd.DataFrame:
        both = self.df[(self.df["present"] == "both") & self.df["image_id.a"].notna()
                       & self.df["image_id.b"].notna()]
        return both[both["image_id.a"] != both["image_id.b"]]

    @property
    def regressions(self) -> pd.DataFrame:
        return find_regressions(self.df, self.metric, self.goal, self.rtol, self.atol)

    def deltas(self) -> pd.DataFrame:
        return metric_deltas(self.df, self.rtol, self.atol)

    def exit_code(self, fail_on_regression: bool = False) -> int:
        return EXIT_FAILURE if fail_on_regression and len(self.regressions) else EXIT_OK

    @property
    def judged(self) -> str:
        """What counts as a regression, in words."""
        if not self.metric:
            return ("the sweep names no metric: only trials that stopped succeeding count as "
                    "regressions")
        return (f"regressions: {self.metric} worse by its goal ({self.goal}) beyond "
                f"rtol={self.rtol:g} atol={self.atol:g}, or a trial that stopped succeeding")

    def summary(self) -> str:
        """The text `launch compare` prints."""
        return render_comparison(self)


def compare_tables(a: pd.DataFrame, b: pd.DataFrame, *, metric: str | None = None,
                   goal: str = "minimize", rtol: float = 0.0, atol: float = 0.0,
                   names: tuple[str, str] = ("A", "B"),
                   notes: tuple[str, ...] = ()) -> Comparison:
    """Compare two results tables (see :class:`Comparison`)."""
    if rtol < 0 or atol < 0:
        raise UsageError("--rtol and --atol must be >= 0")
    return Comparison(names[0], names[1], align(a, b), metric, goal, rtol, atol, notes)


def compare_runs(run_a: str | Path, run_b: str | Path, results_root: str | Path = RESULTS_ROOT,
                 *, rtol: float = 0.0, atol: float = 0.0) -> Comparison:
    """Compare run B against run A (run directories, or run ids or prefixes). The metric
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


def image_summary(c: Comparison) -> str:
    """``sha256:a -> sha256:b`` for the images of the compared runs (one when unchanged)."""
    def images(side: str) -> str:
        ids = sorted({str(i) for i in c.df[f"image_id.{side}"].dropna() if i})
        return ",".join(short_image(i) for i in ids) or "none"

    a, b = images("a"), images("b")
    return a if a == b else f"{a} -> {b}"


def render_comparison(c: Comparison, max_listed: int = 20) -> str:
    """Runs, alignment, metric deltas, status and image changes, regressions."""
    from launcher.results import plain_rows
    from launcher.tables import render_rows

    both = int((c.df["present"] == "both").sum())
    count = {s: int((c.df["present"].isin(["both", s])).sum()) for s in ("a", "b")}
    lines = [f"A: {c.run_a} ({count['a']} trials)", f"B: {c.run_b} ({count['b']} trials)",
             f"trials: {both} in both, {len(c.only('a'))} only in A, {len(c.only('b'))} "
             f"only in B; image {image_summary(c)}", ""]
    deltas = c.deltas()
    if len(deltas):
        lines += [render_rows(list(deltas.columns), plain_rows(deltas), "table").rstrip(), ""]
    for title, rows in (("only in A", c.only("a")), ("only in B", c.only("b"))):
        if len(rows):
            ids = ", ".join(rows["trial_id"].head(max_listed))
            more = f" (+{len(rows) - max_listed} more)" if len(rows) > max_listed else ""
            lines.append(f"{title}: {ids}{more}")
    for row in c.status_changes.head(max_listed).to_dict("records"):
        lines.append(f"status: {row['trial_id']} {row['status.a']} -> {row['status.b']}")
    if len(c.image_changes):
        lines.append(f"image changed in {len(c.image_changes)} trials")
    regressions = c.regressions
    for row in regressions.head(max_listed).to_dict("records"):
        lines.append(f"regression: {row['trial_id']} {row['detail']}")
    lines += [f"note: {n}" for n in c.notes]
    lines.append(f"note: {c.judged}")
    lines.append(f"{len(regressions)} regression{'s' if len(regressions) != 1 else ''}"
                 f" in {both} trials compared" if len(regressions) else
                 f"no regressions in {both} trials compared")
    return "\n".join(lines) + "\n"
