"""Scale: 1 to 1,000 hosts and 1,000 to 100,000 trials, measured side by side in one run.

    python -m benchmarks.scale                  # defaults below (about 10-15 min)
    python -m benchmarks.scale --quick          # a smoke run (about 3 min)
    python -m benchmarks.scale --trials 1000,10000,100000 --reads 100000

Sections (``--skip setup,cpu,ray,reads``):
  setup  set-up and teardown against one host, at H hosts (default 1, 10, 100, 1000)
         simulated engines on loopback TCP ports with 20 ms per answer: image present on
         every host, and shipped to all but one. Each run is a fresh `launch` process
         (benchmarks.scale_probe) with one trial per host; peaks of threads, open files
         and RSS come from the same runs.
  cpu    the launcher's CPU per trial at N trials over 1,000 simulated hosts, with the
         rich progress display drawing on a pseudo-terminal.
  ray    Ray against the Docker backend at N no-op containers on the local engine, same
         concurrency, Ray already running (benchmarks.scale_ray).
  reads  the read commands on two finished runs of N records (benchmarks.scale_read).

The simulated engines (tests/simengine) run in their own process, so their CPU is not
counted as the launcher's. Results go to benchmarks/results/scale-YYYYMMDD-HHMMSS/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, ROOT, median

SECTIONS = ("setup", "cpu", "ray", "reads")
TARGETS = {"setup_ratio": 2.0, "cpu_ms": 15.0, "rss_mb": 1024.0, "ray_ratio": 1.2,
           "read_s": 10.0, "read_mb": 1024.0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hosts", default="1,10,100,1000", help="H values for set-up")
    p.add_argument("--latency", type=float, default=0.02, help="seconds per engine answer")
    p.add_argument("--trials", default="1000,10000", help="N values for CPU per trial")
    p.add_argument("--trial-hosts", type=int, default=1000, help="hosts for the CPU runs")
    p.add_argument("--ray", default="100,1000", help="N values for Ray against Docker")
    p.add_argument("--reads", type=int, default=100000, help="records of the read runs")
    p.add_argument("--reps", type=int, default=1, help="repetitions of set-up and Ray runs")
    p.add_argument("--skip", default="", help=f"sections to leave out: {','.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true",
                   help="hosts 1,10,100, trials 1000 over 100 hosts, Ray N=100, reads 10000")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.hosts, args.trials, args.trial_hosts, args.ray, args.reads = \
            "1,10,100", "1000", 100, "100", 10000
    args.skip = {s for s in args.skip.split(",") if s}
    return args


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def probe(folder: Path, hosts: int, trials: int, *, latency: float, preload: str,
          tty: bool = False, duration: float = 0.05) -> dict[str, Any]:
    """One `launch` run in a fresh process against ``hosts`` simulated engines."""
    from tests.simengine import SimEngines, sim_sweep

    with SimEngines(folder, hosts=hosts, latency=latency, tcp=True, ncpu=1,
                    duration=duration, preload=preload, lifetime=7200) as sim:
        path = sim_sweep(folder, [{"url": h["url"], "name": h["name"]} for h in sim.hosts],
                         replicas=trials, name=f"scale-h{hosts}-n{trials}")
        argv = [sys.executable, "-m", "benchmarks.scale_probe", str(path)]
        env = {**sim.environ, "XDG_CACHE_HOME": str(folder / "cache")}  # no CPU models known
        done = subprocess.run(argv + (["--tty"] if tty else []), env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=7200)
        stats = sim.stats()
    if done.returncode != 0:
        raise RuntimeError(f"probe failed: {done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    out["engine_requests"] = sum(stats["endpoints"].values())
    out["load"] = os.getloadavg()[0]
    return out


def setup_section(tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for rep in range(args.reps):
        for hosts in sizes(args.hosts):
            for preload in ("all", "first"):
                r = probe(tmp / f"setup-{hosts}-{preload}-{rep}", hosts, hosts,
                          latency=args.latency, preload=preload)
                r.update(hosts=hosts, image="present" if preload == "all" else "shipped",
                         rep=rep)
                rows.append(r)
                print(f"  H={hosts:<5} image {r['image']:<8} set-up {r['setup_s']:6.2f} s  "
                      f"teardown {r['teardown_s']:6.2f} s  threads {r['threads_peak']:4}  "
                      f"fds {r['fds_peak']:5}  RSS {r['rss_peak_mb']:5.0f} MB", flush=True)
    return rows


def cpu_section(tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in sizes(args.trials):
        r = probe(tmp / f"cpu-{n}", args.trial_hosts, n, latency=args.latency, preload="all",
                  tty=True)
        r.update(trials=n, hosts=args.trial_hosts, cpu_ms=1000 * r["cpu_s"] / n)
        rows.append(r)
        print(f"  N={n:<6} over {args.trial_hosts} hosts: {r['wall_s']:7.1f} s wall, "
              f"{r['cpu_ms']:5.1f} ms CPU per trial, threads {r['threads_peak']}, fds "
              f"{r['fds_peak']}, RSS {r['rss_peak_mb']:.0f} MB", flush=True)
    return rows


def ray_section(tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from benchmarks.common import make_context
    from benchmarks.scale_ray import ray_vs_docker

    subprocess.run([str(ROOT / "scripts" / "busybox-image.sh")], check=True,
                   capture_output=True)
    ctx = make_context(4)
    ctx.tmp = tmp / "ray"
    ctx.tmp.mkdir(parents=True)
    return [asdict(s) for s in ray_vs_docker(ctx, sizes(args.ray), args.reps)]


def reads_section(tmp: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from benchmarks.scale_read import measure_reads

    root = tmp / "reads"
    root.mkdir()
    return [asdict(r) for r in measure_reads(root, args.reads)]


def main(argv: list[str] | None = None) -> None:
    from benchmarks.scale_report import plot, render

    args = parse_args(argv)
    out = args.out or RESULTS / time.strftime("scale-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    data: dict[str, Any] = {"args": {k: v if not isinstance(v, set) else sorted(v)
                                     for k, v in vars(args).items() if k != "out"}}
    sections = {"setup": setup_section, "cpu": cpu_section, "ray": ray_section,
                "reads": reads_section}
    with tempfile.TemporaryDirectory(prefix="launcher-scale-") as tmp:
        for name, section in sections.items():
            if name in args.skip:
                continue
            print(f"== {name}", flush=True)
            data[name] = section(Path(tmp), args)
            (out / "samples.json").write_text(json.dumps(data, indent=1, default=str))
        data["minutes"] = (time.monotonic() - started) / 60
        (out / "samples.json").write_text(json.dumps(data, indent=1, default=str))
        text = render(data, TARGETS)
        (out / "report.txt").write_text(text)
        print(text, flush=True)
        plot(data, out / "scale.png")
        print(f"results: {out} (removing the temporary runs now)", flush=True)


__all__ = ["main", "median"]

if __name__ == "__main__":
    main()
