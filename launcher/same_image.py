"""The image of a run being resumed: the run's own image, found again where possible.

In order: the build engine still has the run's image ID; or another host of the run
has it (it is shipped back, save/load keeps the ID); or the build context still has the
run's content digest, and is rebuilt (a rebuild gets a new image ID, said in the run's
notes). Anything else is a changed image, and the resume is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from launcher.engine import image_id_of
from launcher.errors import RunError
from launcher.image import BuiltImage
from launcher.store import ImageRecord

if TYPE_CHECKING:
    from launcher.hosts import Host

Build = Callable[[], BuiltImage]


def run_image(expected: ImageRecord, builder: Host, hosts: list[Host], build: Build,
              notes: list[str], run_id: str) -> BuiltImage:
    """The run's image on ``builder`` (see the module docstring); ``notes`` gets what
    the summary should say."""
    from launcher.shipping import ship

    if expected.id and _holds(builder, expected.id):
        return _known(builder, expected)
    holder = next((h for h in _holders(hosts, expected.id) if h is not builder), None)
    if holder is not None:
        ship(holder, expected.id, [builder])
        notes.append(f"image {expected.id[:19]} was missing on {builder.name}; it was copied "
                     f"back from {holder.name}")
        return _known(builder, expected)
    image = build()
    if image.id == expected.id or not expected.id:
        return image
    if expected.digest and image.digest == expected.digest:
        notes.append(f"the run's image {expected.id[:19]} was gone everywhere; it was rebuilt "
                     f"from the same content (digest {image.digest[:12]}) as {image.id[:19]}")
        return image
    what = (f"its build context now has digest {image.digest[:12]}, the run's had "
            f"{expected.digest[:12]}" if expected.digest and image.digest else
            f"{expected.tag or 'its tag'} is now {image.id[:19]}, the run used "
            f"{expected.id[:19]}")
    raise RunError(f"the image changed since run {run_id} started ({what})",
                   hint="restore the build context (or load the run's image again), or "
                   "start a new run")


def _holds(host: Host, image_id: str) -> bool:
    try:
        return image_id_of(host.client.api, image_id) == image_id
    except Exception:  # a host that does not answer holds nothing we can use
        return False


def _holders(hosts: list[Host], image_id: str) -> list[Host]:
    if not image_id or not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
        held = list(pool.map(lambda h: _holds(h, image_id), hosts))
    return [h for h, yes in zip(hosts, held, strict=True) if yes]


def _known(builder: Host, expected: ImageRecord) -> BuiltImage:
    """The run's image as it is on ``builder``, tagged again if the tag was lost."""
    api = builder.client.api
    if expected.tag and image_id_of(api, expected.tag) != expected.id:
        repository, _, tag = expected.tag.rpartition(":")
        api.tag(expected.id, repository or expected.tag, tag or None, force=True)
    config = api.inspect_image(expected.id).get("Config") or {}
    return BuiltImage(id=expected.id, tag=expected.tag or "", digest=expected.digest or "",
                      base=expected.base or "", user=str(config.get("User") or ""))
