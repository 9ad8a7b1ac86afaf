"""Backends: where trials run. An explicit factory with lazy imports (ray is optional)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from launcher.errors import UsageError

if TYPE_CHECKING:
    from launcher.backends.base import Backend

KNOWN_BACKENDS = ("docker", "ray")


def get_backend(name: str, **options: Any) -> Backend:
    """The backend called ``name``; a bad name lists the valid ones."""
    if name == "docker":
        from launcher.backends.docker import DockerBackend

        return DockerBackend(**options)
    if name == "ray":
        raise UsageError("the ray backend is not available in this version of the launcher")
    raise UsageError(f"unknown backend {name!r}; known backends: {', '.join(KNOWN_BACKENDS)}")
