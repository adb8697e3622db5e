"""Covers: the picture a clip's file embeds, stored once as a blob named by its content hash
(with its type's extension, so a store's listing, or an S3 console, shows what it is).

At the size a Subsonic app asks (``getCoverArt&size=``) a cover is resized once with Pillow
and kept as a blob named by the cover's hash and the size, so each (cover, size) is made once
across restarts and replicas. A picture is never enlarged, and one Pillow cannot read is sent
as it is: a cover is never a reason for an error."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError

from mosic.core import audio
from mosic.media.storage import MediaMissing, MediaStore
from mosic.persistence.models import WholeClip

IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
}


class NoCover(Exception):
    """The clip has no cover (its file embeds no picture), or the stored cover is gone."""


@dataclass(frozen=True)
class Cover:
    name: str  # the blob's name: content-addressed, so a strong ETag
    data: bytes
    mime: str


# The sizes a cover is scaled to: an asked size is served at the largest step not above it
# (at least two thirds of it), so a client trying every size from 1 to 4096 makes at most
# these copies of one cover, and they can all be removed with it. Sizes below the first
# step get that step: nothing draws a cover smaller than 16 pixels.
SIZE_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096)


def size_step(size: int) -> int:
    return max([SIZE_STEPS[0], *(step for step in SIZE_STEPS if step <= size)])


def sized_name(cover_name: str, size: int) -> str:
    """``<sha256>-<step>.<ext>``: the stored original's name with its size step in it."""
    path = PurePosixPath(cover_name)
    return f"{path.stem}-{size_step(size)}{path.suffix}"


def sized_names(cover_name: str) -> list[str]:
    """Every scaled copy a cover can have."""
    return [sized_name(cover_name, step) for step in SIZE_STEPS]


def _resized(data: bytes, size: int) -> bytes | None:
    """The picture with its longest side ``size``, in its own format; None when it is not
    bigger than that already, or not a picture Pillow reads."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            if max(picture.size) <= size:
                return None
            kind = picture.format
            picture.thumbnail((size, size), Image.Resampling.LANCZOS)
            out = io.BytesIO()
            picture.save(out, kind)
            return out.getvalue()
    except (UnidentifiedImageError, OSError, ValueError):
        return None


async def resized(data: bytes, size: int) -> bytes | None:
    # Decoding and scaling a picture takes milliseconds of CPU: off the event loop.
    return await asyncio.to_thread(_resized, data, size)


def image_extension(mime: str) -> str:
    return IMAGE_EXTENSIONS.get(mime, ".img")


def blob_name(data: bytes, mime: str) -> str:
    """``<sha256>.<ext>``: the name a cover's bytes are stored under."""
    return hashlib.sha256(data).hexdigest() + image_extension(mime)


class Covers:
    """Clips' covers in the media store: kept when a file is read, served at any size."""

    def __init__(self, *, store: MediaStore) -> None:
        self._store = store

    async def get(self, clip: WholeClip) -> bytes:
        """The bytes of the clip's cover; raises ``NoCover``."""
        if clip.cover_name is None:
            raise NoCover(clip.id)
        try:
            return await self._store.get(clip.cover_name)
        except MediaMissing:
            raise NoCover(clip.id) from None

    async def at(self, clip: WholeClip, size: int | None) -> Cover:
        """The clip's cover with its longest side at most ``size`` (None: as embedded);
        raises ``NoCover``. A resized picture is made once and kept in the store."""
        if size is None or clip.cover_name is None:
            return Cover(clip.cover_name, await self.get(clip), clip.cover_type)
        name = sized_name(clip.cover_name, size)
        with contextlib.suppress(MediaMissing):
            return Cover(name, await self._store.get(name), clip.cover_type)
        original = await self.get(clip)
        data = await resized(original, size_step(size))
        if data is None:  # already that small (or unreadable): the original, as it is
            return Cover(clip.cover_name, original, clip.cover_type)
        await self._store.put(name, data, content_type=clip.cover_type)
        return Cover(name, data, clip.cover_type)

    async def keep(self, info: audio.AudioInfo) -> dict:
        """Store the file's cover once by its content hash; the columns that name it."""
        if info.cover is None:
            return {}
        name = blob_name(info.cover.data, info.cover.mime)
        await self._store.put(name, info.cover.data, content_type=info.cover.mime)
        return {"cover_name": name, "cover_type": info.cover.mime}
