"""Receiving a multipart upload: the file part streams into the media store as it arrives.

Only the file is written; the small text fields are read into memory (Falcon caps each at
``max_body_part_buffer_size``). Size is counted here because Falcon ASGI puts no limit on a
streamed body part.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import falcon

from mosic.catalogue import DESCRIPTION_MAX, InvalidText, UploadForm, client_text
from mosic.models import TITLE_MAX
from mosic.storage import IncomingFile, MediaStore

FILE_FIELD = "file"
TEXT_FIELDS = {"title": TITLE_MAX, "description": DESCRIPTION_MAX}


class BadUpload(ValueError):
    """The form is well-formed multipart but not an upload we can take."""


@contextlib.asynccontextmanager
async def receive_upload(
    req: falcon.asgi.Request, store: MediaStore, limit: int
) -> AsyncIterator[tuple[IncomingFile, UploadForm]]:
    """Yield the received file and form fields; the partial file is removed on any failure
    and whenever the caller did not publish it."""
    incoming: IncomingFile | None = None
    form = UploadForm()
    try:
        multipart = await req.get_media()
        async for part in multipart:
            if part.name == FILE_FIELD:
                if incoming is not None:
                    raise BadUpload(f"send exactly one '{FILE_FIELD}' part")
                incoming = store.open_incoming(limit)
                form.filename = part.filename
                async for chunk in part.stream:
                    await incoming.write(chunk)
                await incoming.finish()
            elif part.name in TEXT_FIELDS:
                text = await part.get_text()
                if text is None:
                    raise BadUpload(f"'{part.name}' is not valid text in its declared charset")
                try:
                    value = client_text(part.name, text, TEXT_FIELDS[part.name])
                except InvalidText as exc:
                    raise BadUpload(str(exc)) from None
                setattr(form, part.name, value)
            else:
                # Unknown fields are drained and ignored, as HTML forms may carry extras.
                async for _ in part.stream:
                    pass
        if incoming is None:
            raise BadUpload(f"the form has no '{FILE_FIELD}' part")
        if incoming.size == 0:
            raise BadUpload(f"the '{FILE_FIELD}' part is empty")
        yield incoming, form
    finally:
        if incoming is not None:
            req.context.upload_bytes = incoming.size
            store.discard(incoming)
