"""Container settings and output parsing, without an engine."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import docker

from launcher.command import Argv
from launcher.container import ContainerSettings, capped_text, last_error_line, parse_stdout
from launcher.sections import Resources
from launcher.trial import Trial

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


def test_logs_keep_head_and_tail_when_capped() -> None:
    chunks = [f"line {i}\n".encode() for i in range(10000)]
    text, truncated = capped_text(chunks, 1000)
    assert truncated and text.startswith("line 0\n") and text.rstrip().endswith("line 9999")
    assert len(text) < 1100
    small, cut = capped_text([b"a\n", b"b\n"], 1000)
    assert small == "a\nb\n" and not cut
