"""Receiving a multipart upload: the file part streams into the media store as it arrives.

Only the file is written; the small text fields are read into memory (Falcon caps each at
``max_body_part_buffer_size``). Size is counted by the store because Falcon ASGI puts no limit
on a streamed body part.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import falcon

from mosic.api.errors import DuplicateUpload, bad_request, too_large
from mosic.core.analysis import UploadAnalysis
from mosic.core.audio import NotAudio
from mosic.core.catalogue import Catalogue, DuplicateClip
from mosic.core.clip_rows import UploadForm
from mosic.core.text import DESCRIPTION_MAX, InvalidText, client_text
from mosic.media.storage import Incoming, UploadTooLarge
from mosic.observability.metrics import Metrics, UploadOutcome
from mosic.persistence.models import TITLE_MAX, Clip

FILE_FIELD = "file"
TEXT_FIELDS = {"title": TITLE_MAX, "description": DESCRIPTION_MAX}
SUPPORTED = "MP3, Ogg Vorbis, Opus, FLAC, WAV, AIFF, M4A/AAC"
# How a failed upload is counted in mosic_uploads_total, by the status it was answered with.
OUTCOME_BY_STATUS = {
    400: UploadOutcome.INVALID,
    409: UploadOutcome.DUPLICATE,
    413: UploadOutcome.TOO_LARGE,
    415: UploadOutcome.NOT_AUDIO,
}


class BadUpload(ValueError):
    """The form is well-formed multipart but not an upload we can take."""


class Uploads:
    """Turns an upload request into a clip, counted in the metrics by its outcome."""

    def __init__(
        self, *, catalogue: Catalogue, analysis: UploadAnalysis, max_bytes: int, metrics: Metrics
    ) -> None:
        self._catalogue = catalogue
        self._analysis = analysis
        self._max_bytes = max_bytes
        self._metrics = metrics

    async def add(self, req) -> Clip:
        outcome = UploadOutcome.FAILED
        try:
            clip = await self._receive(req)
            outcome = UploadOutcome.CREATED
            self._analysis.soon(clip.id)  # its loudness after the 201, not before
            return clip
        except falcon.HTTPError as exc:
            outcome = OUTCOME_BY_STATUS.get(exc.status_code, UploadOutcome.FAILED)
            raise
        finally:
            self._metrics.upload(outcome, req.context.get("upload_bytes", 0))

    async def _receive(self, req) -> Clip:
        length = req.content_length
        if length is not None and length > self._max_bytes:
            raise too_large(self._max_bytes)
        try:
            async with receive_upload(req, self._catalogue, self._max_bytes) as (incoming, form):
                form.owner_id = req.context.grant.user.id
                return await self._catalogue.add_upload(incoming, form)
        except UploadTooLarge:
            raise too_large(self._max_bytes) from None
        except BadUpload as exc:
            raise bad_request(str(exc)) from None
        except NotAudio as exc:
            raise falcon.HTTPUnsupportedMediaType(
                title="Not audio", description=f"{exc}; supported: {SUPPORTED}"
            ) from None
        except DuplicateClip as exc:
            raise DuplicateUpload(exc.existing_id) from None


@contextlib.asynccontextmanager
async def receive_upload(
    req: falcon.asgi.Request, catalogue: Catalogue, limit: int
) -> AsyncIterator[tuple[Incoming, UploadForm]]:
    """Yield the received file and form fields; the partial file is removed on any failure
    and whenever the caller did not publish it."""
    incoming: Incoming | None = None
    form = UploadForm()
    try:
        multipart = await req.get_media()
        async for part in multipart:
            if part.name == FILE_FIELD:
                if incoming is not None:
                    raise BadUpload(f"send exactly one '{FILE_FIELD}' part")
                incoming = await catalogue.receive(limit)
                form.filename = part.filename
                async for chunk in part.stream:
                    await incoming.write(chunk)
                await incoming.finish()
            elif part.name in TEXT_FIELDS:
                setattr(form, part.name, await _text_part(part))
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
            await incoming.discard()


async def _text_part(part) -> str | None:
    text = await part.get_text()
    if text is None:
        raise BadUpload(f"'{part.name}' is not valid text in its declared charset")
    try:
        return client_text(part.name, text, TEXT_FIELDS[part.name])
    except InvalidText as exc:
        raise BadUpload(str(exc)) from None
