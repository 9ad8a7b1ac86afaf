"""The report's figures, and what they share: the canvas, a colour-blind-safe palette,
parameter axes and tick labels that never overlap.

Each plotting function returns SVG bytes (or None when there is nothing to draw).
Text stays text in the SVG (crisp on a projector, searchable), ids are salted by
content so that the same run gives the same bytes. Matplotlib is imported inside,
with the Agg backend and no pyplot state, so plotting works headless and in threads.

Numeric parameters are drawn on numeric axes: log when the sweep drew them from a log
distribution (the plan records each parameter's distribution) or, for runs that did
not record it, when positive values span two decades or more. Only parameters whose
values are not numbers are drawn as categories.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe & Ito's palette: distinguishable with every common colour-vision deficiency.
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
          "#000000")
BLUE, ORANGE, GREEN, VERMILLION, PURPLE, SKY = COLORS[:6]
GREY = "#999999"
STATUS_COLORS = {"succeeded": BLUE, "stopped": SKY, "failed": VERMILLION, "timed_out": ORANGE,
                 "oom_killed": PURPLE, "lost": "#555555", "cancelled": "#BBBBBB"}
GOOD, BAD, NEUTRAL = BLUE, VERMILLION, "#DDDDDD"
COLORMAP = "cividis"  # a sequential map made for colour-vision deficiencies
MAX_CATEGORY_LABEL = 14


def figure(width: float, height: float) -> Figure:
    """A Figure on the Agg canvas (no pyplot, no global state)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)  # measures text, so crowded tick labels can be found
    return fig


def svg(fig: Figure) -> bytes:
    """The figure as SVG bytes: text as text, no metadata, ids salted by content."""
    import matplotlib

    ensure_readable_ticks(fig)
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "launcher",
                                "font.family": ["DejaVu Sans", "sans-serif"]}):
        fig.savefig(buf, format="svg", facecolor="white",
                    metadata=dict.fromkeys(("Date", "Creator", "Format", "Type")))
    return buf.getvalue()


def style(ax: Axes, title: str = "", xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# -- tick labels that never overlap -----------------------------------------------------------
def overlapping_ticks(fig: Figure) -> list[str]:
    """Tick labels that overlap a neighbour on the same axis, as "axis: label/label"."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's
    found = []
    for i, ax in enumerate(fig.axes):
        for name, labels in (("x", ax.get_xticklabels()), ("y", ax.get_yticklabels())):
            shown = [t for t in labels if t.get_visible() and t.get_text()]
            boxes = [t.get_window_extent(renderer) for t in shown]
            for j in range(1, len(boxes)):
                if boxes[j].overlaps(boxes[j - 1]):
                    found.append(f"axes {i} {name}: {shown[j - 1].get_text()}/"
                                 f"{shown[j].get_text()}")
    return found


def ensure_readable_ticks(fig: Figure) -> None:
    """Rotate, then thin out, crowded tick labels until no two overlap."""
    for _ in range(6):
        crowded = overlapping_ticks(fig)
        if not crowded:
            return
        for i, ax in enumerate(fig.axes):
            for name in ("x", "y"):
                if any(c.startswith(f"axes {i} {name}:") for c in crowded):
                    _relieve(ax, name)


def _relieve(ax: Axes, name: str) -> None:
    labels = ax.get_xticklabels() if name == "x" else ax.get_yticklabels()
    if name == "x" and not any(t.get_rotation() for t in labels):
        for t in labels:
            t.set_rotation(30)
            t.set_horizontalalignment("right")
        return
    shown = [t for t in labels if t.get_visible() and t.get_text()]
    for t in shown[1::2]:
        t.set_visible(False)


# -- parameter axes ---------------------------------------------------------------------------
def varying_params(df: pd.DataFrame) -> list[str]:
    """``param.*`` columns with more than one distinct value."""
    return [c for c in df.columns if c.startswith("param.")
            and df[c].astype(str).nunique(dropna=True) > 1]


def numeric_values(x: pd.Series[Any]) -> pd.Series[Any] | None:
    """The values as floats when every one is a number (booleans are categories)."""
    import pandas as pd

    if x.map(lambda v: isinstance(v, bool)).any():
        return None
    numeric = pd.to_numeric(x, errors="coerce")
    return numeric.astype(float) if numeric.notna().all() else None


def use_log(values: pd.Series[Any], recorded: bool | None) -> bool:
    """Log axis: as the sweep's distribution says; inferred for older runs."""
    positive = bool((values > 0).all())
    if recorded is not None:
        return recorded and positive
    return positive and float(values.max()) / float(values.min()) >= 100


def short_number(value: float) -> str:
    """A tick or cell label: three significant digits, no float noise (0.3, 1e-04)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) < 1e-3 or abs(value) >= 1e5:
        return f"{value:.2g}"
    return f"{value:.3g}"


def category_label(value: Any) -> str:
    text = short_number(value) if isinstance(value, float) else str(value)
    return text if len(text) <= MAX_CATEGORY_LABEL else text[:MAX_CATEGORY_LABEL - 1] + "…"


def set_param_axis(ax: Axes, values: pd.Series[Any], log: bool, axis: str = "x") -> None:
    """Numeric axis ticks: at the values when there are few, else the locator's."""
    from matplotlib.ticker import FuncFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    if log:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    distinct = sorted(set(values.tolist()))
    if len(distinct) <= 8:
        target.set_ticks(distinct)
        target.set_minor_formatter(FuncFormatter(lambda v, _: ""))
    target.set_major_formatter(FuncFormatter(lambda v, _: short_number(v)))


def jitter(values: pd.Series[Any], log: bool, width: float = 0.012) -> Any:
    """Spread points that share a value sideways by a small fraction of the axis range."""
    import numpy as np

    rng = np.random.default_rng(0)
    data = np.log10(values.to_numpy()) if log else values.to_numpy()
    span = float(data.max() - data.min()) or 1.0
    moved = data + rng.uniform(-width, width, len(data)) * span
    return 10 ** moved if log else moved


# -- the plots of results ---------------------------------------------------------------------
def metric_vs_params(df: pd.DataFrame, metric: str,
                     log_scale: dict[str, bool | None] | None = None) -> bytes | None:
    """One panel per varying parameter: every succeeded trial's metric and the mean per
    value; one point per trial in start order when no parameter varies."""
    import pandas as pd

    column = f"metric.{metric}"
    ok = df[(df["status"] == "succeeded") & df[column].notna()] if column in df else df[:0]
    if not len(ok):
        return None
    values = pd.to_numeric(ok[column], errors="coerce")
    params = varying_params(ok)
    if not params:
        return metric_per_trial(ok, values, metric)
    cols = min(3, len(params))
    rows = math.ceil(len(params) / cols)
    fig = figure(10 if cols > 1 else 6, 3.2 * rows)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, param in zip(axes, params, strict=False):
        name = param.removeprefix("param.")
        param_panel(ax, ok[param], values, name, metric, (log_scale or {}).get(name))
    for ax in axes[len(params):]:
        ax.set_visible(False)
    return svg(fig)


def param_panel(ax: Axes, x: pd.Series[Any], y: pd.Series[Any], name: str, metric: str,
                recorded_log: bool | None) -> None:
    """A numeric axis for numbers (log when it should be), categories otherwise; the
    mean per value as a line when values repeat."""
    numeric = numeric_values(x)
    if numeric is not None:
        log = use_log(numeric, recorded_log)
        ax.scatter(jitter(numeric, log), y, s=14, alpha=0.6, color=BLUE, label="trial")
        means = y.groupby(numeric).mean()
        if len(means) < len(y):  # values repeat: a grid or replicas
            ax.plot(means.index.to_numpy(), means.to_numpy(), "-o", color=ORANGE,
                    label="mean", markersize=4)
            ax.legend(fontsize=8, frameon=False)
        set_param_axis(ax, numeric, log)
        scale = " (log)" if log else ""
    else:
        categories(ax, x, y)
        scale = ""
    style(ax, f"{metric} by {name}", f"{name}{scale}", metric)


def categories(ax: Axes, x: pd.Series[Any], y: pd.Series[Any]) -> None:
    import numpy as np

    levels = sorted(x.astype(str).unique())
    pos = x.astype(str).map({v: i for i, v in enumerate(levels)}).astype(float)
    spread = np.random.default_rng(0).uniform(-0.12, 0.12, len(pos))
    ax.scatter(pos + spread, y, s=14, alpha=0.6, color=BLUE)
    means = y.groupby(pos).mean()
    ax.plot(means.index.to_numpy(), means.to_numpy(), "-o", color=ORANGE, label="mean",
            markersize=4)
    ax.set_xticks(range(len(levels)), [category_label(v) for v in levels])
    ax.legend(fontsize=8, frameon=False)


def metric_per_trial(ok: pd.DataFrame, values: pd.Series[Any], metric: str) -> bytes:
    """Every trial's metric in start order, one colour per host: a flat line when the
    one configuration reproduces everywhere."""
    order = ok.assign(_v=values).sort_values("started_at", kind="stable") \
        .reset_index(drop=True)
    fig = figure(10, 3.0)
    ax = fig.subplots()
    for i, (host, rows) in enumerate(order.groupby("host", sort=True)):
        ax.scatter(rows.index.to_numpy() + 1, rows["_v"].to_numpy(), s=16,
                   color=COLORS[i % len(COLORS)], label=str(host), alpha=0.8)
    same = f": all {values.iloc[0]:.6g}" if values.nunique() == 1 else ""
    style(ax, f"{metric} of each of the {len(ok)} trials (no parameter varies){same}",
          "trial (in start order)", metric)
    ax.legend(fontsize=8, frameon=False, title="host", title_fontsize=8, loc="lower right")
    return svg(fig)


def replica_spread(df: pd.DataFrame, metric: str, labels: dict[str, str],
                   order: Sequence[str], limit: int = 20) -> bytes | None:
    """Box plot of the metric over replicas per configuration (best first, at most
    ``limit``), with every replica as a dot; None when no configuration has two."""
    import numpy as np
    import pandas as pd

    column = f"metric.{metric}"
    if column not in df:
        return None
    ok = df[(df["status"] == "succeeded") & df[column].notna()]
    groups = {c: pd.to_numeric(g[column], errors="coerce").dropna().to_numpy()
              for c, g in ok.groupby("config_id")}
    shown = [c for c in order if len(groups.get(c, ())) > 1][:limit]
    if not shown:
        return None
    fig = figure(min(10.0, max(5.0, 0.8 * len(shown) + 2)), 3.8)
    ax = fig.subplots()
    data = [groups[c] for c in shown]
    ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": ORANGE})
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=10, alpha=0.5,
                   color=BLUE)
    # one parameter per line, so that every box keeps its name
    ax.set_xticks(range(1, len(shown) + 1), [labels.get(c, c).replace(" ", "\n")
                                             for c in shown], fontsize=8)
    style(ax, f"{metric} over replicas, per configuration (best first)", "", metric)
    return svg(fig)


def learning_curves(curves: dict[str, tuple[list[float], list[float]]],
                    config_of: dict[str, str], labels: dict[str, str], key: str,
                    x_name: str) -> bytes | None:
    """One line per trial (``curves``: trial -> (x, y)), one colour per configuration."""
    if not curves:
        return None
    configs = list(dict.fromkeys(config_of[t] for t in curves))
    fig = figure(10, 3.6)
    ax = fig.subplots()
    alpha = max(0.15, min(0.9, 6 / len(curves)))
    seen: set[str] = set()
    for trial, (xs, ys) in curves.items():
        config = config_of[trial]
        index = configs.index(config)
        label = labels.get(config, config) if config not in seen and index < 8 else None
        seen.add(config)
        ax.plot(xs, ys, color=COLORS[index % len(COLORS)], alpha=alpha, linewidth=1.2,
                label=label)
    style(ax, f"{key} during training ({len(curves)} trials)", x_name, key)
    if len(configs) > 1:
        legend = ax.legend(fontsize=8, frameon=False, loc="upper left",
                           bbox_to_anchor=(1.0, 1.0))
        for line in legend.get_lines():
            line.set_alpha(1.0)
    return svg(fig)


def repro_matrix(cells: pd.DataFrame) -> bytes | None:
    """Host x seed: blue when every compared trial matches, vermillion when some differ,
    grey when the cell's trials had no partner. Cells say matching/compared."""
    import numpy as np
    from matplotlib.colors import ListedColormap

    if not len(cells):
        return None
    hosts = sorted(cells["host"].astype(str).unique())
    seeds: list[int] = sorted({int(s) for s in cells["seed"]})
    row_of = {h: i for i, h in enumerate(hosts)}
    col_of = {s: j for j, s in enumerate(seeds)}
    grid = np.full((len(hosts), len(seeds)), np.nan)
    i = cells["host"].astype(str).map(row_of).to_numpy()
    j = cells["seed"].astype(int).map(col_of).to_numpy()
    compared, matching = cells["compared"].astype(int).to_numpy(), \
        cells["matching"].astype(int).to_numpy()
    grid[i, j] = np.where(compared == 0, 0, np.where(matching < compared, 1, 2))
    fig = figure(min(10.0, max(5.0, 0.6 * len(seeds) + 2.5)),
                 min(9.0, max(1.6, 0.45 * len(hosts) + 1.0)))
    ax = fig.subplots()
    ax.imshow(grid, cmap=ListedColormap([NEUTRAL, BAD, GOOD]), vmin=0, vmax=2, aspect="auto",
              interpolation="nearest")
    if len(seeds) * len(hosts) <= 120:
        for a, b, c, m in zip(i.tolist(), j.tolist(), compared.tolist(), matching.tolist(),
                              strict=True):
            ax.text(b, a, f"{m}/{c}" if c else "-", ha="center", va="center", fontsize=10,
                    color="white" if grid[a, b] >= 1 else "black")
    step = max(1, len(seeds) // 30)
    ax.set_xticks(range(0, len(seeds), step), [str(s) for s in seeds[::step]], fontsize=8)
    step = max(1, -(-len(hosts) // 40))  # at most 40 host labels
    ax.set_yticks(range(0, len(hosts), step), hosts[::step],
                  fontsize=8 if step > 1 else None)
    ax.set_xlabel("seed")
    ax.set_title("matching / compared trials per host and seed", fontsize=11, loc="left")
    return svg(fig)
