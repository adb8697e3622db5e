"""Loudness: every clip with audio gets ReplayGain figures, from its tags when present, else
measured in the same decoding pass as its waveform; its album's are combined over the album's
tracks.

The measures are held against ffmpeg's own ``ebur128`` filter, run by the ``ffmpeg`` binary
(another FFmpeg build than the one PyAV bundles) on the very same files: tones, white and
pink noise and a music-like stereo signal (chords, a swell, a near-silent bar the gate must
drop), as WAV, FLAC, MP3 and Opus, within 0.5 LU, true peaks within 0.5 dB. Tags win: real
files tagged with mutagen where each format keeps ReplayGain (Vorbis comments, ID3 ``TXXX``,
MP4 freeform, Opus ``R128_*``), uploaded in process on SQLite, PostgreSQL and S3 and read
back through REST and Subsonic; an album of library tracks through a real ``mosic serve``
and a Subsonic client nobody here wrote (py-opensonic), the album's gain against ffmpeg's
measure of the album played through; and clips an older release left without loudness,
read again in the background (uploads, S3 too) and by the next scan (library files).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from libopensonic import AsyncConnection

from mosic.app import make_store
from mosic.core import replay_gain
from mosic.core.analysis import LOUDNESS_JOB, UploadAnalysis
from mosic.core.leases import Lease
from mosic.core.loudness import Loudness
from mosic.core.waveform import Waveforms, decode
from mosic.persistence.database import make_database, make_sync_database
from tests.support.analysis import measured_on, once_measured
from tests.support.audio import make_signal, make_tones
from tests.support.database import mosic_env
from tests.support.server import wait_for
from tests.support.subsonic import validate_xml
from tests.support.tagging import tag_replay_gain
from tests.test_folders import pg, query, scanned, serve  # noqa: F401 - pg: a fixture
from tests.test_lyrics import execute, run_sql
from tests.test_subsonic import Sub

LU_TOLERANCE = 0.5  # the contract's: measured against ffmpeg's ebur128
PEAK_TOLERANCE_DB = 0.5
MEASURE_WAIT_S = 120


def ffmpeg_ebur128(*paths: Path) -> tuple[float, float]:
    """ffmpeg's integrated loudness (LUFS) and true peak (dBTP) of ``paths`` played one
    after the other (its summary). Several files are joined as stereo: a mono track upmixed
    at -3 dB a channel keeps its loudness (not its peak)."""
    inputs = [arg for path in paths for arg in ("-i", str(path))]
    graph = "ebur128=peak=true"
    if len(paths) > 1:
        joined = "".join(f"[{n}:a]aresample=48000,aformat=channel_layouts=stereo[a{n}];"
                         for n in range(len(paths)))  # fmt: skip
        joined += "".join(f"[a{n}]" for n in range(len(paths)))
        graph = f"{joined}concat=n={len(paths)}:v=0:a=1,{graph}"
    run = subprocess.run(
        [shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-nostats", "-hide_banner", *inputs,
         "-filter_complex", graph, "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    integrated = re.findall(r"I:\s+(-?[\d.]+) LUFS", run.stderr)[-1]
    peak = re.findall(r"Peak:\s+(-?[\d.]+|-inf) dBFS", run.stderr)[-1]
    return float(integrated), float(peak)


def measured(path: Path) -> dict:
    with path.open("rb") as fh:
        return replay_gain.measured_columns(decode(fh).loudness)


def assert_like_ffmpeg(figures: dict, *paths: Path) -> None:
    integrated, peak_db = ffmpeg_ebur128(*paths)
    assert abs(replay_gain.REFERENCE_LUFS - figures["track_gain_db"] - integrated) <= LU_TOLERANCE
    assert abs(20 * math.log10(figures["track_peak"]) - peak_db) <= PEAK_TOLERANCE_DB


# -- measured: the decoding pass against ffmpeg --------------------------------------------------


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus"])
@pytest.mark.parametrize("kind", ["tone", "white", "pink", "music"])
def test_measured_loudness_is_what_ffmpeg_measures(tmp_path, kind, fmt):
    path = make_signal(tmp_path / f"{kind}.{fmt}", fmt, kind)
    figures = measured(path)
    assert figures["gain_source"] == replay_gain.MEASURED
    assert_like_ffmpeg(figures, path)
    with path.open("rb") as fh:  # the same pass draws the same peaks as without it
        both = decode(fh).peaks.to_dat()
    with path.open("rb") as fh:
        assert both == decode(fh, measure=False).peaks.to_dat()


def test_surround_silence_and_clips_too_short_to_integrate(tmp_path):
    surround = make_tones(tmp_path / "surround.flac", "flac", channels=6, seconds=5)
    assert_like_ffmpeg(measured(surround), surround)  # LFE unweighed, surround channels +1.5 dB
    # Silence has no loudness (no gain a player could use) but a peak: nothing at all.
    silent = make_signal(tmp_path / "silent.wav", "wav", "tone", volume_db=-200)
    assert measured(silent) == {"track_gain_db": None, "track_peak": 0.0, "gated_seconds": None,
                                "gain_source": replay_gain.MEASURED}  # fmt: skip
    # Under one 400 ms block nothing is integrated; a true peak needs 100 ms.
    short = make_signal(tmp_path / "short.flac", "flac", "tone", seconds=0.3)
    figures = measured(short)
    assert figures["track_gain_db"] is None
    assert abs(20 * math.log10(figures["track_peak"]) - ffmpeg_ebur128(short)[1]) <= 0.5
    blip = make_signal(tmp_path / "blip.flac", "flac", "tone", seconds=0.05)
    assert measured(blip) == {"track_gain_db": None, "track_peak": None, "gated_seconds": None,
                              "gain_source": replay_gain.MEASURED}  # fmt: skip
    assert replay_gain.measured_columns(None) == {"gain_source": replay_gain.NONE}


def test_gated_seconds_leave_silences_out(tmp_path):
    # The music-like signal's bar at -40 dB (3 s to 4 s) is under the relative gate.
    figures = measured(make_signal(tmp_path / "m.flac", "flac", "music", seconds=6))
    assert 4.4 <= figures["gated_seconds"] <= 5.0
    assert measured(make_signal(tmp_path / "p.flac", "flac", "pink", seconds=6))[
        "gated_seconds"] >= 5.5  # fmt: skip


def test_album_figures_weigh_tracks_by_their_time():
    # Two tracks 10 dB apart in gain, the quiet one three times as long.
    gain, peak = replay_gain.album_figures([(30.0, -6.0, 0.9), (90.0, 4.0, 0.3), (5, None, 1.2)])
    power = (30 * 10 ** (-1.2) + 90 * 10 ** (-2.2)) / 120
    assert gain == round(-18 - 10 * math.log10(power), 2) and peak == 1.2
    assert replay_gain.album_figures([(10.0, None, 0.5)]) == (None, None)
    assert replay_gain.gain_of(Loudness(-23.0, 0.5).integrated) == 5.0


# -- tags win ------------------------------------------------------------------------------------

# (format, tags, what they say) — the audio says otherwise: a music-like signal near -12 LUFS.
TAGGED = {
    "FLAC Vorbis comments": (
        "flac",
        {"REPLAYGAIN_TRACK_GAIN": "-7.25 dB", "REPLAYGAIN_TRACK_PEAK": "0.912345",
         "REPLAYGAIN_ALBUM_GAIN": "-8.50 dB", "REPLAYGAIN_ALBUM_PEAK": "0.998"},
        {"track_gain_db": -7.25, "track_peak": 0.912345, "album_gain_db": -8.5,
         "album_peak": 0.998},
    ),
    "MP3 ID3 TXXX": (
        "mp3",
        {"replaygain_track_gain": "+2.10 dB", "replaygain_track_peak": "0.5"},
        {"track_gain_db": 2.1, "track_peak": 0.5},
    ),
    "M4A iTunes freeform": (
        "m4a",
        {"replaygain_track_gain": "-3.00 dB", "REPLAYGAIN_TRACK_PEAK": "1.05",
         "replaygain_album_gain": "-4 dB", "replaygain_album_peak": "1.1"},
        {"track_gain_db": -3.0, "track_peak": 1.05, "album_gain_db": -4.0, "album_peak": 1.1},
    ),
    # Q7.8 dB to -23 LUFS: -1280 is -5 dB there, 0 dB at ReplayGain's -18.
    "Opus R128": (
        "opus",
        {"R128_TRACK_GAIN": "-1280", "R128_ALBUM_GAIN": "512"},
        {"track_gain_db": 0.0, "album_gain_db": 7.0, "album_peak": None},
    ),
}  # fmt: skip


async def upload(api, path: Path, **form) -> dict:
    """The clip once measured: the 201 comes before the measure of what its tags lack."""
    answer = await api.upload(path.read_bytes(), path.name, content_type="audio/flac", **form)
    assert answer.status_code == 201, answer.text
    return await once_measured(api, answer.json["id"])


async def subsonic_gain(api, clip_id: str) -> dict:
    sub = Sub(api)
    song = (await sub.ok("getSong", id=clip_id))["song"]
    root = validate_xml((await sub.call("getSong", id=clip_id)).content)
    [element] = root[0].findall("{http://subsonic.org/restapi}replayGain")
    assert {k: float(v) for k, v in element.attrib.items()} == song["replayGain"]
    return song["replayGain"]


@pytest.mark.parametrize("kind", list(TAGGED))
async def test_tags_win_over_the_measure(api, tmp_path, kind):
    fmt, tags, expected = TAGGED[kind]
    path = tag_replay_gain(make_signal(tmp_path / f"tagged.{fmt}", fmt, "music"), fmt, tags)
    clip = await upload(api, path)
    figures = clip["replay_gain"]
    assert {name: figures[name] for name in expected} == expected
    if kind == "Opus R128":  # no peak in R128 tags: measured, in the same pass
        assert abs(20 * math.log10(figures["track_peak"]) - ffmpeg_ebur128(path)[1]) <= 0.5
    if "album_gain_db" not in expected:  # an album of one, without album tags: its own
        assert (figures["album_gain_db"], figures["album_peak"]) == (None, None)  # no album
    fetched = (await api.get(f"/play/{clip['id']}")).json["replay_gain"]
    assert fetched == figures
    gain = await subsonic_gain(api, clip["id"])
    shown = {"trackGain": "track_gain_db", "trackPeak": "track_peak",
             "albumGain": "album_gain_db", "albumPeak": "album_peak"}  # fmt: skip
    assert gain == {key: figures[name] for key, name in shown.items() if figures[name] is not None}


def test_tag_text_is_read_as_taggers_write_it_and_junk_is_ignored():
    read = replay_gain.from_tags
    assert read({"replaygain_track_gain": "+3.5 dB", "replaygain_track_peak": " 0.25 "}) == (
        replay_gain.ReplayGain(track_gain_db=3.5, track_peak=0.25)
    )
    assert read({"replaygain_track_gain": "-6.54DB", "replaygain_album_gain": ".5"}) == (
        replay_gain.ReplayGain(track_gain_db=-6.54, album_gain_db=0.5)
    )
    junk = {"replaygain_track_gain": "loud", "replaygain_album_gain": "+99 dB",
            "replaygain_track_peak": "-0.1", "replaygain_album_peak": "nan"}  # fmt: skip
    assert read(junk) == replay_gain.NO_TAGS and read({}).needs_measure
    # In Opus the R128 gains win; one that is no whole number leaves the ReplayGain tag.
    opus = {"r128_track_gain": "-7.5", "replaygain_track_gain": "-2 dB", "r128_album_gain": "0"}
    assert read(opus, r128=True) == replay_gain.ReplayGain(track_gain_db=-2.0, album_gain_db=5.0)
    assert read(opus).album_gain_db is None  # R128 tags count only in Opus


# -- uploads: measured, and combined over their album ----------------------------------------------


async def test_uploads_are_measured_and_their_album_combined(api, tmp_path):
    loud = tag_replay_gain(make_signal(tmp_path / "loud.flac", "flac", "music"), "flac",
                           {"ALBUM": "Both", "ARTIST": "Duo"})  # fmt: skip
    quiet = tag_replay_gain(
        make_signal(tmp_path / "quiet.flac", "flac", "pink", seconds=12, volume_db=-4),
        "flac",
        {"ALBUM": "Both", "ARTIST": "Duo"},
    )
    first = await upload(api, loud)
    assert_like_ffmpeg(first["replay_gain"], loud)
    # An album of one: its gain is the track's.
    solo = first["replay_gain"]
    assert (solo["album_gain_db"], solo["album_peak"]) == (
        solo["track_gain_db"],
        solo["track_peak"],
    )
    second = await upload(api, quiet)
    assert_like_ffmpeg(second["replay_gain"], quiet)
    both = [(await api.get(f"/play/{c['id']}")).json for c in (first, second)]
    assert_album_played_through(both, both, loud, quiet)
    listed = {c["id"]: c["replay_gain"] for c in (await api.get("/play")).json}
    assert listed[first["id"]] == both[0]["replay_gain"]
    assert (await api.delete(f"/play/{second['id']}")).status_code == 204
    alone = (await api.get(f"/play/{first['id']}")).json["replay_gain"]
    assert alone == solo
    external = (await api.add_external(title="Far", album="Both", artist="Duo")).json
    assert external["replay_gain"] == dict.fromkeys(solo)  # no audio, no figures
    sub = Sub(api)
    album_id = (await sub.ok("getSong", id=first["id"]))["song"]["albumId"]
    [song] = (await sub.ok("getAlbum", id=album_id))["album"]["song"]
    assert song["replayGain"] == {"trackGain": solo["track_gain_db"],
                                  "trackPeak": solo["track_peak"],
                                  "albumGain": solo["album_gain_db"],
                                  "albumPeak": solo["album_peak"]}  # fmt: skip


async def test_an_import_is_measured_as_an_upload_is(api, tmp_path):
    song = make_signal(tmp_path / "in" / "imported.flac", "flac", "pink")
    run = subprocess.run([sys.executable, "-m", "mosic", "import", str(song.parent)],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**mosic_env(api.settings), "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert run.returncode == 0, run.stderr
    [clip] = (await api.get("/play")).json
    assert_like_ffmpeg(clip["replay_gain"], song)


# -- an older release's uploads: read again in the background ------------------------------------

FORGET = ("UPDATE clip SET media_version = 2, track_gain_db = NULL, track_peak = NULL, "
          "album_gain_db = NULL, album_peak = NULL, album_gain_tagged = NULL, "
          "gain_source = NULL WHERE file_name IS NOT NULL")  # fmt: skip


async def test_uploads_of_an_older_release_are_measured_in_the_background(api, tmp_path):
    plain = await upload(api, make_signal(tmp_path / "plain.wav", "wav", "white"))
    fmt, tags, expected = TAGGED["FLAC Vorbis comments"]
    tagged = await upload(api, tag_replay_gain(make_signal(tmp_path / "t.flac", fmt, "tone"),
                                               fmt, tags))  # fmt: skip
    before = {c["id"]: c["replay_gain"] for c in (plain, tagged)}
    # As the release before loudness left them; the WAV as one from before tags were read.
    run_sql(api.settings, FORGET,
            "UPDATE clip SET media_version = NULL WHERE content_type = 'audio/wav'")  # fmt: skip
    assert (await api.get(f"/play/{plain['id']}")).json["replay_gain"]["track_gain_db"] is None
    migrated = subprocess.run([sys.executable, "-m", "mosic", "migrate"], capture_output=True,
                              text=True, env={**mosic_env(api.settings), "PATH": "/usr/bin:/bin"},
                              timeout=120, check=False)  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr
    # The WAV is read whole (its peaks drawn, its loudness measured in the same pass); the
    # other, which lacks only its loudness, is left to the background.
    assert "read the tags of 1 existing clip(s)" in migrated.stderr
    assert (await api.get(f"/play/{plain['id']}")).json["replay_gain"] == before[plain["id"]]
    db, store = make_database(api.settings), make_store(api.settings)
    await store.start()
    try:
        backfill = UploadAnalysis(db=db, store=store, waveforms=Waveforms(store=store))
        held = Lease(db=db, name=LOUDNESS_JOB)
        assert await held.take()  # another worker is at it: this one leaves it be
        assert await backfill.run() == 0
        await held.release()
        assert await backfill.run() == 1
        assert await backfill.run() == 0  # each clip read once, and marked
    finally:
        await db.aio_close()
        await store.close()
    after = {c: (await api.get(f"/play/{c}")).json["replay_gain"] for c in before}
    assert after == before
    assert run_sql_rows(api, "SELECT DISTINCT media_version FROM clip") == [(3,)]


def assert_album_played_through(sharing: list[dict], every: list[dict], *paths: Path) -> None:
    """The ``sharing`` songs show the same album figures: its gain within 0.5 LU of ffmpeg's
    measure of the album played through (``paths``), its peak the highest of ``every``
    song's."""
    [(gain, peak)] = {(s["replay_gain"]["album_gain_db"], s["replay_gain"]["album_peak"])
                      for s in sharing}  # fmt: skip
    assert peak == max(s["replay_gain"]["track_peak"] for s in every)
    integrated, _ = ffmpeg_ebur128(*paths)
    assert abs(replay_gain.REFERENCE_LUFS - gain - integrated) <= LU_TOLERANCE


def run_sql_rows(api, sql: str) -> list[tuple]:
    db = make_sync_database(api.settings)
    try:
        return list(db.execute_sql(sql).fetchall())
    finally:
        db.close()


# -- a library album, a real server, a real client -----------------------------------------------

ALBUM = {"ALBUM": "Record", "ARTIST": "Band"}


@pytest.fixture
def record(tmp_path) -> Path:
    """Three tracks of one album: two measured, one whose file holds its album's gain."""
    root = tmp_path / "library" / "Music"
    album = root / "Band" / "Record"
    tracks = [("01 Loud.flac", "music", 0.0, {}), ("02 Noise.flac", "pink", -3.0, {}),
              ("03 Own.flac", "tone", -6.0, {"REPLAYGAIN_ALBUM_GAIN": "-3.00 dB",
                                               "REPLAYGAIN_ALBUM_PEAK": "0.5"})]  # fmt: skip
    for name, kind, volume, own in tracks:
        path = make_signal(album / name, "flac", kind, volume_db=volume)
        tag_replay_gain(path, "flac", {**ALBUM, "TITLE": name[3:-5], **own})
    return root


UNREAD = "SELECT COUNT(*) FROM clip WHERE gain_source IS NULL OR waveform_name IS NULL"


def measured_library(server, postgres) -> list:
    """Every clip, once all are drawn and measured (none before)."""
    rows = query(server.data_dir, postgres, UNREAD)
    return [] if rows[0][0] else server.get("/play?sort=title").json()


async def test_a_library_album_through_a_real_client(tmp_path, record, pg):  # noqa: F811
    with serve(tmp_path, record, pg) as server:
        scanned(server)
        listed = wait_for("the library's loudness", lambda: measured_library(server, pg),
                          MEASURE_WAIT_S, server.log)  # fmt: skip
        by_title = {clip["title"]: clip for clip in listed}
        files = {t: record / "Band/Record" / f"{n} {t}.flac"
                 for n, t in (("01", "Loud"), ("02", "Noise"), ("03", "Own"))}  # fmt: skip
        for title, path in files.items():
            assert_like_ffmpeg(by_title[title]["replay_gain"], path)
        # Combined over all three, and shown by the two whose files hold no album gain.
        sharing = [by_title["Loud"], by_title["Noise"]]
        assert_album_played_through(sharing, listed, *files.values())
        own = by_title["Own"]["replay_gain"]
        assert (own["album_gain_db"], own["album_peak"]) == (-3.0, 0.5)  # its tags win
        await assert_py_opensonic(server, by_title)
        album_id = song_album(server, by_title["Loud"]["id"])
        xml = server.get("/rest/getAlbum", key=False,
                         params={"apiKey": server.api_key, "id": album_id})  # fmt: skip
        validate_xml(xml.content)
    assert_an_older_release_is_read_again(tmp_path, record, pg, by_title)


def song_album(server, clip_id: str) -> str:
    answer = server.get("/rest/getSong", key=False,
                        params={"apiKey": server.api_key, "id": clip_id, "f": "json"})  # fmt: skip
    return answer.json()["subsonic-response"]["song"]["albumId"]


async def assert_py_opensonic(server, by_title: dict) -> None:
    url = urlsplit(server.base)
    conn = AsyncConnection(f"{url.scheme}://{url.hostname}", port=url.port,
                           api_key=server.api_key)  # fmt: skip
    try:
        song = await conn.get_song(by_title["Loud"]["id"])
        album = await conn.get_album(song.album_id)
        assert len(album.song) == 3
        for track in album.song:
            figures = by_title[track.title]["replay_gain"]
            gain = track.replay_gain
            assert (gain.track_gain, gain.track_peak) == (figures["track_gain_db"],
                                                          figures["track_peak"])  # fmt: skip
            assert (gain.album_gain, gain.album_peak) == (figures["album_gain_db"],
                                                          figures["album_peak"])  # fmt: skip
            assert gain.base_gain is None and gain.fallback_gain is None
    finally:
        await conn.cleanup()


def assert_an_older_release_is_read_again(tmp_path, record, postgres, before: dict) -> None:
    """Library files and an upload as the release before loudness left them: the next
    server reads them again, in the background, while it serves."""
    upload = make_signal(tmp_path / "upload.wav", "wav", "white")
    with serve(tmp_path, record, postgres) as server:
        uploaded = measured_on(server, server.upload(upload, "audio/wav")["id"])
    execute(tmp_path / "data", postgres, FORGET)
    with serve(tmp_path, record, postgres) as server:
        assert httpx.get(server.base + "/healthz", timeout=10).status_code == 200
        listed = wait_for("the loudness read again", lambda: measured_library(server, postgres),
                          MEASURE_WAIT_S, server.log)  # fmt: skip
        again = {clip["title"]: clip["replay_gain"] for clip in listed}
        assert again == {**{t: c["replay_gain"] for t, c in before.items()},
                         "upload": uploaded["replay_gain"]}  # fmt: skip
        versions = query(server.data_dir, postgres, "SELECT DISTINCT media_version FROM clip")
        assert versions == [(3,)]
        assert_a_retagged_file_is_read_again(server, record, again)


def assert_a_retagged_file_is_read_again(server, record: Path, before: dict) -> None:
    """A file given ReplayGain tags (new bytes) takes them at its next scan (the watcher's),
    and its album is combined again with them."""
    tags = {"REPLAYGAIN_TRACK_GAIN": "-9.00 dB", "REPLAYGAIN_TRACK_PEAK": "0.75"}
    tag_replay_gain(record / "Band/Record/02 Noise.flac", "flac", tags)

    def retagged() -> dict | None:
        listed = {clip["title"]: clip["replay_gain"] for clip in server.get("/play").json()}
        return listed if listed["Noise"]["track_gain_db"] == -9.0 else None

    after = wait_for("the re-tagged file read", retagged, MEASURE_WAIT_S, server.log)
    assert after["Noise"]["track_peak"] == 0.75
    assert after["Loud"]["album_gain_db"] == after["Noise"]["album_gain_db"]
    # Its tags call it some 15 dB louder than it measured (+6 dB): so is the album now.
    assert after["Loud"]["album_gain_db"] < before["Loud"]["album_gain_db"] - 1
    assert after["Own"] == before["Own"] and after["Loud"]["track_gain_db"] == before[
        "Loud"]["track_gain_db"]  # fmt: skip
