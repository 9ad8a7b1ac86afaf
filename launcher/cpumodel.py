"""The CPU model of remote engines, for the manifest: read once per distinct engine, in
the background, while the trials already run.

The engine API does not report the CPU model, so a tiny hardened container of the run's
image reads /proc/cpuinfo. Several host entries can be one engine (the same engine ID):
it is read once for all of them, and remembered by engine ID in the user's cache folder
(``$XDG_CACHE_HOME/launcher/cpu-models.json``), so that the next run over 1,000 hosts
starts no probe at all. Nothing waits for it except the final manifest, for a bounded
time; a model not read by then is "unknown". The probe carries the run's labels, so the
run's teardown (or `launch clean`) removes one left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from launcher.hosts import cpu_model_of
from launcher.trial import LABEL_MANAGED, LABEL_RUN

if TYPE_CHECKING:
    from launcher.hosts import Host

PROBE_WORKERS = 4  # probes at once: they share the hosts with the trials
PROBE_TIMEOUT = 30  # seconds for the probe container to print /proc/cpuinfo
UNKNOWN = "unknown"
CACHE_ENTRIES = 10_000  # engines remembered (the oldest are forgotten first)


class CpuModels:
    """Reads the CPU model of every host that lacks one, in a background thread."""

    def __init__(self, hosts: Sequence[Host], image_id: str, run_id: str) -> None:
        self._groups: dict[str, list[Host]] = {}
        known = load_cache()
        for host in hosts:
            engine = str(host.info.get("ID") or "")
            if not host.info.get("cpu_model") and engine in known:
                host.info["cpu_model"] = known[engine]
            if not host.info.get("cpu_model"):
                self._groups.setdefault(engine or host.spec.url, []).append(host)
        self._image_id, self._run_id = image_id, run_id
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def engines(self) -> int:
        """Distinct engines to read (one probe container each)."""
        return len(self._groups)

    def start(self) -> None:
        if self._groups:
            self._thread = threading.Thread(target=self._read_all, name="cpu-models",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float) -> None:
        """Start no more probes and wait up to ``timeout`` seconds for those running (before
        teardown: a probe created after it would be left behind)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

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
            if self._stopping.is_set():
                return
            group[0].dirty = True  # its probe container may be left there: teardown looks
            model = probe(group[0], self._image_id, self._run_id)
            for host in group:
                host.info["cpu_model"] = model

        each(read, list(self._groups.values()), workers=PROBE_WORKERS)
        save_cache({engine: group[0].info["cpu_model"] for engine, group in
                    self._groups.items() if group[0].info.get("ID") and
                    group[0].info.get("cpu_model") not in ("", UNKNOWN)})


def cache_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "launcher" / "cpu-models.json"


def load_cache() -> dict[str, str]:
    """Engine ID -> CPU model, as read before (empty when there is no cache)."""
    try:
        data = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def save_cache(found: dict[str, str]) -> None:
    """Remember newly read models (best effort: a read-only home just means no cache)."""
    if not found:
        return
    merged = {**load_cache(), **found}
    merged = dict(list(merged.items())[-CACHE_ENTRIES:])
    path = cache_path()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=0))
        os.replace(tmp, path)


def probe(host: Host, image_id: str, run_id: str) -> str:
    """The CPU model seen by a throwaway, hardened container on ``host`` (the caller
    marks the host dirty first: teardown looks for a probe left behind)."""
    from launcher.engine import container_logs

    api = host.client.api
    cid = ""
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
