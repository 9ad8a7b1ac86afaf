"""Adaptive search and early termination, side by side in one run:

1. quality: the median best value of the launcher's bayes (Optuna's TPE), of its random
   search and of W&B's own bayes engine, over seeds, ``--in-flight`` trials at once and
   ``--run-cap`` trials, on Branin and Hartmann-6 (experiments/objective.py's functions);
2. speed: the launcher's time per suggestion (ask, durable record, tell) with 1,000
   finished trials, and the time to rebuild that history on resume;
3. live lines: the launcher's CPU per history line it follows from a running container;
4. hyperband on the real training job (experiments/train.py) where most configurations
   are poor: container-seconds with and without early termination, and the best
   configuration each run found.

    python -m benchmarks.search                 # everything (about 10 minutes)
    python -m benchmarks.search --quick         # 3 seeds, small sizes (about 3 minutes)
    python -m benchmarks.search --skip wandb,hyperband --seeds 20

See benchmarks/README.md for the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT
from benchmarks.search_sim import OPTIMA, SPACES, evaluate, simulate

WANDB_PYTHON = ROOT / ".cache" / "wandb-sweeps" / "bin" / "python"
FUNCTIONS = ("branin", "hartmann6")


def spec_for(function: str, method: str, *, run_cap: int, seed: int, sampler: str = "tpe",
             name: str = "bench") -> Any:
    """A SweepSpec over the function's box (uniform floats, as W&B's min/max)."""
    from launcher.overrides import Overrides
    from launcher.spec import build_spec
    from launcher.yamlfile import YamlDoc

    data: dict[str, Any] = {
        "name": name, "method": method, "run_cap": run_cap, "seed": seed,
        "metric": {"name": "value", "goal": "minimize"},
        "parameters": {k: {"min": lo, "max": hi} for k, (lo, hi) in SPACES[function].items()}}
    if method == "bayes":
        data["sampler"] = sampler
    return build_spec(YamlDoc(data=data, path="<bench>"), Overrides())


def new_run(root: Path, name: str) -> Any:
    from launcher.store import RunDir

    run = RunDir.create(root, name)
    (run.path / "manifest.json").write_text("{}")
    return run


def launcher_bayes(function: str, seed: int, run_cap: int, in_flight: int,
                   root: Path) -> float:
    """The launcher's own AdaptiveSearch (durable records included) in the simulation."""
    from launcher.search.adaptive import AdaptiveSearch
    from launcher.trial import TrialResult, TrialStatus

    spec = spec_for(function, "bayes", run_cap=run_cap, seed=seed)
    search = AdaptiveSearch(spec, new_run(root, f"{function}-{seed}"))

    def ask() -> tuple[Any, dict[str, float]]:
        (trial,) = search.ask()
        return trial, dict(trial.params)

    def tell(trial: Any, value: float) -> None:
        search.tell(TrialResult(trial.trial_id, TrialStatus.SUCCEEDED,
                                metrics={"value": value}))

    return min(simulate(function, ask, tell, run_cap=run_cap, in_flight=in_flight,
                        seed=seed))


def launcher_random(function: str, seed: int, run_cap: int) -> float:
    """The launcher's random search (W&B's): run_cap independent draws."""
    from launcher.plan import expand

    plan = expand(spec_for(function, "random", run_cap=run_cap, seed=seed))
    return min(evaluate(function, dict(t.params)) for t in plan.trials)


def wandb_bayes(seeds: list[int], run_cap: int, in_flight: int) -> dict[str, Any]:
    job = {"functions": list(FUNCTIONS), "seeds": seeds, "run_cap": run_cap,
           "in_flight": in_flight}
    done = subprocess.run([str(WANDB_PYTHON), str(ROOT / "benchmarks" / "search_wandb.py")],
                          input=json.dumps(job), capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"W&B's engine failed: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def quality(args: argparse.Namespace) -> dict[str, Any]:
    seeds = list(range(args.seeds))
    started = time.monotonic()
    out: dict[str, Any] = {"seeds": len(seeds), "run_cap": args.run_cap,
                           "in_flight": args.in_flight, "functions": {}}
    theirs = None
    if "wandb" not in args.skip:
        if not WANDB_PYTHON.exists():
            raise SystemExit("W&B's engine is missing: run `make wandb-sweeps` (or --skip wandb)")
        theirs = wandb_bayes(seeds, args.run_cap, args.in_flight)
    with tempfile.TemporaryDirectory() as tmp:
        for function in FUNCTIONS:
            bayes = [launcher_bayes(function, s, args.run_cap, args.in_flight, Path(tmp))
                     for s in seeds]
            rand = [launcher_random(function, s, args.run_cap) for s in seeds]
            row = {"bayes": bayes, "random": rand, "optimum": OPTIMA[function]}
            if theirs is not None:
                row["wandb_bayes"] = theirs["best"][function]
                row["wandb_suggest_ms"] = statistics.median(theirs["suggest_ms"][function])
            out["functions"][function] = row
    out["seconds"] = round(time.monotonic() - started, 1)
    print_quality(out)
    return out


def print_quality(out: dict[str, Any]) -> None:
    print(f"\n== search quality: median best value over {out['seeds']} seeds "
          f"(lower is better), run_cap {out['run_cap']}, {out['in_flight']} in flight ==")
    print(f"{'function':<10} {'optimum':>9} {'bayes (TPE)':>12} {'random':>9} "
          f"{'W&B bayes':>10}  bayes<random  bayes<=W&B  W&B ms/suggestion")
    for function, row in out["functions"].items():
        med = {k: statistics.median(row[k]) for k in ("bayes", "random", "wandb_bayes")
               if k in row}
        wins = sum(b < r for b, r in zip(row["bayes"], row["random"], strict=True))
        vs = (f"{sum(b <= w for b, w in zip(row['bayes'], row['wandb_bayes'], strict=True))}"
              f"/{out['seeds']} seeds" if "wandb_bayes" in row else "-")
        print(f"{function:<10} {row['optimum']:>9.4f} {med['bayes']:>12.4f} "
              f"{med['random']:>9.4f} {med.get('wandb_bayes', float('nan')):>10.4f}  "
              f"{wins}/{out['seeds']} seeds   {vs:<11} "
              f"{row.get('wandb_suggest_ms', float('nan')):.0f}")


def speed(args: argparse.Namespace) -> dict[str, Any]:
    """Time per suggestion with ``--history`` finished trials, and the rebuild on resume."""
    from launcher.search.adaptive import AdaptiveSearch
    from launcher.trial import TrialResult, TrialStatus

    out: dict[str, Any] = {"history": args.history, "functions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for function in FUNCTIONS:
            cap = args.history + args.timed
            fill = spec_for(function, "bayes", run_cap=cap, seed=0, sampler="random")
            run = new_run(Path(tmp), function)
            filler = AdaptiveSearch(fill, run)
            for _ in range(args.history):  # a history of finished trials, as records
                (trial,) = filler.ask()
                result = TrialResult(trial.trial_id, TrialStatus.SUCCEEDED,
                                     metrics={"value": evaluate(function, dict(trial.params))})
                run.record(result)
            spec = spec_for(function, "bayes", run_cap=cap, seed=0)
            started = time.perf_counter()
            search, _ = AdaptiveSearch.open(spec, run)
            rebuild = time.perf_counter() - started
            wall, cpu = [], []
            for _ in range(args.timed):
                w0, c0 = time.perf_counter(), time.process_time()
                (trial,) = search.ask()
                search.tell(TrialResult(trial.trial_id, TrialStatus.SUCCEEDED, metrics={
                    "value": evaluate(function, dict(trial.params))}))
                wall.append((time.perf_counter() - w0) * 1000)
                cpu.append((time.process_time() - c0) * 1000)
            out["functions"][function] = {
                "rebuild_s": round(rebuild, 2), "wall_ms_median": statistics.median(wall),
                "wall_ms_p90": sorted(wall)[int(0.9 * len(wall))],
                "cpu_ms_median": statistics.median(cpu)}
    print(f"\n== time per suggestion (ask + durable record + tell) with {args.history} "
          "finished trials ==")
    print(f"{'function':<10} {'median ms':>10} {'p90 ms':>8} {'CPU ms':>8} "
          f"{'rebuild s':>10}   target < 50 ms")
    for function, row in out["functions"].items():
        print(f"{function:<10} {row['wall_ms_median']:>10.1f} {row['wall_ms_p90']:>8.1f} "
              f"{row['cpu_ms_median']:>8.1f} {row['rebuild_s']:>10.2f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--run-cap", type=int, default=40)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--timed", type=int, default=30, help="suggestions timed")
    parser.add_argument("--lines", type=int, default=20000, help="live lines followed")
    parser.add_argument("--epochs", type=int, default=1000, help="training job's epochs")
    parser.add_argument("--configs", type=int, default=24, help="training configurations")
    parser.add_argument("--skip", default="", help="comma list: quality,wandb,speed,live,"
                        "hyperband")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.skip = set(filter(None, args.skip.split(",")))
    if args.quick:
        args.seeds, args.history, args.timed = 3, 300, 10
        args.lines, args.epochs, args.configs = 5000, 240, 12
    figures: dict[str, Any] = {}
    started = time.monotonic()
    if "quality" not in args.skip:
        figures["quality"] = quality(args)
    if "speed" not in args.skip:
        figures["speed"] = speed(args)
    if "live" not in args.skip or "hyperband" not in args.skip:
        from benchmarks.search_docker import docker_sections

        figures.update(docker_sections(args))
    print(f"\n(whole benchmark: {time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
