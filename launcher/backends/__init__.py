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
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise UsageError("the ray backend needs Ray, which is not installed",
                             hint="pip install 'launcher[ray]', or use --backend docker")
        from launcher.backends.ray import RayBackend

        return RayBackend(**options)
    raise UsageError(f"unknown backend {name!r}; known backends: {', '.join(KNOWN_BACKENDS)}")
