"""The scale benchmark's report (tables of ratios and the targets) and its plot."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.common import median


def _setup_cells(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, float]]:
    """Medians per (image, H) of set-up, teardown and the peaks."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["image"], r["hosts"])].append(r)
    keys = ("setup_s", "teardown_s", "threads_peak", "fds_peak", "rss_peak_mb",
            "engine_requests", "wall_s")
    return {k: {key: median(r[key] for r in g) for key in keys} for k, g in groups.items()}


def render(data: dict[str, Any], targets: dict[str, float]) -> str:
    lines: list[str] = []
    checks: list[tuple[str, float, str, bool]] = []
    if data.get("setup"):
        lines += _setup_table(data, targets, checks)
    if data.get("cpu"):
        lines += _cpu_table(data, targets, checks)
    if data.get("ray"):
        lines += _ray_table(data, targets, checks)
    if data.get("reads"):
        lines += _reads_table(data, targets, checks)
    lines += ["", "Targets:"]
    lines += [f"  {'PASS' if ok else 'FAIL'}  {name}: {value:.3g} ({target})"
              for name, value, target, ok in checks]
    if "minutes" in data:
        lines.append(f"\nThe run took {data['minutes']:.1f} min.")
    return "\n".join(lines) + "\n"


def _setup_table(data: dict[str, Any], targets: dict[str, float],
                 checks: list[tuple[str, float, str, bool]]) -> list[str]:
    cells = _setup_cells(data["setup"])
    latency = data["args"]["latency"]
    lines = [f"Set-up + teardown against one host: simulated engines on loopback TCP, "
             f"{latency * 1000:.0f} ms per answer, one trial per host (medians)",
             f"{'H':>5}  {'image':<8} {'set-up s':>8} {'teardown s':>10} {'total s':>8} "
             f"{'x 1 host':>8} {'threads':>7} {'fds':>5} {'RSS MB':>6} {'requests':>8}"]
    for (image, hosts), c in sorted(cells.items(), key=lambda kv: (kv[0][0] != "present",
                                                                    kv[0][1])):
        one = cells.get((image, min(h for i, h in cells if i == image)))
        total = c["setup_s"] + c["teardown_s"]
        ratio = total / (one["setup_s"] + one["teardown_s"]) if one else float("nan")
        lines.append(f"{hosts:>5}  {image:<8} {c['setup_s']:8.2f} {c['teardown_s']:10.3f} "
                     f"{total:8.2f} {ratio:8.2f} {c['threads_peak']:7.0f} {c['fds_peak']:5.0f} "
                     f"{c['rss_peak_mb']:6.0f} {c['engine_requests']:8.0f}")
        if hosts > 1:
            checks.append((f"set-up + teardown, {hosts} hosts / 1 host, image {image}", ratio,
                           f"target <= {targets['setup_ratio']:g}",
                           ratio <= targets["setup_ratio"]))
        checks.append((f"peak RSS at {hosts} hosts (image {image}), MB", c["rss_peak_mb"],
                       f"target < {targets['rss_mb']:g}", c["rss_peak_mb"] < targets["rss_mb"]))
    return [*lines, ""]


def _cpu_table(data: dict[str, Any], targets: dict[str, float],
               checks: list[tuple[str, float, str, bool]]) -> list[str]:
    rows = sorted(data["cpu"], key=lambda r: r["trials"])
    lines = [f"Launcher CPU per trial over {rows[0]['hosts']} simulated hosts, rich progress "
             "drawing on a pseudo-terminal (the engines' CPU is not counted)",
             f"{'N':>7} {'wall s':>8} {'CPU s':>8} {'ms/trial':>8} {'threads':>7} {'fds':>6} "
             f"{'RSS MB':>6}"]
    for r in rows:
        lines.append(f"{r['trials']:>7} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['cpu_ms']:8.2f} "
                     f"{r['threads_peak']:7} {r['fds_peak']:6} {r['rss_peak_mb']:6.0f}")
        checks.append((f"CPU per trial at N={r['trials']}, ms", r["cpu_ms"],
                       f"target <= {targets['cpu_ms']:g}", r["cpu_ms"] <= targets["cpu_ms"]))
        checks.append((f"peak RSS at N={r['trials']}, MB", r["rss_peak_mb"],
                       f"target < {targets['rss_mb']:g}", r["rss_peak_mb"] < targets["rss_mb"]))
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        marginal = 1000 * (b["cpu_s"] - a["cpu_s"]) / (b["trials"] - a["trials"])
        lines.append(f"marginal CPU per trial from N={a['trials']} to N={b['trials']}: "
                     f"{marginal:.2f} ms")
    return [*lines, ""]


def _ray_table(data: dict[str, Any], targets: dict[str, float],
               checks: list[tuple[str, float, str, bool]]) -> list[str]:
    by: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for s in data["ray"]:
        by[(s["backend"], s["n"])].append(s)
    lines = ["Ray against the Docker backend: no-op containers on the local engine, same "
             "concurrency, Ray already running (medians)",
             f"{'N':>5} {'docker s':>9} {'ray s':>8} {'ray/docker':>10} {'docker CPU ms':>13} "
             f"{'ray driver ms':>13} {'ray cluster ms':>14}"]
    for n in sorted({n for _, n in by}):
        d, r = by.get(("docker", n), []), by.get(("ray", n), [])
        dw, rw = median(s["wall_s"] for s in d), median(s["wall_s"] for s in r)
        ratio = rw / dw if dw else float("nan")
        lines.append(f"{n:>5} {dw:9.2f} {rw:8.2f} {ratio:10.2f} "
                     f"{1000 * median(s['driver_cpu_s'] for s in d) / n:13.1f} "
                     f"{1000 * median(s['driver_cpu_s'] for s in r) / n:13.1f} "
                     f"{1000 * median(s['cluster_cpu_s'] for s in r) / n:14.1f}")
        checks.append((f"Ray / Docker wall at N={n}", ratio,
                       f"target <= {targets['ray_ratio']:g}", ratio <= targets["ray_ratio"]))
    return [*lines, ""]


def _reads_table(data: dict[str, Any], targets: dict[str, float],
                 checks: list[tuple[str, float, str, bool]]) -> list[str]:
    n = data["args"]["reads"]
    lines = [f"Read commands on finished runs of {n} records (fresh `launch` process each)",
             f"{'command':<22} {'wall s':>7} {'CPU s':>7} {'RSS MB':>7}"]
    for r in data["reads"]:
        lines.append(f"{r['command']:<22} {r['wall_s']:7.2f} {r['cpu_s']:7.2f} "
                     f"{r['rss_mb']:7.0f}{'' if r['ok'] else '  (failed)'}")
        checks.append((f"`{r['command']}` at {n} records, wall s", r["wall_s"],
                       f"target < {targets['read_s']:g}", r["wall_s"] < targets["read_s"]))
        checks.append((f"`{r['command']}` at {n} records, RSS MB", r["rss_mb"],
                       f"target < {targets['read_mb']:g}", r["rss_mb"] < targets["read_mb"]))
    return [*lines, ""]


def plot(data: dict[str, Any], path: Path) -> None:
    """Four panels: set-up against H, CPU per trial against N, peaks against H, reads."""
    from launcher.plots import COLORS, figure, style

    fig = figure(11, 7.5)
    (a, b), (c, d) = fig.subplots(2, 2)
    if data.get("setup"):
        cells = _setup_cells(data["setup"])
        for i, image in enumerate(("present", "shipped")):
            hs = sorted(h for im, h in cells if im == image)
            a.plot(hs, [cells[(image, h)]["setup_s"] + cells[(image, h)]["teardown_s"]
                        for h in hs], "-o", color=COLORS[i], label=f"image {image}")
            one = cells[(image, hs[0])]
            a.plot(hs, [2 * (one["setup_s"] + one["teardown_s"])] * len(hs), ":",
                   color=COLORS[i], label=f"target: 2 x one host ({image})")
            c.plot(hs, [cells[(image, h)]["fds_peak"] for h in hs], "-o", color=COLORS[i],
                   label=f"open files ({image})")
            c.plot(hs, [cells[(image, h)]["threads_peak"] for h in hs], "--s",
                   color=COLORS[i], label=f"threads ({image})")
        a.set_xscale("log")
        style(a, "set-up + teardown (s) against hosts", "hosts", "seconds")
        a.legend(fontsize=7, frameon=False)
        c.set_xscale("log")
        c.set_yscale("log")
        style(c, "peak open files and threads against hosts", "hosts", "")
        c.legend(fontsize=7, frameon=False)
    if data.get("cpu"):
        rows = sorted(data["cpu"], key=lambda r: r["trials"])
        b.plot([r["trials"] for r in rows], [r["cpu_ms"] for r in rows], "-o",
               color=COLORS[2], label="launcher CPU per trial")
        b.axhline(15, color=COLORS[3], linestyle=":", label="target 15 ms")
        b.set_xscale("log")
        b.set_ylim(bottom=0)
        style(b, f"CPU per trial over {rows[0]['hosts']} hosts (progress on)", "trials",
              "ms per trial")
        b.legend(fontsize=7, frameon=False)
    if data.get("reads"):
        reads = data["reads"]
        d.barh([r["command"] for r in reads], [r["wall_s"] for r in reads], color=COLORS[0])
        d.axvline(10, color=COLORS[3], linestyle=":", label="target 10 s")
        d.invert_yaxis()
        style(d, f"read commands at {data['args']['reads']} records (wall s)", "seconds", "")
        d.legend(fontsize=7, frameon=False)
    fig.savefig(path, dpi=100)
