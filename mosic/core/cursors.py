"""Opaque paging cursors: the sort key and id of the last clip of a page, for keyset paging."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid

from mosic.core.text import unstorable
from mosic.persistence.models import Clip

# Numbers in a cursor must fit a 64-bit column, or the database refuses the query.
CURSOR_NUMBER_MAX = 2**63 - 1


class InvalidCursor(ValueError):
    pass


def encode_cursor(sort: str, clip: Clip) -> str:
    value = getattr(clip, sort.lstrip("-"))
    if isinstance(value, dt.datetime):
        # The stored time, naive UTC, whether it came so or UTC-aware (a list page's).
        value = value.replace(tzinfo=None).isoformat()
    raw = json.dumps({"s": sort, "v": value, "id": str(clip.id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[object, uuid.UUID]:
    """(sort value, clip id) of a cursor this server issued for ``sort``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        if data["s"] != sort:
            raise InvalidCursor("the cursor belongs to a different sort order")
        value = _sort_value(sort.lstrip("-"), data["v"])
        return value, uuid.UUID(data["id"])
    except InvalidCursor:
        raise
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidCursor("the cursor is not one this server issued") from None


def _sort_value(field: str, value: object) -> object:
    if field == "created_at":
        return dt.datetime.fromisoformat(value)
    if field == "title":
        if not isinstance(value, str) or unstorable("cursor", value):
            raise InvalidCursor("the cursor is not one this server issued")
        return value
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not -CURSOR_NUMBER_MAX <= value <= CURSOR_NUMBER_MAX
    ):
        raise InvalidCursor("the cursor is not one this server issued")
    return value
