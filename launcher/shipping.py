"""Make every host hold exactly the run's image: ship where missing, verify the ID.

Every host is checked with one engine call (its image under the run's tag; by ID only
when the tag is absent), at most HOST_WORKERS hosts at once. One ``save`` stream from
the source engine is teed into concurrent ``load`` streams to the hosts that lack the
image, in bounded chunks (the image is never held in memory as a whole), when they are
at most SHIP_FANOUT; with more, the stream is spooled to a temporary file once and
SHIP_FANOUT loads at a time read it. Afterwards the image ID, the sha256 of the image
config that save/load preserves, is checked on every shipped host; a host that holds a
different image under the run's tag is refused before any trial starts.
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from launcher.engine import image_id_of
from launcher.errors import HostError
from launcher.image import BuiltImage

if TYPE_CHECKING:
    from launcher.hosts import Host

CHUNK = 1024 * 1024
QUEUE_CHUNKS = 16  # per target: at most 16 MiB in flight
SHIP_FANOUT = 16  # hosts loading at once (a thread and a connection each)
_END = b""


def ensure_image_on_hosts(image: BuiltImage, source: Host, hosts: list[Host],
                          on_line: Callable[[str], None] | None = None) -> dict[str, str]:
    """``{host name: "present" | "shipped"}``; raises HostError on any mismatch."""
    from launcher.parallel import each

    states = each(lambda h: _check_host(h, image), hosts)
    for state in states:
        if isinstance(state, BaseException):
            raise state
    missing = [h for h, present in zip(hosts, states, strict=True) if not present]
    if missing:
        if on_line:
            names = ", ".join(h.name for h in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            on_line(f"shipping image {image.id[:19]} to {names}{more}")
        ship(source, image.tag or image.id, missing)
        for host, held in zip(missing, each(lambda h: _has(h, image.id), missing),
                              strict=True):
            if isinstance(held, BaseException):
                raise held
            if not held:
                raise HostError(f"after loading, the host does not hold image {image.id}",
                                host=host.name, hint="its engine may rewrite images; check "
                                "`docker images` there")
    return {h.name: "shipped" if h in missing else "present" for h in hosts}


def _check_host(host: Host, image: BuiltImage) -> bool:
    """True when the host already has the image (one call when the tag is there);
    refuses a different image under its tag."""
    if image.tag:
        tagged = _image_id(host, image.tag)
        if tagged == image.id:
            return True
        if tagged is not None:
            raise HostError(f"holds a different image under the tag {image.tag} "
                            f"({tagged[:19]}, this run uses {image.id[:19]})", host=host.name,
                            hint=f"remove it there (docker rmi {image.tag}) so that the "
                            "launcher ships the right one")
    return _has(host, image.id)


def image_state(host: Host, image: BuiltImage) -> str:
    """"yes", "no" or "different image under the tag" (for `launch hosts`)."""
    try:
        return "yes" if _check_host(host, image) else "no"
    except HostError:
        return "different image under the tag"


def _has(host: Host, image_id: str) -> bool:
    return _image_id(host, image_id) == image_id


def _image_id(host: Host, ref: str) -> str | None:
    import docker.errors

    try:
        return image_id_of(host.client.api, ref)
    except docker.errors.APIError as e:
        raise HostError(f"cannot inspect images: {e}", host=host.name) from e


def ship(source: Host, ref: str, targets: list[Host]) -> None:
    """Stream ``docker save ref`` from ``source`` into ``docker load`` on every target.

    Up to SHIP_FANOUT targets, one save stream is teed to all of them (nothing on disk).
    With more, the save is spooled to a temporary file once and SHIP_FANOUT loads at a
    time each read it at their own pace (a slow host holds back no other)."""
    from launcher.parallel import each

    if len(targets) <= SHIP_FANOUT:
        _ship_wave(source.client.api.get_image(ref, chunk_size=CHUNK), targets)
        return
    with tempfile.NamedTemporaryFile(prefix="launcher-image-") as spool:
        for chunk in source.client.api.get_image(ref, chunk_size=CHUNK):
            spool.write(chunk)
        spool.flush()
        failed = each(lambda t: _load_file(t, spool.name), targets, workers=SHIP_FANOUT)
    for target, error in zip(targets, failed, strict=True):
        if isinstance(error, BaseException):
            raise HostError(f"loading the image failed: {error}", host=target.name) from error


def _load_file(target: Host, path: str) -> None:
    with open(path, "rb") as f:
        for status in target.client.api.load_image(iter(lambda: f.read(CHUNK), b"")):
            if isinstance(status, dict) and status.get("error"):
                raise RuntimeError(str(status["error"]))


def _ship_wave(chunks: Iterable[bytes], targets: list[Host]) -> None:
    """Tee ``chunks`` into one ``load`` stream per target (one thread each)."""
    queues = [queue.Queue[bytes](maxsize=QUEUE_CHUNKS) for _ in targets]
    failed: list[BaseException | None] = [None] * len(targets)
    threads = [threading.Thread(target=_load, args=(t, q, failed, i), daemon=True,
                                name=f"load-{t.name}") for i, (t, q) in
               enumerate(zip(targets, queues, strict=True))]
    for thread in threads:
        thread.start()
    try:
        for chunk in chunks:
            for i, q in enumerate(queues):
                _put(q, chunk, failed, i)
    except BaseException as e:
        # Interrupted, or the source failed: the loads are abandoned (their threads end
        # with their engine calls) instead of waited for.
        for i in range(len(failed)):
            failed[i] = failed[i] or e
        raise
    finally:
        for i, q in enumerate(queues):
            _put(q, _END, failed, i)
    for thread in threads:
        thread.join()
    for target, error in zip(targets, failed, strict=True):
        if error is not None:
            raise HostError(f"loading the image failed: {error}", host=target.name) from error


def _put(q: queue.Queue[bytes], chunk: bytes, failed: list[BaseException | None],
         i: int) -> None:
    while failed[i] is None:  # a failed consumer reads no more: skip it, never block
        try:
            q.put(chunk, timeout=0.5)
            return
        except queue.Full:
            continue


def _load(target: Host, q: queue.Queue[bytes], failed: list[BaseException | None],
          i: int) -> None:
    def chunks() -> Iterator[bytes]:
        while (chunk := q.get()) != _END:
            yield chunk

    try:
        for status in target.client.api.load_image(chunks()):
            if isinstance(status, dict) and status.get("error"):
                raise RuntimeError(str(status["error"]))
    except BaseException as e:
        failed[i] = e
        _drain(q)


def _drain(q: queue.Queue[Any]) -> None:
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return
