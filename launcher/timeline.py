"""Plots of a run over time: every container per host (a Gantt chart) and the
throughput. Built from the table's started_at / finished_at; SVG bytes like plots.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launcher.plots import BLUE, GREY, ORANGE, STATUS_COLORS, figure, style, svg

if TYPE_CHECKING:
    import pandas as pd

Span = tuple[float, float, str, str]  # start s, end s, host, status
MAX_TICKS = 40  # host labels on the timeline's axis; more hosts: every k-th


def spans(df: pd.DataFrame) -> list[Span]:
    """(start, end) in seconds since the first container started, host and status, for
    every trial that has both times, by start (the times parsed as columns, not rows)."""
    import pandas as pd

    if not len(df):
        return []
    start = pd.to_datetime(df["started_at"], utc=True, errors="coerce", format="ISO8601")
    end = pd.to_datetime(df["finished_at"], utc=True, errors="coerce", format="ISO8601")
    ok = (start.notna() & end.notna()).to_numpy()
    if not ok.any():
        return []
    start, end = start[ok], end[ok]
    origin = start.min()
    hosts = df.loc[ok, "host"].astype(object).where(df.loc[ok, "host"].astype(bool), "?")
    return sorted(zip((start - origin).dt.total_seconds().tolist(),
                      (end - origin).dt.total_seconds().tolist(),
                      hosts.fillna("?").astype(str).tolist(),
                      df.loc[ok, "status"].astype(str).tolist(), strict=True))


def lanes(items: list[Span]) -> list[int]:
    """A lane per span so that spans in one lane never overlap (greedy, by start: the
    lowest free lane), in O(n log lanes)."""
    import heapq

    busy: list[tuple[float, int]] = []  # (end, lane) of spans still running
    free: list[int] = []
    out = []
    for start, end, _, _ in items:
        while busy and busy[0][0] <= start:
            heapq.heappush(free, heapq.heappop(busy)[1])
        lane = heapq.heappop(free) if free else len(busy)
        heapq.heappush(busy, (end, lane))
        out.append(lane)
    return out


def gantt(df: pd.DataFrame) -> bytes | None:
    """One row per concurrent slot of each host, one bar per container: one polygon
    collection per status, however many containers; at most MAX_TICKS host labels."""
    items = spans(df)
    if not items:
        return None
    by_host: dict[str, list[Span]] = {}
    for item in items:
        by_host.setdefault(item[2], []).append(item)
    bars: dict[str, list[tuple[float, float, int]]] = {}  # status -> (start, end, row)
    ticks, separators, base = [], [], 0
    for host in sorted(by_host):
        host_lanes = lanes(by_host[host])
        for (start, end, _, status), lane in zip(by_host[host], host_lanes, strict=True):
            bars.setdefault(status, []).append((start, end, base + lane))
        height = max(host_lanes) + 1
        ticks.append((base + (height - 1) / 2, f"{host} ({len(by_host[host])})"))
        base += height
        separators.append(base - 0.5)
    fig = figure(10, min(9.0, max(2.4, 0.28 * base + 1.4)))
    ax = fig.subplots()
    _draw_bars(ax, bars, edges=len(items) <= 2000)
    if len(separators) <= 200:
        ax.hlines(separators, 0, max(e for _, e, _, _ in items), color="#bbbbbb",
                  linewidth=0.8)
    step = max(1, -(-len(ticks) // MAX_TICKS))
    ax.set_yticks([t for t, _ in ticks[::step]], [label for _, label in ticks[::step]],
                  fontsize=8 if step > 1 else None)
    ax.set_ylim(base - 0.5, -0.5)
    every = f"; every {step}th host labelled" if step > 1 else ""
    style(ax, f"{len(items)} containers on {len(by_host)} hosts over time (one row per "
          f"concurrent slot{every})", "seconds since the first container started", "")
    _status_legend(ax, set(bars))
    return svg(fig)


def _draw_bars(ax: Any, bars: dict[str, list[tuple[float, float, int]]], *,
               edges: bool) -> None:
    import numpy as np
    from matplotlib.collections import PolyCollection

    for status, rows in bars.items():
        data = np.asarray(rows, dtype=float)
        x0, x1, y = data[:, 0], data[:, 1], data[:, 2]
        verts = np.stack([np.stack([x0, y - 0.4], 1), np.stack([x1, y - 0.4], 1),
                          np.stack([x1, y + 0.4], 1), np.stack([x0, y + 0.4], 1)], 1)
        ax.add_collection(PolyCollection(list(verts), facecolors=STATUS_COLORS.get(
            status, GREY), edgecolors="white" if edges else "none",
            linewidths=0.4 if edges else 0))
    ax.autoscale_view()


def _status_legend(ax: Any, statuses: set[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=STATUS_COLORS.get(s, GREY), label=s) for s in sorted(statuses)]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))


def concurrency(items: list[Span]) -> tuple[list[float], list[int]]:
    """Containers running after each start or finish (ends before starts at a tie)."""
    import numpy as np

    if not items:
        return [0.0], [0]
    data = np.asarray([(s, e) for s, e, _, _ in items], dtype=float)
    times = np.concatenate([data[:, 1], data[:, 0]])
    change = np.concatenate([-np.ones(len(data)), np.ones(len(data))])
    order = np.lexsort((change, times))
    times, running = times[order], np.cumsum(change[order])
    last = np.append(times[1:] != times[:-1], True)  # one point per distinct time
    out_t, out_r = [0.0, *times[last].tolist()], [0, *running[last].astype(int).tolist()]
    if len(out_t) > 1 and out_t[1] == 0.0:  # events at 0 update the starting point
        out_t, out_r = out_t[1:], out_r[1:]
    return out_t, out_r


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
