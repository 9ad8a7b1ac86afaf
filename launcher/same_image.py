"""The image of a run being resumed: the run's own image, found again where possible.

The build engine gets the run's image back if another host of the run still has it
(shipped back: save/load keeps the ID); the sweep's image is then built as usual, which
costs nothing while the build context is unchanged (the image is found by its content
digest). The result must be the run's image, or, when that is gone everywhere, a rebuild
of the same content (a rebuild gets a new image ID, said in the run's notes). Anything
else is a changed image, and the resume is refused, naming the files that changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from launcher.engine import image_id_of
from launcher.errors import RunError
from launcher.image import IMAGE_REPOSITORY, BuiltImage
from launcher.parallel import each
from launcher.store import ImageRecord

if TYPE_CHECKING:
    from launcher.hosts import Host

Build = Callable[[], BuiltImage]


def run_image(expected: ImageRecord, builder: Host, hosts: list[Host], build: Build,
              notes: list[str], run_id: str) -> BuiltImage:
    """The run's image on ``builder`` (see the module docstring); ``notes`` gets what
    the summary should say."""
    from launcher.shipping import ship

    present = bool(expected.id) and _holds(builder, expected.id)
    if expected.id and not present:
        holder = next((h for h in _holders(hosts, expected.id) if h is not builder), None)
        if holder is not None:
            ship(holder, expected.id, [builder])
            notes.append(f"image {expected.id[:19]} was missing on {builder.name}; it was "
                         f"copied back from {holder.name}")
            present = True
    if present:
        _tag_again(builder, expected)
    image = build()
    if image.id == expected.id or not expected.id:
        return image
    if expected.digest and image.digest == expected.digest and not present:
        notes.append(f"the run's image {expected.id[:19]} was gone everywhere; it was rebuilt "
                     f"from the same content (digest {image.digest[:12]}) as {image.id[:19]}")
        return image
    raise RunError(f"the image changed since run {run_id} started ({_what(expected, image)})",
                   hint="restore those files (or load the run's image again), or start a "
                   "new run of the sweep")


def _what(expected: ImageRecord, image: BuiltImage) -> str:
    """What differs, in words: the digests and the files that changed (when the run
    recorded its build inputs), else the tag's new image."""
    from launcher.buildcontext import describe_changes

    if not (expected.digest and image.digest):
        return f"{expected.tag or 'its tag'} is now {image.id[:19]}, the run used " \
            f"{expected.id[:19]}"
    what = f"its build context now has digest {image.digest[:12]}, the run's had " \
        f"{expected.digest[:12]}"
    changes = describe_changes(expected.inputs or {}, image.inputs)
    return f"{what}; {changes}" if changes else what


def _holds(host: Host, image_id: str) -> bool:
    try:
        return image_id_of(host.client.api, image_id) == image_id
    except Exception:  # a host that does not answer holds nothing we can use
        return False


def _holders(hosts: list[Host], image_id: str) -> list[Host]:
    held = each(lambda h: _holds(h, image_id), hosts)
    return [h for h, yes in zip(hosts, held, strict=True) if yes is True]


def _tag_again(builder: Host, expected: ImageRecord) -> None:
    """A launcher tag of the run's image lost (or moved by a rebuild) points at the run's
    image again, so that the build finds it by its content. A user's own tag is left
    as it is: if it moved, the resume is refused."""
    api = builder.client.api
    if expected.tag and expected.tag.startswith(f"{IMAGE_REPOSITORY}:") and \
            image_id_of(api, expected.tag) != expected.id:
        repository, _, tag = expected.tag.rpartition(":")
        api.tag(expected.id, repository, tag, force=True)
