"""The scaling demo: run one sweep at several sizes, measure wall time and containers per
second against N, compare with the ideal, and verify that equal seeds gave equal metrics
across the sizes.

    from launcher.scale import scale_sweep
    study = scale_sweep("experiments/replicas.yaml", [1, 10, 50])
    study.df            # N, run_id, trials, succeeded, wall_s, containers_per_s, ideal_s, ...
    study.verification  # launcher.verify.Verification over every size's run
    study.plot          # the PNG next to the runs (and study.page, an HTML page with it)

Wall time runs from the first container start to the last finish of a size's run (the
image build and host set-up are the same for every size and left out). The ideal is
perfect parallelism over the run's slots with every container as fast as at the
smallest size: ``ideal_s = ceil(N / slots) * t``, where ``t`` is the median container
duration of the smallest size; efficiency is ``ideal_s / wall_s``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.errors import EXIT_FAILURE, EXIT_OK, UsageError
from launcher.store import atomic_write

if TYPE_CHECKING:
    import pandas as pd

    from launcher.overrides import Overrides
    from launcher.verify import Verification

COLUMNS = ("N", "run_id", "trials", "succeeded", "slots", "wall_s", "containers_per_s",
           "ideal_s", "ideal_per_s", "efficiency")


def parse_sizes(text: str) -> list[int]:
    """``"1,10,50,100"`` -> [1, 10, 50, 100] (each at least 1, no repeats)."""
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise UsageError(f"--replicas takes sizes like 1,10,50,100, not {text!r}") from None
    if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
        raise UsageError(f"--replicas takes distinct sizes of at least 1, not {text!r}")
    return sorted(sizes)


@dataclass(frozen=True)
class ScaleStudy:
    """The measurements of a scaling run; read-only."""

    df: pd.DataFrame
    verification: Verification
    plot: Path
    page: Path

    @property
    def failed_trials(self) -> int:
        return int((self.df["trials"] - self.df["succeeded"]).sum())

    @property
    def exit_code(self) -> int:
        """1 when verification found differences or a trial failed, else 0."""
        return EXIT_FAILURE if self.verification.exit_code == EXIT_FAILURE or \
            self.failed_trials else EXIT_OK

    def summary(self) -> str:
        from launcher.results import plain_rows
        from launcher.tables import render_rows

        shown = self.df.round({"wall_s": 2, "containers_per_s": 2, "ideal_s": 2,
                               "ideal_per_s": 2, "efficiency": 2})
        lines = [render_rows(list(shown.columns), plain_rows(shown), "table").rstrip(), ""]
        if self.failed_trials:
            lines.append(f"{self.failed_trials} trials did not succeed")
        lines += [f"note: {n}" for n in self.verification.notes()]
        lines += [f"verify: {self.verification.verdict}", f"plot: {self.plot}",
                  f"page: {self.page}"]
        return "\n".join(lines) + "\n"


def scale_sweep(sweep: str | Path, sizes: Sequence[int], overrides: Overrides | None = None,
                *, progress: str = "quiet",
                on_size: Callable[[str], None] | None = None) -> ScaleStudy:
    """Run ``sweep`` once per size (``replicas`` = N), then measure, plot and verify."""
    from launcher.api import run_sweep
    from launcher.overrides import Overrides
    from launcher.verify import verify_runs

    base = overrides or Overrides()
    runs: list[tuple[int, Any]] = []
    for n in sorted(sizes):
        if on_size:
            on_size(f"scale: N={n}")
        results = run_sweep(sweep, replace(base, replicas=n), progress=progress)
        runs.append((n, results))
        if on_size:
            on_size(f"scale: N={n} done: {results.run_dir}")
    table = measure([(n, r.run_dir) for n, r in runs])
    verification = verify_runs([r.run_dir for _, r in runs])
    folder = Path(runs[0][1].run_dir).parent
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    plot = folder / f"scale-{stamp}.png"
    atomic_write(plot, scale_plot(table))
    page = folder / f"scale-{stamp}.html"
    atomic_write(page, scale_page(table, verification, plot.read_bytes()))
    return ScaleStudy(table, verification, plot, page)


def measure(runs: Sequence[tuple[int, Path]]) -> pd.DataFrame:
    """One row per size (columns: COLUMNS) from the runs' tables and manifests."""
    import pandas as pd

    from launcher.results import build_table
    from launcher.store import RunDir
    from launcher.timeline import spans

    rows = []
    unit: float | None = None
    for n, path in sorted(runs):
        run = RunDir(Path(path))
        df = build_table(run)
        items = spans(df)
        wall = max((e for _, e, _, _ in items), default=0.0)
        durations = [e - s for s, e, _, _ in items]
        if unit is None and durations:
            unit = statistics.median(durations)
        slots = run.manifest().slots
        ideal = math.ceil(len(df) / slots) * (unit or 0.0)
        rows.append({"N": n, "run_id": run.run_id, "trials": len(df),
                     "succeeded": int((df["status"] == "succeeded").sum()), "slots": slots,
                     "wall_s": wall, "containers_per_s": len(items) / wall if wall else None,
                     "ideal_s": ideal, "ideal_per_s": len(df) / ideal if ideal else None,
                     "efficiency": ideal / wall if wall else None})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def scale_plot(df: pd.DataFrame) -> bytes:
    """Wall time and containers per second against N, each with the ideal line."""
    from launcher.plots import COLORS, figure, png, style

    fig = figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    n = df["N"].to_numpy()
    left.plot(n, df["wall_s"].to_numpy(), "-o", color=COLORS[0], label="measured")
    left.plot(n, df["ideal_s"].to_numpy(), "--", color=COLORS[7], label="ideal")
    style(left, "wall time", "N (containers)", "seconds")
    right.plot(n, df["containers_per_s"].to_numpy(), "-o", color=COLORS[2], label="measured")
    right.plot(n, df["ideal_per_s"].to_numpy(), "--", color=COLORS[7], label="ideal")
    style(right, "throughput", "N (containers)", "containers per second")
    for ax in (left, right):
        if n.max() / max(n.min(), 1) >= 20:
            ax.set_xscale("log")
        ax.legend(fontsize=8, frameon=False)
    return png(fig)


def scale_page(df: pd.DataFrame, verification: Verification, plot: bytes) -> str:
    """A small self-contained HTML page: the table, the plot and the verdict."""
    from launcher.report import CSS, html_table, img, verdict

    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>scale"
            f"</title><style>{CSS}</style></head><body><main><h1>Scaling</h1>"
            f"{html_table(df, 50)}{img(plot, 'wall time and throughput against N')}"
            f"{verdict(verification)}</main></body></html>\n")
