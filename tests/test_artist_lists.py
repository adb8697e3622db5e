"""The artist lists (``getArtists``, ``getIndexes``) are kept encoded per library version:
against two real ``mosic serve`` processes sharing one database (SQLite file or PostgreSQL),
each change (an upload with a new artist, the delete of an artist's last song, a scan that
adds a file, a star) shows in the very next list of both servers, in JSON, XML and JSONP;
and an unchanged list is the same bytes. Then ``Kept`` itself: built once per version and
variant, bounded, and an older version never served."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET

import pytest

from mosic.api.subsonic.kept import Kept
from mosic.api.subsonic.response import (
    JSON_TYPE,
    JSONP_TYPE,
    XML_TYPE,
    Encoded,
    encode,
    ok,
    render_encoded,
)
from tests.conftest import LOCAL_BACKENDS
from tests.support.audio import make_clip
from tests.support.server import mosic_serve
from tests.test_folders import db_env, query, rescan, scanned

NS = "{http://subsonic.org/restapi}"


@pytest.fixture(params=LOCAL_BACKENDS)
def pg(request):
    if request.param != "postgresql":
        yield None
        return
    yield request.getfixturevalue("fresh_postgres_db")


def rest(server, method: str, fmt: str = "json", **params):
    query = {"apiKey": server.api_key, "f": fmt, **params}
    response = server.get(f"/rest/{method}", params=query)
    assert response.status_code == 200, response.text
    return response


def artists_of(server, method: str = "getArtists", fmt: str = "json") -> dict[str, dict]:
    """The artists a list names (name -> its attributes), read in format ``fmt``."""
    response = rest(server, method, fmt, callback="cb")
    if fmt == "xml":
        assert response.headers["content-type"] == XML_TYPE
        root = ET.fromstring(response.content)  # noqa: S314 (our own server's answer)
        assert root.get("status") == "ok"
        return {a.get("name"): dict(a.attrib) for a in root.iter(f"{NS}artist")}
    text = response.text
    if fmt == "jsonp":
        assert response.headers["content-type"] == JSONP_TYPE
        assert text.startswith("cb(") and text.endswith(");")
        text = text[3:-2]
    else:
        assert response.headers["content-type"] == JSON_TYPE
    body = json.loads(text)["subsonic-response"]
    assert body["status"] == "ok", body
    key = "artists" if method == "getArtists" else "indexes"
    groups = body[key].get("index", [])
    return {a["name"]: a for group in groups for a in group["artist"]}


def every_list(server) -> list[set[str]]:
    """The artist names of every variant kept: both methods, three formats."""
    return [
        set(artists_of(server, method, fmt))
        for method in ("getArtists", "getIndexes")
        for fmt in ("json", "xml", "jsonp")
    ]


def assert_lists(servers, names: set[str]) -> None:
    for server in servers:
        assert every_list(server) == [names] * 6, server.base


def test_every_change_shows_in_the_next_list_of_every_server(tmp_path, pg):
    music = tmp_path / "library" / "Music"
    make_clip(music / "Old/one.mp3", "mp3", freq=300, title="One", artist="Old Artist")
    shared = tmp_path / "a"
    shared.mkdir()
    # Two servers, one database: the same data dir (SQLite file, stored media) by two names.
    (tmp_path / "b").symlink_to(shared)
    settings = {"MOSIC_LIBRARY_DIRS": str(music), "MOSIC_LIBRARY_WATCH": "false", **db_env(pg)}
    with (
        mosic_serve(tmp_path / "a", **settings) as first,
        mosic_serve(tmp_path / "b", **settings) as second,
    ):
        servers = (first, second)
        scanned(first)
        assert_lists(servers, {"Old Artist"})
        # Unchanged, the same bytes (kept), and the same as the other server's.
        again = [rest(s, "getArtists").content for s in servers for _ in range(2)]
        assert len(set(again)) == 1

        upload = make_clip(tmp_path / "new.mp3", "mp3", freq=500, title="N", artist="New Artist")
        clip = first.upload(upload, "audio/mpeg")
        assert_lists(servers, {"Old Artist", "New Artist"})

        assert second.delete(f"/play/{clip['id']}").status_code == 204
        assert_lists(servers, {"Old Artist"})

        make_clip(music / "Scanned/two.mp3", "mp3", freq=700, title="Two", artist="Scanned")
        rescan(second)
        assert_lists(servers, {"Old Artist", "Scanned"})

        # A star on an artist is in its entry: the lists follow it too.
        scanned_id = artists_of(first)["Scanned"]["id"]
        assert "starred" not in artists_of(first)["Scanned"]
        rest(second, "star", artistId=scanned_id)
        for server in servers:
            for fmt in ("json", "xml"):
                assert artists_of(server, "getArtists", fmt)["Scanned"].get("starred")
                assert artists_of(server, "getIndexes", fmt)["Scanned"].get("starred")
        rest(first, "unstar", artistId=scanned_id)
        assert "starred" not in artists_of(second)["Scanned"]


def test_get_indexes_says_when_the_artists_last_changed(tmp_path, pg):
    with mosic_serve(tmp_path / "data", **db_env(pg)) as server:
        indexes = rest(server, "getIndexes").json()["subsonic-response"]["indexes"]
        since = indexes["lastModified"]
        assert since > 0 and indexes["index"] == []  # nothing yet
        same = rest(server, "getIndexes", ifModifiedSince=since).json()["subsonic-response"]
        assert same["indexes"] == {"lastModified": since, "ignoredArticles": indexes[
            "ignoredArticles"]}  # fmt: skip
        upload = make_clip(tmp_path / "x.mp3", "mp3", title="X", artist="Someone")
        server.upload(upload, "audio/mpeg")
        changed = rest(server, "getIndexes", ifModifiedSince=since).json()["subsonic-response"]
        assert changed["indexes"]["lastModified"] > since
        names = [a["name"] for g in changed["indexes"]["index"] for a in g["artist"]]
        assert names == ["Someone"]
        # An invalid callback is still refused in JSON, as for any method.
        response = rest(server, "getArtists", "jsonp", callback="not a name")
        assert response.headers["content-type"] == JSON_TYPE
        assert response.json()["subsonic-response"]["status"] == "failed"
        # Without the version row (a hand-edited database) nothing is kept: still exact.
        assert set(artists_of(server)) == {"Someone"}
        query(server.data_dir, pg, "DELETE FROM library_version RETURNING id")
        other = make_clip(tmp_path / "y.mp3", "mp3", freq=600, title="Y", artist="Another")
        server.upload(other, "audio/mpeg")
        assert set(artists_of(server)) == {"Someone", "Another"}
        indexes = rest(server, "getIndexes", ifModifiedSince=since).json()["subsonic-response"]
        assert indexes["indexes"]["lastModified"] == 0 and len(indexes["indexes"]["index"]) == 2


# -- Kept, in one process ----------------------------------------------------------------------


def answer(text: str) -> Encoded:
    return encode(ok({"artists": {"x": text}}), "json")


async def test_an_answer_is_built_once_per_version_and_variant_even_asked_at_once():
    kept = Kept(size=3)
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> Encoded:
        started.set()
        await release.wait()
        return answer("one")

    asked = [asyncio.ensure_future(kept.answer(1, "v", slow)) for _ in range(5)]
    await started.wait()
    release.set()
    results = await asyncio.gather(*asked)
    assert kept.built == 1 and len({r.data for r in results}) == 1
    assert (await kept.answer(1, "v", slow)).data == results[0].data and kept.built == 1


async def test_a_new_version_drops_the_old_answers_and_the_size_is_bounded():
    kept = Kept(size=2)

    def builder(text):
        async def build():
            return answer(text)

        return build

    for variant in ("a", "b", "c"):
        await kept.answer(1, variant, builder(f"{variant}1"))
    assert len(kept) == 2  # "a" was least recently used
    assert (await kept.answer(1, "a", builder("a1-again"))).data == answer("a1-again").data
    assert (await kept.answer(2, "b", builder("b2"))).data == answer("b2").data
    assert len(kept) == 1
    # Asked again at version 1 (a request that read it just before the change): built anew,
    # never the answer of another version.
    assert (await kept.answer(1, "b", builder("b1"))).data == answer("b1").data


async def test_a_failed_build_is_not_kept():
    kept = Kept()

    async def broken():
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        await kept.answer(1, "v", broken)
    assert len(kept) == 0
    assert (await kept.answer(1, "v", _built("fine"))).data == answer("fine").data


def _built(text):
    async def build():
        return answer(text)

    return build


def test_an_encoded_answer_renders_as_each_format_wants():
    as_json = encode(ok({"a": 1}), "jsonp")
    assert render_encoded(as_json, "json", None) == (as_json.data, JSON_TYPE)
    assert render_encoded(as_json, "jsonp", "cb") == (b"cb(" + as_json.data + b");", JSONP_TYPE)
    as_xml = encode(ok({"a": 1}), None)
    assert render_encoded(as_xml, "xml", None) == (as_xml.data, XML_TYPE)
    with pytest.raises(ValueError, match="encoded as XML"):
        render_encoded(as_xml, "json", None)
