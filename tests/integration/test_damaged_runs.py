"""Damaged run directories and a full disk: one line that names the file and says what
to do, never a traceback; and nothing lost once the problem is fixed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.engines import ScratchEngine
from tests.integration.faults import nothing_left, succeeded_once_each, the_run
from tests.support import launch, probe_sweep

pytestmark = [pytest.mark.docker, pytest.mark.engines]


def one_line(out: subprocess.CompletedProcess[str], code: int, *says: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == code and len(lines) == 1, out.stderr
    assert "internal error" not in lines[0] and "Traceback" not in out.stderr
    for text in says:
        assert text in lines[0], lines[0]
    return lines[0]


def test_each_damaged_file_is_one_line_naming_it(tmp_path: Path,
                                                 engines: list[ScratchEngine]) -> None:
    path = probe_sweep(tmp_path, {"x": {"values": [1, 2]}}, name="damaged")
    assert launch(str(path), "--quiet", "--host", engines[0].host()).returncode == 0
    good = the_run(tmp_path / "results", "damaged")
    cases = {  # file -> (bytes written, what the message says)
        "manifest.json": (b"{not json", "manifest.json is damaged"),
        "plan.json": (b'{"trials": 3}', "plan.json is damaged"),
        "sweep.yaml": (b"\xff\xfe\x00", "sweep.yaml is damaged"),
    }
    for name, (data, says) in cases.items():
        run = tmp_path / f"copy-{name}" / good.path.name
        shutil.copytree(good.path, run)
        (run / name).write_bytes(data)
        one_line(launch("resume", str(run)), 1, str(run / name), says, "restore it")
        for command in ("results", "status"):  # they work, or say the same in one line
            out = launch(command, str(run))
            if out.returncode != 0:
                one_line(out, 1, str(run / name), says, "restore it")
    missing = tmp_path / "copy-missing" / good.path.name
    shutil.copytree(good.path, missing)
    (missing / "manifest.json").unlink()
    one_line(launch("results", str(missing)), 1, "manifest.json is missing", "restore it")
    with open(good.path / "trials.jsonl", "a") as f:
        f.write('{"trial_id": "000000000000", "status": "exploded"}\n')
    assert launch("results", str(good.path)).returncode == 0


def test_a_full_disk_stops_the_run_with_one_line_and_resume_finishes_it(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(small)],
                   check=True)
    try:
        path = probe_sweep(tmp_path, {"probe-print-mb": {"value": 1}}, name="full",
                           replicas=3, max_parallel=1, results=str(small))
        out = launch(str(path), "--quiet", "--host", engines[0].host())
        line = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 1 and "No space left on device" in line, out.stderr
        assert "free some space there, then `launch resume` the run" in line
        assert "internal error" not in out.stderr and "Traceback" not in out.stderr
        run = the_run(small, "full")
        nothing_left(run.run_id, engines[0])
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        resumed = launch("resume", str(run.path), "--quiet")
        assert resumed.returncode == 0, resumed.stderr
        succeeded_once_each(run)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
