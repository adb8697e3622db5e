"""The scale benchmark's rows (bench/scale_rows.py): every NOT NULL column of today's model
filled on a migrated SQLite database, and tags of the shape the benchmark promises. No timing
here: the benchmark itself is ``python -m bench.scale``."""

from __future__ import annotations

import sqlite3
from collections import Counter, defaultdict

import peewee

from bench import scale_rows
from mosic.persistence.models import Clip
from mosic.settings import Settings
from tests.support.database import migrate


def test_every_not_null_column_is_filled_on_sqlite(tmp_path):
    settings = Settings(data_dir=tmp_path, api_key="scale-test-key")
    migrate(settings)
    scale_rows.insert_sqlite(settings.sqlite_path, 100)

    with sqlite3.connect(settings.sqlite_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM clip").fetchone() == (100,)
        for field in Clip._meta.sorted_fields:
            if field.null:
                continue
            missing = conn.execute(
                f'SELECT COUNT(*) FROM clip WHERE "{field.column_name}" IS NULL'  # noqa: S608
            ).fetchone()[0]
            assert missing == 0, field.name


def test_a_new_not_null_column_gets_a_value():
    class Wider(Clip):
        added = peewee.CharField()
        counted = peewee.IntegerField(default=7)

    fields = list(Wider._meta.sorted_fields)
    for row in scale_rows.rows(fields, 20):
        values = dict(zip((f.name for f in fields), row, strict=True))
        assert values["added"] == ""
        assert values["counted"] == 7


def test_tags_have_the_promised_shape():
    count = 4000
    clips = list(scale_rows.tags(count))
    albums: dict[tuple, list] = defaultdict(list)
    for clip in clips:
        albums[(clip["album_artist"], clip["album"])].append(clip)
    assert len(albums) == count // 10
    for songs in albums.values():
        assert sorted(s["track"] for s in songs) == list(range(1, 11))
        assert {s["disc"] for s in songs} == {1}
        assert len({(s["year"], s["genre"]) for s in songs}) == 1
    per_artist = Counter(artist for artist, _ in albums)
    assert set(per_artist.values()) == {4}
    assert len({c["genre"] for c in clips}) == 20
    assert all(c["album_artist"] == c["artist"] and c["artist"] for c in clips)

    river = [c for c in clips if "river" in c["search_text"]]
    assert len(river) == count // 200
    assert all("river" in c["title"].casefold() for c in river)

    assert len({c["sha256"] for c in clips}) == len({c["file_name"] for c in clips}) == count
    assert len({c["id"] for c in clips}) == count
    created = [c["created_at"] for c in clips]
    assert 300 <= (max(created) - min(created)).days <= 365
    plays = [c["play_count"] for c in clips]
    assert 0.3 < plays.count(0) / count < 0.5
    assert all(p >= 0 for p in plays)
    assert all(c["duration"] > 0 and c["size"] > 0 for c in clips)
