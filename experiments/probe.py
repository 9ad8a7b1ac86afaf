"""Report what a container sees, for the launcher's tests. Standard library only.

Ships in the image beside train.py; tests run it with
``command: [python3, /app/experiments/probe.py, ...]`` to check how the launcher passes
argv and environment, and how it sandboxes, limits and collects a trial.

Inputs
    argv    every item is echoed verbatim in ``argv``; only items that start with
            ``--probe-`` are parsed, and only in the ``--probe-NAME=VALUE`` form:
              --probe-exit=N       exit with code N after writing the report (default 0)
              --probe-sleep=S      sleep S seconds first
              --probe-alloc-mb=M   allocate and touch M MiB (to provoke an OOM kill)
              --probe-print-mb=M   print about M MiB of log lines to stdout
              --probe-outputs=DIR  output directory (else env LAUNCH_OUTPUTS, else /outputs)
    env     LAUNCH_TRIAL_ID, LAUNCH_SEED, LAUNCH_PARAMS: echoed as strings (null if unset)

Outputs
    <outputs>/probe.json and a final stdout line ``{"metrics": {...}}`` with the same dict:
      argv, env (the three LAUNCH_* values), uid, gid, groups, docker_sock_exists,
      cap_eff (hex string from /proc/self/status), cap_eff_zero, no_new_privs (int),
      root_write_fails, tmp_writable, outputs_writable, outputs, probe (parsed options)
    JSON is written ASCII-only, so any argv (newlines, non-ASCII, undecodable bytes) survives.
    Exit code: --probe-exit (0 by default); 2 with one stderr line for a bad --probe- option.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

PROG = "probe.py"
PREFIX = "--probe-"
MIB = 1 << 20
OPTIONS: dict[str, type[int] | type[float] | type[str]] = {
    "exit": int,
    "sleep": float,
    "alloc-mb": int,
    "print-mb": int,
    "outputs": str,
}
ENV_KEYS = ("LAUNCH_TRIAL_ID", "LAUNCH_SEED", "LAUNCH_PARAMS")


def usage_error(message: str) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def parse_options(argv: list[str]) -> dict[str, int | float | str]:
    """The ``--probe-NAME=VALUE`` items of argv; everything else is left alone."""
    options: dict[str, int | float | str] = {}
    for item in argv:
        if not item.startswith(PREFIX):
            continue
        name, sep, raw = item[len(PREFIX) :].partition("=")
        if name not in OPTIONS or not sep:
            usage_error(f"bad option {item[:80]!r}; known: --probe-{{{','.join(OPTIONS)}}}=VALUE")
        try:
            options[name] = OPTIONS[name](raw)
        except ValueError:
            usage_error(f"bad value for --probe-{name}: {raw[:80]!r}")
    return options


def proc_status() -> dict[str, str]:
    """Fields of /proc/self/status, or {} where there is no /proc."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return {}
    fields = (line.partition(":") for line in text.splitlines())
    return {key: value.strip() for key, _, value in fields}


def dir_writable(path: Path) -> bool:
    try:
        fd, name = tempfile.mkstemp(dir=path, prefix=".probe-")
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def root_write_fails() -> bool:
    """True when creating a file at / is refused (read-only root file system or no rights)."""
    target = Path("/probe-write-test")
    try:
        target.write_text("probe\n")
    except OSError:
        return True
    target.unlink()
    return False


def allocate(mib: int) -> list[bytes]:
    """M MiB of non-zero bytes: every page is really touched, so memory limits bite."""
    return [bytes([1]) * MIB for _ in range(mib)]


def print_lines(mib: int) -> None:
    line = "probe log line " + "x" * 84 + "\n"  # 100 bytes
    chunk = line * (MIB // len(line))
    for _ in range(mib):
        sys.stdout.write(chunk)
    sys.stdout.flush()


def report(
    argv: list[str], options: dict[str, int | float | str], outputs: Path
) -> dict[str, object]:
    status = proc_status()
    cap_eff = status.get("CapEff")
    no_new_privs = status.get("NoNewPrivs")
    return {
        "argv": argv,
        "env": {key: os.environ.get(key) for key in ENV_KEYS},
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "docker_sock_exists": os.path.exists("/var/run/docker.sock"),
        "cap_eff": cap_eff,
        "cap_eff_zero": None if cap_eff is None else int(cap_eff, 16) == 0,
        "no_new_privs": None if no_new_privs is None else int(no_new_privs),
        "root_write_fails": root_write_fails(),
        "tmp_writable": dir_writable(Path(tempfile.gettempdir())),
        "outputs_writable": dir_writable(outputs),
        "outputs": str(outputs),
        "probe": options,
    }


def main() -> int:
    argv = sys.argv[1:]
    options = parse_options(argv)
    outputs = Path(str(options.get("outputs") or os.environ.get("LAUNCH_OUTPUTS") or "/outputs"))
    time.sleep(max(0.0, float(options.get("sleep", 0.0))))
    held = allocate(int(options.get("alloc-mb", 0)))
    print_lines(int(options.get("print-mb", 0)))
    try:
        outputs.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"{PROG}: cannot create {outputs}: {e.strerror or e}", file=sys.stderr)
    metrics = report(argv, options, outputs)
    try:
        (outputs / "probe.json").write_text(json.dumps(metrics, sort_keys=True) + "\n")
    except OSError as e:
        print(f"{PROG}: cannot write probe.json: {e.strerror or e}", file=sys.stderr)
    print(json.dumps({"metrics": metrics}, sort_keys=True), flush=True)
    del held
    return int(options.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
