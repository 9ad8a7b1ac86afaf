"""Fixtures for tests against real Docker engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from launcher.image import BuiltImage
from tests.engines import ScratchEngine, scratch_engines
from tests.support import ROOT


@pytest.fixture(scope="session")
def project_image() -> Iterator[BuiltImage]:
    """The project's training image, built once (cached by content) on the local engine."""
    import docker

    from launcher.image import ensure_image
    from launcher.sections import ImageSpec

    client = docker.from_env()
    try:
        yield ensure_image(client, ImageSpec(context=str(ROOT)), ROOT)
    finally:
        client.close()


@pytest.fixture
def local_host() -> Iterator[Any]:
    from launcher.hosts import connect
    from launcher.sections import HostSpec

    host = connect(HostSpec("local", "local", slots=2))
    yield host
    host.close()


@pytest.fixture(scope="session")
def own_engines(project_image: BuiltImage) -> Iterator[list[ScratchEngine]]:
    """Two Docker engines of this test run's own (tests may kill, restart and freeze
    them), with the project's image loaded; removed when the session ends."""
    yield from scratch_engines(2, project_image.tag)


@pytest.fixture
def engines(own_engines: list[ScratchEngine], project_image: BuiltImage) -> list[ScratchEngine]:
    """The run's own engines, answering again (and holding the project's image) if an
    earlier test killed or froze one, or removed the image."""
    for engine in own_engines:
        engine.ensure_up()
        if not engine.has_image(project_image.tag):
            engine.load(project_image.tag)
    return own_engines
