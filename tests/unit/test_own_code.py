"""Bring your own code, without an engine: the starter, the runtime a trial gets, outputs
over their limit, the metric contract, BuildKit's progress, wheels for the image."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import docker
import pandas as pd
import pytest

from launcher.bases import ImagePlatform, _what_to_do
from launcher.builder import BuildLog, BuildRequest, _Trace, build_failed
from launcher.command import Argv
from launcher.container import ContainerSettings, _classify, _collect
from launcher.errors import UsageError
from launcher.outputs import copy_outputs, metrics_from_tar
from launcher.project import STARTER_FILES, starter_folder, write_starter
from launcher.results import metric_problem, table_problems
from launcher.runtime import CACHE_VARIABLES, home_environment
from launcher.sections import Resources
from launcher.spec import load_sweep
from launcher.store import TrialRecord
from launcher.trial import Trial, TrialResult, TrialStatus, missing_metric
from launcher.wheelhouse import pip_target_flags, unpinned

API = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # no I/O
TRIAL = Trial("abcdefabcdef", "c", 0, 1, 8, (("lr", 0.1),))


# -- launch init ------------------------------------------------------------------------
def test_init_writes_the_starter_and_never_overwrites(tmp_path: Path) -> None:
    written = write_starter(tmp_path / "mine")
    assert [p.name for p in written] == list(STARTER_FILES)
    for name in STARTER_FILES:
        assert (tmp_path / "mine" / name).read_bytes() == (starter_folder() / name).read_bytes()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "train.py").write_text("mine\n")
    with pytest.raises(UsageError, match=r"already has train.py; nothing was written"):
        write_starter(tmp_path / "other")
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == ["train.py"]


def test_the_starter_sweep_plans_and_its_requirements_are_pinned(tmp_path: Path) -> None:
    write_starter(tmp_path)
    spec = load_sweep(tmp_path / "sweep.yaml")
    assert spec.name == "digits" and spec.metric is not None and spec.metric.name == "val_acc"
    assert spec.configurations() == 4
    assert unpinned([tmp_path / "requirements.txt"]) == []
    assert "name: val_acc" in (tmp_path / "sweep.yaml").read_text()
    train = (tmp_path / "train.py").read_text()
    assert "LAUNCH_SEED" in train and '"metrics"' in train and "import launcher" not in train


def test_unpinned_requirements_are_found(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# c\nnumpy==2.2.6\nscikit-learn>=1.5  # loose\ntorch\n-r other.txt\n"
                   "pkg @ https://example.invalid/pkg.whl\n")
    assert unpinned([req]) == ["requirements.txt: scikit-learn>=1.5", "requirements.txt: torch"]


# -- the image's platform ---------------------------------------------------------------
def test_wheels_are_for_the_images_platform_not_the_hosts() -> None:
    debian = ImagePlatform("3.11", "x86_64", "glibc", "2.36")
    assert debian.pip_platforms()[0] == "manylinux_2_36_x86_64"
    assert debian.pip_platforms()[-2:] == ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]
    arm = ImagePlatform("3.12", "aarch64", "glibc", "2.31")
    flags = pip_target_flags(arm)
    assert flags[:3] == ["--only-binary=:all:", "--python-version", "3.12"]
    assert "manylinux_2_31_aarch64" in flags and "--implementation" in flags
    assert ImagePlatform("3.11", "x86_64", "musl", "1.2").pip_platforms() == [
        "musllinux_1_2_x86_64", "musllinux_1_1_x86_64"]


def test_a_base_that_cannot_be_pulled_says_what_to_do() -> None:
    literal = _what_to_do("python:3.11-slim", None, "launcher-base:python3.11-bookworm")
    assert "ARG BASE=python:3.11-slim" in literal and "launch base-image" in literal
    given = _what_to_do("python:3.11-slim", "BASE", None)
    assert "--set image.build.args.BASE=IMAGE" in given and "launch base-image" in given


# -- BuildKit's progress and build errors -------------------------------------------------
# Recorded from dockerd 20.10's BuildKit: a step starting, then its output.
STEP = ("CooCCkdzaGEyNTY6NDNhMzJhZmVhY2JkOTZjZGY0OTBhMDg2Yzg5ZmJlZjVlZWJhMTRhODljYzUzNjRhZWQ1MT"
        "cxMjdkZGM1NDczYhJHc2hhMjU2OmRkM2Q5YzMzODZmNDQyYWM4NTFkMDM0MmI3YTI1YTg1MDYxODllMWU1NWQx"
        "ZWQ0NmM5YzEyOTgxNjljMThkNWESR3NoYTI1NjozN2EwNWM3ZTM0ZWUxNmI3YTMwNDQyMTBkNDhmMmQyNGViYz"
        "Q0ZTlkYWE3NjE3NGNjNDM1YTY3OGRmZWIyZThhGh9bc3RhZ2UtMCAyLzNdIENPUFkgYS50eHQgL2EudHh0KgwI"
        "yarA2AYQhbLotgM=")
OUTPUT = ("GrkBCkdzaGEyNTY6NzZkZWFhOGU0YTE0Nzc1ODg2NDhmOGFmNWM0YTlmMjlkYWZmZTNmZTE5YzM2NDBhZWNkZm"
          "IwYzIyMWMwNDRlYhILCMqqwNgGENH2jSsYASJfdG90YWwgOApkcnd4ci14ci14IDIgcm9vdCByb290IDQwOTY"
          "gRGVjICAyIDEyOjU1IC4KZHJ3eC0tLS0tLSAxIHJvb3Qgcm9vdCA0MDk2IERlYyAgMiAxMjo1NSAuLgo=")


def test_buildkit_progress_becomes_build_log_lines() -> None:
    shown: list[str] = []
    log = BuildLog(on_line=shown.append)
    trace = _Trace(log)
    for message in (STEP, STEP, OUTPUT):
        trace.feed(base64.b64decode(message))
    assert shown[0] == "#1 [stage-0 2/3] COPY a.txt /a.txt" and len(shown) == 4
    assert shown[1] == "total 8" and shown[2].endswith(" .")


def request(**kwargs: Any) -> BuildRequest:
    return BuildRequest(**{"tar": io.BytesIO(), "tag": "t", "dockerfile": "Dockerfile",
                           "args": {}, "labels": {}, "network": "none", **kwargs})


def test_build_errors_give_advice() -> None:
    offline = build_failed(["pip install x", "Temporary failure in name resolution"],
                           request(dockerfile_text="COPY .wheelhouse/ /w/\n"))
    assert "image.build.network: default" in str(offline)
    no_wheels = build_failed(["Failed to establish a new connection"],
                             request(requirements_hint="requirements.txt"))
    assert "wheels of requirements.txt into .wheelhouse/" in str(no_wheels)
    pep668 = build_failed(["error: externally-managed-environment"], request())
    assert "python3 -m venv /opt/venv" in str(pep668)
    assert "call python3" in str(build_failed(["/bin/sh: 1: python: not found"], request()))
    heredoc = build_failed(["dockerfile parse error line 4: unknown instruction: ECHO"],
                           request(dockerfile_text="FROM a\nRUN <<EOT\necho hi\nEOT\n"))
    assert "heredocs" in str(heredoc) and "Docker 23" in str(heredoc)
    missing = build_failed(["No matching distribution found for left-pad"],
                           request(requirements_hint="reqs/prod.txt",
                                   dockerfile_text="COPY .wheelhouse /w\n"))
    assert "needs left-pad" in str(missing) and "reqs/prod.txt" in str(missing)
    # a plain `pip install -r requirements.txt` with no network: the wheelhouse is unused
    unused = build_failed(["No matching distribution found for numpy"],
                          request(requirements_hint="requirements.txt",
                                  dockerfile_text="RUN pip install -r requirements.txt\n"))
    assert "could not download numpy" in str(unused) and "not in the wheelhouse" not in str(unused)
    assert "wheels of requirements.txt into .wheelhouse/" in str(unused)


# -- the runtime of a trial ---------------------------------------------------------------
def create(**settings: Any) -> dict[str, Any]:
    base = ContainerSettings(image="sha256:x", run_id="r1", sweep="s", user="10001:10001")
    s = ContainerSettings(**{**base.__dict__, **settings})
    return s.create_kwargs(API, TRIAL, Argv(None, []), attempt=1)


def test_shm_tmp_and_a_home_owned_by_the_user() -> None:
    host = create(resources=Resources(shm=2 * 2**30, tmp=64 * 2**20))["host_config"]
    assert host["ShmSize"] == 2 * 2**30
    assert "size=67108864" in host["Tmpfs"]["/tmp"] and "mode=1777" in host["Tmpfs"]["/tmp"]
    assert "uid=10001,gid=10001" in host["Tmpfs"]["/home/trial"]
    assert host["ReadonlyRootfs"] is True and "ShmSize" not in create()["host_config"]


def test_home_and_caches_point_into_the_home_tmpfs_unless_the_image_sets_them() -> None:
    env = home_environment(["PATH=/usr/bin", "HF_HOME=/models/hf"])
    assert env["HOME"] == "/home/trial" and "HF_HOME" not in env
    assert {k for k in CACHE_VARIABLES if k != "HF_HOME"} == set(env)
    assert all(v.startswith("/home/trial") for v in env.values())


def test_a_slot_with_devices_asks_the_engine_for_exactly_those() -> None:
    settings = ContainerSettings(image="sha256:x", run_id="r1", sweep="s",
                                 resources=Resources(gpus=2))
    host = settings.create_kwargs(API, TRIAL, Argv(None, []), 1, devices=("2", "3"))["host_config"]
    assert host["DeviceRequests"] == [{"Driver": "", "Count": 0, "DeviceIDs": ["2", "3"],
                                       "Capabilities": [["gpu"]], "Options": {}}]


# -- outputs over outputs_limit -----------------------------------------------------------
def outputs_tar(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folder = tarfile.TarInfo("outputs")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for name, data in files:
            info = tarfile.TarInfo(f"outputs/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class ArchiveApi:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def get_archive(self, cid: str, path: str) -> tuple[Any, dict[str, Any]]:
        return (self.data[i:i + 1000] for i in range(0, len(self.data), 1000)), {}


def names(stream: Any) -> list[str]:
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        return [m.name for m in tar if m.isfile()]


def test_outputs_within_the_limit_are_copied_byte_for_byte() -> None:
    data = outputs_tar([("a.bin", b"a" * 5000), ("metrics.json", b'{"x": 1}')])
    copy, truncated = copy_outputs(ArchiveApi(data), "c", 10**6)
    assert copy is not None and copy.read() == data and not truncated


def test_outputs_over_the_limit_keep_whole_files_and_the_metrics() -> None:
    data = outputs_tar([("a.bin", b"a" * 3000), ("model.bin", b"m" * 50_000),
                        ("b.bin", b"b" * 2000), ("metrics.json", b'{"val_acc": 0.5}')])
    copy, truncated = copy_outputs(ArchiveApi(data), "c", 6000)
    assert truncated and copy is not None
    assert names(copy) == ["outputs/a.bin", "outputs/b.bin", "outputs/metrics.json"]
    copy.seek(0)
    assert metrics_from_tar(copy) == {"val_acc": 0.5}


class FinishedApi(ArchiveApi):
    """Also answers the logs endpoint (launcher.engine.container_logs): one stdout frame."""

    base_url, api_version, timeout = "http+docker://fake", "1.41", 60

    def get(self, url: str, **kwargs: Any) -> Any:
        assert url.endswith("/containers/c/logs")
        text = b'{"step": 1}\n{"metrics": {"acc": 0.9}}\n'
        return LogsResponse(bytes([1, 0, 0, 0]) + len(text).to_bytes(4, "big") + text)


class LogsResponse:
    def __init__(self, data: bytes) -> None:
        self.raw = io.BytesIO(data)

    def raise_for_status(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_trial_over_the_limit_keeps_its_status_and_metrics() -> None:
    api = FinishedApi(outputs_tar([("big.bin", b"x" * 20_000)]))
    settings = ContainerSettings(image="i", run_id="r", sweep="s", outputs_limit=1000)
    result = TrialResult("t", TrialStatus.NOT_STARTED)
    _collect(api, "c", settings, result)
    _classify(api, "c", 0, settings, result, _running())
    assert result.status is TrialStatus.SUCCEEDED and result.metrics == {"acc": 0.9}
    record = TrialRecord.of(result)
    assert result.outputs_truncated and record.to_json()["outputs_truncated"] is True
    assert TrialRecord.from_json(record.to_json()) == record
    plain = TrialRecord.of(TrialResult("t", TrialStatus.SUCCEEDED))
    assert "outputs_truncated" not in plain.to_json()
    assert TrialRecord.from_json(plain.to_json()) == plain


def _running() -> Any:
    from launcher.container import Running

    return Running(None)


# -- the metric contract ------------------------------------------------------------------
def test_strict_metrics_fail_a_trial_without_the_sweeps_metric() -> None:
    settings = ContainerSettings(image="i", run_id="r", sweep="s", metric="val_acc",
                                 strict_metrics=True)
    result = TrialResult("t", TrialStatus.NOT_STARTED, metrics={"acc": 0.9})
    _classify(None, "c", 0, settings, result, _running())
    assert result.status is TrialStatus.FAILED
    assert result.reason == ("the job reported no 'val_acc' (reported: acc); the job's last "
                             'stdout line must be like {"metrics": {"val_acc": 0.93}}')
    lenient = TrialResult("t", TrialStatus.NOT_STARTED, metrics={"acc": 0.9})
    _classify(None, "c", 0, ContainerSettings(image="i", run_id="r", sweep="s",
                                             metric="val_acc"), lenient, _running())
    assert lenient.status is TrialStatus.SUCCEEDED


def test_the_table_says_when_no_trial_reported_the_metric() -> None:
    df = pd.DataFrame({"status": ["succeeded", "failed"], "metric.acc": [0.9, None],
                       "metric.loss": [0.1, None], "outputs_truncated": [False, True]})
    problem = metric_problem(df, "val_acc")
    assert problem == missing_metric("val_acc", ["acc", "loss"], any_trial=True)
    assert problem is not None and "reported: acc, loss" in problem
    assert '{"metrics": {"val_acc": 0.93}}' in problem
    assert metric_problem(df, "acc") is None and metric_problem(df, None) is None
    assert metric_problem(df.assign(status="not_started"), "val_acc") is None
    assert "outputs of 1 trials" in table_problems(df, "acc")[0]
    no_line = metric_problem(pd.DataFrame({"status": ["succeeded"]}), "val_acc")
    assert no_line is not None and "no final metrics line" in no_line


def test_the_sweep_keys_of_bring_your_own_code(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps({
        "strict_metrics": True, "resources": {"shm": "1g", "tmp": "64m", "gpus": 1},
        "image": {"build": {"network": "default", "builder": "classic"}},
        "hosts": [{"url": "local", "gpus": 2}, {"url": "unix:///x.sock", "gpus": ["GPU-a"]}],
        }))
    spec = load_sweep(path)
    assert spec.strict_metrics and spec.resources.shm == 2**30
    assert spec.resources.tmp == 64 * 2**20 and spec.image.network == "default"
    assert spec.image.builder == "classic"
    assert [h.gpus for h in spec.hosts] == [("0", "1"), ("GPU-a",)]
