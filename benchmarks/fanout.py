"""Fan-out overhead side by side: the launcher against raw Docker and what users script.

    python -m benchmarks.fanout                      # sizes 10,50,100,200 x 3 reps + extras
    python -m benchmarks.fanout --quick              # smoke run: N=10, 1 rep, small extras
    python -m benchmarks.fanout --sizes 100 --reps 5 --skip train,ship

In one run, interleaved (every repetition runs each size through every contender in
round-robin order, the starting contender rotating), N no-op containers go through each
contender of benchmarks.contenders at the same concurrency. Prints one table of medians
with ratios to the floor, the targets of issue 8 with PASS/MISS, and writes CSV files
and a PNG plot under benchmarks/results/<timestamp>/. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from benchmarks import report
from benchmarks.common import RESULTS, ROOT, Context, make_context, median, rmtree
from benchmarks.contenders import Contender, Outcome, all_contenders
from benchmarks.extras import Metric, cpu_per_container, help_time, metrics_json, plan_100k
from benchmarks.report import Sample

PARTS = ("cpu", "plan", "help", "ship", "train")
TARGET_N = 100


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.fanout", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10,50,100,200", help="N values (default %(default)s)")
    p.add_argument("--reps", type=int, default=3, help="repetitions (default %(default)s)")
    p.add_argument("--quick", action="store_true",
                   help="smoke mode: N=10, 1 rep, 8 training replicas, 1 shipping rep")
    p.add_argument("--concurrency", type=int, default=4,
                   help="containers at once, for every contender (default %(default)s)")
    p.add_argument("--contenders", default="",
                   help="comma list of contender keys (default: all that are available)")
    p.add_argument("--skip", default="", help=f"comma list of extras to skip: {','.join(PARTS)}")
    p.add_argument("--all-sizes", action="store_true",
                   help="run contenders limited to some N (floor-out: N=100) at every N")
    p.add_argument("--train-replicas", type=int, default=100)
    p.add_argument("--ship-real", action="store_true",
                   help="ship the project image itself (removes it from the test hosts)")
    p.add_argument("--out", type=Path, default=None, help="results folder")
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.train_replicas = "10", 1, 8
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def preflight(concurrency: int) -> Context:
    """An engine, the busybox image, and the launcher's slot arithmetic giving exactly
    ``concurrency`` slots."""
    subprocess.run([str(ROOT / "scripts" / "busybox-image.sh")], check=True,
                   stdout=subprocess.DEVNULL)
    ctx = make_context(concurrency)
    from launcher.hosts import connect
    from launcher.sections import HostSpec

    host = connect(HostSpec("local", "local"), cpus_per_trial=ctx.cpus)
    host.close()
    if host.slots != concurrency:
        sys.exit(f"resources.cpus {ctx.cpus:g} gives the launcher {host.slots} slots on "
                 f"{ctx.ncpu} CPUs, not {concurrency}; choose another --concurrency")
    return ctx


def choose(ctx: Context, keys: str) -> list[Contender]:
    wanted = {k.strip() for k in keys.split(",") if k.strip()}
    chosen = []
    for c in all_contenders():
        if wanted and c.key not in wanted and c.key != "floor":
            continue
        why = c.available(ctx)
        if why:
            print(f"note: skipping {c.key} ({c.title}): {why}")
        else:
            chosen.append(c)
    return chosen


def measure(c: Contender, ctx: Context, n: int, rep: int, api: object) -> Sample:
    from benchmarks.common import leftover_containers, remove_containers

    name = ctx.name(c.key, n, rep)
    c.prepare(ctx, n, name)
    load = os.getloadavg()[0]
    outcome = Outcome(float("nan"), float("nan"))
    try:
        outcome = c.run(ctx, n, name)  # timed inside: start .. last container removed
        problem = c.check(ctx, n, name, outcome)
    except Exception as e:  # a crash or a broken check is a failed sample, not the end
        problem = f"{type(e).__name__}: {str(e)[:300]}"
    left = leftover_containers(api, c.label(ctx, name))
    remove_containers(api, left)
    if left:
        problem = (problem + "; " if problem else "") + f"{len(left)} containers left behind"
    if problem:
        problem += failure_reasons(ctx.results_root / name)
    rmtree(ctx.results_root / name)
    return Sample(c.key, n, rep, outcome.wall_s, outcome.cpu_s, not problem, len(left),
                  problem, load)


def failure_reasons(folder: Path) -> str:
    """The reasons the launcher recorded for trials that did not succeed (a few)."""
    reasons: dict[str, int] = {}
    for records in folder.glob("*/trials.jsonl"):
        for line in records.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("status") != "succeeded":
                why = f"{record.get('status')}: {record.get('reason', '')}"[:200]
                reasons[why] = reasons.get(why, 0) + 1
    return "".join(f" [{n} x {why}]" for why, n in list(reasons.items())[:3])


def fan_out(ctx: Context, contenders: list[Contender], sizes: list[int],
            reps: int, all_sizes: bool = False) -> list[Sample]:
    import docker

    api = docker.APIClient(**docker.utils.kwargs_from_env(), version="auto")
    samples = []
    try:
        print(f"warm-up: every contender once with N={ctx.concurrency} (not recorded)")
        for c in contenders:
            s = measure(c, ctx, ctx.concurrency, -1, api)
            if not s.ok:
                print(f"  warm-up {c.key}: {s.problem}")
        for rep in range(reps):
            for i, n in enumerate(sizes):
                k = (rep + i) % len(contenders)
                for c in contenders[k:] + contenders[:k]:
                    limited = set(c.only_sizes) & set(sizes) and not all_sizes
                    if limited and n not in c.only_sizes:
                        continue
                    s = measure(c, ctx, n, rep, api)
                    samples.append(s)
                    print(f"  rep {rep + 1}/{reps} N={n:<4d} {c.key:11s} {s.wall_s:7.2f} s"
                          f"{'' if s.ok else '  FAILED: ' + s.problem}", flush=True)
    finally:
        api.close()
    return samples


def extras(ctx: Context, args: argparse.Namespace) -> list[Metric]:
    from benchmarks.shipbench import ship_bench
    from benchmarks.training import training_efficiency

    parts: dict[str, Callable[[], list[Metric]]] = {
        "cpu": lambda: cpu_per_container(ctx, n=TARGET_N),
        "plan": lambda: plan_100k(ctx, reps=3),
        "help": lambda: help_time(ctx),
        "ship": lambda: ship_bench(ctx, reps=1 if args.quick else 3, real=args.ship_real),
        "train": lambda: training_efficiency(ctx, args.train_replicas),
    }
    out: list[Metric] = []
    for key, fn in parts.items():
        if key in args.skip:
            continue
        started = time.perf_counter()
        try:
            got = fn()
        except Exception as e:  # one broken extra must not lose the whole run
            got = [Metric(key, float("nan"), "", passed=False,
                          note=f"{type(e).__name__}: {str(e)[:300]}")]
        print(f"  {key}: done in {time.perf_counter() - started:.0f} s", flush=True)
        out.extend(got)
    return out


def machine() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines
                if line.startswith("model name")), platform.processor())
    engine = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    return (f"{platform.node()}: {cpu}, Docker engine {engine}, "
            f"kernel {platform.release()}, Python {platform.python_version()}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    ctx = preflight(args.concurrency)
    out = args.out or RESULTS / datetime.now().strftime("fanout-%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    try:
        contenders = choose(ctx, args.contenders)
        header = (f"{datetime.now():%Y-%m-%d %H:%M}  {machine()}\n"
                  f"{ctx.ncpu} CPUs; concurrency {ctx.concurrency} for every contender "
                  f"(launcher: resources.cpus {ctx.cpus:g} -> {ctx.concurrency} slots; floor: "
                  f"{ctx.concurrency} threads; xargs -P {ctx.concurrency}; "
                  f"COMPOSE_PARALLEL_LIMIT={ctx.concurrency})\n"
                  f"docker run flags (from the launcher's create arguments): "
                  f"{shlex.join(ctx.docker_run_flags('NAME'))}\n"
                  f"sizes {args.sizes}, {args.reps} repetitions, interleaved")
        print(header, flush=True)
        samples = fan_out(ctx, contenders, args.sizes, args.reps, args.all_sizes)
        print("extras:", flush=True)
        metrics = extras(ctx, args)
    finally:
        import docker

        from benchmarks.common import remove_everything_of

        api = docker.APIClient(**docker.utils.kwargs_from_env(), version="auto")
        left = remove_everything_of(api, ctx.token)
        api.close()
        if left:
            print(f"note: removed {left} containers of this run that were left behind")
        rmtree(ctx.tmp)
    elapsed = time.perf_counter() - started
    finish(args, ctx, contenders, samples, metrics, header, elapsed, out)


def finish(args: argparse.Namespace, ctx: Context, contenders: list[Contender],
           samples: list[Sample], metrics: list[Metric], header: str, elapsed: float,
           out: Path) -> None:
    titles = {c.key: c.title for c in contenders}
    cells = report.summarize(samples, list(titles), args.sizes)
    n = TARGET_N if TARGET_N in args.sizes else max(args.sizes)
    goals = report.targets(cells, samples, n)
    api_cpu = [c for c in cells if c.contender == "api" and c.n == n]
    if api_cpu:
        goals.append(Metric(f"launcher API client CPU per container at N={n} "
                            "(in-process, from the table)", api_cpu[0].cpu_ms, "ms", "<= 20",
                            api_cpu[0].cpu_ms <= 20))
    text = "\n".join([
        header, "",
        f"Medians of {args.reps} repetitions; each cell: seconds from start until every "
        "container is removed, x ratio to the floor (lower is better), containers/s.",
        f"client CPU: CPU time of the contender's own processes per container at "
        f"N={max(args.sizes)}. Load average (1 min) during the fan-out: median "
        f"{median(s.load for s in samples):.1f}, max "
        f"{max((s.load for s in samples), default=float('nan')):.1f} on {ctx.ncpu} CPUs.", "",
        report.table(cells, titles, args.sizes), "",
        "Targets:", report.print_metrics(goals + [m for m in metrics if m.target]), "",
        "Other measurements:", report.print_metrics([m for m in metrics if not m.target]), "",
        f"Total time of this benchmark run: {elapsed / 60:.1f} min. Files: {out}"])
    print("\n" + text)
    (out / "report.txt").write_text(text + "\n")
    report.write_csv(out / "samples.csv", samples)
    report.write_csv(out / "summary.csv", cells)
    report.write_csv(out / "metrics.csv", metrics_json(goals + metrics))
    (out / "run.json").write_text(json.dumps({"sizes": args.sizes, "reps": args.reps,
                                              "concurrency": ctx.concurrency,
                                              "elapsed_s": elapsed}) + "\n")
    if cells:
        report.plot(cells, titles, args.sizes, n, out / "fanout.png")


if __name__ == "__main__":
    main()
