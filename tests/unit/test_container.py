"""Container settings and output parsing, without an engine."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import docker

from launcher.command import Argv
from launcher.container import FSIZE_SLACK, ContainerSettings
from launcher.sections import Resources
from launcher.trial import Trial
from launcher.trial_log import last_error_line, parse_stdout, read_log

API = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # no I/O
TRIAL = Trial("abcdefabcdef", "c", 0, 1, 8, (("lr", 0.1), ("model.depth", 2)))


def kwargs(**settings: Any) -> dict[str, Any]:
    base = ContainerSettings(image="sha256:x", run_id="r1", sweep="s", user="10001:10001")
    s = dataclasses.replace(base, **settings)
    return s.create_kwargs(API, TRIAL, Argv(None, ["--lr=0.1"]), attempt=2)


def test_hardening_and_limits_are_the_default() -> None:
    k = kwargs()
    host = k["host_config"]
    assert host["NetworkMode"] == "none" and host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"] and host["ReadonlyRootfs"] is True
    assert host.get("Privileged", False) is False and host["PidsLimit"] == 512
    assert host["Memory"] == host["MemorySwap"] == 2 * 1024**3 and host["NanoCpus"] == 10**9
    assert "Binds" not in host and k["user"] == "10001:10001"
    assert k["labels"]["io.launcher.run"] == "r1" and k["labels"]["io.launcher.attempt"] == "2"
    env = k["environment"]
    assert env["LAUNCH_TRIAL_ID"] == "abcdefabcdef" and env["LAUNCH_SEED"] == "8"
    assert json.loads(env["LAUNCH_PARAMS"]) == {"lr": 0.1, "model": {"depth": 2}}


def test_gpu_requests_become_device_requests() -> None:
    host = kwargs(resources=Resources(gpus=2))["host_config"]
    assert host["DeviceRequests"] == [{"Driver": "", "Count": 2, "DeviceIDs": [],
                                       "Capabilities": [["gpu"]], "Options": {}}]
    assert "DeviceRequests" not in kwargs()["host_config"]


def test_outputs_volume_or_tmpfs() -> None:
    with_outputs = kwargs()["host_config"]
    assert [m["Target"] for m in with_outputs["Mounts"]] == ["/outputs"]
    assert with_outputs["Mounts"][0]["VolumeOptions"]["Labels"]["io.launcher.run"] == "r1"
    without = kwargs(outputs=False)["host_config"]
    assert "uid=10001,gid=10001" in without["Tmpfs"]["/outputs"] and "Mounts" not in without


def test_stdout_parsing_takes_history_and_the_last_metrics_line() -> None:
    text = "\n".join(['{"epoch": 1, "loss": 2}', "not json {", '{"metrics": {"a": 1}}',
                      '{"step": 5}', '{"metrics": {"a": 2}}', "[1, 2]", "bye"])
    history, metrics = parse_stdout(text)
    assert history == [{"epoch": 1, "loss": 2}, {"step": 5}] and metrics == {"a": 2}
    assert last_error_line(text + "\nTraceback\nValueError: bad\n") == "ValueError: bad"


class FakeLogs:
    """The engine's logs endpoint over ``lines`` (one stdout frame each, as
    launcher.engine.container_logs reads them): counts what the launcher reads."""

    base_url, api_version, timeout = "http+docker://fake", "1.41", 60

    def __init__(self, lines: list[bytes]) -> None:
        self.lines, self.read, self.calls = lines, 0, 0

    def get(self, url: str, *, params: dict[str, Any], **_: Any) -> FakeResponse:
        assert url.endswith("/containers/c/logs")
        self.calls += 1
        tail = params.get("tail", "all")
        kept = self.lines[-int(tail):] if tail != "all" else self.lines
        return FakeResponse(self, kept)


class FakeResponse:
    """A streamed response whose body is produced (and counted) only as far as read."""

    def __init__(self, owner: FakeLogs, lines: list[bytes]) -> None:
        self.owner, self.lines, self.buffer = owner, iter(lines), b""
        self.raw = self

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            line = next(self.lines, None)
            if line is None:
                break
            self.buffer += bytes([1, 0, 0, 0]) + len(line).to_bytes(4, "big") + line
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        self.owner.read += len(data)
        return data

    def raise_for_status(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_logs_keep_head_and_tail_and_read_only_those() -> None:
    api = FakeLogs([f"line {i}\n".encode() for i in range(200_000)])  # about 2.3 MB
    text, truncated = read_log(api, "c", 2000)
    assert truncated and text.startswith("line 0\n") and text.rstrip().endswith("line 199999")
    assert "[...]" in text and len(text) < 2100
    assert api.calls == 2 and api.read < 20_000, "only the head and the tail are read"
    small = FakeLogs([b"a\n", b"b\n"])
    assert read_log(small, "c", 1000) == ("a\nb\n", False) and small.calls == 1


def test_the_engine_caps_the_log_and_each_file() -> None:
    host = kwargs(log_limit=3 * 2**20, outputs_limit=2**20)["host_config"]
    assert host["LogConfig"] == {"Type": "json-file",
                                 "Config": {"max-size": str(3 * 2**20), "max-file": "2"}}
    limit = 2**20 + FSIZE_SLACK  # a little past outputs_limit: kept truncated, not failed
    assert host["Ulimits"] == [{"Name": "fsize", "Soft": limit, "Hard": limit}]
