"""The pieces that keep many hosts and many trials cheap, without Docker: the progress
display's bounded rows, the results table cache, the open-files check, the bounded
per-host pool and verify's one-pass grouping."""

from __future__ import annotations

import io
import json
import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from launcher.errors import ResourceError
from launcher.limits import check_open_files, files_needed
from launcher.parallel import each
from launcher.progress import MAX_HOST_ROWS, Progress
from launcher.results import build_table, load_table, write_tables
from launcher.store import RunDir
from launcher.trial import TrialResult, TrialStatus
from launcher.verify import classes, exact_classes
from tests.unit.fake_runs import make_run


def result(host: str, status: TrialStatus = TrialStatus.SUCCEEDED) -> TrialResult:
    return TrialResult("abcdef123456", status, host=host)


def test_progress_shows_at_most_20_hosts_and_sums_up_the_rest() -> None:
    hosts = [f"h{i}" for i in range(1000)]
    view = Progress(3000, hosts, mode="quiet")
    for i in range(1000):
        view.started(None, hosts[i])  # type: ignore[arg-type]
    for i in range(0, 1000, 2):
        view.finished_trial(result(hosts[i]))
    view.finished_trial(result("h999", TrialStatus.FAILED))
    rows = view.host_rows()
    assert len(rows) == MAX_HOST_ROWS
    assert rows[-1][0] == f"... {1000 - MAX_HOST_ROWS + 1} more hosts"
    assert ("h999", "0", "0", "1") in rows, "a failing host is shown"
    shown = rows[:-1]
    assert sum(int(r[1]) for r in rows) == 499  # running: every host's count, once
    assert sum(int(r[2]) for r in rows) == 500 and sum(int(r[3]) for r in rows) == 1
    assert [r[0] for r in shown] == sorted((r[0] for r in shown), key=hosts.index)


def test_progress_costs_the_same_per_result_whatever_the_hosts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    renders: list[int] = []

    def render(self: Progress) -> str:
        renders.append(1)
        return ""

    monkeypatch.setattr(Progress, "_render", render)
    view = Progress(5000, [f"h{i}" for i in range(1000)], mode="quiet")
    view.mode = "rich"  # results must not draw: rich redraws on its own clock
    started = time.perf_counter()
    for i in range(5000):
        view.finished_trial(result(f"h{i % 1000}"))
    assert not renders
    assert time.perf_counter() - started < 1.0


def test_table_cache_is_used_only_while_no_record_was_added(tmp_path: Path) -> None:
    trials = [{"trial_id": f"{i:012x}", "config_id": "c1", "params": {"x": i}, "seed": i,
               "metrics": {"loss": i / 10}} for i in range(6)]
    run = RunDir(make_run(tmp_path, "20260101-000000-aaaa", trials))
    written = write_tables(run)
    cached = load_table(run)
    assert cached.equals(written) and list(cached.dtypes) == list(written.dtypes)
    (run.path / "results.csv").write_text("not read")
    with open(run.path / "trials.jsonl", "a") as f:  # a late record: the cache is stale
        f.write(json.dumps({"trial_id": f"{0:012x}", "status": "failed"}) + "\n")
    assert len(load_table(run)) == 6 and load_table(run).equals(build_table(run))


def test_table_cache_is_not_used_when_parquet_cannot_hold_the_table(tmp_path: Path) -> None:
    trials = [{"trial_id": f"{i:012x}", "config_id": "c1", "params": {}, "seed": 0,
               "metrics": {"tag": 1 if i else "one"}} for i in range(2)]
    run = RunDir(make_run(tmp_path, "20260101-000000-bbbb", trials))
    write_tables(run)
    assert list(load_table(run)["metric.tag"]) == ["one", 1], "built again, types kept"


def test_open_files_need_grows_with_slots_and_is_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert files_needed([2] * 50) < files_needed([4] * 50)
    assert files_needed([2], concurrent_trials=2, outputs=True) == \
        files_needed([2]) + 2
    assert files_needed([2], live_lines=True) == files_needed([2]) + 2  # a stream per slot
    monkeypatch.setattr("launcher.limits.raise_open_files_limit", lambda: 256)
    check_open_files(200, "a small run")
    with pytest.raises(ResourceError) as info:
        check_open_files(316, "a run over 50 hosts with 200 slots")
    text = str(info.value)
    assert "\n" not in text and "316" in text and "256" in text and "ulimit -n" in text
    assert info.value.exit_code == 1


def test_per_host_work_is_bounded_and_keeps_order_and_errors() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        if i == 7:
            raise ValueError("host 7")
        return i * 2

    out = each(work, range(100), workers=8)
    assert [o for o in out if not isinstance(o, BaseException)] == \
        [i * 2 for i in range(100) if i != 7]
    assert isinstance(out[7], ValueError) and peak[0] <= 8


@pytest.mark.parametrize("sigs", [
    [({"a": 1}, {}), ({"a": 1.0}, {}), ({"a": 2}, {}), ({"a": True}, {})],
    [({"a": math.nan}, {"f": "x"}), ({"a": math.nan}, {"f": "x"}), ({"a": math.nan}, {})],
    [({"a": "s", "b": 1}, {}), ({"b": 1, "a": "s"}, {}), ({"a": "s"}, {})],
    [({"a": [1, 2]}, {}), ({"a": [1, 2]}, {}), ({"a": [2, 1]}, {})],
])
def test_one_pass_classes_equal_the_pairwise_ones_without_tolerance(
        sigs: list[Any]) -> None:
    assert exact_classes(sigs) == classes(sigs)


def test_plain_progress_still_prints_one_line_per_result() -> None:
    out = io.StringIO()
    view = Progress(2, ["a", "b"], mode="plain", stream=out)
    view.finished_trial(result("a"))
    view.finished_trial(result("b", TrialStatus.FAILED))
    assert out.getvalue().count("\n") == 2


def test_one_pass_judging_equals_the_group_by_group_one() -> None:
    import random

    import pandas as pd

    from launcher.judging import COLUMNS, _judge_exact, _judge_pairwise

    rng = random.Random(16)
    values = [0.5, 0.25, 1, 1.0, math.nan, None, "x"]
    for _ in range(60):
        rows = []
        for i in range(rng.randrange(1, 40)):
            rows.append({"run_id": rng.choice(["", "r1", "r2"]), "trial_id": f"{i:012x}",
                         "config_id": rng.choice("ab"), "seed": rng.randrange(3),
                         "replica": i, "host": rng.choice(["h1", "h2", ""]),
                         "image_id": rng.choice(["sha256:aa"] * 5 + ["sha256:bb"]),
                         "status": "succeeded", "metric.loss": rng.choice(values),
                         "metric.acc": rng.choice(values[:3]),
                         "files": rng.choice([{}, {"m.npy": "h1"}, {"m.npy": "h2"}])})
        ok = pd.DataFrame(rows)
        fast = _judge_exact(ok, ["metric.loss", "metric.acc"], "sha256:aa")
        slow = pd.DataFrame(_judge_pairwise(ok, ["metric.loss", "metric.acc"], 0.0, 0.0,
                                            "sha256:aa"), columns=COLUMNS)
        for column in COLUMNS:
            assert list(fast[column]) == list(slow[column]), column
