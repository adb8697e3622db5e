"""Keeping copies: whichever API family answers about a clip (REST stream, cover and peaks;
Subsonic ``stream``, ``download`` and ``getCoverArt``), it answers with one cache policy: the
same ``Cache-Control``, a strong ``ETag`` and the same ``Last-Modified``, and a copy that is
current by ``If-None-Match`` or, without it, ``If-Modified-Since`` is a 304 with the headers
of the 200."""

from __future__ import annotations

import shutil
from urllib.parse import urlencode

import pytest

from tests.conftest import API_KEY
from tests.support.subsonic import token_auth
from tests.support.tagging import image, tag_fully

CACHE_CONTROL = "private, max-age=0, must-revalidate"
# What a 304 repeats of its 200: the validators, the cache policy and the type.
REPEATED = ("ETag", "Last-Modified", "Cache-Control", "Content-Type")
LONG_AGO = "Sat, 01 Jan 2000 00:00:00 GMT"


def rest(path: str):
    async def fetch(api, clip_id: str, headers=None):
        return await api.get(path.format(id=clip_id), headers=headers)

    return fetch


def subsonic(method: str, **params):
    async def fetch(api, clip_id: str, headers=None):
        query = urlencode({**token_auth(API_KEY), "id": clip_id, **params})
        return await api.get(f"/rest/{method}", key=None, query_string=query, headers=headers)

    return fetch


ANSWERS = {
    "REST stream": rest("/play/{id}/stream"),
    "REST cover": rest("/play/{id}/cover"),
    "REST waveform": rest("/play/{id}/waveform"),
    "REST waveform as .dat": rest("/play/{id}/waveform?format=dat"),
    "Subsonic stream": subsonic("stream"),
    "Subsonic download": subsonic("download"),
    "Subsonic getCoverArt": subsonic("getCoverArt"),
    "Subsonic getCoverArt, scaled": subsonic("getCoverArt", size=16),
}


@pytest.fixture
async def covered(api, clip_file, tmp_path) -> str:
    """A stored FLAC with an embedded cover: audio, cover and peaks to answer about."""
    path = tmp_path / "covered.flac"
    shutil.copy(clip_file("flac", freq=440, title="Covered"), path)
    tag_fully(path, "flac", picture=image(tmp_path / "cover", color="teal"))
    result = await api.upload(path.read_bytes(), path.name)
    assert result.status_code == 201, result.text
    return result.json["id"]


async def test_every_family_answers_about_a_clip_with_one_cache_policy(api, covered):
    first = {name: await fetch(api, covered) for name, fetch in ANSWERS.items()}
    assert {name: answer.status_code for name, answer in first.items()} == dict.fromkeys(
        ANSWERS, 200
    )
    assert {name: answer.headers.get("Cache-Control") for name, answer in first.items()} == (
        dict.fromkeys(ANSWERS, CACHE_CONTROL)
    )
    # Every answer is dated when the clip was added, and validated by a strong ETag.
    assert len({answer.headers["Last-Modified"] for answer in first.values()}) == 1
    assert all(answer.headers["ETag"].startswith('"') for answer in first.values())
    # The same bytes have the same ETag, whichever family sends them.
    audio = {first[name].headers["ETag"] for name in ("REST stream", "Subsonic stream")}
    assert audio == {first["Subsonic download"].headers["ETag"]}
    assert first["REST cover"].headers["ETag"] == first["Subsonic getCoverArt"].headers["ETag"]


async def test_a_current_copy_is_a_304_in_every_family_and_a_stale_one_is_not(api, covered):
    for name, fetch in ANSWERS.items():
        first = await fetch(api, covered)
        current = (
            {"If-None-Match": first.headers["ETag"]},
            {"If-None-Match": f'"other", W/{first.headers["ETag"]}'},
            {"If-Modified-Since": first.headers["Last-Modified"]},
        )
        for held in current:
            again = await fetch(api, covered, held)
            assert again.status_code == 304, (name, held)
            assert again.content == b"", name
            assert {h: again.headers.get(h) for h in REPEATED} == {
                h: first.headers[h] for h in REPEATED
            }, (name, held)
        stale = (
            {"If-None-Match": '"stale"'},
            {"If-Modified-Since": LONG_AGO},
            # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
            {"If-None-Match": '"stale"', "If-Modified-Since": first.headers["Last-Modified"]},
        )
        for held in stale:
            again = await fetch(api, covered, held)
            assert again.status_code == 200, (name, held)
            assert again.content == first.content, name
