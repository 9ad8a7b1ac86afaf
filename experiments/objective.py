"""Known test functions as a tiny training job: search quality and early stopping without
long trainings. Standard library only; it never imports ``launcher``.

Ships in the image beside train.py. It follows the image <-> launcher contract: one JSON
history line per step, a final ``{"metrics": {...}}`` line and the same metrics in
``<outputs>/metrics.json``.

Inputs (argv, ``--name=value`` or ``--name value``)
    --function=NAME   branin (x1 in [-5, 10], x2 in [0, 15]; minimum 0.397887),
                      hartmann6 (x1..x6 in [0, 1]; minimum -3.32237), or any (every other
                      argument is a parameter: numbers and words both count; for sweep
                      files written for another job). Default: branin.
    --metric=NAME     the metric's name in the history and the metrics (default: value)
    --steps=N         history lines before the final one (default 20; with any, --epochs
                      sets it when given)
    --sleep=S         seconds of sleep per step (default 0), so that a trial takes time and
                      early termination has something to stop
    --noise=F         relative noise of the learning curve (default 0.1); the final value
                      is the function's exact value whatever the noise
    --x1 ... --x6     the point (branin: x1, x2; hartmann6: x1..x6)
    --outputs=DIR     output directory (else env LAUNCH_OUTPUTS, else /outputs; skipped
                      when it cannot be written)
    env LAUNCH_SEED   seeds the curve's noise (default 0)

Outputs
    stdout   {"step": k, NAME: v_k} for k = 1..N, where v_k = f(x) + A (1 - k/N)^2
             (1 + noise), A the function's scale: a learning curve whose early values
             already rank most points as their final values do; then
             {"metrics": {NAME: f(x), "function": ...}}
    exit     0 success; 2 bad arguments (one stderr line)
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import NoReturn

PROG = "objective.py"
OWN = {"function", "metric", "steps", "sleep", "noise", "outputs"}
SCALE = {"branin": 50.0, "hartmann6": 1.0, "any": 1.0}

# Hartmann-6 constants (Surjanovic and Bingham's library of test functions)
ALPHA = (1.0, 1.2, 3.0, 3.2)
A_H6 = ((10, 3, 17, 3.5, 1.7, 8), (0.05, 10, 17, 0.1, 8, 14), (3, 3.5, 1.7, 10, 17, 8),
        (17, 8, 0.05, 10, 0.1, 14))
P_H6 = ((1312, 1696, 5569, 124, 8283, 5886), (2329, 4135, 8307, 3736, 1004, 9991),
        (2348, 1451, 3522, 2883, 3047, 6650), (4047, 8828, 8732, 5743, 1091, 381))


def usage(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x: list[float]) -> float:
    total = 0.0
    for i in range(4):
        inner = sum(A_H6[i][j] * (x[j] - P_H6[i][j] * 1e-4) ** 2 for j in range(6))
        total += ALPHA[i] * math.exp(-inner)
    return -total


def any_function(params: dict[str, str]) -> float:
    """A smooth, deterministic value in [0, 1] of any parameters (numbers by their log
    scale, other values by a hash)."""
    if not params:
        return 0.5
    total = 0.0
    for name, text in sorted(params.items()):
        phase = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) / 2 ** 32 * 6.283
        try:
            number = float(text)
            total += 0.5 * (1 + math.sin(3 * math.log(abs(number) + 1e-9) + phase))
        except ValueError:
            total += int(hashlib.sha256(f"{name}={text}".encode()).hexdigest()[:8], 16) / 2**32
    return total / len(params)


def parse(argv: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    items = iter(argv)
    for item in items:
        if not item.startswith("--"):
            usage(f"unexpected argument {item!r} (use --name=value)")
        name, sep, value = item[2:].partition("=")
        if not sep:
            value = next(items, None) or usage(f"--{name} needs a value")
        out[name.replace("-", "_")] = value
    return out


def number(args: dict[str, str], name: str, default: float) -> float:
    try:
        value = float(args.get(name, default))
    except ValueError:
        usage(f"--{name} must be a number, got {args[name]!r}")
    if not math.isfinite(value):
        usage(f"--{name} must be finite")
    return value


def evaluate(function: str, args: dict[str, str]) -> float:
    if function == "branin":
        return branin(number(args, "x1", 2.5), number(args, "x2", 7.5))
    if function == "hartmann6":
        return hartmann6([number(args, f"x{i}", 0.5) for i in range(1, 7)])
    return any_function({k: v for k, v in args.items() if k not in OWN})


def check(function: str, args: dict[str, str]) -> None:
    if function not in SCALE:
        usage(f"--function must be branin, hartmann6 or any, got {function!r}")
    if function != "any":
        known = OWN | ({"x1", "x2"} if function == "branin" else {f"x{i}" for i in range(1, 7)})
        unknown = sorted(set(args) - known)
        if unknown:
            usage(f"unknown argument --{unknown[0]} for --function={function}")


def write_metrics(args: dict[str, str], metrics: dict[str, object]) -> None:
    folder = Path(args.get("outputs") or os.environ.get("LAUNCH_OUTPUTS") or "/outputs")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(metrics, sort_keys=True) + "\n")
    except OSError:
        pass  # a run outside a container may have no /outputs: stdout has the metrics


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    function = args.get("function", "branin")
    check(function, args)
    metric = args.get("metric", "value")
    steps_default = number(args, "epochs", 20) if function == "any" else 20
    steps = int(number(args, "steps", steps_default))
    sleep, noise = number(args, "sleep", 0.0), number(args, "noise", 0.1)
    if steps < 1 or sleep < 0 or noise < 0:
        usage("--steps must be >= 1, --sleep and --noise >= 0")
    value = evaluate(function, args)
    seed = os.environ.get("LAUNCH_SEED", "0")
    rng = random.Random(f"{seed}:{json.dumps(args, sort_keys=True)}")
    for k in range(1, steps + 1):
        if sleep:
            time.sleep(sleep)
        left = (1 - k / steps) ** 2
        curve = value + SCALE[function] * left * (1 + noise * rng.gauss(0, 1))
        print(json.dumps({"step": k, metric: curve}), flush=True)
    metrics: dict[str, object] = {metric: value, "function": function}
    write_metrics(args, metrics)
    print(json.dumps({"metrics": metrics}, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
