"""Text rules: what client text the catalogue takes, and how text from files is cleaned.

Client text (titles and descriptions in JSON bodies and upload forms) is refused with a
reason when it cannot be stored; text from files and file names is cleaned, never refused.
"""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath

from mosic.persistence.models import TITLE_MAX

DESCRIPTION_MAX = 5000
UNTITLED = "Untitled"


class InvalidText(ValueError):
    """A title or description a client sent that the catalogue cannot take."""


def unstorable(name: str, value: str) -> str | None:
    """Why no database could store ``value`` (named ``name``), or None when it can: PostgreSQL
    refuses NUL, and a lone surrogate (valid in JSON's ``\\ud800``) is not UTF-8 at all."""
    if "\x00" in value:
        return f"'{name}' must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"'{name}' must not contain lone surrogates (not valid Unicode text)"
    return None


def client_text(name: str, value: str, limit: int) -> str | None:
    """A client's title or description, trimmed; None when blank. The same rules for JSON
    bodies and upload forms."""
    problem = unstorable(name, value)
    if problem:
        raise InvalidText(problem)
    value = value.strip()
    if len(value) > limit:
        raise InvalidText(f"'{name}' must be at most {limit} characters, got {len(value)}")
    return value or None


def printable(value: str | None, limit: int) -> str | None:
    """Text from files and file names, made fit to store: control characters (NUL among
    them, which PostgreSQL refuses) and lone surrogates dropped, whitespace trimmed, length
    capped."""
    if not value:
        return None
    kept = "".join(
        ch for ch in value if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return kept.strip()[:limit].strip() or None


def title_from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    # Clients send Windows paths too; only the last component names the song.
    name = PurePosixPath(filename.replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return printable(stem, TITLE_MAX)


def search_text_for(*values: str | None) -> str:
    """Case-folded title, description, artist and album: one portable case-insensitive
    search on SQLite (whose LIKE folds ASCII only) and PostgreSQL alike."""
    return "\n".join(v.casefold() for v in values if v)
