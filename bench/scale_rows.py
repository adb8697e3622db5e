"""Clip rows for the scale benchmark (bench/scale.py), written straight into a migrated
database: ``executemany`` in big transactions on SQLite, ``COPY`` through psycopg 3 on
PostgreSQL.

The tags have the shape of a real library: albums of 10 tracks (tracks 1-10, disc 1), artists
of 4 albums, 20 genres, a year per album, the album artist set, titles of two to four words
of which about 0.5 % hold the word "river" (and nothing else does: no other word, artist or
album name contains it), durations and sizes of MP3s at 320 kbit/s, albums added one after
another over a year, and about 40 % of the songs never played. Every row has its own
``file_name`` and ``sha256`` (the files themselves do not exist: the reads measured never open
them).

The columns come from the model (``Clip._meta.sorted_fields``), not from a list kept here:
a column this module knows gets its realistic value, and any other NOT NULL column its
model default or a plain value of its type, so the inserter keeps working when a migration
adds a column.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import peewee

TRACKS_PER_ALBUM = 10
ALBUMS_PER_ARTIST = 4
GENRES = (
    "Rock", "Pop", "Jazz", "Blues", "Classical", "Electronic", "Folk", "Hip-Hop", "Metal",
    "Punk", "Reggae", "Soul", "Funk", "Country", "Ambient", "Techno", "House", "Latin",
    "Gospel", "Disco",
)  # fmt: skip
SEARCH_WORD = "river"
# One title in 200 holds SEARCH_WORD: 0.5 %.
SEARCH_EVERY = 200
# None of these holds "river", so only the chosen titles match a search for it.
WORDS = (
    "amber", "autumn", "blue", "broken", "candle", "city", "cloud", "crimson", "dance",
    "dawn", "desert", "dream", "echo", "ember", "fire", "flower", "forest", "ghost", "glass",
    "gold", "harbor", "heart", "hollow", "honey", "horizon", "island", "iron", "jade", "lantern",
    "light", "lonely", "midnight", "mirror", "moon", "morning", "mountain", "night", "ocean",
    "paper", "piano", "rain", "rose", "salt", "shadow", "silver", "sky", "snow", "song",
    "spark", "spring", "star", "stone", "storm", "street", "summer", "sun", "thunder", "tide",
    "train", "velvet", "wave", "whisper", "wild", "wind", "winter", "wolf", "yellow",
)  # fmt: skip
BITRATE = 320_000
SPREAD = dt.timedelta(days=365)
SEED = 18  # the number: the same rows every run


def _folded(value: str | None) -> str | None:
    return value.casefold() if value else None


def _words(rng: random.Random, low: int, high: int) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(low, high))]


def _name(words: list[str]) -> str:
    return " ".join(w.capitalize() for w in words)


def generic_value(field: peewee.Field, row: dict):
    """A NOT NULL column this module does not know: its model default, else a plain value of
    its type."""
    if field.default is not None:
        return field.default() if callable(field.default) else field.default
    if isinstance(field, peewee.UUIDField):
        return uuid.uuid4()
    if isinstance(field, peewee.BooleanField):
        return False
    if isinstance(field, peewee.DateTimeField):
        return row["created_at"]
    if isinstance(field, peewee.DateField):
        return row["created_at"].date()
    if isinstance(field, peewee.FloatField | peewee.DecimalField):
        return 0.0
    if isinstance(field, peewee.IntegerField):  # BigInteger and SmallInteger too
        return 0
    return ""


def media_version() -> int:
    """The version of the tag-reading rules the rows claim to be read with, so that
    ``mosic migrate`` and ``serve`` do not try to read a million missing files again."""
    try:
        from mosic.core.clip_rows import MEDIA_VERSION
    except ImportError:  # moved by a rework: 1 is the only version there has been
        return 1
    return MEDIA_VERSION


def clip_fields() -> list[peewee.Field]:
    from mosic.persistence.models import Clip

    return list(Clip._meta.sorted_fields)


def tags(count: int, *, now: dt.datetime | None = None) -> Iterator[dict]:
    """The realistic values of ``count`` clips, by column name (only the columns the model
    has are used)."""
    rng = random.Random(SEED)
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    start = now - SPREAD
    albums = max(1, -(-count // TRACKS_PER_ALBUM))
    album = artist = None
    version = media_version()
    # ReplayGain figures from their own generator, so the tags above stay what they were.
    loudness = random.Random(SEED + 1)
    album_gain = 0.0
    for i in range(count):
        album_no, track = divmod(i, TRACKS_PER_ALBUM)
        artist_no = album_no // ALBUMS_PER_ARTIST
        if track == 0:
            if album_no % ALBUMS_PER_ARTIST == 0:
                # The number keeps names unique, as the ids derived from them must be.
                artist = f"{_name(_words(rng, 1, 2))} {artist_no}"
            album = {
                "name": f"{_name(_words(rng, 1, 3))} {album_no}",
                "year": rng.randint(1960, 2025),
                "genre": GENRES[rng.randrange(len(GENRES))],
                # Albums arrive one after another over the year, a track a second apart.
                "added": start + SPREAD * (album_no / albums),
            }
        if track == 0:
            album_gain = round(loudness.uniform(-12, 2), 2)
        words = _words(rng, 2, 4)
        if i % SEARCH_EVERY == SEARCH_EVERY // 2:
            words[rng.randrange(len(words))] = SEARCH_WORD
        title = _name(words)
        duration = round(rng.uniform(120, 420), 3)
        created = album["added"] + dt.timedelta(seconds=track, microseconds=rng.randrange(10**6))
        plays = 0 if rng.random() < 0.4 else rng.randint(1, 300)
        sha = hashlib.sha256(f"mosic-scale-{i}".encode()).hexdigest()
        yield {
            "id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "title": title,
            "description": None,
            "duration": duration,
            "artist": artist,
            "album": album["name"],
            "album_artist": artist,
            "content_type": "audio/mpeg",
            "size": int(duration * BITRATE / 8),
            "sha256": sha,
            "file_name": f"{sha}.mp3",
            "search_text": "\n".join(v.casefold() for v in (title, artist, album["name"])),
            "play_count": plays,
            "last_played_at": (created + (now - created) * rng.random() if plays else None),
            "created_at": created,
            "updated_at": created,
            "track": track + 1,
            "disc": 1,
            "year": album["year"],
            "genre": album["genre"],
            "bitrate": BITRATE,
            "sample_rate": 44_100,
            "channels": 2,
            "genre_key": _folded(album["genre"]),
            "artist_key": _folded(artist),
            "album_key": _folded(album["name"]),
            "media_version": version,
            # As read from tags: nothing left for the loudness backfill to measure.
            "track_gain_db": round(album_gain + loudness.uniform(-2, 2), 2),
            "track_peak": round(loudness.uniform(0.5, 1.0), 6),
            "album_gain_db": album_gain,
            "album_peak": 1.0,
            "gain_source": "tags",
        }


def rows(fields: list[peewee.Field], count: int) -> Iterator[tuple]:
    """Tuples in the order of ``fields``: known columns get their tag, unknown NOT NULL ones
    a generic value, unknown nullable ones NULL."""
    for values in tags(count):
        yield tuple(
            values[f.name] if f.name in values else (None if f.null else generic_value(f, values))
            for f in fields
        )


def _sqlite_value(field: peewee.Field, value):
    value = field.db_value(value) if value is not None else None
    if isinstance(value, dt.datetime):
        return value.isoformat(" ")  # what peewee writes (and reads back) on SQLite
    if isinstance(value, uuid.UUID):
        return value.hex
    return value


def insert_sqlite(path: Path, count: int, batch: int = 100_000) -> float:
    """Insert ``count`` clips into the SQLite database at ``path``; the seconds it took."""
    fields = clip_fields()
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    marks = ", ".join("?" * len(fields))
    sql = f"INSERT INTO clip ({columns}) VALUES ({marks})"  # noqa: S608 (the model's columns)
    began = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # this connection only: a bulk load
        chunk: list[tuple] = []
        for row in rows(fields, count):
            chunk.append(tuple(_sqlite_value(f, v) for f, v in zip(fields, row, strict=True)))
            if len(chunk) >= batch:
                _sqlite_batch(conn, sql, chunk)
                chunk = []
        if chunk:
            _sqlite_batch(conn, sql, chunk)
    finally:
        conn.close()
    return time.perf_counter() - began


def _sqlite_batch(conn: sqlite3.Connection, sql: str, chunk: list[tuple]) -> None:
    conn.execute("BEGIN")
    try:
        conn.executemany(sql, chunk)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def insert_postgresql(url: str, count: int) -> float:
    """COPY ``count`` clips into the PostgreSQL database at ``url`` in one transaction, then
    VACUUM ANALYZE the table (what autovacuum would soon do after such a load, done now so
    the reads do not depend on when it runs); the seconds it took, the VACUUM included."""
    import psycopg

    fields = clip_fields()
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY clip ({columns}) FROM STDIN") as copy:
            for row in rows(fields, count):
                copy.write_row(row)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE clip")
    return time.perf_counter() - began
