"""Fixtures for tests against real Docker engines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from launcher.image import BuiltImage
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
