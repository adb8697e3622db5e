"""What each user keeps, against a real ``mosic serve`` (two workers) on SQLite, PostgreSQL and
PostgreSQL with media on S3, over real HTTP: the caller's own marks in REST clip objects, its
history page by page, "now playing", playlists with owners, bookmarks, the users metrics, and
removing a user with all it kept while its plays stay in the global counts. (Real Subsonic
clients with every login form, 2,000 concurrent plays and the upgrade from the release before
users are in test_subsonic_users.py, test_user_plays.py and test_upgrade_users.py.)"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.support.analysis import measured_on
from tests.support.audio import make_clip
from tests.support.measure import metric
from tests.support.server import mosic_serve
from tests.test_folders import db_env, query
from tests.test_s3 import s3_env
from tests.test_users import add_user, call, subsonic


@pytest.fixture(params=BACKENDS)
def server(request, tmp_path):
    """A real ``mosic serve --workers 2`` on SQLite, on PostgreSQL, and on PostgreSQL with its
    media in a bucket of a real S3 server."""
    pg = None if request.param == "sqlite" else request.getfixturevalue("fresh_postgres_db")
    env = db_env(pg)
    if request.param == "s3":
        bucket = f"users-{uuid.uuid4().hex[:12]}"
        env.update(s3_env(request.getfixturevalue("s3_server").new_bucket(bucket)))
    with mosic_serve(tmp_path / "data", "--workers", "2", **env) as running:
        running.pg = pg
        yield running


def upload(server, key: str, path) -> dict:
    with path.open("rb") as audio:
        made = httpx.post(
            f"{server.base}/play",
            headers={"X-API-Key": key},
            files={"file": (path.name, audio, "audio/mpeg")},
            timeout=30,
        )
    assert made.status_code == 201, made.text
    return made.json()


@pytest.fixture
def songs(server, tmp_path) -> list[dict]:
    made = [
        upload(server, server.api_key, make_clip(tmp_path / f"s{n}.mp3", "mp3", freq=300 + n * 40,
                                                 title=f"Song {n}", artist="Ann", album="First"))
        for n in range(3)
    ]  # fmt: skip
    # Their loudness, measured after the 201, is in before any test compares two reads.
    return [measured_on(server, song["id"]) for song in made]


def listen(server, key: str, clip_id: str) -> None:
    answer = call(server, "GET", f"/play/{clip_id}/stream", key)
    assert answer.status_code == 200 and answer.content


def test_rest_clip_objects_show_the_callers_own_plays_star_and_rating(server, songs):
    _, ann = add_user(server, "Ann")
    _, bob = add_user(server, "Bob")
    first = songs[0]["id"]
    for _ in range(2):
        listen(server, ann, first)
    listen(server, bob, first)
    assert subsonic(server, "star", u="Ann", p=ann, id=first)["status"] == "ok"
    assert subsonic(server, "setRating", u="Ann", p=ann, id=first, rating=4)["status"] == "ok"

    ann_view = call(server, "GET", f"/play/{first}/stats", ann).json()
    assert (ann_view["play_count"], ann_view["my_play_count"]) == (3, 2)
    assert (ann_view["starred"], ann_view["rating"]) == (True, 4)
    assert ann_view["my_last_played_at"].endswith("Z")
    bob_view = call(server, "GET", f"/play/{first}", bob).json()
    assert (bob_view["play_count"], bob_view["my_play_count"]) == (3, 1)
    assert (bob_view["starred"], bob_view["rating"]) == (False, 0)
    admin_page = call(server, "GET", "/play", server.api_key, params={"sort": "title"}).json()
    assert [(c["title"], c["my_play_count"], c["starred"]) for c in admin_page] == [
        ("Song 0", 0, False), ("Song 1", 0, False), ("Song 2", 0, False),
    ]  # fmt: skip
    ann_page = call(server, "GET", "/play", ann, params={"sort": "title"}).json()
    assert [(c["my_play_count"], c["starred"], c["rating"]) for c in ann_page] == [
        (2, True, 4), (0, False, 0), (0, False, 0),
    ]  # fmt: skip
    # A search chooses its page before it joins the marks (mosic.core.listing): the same
    # marks, in the same order, a page at a time by its cursor.
    found = call(server, "GET", "/play", ann, params={"q": "song", "sort": "title", "limit": 2})
    cursor = parse_qs(urlsplit(found.links["next"]["url"]).query)["cursor"][0]
    rest = call(server, "GET", "/play", ann,
                params={"q": "song", "sort": "title", "limit": 2, "cursor": cursor})  # fmt: skip
    searched = found.json() + rest.json()
    assert found.headers["X-Total-Count"] == "3" and "next" not in rest.links
    assert [(c["title"], c["my_play_count"], c["starred"], c["rating"]) for c in searched] == [
        ("Song 0", 2, True, 4), ("Song 1", 0, False, 0), ("Song 2", 0, False, 0),
    ]  # fmt: skip
    # A page is made apart from the clip object (mosic.api.shapes.page_json): the same values,
    # times written alike, for each caller.
    assert ann_page[0]["my_last_played_at"] == ann_view["my_last_played_at"]
    for caller, page in ((ann, ann_page), (server.api_key, admin_page)):
        for listed in page:
            alone = call(server, "GET", f"/play/{listed['id']}", caller).json()
            assert unsigned(listed) == unsigned(alone)
    # Subsonic says the same, for each caller.
    ann_song = subsonic(server, "getSong", u="Ann", p=ann, id=first)["song"]
    assert (ann_song["playCount"], ann_song["userRating"], "starred" in ann_song) == (2, 4, True)
    bob_song = subsonic(server, "getSong", apiKey=bob, id=first)["song"]
    assert (bob_song["playCount"], "userRating" in bob_song, "starred" in bob_song) == (
        1, False, False,
    )  # fmt: skip


def unsigned(clip: dict) -> dict:
    """A clip object without its signed links' queries, which change with the minute."""
    links = ("stream_url", "cover_url")
    return {**clip, **{k: clip[k] and clip[k].split("?")[0] for k in links}}


def test_history_pages_newest_first_and_is_the_callers_alone(server, songs):
    _, ann = add_user(server, "Ann")
    _, bob = add_user(server, "Bob")
    order = [songs[0]["id"], songs[1]["id"], songs[2]["id"], songs[0]["id"], songs[1]["id"]]
    for clip_id in order:
        listen(server, ann, clip_id)
    assert subsonic(server, "scrobble", u="Ann", p=ann, id=songs[2]["id"])["status"] == "ok"
    order.append(songs[2]["id"])

    seen, url = [], "/me/history?limit=2"
    while url:
        page = call(server, "GET", url, ann)
        assert page.status_code == 200, page.text
        assert len(page.json()) <= 2
        seen += page.json()
        link = page.headers.get("Link")
        url = link[link.index("/me/history") : link.index(">")] if link else None
    assert [p["clip_id"] for p in seen] == order[::-1]
    times = [p["played_at"] for p in seen]
    assert times == sorted(times, reverse=True)
    assert call(server, "GET", "/me/history", bob).json() == []
    bad = call(server, "GET", "/me/history?cursor=not-ours", ann)
    assert bad.status_code == 400 and "cursor" in bad.json()["description"]


def test_now_playing_shows_each_users_song_by_name(server, songs):
    _, ann = add_user(server, "Ann")
    _, bob = add_user(server, "Bob")
    listen(server, ann, songs[0]["id"])  # a counted REST stream: Mosic's own player
    now = {"id": songs[1]["id"], "submission": "false", "c": "Tempo"}
    assert subsonic(server, "scrobble", u="Bob", p=bob, **now)["status"] == "ok"
    entries = subsonic(server, "getNowPlaying", apiKey=ann)["nowPlaying"]["entry"]
    playing = {(e["username"], e["playerName"], e["id"]) for e in entries}
    assert playing == {("Ann", "Mosic", songs[0]["id"]), ("Bob", "Tempo", songs[1]["id"])}
    assert all(e["minutesAgo"] == 0 and e["playerId"] >= 1 for e in entries)
    # submission=false counted nothing.
    assert call(server, "GET", f"/play/{songs[1]['id']}/stats", bob).json()["play_count"] == 0


def test_playlists_have_owners_and_public_ones_are_read_only_to_others(server, songs):
    _, ann = add_user(server, "Ann")
    _, bob = add_user(server, "Bob")
    ann_login, bob_login = {"u": "Ann", "p": ann}, {"u": "Bob", "p": bob}
    ids = [songs[0]["id"], songs[1]["id"]]
    private = subsonic(server, "createPlaylist", **ann_login, name="Mine", songId=ids)
    public = subsonic(server, "createPlaylist", **ann_login, name="Ours", songId=ids[:1])
    private_id, public_id = private["playlist"]["id"], public["playlist"]["id"]
    assert private["playlist"]["owner"] == "Ann"
    changed = subsonic(server, "updatePlaylist", **ann_login, playlistId=public_id, public="true")
    assert changed["status"] == "ok"

    listed = subsonic(server, "getPlaylists", **bob_login)["playlists"]["playlist"]
    assert [(p["name"], p["owner"], p["public"]) for p in listed] == [("Ours", "Ann", True)]
    assert subsonic(server, "getPlaylist", **bob_login, id=private_id)["error"]["code"] == 70
    assert subsonic(server, "getPlaylist", **bob_login, id=public_id)["playlist"]["songCount"] == 1
    for method, params in (("updatePlaylist", {"playlistId": public_id, "name": "Bob's"}),
                           ("deletePlaylist", {"id": public_id})):  # fmt: skip
        assert subsonic(server, method, **bob_login, **params)["error"]["code"] == 50
    for method, params in (("updatePlaylist", {"playlistId": private_id, "name": "Bob's"}),
                           ("deletePlaylist", {"id": private_id})):  # fmt: skip
        assert subsonic(server, method, **bob_login, **params)["error"]["code"] == 70
    mine = subsonic(server, "getPlaylists", **ann_login)["playlists"]["playlist"]
    assert sorted(p["name"] for p in mine) == ["Mine", "Ours"]
    # An admin may change anyone's.
    admin = {"u": "mosic", "p": server.api_key}
    assert subsonic(server, "deletePlaylist", **admin, id=private_id)["status"] == "ok"
    assert subsonic(server, "getPlaylist", **ann_login, id=private_id)["error"]["code"] == 70


def test_queue_and_bookmarks_are_each_users_own(server, songs):
    _, ann = add_user(server, "Ann")
    _, bob = add_user(server, "Bob")
    ann_login, bob_login = {"u": "Ann", "p": ann}, {"u": "Bob", "p": bob}
    first, second = songs[0]["id"], songs[1]["id"]
    saved = subsonic(server, "savePlayQueue", **ann_login, id=[first, second], current=second,
                     position=1500, c="Feishin")  # fmt: skip
    assert saved["status"] == "ok"
    mark = {"id": first, "position": 61000, "comment": "the bridge"}
    assert subsonic(server, "createBookmark", **ann_login, **mark)["status"] == "ok"
    assert subsonic(server, "createBookmark", **bob_login, id=second, position=5)["status"] == "ok"

    queue = subsonic(server, "getPlayQueue", **ann_login)["playQueue"]
    assert [e["id"] for e in queue["entry"]] == [first, second]
    assert (queue["current"], queue["position"], queue["username"]) == (second, 1500, "Ann")
    assert subsonic(server, "getPlayQueue", **bob_login)["playQueue"].get("entry", []) == []
    ann_marks = subsonic(server, "getBookmarks", **ann_login)["bookmarks"]["bookmark"]
    assert [(b["entry"]["id"], b["position"], b["comment"], b["username"]) for b in ann_marks] == [
        (first, 61000, "the bridge", "Ann"),
    ]  # fmt: skip
    bob_marks = subsonic(server, "getBookmarks", **bob_login)["bookmarks"]["bookmark"]
    assert [(b["entry"]["id"], b["position"]) for b in bob_marks] == [(second, 5)]
    # Moving a bookmark keeps one; deleting Bob's leaves Ann's.
    moved = subsonic(server, "createBookmark", **ann_login, id=first, position=62000)
    assert moved["status"] == "ok"
    assert subsonic(server, "deleteBookmark", **bob_login, id=second)["status"] == "ok"
    ann_marks = subsonic(server, "getBookmarks", **ann_login)["bookmarks"]["bookmark"]
    assert [(b["entry"]["id"], b["position"]) for b in ann_marks] == [(first, 62000)]
    assert subsonic(server, "getBookmarks", **bob_login)["bookmarks"].get("bookmark", []) == []


USER_TABLES = ("user_star", "user_rating", "user_play_queue", "user_play_queue_entry",
               "user_bookmark", "user_play", "user_play_event", "user_now_playing")  # fmt: skip


def rows_of(server, user_id: int) -> dict[str, int]:
    """How many rows of each per-user table are the user's (table names are ours)."""
    counted = "SELECT COUNT(*) FROM {} WHERE user_id = ?"
    return {t: query(server.data_dir, server.pg, counted.format(t), user_id)[0][0]
            for t in USER_TABLES}  # fmt: skip


def test_removing_a_user_removes_what_it_kept_but_not_its_plays(server, songs):
    body, leaver = add_user(server, "Leaver")
    login = {"u": "Leaver", "p": leaver}
    first = songs[0]["id"]
    listen(server, leaver, first)
    for method, params in (("star", {"id": first}), ("setRating", {"id": first, "rating": 2}),
                           ("savePlayQueue", {"id": first}),
                           ("createBookmark", {"id": first, "position": 9}),
                           ("createPlaylist", {"name": "Left", "songId": first})):  # fmt: skip
        assert subsonic(server, method, **login, **params)["status"] == "ok"
    user_id = query(server.data_dir, server.pg,
                    "SELECT id FROM mosic_user WHERE name = ?", "Leaver")[0][0]  # fmt: skip
    kept = rows_of(server, user_id)
    assert all(kept.values()), kept  # it kept something in every table

    assert call(server, "DELETE", "/users/Leaver", server.api_key).status_code == 204
    left = rows_of(server, user_id)
    assert set(left.values()) == {0}, left
    owned = query(server.data_dir, server.pg,
                  "SELECT COUNT(*) FROM subsonic_playlist WHERE owner_id = ?", user_id)  # fmt: skip
    assert owned == [(0,)]
    stats = call(server, "GET", f"/play/{first}/stats", server.api_key).json()
    assert stats["play_count"] == 1  # the global count keeps its play


def test_metrics_count_users_and_active_listeners_without_naming_them(server, songs):
    _, ann = add_user(server, "Ann")
    add_user(server, "Bob")
    before = httpx.get(f"{server.base}/metrics", timeout=10).text
    assert (metric(before, "mosic_users"), metric(before, "mosic_active_listeners")) == (3, 0)
    listen(server, ann, songs[0]["id"])
    after = httpx.get(f"{server.base}/metrics", timeout=10).text
    assert (metric(after, "mosic_users"), metric(after, "mosic_active_listeners")) == (3, 1)
    assert "Ann" not in after and "Bob" not in after
