"""What a real ML job needs at run time inside a hardened container: a writable HOME with
its caches, a /tmp and shared memory of a chosen size, and its own GPUs.

The root filesystem stays read-only. HOME is a tmpfs owned by the trial's user at
:data:`HOME`, and the caches that libraries write (``XDG_CACHE_HOME``, ``MPLCONFIGDIR``,
``HF_HOME``, ``TORCH_HOME``, ``WANDB_DIR``) point inside it, unless the image sets one
of them itself (a model baked into the image stays where the image says). Everything
there is gone when the trial ends; results belong in /outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HOME = "/home/trial"
CACHE_VARIABLES = {
    "HOME": HOME,
    "XDG_CACHE_HOME": f"{HOME}/.cache",
    "MPLCONFIGDIR": f"{HOME}/.config/matplotlib",
    "HF_HOME": f"{HOME}/.cache/huggingface",
    "TORCH_HOME": f"{HOME}/.cache/torch",
    "WANDB_DIR": HOME,
}
TMPFS_FLAGS = "rw,nosuid,nodev"


def home_environment(image_env: Iterable[str]) -> dict[str, str]:
    """HOME and the cache variables, leaving out those the image's ENV sets."""
    defined = {entry.split("=", 1)[0] for entry in image_env}
    return {k: v for k, v in CACHE_VARIABLES.items() if k not in defined}


def tmpfs_options(size: int, user: str | None) -> str:
    """Mount options of a writable tmpfs of ``size`` bytes owned by the container's user
    (a numeric user gets the tmpfs; any other user gets a sticky, world-writable one)."""
    uid, _, gid = (user or "").partition(":")
    owner = f"uid={uid},gid={gid if gid.isdigit() else uid}" if uid.isdigit() else "mode=1777"
    return f"{TMPFS_FLAGS},size={size},{owner}"


def device_requests(devices: tuple[str, ...], count: int) -> list[Any] | None:
    """The engine's GPU request: exactly ``devices`` when the slot has its own, else
    ``count`` GPUs of the engine's choosing (a Ray node whose GPUs Ray assigns)."""
    from docker.types import DeviceRequest

    if devices:
        return [DeviceRequest(device_ids=list(devices), capabilities=[["gpu"]])]
    if count:
        return [DeviceRequest(count=count, capabilities=[["gpu"]])]
    return None
