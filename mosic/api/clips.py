"""REST resources for the clip catalogue: ``/play``, ``/play/upload``, ``/play/{id}``, stats.

Each responder parses the request, calls the catalogue, and shapes the answer. Who may call
them is declared with the routes (``mosic.app``), not here.
"""

from __future__ import annotations

import uuid

import falcon

from mosic.api import params
from mosic.api.errors import bad_request
from mosic.api.shapes import AnswerLinks, clip_json, next_link, page_json, stats_json
from mosic.api.uploads import Uploads
from mosic.core.catalogue import Catalogue
from mosic.core.cursors import InvalidCursor
from mosic.core.listing import Listing
from mosic.core.marks import UNMARKED, ClipMarks, Marks
from mosic.core.signing import Signer
from mosic.core.text import DESCRIPTION_MAX
from mosic.persistence.models import TAG_MAX, TITLE_MAX, UPLOADS, Clip

MULTIPART = "multipart/form-data"


def created(req, resp, clip: Clip, signer: Signer) -> None:
    resp.status = falcon.HTTP_201
    resp.location = f"/play/{clip.id}"
    resp.media = clip_json(clip, links(req, signer))


def may_upload(req) -> None:
    """Refuse, before a byte of the body is read, a listener who would not see its upload."""
    user = req.context.grant.user
    if not user.may_upload:
        raise falcon.HTTPForbidden(
            title="Uploads are not among your folders",
            description=(
                f"new clips land in the music folder {UPLOADS!r}, which your music_folders "
                "leave out; an admin may add it to them"
            ),
        )


def links(req, signer: Signer) -> AnswerLinks:
    """The answer's signed links, made for the caller: they open what it may see."""
    user = req.context.grant.user
    return AnswerLinks(signer.for_user(user.id if user is not None else None))


class ClipCollection:
    """``/play``"""

    def __init__(
        self, *, catalogue: Catalogue, listing: Listing, signer: Signer, uploads: Uploads
    ) -> None:
        self._catalogue = catalogue
        self._listing = listing
        self._signer = signer
        self._uploads = uploads

    async def on_get(self, req, resp) -> None:
        grant = req.context.grant
        query = params.list_query(req, seen=grant.folders, user_id=grant.user.id)
        try:
            page = await self._listing.list(query)
        except InvalidCursor as exc:
            raise bad_request(f"'cursor': {exc}") from None
        # Made here, straight from the rows, rather than by the JSON handler from objects.
        resp.data = page_json(page.rows, links(req, self._signer))
        resp.content_type = falcon.MEDIA_JSON
        resp.set_header("X-Total-Count", str(page.total))
        link = next_link(req.path, query, page)
        if link:
            resp.set_header("Link", link)

    async def on_post(self, req, resp) -> None:
        may_upload(req)
        if (req.content_type or "").startswith(MULTIPART):
            created(req, resp, await self._uploads.add(req), self._signer)
            return
        body = await params.json_object(req, params.JSON_CLIP_FIELDS)
        clip = await self._catalogue.add_external(
            title=params.text_field(body, "title", TITLE_MAX, required=True),
            description=params.text_field(body, "description", DESCRIPTION_MAX),
            duration=params.duration_field(body),
            audio_url=params.audio_url_field(body),
            artist=params.text_field(body, "artist", TAG_MAX),
            album=params.text_field(body, "album", TAG_MAX),
            owner_id=req.context.grant.user.id,
        )
        created(req, resp, clip, self._signer)


class ClipUpload:
    """``/play/upload``"""

    def __init__(self, *, signer: Signer, uploads: Uploads) -> None:
        self._signer = signer
        self._uploads = uploads

    async def on_post(self, req, resp) -> None:
        may_upload(req)
        if not (req.content_type or "").startswith(MULTIPART):
            raise falcon.HTTPUnsupportedMediaType(
                title="Unsupported media type",
                description="send multipart/form-data with a 'file' part",
            )
        created(req, resp, await self._uploads.add(req), self._signer)


class ClipItem:
    """``/play/{clip_id}``"""

    def __init__(self, *, catalogue: Catalogue, signer: Signer, marks: Marks) -> None:
        self._catalogue = catalogue
        self._signer = signer
        self._marks = marks

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self._catalogue.get(clip_id, seen=req.context.grant.folders)
        marks = await caller_marks(self._marks, req, clip.id)
        resp.media = clip_json(clip, links(req, self._signer), marks)

    async def on_patch(self, req, resp, clip_id: uuid.UUID) -> None:
        body = await params.json_object(req, params.PATCH_FIELDS)
        changes = {}
        if "title" in body:
            changes["title"] = params.text_field(body, "title", TITLE_MAX, required=True)
        if "description" in body:
            changes["description"] = params.text_field(body, "description", DESCRIPTION_MAX)
        clip = await self._catalogue.update(clip_id, changes, by=req.context.grant.user)
        marks = await caller_marks(self._marks, req, clip.id)
        resp.media = clip_json(clip, links(req, self._signer), marks)

    async def on_delete(self, req, resp, clip_id: uuid.UUID) -> None:
        await self._catalogue.delete(clip_id, by=req.context.grant.user)
        resp.status = falcon.HTTP_204


class ClipStats:
    """``/play/{clip_id}/stats``"""

    def __init__(self, *, catalogue: Catalogue, signer: Signer, marks: Marks) -> None:
        self._catalogue = catalogue
        self._signer = signer
        self._marks = marks

    async def on_get(self, req, resp, clip_id: uuid.UUID) -> None:
        clip = await self._catalogue.get(clip_id, seen=req.context.grant.folders)
        marks = await caller_marks(self._marks, req, clip.id)
        resp.media = stats_json(clip, links(req, self._signer), marks)


async def caller_marks(marks: Marks, req, clip_id: uuid.UUID) -> ClipMarks:
    """The caller's marks of one clip (none for an old signed link's, which is nobody's)."""
    user = req.context.grant.user
    if user is None:
        return UNMARKED
    return await marks.of_one(user.id, clip_id)
