"""Reproducibility checks on hand-made tables and run directories (no Docker)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from launcher.errors import UsageError
from launcher.verify import (
    Signature,
    classes,
    differences,
    hash_outputs,
    render_summary,
    values_match,
    verify_runs,
    verify_table,
)
from tests.unit.fake_runs import OTHER_IMAGE, make_run, table, trial_row


def test_exact_comparison_sees_the_last_bit() -> None:
    assert values_match(0.1 + 0.2, 0.1 + 0.2)
    assert not values_match(0.1 + 0.2, 0.3)
    assert values_match(0.1 + 0.2, 0.3, rtol=1e-12)
    assert values_match(51, 51.0) and values_match(np.int64(3), 3)


def test_tolerances_are_relative_to_the_reference_plus_absolute() -> None:
    assert values_match(1.04, 1.0, rtol=0.05)
    assert not values_match(1.06, 1.0, rtol=0.05)
    assert values_match(0.001, 0.0, atol=1e-3)
    assert not values_match(0.0011, 0.0, atol=1e-3)


def test_nan_only_equals_nan_and_strings_compare_exactly() -> None:
    assert values_match(math.nan, math.nan) and not values_match(math.nan, 1.0)
    assert not values_match("abc", "abd", rtol=1.0)
    assert not values_match(True, False)


def test_differences_name_metrics_and_files() -> None:
    ref = ({"acc": 0.9, "sha": "x"}, {"model.npy": "h1", "extra.txt": "e"})
    other = ({"acc": 0.8, "sha": "x", "new": 1}, {"model.npy": "h2"})
    found = differences(other, ref)
    assert "acc 0.8 vs 0.9" in found
    assert "file model.npy" in found
    assert "file extra.txt only in reference" in found
    assert "metric new only in this" in found
    assert not any("sha" in d for d in found)


def test_classes_keep_equal_results_together() -> None:
    a: Signature = ({"acc": 1.0}, {})
    b: Signature = ({"acc": 2.0}, {})
    assert classes([a, b, a, a, b]) == [[0, 2, 3], [1, 4]]


def test_matching_group_reproduces_with_verdict_and_matrix() -> None:
    df = table(*(trial_row(f"t{i}", host=h, acc=0.9) for i, h in
                 enumerate(["h1", "h2", "h3", "h1", "h2", "h3"])))
    v = verify_table(df)
    assert v.ok and v.exit_code == 0
    assert (v.compared, v.matching, v.hosts) == (6, 6, ["h1", "h2", "h3"])
    assert v.verdict.startswith("6/6 trials on 3 hosts reproduce: identical metrics and "
                                "outputs, image sha256:abababababab")
    assert v.matrix().loc["h1", 0] == "2/2"


def test_the_odd_trial_out_is_the_one_that_differs() -> None:
    df = table(trial_row("a", host="h1", acc=0.9), trial_row("b", host="h2", acc=0.8),
               trial_row("c", host="h3", acc=0.9))
    v = verify_table(df)
    assert v.exit_code == 1 and list(v.differing["trial_id"]) == ["b"]
    assert "acc 0.8 vs 0.9" in v.differing.iloc[0]["differences"]
    assert v.matrix().loc["h2", 0] == "0/1" and v.matrix().loc["h1", 0] == "1/1"
    assert v.verdict.startswith("1/3 trials do not reproduce (metrics differ in 1)")
    assert "differs: r1/b host h2 seed 0 vs r1/a" in render_summary(v)


def test_output_hash_difference_fails_even_with_equal_metrics() -> None:
    df = table(trial_row("a", acc=0.9, files={"model.npy": "1"}),
               trial_row("b", acc=0.9, files={"model.npy": "2"}))
    v = verify_table(df)
    assert v.exit_code == 1 and "outputs differ in 1" in v.verdict


def test_tolerance_accepts_small_float_noise() -> None:
    df = table(trial_row("a", acc=0.9), trial_row("b", acc=0.9 + 1e-12))
    assert verify_table(df).exit_code == 1
    v = verify_table(df, rtol=1e-9)
    assert v.ok and "metrics within rtol=1e-09 atol=0" in v.verdict


def test_a_different_image_is_named_even_when_results_agree() -> None:
    df = table(trial_row("a", acc=1.0), trial_row("b", acc=1.0),
               trial_row("c", acc=1.0, image=OTHER_IMAGE))
    v = verify_table(df)
    assert v.exit_code == 1 and list(v.differing["trial_id"]) == ["c"]
    assert "image sha256:cdcdcdcdcdcd" in v.differing.iloc[0]["differences"]
    assert any("2 different images" in n for n in v.notes())


def test_failed_trials_are_left_out_and_counted() -> None:
    df = table(trial_row("a", acc=1.0), trial_row("b", acc=1.0),
               trial_row("c", status="failed"), trial_row("d", status="not_started"))
    v = verify_table(df)
    assert v.ok and v.compared == 2
    assert v.left_out == {"failed": 1, "not_started": 1}
    assert "left out 2 trials that did not succeed (failed 1, not_started 1)" in v.notes()


def test_nothing_to_compare_exits_2_and_says_how() -> None:
    df = table(trial_row("a", seed=0, acc=1.0), trial_row("b", seed=1, acc=0.5))
    v = verify_table(df)
    assert v.exit_code == 2 and not v.ok
    assert "seed_mode: fixed" in v.verdict and "launch verify RUN_A RUN_B" in v.verdict
    assert v.matrix().loc["local", 0] == "-"


def test_groups_are_config_and_seed() -> None:
    df = table(trial_row("a", config="c1", seed=0, acc=1.0),
               trial_row("b", config="c2", seed=0, acc=0.5),
               trial_row("c", config="c1", seed=0, acc=1.0))
    v = verify_table(df)
    assert v.ok and v.compared == 2
    assert any("1 trials have no partner" in n for n in v.notes())


def test_hash_outputs_ignores_names_and_patterns(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.npy").write_bytes(b"w")
    (tmp_path / "sub" / "log.txt").write_bytes(b"t")
    (tmp_path / "metrics.json").write_bytes(b"{}")
    assert set(hash_outputs(tmp_path)) == {"model.npy", "sub/log.txt", "metrics.json"}
    assert set(hash_outputs(tmp_path, ["metrics.json", "*.txt"])) == {"model.npy"}
    assert hash_outputs(tmp_path / "missing") == {}


def _trial(tid: str, seed: int, acc: float, weights: bytes, host: str = "local") -> dict[str, Any]:
    return {"trial_id": tid, "config_id": "cfg", "seed": seed, "host": host,
            "params": {"lr": 0.1}, "metrics": {"acc": acc},
            "files": {"model.npy": weights, "metrics.json": f'{{"acc": {acc}}}'.encode()}}


def test_verify_runs_across_two_run_directories(tmp_path: Path) -> None:
    make_run(tmp_path, "20260102-120000-aaaa", [_trial("t1", 0, 0.9, b"w")])
    make_run(tmp_path, "20260102-130000-bbbb", [_trial("t1", 0, 0.9, b"w", host="h2")])
    v = verify_runs(["20260102-12", "20260102-13"], tmp_path)
    assert v.ok and "2/2 trials on 2 hosts reproduce across 2 runs" in v.verdict


def test_verify_runs_catches_changed_weights_and_ignore_hides_them(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa",
                   [_trial("t1", 0, 0.9, b"w1"), _trial("t2", 0, 0.9, b"w2")])
    assert verify_runs([run]).exit_code == 1
    v = verify_runs([run], ignore=["model.npy"])
    assert v.ok and "(without model.npy)" in v.verdict


def test_tolerance_compares_metrics_json_through_the_metrics(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa",
                   [_trial("t1", 0, 0.9, b"w"), _trial("t2", 0, 0.9 + 1e-13, b"w")])
    assert verify_runs([run]).exit_code == 1
    v = verify_runs([run], rtol=1e-9)
    assert v.ok and "metrics.json" in v.ignored


def test_the_same_run_twice_is_a_usage_error(tmp_path: Path) -> None:
    run = make_run(tmp_path, "20260102-120000-aaaa", [_trial("t1", 0, 0.9, b"w")])
    with pytest.raises(UsageError):
        verify_runs([run, str(run)])
    with pytest.raises(UsageError):
        verify_runs([run], rtol=-1)
