"""Browsing and editing the catalogue: list, search, sort, pages, one clip, PATCH, DELETE."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from mosic.api.shapes import TAG_FIELDS
from mosic.core.keys import EVERY_FOLDER
from mosic.persistence.models import ADMIN_ID


async def _add_many(api, titles):
    ids = []
    for i, title in enumerate(titles):
        resp = await api.add_external(
            title=title, duration=float(i), audio_url=f"https://example.com/{i}.mp3"
        )
        assert resp.status_code == 201, resp.text
        ids.append(resp.json["id"])
    return ids


def _next(resp) -> str | None:
    link = resp.headers.get("Link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


async def _follow(api, path, params):
    seen, pages = [], 0
    resp = await api.get(path, params=params)
    while True:
        assert resp.status_code == 200
        seen += [c["id"] for c in resp.json]
        pages += 1
        nxt = _next(resp)
        if nxt is None:
            return seen, pages, resp
        parts = urlsplit(nxt)
        resp = await api.get(parts.path, query_string=parts.query)


async def test_metadata_only_clip_round_trip(api):
    resp = await api.add_external(
        title="Morning Birds",
        duration=184.32,
        audio_url="https://cdn.example.com/birds.mp3",
        description="Recorded at dawn",
        artist="Field Recordings",
    )
    assert resp.status_code == 201
    clip = resp.json
    assert resp.headers["Location"] == f"/play/{clip['id']}"
    assert clip["audio_url"] == "https://cdn.example.com/birds.mp3"
    assert clip["size"] is None and clip["content_type"] is None
    assert clip["duration"] == 184.32
    assert clip["album"] is None
    assert clip["created_at"].endswith("Z")
    assert set(clip) == {
        "id",
        "title",
        "description",
        "duration",
        "artist",
        "album",
        "content_type",
        "size",
        "audio_url",
        "stream_url",
        "play_count",
        "created_at",
        "cover_url",
        "waveform_url",
        "source",
        "music_folder",
        "path",
        "my_play_count",
        "my_last_played_at",
        "starred",
        "rating",
        "replay_gain",
        *TAG_FIELDS,
    }
    assert (clip["my_play_count"], clip["my_last_played_at"]) == (0, None)
    # No audio here: nothing to read a gain from, ever.
    assert set(clip["replay_gain"].values()) == {None}
    assert (clip["starred"], clip["rating"]) == (False, 0)
    # A clip a client registers is one of the Uploads: only music folders hold paths.
    assert (clip["source"], clip["music_folder"], clip["path"]) == ("upload", "Uploads", None)
    assert clip["cover_url"] is None and clip["waveform_url"] is None
    assert all(clip[name] is None for name in TAG_FIELDS)


async def test_list_pages_by_cursor_without_overlap_or_gap(api):
    ids = await _add_many(api, [f"Song {i:02d}" for i in range(23)])
    seen, pages, last = await _follow(api, "/play", {"limit": "5"})
    assert pages == 5
    assert sorted(seen) == sorted(ids)
    assert seen == list(reversed(ids))  # default sort: newest first
    assert last.headers["X-Total-Count"] == "23"


async def test_list_pages_by_offset(api):
    ids = await _add_many(api, [f"T{i}" for i in range(7)])
    seen, pages, _ = await _follow(
        api, "/play", {"limit": "3", "offset": "0", "sort": "created_at"}
    )
    assert pages == 3
    assert seen == ids
    resp = await api.get("/play", params={"limit": "3", "offset": "6", "sort": "created_at"})
    assert [c["id"] for c in resp.json] == ids[6:]
    assert "Link" not in resp.headers


@pytest.mark.parametrize("sort", ["title", "-title", "-play_count", "duration", "-created_at"])
async def test_every_sort_pages_cleanly_by_cursor(api, sort):
    titles = ["delta", "Alpha", "charlie", "bravo", "echo", "alpha", "Delta"]
    await _add_many(api, titles)
    full = await api.get("/play", params={"sort": sort})
    seen, _, _ = await _follow(api, "/play", {"sort": sort, "limit": "2"})
    assert seen == [c["id"] for c in full.json]
    field = sort.lstrip("-")
    values = [c[field] for c in full.json]
    assert values == sorted(values, reverse=sort.startswith("-"))


async def test_search_is_case_insensitive_over_title_description_artist_album(api):
    await api.add_external(title="Morning Birds", description="dawn chorus")
    await api.add_external(title="Evening", artist="The BIRDS")
    await api.add_external(title="Rain", album="Weather of birdsong")
    await api.add_external(title="Traffic")
    await api.add_external(title="100% pure", description="under_score")
    resp = await api.get("/play", params={"q": "birds"})
    assert sorted(c["title"] for c in resp.json) == ["Evening", "Morning Birds", "Rain"]
    assert resp.headers["X-Total-Count"] == "3"
    # LIKE wildcards in the query are literal characters, not patterns.
    assert [c["title"] for c in (await api.get("/play", params={"q": "%"})).json] == ["100% pure"]
    assert [c["title"] for c in (await api.get("/play", params={"q": "_"})).json] == ["100% pure"]
    assert (await api.get("/play", params={"q": "DAWN CH"})).json[0]["title"] == "Morning Birds"


@pytest.mark.parametrize(
    "params, name",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"sort": "size"}, "sort"),
        ({"sort": "--title"}, "sort"),
        ({"sort": "title;drop"}, "sort"),
        ({"cursor": "garbage!!"}, "cursor"),
        ({"cursor": "eyJzIjoxfQ"}, "cursor"),
        ({"cursor": "abc", "offset": "1"}, "offset"),
    ],
)
async def test_bad_list_parameters_are_400_naming_the_parameter(api, params, name):
    resp = await api.get("/play", params=params)
    assert resp.status_code == 400, resp.text
    assert f"'{name}'" in resp.json["description"]


async def test_cursor_from_another_sort_is_refused(api):
    await _add_many(api, ["a", "b", "c"])
    first = await api.get("/play", params={"limit": "1", "sort": "title"})
    cursor = parse_qs(urlsplit(_next(first)).query)["cursor"][0]
    resp = await api.get("/play", params={"limit": "1", "sort": "-title", "cursor": cursor})
    assert resp.status_code == 400
    assert "sort" in resp.json["description"]


async def test_patch_changes_title_and_description_only(api):
    clip = (await api.add_external(title="Old", description="old")).json
    resp = await api.patch(f"/play/{clip['id']}", json={"title": " New ", "description": None})
    assert resp.status_code == 200
    assert resp.json["title"] == "New"
    assert resp.json["description"] is None
    assert (await api.get(f"/play/{clip['id']}")).json["title"] == "New"
    assert [c["id"] for c in (await api.get("/play", params={"q": "new"})).json] == [clip["id"]]
    assert (await api.get("/play", params={"q": "old"})).json == []


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"title": ""}, "'title'"),
        ({"title": None}, "'title'"),
        ({"title": 5}, "'title'"),
        ({"title": "x" * 201}, "200"),
        ({"duration": 3}, "unknown field"),
        ({"description": "a\x00b"}, "NUL"),
        (["title"], "JSON object"),
    ],
)
async def test_bad_patch_is_400(api, body, fragment):
    clip = (await api.add_external()).json
    resp = await api.patch(f"/play/{clip['id']}", json=body)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json["description"]
    assert (await api.get(f"/play/{clip['id']}")).json["title"] == clip["title"]


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"duration": 1, "audio_url": "https://e.com/a"}, "'title'"),
        ({"title": "t", "audio_url": "https://e.com/a"}, "'duration'"),
        ({"title": "t", "duration": -1, "audio_url": "https://e.com/a"}, "negative"),
        ({"title": "t", "duration": "long", "audio_url": "https://e.com/a"}, "'duration'"),
        ({"title": "t", "duration": True, "audio_url": "https://e.com/a"}, "'duration'"),
        ({"title": "t", "duration": 1}, "'audio_url'"),
        ({"title": "t", "duration": 1, "audio_url": "ftp://e.com/a"}, "http(s)"),
        ({"title": "t", "duration": 1, "audio_url": "javascript:alert(1)"}, "http(s)"),
        ({"title": "t", "duration": 1, "audio_url": "/relative"}, "http(s)"),
        ({"title": "t", "duration": 1, "audio_url": "https://e.com/a", "plays": 9}, "plays"),
        ({"title": "x" * 201, "duration": 1, "audio_url": "https://e.com/a"}, "200"),
    ],
)
async def test_bad_metadata_only_clip_is_400(api, body, fragment):
    resp = await api.post("/play", json=body)
    assert resp.status_code == 400, resp.text
    assert fragment in resp.json["description"]
    assert (await api.get("/play")).headers["X-Total-Count"] == "0"


@pytest.mark.parametrize(
    "body, ctype, status",
    [
        (b"{not json", "application/json", 400),
        (b"", "application/json", 400),
        (b"\xff\xfe\x00", "application/json", 400),
        (b"title=x", "application/x-www-form-urlencoded", 415),
        (b"hello", "text/plain", 415),
        (b"[1, 2]", "application/json", 400),
        (b'"just a string"', "application/json", 400),
    ],
)
async def test_non_json_bodies_are_4xx(api, body, ctype, status):
    resp = await api.post("/play", body=body, headers={"Content-Type": ctype})
    assert resp.status_code == status, resp.text
    assert resp.json["title"]


async def test_delete_removes_the_clip_and_its_file(api, clip_file):
    keep = await api.upload(clip_file("mp3", freq=300).read_bytes())
    gone = await api.upload(clip_file("mp3", freq=310).read_bytes())
    assert len(api.stored_files()) == 2
    resp = await api.delete(f"/play/{gone.json['id']}")
    assert resp.status_code == 204
    assert (await api.get(f"/play/{gone.json['id']}")).status_code == 404
    assert (await api.delete(f"/play/{gone.json['id']}")).status_code == 404
    [left] = api.stored_files()
    assert left.read_bytes() == clip_file("mp3", freq=300).read_bytes()
    assert (await api.get(f"/play/{keep.json['id']}/stream")).status_code == 200


# Fixed, not drawn: parallel test runners must collect the same test names.
NO_SUCH_ID = uuid.UUID("5a0d1c6e-8f41-4c1a-9a7e-3b2f0c4d5e6f")


@pytest.mark.parametrize(
    "path",
    [
        "/play/not-a-uuid",
        "/play/123",
        f"/play/{NO_SUCH_ID}",
        f"/play/{NO_SUCH_ID}/stats",
        f"/play/{NO_SUCH_ID}/stream",
        "/play/%00",
        "/play/' OR 1=1 --",
    ],
)
async def test_unknown_and_malformed_ids_are_404(api, path):
    for method in ("GET", "PATCH", "DELETE"):
        resp = await api.request(method, path, json={"title": "x"})
        assert resp.status_code in (404, 405), (method, resp.status_code, resp.text)
    assert (await api.get(path)).status_code == 404


@pytest.mark.parametrize(
    "method, path",
    [
        ("GET", "/play"),
        ("POST", "/play"),
        ("POST", "/play/upload"),
        ("GET", "/play/{id}"),
        ("PATCH", "/play/{id}"),
        ("DELETE", "/play/{id}"),
        ("GET", "/play/{id}/stats"),
        ("GET", "/play/{id}/stream"),
        ("HEAD", "/play/{id}/stream"),
    ],
)
async def test_every_play_route_needs_the_key(api, method, path):
    clip = (await api.add_external()).json
    url = path.replace("{id}", clip["id"])
    for key in (None, "", "wrong", "test-key-012345678", "test-key-0123456789x"):
        resp = await api.request(method, url, key=key, json={"title": "x"})
        assert resp.status_code == 401, (key, resp.status_code)
        assert resp.headers["WWW-Authenticate"] == 'ApiKey header="X-API-Key"'
    assert (await api.get(f"/play/{clip['id']}")).json["title"] == clip["title"]


async def test_stats_names_song_id_and_play_count(api):
    clip = (await api.add_external(title="Stats")).json
    resp = await api.get(f"/play/{clip['id']}/stats")
    assert resp.status_code == 200
    assert resp.json["song_id"] == clip["id"]
    assert resp.json["play_count"] == 0
    assert resp.json["last_played_at"] is None
    assert resp.json["title"] == "Stats"


async def test_rows_of_a_page_and_the_record_of_one_clip_carry_the_same_types(settings, api):
    """A page's rows come as the driver gives them where it types them (PostgreSQL) and
    converted where it returns text (SQLite): the same values either way, the id as its
    canonical text (what a clip object shows); one clip's record has its id typed."""
    from mosic.app import Services
    from mosic.core.listing import LISTED_COLUMNS, ListedRow, ListQuery

    await _add_many(api, ["typed one", "typed two"])
    played = (await api.get("/play", params={"limit": 1})).json[0]["id"]
    assert (await api.get(f"/play/{played}/stream")).status_code == 307  # a counted play
    services = Services.build(settings)
    await services.db.aio_connect()
    try:
        page = await services.listing.list(ListQuery(limit=10, user_id=ADMIN_ID))
        one = await services.catalogue.get(uuid.UUID(played), seen=EVERY_FOLDER)
    finally:
        await services.db.aio_close()
    assert len(page.rows) == 2 and page.total == 2
    rows = [ListedRow._make(row) for row in page.rows]
    for row in rows:
        assert str(uuid.UUID(row.id)) == row.id and row.created_at.tzinfo is dt.UTC
        assert row.matches == 2 and type(row.matches) is int
    assert isinstance(one.id, uuid.UUID) and one.created_at.tzinfo is None  # naive UTC
    assert isinstance(one.last_played_at, dt.datetime)
    (listed,) = [row for row in rows if row.id == played]
    assert listed.created_at == one.created_at.replace(tzinfo=dt.UTC)
    # The caller's marks: the admin played it once.
    assert (listed.my_play_count, listed.starred, listed.rating) == (1, False, 0)
    assert listed.my_last_played_at.tzinfo is dt.UTC
    (other,) = [row for row in rows if row.id != played]
    assert (other.my_play_count, other.my_last_played_at, other.starred) == (0, None, False)
    others = set(LISTED_COLUMNS) - {"id", "created_at"}
    assert all(getattr(listed, name) == getattr(one, name) for name in others)
    assert str(one.id) == played


async def test_clips_read_at_once_share_one_statement_and_each_reader_gets_its_own(settings, api):
    from mosic.app import Services
    from mosic.core.catalogue import ClipNotFound

    ids = [uuid.UUID(i) for i in await _add_many(api, [f"together {i}" for i in range(5)])]
    services = Services.build(settings)
    lookup = services.catalogue.reads_by_id
    await services.db.aio_connect()
    try:
        asked = [*ids * 4, uuid.uuid4()]  # each clip four times, and one that does not exist
        got = await asyncio.gather(
            *(services.catalogue.get(i, seen=EVERY_FOLDER) for i in asked), return_exceptions=True
        )
        # A read by itself is a statement too.
        alone = await services.catalogue.get(ids[0], seen=EVERY_FOLDER)
    finally:
        await services.db.aio_close()
    assert isinstance(got[-1], ClipNotFound)
    assert [clip.id for clip in got[:-1]] == asked[:-1]
    assert {clip.title for clip in got[:-1]} == {f"together {i}" for i in range(5)}
    assert len({id(clip) for clip in got[:-1]}) == 20  # none shares its record with another
    assert alone.id == ids[0]
    assert (lookup.reads, lookup.statements) == (22, 2)


async def test_a_clip_listed_and_read_alone_shows_the_same_rfc3339_times(api):
    (clip_id,) = await _add_many(api, ["one time"])
    assert (await api.get(f"/play/{clip_id}/stream")).status_code == 307  # a play: a time
    listed = (await api.get("/play", params={"limit": 1})).json[0]
    alone = (await api.get(f"/play/{clip_id}")).json
    stats = (await api.get(f"/play/{clip_id}/stats")).json
    assert listed["created_at"] == alone["created_at"] == stats["created_at"]
    for text in (alone["created_at"], stats["last_played_at"]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", text), text
        assert dt.datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None
