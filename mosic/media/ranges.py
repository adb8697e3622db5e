"""Which bytes to send: Range requests and conditional requests (RFC 9110).

Pure functions of header values and sizes, so every rule is tested without HTTP.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass

_RANGE_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


class RangeNotSatisfiable(Exception):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in Content-Range

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range to serve, or None for the whole body.

    A header we cannot parse is ignored (RFC 9110 section 14.2); of several ranges only the
    first is served. Raises ``RangeNotSatisfiable`` when the syntax is fine but no byte of
    the file falls inside the first range.
    """
    if not header:
        return None
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parsed = []
    for spec in specs.split(","):
        match = _RANGE_SPEC.match(spec)
        if match is None:
            return None
        first, last = match.groups()
        if not first and not last:
            return None
        if first and last and int(last) < int(first):
            return None
        parsed.append((first, last))
    first, last = parsed[0]
    if not first:  # suffix form: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable()
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable()
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end)


def etag_for(sha256: str, variant: str | None = None) -> str:
    # Content-addressed files never change, so the hash is a strong validator; a rendition
    # (``variant``: format and bitrate) is encoded bit-exactly, so it never changes either.
    return f'"{sha256[:32]}-{variant}"' if variant else f'"{sha256[:32]}"'


def http_date(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment.replace(tzinfo=dt.UTC), usegmt=True)


def _parse_http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _weak_equal(a: str, b: str) -> bool:
    return a.removeprefix("W/") == b.removeprefix("W/")


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``etag`` (weak comparison, as for 304s)."""
    tags = _etags(if_none_match or "")
    return "*" in tags or any(_weak_equal(tag, etag) for tag in tags)


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, last_modified: dt.datetime
) -> bool:
    """True when a GET or HEAD should be answered 304 (RFC 9110 section 13.2.2)."""
    if if_none_match:
        return etag_matches(if_none_match, etag)
    since = _parse_http_date(if_modified_since)
    return since is not None and _seconds(last_modified) <= since


def range_applies(if_range: str | None, etag: str, last_modified: dt.datetime) -> bool:
    """Whether Range may be honoured under If-Range: only if the client's copy is current."""
    if not if_range:
        return True
    value = if_range.strip()
    if value.startswith('"') or value.startswith("W/"):
        return value == etag  # strong comparison; a weak tag never matches
    date = _parse_http_date(value)
    return date is not None and _seconds(last_modified) == date


def _seconds(moment: dt.datetime) -> dt.datetime:
    # HTTP dates have whole seconds.
    return moment.replace(tzinfo=dt.UTC, microsecond=0)
