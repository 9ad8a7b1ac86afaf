"""The CPU model of remote engines, for the manifest: read once per distinct engine, in
the background, while the trials already run.

The engine API does not report the CPU model, so a tiny hardened container of the run's
image reads /proc/cpuinfo. Several host entries can be one engine (the same engine ID):
it is read once for all of them. Nothing waits for it except the final manifest, for a
bounded time; a model not read by then is "unknown". The probe carries the run's labels,
so the run's teardown (or `launch clean`) removes one left behind.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from launcher.hosts import cpu_model_of
from launcher.trial import LABEL_MANAGED, LABEL_RUN

if TYPE_CHECKING:
    from launcher.hosts import Host

PROBE_WORKERS = 4  # probes at once: they share the hosts with the trials
PROBE_TIMEOUT = 30  # seconds for the probe container to print /proc/cpuinfo
UNKNOWN = "unknown"


class CpuModels:
    """Reads the CPU model of every host that lacks one, in a background thread."""

    def __init__(self, hosts: Sequence[Host], image_id: str, run_id: str) -> None:
        self._groups: dict[str, list[Host]] = {}
        for host in hosts:
            if not host.info.get("cpu_model"):
                key = str(host.info.get("ID") or host.spec.url)
                self._groups.setdefault(key, []).append(host)
        self._image_id, self._run_id = image_id, run_id
        self._thread: threading.Thread | None = None

    @property
    def engines(self) -> int:
        """Distinct engines to read (one probe container each)."""
        return len(self._groups)

    def start(self) -> None:
        if self._groups:
            self._thread = threading.Thread(target=self._read_all, name="cpu-models",
                                            daemon=True)
            self._thread.start()

    def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds; what is not read by then stays unknown."""
        if self._thread is not None:
            self._thread.join(timeout)
        for group in self._groups.values():
            for host in group:
                host.info.setdefault("cpu_model", "")
                host.info["cpu_model"] = host.info["cpu_model"] or UNKNOWN

    def _read_all(self) -> None:
        from launcher.parallel import each

        def read(group: list[Host]) -> None:
            model = probe(group[0], self._image_id, self._run_id)
            for host in group:
                host.info["cpu_model"] = model

        each(read, list(self._groups.values()), workers=PROBE_WORKERS)


def probe(host: Host, image_id: str, run_id: str) -> str:
    """The CPU model seen by a throwaway, hardened container on ``host``."""
    from launcher.engine import container_logs

    api = host.client.api
    cid, left = "", True
    try:
        cid = api.create_container(
            image_id, entrypoint=["cat", "/proc/cpuinfo"], network_disabled=True,
            labels={LABEL_MANAGED: "true", LABEL_RUN: run_id},
            host_config=api.create_host_config(network_mode="none", read_only=True,
                                               cap_drop=["ALL"], mem_limit=32 * 2**20))["Id"]
        api.start(cid)
        api.wait(cid, timeout=PROBE_TIMEOUT)
        text = b"".join(container_logs(api, cid)).decode("utf-8", "replace")
        return cpu_model_of(text) or UNKNOWN
    except Exception:  # provenance only: an image without `cat` leaves it unknown
        return UNKNOWN
    finally:
        if cid:
            with contextlib.suppress(Exception):
                api.remove_container(cid, force=True)
                left = False
        host.dirty |= left
