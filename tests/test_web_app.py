"""The web app as a place to listen: a real ``mosic serve`` (on SQLite and on PostgreSQL)
indexing a music folder of real files made here (two albums, one on two discs, with a cover
beside the files and one embedded, a synced .lrc sidecar), visited in headless Chromium.

Each control is found by its accessible name and used: the album grid and an album's page in
disc and track order, the queue moving on by itself from one short file to the next (the next
one loaded before its turn), the player bar's buttons, the queue kept across a reload, a star
reaching Subsonic's getStarred2, the lyrics' line marked at the right time, the Media Session,
search, playlists, the admin's Users and Library, the keyboard shortcuts and ReplayGain. Every
screen passes axe-core, and the page fits a phone; no console error and no CSP violation on
the way. Set MOSIC_WEB_SCREENSHOTS to a folder (docs/) to keep the screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mutagen.easyid3 import EasyID3
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip
from tests.support.browser import (
    PHONE,
    accessibility_problems,
    appears,
    assert_clean,
    chromium,
    click,
    database_env,
    named,
    names,
    sign_in,
    wait,
)
from tests.support.server import Mosic, mosic_serve, wait_for
from tests.support.tagging import Image, tag_fully, tag_replay_gain

SCREENSHOTS_ENV = "MOSIC_WEB_SCREENSHOTS"
SCAN_TIMEOUT_S = 60
# (file, title, disc, track, seconds): named so that the files' own order is not the
# album's; Dawn Chorus is disc 1 tracks 1 and 2, then disc 2 track 1.
DAWN = [
    ("a.mp3", "Wren", "2", "1", 2.0),
    ("b.mp3", "Robin", "1", "2", 2.0),
    ("c.mp3", "Blackbird", "1", "1", 2.0),
]
DAWN_ORDER = ["Blackbird", "Robin", "Wren"]
ALBUM_PAGE = 60  # browse.js: the grid asks for this many albums at a time
# More albums of one short song each, four to an artist: a shelf longer than the grid's first
# page, so it has to page on as it scrolls. (album, artist)
ADJECTIVES = ("Amber", "Blue", "Copper", "Distant", "Electric", "Faded", "Golden", "Hidden")
NOUNS = ("Harbours", "Lanterns", "Meadows", "Rivers", "Signals", "Tides", "Voices", "Winters")
BANDS = (
    "Iron Lantern", "Velvet Echo", "Honey Wolf", "Glass Horizon", "Snow Island", "Paper Moon",
    "Salt Road", "Night Train", "Silver Birch", "Quiet Storm", "Wild Orchard", "Stone Garden",
    "Open Window", "Northern Line", "Low Tide", "Bright Meadow",
)  # fmt: skip
SHELF = [
    (f"{adjective} {noun}", BANDS[n // 4])
    for n, (adjective, noun) in enumerate((a, b) for a in ADJECTIVES for b in NOUNS)
]
SHELF_COVERS = 8
ALBUMS = sorted(["Dawn Chorus", "Études", *(album for album, _ in SHELF)])
ARTISTS = sorted({"A. Pianist", "Field Recordings", *BANDS})
FILES = len(DAWN) + 2 + len(SHELF)
# Study in C's lyrics (.lrc beside it): line starts in seconds.
LYRICS = [(0, "First line"), (4, "Second line"), (8, "Third line"), (12, "Fourth line")]
# The widths of the grid's pictures on screen once every one is drawn (else null).
COVERS_DRAWN = """
const shown = [...document.querySelectorAll(".grid img")].filter((i) => {
  const box = i.getBoundingClientRect();
  return box.top < innerHeight && box.bottom > 0;
});
const widths = shown.map((i) => i.getAttribute("src") && i.complete && i.naturalWidth);
return widths.length && widths.every(Boolean) ? widths : null;
"""
HAVE_FUTURE_DATA = 3  # HTMLMediaElement.readyState: enough to start playing at once
# Before the player's own listener on each <audio> (capture, at the document): what the
# second <audio> held when a song ended.
HANDOFFS = """
window.__handoffs = [];
document.addEventListener("ended", (e) => {
  const next = document.getElementById("audio-next");
  window.__handoffs.push({ended: e.target.src, next: next.src, ready: next.readyState});
}, true);
"""

# -6.02 dB halves the volume; its peak allows it.
STUDY_GAIN = {"REPLAYGAIN_TRACK_GAIN": "-6.02 dB", "REPLAYGAIN_TRACK_PEAK": "0.5"}


def cover(path: Path, seed: int) -> Image:
    """A real 400x400 JPEG of soft gradients (ffmpeg's ``gradients`` source)."""
    subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"gradients=s=400x400:seed={seed}", "-frames:v", "1", str(path)],
        check=True,
    )  # fmt: skip
    return Image(path.read_bytes(), "image/jpeg")


def make_library(root: Path) -> Path:
    dawn = root / "Field Recordings" / "Dawn Chorus"
    dawn.mkdir(parents=True)
    cover(dawn / "cover.jpg", 7)  # the folder's picture: the cover of every file there
    for n, (name, title, disc, track, seconds) in enumerate(DAWN):
        path = make_clip(
            dawn / name, "mp3", seconds=seconds, freq=300 + 100 * n,
            title=title, artist="Field Recordings", album="Dawn Chorus",
        )  # fmt: skip
        tag_fully(path, "mp3", track=track, disc=disc, date="2021")
    etudes = root / "A. Pianist" / "Etudes"
    etudes.mkdir(parents=True)
    picture = cover(root.parent / "etudes.jpg", 3)  # embedded in the files
    for track, (name, title, seconds) in enumerate(
        [("study.mp3", "Study in C", 16.0), ("prelude.mp3", "Prelude", 3.0)], start=1
    ):
        path = make_clip(
            etudes / name, "mp3", seconds=seconds, freq=520 + track,
            title=title, artist="A. Pianist", album="Études",
        )  # fmt: skip
        tag_fully(path, "mp3", track=str(track), picture=picture)
        if title == "Study in C":  # a song with ReplayGain: its volume is halved
            tag_replay_gain(path, "mp3", STUDY_GAIN)
    lines = "".join(f"[00:{start:02}.00]{text}\n" for start, text in LYRICS)
    (etudes / "study.lrc").write_text(lines, encoding="utf-8")
    shelve(root)
    return root


def shelve(root: Path) -> None:
    """The shelf's albums: one 1 s MP3 copied and tagged anew for each, a cover beside it."""
    one = make_clip(root.parent / "one.mp3", "mp3", seconds=1.0, title="One")
    covers = [cover(root.parent / f"shelf-{n}.jpg", 11 + n).data for n in range(SHELF_COVERS)]
    for n, (album, artist) in enumerate(SHELF):
        folder = root / artist / album
        folder.mkdir(parents=True)
        (folder / "folder.jpg").write_bytes(covers[n % SHELF_COVERS])
        song = folder / "01.mp3"
        shutil.copyfile(one, song)
        tags = EasyID3(song)
        tags.update({"title": f"{album} One", "artist": artist, "album": album})
        tags.save(v2_version=3)


def scanned(server: Mosic, files: int) -> bool:
    status = server.get("/library/scan").json()
    return not status["scanning"] and status["finished_at"] is not None and status["seen"] >= files


def subsonic(server: Mosic, method: str, **params) -> dict:
    query = {"apiKey": server.api_key, "f": "json", **params}
    answer = httpx.get(f"{server.base}/rest/{method}", params=query, timeout=10).json()
    assert answer["subsonic-response"]["status"] == "ok", answer
    return answer["subsonic-response"]


def gains_read(server: Mosic) -> dict[str, dict] | None:
    """The songs by title, once the tagged song's figures are read (after its scan)."""
    songs = subsonic(server, "search3", query="", songCount=50)["searchResult3"]["song"]
    by_title = {song["title"]: song for song in songs}
    return by_title if "trackGain" in by_title["Study in C"].get("replayGain", {}) else None


@pytest.fixture(scope="module", params=LOCAL_BACKENDS)
def library(request, tmp_path_factory) -> Iterator[Mosic]:
    """One server per database for this module, indexing the music folder ``music``."""
    root = tmp_path_factory.mktemp(f"web-{request.param}")
    music = make_library(root / "music")
    with new_postgres_db(request) as postgres:
        env = {"MOSIC_LIBRARY_DIRS": str(music), **database_env(postgres)}
        with mosic_serve(root / "data", **env) as server:
            deadline = time.monotonic() + SCAN_TIMEOUT_S
            while not scanned(server, FILES):
                assert time.monotonic() < deadline, server.get("/library/scan").json()
                time.sleep(0.2)
            server.songs = wait_for("Study in C's ReplayGain", lambda: gains_read(server),
                                    SCAN_TIMEOUT_S, server.log)  # fmt: skip
            ids = [server.songs[t]["id"] for t in ("Robin", "Study in C")]
            subsonic(server, "createPlaylist", name="Morning mix", songId=ids)
            yield server


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


# -- helpers ---------------------------------------------------------------------------------


def text(driver, css: str) -> str | None:
    """The text of the first element matching ``css`` now (read in the page, so never a stale
    reference while the page renders)."""
    return driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e && e.innerText", css
    )


def heading(driver) -> str | None:
    return text(driver, "#view-heading")


def go(driver, link: str, title: str | None = None) -> None:
    """Follow the link named ``link`` and wait for the screen titled ``title`` (``link``)."""
    wait(driver, f"a link to {link}", lambda: link in (names(driver, "a") or []))
    click(driver, named(driver, "a", link))
    wait(driver, f"the screen {title or link}", lambda: heading(driver) == (title or link))


def to_etudes(driver) -> None:
    """Open Études by its artist ("É" sorts after every unaccented letter: the grid's end)."""
    go(driver, "Artists")
    go(driver, "A. Pianist")
    go(driver, "Études")


def now_playing(driver) -> str | None:
    return text(driver, "#now-title")


def audio(driver, prop: str):
    return driver.execute_script(f"return document.getElementById('audio').{prop}")


def play_buttons(driver, scope: str = ".view") -> list[str]:
    """The titles of the songs listed in ``scope``, from their Play buttons."""
    found = names(driver, f"{scope} .song button") or []
    return [n.removeprefix("Play ") for n in found if n.startswith("Play ")]


def play_count(server: Mosic, title: str) -> int:
    return server.get(f"/play/{server.songs[title]['id']}/stats").json()["play_count"]


def clean_screen(driver, what: str) -> None:
    assert accessibility_problems(driver) == [], what


def screenshot(driver, tmp_path: Path, name: str) -> None:
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get(SCREENSHOTS_ENV):
        shutil.copyfile(shot, Path(os.environ[SCREENSHOTS_ENV]) / name)


def starred(server: Mosic) -> dict[str, list[str]]:
    found = subsonic(server, "getStarred2")["starred2"]
    return {kind: [item["id"] for item in found.get(kind, [])] for kind in ("album", "song")}


# -- browsing --------------------------------------------------------------------------------


def test_albums_show_covers_and_an_album_lists_its_discs_in_order(browser, library, tmp_path):
    sign_in(browser, library.base, library.api_key)
    assert heading(browser) == "Albums"  # where the app opens
    tiles = "return document.querySelectorAll('.grid li').length"
    wait(browser, "the first page", lambda: browser.execute_script(tiles) == ALBUM_PAGE)
    widths = wait(browser, "the covers", lambda: browser.execute_script(COVERS_DRAWN))
    assert len(widths) >= 6 and set(widths) == {384}  # drawn, at the size asked for
    # Only the covers near the screen were asked for, from Subsonic's getCoverArt.
    sources = browser.execute_script(
        "return [...document.querySelectorAll('.grid img')].map(i => i.src)"
    )
    asked = [src for src in sources if src]
    assert len(asked) < ALBUM_PAGE and all("/rest/getCoverArt?" in src for src in asked)
    clean_screen(browser, "albums")
    # The rest of the shelf comes as the grid's end nears the screen.
    browser.execute_script("scrollTo(0, document.documentElement.scrollHeight)")
    wait(browser, "the next page", lambda: browser.execute_script(tiles) == len(ALBUMS))
    assert sorted(names(browser, ".grid a.album-link")) == ALBUMS
    wait(browser, "the count", lambda: text(browser, ".view .summary") == f"{len(ALBUMS)} albums")
    # By artist, A. Pianist's Études comes first (by name, "É" sorts after every letter).
    named(browser, "select", "Order").send_keys("By artist")
    first = ".grid a.album-link"
    wait(browser, "the grid by artist", lambda: (names(browser, first) or [None])[0] == "Études")

    go(browser, "Dawn Chorus")
    wait(browser, "the songs", lambda: play_buttons(browser) == DAWN_ORDER)
    assert [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".view h3")] == [
        "Disc 1", "Disc 2",
    ]  # fmt: skip
    assert named(browser, "button", "Play album").is_enabled()
    clean_screen(browser, "an album")

    go(browser, "Field Recordings")  # the album's artist
    wait(
        browser,
        "the artist's albums",
        lambda: names(browser, ".grid a.album-link") == ["Dawn Chorus"],
    )
    go(browser, "Artists")
    wait(browser, "the artists", lambda: names(browser, ".artists a"))
    assert names(browser, ".artists a") == ARTISTS
    clean_screen(browser, "artists")
    assert_clean(browser)


def test_play_album_goes_through_the_queue_by_itself_and_the_queue_survives_a_reload(
    browser, library, tmp_path
):
    before = {title: play_count(library, title) for title in DAWN_ORDER}
    sign_in(browser, library.base, library.api_key)
    go(browser, "Dawn Chorus")
    browser.execute_script(HANDOFFS)
    click(browser, named(browser, "button", "Play album"))
    wait(
        browser, "the last song", lambda: now_playing(browser) == "Wren" and audio(browser, "ended")
    )
    # Each song ended into the next one, already loaded by the second <audio>.
    handoffs = browser.execute_script("return window.__handoffs")
    ids = [library.songs[t]["id"] for t in DAWN_ORDER]
    assert len(handoffs) == 3, handoffs
    for ended, (was, then) in zip(handoffs, zip(ids, ids[1:], strict=False), strict=False):
        assert was in ended["ended"] and then in ended["next"], ended
        assert ended["ready"] >= HAVE_FUTURE_DATA, ended
    assert {t: play_count(library, t) for t in DAWN_ORDER} == {t: n + 1 for t, n in before.items()}

    session = browser.execute_script(
        "const m = navigator.mediaSession.metadata;"
        "return [m.title, m.artist, m.album, m.artwork.map((a) => a.src)]"
    )
    assert session[:3] == ["Wren", "Field Recordings", "Dawn Chorus"]
    assert len(session[3]) == 1 and "/rest/getCoverArt?" in session[3][0]
    player_buttons(browser)

    queue = named(browser, "button", "Queue")
    click(browser, queue)
    assert queue.get_attribute("aria-expanded") == "true"
    entries = [f"Play {t} from queue" for t in DAWN_ORDER]
    assert names(browser, "#queue-panel .queue-song") == entries
    clean_screen(browser, "the queue")
    played = {t: play_count(library, t) for t in DAWN_ORDER}

    browser.refresh()  # the queue is kept, and where it was: nothing plays, nothing counts
    wait(browser, "the player", lambda: now_playing(browser) == "Robin")
    click(browser, named(browser, "button", "Queue"))
    assert names(browser, "#queue-panel .queue-song") == entries
    current = browser.find_element(By.CSS_SELECTOR, "#queue-panel li[aria-current=true]")
    assert current.text.startswith("Robin")
    assert audio(browser, "paused") and {t: play_count(library, t) for t in DAWN_ORDER} == played
    screenshot(browser, tmp_path, "web-album.png")

    go(browser, "Albums")
    wait(browser, "the covers", lambda: browser.execute_script(COVERS_DRAWN))
    screenshot(browser, tmp_path, "web-albums.png")
    to_etudes(browser)
    click(browser, named(browser, "button", "Add Prelude to queue"))
    click(browser, named(browser, "button", "Queue"))
    entries.append("Play Prelude from queue")
    wait(browser, "Prelude queued", lambda: names(browser, "#queue-panel .queue-song") == entries)
    click(browser, named(browser, "button", "Play Blackbird from queue"))
    wait(browser, "a jump in the queue", lambda: now_playing(browser) == "Blackbird")
    click(browser, named(browser, "button", "Remove Prelude from queue"))
    wait(browser, "Prelude gone", lambda: names(browser, "#queue-panel .queue-song") == entries[:3])
    click(browser, named(browser, "button", "Pause"))
    assert_clean(browser)


def player_buttons(driver) -> None:
    """Previous, Next, Pause, Play and Volume, pressed as a person would.

    The songs last two seconds, and looking a button up by its name costs a WebDriver round
    trip for every button on the page: under load, long enough for the song to end before
    the Pause button was found (CI). So the Play/Pause button is found once, while the album
    has ended and it says Play, and pressed as soon as it says Pause."""
    toggle = named(driver, "button", "Play")
    click(driver, named(driver, "button", "Previous"))  # at the end of Wren: back to Robin
    wait(driver, "Robin", lambda: now_playing(driver) == "Robin" and playing(driver, toggle))
    click(driver, toggle)
    wait(driver, "a pause", lambda: audio(driver, "paused"))
    # The same button, now saying what it will do (once the element's pause event is out).
    wait(driver, "the button to say Play", lambda: toggle.accessible_name == "Play")
    click(driver, toggle)
    wait(driver, "playing again", lambda: playing(driver, toggle))
    click(driver, toggle)
    volume = named(driver, "input", "Volume")
    assert volume.get_attribute("type") == "range"
    volume.send_keys(Keys.HOME)
    assert audio(driver, "volume") == 0
    volume.send_keys(Keys.END)
    assert audio(driver, "volume") == 1
    click(driver, named(driver, "button", "Next"))
    wait(driver, "Wren", lambda: now_playing(driver) == "Wren")
    click(driver, named(driver, "button", "Previous"))  # at its start: the song before
    wait(driver, "Robin again", lambda: now_playing(driver) == "Robin" and playing(driver, toggle))
    click(driver, toggle)
    wait(driver, "a pause", lambda: audio(driver, "paused"))


def playing(driver, toggle: WebElement) -> bool:
    """The audio plays and the Play/Pause button says Pause."""
    return not audio(driver, "paused") and toggle.accessible_name == "Pause"


def test_a_star_reaches_subsonic_and_favourites(browser, library):
    robin, album = library.songs["Robin"]["id"], library.songs["Robin"]["albumId"]
    assert robin not in starred(library)["song"]
    sign_in(browser, library.base, library.api_key)
    go(browser, "Dawn Chorus")
    star = wait(browser, "the songs", lambda: appears(browser, "button", "Star Robin"))
    assert star.get_attribute("aria-pressed") == "false"
    click(browser, star)
    wait(browser, "the star", lambda: robin in starred(library)["song"])
    assert star.get_attribute("aria-pressed") == "true"
    click(browser, named(browser, "button", "Star album"))
    wait(browser, "the album's star", lambda: album in starred(library)["album"])

    go(browser, "Favourites")
    wait(browser, "the favourites", lambda: play_buttons(browser) == ["Robin"])
    assert names(browser, ".grid a.album-link") == ["Dawn Chorus"]
    clean_screen(browser, "favourites")
    click(browser, named(browser, "button", "Star Robin"))
    wait(browser, "the star gone", lambda: robin not in starred(library)["song"])
    go(browser, "Dawn Chorus")
    click(browser, wait(browser, "the album", lambda: appears(browser, "button", "Star album")))
    wait(browser, "the album's star gone", lambda: album not in starred(library)["album"])
    assert named(browser, "button", "Star Robin").get_attribute("aria-pressed") == "false"
    assert_clean(browser)


# -- lyrics ----------------------------------------------------------------------------------


def marked_line(driver) -> tuple[float, str | None]:
    """The playing song's time and the lyrics' marked line, read at the same moment."""
    return tuple(
        driver.execute_script(
            "const line = document.querySelector('#lyrics-panel li[aria-current=true]');"
            "return [document.getElementById('audio').currentTime, line && line.textContent]"
        )
    )


def sung_at(seconds: float) -> str:
    return [text for start, text in LYRICS if start <= seconds][-1]


def test_synced_lyrics_mark_the_line_being_sung(browser, library, tmp_path):
    sign_in(browser, library.base, library.api_key)
    to_etudes(browser)
    click(
        browser, wait(browser, "the album", lambda: appears(browser, "button", "Play Study in C"))
    )
    lyrics = wait(browser, "Lyrics", lambda: appears(browser, "button", "Lyrics"))
    wait(browser, "playback", lambda: audio(browser, "currentTime") > 0.5)
    click(browser, named(browser, "button", "Pause"))
    click(browser, lyrics)
    assert lyrics.get_attribute("aria-expanded") == "true"
    lines = browser.find_elements(By.CSS_SELECTOR, "#lyrics-panel li")
    assert [line.text for line in lines] == [text for _, text in LYRICS]

    # Paused, moved by the Seek slider's keys: Home, then 5 s a press.
    seek = named(browser, "[role=slider]", "Seek")
    seek.send_keys(Keys.HOME)
    for expected in (0, 5, 10, 15):
        at, line = wait(browser, f"{expected} s", lambda e=expected: _at(browser, e))
        assert line == sung_at(at), (at, line)
        seek.send_keys(Keys.ARROW_RIGHT)
    seek.send_keys(Keys.HOME)
    wait(browser, "the first line again", lambda: marked_line(browser)[1] == "First line")
    clean_screen(browser, "the lyrics")
    screenshot(browser, tmp_path, "web-lyrics.png")

    click(browser, named(browser, "button", "Play"))  # and by itself, as it plays
    wait(browser, "the second line", lambda: marked_line(browser)[1] == "Second line")
    at, line = marked_line(browser)
    assert 4 <= at < 8, (at, line)

    # A song without lyrics has no Lyrics button (and the panel closes).
    click(browser, named(browser, "button", "Next"))
    wait(browser, "Prelude", lambda: now_playing(browser) == "Prelude")
    wait(browser, "no Lyrics", lambda: not lyrics.is_displayed())
    assert not browser.find_element(By.ID, "lyrics-panel").is_displayed()
    assert_clean(browser)


def _at(driver, seconds: float):
    at, line = marked_line(driver)
    return (at, line) if abs(at - seconds) < 0.5 and line is not None else None


# -- search, playlists -----------------------------------------------------------------------


def test_search_finds_artists_albums_and_songs(browser, library):
    sign_in(browser, library.base, library.api_key)
    search = named(browser, "input", "Search")
    search.send_keys("dawn")
    wait(
        browser,
        "the albums found",
        lambda: names(browser, ".found a.album-link") == ["Dawn Chorus"],
    )
    assert heading(browser) == "Songs"
    wait(
        browser,
        "the songs found",
        lambda: sorted(play_buttons(browser, "#clips")) == DAWN_ORDER[:2] + ["Wren"],
    )
    search.clear()
    search.send_keys("pianist", Keys.ENTER)
    wait(browser, "the artist found", lambda: names(browser, ".found-artists a") == ["A. Pianist"])
    wait(
        browser,
        "their songs",
        lambda: sorted(play_buttons(browser, "#clips")) == ["Prelude", "Study in C"],
    )
    clean_screen(browser, "search results")
    assert_clean(browser)


def test_playlists_play_and_the_queue_saves_as_one(browser, library):
    sign_in(browser, library.base, library.api_key)
    go(browser, "Playlists")
    go(browser, "Morning mix")
    wait(browser, "its songs", lambda: play_buttons(browser) == ["Robin", "Study in C"])
    clean_screen(browser, "a playlist")
    click(browser, named(browser, "button", "Play playlist"))
    wait(browser, "Robin", lambda: now_playing(browser) == "Robin")
    click(browser, named(browser, "button", "Pause"))
    go(browser, "Playlists")
    clean_screen(browser, "playlists")
    named(browser, "input", "New playlist from the queue").send_keys("Saved queue")
    click(browser, named(browser, "button", "Save queue"))
    wait(
        browser, "the new playlist", lambda: "Saved queue" in (names(browser, ".playlists a") or [])
    )
    made = [
        p
        for p in subsonic(library, "getPlaylists")["playlists"]["playlist"]
        if p["name"] == "Saved queue"
    ]
    entries = subsonic(library, "getPlaylist", id=made[0]["id"])["playlist"]["entry"]
    assert [e["title"] for e in entries] == ["Robin", "Study in C"]
    subsonic(library, "deletePlaylist", id=made[0]["id"])
    assert_clean(browser)


# -- for an admin ----------------------------------------------------------------------------


def test_an_admin_makes_a_user_whose_key_works_once_shown_and_stops_when_revoked(browser, library):
    sign_in(browser, library.base, library.api_key)
    go(browser, "Users")
    clean_screen(browser, "users")
    named(browser, "input", "Name").send_keys("ann")
    click(browser, named(browser, "button", "Create user"))
    key = wait(browser, "the key, shown once", lambda: text(browser, ".new-key code"))
    me = httpx.get(library.base + "/me", headers={"X-API-Key": key}, timeout=10)
    assert me.json()["name"] == "ann" and me.json()["role"] == "listener"
    [key_id] = [k["id"] for k in library.get("/users/ann/keys").json()]
    click(
        browser,
        wait(browser, "the key", lambda: appears(browser, "button", f"Revoke key {key_id}")),
    )
    wait(
        browser,
        "the key revoked",
        lambda: httpx.get(library.base + "/me", headers={"X-API-Key": key}).status_code == 401,
    )

    click(browser, wait(browser, "a key", lambda: appears(browser, "button", "New key for ann")))
    listener_key = wait(
        browser, "another key", lambda: (shown := text(browser, ".new-key code")) != key and shown
    )
    # A user deleted (after a confirmation) is gone, keys and all.
    named(browser, "input", "Name").send_keys("bob")
    click(browser, named(browser, "button", "Create user"))
    delete = wait(browser, "bob", lambda: appears(browser, "button", "Delete bob"))
    click(browser, delete)
    browser.switch_to.alert.accept()
    wait(browser, "bob gone", lambda: library.get("/users/bob").status_code == 404)
    wait(browser, "bob's row gone", lambda: not appears(browser, "button", "Delete bob"))

    go(browser, "Library")
    folders = wait(
        browser, "the folders", lambda: browser.find_elements(By.CSS_SELECTOR, ".folders li")
    )
    assert [li.text for li in folders] == ["Uploads", "music"]
    clean_screen(browser, "library")
    click(browser, named(browser, "button", "Scan now"))
    wait(
        browser, "the scan", lambda: "Started a scan" in browser.find_element(By.ID, "status").text
    )
    wait(browser, "the scan's end", lambda: scanned(library, FILES))

    # The listener: no Users, no Library.
    click(browser, named(browser, "button", "Forget key"))
    sign_in(browser, library.base, listener_key)
    who = browser.find_element(By.ID, "who")
    wait(browser, "who is signed in", lambda: who.text == "Signed in as ann")
    visible = [
        a.accessible_name
        for a in browser.find_elements(By.CSS_SELECTOR, "nav a")
        if a.is_displayed()
    ]
    assert visible == ["Albums", "Artists", "Songs", "Playlists", "Favourites"]
    httpx.delete(
        library.base + "/users/ann", headers=library.headers, timeout=10
    ).raise_for_status()
    assert_clean(browser)


# -- keys and settings -----------------------------------------------------------------------


def track_gain(figures: dict | None) -> float:
    """What the volume is multiplied by for a song's OpenSubsonic ``replayGain`` in track
    mode: 1 without figures; never above 1 (an <audio> cannot amplify), nor above 1/peak."""
    figures = figures or {}
    gain = next(
        (figures[k] for k in ("trackGain", "albumGain", "fallbackGain") if k in figures), None
    )
    if gain is None:
        return 1.0
    factor = 10 ** (gain / 20)
    peak = figures.get("trackPeak", figures.get("albumPeak"))
    return min(1.0, factor, 1 / peak if peak else factor)


def press(driver, key: str) -> None:
    """A key pressed with nothing focused: the page itself gets it."""
    ActionChains(driver).send_keys(key).perform()


GAIN = """
const done = arguments[arguments.length - 1];
import("/web/gain.js").then((m) => done([
  m.gainFactor({replayGain: {trackGain: -6.02}}),
  m.gainFactor({replayGain: {trackGain: -6.02, albumGain: -12.04}}, "album"),
  m.gainFactor({replay_gain: {track_gain_db: -1, track_peak: 1.2}}),
  m.gainFactor({replayGain: {trackGain: -6.02}}, "off"),
  m.gainFactor({title: "no figures"}),
]));
"""


def test_keyboard_shortcuts_are_listed_and_work_and_replaygain_is_a_setting(browser, library):
    sign_in(browser, library.base, library.api_key)
    to_etudes(browser)
    click(browser, wait(browser, "the album", lambda: appears(browser, "button", "Play album")))
    wait(browser, "playback", lambda: audio(browser, "currentTime") > 0.3)
    # ReplayGain, on by default: the song's track gain on the volume, when Mosic has one.
    figures = subsonic(library, "getSong", id=library.songs["Study in C"]["id"])["song"]
    assert figures["replayGain"]["trackGain"] == pytest.approx(-6.02)
    assert audio(browser, "volume") == pytest.approx(0.5, abs=0.01)
    assert track_gain(figures["replayGain"]) == pytest.approx(0.5, abs=0.01)
    browser.execute_script("document.activeElement.blur()")
    press(browser, " ")
    wait(browser, "space to pause", lambda: audio(browser, "paused"))
    press(browser, Keys.ARROW_RIGHT)
    assert audio(browser, "currentTime") >= 5
    press(browser, Keys.ARROW_DOWN)
    assert audio(browser, "volume") == pytest.approx(0.95 * 0.5, abs=0.001)  # times the gain
    press(browser, "n")
    wait(browser, "n for next", lambda: now_playing(browser) == "Prelude")
    press(browser, "p")
    wait(browser, "p for previous", lambda: now_playing(browser) == "Study in C")

    press(browser, "?")
    dialog = browser.find_element(By.ID, "shortcuts")
    wait(browser, "the list of shortcuts", dialog.is_displayed)
    listed = [dt.text for dt in dialog.find_elements(By.TAG_NAME, "dt")]
    assert listed[:5] == ["Space", "← →", "↑ ↓", "N", "P"]
    clean_screen(browser, "the shortcuts")
    click(browser, named(browser, "#shortcuts button", "Close"))
    click(browser, named(browser, "button", "Keyboard shortcuts"))
    wait(browser, "the list again", dialog.is_displayed)
    dialog.send_keys(Keys.ESCAPE)
    wait(browser, "the list closed", lambda: not dialog.is_displayed())

    click(browser, named(browser, "button", "Settings"))
    mode = named(browser, "select", "ReplayGain")
    assert mode.get_attribute("value") == "track"  # on by default
    clean_screen(browser, "the settings")
    mode.send_keys("Off")
    assert browser.execute_script("return localStorage.getItem('mosic.replayGain')") == "off"
    click(browser, named(browser, "#settings button", "Close"))

    factors = browser.execute_async_script(GAIN)
    # -6 dB halves, album gain in album mode, the peak's limit (1 / 1.2), off, no figures.
    assert factors == pytest.approx([0.5, 0.25, 1 / 1.2, 1, 1], abs=0.01)
    assert_clean(browser)


# -- a phone ---------------------------------------------------------------------------------


def fits(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= innerWidth")


def test_the_app_fits_a_phone_screen(tmp_path, library):
    with chromium(tmp_path / "phone-profile", PHONE) as phone:
        sign_in(phone, library.base, library.api_key)
        wait(phone, "the grid", lambda: phone.find_elements(By.CSS_SELECTOR, ".grid img"))
        assert fits(phone)
        clean_screen(phone, "albums on a phone")
        to_etudes(phone)
        click(phone, wait(phone, "the album", lambda: appears(phone, "button", "Play album")))
        wait(phone, "playback", lambda: audio(phone, "currentTime") > 0.5)
        click(phone, named(phone, "button", "Pause"))
        assert fits(phone)
        width = phone.execute_script("return innerWidth")
        assert width <= PHONE[0]
        clean_screen(phone, "an album on a phone")
        screenshot(phone, tmp_path, "web-phone.png")
        assert_clean(phone)
