"""Reading requests: query parameters and JSON bodies, each checked with a 400 that names
what was wrong."""

from __future__ import annotations

import json
import math
import re
from urllib.parse import urlsplit

import falcon
import falcon.media

from mosic.api.errors import bad_request
from mosic.core import audio, listing
from mosic.core.keys import Folders
from mosic.core.listing import ListQuery
from mosic.core.text import InvalidText, client_text, unstorable
from mosic.media import transcode
from mosic.media.transcode import Rendition
from mosic.persistence.models import TAG_MAX, TITLE_MAX

MUSIC_FOLDER_MAX = 200

LIMIT_MAX = 500
DEFAULT_LIMIT = 100
# Deep enough for any catalogue, small enough for every database's integer type.
OFFSET_MAX = 1_000_000_000
URL_MAX = 2000
QUERY_MAX = TITLE_MAX * 5
CURSOR_MAX = 1000
# Deeper than any clip body; shallow enough that no decoder recursion comes near its limit.
JSON_DEPTH_MAX = 32
# Strings are blanked before brackets are counted, so a "[" inside a title is not nesting.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")
JSON_CLIP_FIELDS = {"title", "description", "duration", "audio_url", "artist", "album"}
PATCH_FIELDS = {"title", "description"}


def int_param(req, name: str, minimum: int, maximum: int | None = None) -> int | None:
    raw = req.get_param(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"'{name}' must be a whole number, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
        raise bad_request(f"'{name}' must be {bound}, got {value}")
    return value


RAW_FORMAT = "raw"


def rendition(req) -> Rendition | None:
    """The stream's ``format`` and ``bitrate``: None for the original file."""
    name = req.get_param("format")
    if name in (None, RAW_FORMAT):
        if req.get_param("bitrate") is not None:
            raise bad_request(f"'bitrate' needs 'format' {' or '.join(transcode.FORMATS)}")
        return None
    fmt = transcode.FORMATS.get(name)
    if fmt is None:
        allowed = ", ".join((RAW_FORMAT, *transcode.FORMATS))
        raise bad_request(f"'format' must be one of {allowed}; got {name!r}")
    kbps = int_param(req, "bitrate", transcode.BITRATE_MIN_KBPS, transcode.BITRATE_MAX_KBPS)
    return Rendition(fmt, kbps or fmt.default_kbps)


def start_offset(req, rendition: Rendition | None) -> float:
    """The stream's ``offset``: where a transcode starts, in seconds (0: the start)."""
    raw = req.get_param("offset")
    if raw is None:
        return 0.0
    if rendition is None:
        raise bad_request(
            f"'offset' needs 'format' {' or '.join(transcode.FORMATS)}: "
            "only a transcode can start later in the song (the original seeks by Range)"
        )
    try:
        return transcode.start_offset(raw)
    except ValueError as exc:
        raise bad_request(f"'offset' {exc}") from None


def list_query(req, seen: Folders, user_id: int | None = None) -> ListQuery:
    """The listing a request asks for, among the music folders ``seen``, with the marks of
    the user ``user_id``."""
    limit = int_param(req, "limit", 1, LIMIT_MAX)
    offset = int_param(req, "offset", 0, OFFSET_MAX)
    cursor = req.get_param("cursor")
    if offset is not None and cursor is not None:
        raise bad_request("use either 'offset' or 'cursor', not both")
    sort = req.get_param("sort") or listing.DEFAULT_SORT
    if sort.lstrip("-") not in listing.SORT_FIELDS or sort.count("-") > 1:
        allowed = ", ".join(f"{f}, -{f}" for f in listing.SORT_FIELDS)
        raise bad_request(f"'sort' must be one of {allowed}; got {sort!r}")
    if cursor is not None and len(cursor) > CURSOR_MAX:
        raise bad_request("'cursor': the cursor is not one this server issued")
    return ListQuery(
        limit=limit or DEFAULT_LIMIT,
        offset=offset,
        cursor=cursor,
        q=search_param(req, "q", QUERY_MAX),
        sort=sort,
        **{name: search_param(req, name, TAG_MAX) for name in listing.TEXT_FILTERS},
        year=int_param(req, "year", 1, audio.NUMBER_MAX),
        music_folder=search_param(req, "music_folder", MUSIC_FOLDER_MAX),
        source=choice_param(req, "source", listing.SOURCES),
        seen=seen,
        user_id=user_id,
    )


def choice_param(req, name: str, allowed: tuple[str, ...]) -> str | None:
    value = req.get_param(name)
    if value is not None and value not in allowed:
        raise bad_request(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}")
    return value


def search_param(req, name: str, limit: int) -> str | None:
    value = req.get_param(name)
    if value is not None and len(value) > limit:
        raise bad_request(f"'{name}' must be at most {limit} characters")
    problem = unstorable(name, value) if value is not None else None
    if problem:
        raise bad_request(problem)
    return value or None


def json_depth(data: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, counted without recursion."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub(b'""', data)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
    return deepest


class BoundedJson(falcon.media.BaseHandler):
    """Request bodies in JSON, read no further than ``max_bytes`` (413) and no deeper than
    ``JSON_DEPTH_MAX`` (400) before the decoder, which recurses, ever sees them."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._out = falcon.media.JSONHandler()

    def _too_large(self) -> falcon.HTTPContentTooLarge:
        return falcon.HTTPContentTooLarge(
            title="Body too large",
            description=f"JSON bodies are limited to {self._max_bytes // 1024} KB "
            "(MOSIC_MAX_JSON_KB)",
        )

    async def deserialize_async(self, stream, content_type, content_length):
        if content_length is not None and content_length > self._max_bytes:
            raise self._too_large()
        data = await stream.read(self._max_bytes + 1)
        if len(data) > self._max_bytes:
            raise self._too_large()
        if not data.strip():
            raise bad_request("the body is empty; send a JSON object")
        if json_depth(data) > JSON_DEPTH_MAX:
            raise bad_request(f"the JSON body nests deeper than {JSON_DEPTH_MAX} levels")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise bad_request("the body is not valid JSON in UTF-8") from None

    def serialize(self, media, content_type) -> bytes:
        return self._out.serialize(media, content_type)

    async def serialize_async(self, media, content_type) -> bytes:
        return await self._out.serialize_async(media, content_type)


async def json_object(req, allowed: set[str]) -> dict:
    if not (req.content_type or "").lower().startswith("application/json"):
        raise falcon.HTTPUnsupportedMediaType(
            title="Unsupported media type",
            description="send application/json (or multipart/form-data to upload a file)",
        )
    body = await req.get_media()
    if not isinstance(body, dict):
        raise bad_request("the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise bad_request(
            f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    return body


def text_field(body: dict, name: str, limit: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise bad_request(f"'{name}' is required")
        return None
    if not isinstance(value, str):
        raise bad_request(f"'{name}' must be a string")
    try:
        value = client_text(name, value, limit)
    except InvalidText as exc:
        raise bad_request(str(exc)) from None
    if required and value is None:
        raise bad_request(f"'{name}' must not be empty")
    return value


def duration_field(body: dict) -> float:
    value = body.get("duration")
    if value is None:
        raise bad_request("'duration' is required")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_request("'duration' must be a number of seconds")
    if value < 0:
        raise bad_request("'duration' must not be negative")
    return float(value)


def audio_url_field(body: dict) -> str:
    url = text_field(body, "audio_url", URL_MAX, required=True)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise bad_request("'audio_url' is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in url):
        raise bad_request("'audio_url' must be an absolute http(s) URL")
    return url
