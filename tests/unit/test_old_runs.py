"""Run directories written by earlier launchers still open with every command.

The fixture is a real run directory that launcher 0.1.0 wrote before the run directory
had a versioned schema (tests/fixtures/runs/v1/README.md says how it was made).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "runs" / "v1"


@pytest.fixture
def old_root(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("README.md"))
    return root


def launch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, timeout=120)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_results_of_an_old_run(old_root: Path) -> None:
    out = launch("results", "20261202-125108", "--results", str(old_root), "--format", "csv")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 9
    assert lines[0].startswith("run_id,sweep,trial_id,config_id,replica,seed,param.lr")
    assert sum(",succeeded," in line for line in lines) == 4
    assert sum(",failed," in line for line in lines) == 4


def test_verify_and_report_of_an_old_run(old_root: Path) -> None:
    out = launch("verify", "20261202-125108", "--results", str(old_root))
    # distinct seeds, one run: nothing to compare is exit 2 with a hint, not a traceback
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout
    assert "nothing to compare: no (config_id, seed) has two succeeded trials among 4" \
        in out.stdout
    out = launch("report", "20261202-125108", "--results", str(old_root))
    assert out.returncode == 0, out.stderr
    page = Path(out.stdout.strip()).read_text()
    assert "sweep" in page and page.count("<img") >= 2


def test_status_and_ls_of_an_old_run(old_root: Path) -> None:
    out = launch("status", "20261202-125108", "--results", str(old_root))
    assert out.returncode == 0 and "finished 8/8" in out.stdout, out.stderr
    out = launch("ls", "--results", str(old_root), "--format", "csv")
    assert out.stdout.splitlines()[1].startswith("sweep,20261202-125108-7a71,")


def test_resume_of_an_old_finished_run_does_nothing_and_rewrites_nothing(
        old_root: Path) -> None:
    run = next((old_root / "sweep").iterdir())
    before = digests(run)
    out = launch("resume", "20261202-125108", "--results", str(old_root))
    assert "run sweep/20261202-125108-7a71 has nothing left to run" in out.stderr
    assert "Traceback" not in out.stderr and "error" not in out.stderr
    assert "4 failed, 4 succeeded of 8 trials" in out.stdout
    assert out.returncode == 1  # its four failed trials stay failed without --retry-failed
    assert digests(run) == before
