"""A Subsonic app's view of Mosic (``/rest/*``), on SQLite and PostgreSQL: the protocol
(every method at NAME and NAME.view, GET and POST form, XML valid against the Subsonic schema,
JSON, JSONP), every way to log in and every error code, the library view, search and the
empty-query sync, album lists, streams and the counting rule, stars, ratings, playlists and
the play queue. Real third-party clients over real HTTP are in test_subsonic_clients.py."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import subprocess
import uuid
from urllib.parse import urlencode

import falcon.asgi
import falcon.testing
import PIL.Image
import pytest

from mosic.api.middleware import Lifespan
from mosic.api.subsonic import WRITES
from mosic.app import Services, create_app, subsonic_api
from tests.conftest import API_KEY
from tests.support.asgi import StaysConnected
from tests.support.measure import metric
from tests.support.subsonic import NOT_IN_SCHEMA, password_auth, token_auth, validate_xml
from tests.support.tagging import image, tag_fully
from tests.test_listen_transcoded import probe

KEY = {"apiKey": API_KEY}
SPEC_METHODS = {
    "ping", "getLicense", "getOpenSubsonicExtensions", "getMusicFolders", "getIndexes",
    "getMusicDirectory", "getArtists", "getArtist", "getAlbum", "getSong", "getAlbumList",
    "getAlbumList2", "getRandomSongs", "getGenres", "getSongsByGenre", "search2", "search3",
    "stream", "download", "getCoverArt", "scrobble", "star", "unstar", "getStarred",
    "getStarred2", "setRating", "getPlaylists", "getPlaylist", "createPlaylist",
    "updatePlaylist", "deletePlaylist", "getPlayQueue", "savePlayQueue", "tokenInfo",
    "startScan",
    # Users (the contract's "Users")
    "getUser", "getUsers", "createUser", "updateUser", "deleteUser", "changePassword",
    "getNowPlaying", "getBookmarks", "createBookmark", "deleteBookmark",
    # OpenSubsonic, complete
    "reportPlayback", "getPlayQueueByIndex", "savePlayQueueByIndex", "getTopSongs",
    # OpenSubsonic transcoding
    "getTranscodeDecision", "getTranscodeStream",
    "getLyricsBySongId", "getLyrics",
    # OpenSubsonic, complete: shares
    "getShares", "createShare", "updateShare", "deleteShare",
}  # fmt: skip
# Beyond the list: what apps ask when they log in.
LOGIN_EXTRAS = {"getScanStatus"}


def short_hash(*parts: str) -> str:
    return hashlib.sha1("\x00".join(parts).encode(), usedforsecurity=False).hexdigest()[:16]


class Sub:
    """Subsonic calls through the in-process app."""

    def __init__(self, api) -> None:
        self.api = api

    async def call(self, method: str, *, auth=KEY, post=False, headers=None, **params):
        query = [(k, v) for k, v in {**auth, **params}.items() if not isinstance(v, list)]
        query += [(k, item) for k, v in params.items() if isinstance(v, list) for item in v]
        if post:
            return await self.api.post(
                f"/rest/{method}",
                key=None,
                body=urlencode(query),
                headers={"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
            )
        return await self.api.get(
            f"/rest/{method}", key=None, query_string=urlencode(query), headers=headers
        )

    async def json(self, method: str, **kwargs) -> dict:
        result = await self.call(method, f="json", **kwargs)
        assert result.status_code == 200, result.text
        return result.json["subsonic-response"]

    async def ok(self, method: str, **kwargs) -> dict:
        body = await self.json(method, **kwargs)
        assert body["status"] == "ok", body.get("error")
        return body

    async def error(self, method: str, **kwargs) -> int:
        body = await self.json(method, **kwargs)
        assert body["status"] == "failed", body
        return body["error"]["code"]

    async def xml(self, method: str, **kwargs):
        result = await self.call(method, **kwargs)
        assert result.status_code == 200, result.text
        assert result.headers["Content-Type"].startswith("application/xml")
        return validate_xml(result.content)


@pytest.fixture
def sub(api) -> Sub:
    return Sub(api)


@pytest.fixture
async def library(api, clip_file) -> dict:
    """Four songs on three artists and four albums (one untagged), and a metadata-only clip
    that is no song. Uploaded in this order, so "newest" is the reverse."""
    tracks = {
        "alpha": clip_file("mp3", freq=300, title="Alpha", artist="Ann", album="First"),
        "beta": clip_file("ogg", freq=310, title="Beta", artist="Ann", album="Second"),
        "gamma": clip_file("flac", freq=320, title="Gamma", artist="Bob", album="First"),
        "delta": clip_file("wav", freq=330),
    }
    ids = {}
    for name, path in tracks.items():
        result = await api.upload(path.read_bytes(), path.name)
        assert result.status_code == 201, result.text
        ids[name] = result.json["id"]
    external = await api.add_external(title="Elsewhere", artist="Ann", album="First")
    ids["external"] = external.json["id"]
    ids["bytes"] = {name: path.read_bytes() for name, path in tracks.items()}
    return ids


# -- the protocol ----------------------------------------------------------------------------


def call_args(lib: dict, playlist_id: str, share_id: str = "no-such-share") -> dict[str, dict]:
    ann_first = "al-" + short_hash("Ann", "First")
    return {
        "getMusicDirectory": {"id": ann_first},
        "getArtist": {"id": "ar-" + short_hash("Ann")},
        "getAlbum": {"id": ann_first},
        "getSong": {"id": lib["alpha"]},
        "getAlbumList": {"type": "newest"},
        "getAlbumList2": {"type": "alphabeticalByName"},
        "getSongsByGenre": {"genre": "Jazz"},
        "getUser": {"username": "mosic"},
        "search2": {"query": "a"},
        "search3": {"query": '""'},
        "stream": {"id": lib["alpha"]},
        "download": {"id": lib["beta"]},
        "getTranscodeDecision": {"mediaId": lib["alpha"], "mediaType": "song"},
        "getTranscodeStream": {
            "mediaId": lib["alpha"],
            "mediaType": "song",
            "transcodeParams": "raw",
        },
        "getCoverArt": {"id": lib["alpha"]},
        "scrobble": {"id": lib["alpha"], "submission": "false"},
        "star": {"id": lib["alpha"]},
        "unstar": {"id": lib["alpha"]},
        "setRating": {"id": lib["alpha"], "rating": "4"},
        "getPlaylist": {"id": playlist_id},
        "createPlaylist": {"name": "Made", "songId": [lib["alpha"], lib["beta"]]},
        "updatePlaylist": {"playlistId": playlist_id, "comment": "changed"},
        "deletePlaylist": {"id": "new"},
        "savePlayQueue": {"id": [lib["alpha"]], "current": lib["alpha"]},
        "savePlayQueueByIndex": {"id": [lib["alpha"], lib["alpha"]], "currentIndex": "1"},
        "reportPlayback": {
            "mediaId": lib["alpha"],
            "mediaType": "song",
            "positionMs": "0",
            "state": "starting",
        },
        "getTopSongs": {"artist": "ann", "count": "1"},
        "createBookmark": {"id": lib["alpha"], "position": "61000", "comment": "the bridge"},
        "deleteBookmark": {"id": lib["beta"]},
        "createUser": {"username": "new", "password": "a long password"},
        "updateUser": {"username": "kid", "adminRole": "false", "musicFolderId": "1"},
        "deleteUser": {"username": "new"},
        "changePassword": {"username": "kid", "password": "enc:" + b"another password".hex()},
        "getLyricsBySongId": {"id": lib["alpha"]},
        "getLyrics": {"artist": "ann", "title": "ALPHA"},
        "createShare": {"id": [lib["alpha"], ann_first], "description": "Two", "expires": "0"},
        "updateShare": {"id": share_id, "description": "changed"},
        "deleteShare": {"id": "new share"},
    }


async def new_share(sub, lib: dict) -> str:
    made = await sub.ok("createShare", id=lib["alpha"])
    return made["shares"]["share"][0]["id"]


async def new_user(sub, *, made: bool) -> str:
    name = f"user-{uuid.uuid4().hex[:8]}"
    if made:
        await sub.ok("createUser", username=name, password="a long password")
    return name


async def test_every_method_answers_at_its_name_and_view_by_get_and_post(sub, library):
    playlist = await sub.ok("createPlaylist", name="Kept", songId=[library["gamma"]])
    await sub.ok("createUser", username="kid", password="the kid's password")
    share = (await sub.ok("createShare", id=library["beta"]))["shares"]["share"][0]
    args = call_args(library, playlist["playlist"]["id"], share["id"])
    for method in sorted(SPEC_METHODS | LOGIN_EXTRAS):
        for name, post in ((method, False), (f"{method}.view", True)):
            params = dict(args.get(method, {}))
            if params.get("id") == "new":  # a playlist to delete, one per call
                made = await sub.ok("createPlaylist", name="Gone")
                params["id"] = made["playlist"]["id"]
            if params.get("id") == "new share":  # a share to delete, one per call
                params["id"] = await new_share(sub, library)
            if params.get("username") == "new":  # a user to make or remove, one per call
                params["username"] = await new_user(sub, made=method != "createUser")
            if method in ("stream", "download", "getTranscodeStream"):
                result = await sub.call(name, post=post, **params)
                assert result.status_code == 200
                sent = "beta" if method == "download" else "alpha"
                assert result.content == library["bytes"][sent]
                continue
            if method == "getTranscodeDecision":  # always a POST, with a JSON body
                query = urlencode({**KEY, "f": "json", **params})
                info = json.dumps({"name": "any", "platform": "any", "directPlayProfiles": [{}]})
                result = await sub.api.post(
                    f"/rest/{name}", key=None, query_string=query, body=info,
                    headers={"Content-Type": "application/json"},
                )  # fmt: skip
                assert result.json["subsonic-response"]["transcodeDecision"]["canDirectPlay"]
                continue
            if method == "getCoverArt":  # these clips embed no picture
                assert await sub.error(name, post=post, **params) == 70
                continue
            auth = {"apiKey": API_KEY} if method == "tokenInfo" else token_auth(API_KEY)
            body = await sub.ok(name, post=post, auth=auth, **params)
            envelope = (body["version"], body["type"], body["openSubsonic"])
            assert envelope == ("1.16.1", "mosic", True)
            assert body["serverVersion"]
            if method == "deletePlaylist":
                params["id"] = (await sub.ok("createPlaylist", name="Gone"))["playlist"]["id"]
            if method == "deleteShare":
                params["id"] = await new_share(sub, library)
            if method in ("createUser", "deleteUser"):
                params["username"] = await new_user(sub, made=method == "deleteUser")
            root = await sub.xml(name, post=not post, auth=auth, **params)
            assert root.tag == "{http://subsonic.org/restapi}subsonic-response"
            assert root.get("status") == "ok", (name, [child.attrib for child in root])
            assert root.get("openSubsonic") == "true"
            if method in NOT_IN_SCHEMA:  # OpenSubsonic elements: checked here instead
                assert {child.tag.split("}")[1] for child in root} == {NOT_IN_SCHEMA[method]}


async def test_xml_is_the_default_and_jsonp_wraps_the_json(sub):
    plain = await sub.call("ping")
    assert plain.headers["Content-Type"] == "application/xml; charset=utf-8"
    validate_xml(plain.content)
    wrapped = await sub.call("ping", f="jsonp", callback="app.onPing")
    assert wrapped.headers["Content-Type"].startswith("application/javascript")
    assert wrapped.text.startswith("app.onPing(") and wrapped.text.endswith(");")
    inner = json.loads(wrapped.text[len("app.onPing(") : -2])
    assert inner["subsonic-response"]["status"] == "ok"
    hostile = await sub.call("ping", f="jsonp", callback="alert(1)//")
    assert hostile.json["subsonic-response"]["status"] == "failed"
    assert "alert" not in hostile.text
    assert (await sub.call("ping", f="jsonp")).json["subsonic-response"]["error"]["code"] == 10


async def test_an_unknown_method_is_a_404_with_a_subsonic_error(sub):
    result = await sub.call("getVideos", f="json")
    assert result.status_code == 404
    assert result.json["subsonic-response"]["error"]["code"] == 70
    validate_xml((await sub.call("nope.view")).content)


# -- logging in ------------------------------------------------------------------------------


async def test_every_way_to_log_in(sub):
    for auth in (
        {"apiKey": API_KEY},
        password_auth(API_KEY),
        password_auth(API_KEY, encoded=True),
        token_auth(API_KEY),
    ):
        await sub.ok("ping", auth=auth)
        await sub.ok("ping", auth=auth, post=True)
    upper = token_auth(API_KEY)
    await sub.ok("ping", auth={**upper, "t": upper["t"].upper()})


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        pytest.param({}, 10, id="nothing"),
        pytest.param({"u": "mosic"}, 10, id="user alone"),
        pytest.param({"u": "mosic", "t": "0" * 32}, 10, id="token without salt"),
        pytest.param({"u": "mosic", "p": "wrong"}, 40, id="wrong password"),
        pytest.param({"u": "mosic", "p": "enc:zz"}, 40, id="bad hex"),
        pytest.param({"u": "someone", "p": API_KEY}, 40, id="wrong user"),
        pytest.param({"u": "mosic", "t": "0" * 32, "s": "abc"}, 40, id="wrong token"),
        pytest.param({"apiKey": API_KEY, "u": "mosic"}, 43, id="apiKey with u"),
        pytest.param({"u": "mosic", "p": API_KEY, "t": "0" * 32, "s": "a"}, 43, id="p and t"),
        pytest.param({"apiKey": "not-the-key"}, 44, id="wrong apiKey"),
        pytest.param({"apiKey": ""}, 44, id="empty apiKey"),
    ],
)
async def test_each_credential_error_has_its_code(sub, auth, code):
    assert await sub.error("ping", auth=auth) == code
    root = await sub.xml("getArtists", auth=auth)
    assert root.get("status") == "failed"
    assert root[0].get("code") == str(code)


async def test_token_info_needs_an_api_key_and_extensions_need_nothing(sub, settings):
    assert (await sub.ok("tokenInfo"))["tokenInfo"] == {"username": settings.admin_user}
    assert await sub.error("tokenInfo", auth=token_auth(API_KEY)) == 42
    for auth in ({}, {"apiKey": "wrong"}):
        body = await sub.ok("getOpenSubsonicExtensions", auth=auth)
        names = {e["name"] for e in body["openSubsonicExtensions"]}
        assert {"apiKeyAuthentication", "formPost", "songLyrics"} <= names


async def test_the_user_name_is_the_setting(settings):
    settings = settings.replace(admin_user="dj")
    async with falcon.testing.ASGIConductor(create_app(settings)) as conductor:
        ping = await conductor.simulate_get(
            "/rest/ping", params={**password_auth(API_KEY, user="dj"), "f": "json"}
        )
        assert ping.json["subsonic-response"]["status"] == "ok"
        wrong = await conductor.simulate_get(
            "/rest/ping", params={**password_auth(API_KEY), "f": "json"}
        )
        assert wrong.json["subsonic-response"]["error"]["code"] == 40


async def test_a_read_only_key_reads_and_scrobbles_but_changes_nothing(settings, api, library, sub):
    # The same key, read only (MOSIC_READ_API_KEYS), beside another full key.
    read_only = settings.replace(api_key="another-full-key", read_api_keys=(API_KEY,))
    services = Services.build(read_only)
    resource = subsonic_api(services)
    assert resource.method_names == SPEC_METHODS | LOGIN_EXTRAS
    app = falcon.asgi.App(middleware=[Lifespan(db=services.db, store=services.store)])
    app.add_route("/rest/{method}", resource)
    conductor = falcon.testing.ASGIConductor(StaysConnected(app))
    read_only = Sub(type(sub.api)(conductor, settings, sub.api.media_dir, sub.api.s3_server))
    async with read_only.api.conductor:
        args = call_args(library, str(uuid.uuid4()))
        assert {
            "star", "unstar", "setRating", "createPlaylist", "updatePlaylist",
            "deletePlaylist", "savePlayQueue", "savePlayQueueByIndex", "startScan", "createUser",
            "updateUser", "deleteUser", "changePassword", "createBookmark", "deleteBookmark",
            "createShare", "updateShare", "deleteShare",
        } == WRITES  # fmt: skip
        for method in sorted(WRITES):
            assert await read_only.error(method, **args.get(method, {})) == 50, method
        await read_only.ok("getArtists")
        user = (await read_only.ok("getUser", username="mosic"))["user"]
        assert (user["streamRole"], user["adminRole"]) == (True, True)  # its user's roles
        await read_only.ok("scrobble", id=library["alpha"])
        await read_only.ok("reportPlayback", **args["reportPlayback"])
        stream = await read_only.call("stream", id=library["alpha"])
        assert stream.content == library["bytes"]["alpha"]
    assert (await sub.ok("getStarred2"))["starred2"] == {"artist": [], "album": [], "song": []}
    assert (await sub.ok("getPlaylists"))["playlists"]["playlist"] == []
    stats = await sub.api.get(f"/play/{library['alpha']}/stats")
    assert stats.json["play_count"] == 1


# -- the library view ------------------------------------------------------------------------


async def test_artists_albums_and_songs_come_from_the_tags_with_stable_ids(sub, library):
    ann, bob, unknown = (f"ar-{short_hash(n)}" for n in ("Ann", "Bob", "Unknown Artist"))
    index = (await sub.ok("getArtists"))["artists"]["index"]
    artists = {a["name"]: a for group in index for a in group["artist"]}
    assert {name: (a["id"], a["albumCount"]) for name, a in artists.items()} == {
        "Ann": (ann, 2),
        "Bob": (bob, 1),
        "Unknown Artist": (unknown, 1),
    }
    assert [group["name"] for group in index] == ["A", "B", "U"]

    artist = (await sub.ok("getArtist", id=ann))["artist"]
    assert sorted(a["name"] for a in artist["album"]) == ["First", "Second"]
    first = f"al-{short_hash('Ann', 'First')}"
    album = (await sub.ok("getAlbum", id=first))["album"]
    assert (album["name"], album["artist"], album["artistId"], album["songCount"]) == (
        "First",
        "Ann",
        ann,
        1,
    )
    song = album["song"][0]
    assert song["id"] == library["alpha"]  # the song id is the clip id
    assert (song["title"], song["album"], song["artist"]) == ("Alpha", "First", "Ann")
    assert (song["albumId"], song["artistId"], song["parent"]) == (first, ann, first)
    assert (song["isDir"], song["contentType"], song["suffix"]) == (False, "audio/mpeg", "mp3")
    assert song["size"] == len(library["bytes"]["alpha"]) and song["duration"] == 1

    bobs_first = (await sub.ok("getAlbum", id=f"al-{short_hash('Bob', 'First')}"))["album"]
    assert [s["title"] for s in bobs_first["song"]] == ["Gamma"]  # same name, other artist
    untagged = (await sub.ok("getSong", id=library["delta"]))["song"]
    assert (untagged["artist"], untagged["album"]) == ("Unknown Artist", "Unknown Album")

    folder_view = (await sub.ok("getMusicDirectory", id=ann))["directory"]
    assert {c["title"] for c in folder_view["child"]} == {"First", "Second"}
    assert all(c["isDir"] for c in folder_view["child"])
    songs_view = (await sub.ok("getMusicDirectory", id=first))["directory"]
    assert [c["id"] for c in songs_view["child"]] == [library["alpha"]]
    indexes = (await sub.ok("getIndexes"))["indexes"]
    assert {a["id"] for i in indexes["index"] for a in i["artist"]} == {ann, bob, unknown}
    folders = (await sub.ok("getMusicFolders"))["musicFolders"]["musicFolder"]
    assert folders == [{"id": 1, "name": "Uploads"}]
    in_uploads = (await sub.ok("getArtists", musicFolderId=1))["artists"]["index"]
    assert {a["id"] for i in in_uploads for a in i["artist"]} == {ann, bob, unknown}
    assert await sub.error("getArtists", musicFolderId=99) == 70
    user = (await sub.ok("getUser", username="mosic"))["user"]
    assert (user["folder"], user["streamRole"], user["playlistRole"]) == ([1], True, True)
    assert await sub.error("getUser", username="root") == 70
    scan = (await sub.ok("getScanStatus"))["scanStatus"]
    assert scan == {"scanning": False, "count": 4}


async def test_what_is_not_a_song_or_not_there_is_not_found(sub, library):
    for method, params in [
        ("getSong", {"id": library["external"]}),  # metadata-only: no stored file
        ("getSong", {"id": str(uuid.uuid4())}),
        ("getSong", {"id": "not-a-uuid"}),
        ("getAlbum", {"id": "al-0000000000000000"}),
        ("getArtist", {"id": "ar-0000000000000000"}),
        ("getMusicDirectory", {"id": "nothing"}),
        ("stream", {"id": library["external"]}),
        ("download", {"id": str(uuid.uuid4())}),
        ("getPlaylist", {"id": str(uuid.uuid4())}),
        ("deletePlaylist", {"id": "x"}),
        ("scrobble", {"id": [library["alpha"], str(uuid.uuid4())]}),
    ]:
        assert await sub.error(method, **params) == 70, (method, params)
    for method in ("getSong", "getAlbum", "getArtist", "stream", "scrobble", "getCoverArt"):
        assert await sub.error(method) == 10, method
    # The half-known scrobble counted nothing.
    stats = await sub.api.get(f"/play/{library['alpha']}/stats")
    assert stats.json["play_count"] == 0


async def test_ids_survive_a_restart(settings, library, sub):
    before = await sub.ok("getArtists")

    async with falcon.testing.ASGIConductor(create_app(settings)) as again:
        result = await again.simulate_get("/rest/getArtists", params={**KEY, "f": "json"})
    assert result.json["subsonic-response"]["artists"] == before["artists"]


# -- search and sync -------------------------------------------------------------------------


@pytest.mark.parametrize("query", ['""', "", None, "*"], ids=["quotes", "empty", "absent", "*"])
async def test_an_empty_search3_syncs_the_whole_library_page_by_page(sub, library, query):
    params = {} if query is None else {"query": query}
    seen, offset = [], 0
    while True:
        page = (await sub.ok("search3", songCount=3, songOffset=offset, **params))["searchResult3"]
        seen += [s["id"] for s in page["song"]]
        if len(page["song"]) < 3:
            break
        offset += 3
    songs = {library[n] for n in ("alpha", "beta", "gamma", "delta")}
    assert len(seen) == len(set(seen)) == 4 and set(seen) == songs
    albums = []
    for offset in range(3):
        page = await sub.ok("search3", albumCount=1, albumOffset=offset, songCount=0, **params)
        albums += [a["name"] for a in page["searchResult3"]["album"]]
        assert page["searchResult3"]["song"] == []
    assert albums == ["First", "First", "Second"]  # by name, then artist
    artists = await sub.ok("search3", artistCount=2, artistOffset=1, **params)
    assert [a["name"] for a in artists["searchResult3"]["artist"]] == ["Bob", "Unknown Artist"]


async def test_search_matches_every_word_case_insensitively(sub, library):
    found = (await sub.ok("search3", query="ALPHA ann"))["searchResult3"]
    assert [s["id"] for s in found["song"]] == [library["alpha"]]
    assert [a["name"] for a in found["artist"]] == []  # no artist is called "alpha ann"
    by_artist = (await sub.ok("search2", query="ann"))["searchResult2"]
    assert {s["title"] for s in by_artist["song"]} == {"Alpha", "Beta"}
    assert [a["name"] for a in by_artist["artist"]] == ["Ann"]
    assert {a["title"] for a in by_artist["album"]} == {"First", "Second"}
    assert all(a["isDir"] for a in by_artist["album"])
    nothing = (await sub.ok("search3", query="zzz"))["searchResult3"]
    assert nothing == {"artist": [], "album": [], "song": []}
    root = await sub.xml("search2", query="ann")
    assert len(root[0]) == 5


# -- album lists and random songs ------------------------------------------------------------


async def album_names(sub, kind, **params) -> list[str]:
    body = await sub.ok("getAlbumList2", type=kind, **params)
    return [f"{a['artist']}/{a['name']}" for a in body["albumList2"]["album"]]


async def test_album_lists_in_every_order(sub, library):
    everything = ["Ann/First", "Bob/First", "Ann/Second", "Unknown Artist/Unknown Album"]
    assert await album_names(sub, "alphabeticalByName") == everything
    assert await album_names(sub, "alphabeticalByArtist") == [
        "Ann/First", "Ann/Second", "Bob/First", "Unknown Artist/Unknown Album",
    ]  # fmt: skip
    assert await album_names(sub, "newest") == [
        "Unknown Artist/Unknown Album", "Bob/First", "Ann/Second", "Ann/First",
    ]  # fmt: skip
    assert sorted(await album_names(sub, "random")) == sorted(everything)
    assert await album_names(sub, "frequent") == await album_names(sub, "recent") == []

    await sub.ok("scrobble", id=[library["beta"], library["beta"], library["gamma"]])
    assert await album_names(sub, "frequent") == ["Ann/Second", "Bob/First"]
    await sub.ok("scrobble", id=library["gamma"])
    assert await album_names(sub, "recent") == ["Bob/First", "Ann/Second"]
    assert await album_names(sub, "starred") == []
    await sub.ok("star", albumId="al-" + short_hash("Ann", "Second"))
    assert await album_names(sub, "starred") == ["Ann/Second"]

    assert await album_names(sub, "alphabeticalByName", size=2, offset=1) == everything[1:3]
    assert await album_names(sub, "byYear", fromYear=1990, toYear=2000) == []
    assert await album_names(sub, "byGenre", genre="Jazz") == []
    assert await sub.error("getAlbumList2", type="byYear", fromYear=1990) == 10
    assert await sub.error("getAlbumList2", type="byGenre") == 10
    assert await sub.error("getAlbumList2") == 10
    assert await sub.error("getAlbumList2", type="loudest") == 0
    assert await sub.error("getAlbumList2", type="newest", size="many") == 0
    old_style = (await sub.ok("getAlbumList", type="newest", size=1))["albumList"]["album"]
    assert old_style[0]["isDir"] and old_style[0]["title"] == "Unknown Album"
    frequent = (await sub.ok("getAlbumList2", type="frequent"))["albumList2"]["album"]
    assert [a["playCount"] for a in frequent] == [2, 2]


async def test_random_songs_genres_and_songs_by_genre(sub, library):
    songs = {library[n] for n in ("alpha", "beta", "gamma", "delta")}
    drawn = (await sub.ok("getRandomSongs", size=10))["randomSongs"]["song"]
    assert {s["id"] for s in drawn} == songs
    assert len((await sub.ok("getRandomSongs", size=2))["randomSongs"]["song"]) == 2
    # These clips have no genre or year, so no song matches either filter.
    assert (await sub.ok("getRandomSongs", genre="Jazz"))["randomSongs"]["song"] == []
    assert (await sub.ok("getGenres"))["genres"]["genre"] == []
    assert (await sub.ok("getSongsByGenre", genre="Jazz"))["songsByGenre"]["song"] == []
    assert await sub.error("getSongsByGenre") == 10


# -- streams, downloads and the counting rule ------------------------------------------------


async def plays_total(api) -> float:
    return metric((await api.get("/metrics", key=None)).text, "mosic_plays_total")


async def test_stream_and_download_send_the_original_with_range_and_count_nothing(sub, library):
    alpha, data = library["alpha"], library["bytes"]["alpha"]
    before = await plays_total(sub.api)
    whole = await sub.call("stream", id=alpha)
    assert (whole.status_code, whole.content) == (200, data)
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert whole.headers["Content-Type"] == "audio/mpeg"
    part = await sub.call("stream.view", id=alpha, headers={"Range": "bytes=10-99"})
    assert (part.status_code, part.content) == (206, data[10:100])
    assert part.headers["Content-Range"] == f"bytes 10-99/{len(data)}"
    posted = await sub.call("stream", id=alpha, post=True, headers={"Range": "bytes=0-"})
    assert (posted.status_code, posted.content) == (206, data)
    past = await sub.call("stream", id=alpha, headers={"Range": f"bytes={len(data)}-"})
    assert past.status_code == 416
    # A format Mosic does not make, or a maxBitRate above the file's, is the original.
    for asked in ({"format": "flv"}, {"format": "raw", "maxBitRate": 320}, {"maxBitRate": 0}):
        same = await sub.call("stream", id=alpha, **asked)
        assert same.content == data and same.headers["Content-Type"] == "audio/mpeg", asked
    assert await sub.error("stream", id=alpha, maxBitRate=-1) == 0
    download = await sub.call("download", id=alpha)
    assert download.content == data
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert "Alpha.mp3" in download.headers["Content-Disposition"]
    stats = await sub.api.get(f"/play/{alpha}/stats")
    assert stats.json["play_count"] == 0
    assert await plays_total(sub.api) == before


async def test_scrobble_counts_exactly_one_play_per_id(sub, library):
    alpha, beta = library["alpha"], library["beta"]
    before = await plays_total(sub.api)
    await sub.ok("scrobble", id=[alpha, beta])
    await sub.ok("scrobble", id=alpha, submission="false")  # now playing: not a play
    await sub.ok("scrobble.view", id=alpha, submission="true", time=1764079200000, post=True)
    counts = {}
    for clip_id in (alpha, beta):
        counts[clip_id] = (await sub.api.get(f"/play/{clip_id}/stats")).json["play_count"]
    assert counts == {alpha: 2, beta: 1}
    assert await plays_total(sub.api) == before + 3
    song = (await sub.ok("getSong", id=alpha))["song"]
    assert song["playCount"] == 2 and song["played"]
    assert await sub.error("scrobble", id=alpha, submission="maybe") == 0


async def test_cover_art_is_not_found_when_no_song_has_one(sub, library):
    for item in (library["alpha"], "al-" + short_hash("Ann", "First"), "nothing"):
        assert await sub.error("getCoverArt", id=item, size=300) == 70
    assert await sub.error("getCoverArt", id=library["alpha"], size=0) == 0


# -- full tags, covers and transcoding --------------------------------------------------------


@pytest.fixture
async def tagged(api, clip_file, tmp_path) -> dict:
    """A compilation ("Various Artists", two track artists, 1994, Jazz; one song with a
    cover) and a 2008 Rock album with no cover."""
    picture = image(tmp_path / "cover", color="navy")
    songs = {
        "one": ("mp3", "Ann", "Mix", {"track": "1/2", "disc": "1/1", "date": "1994",
                "genre": "Jazz", "album_artist": "Various Artists"}),
        "two": ("flac", "Bob", "Mix", {"track": "2/2", "disc": "1/1", "date": "1994",
                 "genre": "Jazz", "album_artist": "Various Artists", "picture": picture}),
        "three": ("ogg", "Cy", "Loud", {"track": "1", "date": "2008", "genre": "Rock"}),
    }  # fmt: skip
    ids = {"picture": picture.data}
    for n, (name, (fmt, artist, album, tags)) in enumerate(songs.items()):
        source = clip_file(fmt, freq=400 + n * 10, title=name.title(), artist=artist, album=album)
        path = tmp_path / f"{name}.{fmt}"
        shutil.copy(source, path)
        tag_fully(path, fmt, **tags)
        result = await api.upload(path.read_bytes(), path.name)
        assert result.status_code == 201, result.text
        ids[name] = result.json["id"]
    ids["mix"] = "al-" + short_hash("Various Artists", "Mix")
    ids["loud"] = "al-" + short_hash("Cy", "Loud")
    return ids


async def test_songs_and_albums_carry_their_tags_stream_facts_and_cover(sub, tagged):
    two = (await sub.ok("getSong", id=tagged["two"]))["song"]
    facts = ("track", "discNumber", "year", "genre", "samplingRate", "channelCount")
    assert {k: two[k] for k in facts} == {
        "track": 2, "discNumber": 1, "year": 1994, "genre": "Jazz", "samplingRate": 22050,
        "channelCount": 1,
    }  # fmt: skip
    assert two["bitRate"] > 0 and two["coverArt"] == tagged["two"]
    # The album artist makes one album of the compilation, under its album artist.
    assert (two["artist"], two["albumId"]) == ("Various Artists", tagged["mix"])
    one = (await sub.ok("getSong", id=tagged["one"]))["song"]
    assert "coverArt" not in one and one["track"] == 1
    mix = (await sub.ok("getAlbum", id=tagged["mix"]))["album"]
    assert (mix["songCount"], mix["year"], mix["genre"]) == (2, 1994, "Jazz")
    assert mix["coverArt"] == tagged["mix"] and mix["artist"] == "Various Artists"
    assert [s["title"] for s in mix["song"]] == ["One", "Two"]
    loud = (await sub.ok("getAlbum", id=tagged["loud"]))["album"]
    assert (loud["year"], loud["genre"]) == (2008, "Rock") and "coverArt" not in loud
    artists = (await sub.ok("getArtists"))["artists"]["index"]
    assert sorted(a["name"] for g in artists for a in g["artist"]) == ["Cy", "Various Artists"]
    await sub.xml("getAlbum", id=tagged["mix"])  # the new attributes are in the schema


async def test_album_lists_by_year_and_genre(sub, tagged):
    assert await album_names(sub, "byYear", fromYear=1990, toYear=2010) == [
        "Various Artists/Mix", "Cy/Loud",
    ]  # fmt: skip
    assert await album_names(sub, "byYear", fromYear=2010, toYear=1990) == [
        "Cy/Loud", "Various Artists/Mix",
    ]  # fmt: skip
    assert await album_names(sub, "byYear", fromYear=2000, toYear=2008) == ["Cy/Loud"]
    assert await album_names(sub, "byYear", fromYear=1995, toYear=2000) == []
    assert await album_names(sub, "byGenre", genre="jazz") == ["Various Artists/Mix"]
    assert await album_names(sub, "byGenre", genre="Rock", offset=1) == []
    old_style = (await sub.ok("getAlbumList", type="byGenre", genre="Rock"))["albumList"]
    assert [a["id"] for a in old_style["album"]] == [tagged["loud"]]
    assert await sub.error("getAlbumList2", type="byYear", fromYear="then", toYear=1) == 0


async def test_genres_songs_by_genre_and_random_song_filters(sub, tagged):
    genres = (await sub.ok("getGenres"))["genres"]["genre"]
    assert genres == [
        {"value": "Jazz", "songCount": 2, "albumCount": 1},
        {"value": "Rock", "songCount": 1, "albumCount": 1},
    ]
    xml_genres = (await sub.xml("getGenres")).find("{*}genres")
    assert [g.text for g in xml_genres] == ["Jazz", "Rock"]

    async def genre_page(**params) -> list[str]:
        body = await sub.ok("getSongsByGenre", **params)
        return [s["title"] for s in body["songsByGenre"]["song"]]

    assert await genre_page(genre="Jazz") == ["One", "Two"]
    assert await genre_page(genre="jazz", count=1, offset=1) == ["Two"]
    assert await genre_page(genre="Blues") == []

    async def random_titles(**params) -> set[str]:
        body = await sub.ok("getRandomSongs", size=10, **params)
        return {s["title"] for s in body["randomSongs"]["song"]}

    assert await random_titles(genre="Jazz") == {"One", "Two"}
    assert await random_titles(fromYear=2000) == {"Three"}
    assert await random_titles(toYear=2000) == {"One", "Two"}
    assert await random_titles(genre="Rock", fromYear=1990, toYear=2000) == set()


async def test_cover_art_is_the_embedded_picture_of_the_song_or_album(sub, tagged):
    for item in (tagged["two"], tagged["mix"]):
        cover = await sub.call("getCoverArt", id=item, size=64)
        assert cover.status_code == 200
        assert cover.content == tagged["picture"]
        assert cover.headers["Content-Type"] == "image/jpeg"
    for item in (tagged["one"], tagged["loud"], "al-" + short_hash("Nobody", "Nothing")):
        assert await sub.error("getCoverArt", id=item) == 70


async def test_cover_art_is_resized_once_to_the_size_asked(sub, tagged, tmp_path):
    small = await sub.call("getCoverArt", id=tagged["two"], size=16)
    assert small.headers["Content-Type"] == "image/jpeg"
    (tmp_path / "small.jpg").write_bytes(small.content)
    with PIL.Image.open(tmp_path / "small.jpg") as picture:
        assert (picture.format, picture.size) == ("JPEG", (16, 16))
    # Kept: the same bytes again, and a blob beside the original in the media store.
    again = await sub.call("getCoverArt", id=tagged["mix"], size=16)
    assert again.content == small.content and again.headers["ETag"] == small.headers["ETag"]
    stored = sorted(p.name for p in sub.api.media_dir.rglob("*-16.jpg"))
    assert stored == [hashlib.sha256(tagged["picture"]).hexdigest() + "-16.jpg"]
    # Never enlarged: the 32x32 original for any bigger size.
    assert (await sub.call("getCoverArt", id=tagged["two"], size=300)).content == tagged["picture"]
    assert await sub.error("getCoverArt", id=tagged["two"], size=0) == 0


async def test_cover_sizes_come_in_steps_and_go_with_their_cover(sub, tagged, tmp_path):
    async def side(size: int) -> int:
        got = await sub.call("getCoverArt", id=tagged["two"], size=size)
        (tmp_path / "got.jpg").write_bytes(got.content)
        with PIL.Image.open(tmp_path / "got.jpg") as picture:
            return max(picture.size)

    # Any size is served at the largest step not above it, so sizes make few copies.
    assert [await side(size) for size in (5, 16, 20, 23, 24, 31)] == [16, 16, 16, 16, 24, 24]
    cover_hash = hashlib.sha256(tagged["picture"]).hexdigest()
    stored = sorted(p.name for p in sub.api.media_dir.rglob(f"{cover_hash}*"))
    assert stored == [f"{cover_hash}-16.jpg", f"{cover_hash}-24.jpg", f"{cover_hash}.jpg"]
    # The one clip with this cover deleted: the cover and every scaled copy go with it.
    assert (await sub.api.delete(f"/play/{tagged['two']}")).status_code == 204
    assert list(sub.api.media_dir.rglob(f"{cover_hash}*")) == []


async def test_stream_transcodes_by_format_and_max_bit_rate_and_counts_nothing(sub, tmp_path):
    source = tmp_path / "rich.mp3"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi",
         "-i", "sine=frequency=440:duration=12", "-ac", "2", "-ar", "44100",
         "-c:a", "libmp3lame", "-b:a", "192k", str(source)],
        check=True,
    )  # fmt: skip
    uploaded = await sub.api.upload(source.read_bytes(), "rich.mp3")
    song_id = uploaded.json["id"]
    assert (await sub.ok("getSong", id=song_id))["song"]["bitRate"] == 192
    before = await plays_total(sub.api)

    opus = await sub.call("stream", id=song_id, format="opus", maxBitRate=64)
    assert (opus.status_code, opus.headers["Content-Type"]) == (200, "audio/ogg")
    heard = probe(opus.content, tmp_path)
    assert heard["codec"] == "opus" and abs(heard["kbps"] - 64) <= 64 * 0.25, heard
    lower = await sub.call("stream", id=song_id, maxBitRate=96)
    assert lower.headers["Content-Type"] == "audio/mpeg"
    heard = probe(lower.content, tmp_path)
    assert heard["codec"] == "mp3" and abs(heard["kbps"] - 96) <= 96 * 0.10, heard
    assert abs(heard["seconds"] - 12) < 0.5
    # mp3 with no bitrate: the format's default (128); a huge one is held to 320.
    default = probe((await sub.call("stream", id=song_id, format="mp3")).content, tmp_path)
    assert abs(default["kbps"] - 128) <= 128 * 0.10, default
    again = await sub.call("stream", id=song_id, maxBitRate=96)  # from the rendition cache
    assert again.content == lower.content
    original = await sub.call("stream", id=song_id, maxBitRate=320)
    assert original.content == source.read_bytes()
    assert (await sub.api.get(f"/play/{song_id}/stats")).json["play_count"] == 0
    assert await plays_total(sub.api) == before


# -- stars, ratings, playlists, the play queue -----------------------------------------------


async def test_stars_and_ratings_on_songs_albums_and_artists(sub, library):
    ann, album = "ar-" + short_hash("Ann"), "al-" + short_hash("Bob", "First")
    await sub.ok("star", id=library["alpha"], albumId=album, artistId=ann)
    await sub.ok("star", id=library["alpha"])  # twice is once
    starred = (await sub.ok("getStarred2"))["starred2"]
    assert [s["id"] for s in starred["song"]] == [library["alpha"]]
    assert [a["id"] for a in starred["album"]] == [album]
    assert [a["id"] for a in starred["artist"]] == [ann]
    assert all(item["starred"] for group in starred.values() for item in group)
    old = (await sub.ok("getStarred"))["starred"]
    assert [a["isDir"] for a in old["album"]] == [True]
    assert (await sub.ok("getSong", id=library["alpha"]))["song"]["starred"]
    assert await sub.error("star", id=str(uuid.uuid4())) == 70
    assert await sub.error("star", albumId="al-nothing") == 70
    assert await sub.error("star") == 10

    await sub.ok("unstar", id=library["alpha"], artistId=ann)
    await sub.ok("unstar", id=str(uuid.uuid4()))  # unknown ids unstar quietly
    starred = (await sub.ok("getStarred2"))["starred2"]
    assert (starred["song"], starred["artist"]) == ([], [])
    assert "starred" not in (await sub.ok("getSong", id=library["alpha"]))["song"]

    await sub.ok("setRating", id=library["beta"], rating=5)
    await sub.ok("setRating", id=album, rating=2)
    assert (await sub.ok("getSong", id=library["beta"]))["song"]["userRating"] == 5
    assert (await sub.ok("getAlbum", id=album))["album"]["userRating"] == 2
    await sub.ok("setRating", id=library["beta"], rating=0)
    assert "userRating" not in (await sub.ok("getSong", id=library["beta"]))["song"]
    assert await sub.error("setRating", id=library["beta"], rating=6) == 0
    assert await sub.error("setRating", id=library["beta"]) == 10
    assert await sub.error("setRating", id="ar-nothing", rating=1) == 70


async def test_playlists_are_created_edited_and_deleted(sub, library, api):
    a, b, c, d = (library[n] for n in ("alpha", "beta", "gamma", "delta"))
    made = (await sub.ok("createPlaylist", name="Morning", songId=[a, b, c]))["playlist"]
    assert [e["id"] for e in made["entry"]] == [a, b, c]
    assert (made["name"], made["songCount"], made["owner"], made["public"]) == (
        "Morning", 3, "mosic", False,
    )  # fmt: skip
    pid = made["id"]
    await sub.ok("updatePlaylist", playlistId=pid, name="Dawn", comment="early", public="true")
    await sub.ok("updatePlaylist", playlistId=pid, songIndexToRemove=["0", "2"], songIdToAdd=d)
    got = (await sub.ok("getPlaylist", id=pid))["playlist"]
    assert (got["name"], got["comment"], got["public"]) == ("Dawn", "early", True)
    assert [e["id"] for e in got["entry"]] == [b, d]
    listed = (await sub.ok("getPlaylists"))["playlists"]["playlist"]
    assert [(p["id"], p["songCount"]) for p in listed] == [(pid, 2)]
    replaced = await sub.ok("createPlaylist", playlistId=pid, songId=[c, c])
    assert [e["id"] for e in replaced["playlist"]["entry"]] == [c, c]

    assert await sub.error("updatePlaylist", playlistId=pid, songIndexToRemove="9") == 0
    assert await sub.error("updatePlaylist", playlistId=pid, songIdToAdd="nope") == 70
    assert await sub.error("createPlaylist", songId=a) == 10
    assert await sub.error("createPlaylist", name="x", songId=library["external"]) == 70
    assert await sub.error("updatePlaylist", playlistId=str(uuid.uuid4()), name="x") == 70

    # A deleted clip leaves the playlist.
    assert (await api.delete(f"/play/{c}")).status_code == 204
    assert (await sub.ok("getPlaylist", id=pid))["playlist"]["entry"] == []
    await sub.ok("deletePlaylist", id=pid)
    assert await sub.error("getPlaylist", id=pid) == 70
    assert (await sub.ok("getPlaylists"))["playlists"]["playlist"] == []


async def test_the_play_queue_is_saved_and_restored(sub, library):
    empty = (await sub.ok("getPlayQueue"))["playQueue"]
    assert empty["username"] == "mosic" and empty["changed"].startswith("1970")
    assert empty["entry"] == []
    a, b = library["alpha"], library["beta"]
    await sub.ok("savePlayQueue", id=[b, a], current=a, position=12345, c="Symfonium")
    queue = (await sub.ok("getPlayQueue"))["playQueue"]
    assert [e["id"] for e in queue["entry"]] == [b, a]
    assert (queue["current"], queue["position"], queue["changedBy"]) == (a, 12345, "Symfonium")
    root = await sub.xml("getPlayQueue")
    assert root[0].get("current") == a
    assert await sub.error("savePlayQueue", id=[b], current=a) == 0
    assert await sub.error("savePlayQueue", id=[str(uuid.uuid4())]) == 70
    await sub.ok("savePlayQueue", post=True)  # no ids: the queue is cleared
    assert (await sub.ok("getPlayQueue"))["playQueue"]["changed"].startswith("1970")


# -- operations ------------------------------------------------------------------------------


async def test_metrics_label_each_method_and_logs_hold_no_credential(sub, library, caplog):
    caplog.set_level(logging.INFO)
    salted = token_auth(API_KEY)
    await sub.ok("ping", auth=salted)
    await sub.ok("ping.view", auth=password_auth(API_KEY, encoded=True))
    await sub.call("stream", id=library["alpha"])
    await sub.call("getNothing", f="json")
    text = (await sub.api.get("/metrics", key=None)).text
    assert 'route="/rest/ping"' in text and 'route="/rest/stream"' in text
    assert 'route="/rest/{method}"' in text  # an unknown method: never its raw name
    assert "getNothing" not in text and "ping.view" not in text
    logged = "\n".join(
        record.getMessage() + json.dumps(getattr(record, "route", "")) for record in caplog.records
    )
    assert "/rest/ping" in logged
    for secret in (API_KEY, salted["t"], salted["s"], API_KEY.encode().hex()):
        assert secret not in logged and secret not in text


async def test_apps_saving_at_once_never_collide(sub, library):
    songs = [library[n] for n in ("alpha", "beta", "gamma", "delta")]
    saves = [
        sub.call("savePlayQueue", f="json", id=songs[n % 4 :] + songs[: n % 4], position=n)
        for n in range(12)
    ]
    rates = [sub.call("setRating", f="json", id=songs[0], rating=1 + n % 5) for n in range(12)]
    results = await asyncio.gather(*saves, *rates)
    assert [r.json["subsonic-response"]["status"] for r in results] == ["ok"] * 24
    queue = (await sub.ok("getPlayQueue"))["playQueue"]
    # One save's queue, whole: never two interleaved.
    n = queue["position"]
    assert [e["id"] for e in queue["entry"]] == songs[n % 4 :] + songs[: n % 4]
    assert (await sub.ok("getSong", id=songs[0]))["song"]["userRating"] in range(1, 6)


async def test_text_no_database_can_store_is_refused_not_a_500(sub, library):
    nul = "a\x00b"
    for method, params in [
        ("search3", {"query": nul}),
        ("unstar", {"id": nul}),
        ("createPlaylist", {"name": nul}),
        ("savePlayQueue", {"id": library["alpha"], "c": nul}),
        ("ping", {"x": nul}),
    ]:
        assert await sub.error(method, **params) == 0, method
    pid = (await sub.ok("createPlaylist", name="Notes"))["playlist"]["id"]
    assert await sub.error("updatePlaylist", playlistId=pid, comment="x" * 5001) == 0
    assert await sub.error("search3", query="x" * 1001) == 0
    assert await sub.error("search3", songCount=10_001) == 0
    many = await sub.ok("search3", query="", songCount=10_000)
    assert len(many["searchResult3"]["song"]) == 4


async def test_a_title_with_control_characters_still_makes_valid_xml(sub, library, api):
    patched = await api.patch(f"/play/{library['alpha']}", json={"title": "Bell\x07 & <Co>"})
    assert patched.status_code == 200
    song = (await sub.xml("getSong", id=library["alpha"]))[0]
    assert song.get("title") == "Bell & <Co>"
    assert (await sub.ok("getSong", id=library["alpha"]))["song"]["title"] == "Bell\x07 & <Co>"
