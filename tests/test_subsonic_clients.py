"""Subsonic clients nobody here wrote, against a real ``mosic serve`` on SQLite and on
PostgreSQL, over real HTTP:

- py-opensonic (PyPI): JSON, POST form by default, ``.view`` names, dataclasses that refuse
  an answer missing a required field; with an API key, with token auth, and with ``enc:``
  passwords over GET;
- subsonic-api (npm), run by node: GET, token auth and API key;
- raw XML over httpx, every answer validated against the Subsonic schema.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from libopensonic import AsyncConnection, errors

from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip
from tests.support.measure import metric
from tests.support.server import mosic_serve
from tests.support.subsonic import token_auth, validate_xml

NODE = shutil.which("node")
JS_CLIENT = Path(__file__).parent / "support" / "subsonic_js"
NPM_TIMEOUT_S = 300
assert NODE, "install Debian's nodejs and npm packages"
if not (JS_CLIENT / "node_modules" / "subsonic-api").is_dir():
    # The client's exact version is pinned in its package-lock.json; install it once.
    subprocess.run(
        ["npm", "ci", "--prefix", str(JS_CLIENT), "--no-audit", "--no-fund", "--loglevel=error"],
        check=True,
        timeout=NPM_TIMEOUT_S,
    )
NODE_TIMEOUT_S = 60
TRACKS = [  # (file name, format, title, artist, album)
    ("one.mp3", "mp3", "Morning", "Ann", "First"),
    ("two.ogg", "ogg", "Noon", "Ann", "First"),
    ("three.flac", "flac", "Evening", "Bob", "Later"),
    ("four.mp3", "mp3", "Night", None, None),
]
TYPES = {"mp3": "audio/mpeg", "ogg": "audio/ogg", "flac": "audio/flac"}


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def server(request, tmp_path_factory):
    """One server per backend for this module, with four songs and a metadata-only clip."""
    root = tmp_path_factory.mktemp(f"subsonic-{request.param}")
    settings = {}
    with new_postgres_db(request) as pg:
        if pg is not None:
            settings = {
                "MOSIC_DB_HOST": pg.host,
                "MOSIC_DB_PORT": str(pg.port),
                "MOSIC_DB_USER": pg.user,
                "MOSIC_DB_NAME": pg.name,
            }
        with mosic_serve(root / "data", **settings) as running:
            running.songs = {}
            running.files = {}
            for n, (name, fmt, title, artist, album) in enumerate(TRACKS):
                tags = {"title": title, "artist": artist, "album": album}
                tags = {k: v for k, v in tags.items() if v}
                path = make_clip(root / name, fmt, seconds=1.0, freq=200 + 50 * n, **tags)
                clip = running.upload(path, TYPES[fmt])
                running.songs[title] = clip["id"]
                running.files[clip["id"]] = path.read_bytes()
            external = httpx.post(
                running.base + "/play",
                headers=running.headers,
                json={"title": "Far", "duration": 3, "audio_url": "https://example.com/a.mp3"},
            )
            assert external.status_code == 201
            yield running


def connection(server, **auth) -> AsyncConnection:
    url = urlsplit(server.base)
    return AsyncConnection(f"{url.scheme}://{url.hostname}", port=url.port, **auth)


@pytest.fixture
async def by_key(server):
    conn = connection(server, api_key=server.api_key)
    yield conn
    await conn.cleanup()


@pytest.fixture
async def by_token(server):
    conn = connection(server, username="mosic", password=server.api_key)
    yield conn
    await conn.cleanup()


def play_count(server, clip_id: str) -> int:
    return server.get(f"/play/{clip_id}/stats").json()["play_count"]


def plays_total(server) -> float:
    return metric(server.metrics(), "mosic_plays_total")


# -- py-opensonic ----------------------------------------------------------------------------


async def test_py_opensonic_logs_in_every_way_and_browses(server, by_key, by_token):
    legacy = connection(
        server,
        username="mosic",
        password=server.api_key,
        legacy_auth=True,
        use_get=True,
        use_views=False,
    )
    try:
        for conn in (by_key, by_token, legacy):
            assert await conn.ping() is True
            artists = await conn.get_artists()
            names = [a.name for index in artists.index for a in index.artist]
            assert names == ["Ann", "Bob", "Unknown Artist"]
    finally:
        await legacy.cleanup()
    assert (await by_key.token_info()).username == "mosic"
    with pytest.raises(errors.SonicError):
        await by_token.token_info()  # needs an API key: error 42
    wrong = connection(server, api_key="not-the-key")
    try:
        with pytest.raises(errors.SonicError):
            await wrong.ping()  # error 44
        extensions = await wrong.get_open_subsonic_extensions()  # needs no key
        assert {e.name for e in extensions} >= {"apiKeyAuthentication", "formPost"}
    finally:
        await wrong.cleanup()
    bad_password = connection(server, username="mosic", password="guess")
    try:
        with pytest.raises(errors.CredentialError):
            await bad_password.ping()
    finally:
        await bad_password.cleanup()

    license_info = await by_token.get_license()
    assert license_info["license"]["valid"] is True
    # (get_music_folders is left to the node client: py-opensonic 10.4 reads
    # "musicFolders" as a list, where Subsonic, Navidrome and Mosic have an object holding
    # the "musicFolder" list.)
    indexes = await by_token.get_indexes()
    ann = next(a for i in indexes.index for a in i.artist if a.name == "Ann")
    directory = await by_token.get_music_directory(ann.id)
    assert [c.title for c in directory.child] == ["First"]
    album = await by_token.get_album(directory.child[0].id)
    assert [s.title for s in album.song] == ["Morning", "Noon"]
    assert (album.song_count, album.artist) == (2, "Ann")
    artist = await by_key.get_artist(album.artist_id)
    assert [a.name for a in artist.album] == ["First"]
    song = await by_key.get_song(server.songs["Morning"])
    assert (song.title, song.album, song.artist, song.suffix) == ("Morning", "First", "Ann", "mp3")
    with pytest.raises(errors.DataNotFoundError):
        await by_key.get_song("00000000-0000-4000-8000-000000000000")


async def test_py_opensonic_syncs_with_an_empty_search3_and_lists_albums(server, by_token):
    seen = []
    for offset in range(0, 10, 2):
        page = await by_token.search3('""', song_count=2, song_offset=offset)
        seen += [s.id for s in page.song or []]
    assert sorted(seen) == sorted(server.songs.values())  # every song once, none twice
    found = await by_token.search2("evening", song_count=5)
    assert [s.title for s in found.song] == ["Evening"]

    newest = await by_token.get_album_list2("newest", size=10)
    assert [a.name for a in newest] == ["Unknown Album", "Later", "First"]
    by_name = await by_token.get_album_list("alphabeticalByName", size=2, offset=1)
    assert [a.name for a in by_name] == ["Later", "Unknown Album"]
    by_artist = await by_token.get_album_list2("alphabeticalByArtist")
    assert [a.artist for a in by_artist] == ["Ann", "Bob", "Unknown Artist"]
    assert len(await by_token.get_album_list2("random")) == 3
    assert len(await by_token.get_random_songs(size=3)) == 3
    assert await by_token.get_genres() == []
    assert await by_token.get_songs_by_genre("Jazz") == []


async def test_py_opensonic_streams_downloads_and_scrobbles_by_the_rule(server, by_key):
    noon = server.songs["Noon"]
    data = server.files[noon]
    before_total, before = plays_total(server), play_count(server, noon)
    stream = await by_key.stream(noon)
    assert await stream.read() == data
    part = await by_key.stream(noon, byte_range="bytes=100-199")
    assert (part.status, await part.read()) == (206, data[100:200])
    download = await by_key.download(noon)
    assert await download.read() == data
    assert play_count(server, noon) == before  # stream and download count nothing
    assert plays_total(server) == before_total

    await by_key.scrobble(noon, submission=False)
    assert play_count(server, noon) == before
    await by_key.scrobble(noon)
    assert play_count(server, noon) == before + 1  # exactly one
    assert plays_total(server) == before_total + 1
    with pytest.raises(errors.DataNotFoundError):
        await by_key.get_cover_art(noon)  # no covers yet


async def test_py_opensonic_keeps_stars_ratings_playlists_and_the_queue(server, by_key):
    morning, night = server.songs["Morning"], server.songs["Night"]
    album = (await by_key.get_song(morning)).album_id
    await by_key.star(sids=[morning], album_ids=[album])
    starred = await by_key.get_starred2()
    assert [s.id for s in starred.song] == [morning]
    assert [a.id for a in starred.album] == [album]
    assert [s.id for s in (await by_key.get_starred()).song] == [morning]
    await by_key.unstar(sids=[morning], album_ids=[album])
    assert not (await by_key.get_starred2()).song
    await by_key.set_rating(night, 4)
    assert (await by_key.get_song(night)).user_rating == 4

    assert await by_key.create_playlist(name="Drive", song_ids=[morning, night]) is True
    made = next(p for p in await by_key.get_playlists() if p.name == "Drive")
    assert [e.id for e in (await by_key.get_playlist(made.id)).entry] == [morning, night]
    await by_key.update_playlist(made.id, name="Long drive", song_indices_to_remove=[0])
    listed = {p.id: p for p in await by_key.get_playlists()}
    assert (listed[made.id].name, listed[made.id].song_count) == ("Long drive", 1)
    assert [e.id for e in (await by_key.get_playlist(made.id)).entry] == [night]
    await by_key.create_playlist(playlist_id=made.id, song_ids=[morning])
    assert [e.id for e in (await by_key.get_playlist(made.id)).entry] == [morning]
    await by_key.delete_playlist(made.id)
    assert made.id not in {p.id for p in await by_key.get_playlists()}

    await by_key.save_play_queue([night, morning], current=morning, position=4200)
    queue = await by_key.get_play_queue()
    assert [e.id for e in queue.entry] == [night, morning]
    assert (queue.current, queue.position, queue.changed_by) == (morning, 4200, "py-opensonic")


# -- subsonic-api (node) ---------------------------------------------------------------------


def run_node(server, auth: str) -> dict:
    result = subprocess.run(
        [NODE, str(JS_CLIENT / "drive.mjs")],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT_S,
        env={
            "MOSIC_URL": server.base,
            "MOSIC_KEY": server.api_key,
            "MOSIC_AUTH": auth,
            "MOSIC_SONG": server.songs["Evening"],
            "PATH": "/usr/bin:/bin",
        },
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("auth", ["token", "apiKey"])
def test_subsonic_api_for_node_browses_syncs_streams_and_scrobbles(server, auth):
    evening = server.songs["Evening"]
    before = play_count(server, evening)
    seen = run_node(server, auth)
    assert seen["ping"] == "ok"
    assert seen["folders"] == [1]
    assert seen["artists"] == ["Ann", "Bob", "Unknown Artist"]
    assert sorted(seen["synced"]) == sorted(server.songs.values())
    assert seen["album"] == {"name": "Later", "songs": ["Evening"]}
    assert seen["streamed"] == len(server.files[evening])
    assert seen["ranged"] == {"status": 206, "bytes": 10}
    assert seen["wrong"] == {"status": "failed", "code": 44 if auth == "apiKey" else 40}
    assert play_count(server, evening) == before + 1  # one scrobble; the streams count nothing


# -- raw XML ---------------------------------------------------------------------------------


def xml_call(server, method: str, **params):
    query = {**token_auth(server.api_key), "v": "1.16.1", "c": "test", **params}
    response = httpx.get(f"{server.base}/rest/{method}.view", params=query, timeout=10)
    assert response.status_code == 200
    return validate_xml(response.content)


def test_raw_xml_answers_are_valid_subsonic(server):
    ns = "{http://subsonic.org/restapi}"
    morning = server.songs["Morning"]
    album = xml_call(server, "getSong", id=morning)[0].get("albumId")
    artist = xml_call(server, "getSong", id=morning)[0].get("artistId")
    for method, params in [
        ("ping", {}),
        ("getLicense", {}),
        ("getMusicFolders", {}),
        ("getIndexes", {}),
        ("getArtists", {}),
        ("getArtist", {"id": artist}),
        ("getAlbum", {"id": album}),
        ("getMusicDirectory", {"id": album}),
        ("getAlbumList", {"type": "frequent"}),
        ("getAlbumList2", {"type": "alphabeticalByName"}),
        ("getRandomSongs", {"size": 2}),
        ("getGenres", {}),
        ("search2", {"query": ""}),
        ("search3", {"query": '""', "songCount": 500}),
        ("getStarred", {}),
        ("getStarred2", {}),
        ("getPlaylists", {}),
        ("getPlayQueue", {}),
        ("getSongsByGenre", {"genre": "Rock"}),
        ("getCoverArt", {"id": morning}),
    ]:
        root = xml_call(server, method, **params)
        assert root.tag == f"{ns}subsonic-response"
        assert root.get("version") == "1.16.1" and root.get("type") == "mosic"
        expected = "failed" if method == "getCoverArt" else "ok"
        assert root.get("status") == expected, (method, root[0].attrib if len(root) else None)
    songs = xml_call(server, "search3", query='""', songCount=500)[0].findall(f"{ns}song")
    assert sorted(s.get("id") for s in songs) == sorted(server.songs.values())
    error = xml_call(server, "getAlbum", id="al-nothing")[0]
    assert (error.tag, error.get("code")) == (f"{ns}error", "70")


def test_the_server_log_names_methods_and_holds_no_credential(server):
    """Last in this module: every client above has logged in by now, every way."""
    salted = token_auth(server.api_key)
    assert httpx.get(f"{server.base}/rest/ping.view", params=salted).status_code == 200
    output = server.output()
    assert "/rest/ping" in output and "/rest/search3" in output
    hexed = server.api_key.encode().hex()
    for secret in (server.api_key, hexed, hexed.upper(), salted["t"], salted["s"]):
        assert secret not in output
    metrics = server.metrics()
    assert 'route="/rest/stream"' in metrics and 'route="/rest/scrobble"' in metrics
    assert server.api_key not in metrics
