"""Images of the simulated engines: a config blob whose sha256 is the image ID, saved
and loaded as a tar in `docker save` layout (manifest.json + <id>.json + a padding
layer of a chosen size), so that the launcher's save -> load -> ID check runs for real."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field

JOB_TAG = "sim-job:1"


@dataclass
class Image:
    config: bytes
    tags: list[str] = field(default_factory=list)
    layer_bytes: int = 0

    @property
    def id(self) -> str:
        return "sha256:" + hashlib.sha256(self.config).hexdigest()

    def inspect(self) -> dict[str, object]:
        return {"Id": self.id, "RepoTags": list(self.tags), "RepoDigests": [],
                "Created": "2026-01-01T00:00:00Z", "Size": self.layer_bytes,
                "Config": json.loads(self.config)["config"], "Architecture": "amd64",
                "Os": "linux"}

    def save(self) -> bytes:
        hexid = self.id.split(":", 1)[1]
        manifest = json.dumps([{"Config": f"{hexid}.json", "RepoTags": self.tags,
                                "Layers": ["layer.tar"]}]).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("manifest.json", manifest), (f"{hexid}.json", self.config),
                               ("layer.tar", b"\0" * self.layer_bytes)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()


def job_image(layer_bytes: int = 64 * 1024) -> Image:
    """The image the simulated sweeps run (its user is not root, like the project's)."""
    config = json.dumps({"config": {"User": "10001", "Entrypoint": ["python3"],
                                    "Labels": {"io.launcher.managed": "true"}},
                         "sim": True}, sort_keys=True).encode()
    return Image(config, [JOB_TAG], layer_bytes)


def load(data: bytes) -> Image:
    """The image in a `docker save` tar (raises ValueError when it is not one)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            entry = json.loads(_member(tar, "manifest.json"))[0]
            config = _member(tar, entry["Config"])
            layer = tar.getmember(entry["Layers"][0]).size if entry.get("Layers") else 0
    except (tarfile.TarError, KeyError, IndexError) as e:
        raise ValueError(f"not an image archive: {e}") from None
    return Image(config, list(entry.get("RepoTags") or []), layer)


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    f = tar.extractfile(name)
    if f is None:
        raise KeyError(name)
    return f.read()
