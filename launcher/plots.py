"""The report's plots of results: metric against parameters, spread over replicas,
learning curves and the reproducibility matrix. Each function returns PNG bytes (or None
when there is nothing to draw). Matplotlib is imported inside, with the Agg backend and
no pyplot state, so plotting works headless and in threads.
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

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")
STATUS_COLORS = {"succeeded": "#2ca02c", "failed": "#d62728", "timed_out": "#ff7f0e",
                 "oom_killed": "#9467bd", "lost": "#7f7f7f", "cancelled": "#bcbd22"}
GOOD, BAD, NEUTRAL = "#2ca02c", "#d62728", "#d9d9d9"


def figure(width: float, height: float) -> Figure:
    """A Figure on the Agg canvas (no pyplot, no global state)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes, without metadata (no URLs in the report)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None}, facecolor="white")
    return buf.getvalue()


def style(ax: Axes, title: str = "", xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, color="#e5e5e5", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def varying_params(df: pd.DataFrame) -> list[str]:
    """``param.*`` columns with more than one distinct value."""
    return [c for c in df.columns if c.startswith("param.")
            and df[c].astype(str).nunique(dropna=True) > 1]


def metric_vs_params(df: pd.DataFrame, metric: str) -> bytes | None:
    """One panel per varying parameter: every succeeded trial's metric and the mean per
    value; a histogram of the metric when no parameter varies."""
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
        _param_panel(ax, ok[param], values, param.removeprefix("param."), metric)
    for ax in axes[len(params):]:
        ax.set_visible(False)
    return png(fig)


def metric_per_trial(ok: pd.DataFrame, values: pd.Series[Any], metric: str) -> bytes:
    """Every trial's metric in start order, one color per host: a flat line when the
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
    return png(fig)


def _param_panel(ax: Axes, x: pd.Series[Any], y: pd.Series[Any], name: str,
                 metric: str) -> None:
    import numpy as np
    import pandas as pd

    numeric = pd.to_numeric(x, errors="coerce")
    levels = sorted(x.astype(str).unique(), key=lambda v: (_num(v), v))
    if numeric.notna().all() and len(levels) > 8:
        ax.scatter(numeric, y, s=14, alpha=0.6, color=COLORS[0])
        if (numeric > 0).all() and numeric.max() / numeric.min() >= 20:
            ax.set_xscale("log")
    else:
        pos = x.astype(str).map({v: i for i, v in enumerate(levels)}).astype(float)
        jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(pos))
        ax.scatter(pos + jitter, y, s=14, alpha=0.6, color=COLORS[0])
        means = y.groupby(pos).mean()
        ax.plot(means.index.to_numpy(), means.to_numpy(), "-o", color=COLORS[1], label="mean")
        ax.set_xticks(range(len(levels)), levels)
        ax.legend(fontsize=8, frameon=False)
    style(ax, f"{metric} by {name}", name, metric)


def _num(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


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
    fig = figure(min(10.0, max(5.0, 0.55 * len(shown) + 2)), 3.4)
    ax = fig.subplots()
    data = [groups[c] for c in shown]
    ax.boxplot(data, widths=0.5, showfliers=False, medianprops={"color": COLORS[1]})
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=10, alpha=0.5,
                   color=COLORS[0])
    ax.set_xticks(range(1, len(shown) + 1), [labels.get(c, c) for c in shown],
                  rotation=30 if len(shown) > 4 else 0, ha="right" if len(shown) > 4 else "center",
                  fontsize=8)
    style(ax, f"{metric} over replicas, per configuration (best first)", "", metric)
    return png(fig)


def learning_curves(curves: dict[str, tuple[list[float], list[float]]],
                    config_of: dict[str, str], labels: dict[str, str], key: str,
                    x_name: str) -> bytes | None:
    """One line per trial (``curves``: trial -> (x, y)), one color per configuration."""
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
        label = labels.get(config, config) if config not in seen and index < 10 else None
        seen.add(config)
        ax.plot(xs, ys, color=COLORS[index % len(COLORS)], alpha=alpha, linewidth=1.2,
                label=label)
    style(ax, f"{key} during training ({len(curves)} trials)", x_name, key)
    if len(configs) > 1:
        legend = ax.legend(fontsize=8, frameon=False, loc="best")
        for line in legend.get_lines():
            line.set_alpha(1.0)
    return png(fig)


def repro_matrix(cells: pd.DataFrame) -> bytes | None:
    """Host x seed heatmap: green when every compared trial matches, red when some
    differ, grey when the cell's trials had no partner. Cells say matching/compared."""
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
                    color="black")
    step = max(1, len(seeds) // 30)
    ax.set_xticks(range(0, len(seeds), step), [str(s) for s in seeds[::step]], fontsize=8)
    step = max(1, -(-len(hosts) // 40))  # at most 40 host labels
    ax.set_yticks(range(0, len(hosts), step), hosts[::step],
                  fontsize=8 if step > 1 else None)
    ax.set_xlabel("seed")
    ax.set_title("matching / compared trials per host and seed", fontsize=11, loc="left")
    return png(fig)
