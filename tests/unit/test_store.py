"""The run store: the typed, versioned schema, durable records, torn lines, duplicates,
atomic files, safe outputs, migration of older run directories."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from launcher.errors import RunError
from launcher.store import (
    SCHEMA_VERSION,
    Manifest,
    RunDir,
    RunState,
    TrialRecord,
    atomic_write,
    best_records,
    extract_outputs,
    find_run,
)
from launcher.trial import TrialResult, TrialStatus
from tests.unit.fake_runs import make_run as make_full_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs"


def make_run(tmp_path: Path) -> RunDir:
    run = RunDir.create(tmp_path, "s", "20260101-000000-abcd")
    (run.path / "manifest.json").write_text("{}")
    return run


def test_torn_last_record_is_ignored(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record(TrialResult("aaaaaaaaaaaa", TrialStatus.SUCCEEDED))
    run.record(TrialResult("bbbbbbbbbbbb", TrialStatus.FAILED, exit_code=1))
    with open(run.path / "trials.jsonl", "ab") as f:
        f.write(b'{"trial_id": "cccccccccccc", "status": "succ')  # killed mid-append
    assert [r.trial_id for r in run.records()] == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]
    run.record(TrialResult("dddddddddddd", TrialStatus.SUCCEEDED))
    assert [r.trial_id for r in run.records()][-1] == "dddddddddddd"


def test_a_record_with_an_invalid_status_or_shape_is_skipped(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record(TrialResult("aaaaaaaaaaaa", TrialStatus.SUCCEEDED))
    with open(run.path / "trials.jsonl", "a") as f:
        f.write('{"trial_id": "bbbbbbbbbbbb", "status": "exploded"}\n')
        f.write('{"trial_id": "cccccccccccc", "status": "failed", "attempt": "x"}\n')
        f.write('["not", "a", "record"]\n')
    assert [r.trial_id for r in run.records()] == ["aaaaaaaaaaaa"]


def test_a_trial_recorded_twice_counts_once_and_success_wins() -> None:
    records = [
        TrialRecord("t1", TrialStatus.LOST, attempt=1),
        TrialRecord("t1", TrialStatus.SUCCEEDED, attempt=2, metrics={"m": 1}),
        TrialRecord("t1", TrialStatus.FAILED, attempt=1),  # a late duplicate
        TrialRecord("t2", TrialStatus.FAILED, attempt=1),
        TrialRecord("t2", TrialStatus.TIMED_OUT, attempt=2),
    ]
    best = best_records(records)
    assert best["t1"].status is TrialStatus.SUCCEEDED and best["t1"].attempt == 2
    assert best["t2"].status is TrialStatus.TIMED_OUT  # the latest of equally final ones


def test_a_record_survives_a_round_trip() -> None:
    record = TrialRecord("t1", TrialStatus.FAILED, "exit code 3", 3, {"acc": 0.5}, "h2",
                         "sha256:x", "c1", 2, "a", "b", "c", 1.5, {"ray_node_id": "n"})
    assert TrialRecord.from_json(json.loads(record.line())) == record


def test_files_are_written_before_the_record(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.record(TrialResult("abcabcabcabc", TrialStatus.SUCCEEDED, log="hello\n",
                           history=[{"epoch": 1, "loss": 0.5}]))
    assert (run.path / "logs" / "abcabcabcabc.log").read_text() == "hello\n"
    assert json.loads((run.path / "history" / "abcabcabcabc.jsonl").read_text()) == {
        "epoch": 1, "loss": 0.5}


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    atomic_write(target, "a,b\n")
    atomic_write(target, "c,d\n")
    assert target.read_text() == "c,d\n" and [p.name for p in tmp_path.iterdir()] == [
        "results.csv"]


def _tar(members: list[tarfile.TarInfo], data: bytes = b"x") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member in members:
            member.size = len(data) if member.isfile() else 0
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    buf.seek(0)
    return buf


def test_outputs_cannot_escape_their_folder(tmp_path: Path) -> None:
    evil_link = tarfile.TarInfo("outputs/link")
    evil_link.type, evil_link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    members = [tarfile.TarInfo("outputs/ok.txt"), tarfile.TarInfo("outputs/../../escape.txt"),
               evil_link, tarfile.TarInfo("outputs//abs.txt")]
    dest = tmp_path / "run" / "outputs" / "t"
    with pytest.raises(tarfile.TarError):
        extract_outputs(_tar(members), dest)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "run" / "escape.txt").exists()
    extract_outputs(_tar([tarfile.TarInfo("outputs/ok.txt"), evil_link]), dest)
    assert (dest / "ok.txt").read_bytes() == b"x" and not (dest / "link").exists()


def test_trial_ids_must_be_launcher_ids(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(RunError):
        run.record(TrialResult("../../etc", TrialStatus.SUCCEEDED, log="x"))


def test_find_run_by_prefix_and_ambiguity(tmp_path: Path) -> None:
    for run_id in ("20260101-000000-aaaa", "20260101-000000-aaab", "20260202-000000-cccc"):
        r = RunDir.create(tmp_path, "s", run_id)
        (r.path / "manifest.json").write_text("{}")
    assert find_run("20260202", tmp_path).run_id == "20260202-000000-cccc"
    assert find_run("s/20260101-000000-aaab", tmp_path).run_id == "20260101-000000-aaab"
    with pytest.raises(RunError, match="matches 2 runs"):
        find_run("20260101", tmp_path)
    with pytest.raises(RunError, match="no run matches"):
        find_run("1999", tmp_path)


def test_second_lock_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with run.locked(), pytest.raises(RunError, match="in use by another launcher"):
        run.lock()
    run.lock().close()  # free again after the block


def test_manifest_answers_through_typed_properties(tmp_path: Path) -> None:
    path = make_full_run(tmp_path, "20260102-120000-aaaa", [], hosts=("h1", "h2"), slots=3,
                         metric={"name": "acc", "goal": "maximize"}, max_parallel=4)
    manifest = RunDir(path).manifest()
    assert manifest.version == SCHEMA_VERSION and manifest.state is RunState.FINISHED
    assert (manifest.metric_name, manifest.goal) == ("acc", "maximize")
    assert [h.name for h in manifest.hosts] == ["h1", "h2"] and manifest.slots == 4
    assert [s.url for s in manifest.host_specs()] == ["h1", "h2"]


def test_a_run_from_a_newer_launcher_is_refused(tmp_path: Path) -> None:
    path = make_full_run(tmp_path, "20260102-120000-aaaa", [])
    data = json.loads((path / "manifest.json").read_text())
    data["version"] = SCHEMA_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(RunError, match=r"written by a newer launcher .*upgrade the launcher"):
        RunDir(path).manifest()


@pytest.mark.parametrize("name", ["manifest.json", "plan.json"])
def test_a_damaged_or_missing_run_file_is_a_one_line_error(tmp_path: Path, name: str) -> None:
    path = make_full_run(tmp_path, "20260102-120000-aaaa", [])
    (path / name).write_text('{"trials": [')
    read = RunDir(path).manifest if name == "manifest.json" else RunDir(path).plan
    with pytest.raises(RunError, match=f"{name} is damaged"):
        read()
    (path / name).unlink()
    with pytest.raises(RunError, match=f"{name} is missing"):
        read()


def test_the_unversioned_layout_of_launcher_0_1_is_migrated() -> None:
    [path] = (FIXTURES / "v1" / "sweep").iterdir()
    raw = json.loads((path / "manifest.json").read_text())
    assert "version" not in raw and raw["stopped_because"] == ""
    manifest = Manifest.from_json(raw, "fixture")
    assert manifest.version == SCHEMA_VERSION and manifest.stopped_because == ""
    assert manifest.state is RunState.FINISHED and manifest.image.id.startswith("sha256:")
    assert manifest.slots == 2 and manifest.metric_name == "val_acc"
    run = RunDir(path)
    assert len(run.plan()) == 8 and len(run.best()) == 8
