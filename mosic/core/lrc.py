"""Lyrics as lines, and the LRC format they are often written in.

``parse`` reads text from a tag or an ``.lrc`` file: text with LRC time tags (``[mm:ss]``,
``[mm:ss.xx]``, ``[mm:ss.xxx]``, several on one line) is synced, any other is plain lines.
Pure and total: junk gives fewer lines, never an exception, so a broken file can never make
an answer fail.

``offset`` keeps LRC's sign, which is OpenSubsonic's too: a positive offset shows every line
that many milliseconds sooner; ``Lyrics.shown_at`` applies it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

# Text past these is not lyrics anyone wrote by hand: the rest is ignored.
TEXT_MAX_CHARS = 256 * 1024
LINES_MAX = 5000
LINE_MAX_CHARS = 1000
# An offset past an hour (either way) is junk, and would not fit every database's integer.
OFFSET_MAX_MS = 3_600_000
MINUTES_MAX = 9999
LANG_MAX = 16

# [mm:ss], [mm:ss.x], [mm:ss.xx], [mm:ss.xxx] (and [mm:ss:xx], which some taggers write).
_TIME = re.compile(r"\[(\d{1,4}):(\d{1,2})(?:[.:](\d{1,3}))?\]")
_TIMES = re.compile(r"(?:\s*\[\d{1,4}:\d{1,2}(?:[.:]\d{1,3})?\])+")
# [key:value] header tags: [ar:…], [ti:…], [offset:+250], [la:en], [#:comment]…
_TAG = re.compile(r"\s*\[([A-Za-z#]{1,16}):([^\]]*)\]\s*")
_HEADER_KEYS = frozenset({"ar", "ti", "al", "au", "by", "re", "ve", "tool", "length", "#",
                          "offset", "la", "lang", "language"})  # fmt: skip
_LANG_KEYS = frozenset({"la", "lang", "language"})
# Enhanced LRC's word times (<mm:ss.xx>) inside a line: dropped, the line keeps its text.
_WORD_TIME = re.compile(r"<\d{1,4}:\d{1,2}(?:[.:]\d{1,3})?>")
_LANG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")
# What taggers write for "no language" (ISO 639 "und", and the common "xxx").
UNKNOWN_LANGS = frozenset({"und", "xxx", "zxx", "mis"})


@dataclass(frozen=True)
class Line:
    start_ms: int | None  # None in unsynced lyrics
    text: str


@dataclass(frozen=True)
class Lyrics:
    synced: bool
    lines: tuple[Line, ...]
    lang: str | None = None  # None when unknown
    offset_ms: int = 0

    def shown_at(self, line: Line) -> int | None:
        """When ``line`` shows, the offset applied (never before the start)."""
        if line.start_ms is None:
            return None
        return max(0, line.start_ms - self.offset_ms)

    @property
    def text(self) -> str:
        """The lines as one plain text."""
        return "\n".join(line.text for line in self.lines)


def language(value: str | None) -> str | None:
    """A language code as tags give it (ISO 639, perhaps with a region), or None for none,
    "und"/"xxx", or junk."""
    value = (value or "").strip()
    if not _LANG.fullmatch(value) or len(value) > LANG_MAX:
        return None
    return None if value.casefold() in UNKNOWN_LANGS else value


def clean(text: str) -> str:
    """A line's text fit to store and show: control characters dropped (tabs become
    spaces), trimmed, capped."""
    kept = "".join(
        " " if ch == "\t" else ch
        for ch in text
        if ch == "\t" or unicodedata.category(ch) not in ("Cc", "Cs")
    )
    return kept.strip()[:LINE_MAX_CHARS]


def parse(text: str | None, lang: str | None = None) -> Lyrics | None:
    """The lyrics ``text`` holds, or None when it holds no line. ``lang`` (from the tag)
    is used unless the text names its own (``[la:…]``)."""
    if not text or not isinstance(text, str):
        return None
    raw = text[:TEXT_MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headers: dict[str, str] = {}
    timed: list[tuple[int, int, str]] = []  # (start, order, text)
    plain: list[str] = []
    for row in raw:
        times, rest = _times(row)
        if times:
            body = clean(_WORD_TIME.sub("", rest))
            timed.extend((start, len(timed) + n, body) for n, start in enumerate(times))
            continue
        header = _header(row)
        if header is not None:
            headers.setdefault(*header)
        else:
            plain.append(clean(row))
    named = next((headers[key] for key in _LANG_KEYS if key in headers), None)
    lang = language(named) or language(lang)
    if timed:
        timed.sort()
        lines = tuple(Line(start, body) for start, _, body in timed[:LINES_MAX])
        return Lyrics(True, lines, lang, _offset(headers.get("offset")))
    lines = tuple(Line(None, body) for body in _trimmed(plain)[:LINES_MAX])
    return Lyrics(False, lines, lang) if lines else None


def from_timed(entries: Iterable[tuple[str, int]], lang: str | None = None) -> Lyrics | None:
    """Synced lyrics from (text, start in ms) pairs, as ID3's SYLT holds them. Karaoke
    taggers give one syllable an entry and start each line with a newline: then entries
    are joined into lines, each starting when its first syllable does."""
    entries = [(str(text), int(start)) for text, start in list(entries)[: LINES_MAX * 10]]
    karaoke = any(text[:1] in ("\n", "\r") for text, _ in entries)
    rows: list[list] = []
    for text, start in entries:
        if not rows or not karaoke or text[:1] in ("\n", "\r"):
            rows.append([start, text])
        else:
            rows[-1][1] += text
    lines = sorted(
        (Line(start, clean(text)) for start, text in rows[:LINES_MAX] if start >= 0),
        key=lambda line: line.start_ms,
    )
    return Lyrics(True, tuple(lines), language(lang)) if lines else None


def _times(row: str) -> tuple[list[int], str]:
    """The start times (ms) a line begins with, and its text after them."""
    lead = _TIMES.match(row)
    if lead is None:
        return [], row
    times = []
    for minutes, seconds, fraction in _TIME.findall(lead.group(0)):
        if int(seconds) >= 60 or int(minutes) > MINUTES_MAX:
            continue  # not a time: [00:75] is nobody's
        ms = int(fraction.ljust(3, "0")) if fraction else 0
        times.append((int(minutes) * 60 + int(seconds)) * 1000 + ms)
    return times, row[lead.end() :]


def _header(row: str) -> tuple[str, str] | None:
    match = _TAG.fullmatch(row)
    if match is None or match.group(1).casefold() not in _HEADER_KEYS:
        return None
    return match.group(1).casefold(), match.group(2).strip()


def _offset(value: str | None) -> int:
    try:
        offset = int((value or "0").strip().replace(" ", ""))
    except ValueError:
        return 0
    return offset if abs(offset) <= OFFSET_MAX_MS else 0


def _trimmed(lines: list[str]) -> list[str]:
    """Lines without the blank ones around them (blank lines inside part verses)."""
    start, end = 0, len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return lines[start:end]
