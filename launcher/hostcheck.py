"""``launch hosts``: is every host of a sweep reachable and ready for its image?"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from launcher.errors import HostError, SweepError
from launcher.image import BuiltImage
from launcher.sections import HostSpec
from launcher.spec import SweepSpec

if TYPE_CHECKING:
    from launcher.hosts import Host


@dataclass
class HostReport:
    name: str
    url: str
    reachable: bool
    engine: str = ""
    cpus: int | None = None
    memory_gib: float | None = None
    slots: int | None = None
    has_image: str = ""  # "yes", "no", "different image under the tag", or ""
    problem: str = ""


def check_hosts(spec: SweepSpec, image: BuiltImage | None) -> list[HostReport]:
    """One report per host of ``spec``, at most HOST_WORKERS at once; never raises for a
    host."""
    from launcher.parallel import each

    reports = each(lambda h: _check(h, spec, image), spec.hosts)
    return [r if isinstance(r, HostReport) else HostReport(h.name, h.url, reachable=False,
                                                            problem=str(r))
            for h, r in zip(spec.hosts, reports, strict=True)]


def _check(host_spec: HostSpec, spec: SweepSpec, image: BuiltImage | None) -> HostReport:
    from launcher.hosts import connect
    from launcher.shipping import image_state

    report = HostReport(host_spec.name, host_spec.url, reachable=False)
    try:
        host = connect(host_spec, cpus_per_trial=spec.resources.cpus,
                       max_parallel=spec.max_parallel, gpus_per_trial=spec.resources.gpus,
                       memory_per_trial=spec.resources.memory)
    except HostError as e:
        report.problem = str(e)
        return report
    try:
        info = host.info
        report.reachable = True
        report.engine = str(info.get("ServerVersion", ""))
        report.cpus = info.get("NCPU")
        report.memory_gib = round(int(info.get("MemTotal", 0)) / 2**30, 1)
        report.slots = host.slots
        if image is not None:
            report.has_image = image_state(host, image)
    finally:
        host.close()
    return report


def check_resources_fit(hosts: list[Host], spec: SweepSpec) -> None:
    """A trial asking for more CPUs than a host has would fail on every start there (the
    engine refuses it): refuse the sweep before any container, naming the host."""
    for host in hosts:
        cpus = host.info.get("NCPU")
        if isinstance(cpus, int) and spec.resources.cpus > cpus:
            raise SweepError(f"resources.cpus is {spec.resources.cpus:g} but host {host.name} "
                             f"has {cpus} CPU{'s' if cpus != 1 else ''}",
                             path=spec.source_path, hint="ask for at most as many CPUs as "
                             "the smallest host has")
