"""The launcher's own CPU time per container, measured in a fresh process.

    python -m benchmarks.cpu_probe WARM.yaml SMALL.yaml LARGE.yaml

Runs ``launcher.api.run_sweep`` three times in this process: WARM first (pays for the
lazy imports of docker, pandas, pyarrow), then SMALL and LARGE, each timed with
``time.process_time`` (every thread of this process) plus the CPU of the child
processes it waited for (``git`` for the manifest). Prints one JSON object. Docker's
own CPU (dockerd, containerd, runc) is not the launcher's and is not counted.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(path: str) -> dict[str, float]:
    from launcher.api import run_sweep

    cpu, children, wall = time.process_time(), _children_cpu(), time.perf_counter()
    results = run_sweep(path, progress="quiet")
    out = {"cpu_s": time.process_time() - cpu, "children_cpu_s": _children_cpu() - children,
           "wall_s": time.perf_counter() - wall}
    df = results.df
    out["trials"] = len(df)
    out["succeeded"] = int((df["status"] == "succeeded").sum())
    return out


def main(argv: list[str]) -> None:
    warm, small, large = argv
    started = time.process_time()
    import launcher.api  # noqa: F401 - the import is part of the cold cost

    cold = measure(warm)
    cold["cpu_s"] = time.process_time() - started  # imports included
    report = {"cold": cold, "small": measure(small), "large": measure(large),
              "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
