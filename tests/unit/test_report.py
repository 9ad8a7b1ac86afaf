"""The HTML report, its plots and the scaling arithmetic on hand-made runs (no Docker)."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest

from launcher.errors import UsageError
from launcher.report import build_report, write_report
from launcher.scale import measure, parse_sizes
from launcher.store import RunDir
from launcher.timeline import concurrency, lanes
from tests.unit.fake_runs import make_run

SVG_MAGIC = b"<?xml"


def _trials(n: int = 8) -> list[dict[str, Any]]:
    """A 2 x 2 grid (lr, hidden), replicas sharing seed 0 but differing in acc."""
    out = []
    for i in range(n):
        lr, hidden, replica = (0.1, 0.3)[i % 2], (8, 32)[(i // 2) % 2], i // 4
        acc = 0.5 + lr + hidden / 100 + replica * 0.01
        out.append({"trial_id": f"t{i:02d}", "config_id": f"c{i % 4}", "replica": replica,
                    "seed": 0, "params": {"lr": lr, "hidden": hidden},
                    "metrics": {"acc": acc}, "host": ("h1", "h2")[i % 2],
                    "started": i * 0.5, "duration": 1.0,
                    "history": [{"epoch": e, "acc": acc * e / 3} for e in (1, 2, 3)]})
    return out


def test_report_is_one_self_contained_file_with_every_section(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa", _trials(),
                   metric={"name": "acc", "goal": "maximize"})
    text = build_report(RunDir(run))
    sources = re.findall(r'src="([^"]*)"', text)
    # params, heatmap, parallel coordinates, spread, curves, gantt, throughput, matrix
    assert len(sources) == 8
    for src in sources:
        assert src.startswith("data:image/svg+xml;base64,")
        data = base64.b64decode(src.split(",", 1)[1])
        assert data.startswith(SVG_MAGIC) and b"http" not in data.replace(
            b"http://www.w3.org", b"")
    assert not re.search(r"(?:href|src)=\"(?!data:)", text)
    for title in ("Best configurations", "acc against each parameter", "Spread over replicas",
                  "Parameters together", "Learning curves", "Containers over time",
                  "Reproducibility", "The sweep"):
        assert title in text
    assert "do not reproduce" in text  # replicas share a seed but differ in acc


def test_report_without_metric_or_history_still_renders(tmp_path: Path) -> None:
    trials = [{"trial_id": "t1", "config_id": "c1", "params": {"lr": 0.1},
               "metrics": {"acc": 1.0}}]
    run = make_run(tmp_path, "20260102-120000-aaaa", trials)
    path = write_report(run, output=tmp_path / "r.html")
    text = path.read_text()
    assert "the sweep names no metric" in text and "no trial wrote a history" in text
    assert "nothing to compare" in text
    assert text.count('class="empty"') >= 5  # empty sections are one line each
    assert 'class="verdict' not in text  # no box when nothing could be compared


def test_lanes_never_overlap_and_reuse_free_slots() -> None:
    spans = [(0.0, 2.0, "h", "s"), (0.5, 1.0, "h", "s"), (1.0, 3.0, "h", "s"),
             (2.0, 4.0, "h", "s")]
    assert lanes(spans) == [0, 1, 1, 0]


def test_concurrency_counts_running_containers() -> None:
    spans = [(0.0, 2.0, "h", "s"), (1.0, 3.0, "h", "s"), (2.0, 4.0, "h", "s")]
    times, running = concurrency(spans)
    assert times == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert running == [1, 2, 2, 1, 0]


def test_parse_sizes() -> None:
    assert parse_sizes("100, 1,10") == [1, 10, 100]
    for bad in ("", "0,1", "a", "1,1"):
        with pytest.raises(UsageError):
            parse_sizes(bad)


def test_measure_against_the_ideal(tmp_path: Path) -> None:
    one = make_run(tmp_path, "20260102-120000-aaaa", _trials(1), slots=2, hosts=("h",))
    four = [{**t, "started": (i // 2) * 1.0, "duration": 1.0} for i, t in
            enumerate(_trials(4))]
    many = make_run(tmp_path, "20260102-130000-bbbb", four, slots=2, hosts=("h",))
    df = measure([(4, many), (1, one)]).set_index("N")
    assert list(df.index) == [1, 4]
    assert df.loc[4, "wall_s"] == pytest.approx(2.0) and df.loc[4, "slots"] == 2
    assert df.loc[4, "ideal_s"] == pytest.approx(2.0)  # 4 x 1 s of containers on 2 slots
    assert df.loc[4, "containers_per_s"] == pytest.approx(2.0)
    assert df.loc[4, "efficiency"] == pytest.approx(1.0)


def test_the_ideal_comes_from_each_sizes_own_container_times(tmp_path: Path) -> None:
    # N=1 took 3 s (a cold start); at N=4 each container took 1 s but the launcher left
    # gaps: the ideal is 4 x 1 s / 2 slots = 2 s, so efficiency is below 1, never above
    slow_one = [{**_trials(1)[0], "duration": 3.0}]
    one = make_run(tmp_path, "20260102-120000-aaaa", slow_one, slots=2, hosts=("h",))
    gappy = [{**t, "started": (i // 2) * 1.5, "duration": 1.0} for i, t in
             enumerate(_trials(4))]
    four = make_run(tmp_path, "20260102-130000-bbbb", gappy, slots=2, hosts=("h",))
    df = measure([(1, one), (4, four)]).set_index("N")
    assert df.loc[1, "ideal_s"] == pytest.approx(3.0) and df.loc[1, "efficiency"] == 1.0
    assert df.loc[4, "ideal_s"] == pytest.approx(2.0)
    assert df.loc[4, "efficiency"] == pytest.approx(2.0 / 2.5)
    assert (df["efficiency"] <= 1.0).all()


def test_status_and_scale_agree_on_slots(tmp_path: Path) -> None:
    from launcher.listing import run_status

    # max_parallel 100 on one 8-slot host: 8 containers at once, whoever asks
    path = make_run(tmp_path, "20260102-120000-aaaa", _trials(4), slots=8, hosts=("h",),
                    max_parallel=100)
    assert run_status(path).slots == 8
    assert measure([(4, path)]).loc[0, "slots"] == 8
