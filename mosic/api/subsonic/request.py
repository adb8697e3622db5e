"""A Subsonic call's parameters: the query string and, for a POST, the urlencoded form
(OpenSubsonic ``formPost``), merged; repeated names (``id=a&id=b``) keep every value."""

from __future__ import annotations

from urllib.parse import parse_qsl

import falcon

from mosic.api.subsonic.response import Code, SubsonicError, missing

FORM = "application/x-www-form-urlencoded"
# A form carries ids and names only: a play queue of 10,000 songs is under 500 kB.
FORM_MAX_BYTES = 1024 * 1024
# Deep enough for any library, small enough for every database's integer type.
OFFSET_MAX = 1_000_000_000


class Params:
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        # Raised by the endpoint once it knows how to answer (``f`` may come after it).
        self.problem: SubsonicError | None = None
        for name, value in pairs:
            if "\x00" in value:
                # PostgreSQL cannot take NUL in any text, and no Subsonic value holds one.
                self.problem = self.problem or invalid(name, "must not contain NUL characters")
                continue
            self._values.setdefault(name, []).append(value)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        return list(self._values.get(name, []))

    def required(self, name: str) -> str:
        value = self.one(name)
        if value is None or value == "":
            raise missing(name)
        return value

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        raw = self.one(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid(name, f"must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise invalid(name, f"must be between {low} and {high}, got {value}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.one(name)
        if raw is None or raw == "":
            return default
        if raw.lower() in ("true", "1"):
            return True
        if raw.lower() in ("false", "0"):
            return False
        raise invalid(name, f"must be true or false, got {raw!r}")

    def text(self, name: str, limit: int) -> str | None:
        value = self.one(name)
        if value is not None and len(value) > limit:
            raise invalid(name, f"must be at most {limit} characters")
        return value

    def count(self, name: str, default: int, high: int = 500) -> int:
        return self.integer(name, default, 0, high)

    def offset(self, name: str) -> int:
        return self.integer(name, 0, 0, OFFSET_MAX)


def invalid(name: str, why: str) -> SubsonicError:
    return SubsonicError(Code.GENERIC, f"parameter '{name}' {why}")


def _pairs(text: str | bytes, where: str) -> list[tuple[str, str]]:
    try:
        if isinstance(text, bytes):
            text = text.decode()
        return parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise falcon.HTTPBadRequest(
            title="Invalid request", description=f"the {where} is not UTF-8"
        ) from None


async def read_params(req) -> Params:
    pairs = _pairs(req.query_string, "query string")
    if req.method == "POST" and (req.content_type or "").startswith(FORM):
        body = await req.stream.read(FORM_MAX_BYTES + 1)
        if len(body) > FORM_MAX_BYTES:
            raise falcon.HTTPContentTooLarge(
                title="Form too large",
                description=f"a Subsonic form is limited to {FORM_MAX_BYTES // 1024} kB",
            )
        pairs += _pairs(body, "form")
    return Params(pairs)
