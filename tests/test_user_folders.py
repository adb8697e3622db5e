"""A listener sees what its music folders hold, and nothing else, against a real ``mosic
serve`` on SQLite and PostgreSQL: two library folders (Rock, Jazz) and an upload; a listener
who sees Rock alone finds Jazz and the upload nowhere (REST lists, search, clips, stats,
streams, covers and waveforms are 404; Subsonic lists, search and browsing leave them out,
and every method naming one answers 70 "not found"); signed links open a clip as the user
they were made for, and stop when that user's folders change or the user goes; a listener
who would not see the uploads folder may not upload; the admin sees everything throughout."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mosic.core.signing import Signer
from tests.support.audio import make_clip
from tests.support.server import wait_for
from tests.support.tagging import image, tag_fully
from tests.test_folders import pg, scanned, serve  # noqa: F401 - pg is a fixture
from tests.test_users import REQUESTS_PER_WORKER, add_user, call

NOT_FOUND = 70
# Each clip's title holds "Song", so one search finds all three when all are seen.
TRACKS = {
    "Rock": ("Rock Band", "Loud", "Loud Song", "Rock", "red"),
    "Jazz": ("Jazz Trio", "Smooth", "Smooth Song", "Jazz", "blue"),
}
WAVEFORM_WAIT_S = 60


@pytest.fixture
def folders(tmp_path) -> list[Path]:
    made = []
    for number, (name, (artist, album, title, genre, color)) in enumerate(TRACKS.items()):
        path = tmp_path / "library" / name / artist / album / "01.mp3"
        make_clip(path, "mp3", freq=300 + 90 * number, title=title, artist=artist, album=album)
        tag_fully(path, "mp3", genre=genre, picture=image(tmp_path / f"{name}-cover", color))
        made.append(path.parents[2])
    return made


@pytest.fixture
def server(tmp_path, folders, pg):  # noqa: F811 - the fixture imported above
    music = ":".join(str(folder) for folder in folders)
    with serve(tmp_path, music, pg, "--workers", "2") as running:
        scanned(running)
        upload = make_clip(tmp_path / "upload.mp3", "mp3", freq=700, title="Upload Song",
                           artist="Uploader", album="Sent")  # fmt: skip
        tag_fully(upload, "mp3", genre="Jazz", picture=image(tmp_path / "sent", "green"))
        running.upload(upload, "audio/mpeg")
        wait_for_peaks(running)
        yield running


def wait_for_peaks(server) -> None:
    """Library peaks are made in the background: wait for them, so a waveform's 404 to a
    listener can only mean that the clip is hidden from it."""
    for clip in call(server, "GET", "/play", server.api_key).json():
        path = f"/play/{clip['id']}/waveform"
        wait_for(f"the peaks of {clip['title']}",
                 lambda path=path: call(server, "GET", path, server.api_key).status_code == 200,
                 WAVEFORM_WAIT_S, server.log)  # fmt: skip


class Seen:
    """The clips, albums, artists and folders of the library, as the admin finds them."""

    def __init__(self, server) -> None:
        listed = call(server, "GET", "/play", server.api_key).json()
        self.clips = {clip["music_folder"]: clip for clip in listed}
        self.folders = {
            f["name"]: f["id"] for f in sonic(server, server.api_key, "getMusicFolders")
            ["musicFolders"]["musicFolder"]
        }  # fmt: skip
        songs = {folder: sonic(server, server.api_key, "getSong", id=clip["id"])["song"]
                 for folder, clip in self.clips.items()}  # fmt: skip
        self.albums = {folder: song["albumId"] for folder, song in songs.items()}
        self.artists = {folder: song["artistId"] for folder, song in songs.items()}


def sonic(server, key: str, method: str, **params) -> dict:
    answer = httpx.get(f"{server.base}/rest/{method}", timeout=10,
                       params={"apiKey": key, "f": "json", **params})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()["subsonic-response"]


def ok(server, key: str, method: str, **params) -> dict:
    body = sonic(server, key, method, **params)
    assert body["status"] == "ok", (method, params, body)
    return body


def not_found(server, key: str, method: str, **params) -> None:
    body = sonic(server, key, method, **params)
    assert body.get("error", {}).get("code") == NOT_FOUND, (method, params, body)


def names(entries: list[dict], field: str = "name") -> set[str]:
    return {entry[field] for entry in entries}


def indexed(body: dict) -> set[str]:
    return {artist["name"] for group in body.get("index", []) for artist in group["artist"]}


def open_link(server, url: str) -> int:
    return httpx.get(server.base + url, timeout=10).status_code


# -- REST --------------------------------------------------------------------------------------


def test_a_listener_reads_only_its_folders_over_rest(server):
    seen = Seen(server)
    assert set(seen.clips) == {"Rock", "Jazz", "Uploads"}
    _, rocky = add_user(server, "Rocky", music_folders=["Rock"])
    rock, hidden = seen.clips["Rock"], [seen.clips["Jazz"], seen.clips["Uploads"]]
    listed = call(server, "GET", "/play", rocky, params={"q": "Song"})
    assert [c["id"] for c in listed.json()] == [rock["id"]]
    assert listed.headers["X-Total-Count"] == "1"
    assert call(server, "GET", "/play", rocky).headers["X-Total-Count"] == "1"
    for asked in ({"music_folder": "Jazz"}, {"source": "upload"}, {"music_folder": "Nowhere"}):
        page = call(server, "GET", "/play", rocky, params=asked)
        assert (page.json(), page.headers["X-Total-Count"]) == ([], "0"), asked
    for clip in hidden:
        for path in routes(clip["id"]):
            assert call(server, "GET", path, server.api_key).status_code == 200, path
            assert call(server, "GET", path, rocky).status_code == 404, path
        assert call(server, "HEAD", f"/play/{clip['id']}/stream", rocky).status_code == 404
    for method, body in (("PATCH", {"title": "Mine now"}), ("DELETE", None)):
        path = f"/play/{seen.clips['Uploads']['id']}"
        assert call(server, method, path, rocky, json=body).status_code == 404
    for path in routes(rock["id"]):
        assert call(server, "GET", path, rocky).status_code == 200, path
    admin = call(server, "GET", "/play", server.api_key, params={"q": "Song"})
    assert admin.headers["X-Total-Count"] == "3"


def routes(clip_id: str) -> list[str]:
    """Every read of one clip (its waveform once its peaks are made)."""
    return [f"/play/{clip_id}", f"/play/{clip_id}/stats", f"/play/{clip_id}/stream",
            f"/play/{clip_id}/stream?format=mp3&bitrate=32", f"/play/{clip_id}/cover",
            f"/play/{clip_id}/waveform"]  # fmt: skip


def test_a_listener_who_would_not_see_its_uploads_may_not_upload(server, tmp_path):
    _, rocky = add_user(server, "Rocky", music_folders=["Rock"])
    remote = {"title": "t", "duration": 1, "audio_url": "https://example.com/a.mp3"}
    file = {"file": ("a.mp3", make_clip(tmp_path / "a.mp3", "mp3", freq=650).read_bytes())}
    for path, sent in (("/play", {"json": remote}), ("/play/upload", {"files": file}),
                       ("/play", {"files": file})):  # fmt: skip
        refused = call(server, "POST", path, rocky, **sent)
        assert refused.status_code == 403, (path, refused.text)
        assert "'Uploads'" in refused.json()["description"]
    changed = call(server, "PATCH", "/users/Rocky", server.api_key,
                   json={"music_folders": ["Rock", "Uploads"]})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert call(server, "POST", "/play", rocky, json=remote).status_code == 201
    # An admin may always upload, whatever folders it chose to see.
    _, boss = add_user(server, "Boss", role="admin", music_folders=["Jazz"])
    assert call(server, "POST", "/play/upload", boss, files=file).status_code == 201


# -- Subsonic ----------------------------------------------------------------------------------


def test_a_listener_browses_lists_and_searches_only_its_folders_over_subsonic(server):
    seen = Seen(server)
    _, rocky = add_user(server, "Rocky", music_folders=["Rock"])
    admin = server.api_key
    # The admin asks first, of both workers: what they keep of the artist lists (per library
    # version) must not be shown to Rocky.
    for method in ("getIndexes", "getArtists"):
        for key, shown in ((admin, {"Rock Band", "Jazz Trio", "Uploader"}), (rocky, {"Rock Band"})):
            for _ in range(REQUESTS_PER_WORKER):
                body = ok(server, key, method)
                assert indexed(body.get("indexes") or body["artists"]) == shown, method
    folders = ok(server, rocky, "getMusicFolders")["musicFolders"]["musicFolder"]
    assert folders == [{"id": seen.folders["Rock"], "name": "Rock"}]
    tree = ok(server, rocky, "getIndexes", musicFolderId=seen.folders["Rock"])["indexes"]
    assert indexed(tree) == {"Rock Band"}
    assert_lists_hold_rock_alone(server, rocky, seen)
    assert_searches_find_rock_alone(server, rocky)
    for folder in ("Jazz", "Uploads"):
        for method, params in folder_filtered(seen.folders[folder]):
            ok(server, admin, method, **params)
            not_found(server, rocky, method, **params)


def folder_filtered(folder_id: int) -> list[tuple[str, dict]]:
    """Every method ``musicFolderId`` narrows."""
    given = {"musicFolderId": folder_id}
    return [("getIndexes", given), ("getArtists", given), ("getRandomSongs", given),
            ("getAlbumList", {**given, "type": "newest"}),
            ("getAlbumList2", {**given, "type": "alphabeticalByName"}),
            ("getSongsByGenre", {**given, "genre": "Jazz"}), ("search2", {**given, "query": ""}),
            ("search3", {**given, "query": ""}), ("getStarred", given),
            ("getStarred2", given)]  # fmt: skip


def assert_lists_hold_rock_alone(server, key: str, seen: Seen) -> None:
    for kind in ("newest", "alphabeticalByName", "random", "frequent", "recent"):
        albums = ok(server, key, "getAlbumList2", type=kind)["albumList2"].get("album", [])
        assert names(albums) <= {"Loud"}, kind
    for method in ("getAlbumList", "getAlbumList2"):
        body = ok(server, key, method, type="alphabeticalByArtist")
        listed = body["albumList2" if method.endswith("2") else "albumList"]["album"]
        assert names(listed, "id") == {seen.albums["Rock"]}
    songs = ok(server, key, "getRandomSongs", size=50)["randomSongs"]["song"]
    assert names(songs, "title") == {"Loud Song"}
    jazz = ok(server, key, "getSongsByGenre", genre="Jazz")["songsByGenre"]
    assert jazz.get("song") in (None, [])
    rock = ok(server, key, "getSongsByGenre", genre="Rock")["songsByGenre"]["song"]
    assert names(rock, "title") == {"Loud Song"}
    by_genre = ok(server, key, "getAlbumList2", type="byGenre", genre="Jazz")["albumList2"]
    assert by_genre.get("album") in (None, [])


def assert_searches_find_rock_alone(server, key: str) -> None:
    for method, result in (("search2", "searchResult2"), ("search3", "searchResult3")):
        for query in ("Song", '""', "Jazz Trio Smooth"):
            found = ok(server, key, method, query=query)[result]
            assert names(found.get("song", []), "title") <= {"Loud Song"}, (method, query)
            assert names(found.get("album", [])) <= {"Loud"}, (method, query)
            assert names(found.get("artist", [])) <= {"Rock Band"}, (method, query)
        everything = ok(server, key, method, query="")[result]
        assert names(everything["song"], "title") == {"Loud Song"}


def test_every_subsonic_method_naming_another_folders_item_answers_not_found(server):
    seen = Seen(server)
    _, rocky = add_user(server, "Rocky", music_folders=["Rock"])
    admin = server.api_key
    jazz_tree = ok(server, admin, "getIndexes", musicFolderId=seen.folders["Jazz"])["indexes"]
    directory = jazz_tree["index"][0]["artist"][0]["id"]
    for folder in ("Jazz", "Uploads"):
        song, album = seen.clips[folder]["id"], seen.albums[folder]
        artist = seen.artists[folder]
        for method, params in naming(song, album, artist):
            not_found(server, rocky, method, **params)
        for method, params in reads(song, album, artist):
            ok(server, admin, method, **params)
    not_found(server, rocky, "getMusicDirectory", id=directory)
    ok(server, admin, "getMusicDirectory", id=directory)
    covered = [seen.clips[folder]["id"] for folder in ("Jazz", "Uploads")]
    for item in [*covered, seen.albums["Jazz"], seen.albums["Uploads"]]:
        not_found(server, rocky, "getCoverArt", id=item)
        cover = httpx.get(f"{server.base}/rest/getCoverArt", params={"apiKey": admin, "id": item})
        assert cover.headers["content-type"] == "image/jpeg", cover.text
    stats = call(server, "GET", f"/play/{seen.clips['Jazz']['id']}/stats", admin).json()
    assert stats["play_count"] == 0  # Rocky's scrobble counted nothing
    ok(server, rocky, "getSong", id=seen.clips["Rock"]["id"])
    ok(server, rocky, "getAlbum", id=seen.albums["Rock"])
    ok(server, rocky, "getArtist", id=seen.artists["Rock"])


def reads(song: str, album: str, artist: str) -> list[tuple[str, dict]]:
    """Every Subsonic read of one song, album or artist."""
    return [("getSong", {"id": song}), ("getAlbum", {"id": album}), ("getArtist", {"id": artist}),
            ("getMusicDirectory", {"id": album}),
            ("getMusicDirectory", {"id": artist})]  # fmt: skip


def naming(song: str, album: str, artist: str) -> list[tuple[str, dict]]:
    """``reads`` and every other method that names a song, album or artist."""
    return reads(song, album, artist) + [
        ("stream", {"id": song}), ("stream", {"id": song, "format": "mp3"}),
        ("download", {"id": song}), ("scrobble", {"id": song}),
        ("star", {"id": song}), ("star", {"albumId": album}), ("star", {"artistId": artist}),
        ("setRating", {"id": song, "rating": 3}),
        ("createPlaylist", {"name": "Borrowed", "songId": song}),
        ("savePlayQueue", {"id": song}),
    ]  # fmt: skip


# -- signed links ------------------------------------------------------------------------------


def test_signed_links_open_as_their_user_until_its_folders_change(server):
    seen = Seen(server)
    _, rocky = add_user(server, "Rocky", music_folders=["Rock"])
    rock_id, jazz_id = seen.clips["Rock"]["id"], seen.clips["Jazz"]["id"]
    mine = call(server, "GET", f"/play/{rock_id}", rocky).json()
    links = (mine["stream_url"], mine["cover_url"])
    assert all("&u=" in link for link in links)
    assert [open_link(server, link) for link in links] == [200, 200]
    # A link is its user's: another clip's, or without its user, it is no link at all.
    assert open_link(server, mine["stream_url"].replace(rock_id, jazz_id)) == 403
    stripped = "&".join(p for p in mine["stream_url"].split("&") if not p.startswith("u="))
    assert open_link(server, stripped) == 403
    # The admin's links open what the admin sees; a link made before links named a user too.
    admins = call(server, "GET", f"/play/{jazz_id}", server.api_key).json()["stream_url"]
    assert "&u=1&" in admins and open_link(server, admins) == 200
    assert open_link(server, f"/play/{jazz_id}/stream?{old_link(server, jazz_id)}") == 200
    ok(server, rocky, "star", id=rock_id)
    starred = ok(server, rocky, "getStarred2")["starred2"]
    assert names(starred["song"], "id") == {rock_id}
    changed = call(server, "PATCH", "/users/Rocky", server.api_key,
                   json={"music_folders": ["Jazz"]})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert [open_link(server, link) for link in links] == [404, 404]
    assert ok(server, rocky, "getStarred2")["starred2"].get("song") in (None, [])
    jazz = call(server, "GET", f"/play/{jazz_id}", rocky).json()["stream_url"]
    assert open_link(server, jazz) == 200
    assert call(server, "DELETE", "/users/Rocky", server.api_key).status_code == 204
    assert open_link(server, jazz) == 403  # its user is gone


def old_link(server, clip_id: str) -> str:
    """A stream link as Mosic made them before links named their user."""
    secret = (server.data_dir / "signing_secret").read_text().strip()
    return Signer(secret, 600).query(clip_id)
