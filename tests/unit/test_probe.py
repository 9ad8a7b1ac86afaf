"""experiments/probe.py echoes argv and environment verbatim and reports what the process may do.

The integration tests trust these reports to judge the launcher's sandboxing, so here the
probe itself is checked on the host, without Docker.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROBE = Path(__file__).resolve().parents[2] / "experiments" / "probe.py"


def run_probe(
    *args: str, env: dict[str, str] | None = None, limit_as: int | None = None
) -> subprocess.CompletedProcess[str]:
    def set_limit() -> None:  # runs in the child, before exec
        if limit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    base = {k: v for k, v in os.environ.items() if not k.startswith("LAUNCH_")}
    return subprocess.run(
        [sys.executable, str(PROBE), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
        preexec_fn=set_limit if limit_as is not None else None,
    )


def final_metrics(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    last = json.loads(proc.stdout.splitlines()[-1])
    assert set(last) == {"metrics"}
    return last["metrics"]  # type: ignore[no-any-return]


def own_status(key: str) -> str | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(f"{key}:")), None)


def test_hostile_argv_is_echoed_verbatim_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    hostile = [
        f"$(touch {marker})",
        f"`touch {marker}`",
        "; rm -rf /",
        "a\nb",
        "héllo wörld ✓ 日本語 🚀",
        "--exit=5",
        "--probe",
        "",
        "'\"\\ *?[]{}|&<>",
        "".join(chr(32 + i % 95) for i in range(64 * 1024)),
    ]
    proc = run_probe(*hostile, f"--probe-outputs={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr
    metrics = final_metrics(proc)
    assert metrics["argv"] == [*hostile, f"--probe-outputs={tmp_path / 'out'}"]
    assert json.loads((tmp_path / "out" / "probe.json").read_text()) == metrics
    assert not marker.exists()


def test_launch_env_is_echoed_and_launch_outputs_is_used(tmp_path: Path) -> None:
    env = {
        "LAUNCH_TRIAL_ID": "t-0007",
        "LAUNCH_SEED": "7",
        "LAUNCH_PARAMS": json.dumps({"lr": 0.1, "name": "x y"}),
        "LAUNCH_OUTPUTS": str(tmp_path / "outs"),
    }
    metrics = final_metrics(run_probe(env=env))
    assert metrics["env"] == {
        k: env[k] for k in ("LAUNCH_TRIAL_ID", "LAUNCH_SEED", "LAUNCH_PARAMS")
    }
    assert metrics["outputs"] == str(tmp_path / "outs")
    assert (tmp_path / "outs" / "probe.json").exists()


def test_report_matches_this_process_rights(tmp_path: Path) -> None:
    metrics = final_metrics(run_probe(f"--probe-outputs={tmp_path}"))
    assert (metrics["uid"], metrics["gid"]) == (os.getuid(), os.getgid())
    assert metrics["docker_sock_exists"] == os.path.exists("/var/run/docker.sock")
    assert metrics["cap_eff"] == own_status("CapEff")
    no_new_privs = own_status("NoNewPrivs")
    assert metrics["no_new_privs"] == (None if no_new_privs is None else int(no_new_privs))
    assert metrics["root_write_fails"] == (not os.access("/", os.W_OK))
    assert not Path("/probe-write-test").exists()
    assert metrics["tmp_writable"] is True and metrics["outputs_writable"] is True


def test_unwritable_outputs_are_reported_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_probe(f"--probe-outputs={blocker / 'sub'}")
    assert proc.returncode == 0
    assert final_metrics(proc)["outputs_writable"] is False


def test_probe_exit_code_is_returned_after_writing(tmp_path: Path) -> None:
    proc = run_probe("--probe-exit=3", f"--probe-outputs={tmp_path}")
    assert proc.returncode == 3
    assert final_metrics(proc)["probe"]["exit"] == 3
    assert (tmp_path / "probe.json").exists()


@pytest.mark.parametrize("bad", ["--probe-exit=x", "--probe-nope=1", "--probe-sleep"])
def test_bad_probe_option_exits_2_with_one_line(bad: str) -> None:
    proc = run_probe(bad)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_print_mb_prints_that_much_before_the_metrics_line(tmp_path: Path) -> None:
    proc = run_probe("--probe-print-mb=2", f"--probe-outputs={tmp_path}")
    assert proc.returncode == 0
    *logs, _ = proc.stdout.splitlines()
    assert sum(len(line) + 1 for line in logs) >= 2 * 1024 * 1024 * 0.99
    assert final_metrics(proc)["probe"]["print-mb"] == 2


def test_alloc_mb_really_takes_memory(tmp_path: Path) -> None:
    limit = 200 * 1024 * 1024  # address-space limit: a stand-in for a container memory limit
    small = run_probe("--probe-alloc-mb=20", f"--probe-outputs={tmp_path}", limit_as=limit)
    assert small.returncode == 0, small.stderr
    big = run_probe("--probe-alloc-mb=300", f"--probe-outputs={tmp_path}", limit_as=limit)
    assert big.returncode != 0
    assert "MemoryError" in big.stderr


def test_sleep_is_parsed_as_seconds(tmp_path: Path) -> None:
    metrics = final_metrics(run_probe("--probe-sleep=0.05", f"--probe-outputs={tmp_path}"))
    assert metrics["probe"]["sleep"] == 0.05
