"""Resuming safely after faults: on other hosts while the run's host is dead, with its
image removed, and never with an edited sweep file or plan."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

from launcher.image import BuiltImage
from tests.engines import ScratchEngine
from tests.integration.faults import (
    Launcher,
    nothing_left,
    succeeded_once_each,
    the_run,
)
from tests.support import launch, probe_sweep, records, wait_until

pytestmark = [pytest.mark.docker, pytest.mark.engines]
BASE = "launcher-base:python3.11-bookworm"


def killed_launcher(proc: Launcher) -> None:
    import signal

    proc.send(signal.SIGKILL)
    proc.finish(60)


def test_resume_on_other_hosts_while_the_runs_host_is_dead(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    a, b = engines
    path = probe_sweep(tmp_path, {"probe-sleep": {"value": 3}}, replicas=6, name="moved")
    first = Launcher(str(path), "--quiet", "--host", a.host(slots=2))
    run = the_run(tmp_path / "results", path.stem)
    wait_until(lambda: len(records(run.path)) >= 2 if (run.path / "trials.jsonl").exists()
               else False, what="two records")
    killed_launcher(first)
    a.kill()
    try:
        resumed = launch("resume", str(run.path), "--json", "--host", a.host(),
                         "--host", b.host(slots=3))
        assert resumed.returncode == 0, resumed.stderr
        notes = " ".join(json.loads(resumed.stdout)["notes"])
        assert f"host {a.name} left out" in notes
    finally:
        a.start()
    succeeded_once_each(run)
    assert {h.name for h in run.manifest().hosts} == {a.name, b.name}
    clean = launch("clean", str(run.path))  # the containers the dead engine kept
    assert clean.returncode == 0, clean.stdout + clean.stderr
    nothing_left(run.run_id, a, b)


def test_resume_refuses_an_edited_sweep_file_and_says_what_changed(
        tmp_path: Path, engines: list[ScratchEngine]) -> None:
    a = engines[0]
    path = probe_sweep(tmp_path, {"probe-exit": {"values": [0, 1]}}, name="edited")
    done = launch(str(path), "--quiet", "--host", a.host())
    assert done.returncode == 1, done.stderr  # one trial fails on purpose
    run = the_run(tmp_path / "results", path.stem)
    sweep = run.path / "sweep.yaml"
    original = sweep.read_text()
    sweep.write_text(original.replace("memory: 256m", "memory: 512m").replace(
        "/app/experiments/probe.py", "/app/experiments/train.py"))
    since = time.time()
    refused = launch("resume", str(run.path), "--retry-failed")
    assert refused.returncode == 2, refused.stderr
    line = refused.stderr.strip()
    assert "\n" not in line and f"{sweep} changed since run {run.run_id} started" in line
    assert "command: ['python3', '/app/experiments/probe.py'" in line
    assert "resources: {'cpus': 0.5, 'memory': 268435456" in line and "536870912" in line
    client = a.client()
    try:
        created = list(client.events(since=since, until=time.time() + 1, decode=True,
                                     filters={"type": "container", "event": "create"}))
    finally:
        client.close()
    assert not created, "no container was started"
    sweep.write_text(original)
    plan = run.path / "plan.json"
    plan.write_text(plan.read_text().replace('"seed": 0', '"seed": 7'))
    damaged = launch("resume", str(run.path))
    assert damaged.returncode == 2 and "plan.json changed since run" in damaged.stderr


def test_a_removed_image_is_copied_back_or_rebuilt_from_the_same_content(
        tmp_path: Path, engines: list[ScratchEngine], project_image: BuiltImage) -> None:
    a, b = engines
    env = {"DOCKER_HOST": a.url}  # a is the launcher's local engine: it builds the image
    a.load(BASE)  # the build digest covers the base image's ID, so a needs it
    path = probe_sweep(tmp_path, {"probe-exit": {"values": [0, 1]}}, name="image")
    first = launch(str(path), "--quiet", "--host", a.host(), "--host", b.host(), env=env)
    assert first.returncode == 1, first.stderr  # one trial fails on purpose
    run = the_run(tmp_path / "results", path.stem)
    image_id = run.manifest().image.id
    try:
        a.remove_image(project_image.tag)  # gone from the build engine, still on b
        resumed = launch("resume", str(run.path), "--retry-failed", "--json", env=env)
        assert resumed.returncode == 1, resumed.stderr
        notes = " ".join(json.loads(resumed.stdout)["notes"])
        assert f"was missing on local; it was copied back from {b.name}" in notes
        assert a.has_image(image_id) and a.has_image(project_image.tag)
        for engine in (a, b):  # gone everywhere; the build context is unchanged
            engine.remove_image(project_image.tag)
        rebuilt = launch("resume", str(run.path), "--retry-failed", "--json", env=env)
        assert rebuilt.returncode == 1, rebuilt.stderr
        notes = " ".join(json.loads(rebuilt.stdout)["notes"])
        assert "was gone everywhere; it was rebuilt from the same content" in notes
        images = set(pd.read_csv(run.path / "results.csv")["image_id"])
        assert image_id in images and len(images) == 2, images  # said, not hidden
    finally:
        for engine in (a, b):  # the next test gets the project's image loaded again
            if engine.has_image(project_image.tag):
                engine.remove_image(project_image.tag)
    nothing_left(run.run_id, a, b)
