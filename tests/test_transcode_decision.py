"""An app asks Mosic how to play a song (OpenSubsonic ``transcoding``): it POSTs what it can
play to ``getTranscodeDecision`` and fetches what the answer names with
``getTranscodeStream``, from an offset when it seeks."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from mosic.core import transcode_decision
from tests.conftest import API_KEY
from tests.test_listen_transcoded import cached_files, plays, probe, upload

SONG_SECONDS = 60.0
# The example ClientInfo of the OpenSubsonic documentation (a Sonos speaker), shortened.
SONOS = {
    "name": "Play:1",
    "platform": "Sonos",
    "maxAudioBitrate": 512000,
    "maxTranscodingAudioBitrate": 256000,
    "directPlayProfiles": [
        {"containers": ["mp3"], "audioCodecs": ["mp3"], "protocols": ["http"],
         "maxAudioChannels": 2},
        {"containers": ["mp4"], "audioCodecs": ["aac", "alac"], "protocols": [],
         "maxAudioChannels": 2},
    ],
    "transcodingProfiles": [
        {"container": "flac", "audioCodec": "flac", "protocol": "hls"},
        {"container": "mp3", "audioCodec": "mp3", "protocol": "http", "maxAudioChannels": 2},
    ],
    "codecProfiles": [
        {"type": "AudioCodec", "name": "mp3", "limitations": [
            {"name": "audioBitrate", "comparison": "LessThanEqual", "values": ["320000"],
             "required": True}]},
    ],
}  # fmt: skip
FLAC_PLAYER = {
    "name": "desk",
    "platform": "Linux",
    "directPlayProfiles": [{"containers": ["flac"], "audioCodecs": ["flac"], "protocols": []}],
}
OPUS_ONLY = {
    "name": "phone",
    "platform": "Android",
    "maxTranscodingAudioBitrate": 64000,
    "directPlayProfiles": [],
    "transcodingProfiles": [{"container": "ogg", "audioCodec": "opus", "protocol": "http"}],
}


@pytest.fixture
async def song(api, clip_file):
    return await upload(api, clip_file("flac", seconds=SONG_SECONDS, freq=330))


def query(**params) -> str:
    return urlencode({"apiKey": API_KEY, "f": "json", "c": "app", **params})


async def decide(api, song, info, body: str | None = None, **params) -> dict:
    resp = await api.post(
        "/rest/getTranscodeDecision",
        key=None,
        query_string=query(mediaId=song["id"], mediaType="song", **params),
        body=json.dumps(info) if body is None else body,
        headers={"Content-Type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json["subsonic-response"]


async def fetch(api, song, params: str, **extra):
    q = query(mediaId=song["id"], mediaType="song", transcodeParams=params, **extra)
    return await api.get("/rest/getTranscodeStream", key=None, query_string=q)


async def test_a_player_of_mp3_gets_mp3_at_its_bitrate_and_can_seek_in_it(api, song, tmp_path):
    body = await decide(api, song, SONOS)
    decision = body["transcodeDecision"]
    assert (decision["canDirectPlay"], decision["canTranscode"]) == (False, True)
    # One reason per direct-play profile: neither takes a FLAC file.
    assert decision["transcodeReason"] == ["ContainerNotSupported", "ContainerNotSupported"]
    assert decision["sourceStream"]["container"] == "flac"
    assert decision["sourceStream"]["codec"] == "flac"
    target = decision["transcodeStream"]
    assert (target["protocol"], target["container"], target["codec"]) == ("http", "mp3", "mp3")
    assert target["audioBitrate"] == 256000  # maxTranscodingAudioBitrate

    whole = await fetch(api, song, decision["transcodeParams"])
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "audio/mpeg"
    found = probe(whole.content, tmp_path)
    assert found["codec"] == "mp3" and abs(found["kbps"] - 256) < 256 * 0.1, found
    assert abs(found["seconds"] - SONG_SECONDS) < 0.5, found

    seek = await fetch(api, song, decision["transcodeParams"], offset="30")
    assert abs(probe(seek.content, tmp_path)["seconds"] - 30) < 0.5
    assert await plays(api, song) == 0  # apps report their listens themselves
    assert len(cached_files(api)) == 1  # the whole rendition; not the seek


async def test_a_player_of_the_files_format_plays_it_directly(api, song, clip_file):
    decision = (await decide(api, song, FLAC_PLAYER))["transcodeDecision"]
    assert (decision["canDirectPlay"], decision["canTranscode"]) == (True, False)
    assert decision["transcodeReason"] == []
    resp = await fetch(api, song, decision["transcodeParams"])
    assert resp.content == clip_file("flac", seconds=SONG_SECONDS, freq=330).read_bytes()
    seek = await fetch(api, song, decision["transcodeParams"], offset="30")
    assert seek.json["subsonic-response"]["error"]["code"] == 0  # the original seeks by Range


async def test_an_opus_player_gets_opus_under_its_cap(api, song, tmp_path):
    decision = (await decide(api, song, OPUS_ONLY))["transcodeDecision"]
    assert decision["transcodeReason"] == ["NoDirectPlayProfile"]
    assert decision["transcodeStream"]["container"] == "ogg"
    assert decision["transcodeStream"]["audioBitrate"] == 64000
    resp = await fetch(api, song, decision["transcodeParams"])
    assert probe(resp.content, tmp_path)["codec"] == "opus"


async def test_a_file_over_the_players_bitrate_is_transcoded(api, song):
    info = {**FLAC_PLAYER, "maxAudioBitrate": 1000, "transcodingProfiles": OPUS_ONLY[
        "transcodingProfiles"]}  # fmt: skip
    decision = (await decide(api, song, info))["transcodeDecision"]
    assert decision["canDirectPlay"] is False
    assert decision["transcodeReason"] == ["AudioBitrateNotSupported"]
    assert decision["transcodeStream"]["audioBitrate"] == 32000  # held to Mosic's lowest


async def test_a_player_of_nothing_mosic_makes_gets_no_transcode(api, song):
    info = {**OPUS_ONLY, "transcodingProfiles": [
        {"container": "mp4", "audioCodec": "aac", "protocol": "http"},
        {"container": "mp3", "audioCodec": "mp3", "protocol": "hls"}]}  # fmt: skip
    decision = (await decide(api, song, info))["transcodeDecision"]
    assert (decision["canDirectPlay"], decision["canTranscode"]) == (False, False)
    assert "mp3" in decision["errorReason"]
    assert "transcodeParams" not in decision and "transcodeStream" not in decision


async def test_the_decision_is_answered_in_xml_too(api, song):
    resp = await api.post(
        "/rest/getTranscodeDecision.view",
        key=None,
        query_string=urlencode({"apiKey": API_KEY, "mediaId": song["id"], "mediaType": "song"}),
        body=json.dumps(SONOS),
        headers={"Content-Type": "application/json"},
    )
    assert b'<transcodeDecision canDirectPlay="false" canTranscode="true"' in resp.content
    assert b"<transcodeReason>ContainerNotSupported</transcodeReason>" in resp.content


@pytest.mark.parametrize(
    ("params", "body", "code", "says"),
    [
        ({}, "", 10, "ClientInfo"),
        ({}, "{not json", 0, "not JSON"),
        ({}, "[1, 2]", 0, "JSON object"),
        ({}, '{"directPlayProfiles": "mp3"}', 0, "directPlayProfiles"),
        ({}, "[" * 40 + "]" * 40, 0, "deeper"),
        ({"mediaType": "podcast"}, "{}", 0, "podcasts"),
        ({"mediaId": "nope"}, "{}", 70, "song"),
    ],
)
async def test_a_bad_decision_request_is_a_subsonic_error(api, song, params, body, code, says):
    resp = await api.post(
        "/rest/getTranscodeDecision",
        key=None,
        query_string=query(**{"mediaId": song["id"], "mediaType": "song", **params}),
        body=body,
        headers={"Content-Type": "application/json"},
    )
    error = resp.json["subsonic-response"]["error"]
    assert (error["code"], says in error["message"]) == (code, True), error


async def test_the_decision_must_be_posted(api, song):
    q = query(mediaId=song["id"], mediaType="song")
    resp = await api.get("/rest/getTranscodeDecision", key=None, query_string=q)
    error = resp.json["subsonic-response"]["error"]
    assert error["code"] == 0 and "POST" in error["message"]


@pytest.mark.parametrize(
    ("params", "code", "names"),
    [("flac-128", 0, "transcodeParams"), ("mp3-999", 0, "transcodeParams"),
     ("mp3", 0, "transcodeParams"), ("", 10, "transcodeParams")],
)  # fmt: skip
async def test_transcode_params_mosic_did_not_give_are_refused(api, song, params, code, names):
    resp = await fetch(api, song, params)
    error = resp.json["subsonic-response"]["error"]
    assert error["code"] == code and names in error["message"], error
    assert cached_files(api) == []


async def test_a_bad_offset_is_refused(api, song):
    resp = await fetch(api, song, "mp3-128", offset="-3")
    error = resp.json["subsonic-response"]["error"]
    assert error["code"] == 0 and "'offset'" in error["message"]


async def test_transcoding_is_an_advertised_extension(api):
    resp = await api.get("/rest/getOpenSubsonicExtensions", key=None, query_string="f=json")
    extensions = resp.json["subsonic-response"]["openSubsonicExtensions"]
    assert {"name": "transcoding", "versions": [1]} in extensions


def limited(comparison: str, values: list[str], required: bool = True) -> dict:
    limitation = {"name": "audioChannels", "comparison": comparison, "values": values,
                  "required": required}  # fmt: skip
    return {
        **FLAC_PLAYER,
        "codecProfiles": [{"type": "AudioCodec", "name": "flac", "limitations": [limitation]}],
    }


@pytest.mark.parametrize(
    ("info", "direct"),
    [
        (limited("Equals", ["1", "2"]), True),
        (limited("Equals", ["2"]), False),
        (limited("Equals", ["2"], required=False), True),  # only required limits bind
        (limited("NotEquals", ["1"]), False),
        (limited("LessThanEqual", ["1"]), True),
        (limited("GreaterThanEqual", ["2"]), False),
    ],
)
def test_a_required_codec_limitation_decides_direct_play(info, direct):
    mono_flac = transcode_decision.source_stream(".flac", 1, 350, 22050)
    decided = transcode_decision.decide(info, mono_flac)
    assert decided.direct is direct
    assert decided.reasons == ([] if direct else ["AudioChannelsNotSupported"])
