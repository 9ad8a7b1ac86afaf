"""Live history lines: whole lines out of a stream cut anywhere, history rows only."""

from __future__ import annotations

from typing import Any

from launcher.live import LineSplitter, history_row, last_values, pump


def test_only_history_rows_pass() -> None:
    assert history_row(b'{"step": 3, "loss": 0.5}\r') == {"step": 3, "loss": 0.5}
    assert history_row(b' {"epoch": 1}') == {"epoch": 1}
    for line in (b'{"loss": 1}', b'{"metrics": {"loss": 1}, "step": 9}', b"step 3",
                 b'{"step": 3', b"[1, 2]", b"", b'{"step": NaN_}'):
        assert history_row(line) is None, line


def test_lines_cut_anywhere_come_out_whole() -> None:
    text = b'{"step": 1, "a": 1}\nnoise\n{"step": 2, "a": 2}\n{"step": 3, "a": 3}'
    for cut in range(1, len(text)):
        got: list[dict[str, Any]] = []
        count = pump([text[:cut], text[cut:]], got.extend)
        assert [r["step"] for r in got] == [1, 2, 3] and count == 3, cut


def test_one_call_per_chunk_that_holds_rows() -> None:
    calls: list[int] = []
    pump([b'{"step": 1}\n{"step": 2}\n', b"nothing\n", b'{"step": 3}\n'],
         lambda rows: calls.append(len(rows)))
    assert calls == [2, 1]


def test_an_endless_line_is_dropped_not_kept() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b"x" * (2 << 20)) == []
    assert splitter.feed(b'\n{"step": 1}\n') == [b"", b'{"step": 1}']


def test_a_stopped_trial_keeps_the_last_value_of_every_key() -> None:
    history: list[dict[str, Any]] = [{"step": 1, "loss": 3, "acc": 0.1}, {"step": 2, "loss": 2}]
    assert last_values(history) == {"loss": 2, "acc": 0.1}
