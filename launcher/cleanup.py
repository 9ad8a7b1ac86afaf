"""Remove what the launcher left on engines: containers and volumes by label, old images.

Every container and ``/outputs`` volume of a run carries ``io.launcher.run=<run id>``,
so a crashed or killed launcher's leftovers are found again on every host of the run
(from its manifest), like SkyPilot finds its local containers by label. Hosts are
cleaned in parallel, at most HOST_WORKERS at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launcher.engine import remove_by_label
from launcher.errors import HostError
from launcher.image import IMAGE_REPOSITORY
from launcher.parallel import each
from launcher.sections import HostSpec
from launcher.store import RunDir, iter_runs
from launcher.trial import LABEL_MANAGED, LABEL_RUN

if TYPE_CHECKING:
    from launcher.hosts import Host


@dataclass
class Cleaned:
    host: str
    containers: int = 0
    volumes: int = 0
    images: int = 0
    error: str = ""


def clean_runs(runs: list[RunDir]) -> list[Cleaned]:
    """Remove every container and volume labelled with any of ``runs``, on their hosts."""
    by_url: dict[str, tuple[HostSpec, list[str]]] = {}
    for run in runs:
        for spec in run.manifest().host_specs():
            by_url.setdefault(spec.url, (spec, []))[1].append(run.run_id)
    return _clean_hosts([(spec, [f"{LABEL_RUN}={r}" for r in run_ids])
                         for spec, run_ids in by_url.values()])


def clean_all(results_root: Path) -> list[Cleaned]:
    """Every launcher-labelled container and volume on the local engine and on every
    host that any run under ``results_root`` used."""
    specs = {"local": HostSpec("local", "local")}
    for path in iter_runs(results_root):
        for spec in RunDir(path).manifest().host_specs():
            specs.setdefault(spec.url, spec)
    return _clean_hosts([(spec, None) for spec in specs.values()])


def _clean_hosts(todo: list[tuple[HostSpec, list[str] | None]]) -> list[Cleaned]:
    done = each(lambda item: _clean_host(*item), todo)
    return [d if isinstance(d, Cleaned) else Cleaned(spec.name, error=f"{type(d).__name__}: "
                                                     f"{d}"[:300])
            for (spec, _), d in zip(todo, done, strict=True)]


def _clean_host(spec: HostSpec, run_labels: list[str] | None) -> Cleaned:
    out = Cleaned(spec.name)
    with _connected(spec, out) as host:
        if host is not None:
            for label in run_labels or [f"{LABEL_MANAGED}=true"]:
                c, v = remove_by_label(host.client.api, label)
                out.containers += c
                out.volumes += v
    return out


@contextlib.contextmanager
def _connected(spec: HostSpec, out: Cleaned) -> Iterator[Host | None]:
    """The connected host, or None with the reason in ``out.error``."""
    from launcher.hosts import connect

    try:
        host = connect(spec)
    except HostError as e:
        out.error = str(e)
        yield None
        return
    try:
        yield host
    finally:
        host.close()


def clean_images(spec: HostSpec, keep: int = 1) -> Cleaned:
    """Remove launcher-built images except the ``keep`` newest and any in use."""
    out = Cleaned(spec.name)
    with _connected(spec, out) as host:
        if host is None:
            return out
        api = host.client.api
        images: list[dict[str, Any]] = api.images(name=IMAGE_REPOSITORY,
                                                  filters={"label": f"{LABEL_MANAGED}=true"})
        in_use = {c["ImageID"] for c in api.containers(all=True)}
        for image in sorted(images, key=lambda i: i["Created"], reverse=True)[keep:]:
            if image["Id"] in in_use:
                continue
            try:
                api.remove_image(image["Id"], force=True)
                out.images += 1
            except Exception:  # a parent of another image; left for later
                continue
    return out
