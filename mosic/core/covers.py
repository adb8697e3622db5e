"""Covers at the size a Subsonic app asks (``getCoverArt&size=``): resized once with Pillow
and kept as a blob named by the cover's content hash and the size, so each (cover, size) is
made once across restarts and replicas. A picture is never enlarged, and one Pillow cannot
read is sent as it is: a cover is never a reason for an error."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image, UnidentifiedImageError


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
