"""How parameters act together: which matter most, a heatmap of the metric over the two
that matter most, and a parallel-coordinates plot of every configuration.

Importance is the share of the metric's variance that a parameter's values explain
(eta squared: the between-group variance of the metric over its values, continuous
parameters cut into quantile bins). It is descriptive, like W&B's importance panel
without the model: enough to pick the two axes of the heatmap and order the others.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from launcher.plots import (
    COLORMAP,
    category_label,
    figure,
    numeric_values,
    short_number,
    style,
    svg,
    use_log,
    varying_params,
)

if TYPE_CHECKING:
    import pandas as pd

BINS = 5  # quantile bins of a continuous parameter with many values
MAX_LEVELS = 8  # more distinct values than this is continuous
MAX_AXES = 8  # parallel coordinates: the most important parameters, then the metric


def levels(x: pd.Series[Any], log: bool) -> tuple[pd.Series[Any], list[str]]:
    """Each value's level (an int) and the levels' labels: the values themselves when
    there are few, else quantile bins labelled by their ranges."""
    import pandas as pd

    numeric = numeric_values(x)
    if numeric is None or numeric.nunique() <= MAX_LEVELS:
        keys = sorted(x.astype(str).unique(), key=lambda v: (_num(v), v)) if numeric is None \
            else sorted(numeric.unique())
        source = x.astype(str) if numeric is None else numeric
        index = {k: i for i, k in enumerate(keys)}
        labels = [category_label(k) if numeric is None else short_number(float(k))
                  for k in keys]
        return source.map(index).astype(int), labels
    data = numeric.map(math.log10) if log else numeric
    bins = pd.qcut(data, q=BINS, duplicates="drop")
    labels = [f"{short_number(_edge(i.left, log))}–{short_number(_edge(i.right, log))}"
              for i in bins.cat.categories]
    return bins.cat.codes.astype(int), labels


def _edge(value: float, log: bool) -> float:
    return 10 ** value if log else value


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def importance(ok: pd.DataFrame, metric: str,
               log_scale: dict[str, bool | None]) -> dict[str, float]:
    """Varying parameter -> share of the metric's variance its levels explain (0..1),
    most important first."""
    import pandas as pd

    y = pd.to_numeric(ok[f"metric.{metric}"], errors="coerce")
    total = float(((y - y.mean()) ** 2).sum())
    out = {}
    for column in varying_params(ok):
        name = column.removeprefix("param.")
        codes, _ = levels(ok[column], _log(ok[column], log_scale.get(name)))
        groups = y.groupby(codes)
        between = float((groups.count() * (groups.mean() - y.mean()) ** 2).sum())
        out[name] = between / total if total > 0 else 0.0
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _log(x: pd.Series[Any], recorded: bool | None) -> bool:
    numeric = numeric_values(x)
    return numeric is not None and use_log(numeric, recorded)


def heatmap(ok: pd.DataFrame, metric: str, goal: str, names: tuple[str, str],
            log_scale: dict[str, bool | None]) -> bytes:
    """The mean metric over the levels of two parameters, each cell labelled with its
    mean and the number of trials; the best cell outlined."""
    import numpy as np
    import pandas as pd
    from matplotlib.patches import Rectangle

    y = pd.to_numeric(ok[f"metric.{metric}"], errors="coerce")
    (xc, xl), (yc, yl) = (levels(ok[f"param.{n}"], _log(ok[f"param.{n}"], log_scale.get(n)))
                          for n in names)
    grid = np.full((len(yl), len(xl)), np.nan)
    counts = np.zeros((len(yl), len(xl)), dtype=int)
    for (i, j), values in y.groupby([yc, xc]):
        grid[int(str(i)), int(str(j))] = values.mean()
        counts[int(str(i)), int(str(j))] = len(values)
    fig = figure(min(10.0, 3.2 + 0.9 * len(xl)), min(7.0, 1.8 + 0.55 * len(yl)))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap=COLORMAP, aspect="auto", origin="lower")
    fig.colorbar(image, ax=ax, label=f"mean {metric}")
    if len(xl) * len(yl) <= 100:
        middle = np.nanmean(grid)
        for (i, j), value in np.ndenumerate(grid):
            if not np.isnan(value):
                ax.text(j, i, f"{short_number(value)}\nn={counts[i, j]}", ha="center",
                        va="center", fontsize=8, color="black" if value > middle else "white")
    best = np.nanargmax(grid) if goal == "maximize" else np.nanargmin(grid)
    bi, bj = np.unravel_index(best, grid.shape)
    ax.add_patch(Rectangle((bj - 0.5, bi - 0.5), 1, 1, fill=False, linewidth=2.5,
                           edgecolor="#D55E00"))
    ax.set_xticks(range(len(xl)), xl)
    ax.set_yticks(range(len(yl)), yl)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(f"mean {metric} over {names[0]} and {names[1]} (best outlined)", fontsize=11,
                 loc="left")
    return svg(fig)


def parallel_coordinates(ok: pd.DataFrame, metric: str, goal: str, names: list[str],
                         log_scale: dict[str, bool | None]) -> bytes:
    """One line per configuration (its mean metric) across an axis per parameter and one
    for the metric, coloured by the metric; the best configuration drawn on top."""
    import matplotlib
    import numpy as np
    import pandas as pd

    column = f"metric.{metric}"
    by_config = ok.assign(_y=pd.to_numeric(ok[column], errors="coerce")) \
        .groupby("config_id").agg({**{f"param.{n}": "first" for n in names}, "_y": "mean"})
    axes = [*names, metric]
    scaled, ticks = [], []
    for name in axes:
        values = by_config["_y"] if name == metric else by_config[f"param.{name}"]
        position, labels = _axis_positions(values, log_scale.get(name), name == metric)
        scaled.append(position)
        ticks.append(labels)
    positions = np.column_stack(scaled)
    fig = figure(min(10.0, 2.0 + 1.4 * len(axes)), 4.0)
    ax = fig.subplots()
    colors = matplotlib.colormaps[COLORMAP]
    y = by_config["_y"].to_numpy()
    span = (np.nanmax(y) - np.nanmin(y)) or 1.0
    order = np.argsort(y if goal == "maximize" else -y)  # the best is drawn last
    for k in order:
        shade = (y[k] - np.nanmin(y)) / span
        ax.plot(range(len(axes)), positions[k], color=colors(shade), alpha=0.8,
                linewidth=2.2 if k == order[-1] else 1.2)
    _draw_axes(ax, axes, ticks)
    style(ax, f"every configuration across the parameters, coloured by mean {metric}")
    ax.grid(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    return svg(fig)


def _draw_axes(ax: Any, names: list[str], ticks: list[list[tuple[float, str]]]) -> None:
    """A vertical axis per name with its end (or level) labels beside it."""
    for i, labels in enumerate(ticks):
        ax.axvline(i, color="#444444", linewidth=0.8)
        for where, text in labels:
            ax.text(i + 0.04, where, text, fontsize=8, va="center")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks([])
    ax.set_xlim(-0.2, len(names) - 0.5)
    ax.set_ylim(-0.06, 1.06)


def _axis_positions(values: pd.Series[Any], recorded: bool | None,
                    is_metric: bool) -> tuple[Any, list[tuple[float, str]]]:
    """Positions in 0..1 for one axis, and (position, label) ticks at its ends (every
    level for categories)."""
    import numpy as np

    numeric = numeric_values(values)
    if numeric is None:
        keys = sorted(values.astype(str).unique())
        step = 1 / max(1, len(keys) - 1)
        index = {k: i * step for i, k in enumerate(keys)}
        return values.astype(str).map(index).to_numpy(), \
            [(index[k], category_label(k)) for k in keys[:8]]
    log = not is_metric and use_log(numeric, recorded)
    data = np.log10(numeric.to_numpy()) if log else numeric.to_numpy()
    low, high = float(np.nanmin(data)), float(np.nanmax(data))
    span = (high - low) or 1.0
    ends = [(0.0, short_number(float(numeric.min()))), (1.0, short_number(float(numeric.max())))]
    return (data - low) / span, ends if high > low else ends[:1]
