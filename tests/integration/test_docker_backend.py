"""The Docker backend passes the shared backend contract on the real local engine."""

from __future__ import annotations

from typing import Any

import pytest

from launcher.backends.base import Backend
from launcher.backends.docker import DockerBackend
from launcher.image import BuiltImage
from tests.contract import BackendContract

pytestmark = pytest.mark.docker


class TestDockerBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, local_host: Any) -> Backend:
        return DockerBackend(hosts=[local_host])

    @pytest.fixture
    def image(self, project_image: BuiltImage) -> BuiltImage:
        return project_image
