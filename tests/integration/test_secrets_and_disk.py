"""What a trial can do to the disks: a ${envvar:...} secret it prints reaches no file of
the run; its stdout and its files are capped on the engine's side."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.engines import ScratchEngine
from tests.support import ROOT, write_sweep

pytestmark = [pytest.mark.docker, pytest.mark.engines]

# The job prints the secret everywhere it can: plain stdout, stderr, a history line, its
# metrics, files in /outputs (plain and JSON), and then fails with it in its last words.
LEAKY_JOB = r"""
import json, os, sys
token = os.environ["API_TOKEN"]
print("plain stdout", token, sys.argv[1:])
print(json.dumps({"epoch": 1, "token": token}))
print(json.dumps({"metrics": {"token": token, "argv": sys.argv[1:], "ok": 1}}))
os.makedirs("/outputs/deep", exist_ok=True)
open("/outputs/token.txt", "w").write(token * 3)
json.dump({"t": token}, open("/outputs/deep/t.json", "w"), ensure_ascii=True)
print("error: failing with", token, file=sys.stderr)
sys.exit(int(sys.argv[-1].split("=")[1]))
"""


def launch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "launcher", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=600,
                          env={**os.environ, "CI": "", **(env or {})})


def test_a_printed_secret_reaches_no_file_of_the_run(tmp_path: Path,
                                                     engines: list[ScratchEngine]) -> None:
    token = "tok-" + secrets.token_hex(12) + "-é"
    path = write_sweep(tmp_path, {
        "command": ["python3", "-c", LEAKY_JOB, "--key=${envvar:API_TOKEN}", "${args}"],
        "env": {"API_TOKEN": "${envvar:API_TOKEN}"},
        "parameters": {"exit": {"values": [0, 3]}}}, name="leaky")
    out = launch(str(path), "--host", engines[0].host(), env={"API_TOKEN": token})
    assert out.returncode == 1, out.stderr  # one trial fails on purpose
    run_dir = next((tmp_path / "results" / "leaky").iterdir())
    report = launch("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    csv = launch("results", str(run_dir), "--format", "csv")
    df = pd.read_csv(run_dir / "results.csv")
    assert set(df["status"]) == {"succeeded", "failed"}
    assert (df["metric.token"] == "***").all() and "***" in df.loc[df["status"] == "failed",
                                                                   "reason"].iloc[0]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"trials.jsonl", "results.csv", "results.parquet", "report.html", "manifest.json",
            "token.txt", "t.json"} <= names
    assert any(p.parent.name == "logs" for p in files)
    assert any(p.parent.name == "history" for p in files)
    needles = [token.encode(), token.encode("unicode_escape"),
               token.replace("é", "\\u00e9").encode()]
    leaked = [str(p) for p in files for n in needles if n in p.read_bytes()]
    assert not leaked, f"the secret is in {leaked}"
    for shown in (out.stdout, out.stderr, csv.stdout, report.stdout):
        assert token not in shown
    masked = (run_dir / "outputs" / df["trial_id"].iloc[0] / "token.txt").read_text()
    assert masked == "***" * 3


def _peak_usage(folder: Path, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        used = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True)
        if used.returncode == 0 and used.stdout:
            peak[0] = max(peak[0], int(used.stdout.split()[0]))
        time.sleep(0.2)


def test_stdout_and_files_are_capped_on_the_engine(tmp_path: Path,
                                                   engines: list[ScratchEngine]) -> None:
    engine = engines[1]
    data_root = Path(f"/var/lib/launcher-{engine.name}")
    write = "import sys; f=open('/outputs/big','wb'); [f.write(b'x'*2**20) for _ in range(400)]"
    path = write_sweep(tmp_path, {
        "command": ["python3", "/app/experiments/probe.py", "${args}"],
        "parameters": {"probe-print-mb": {"value": 300}}, "log_limit": "1m"}, name="chatty")
    big_file = write_sweep(tmp_path, {"command": ["python3", "-c", write],
                                      "parameters": {"x": {"value": 1}},
                                      "outputs_limit": "16m"}, name="bigfile")
    for sweep, folder in ((path, "containers"), (big_file, "volumes")):
        stop, peak = threading.Event(), [0]
        watcher = threading.Thread(target=_peak_usage, args=(data_root / folder, stop, peak))
        watcher.start()
        try:
            out = launch(str(sweep), "--quiet", "--json", "--host", engine.host())
        finally:
            stop.set()
            watcher.join()
        print(f"\n{sweep.stem}: at most {peak[0] / 2**20:.1f} MiB in the engine's {folder}")
        run_dir = next((tmp_path / "results" / sweep.stem).iterdir())
        df = pd.read_csv(run_dir / "results.csv")
        if sweep == path:
            assert out.returncode == 0, out.stderr
            log = next((run_dir / "logs").iterdir()).read_text()
            assert log.startswith("probe log line") and '{"metrics"' in log
            assert "[...]" in log and len(log) < 1.1 * 2**20
            assert peak[0] < 8 * 2**20, "300 MB of stdout cost at most a few MB there"
        else:
            assert df["status"].iloc[0] == "failed"  # its job could not write the file
            log = next((run_dir / "logs").iterdir()).read_text()
            assert "OSError: [Errno 27] File too large" in log
            assert peak[0] < 40 * 2**20, "a 400 MB file stopped at outputs_limit (16m)"
