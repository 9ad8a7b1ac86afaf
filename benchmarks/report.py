"""The fan-out table (medians, ratios to the floor, containers/s), the targets, CSV files
and the PNG plot."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import median
from benchmarks.extras import Metric


@dataclass
class Sample:
    """One timed run of one contender."""

    contender: str
    n: int
    rep: int
    wall_s: float
    cpu_s: float  # client-side CPU: this process (in-process contenders) or the child's
    ok: bool
    leftovers: int
    problem: str = ""
    load: float = float("nan")  # 1-minute load average when it started


@dataclass
class Cell:
    contender: str
    n: int
    median_s: float
    per_s: float
    ratio: float  # median time / the floor's median time at the same N
    cpu_ms: float  # client CPU per container
    reps: int
    failed: int
    leftovers: int


def summarize(samples: list[Sample], order: Sequence[str], sizes: Sequence[int]) -> list[Cell]:
    cells = []
    floors = {n: median(s.wall_s for s in samples if s.contender == "floor" and s.n == n)
              for n in sizes}
    for key in order:
        for n in sizes:
            mine = [s for s in samples if s.contender == key and s.n == n]
            if not mine:
                continue
            t = median(s.wall_s for s in mine if s.ok)
            cells.append(Cell(key, n, t, n / t, t / floors[n],
                              median(s.cpu_s for s in mine if s.ok) / n * 1e3, len(mine),
                              sum(not s.ok for s in mine), sum(s.leftovers for s in mine)))
    return cells


def table(cells: list[Cell], titles: dict[str, str], sizes: Sequence[int]) -> str:
    """Contenders down, sizes across: ``seconds  x ratio  containers/s`` per cell."""
    by = {(c.contender, c.n): c for c in cells}
    width = max(len(t) for t in titles.values()) + 2
    head = "contender".ljust(width) + "".join(f"N={n}".ljust(24) for n in sizes)
    head += "client CPU ms/ctr  fails  left"
    lines = [head, "-" * len(head)]
    for key, title in titles.items():
        row = [by.get((key, n)) for n in sizes]
        if not any(row):
            continue
        text = title.ljust(width)
        for c in row:
            text += (f"{c.median_s:7.2f}s x{c.ratio:5.2f} {c.per_s:5.1f}/s  " if c else
                     "-".ljust(24))
        last = next(c for c in reversed(row) if c)
        text += f"{last.cpu_ms:10.1f}      {sum(c.failed for c in row if c):5d}  "
        text += f"{sum(c.leftovers for c in row if c):4d}"
        lines.append(text)
    return "\n".join(lines)


def paired(samples: list[Sample], a: str, b: str, n: int) -> tuple[list[float], float]:
    """Per-repetition ratios time(a) / time(b) at N=n, and the ratio of the best times
    (external load only ever adds time, so the best of the repetitions is the least
    disturbed estimate)."""
    ta = {s.rep: s.wall_s for s in samples if s.contender == a and s.n == n and s.ok}
    tb = {s.rep: s.wall_s for s in samples if s.contender == b and s.n == n and s.ok}
    reps = sorted(set(ta) & set(tb))
    best = min(ta.values()) / min(tb.values()) if ta and tb else float("nan")
    return [ta[r] / tb[r] for r in reps], best


def _spread(samples: list[Sample], a: str, b: str, n: int) -> str:
    per_rep, best = paired(samples, a, b, n)
    return f"per repetition {', '.join(f'{r:.2f}' for r in per_rep)}; best-of {best:.2f}"


def targets(cells: list[Cell], samples: list[Sample], n: int) -> list[Metric]:
    """The fan-out targets of the issue, at N=n, on the medians."""
    by = {c.contender: c for c in cells if c.n == n}
    out = []

    def ratio_target(key: str, limit: float, what: str) -> None:
        if key in by:
            r = by[key].ratio
            out.append(Metric(f"{what} at N={n}: time / floor", r, "x", f"<= {limit}",
                              r <= limit and not by[key].failed,
                              _spread(samples, key, "floor", n)))

    def beats(other: str, factor: float, what: str) -> None:
        for key in ("api", "launch"):
            if key in by and other in by:
                r = by[other].median_s / by[key].median_s
                out.append(Metric(f"{what} / launcher {key} at N={n}", r, "x",
                                  f">= {factor}", r >= factor,
                                  _spread(samples, other, key, n)))

    ratio_target("api", 1.05, "launcher API, outputs: false")
    ratio_target("launch", 1.10, "`launch`, outputs: false")
    beats("xargs", 1.1, "xargs -P")
    beats("loop", 1.8, "sequential docker run loop")
    return out


def print_metrics(metrics: list[Metric]) -> str:
    lines = []
    for m in metrics:
        fmt = {"x": ".2f", "%": ".1f", "ms": ".1f", "MB": ".0f", "bool": ".0f"}.get(m.unit, ".3g")
        value = format(m.value, fmt)
        target = f"(target {m.target})" if m.target else ""
        line = f"  {m.verdict():4s}  {m.name}: {value} {m.unit} {target}".rstrip()
        if m.note:
            line += f"  [{m.note}]"
        lines.append(line)
    return "\n".join(lines)


def write_csv(path: Path, rows: Sequence[Any]) -> None:
    dicts = [r if isinstance(r, dict) else asdict(r) for r in rows]
    if not dicts:
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dicts[0]))
        writer.writeheader()
        writer.writerows(dicts)


def plot(cells: list[Cell], titles: dict[str, str], sizes: Sequence[int], n: int,
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6))
    for key, title in titles.items():
        mine = sorted((c for c in cells if c.contender == key), key=lambda c: c.n)
        if mine:
            style = "-" if key in ("floor", "api", "launch") else "--"
            left.plot([c.n for c in mine], [c.per_s for c in mine], style, marker="o",
                      label=title)
    left.set_xscale("log")
    left.set_xticks(list(sizes), [str(s) for s in sizes])
    left.set_xlabel("N containers")
    left.set_ylabel("containers per second (median)")
    left.set_title("Throughput of N no-op containers")
    left.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    at = [c for key in titles for c in cells if c.contender == key and c.n == n]
    right.barh([titles[c.contender] for c in at], [c.ratio for c in at], color=[
        "tab:green" if c.contender.startswith("floor") else "tab:blue" if c.contender.startswith(
            ("api", "launch", "ray")) else "tab:gray" for c in at])
    right.axvline(1.0, color="black", lw=0.8)
    right.invert_yaxis()
    right.set_xlabel(f"time / floor at N={n} (lower is better)")
    right.set_title(f"Ratio to the docker-py floor, N={n}")
    for i, c in enumerate(at):
        right.text(c.ratio, i, f" {c.ratio:.2f}", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
