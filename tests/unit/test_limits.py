"""Hostile sweep files and damaged run directories: linear-time validation with limits,
each refusal one line (file:line for sweep files, the file and what to do for runs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from launcher.errors import RunError, SweepError
from launcher.plan import expand
from launcher.spec import load_sweep
from launcher.store import Manifest, RunDir, find_run
from launcher.store.files import append_line, atomic_write
from launcher.yamlfile import MAX_DEPTH


def refused(path: Path) -> str:
    with pytest.raises(SweepError) as info:
        expand(load_sweep(path))
    assert info.value.exit_code == 2
    text = str(info.value)
    assert "\n" not in text
    return text


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_half_a_million_values_are_refused_in_linear_time(tmp_path: Path) -> None:
    values = ", ".join(str(i) for i in range(500_000))  # about 3.4 MB, under the size limit
    path = write(tmp_path, f"name: s\nparameters:\n  x: {{values: [{values}]}}\n")
    started = time.monotonic()
    text = refused(path)
    assert time.monotonic() - started < 30
    assert text.startswith(f"{path}:3: ") and "more than 100,000 items in one list" in text


def test_duplicate_values_are_found_in_one_pass(tmp_path: Path) -> None:
    # As in W&B, a repeated value is no error: the grid runs it once (issue 11's rule);
    # what matters here is that finding it is linear (it took 212 s before).
    values = ", ".join(str(i) for i in range(80_000))
    path = write(tmp_path, f"name: s\nparameters:\n  x: {{values: [{values}, 17]}}\n")
    started = time.monotonic()
    assert expand(load_sweep(path)).configurations == 80_000
    assert time.monotonic() - started < 30, "validation is linear (it took 212 s before)"
    # equal as values but of different types are different values
    ok = write(tmp_path, "name: s\nparameters:\n  x: {values: [1, '1', true, 1.5, [1], {a: 1}]}\n")
    assert len(expand(load_sweep(ok)).trials) == 6


def test_deep_nesting_is_refused_with_its_line(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    text = refused(write(tmp_path, f"name: s\nparameters:\n  x: {{value: {deep}}}\n"))
    assert f"nested more than {MAX_DEPTH} levels deep" in text and ":3:" in text
    blocks = "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
    assert "levels deep" in refused(write(tmp_path, blocks))


def test_a_3_mb_parameter_value_is_refused_before_anything_runs(tmp_path: Path) -> None:
    path = write(tmp_path, f"name: s\nparameters:\n  x:\n    value: {'y' * 3_000_000}\n")
    text = refused(path)
    assert text.startswith(f"{path}:4: ") and "limited to 100 KiB" in text


def test_parameters_too_large_together_are_refused(tmp_path: Path) -> None:
    params = "".join(f"  p{i}: {{value: {'z' * 60_000}}}\n" for i in range(3))
    text = refused(write(tmp_path, f"name: s\nparameters:\n{params}"))
    assert "environment value of at most" in text


@pytest.mark.parametrize("name", ["..", ".", "..."])
def test_a_run_name_of_dots_stays_inside_the_results_root(tmp_path: Path, name: str) -> None:
    # Any string is a sweep name, as in W&B (issue 11); its run folder is a safe slug.
    spec = load_sweep(write(tmp_path, f"name: '{name}'\nparameters: {{x: {{value: 1}}}}\n"))
    assert spec.name == name and spec.folder.strip(".")
    run = RunDir.create(tmp_path / "results", spec.folder, "20260101-000000-abcd")
    assert run.path.parent.parent == tmp_path / "results"


def test_a_run_folder_never_leaves_the_results_root(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="would not be a folder"):
        RunDir.create(tmp_path / "results", "..", "20260101-000000-abcd")
    assert not (tmp_path / "20260101-000000-abcd").exists()


@pytest.mark.parametrize("target", ["/outputs/..", "/outputs/x", "/tmp", "/a/../outputs",
                                    "relative", "/proc/x", "/"])
def test_mount_targets_that_escape_or_cover_the_trials_folders(tmp_path: Path,
                                                              target: str) -> None:
    text = refused(write(tmp_path, "name: s\nparameters: {x: {value: 1}}\n"
                         f"mounts: [{{volume: data, target: '{target}'}}]\n"))
    assert ":3: " in text and "mounts[0].target" in text


def _run(tmp_path: Path) -> RunDir:
    from tests.unit.fake_runs import make_run

    path = make_run(tmp_path, "20260101-000000-abcd", [
        {"trial_id": "t1", "config_id": "c1", "params": {"x": 1}}])
    (path / "sweep.yaml").write_text("name: demo\n")
    return RunDir(path)


def test_a_missing_or_damaged_sweep_yaml_is_one_line_naming_it(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run.path / "sweep.yaml").unlink()
    with pytest.raises(RunError, match=r"sweep\.yaml is missing \(restore it"):
        run.sweep_text()
    (run.path / "sweep.yaml").write_bytes(b"\xff\xfe not text")
    with pytest.raises(RunError, match=r"sweep\.yaml is damaged \(UnicodeDecodeError\)"):
        run.sweep_text()


def test_a_missing_manifest_is_named(tmp_path: Path) -> None:
    run = _run(tmp_path)
    (run.path / "manifest.json").unlink()
    with pytest.raises(RunError, match=r"manifest\.json is missing \(restore it"):
        find_run(str(run.path), tmp_path)


@pytest.mark.parametrize("field, value", [("replicas", "x"), ("hosts", ["a"]),
                                          ("image", 3), ("notes", "n")])
def test_a_manifest_with_wrong_types_is_damaged(field: str, value: object) -> None:
    with pytest.raises(RunError, match=f"is damaged \\(its {field!r}|a host is not"):
        Manifest.from_json({"version": 2, field: value}, "m.json")


def test_a_full_disk_is_one_line_that_says_what_to_do(tmp_path: Path) -> None:
    full = Path("/dev/full")
    if not full.exists():
        pytest.skip("no /dev/full")
    with pytest.raises(RunError) as info:
        append_line(full, json.dumps({"trial_id": "x"}) + "\n")
    assert "No space left on device" in str(info.value)
    assert "free some space there, then `launch resume`" in str(info.value)
    with pytest.raises(RunError, match="cannot write"):
        atomic_write(tmp_path / "missing-folder" / "f", "x")
