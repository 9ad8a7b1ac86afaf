"""Plots of a run over time: every container per host (a Gantt chart) and the
throughput. Built from the table's started_at / finished_at; SVG bytes like plots.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launcher.clock import parse_time
from launcher.plots import BLUE, GREY, ORANGE, STATUS_COLORS, figure, style, svg

if TYPE_CHECKING:
    import pandas as pd

Span = tuple[float, float, str, str]  # start s, end s, host, status


def spans(df: pd.DataFrame) -> list[Span]:
    """(start, end) in seconds since the first container started, host and status, for
    every trial that has both times."""
    rows = []
    for row in df.to_dict("records"):  # table rows (columns of the results table)
        start, end = parse_time(row.get("started_at")), parse_time(row.get("finished_at"))
        if start and end:
            rows.append((start, end, str(row.get("host") or "?"), str(row["status"])))
    if not rows:
        return []
    origin = min(r[0] for r in rows)
    return sorted(((s - origin).total_seconds(), (e - origin).total_seconds(), h, st)
                  for s, e, h, st in rows)


def lanes(items: list[Span]) -> list[int]:
    """A lane per span so that spans in one lane never overlap (greedy, by start)."""
    ends: list[float] = []
    out = []
    for start, end, _, _ in items:
        lane = next((i for i, e in enumerate(ends) if e <= start), None)
        if lane is None:
            ends.append(end)
            lane = len(ends) - 1
        else:
            ends[lane] = end
        out.append(lane)
    return out


def gantt(df: pd.DataFrame) -> bytes | None:
    """One row per concurrent slot of each host, one bar per container."""
    items = spans(df)
    if not items:
        return None
    hosts = sorted({h for _, _, h, _ in items})
    per_host = {h: [s for s in items if s[2] == h] for h in hosts}
    host_lanes = {h: lanes(per_host[h]) for h in hosts}
    heights = {h: max(host_lanes[h]) + 1 for h in hosts}
    total = sum(heights.values())
    fig = figure(10, min(9.0, max(2.4, 0.28 * total + 1.4)))
    ax = fig.subplots()
    base = 0
    ticks = []
    for host in hosts:
        for (start, end, _, status), lane in zip(per_host[host], host_lanes[host], strict=True):
            ax.barh(base + lane, end - start, left=start, height=0.8,
                    color=STATUS_COLORS.get(status, GREY), edgecolor="white",
                    linewidth=0.4)
        ticks.append((base + (heights[host] - 1) / 2, f"{host} ({len(per_host[host])})"))
        base += heights[host]
        ax.axhline(base - 0.5, color="#bbbbbb", linewidth=0.8)
    ax.set_yticks([t for t, _ in ticks], [label for _, label in ticks])
    ax.set_ylim(base - 0.5, -0.5)
    style(ax, f"{len(items)} containers per host over time (one row per concurrent slot)",
          "seconds since the first container started", "")
    _status_legend(ax, {s for _, _, _, s in items})
    return svg(fig)


def _status_legend(ax: Any, statuses: set[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=STATUS_COLORS.get(s, GREY), label=s) for s in sorted(statuses)]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))


def concurrency(items: list[Span]) -> tuple[list[float], list[int]]:
    """Containers running after each start or finish (ends before starts at a tie)."""
    events = sorted([(e, -1) for _, e, _, _ in items] + [(s, 1) for s, _, _, _ in items])
    times: list[float] = [0.0]
    running = [0]
    for t, change in events:
        if t == times[-1]:
            running[-1] += change
        else:
            times.append(t)
            running.append(running[-1] + change)
    return times, running


def throughput(df: pd.DataFrame) -> bytes | None:
    """Containers running over time (top), and containers finished so far (bottom), each
    on its own single axis; the dashed line is the overall rate, so the slope of the
    curve against it shows where the run was faster or slower (no spiky histogram)."""
    items = spans(df)
    if not items:
        return None
    end = max(e for _, e, _, _ in items)
    times, running = concurrency(items)
    finished = sorted(e for _, e, _, _ in items)
    fig = figure(10, 4.6)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1, 1.3])
    top.step(times, running, where="post", color=BLUE)
    top.fill_between(times, running, step="post", alpha=0.2, color=BLUE)
    style(top, "containers running", "", "running")
    rate = len(items) / max(end, 1e-9)
    bottom.step([0.0, *finished], list(range(len(finished) + 1)), where="post", color=BLUE,
                label="finished so far")
    bottom.plot([0.0, end], [0.0, len(items)], "--", color=ORANGE,
                label=f"overall {rate:.2f} containers/s")
    style(bottom, f"throughput: {rate:.2f} containers/s overall",
          "seconds since the first container started", "containers finished")
    bottom.legend(fontsize=8, frameon=False, loc="upper left")
    return svg(fig)
