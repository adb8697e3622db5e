"""The web app at ``/``: its headers and its size without a browser, then a person's visit in
Debian's headless Chromium (driven by selenium through Debian's chromedriver) against a real
``mosic serve`` on SQLite and on PostgreSQL: sign in, open Songs, list, search, page, upload
through the file input, play, seek by clicking the seek bar and by keyboard, and exactly one
play counted, with no console error and no Content-Security-Policy violation on the way; a
file dropped on the page, drawn as a waveform on the seek bar; a refused key asked for again,
and an expired link renewed. The library's screens and the player: tests/test_web_app.py."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import falcon.testing
import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

from mosic.app import create_app
from mosic.settings import Settings
from tests.conftest import LOCAL_BACKENDS, new_postgres_db
from tests.support.audio import make_clip, make_wav_of_size
from tests.support.browser import (
    accessibility_problems,
    appears,
    assert_clean,
    chromium,
    click,
    console,
    database_env,
    named,
    names,
    wait,
)
from tests.support.server import mosic_serve

PAGE_SIZE = 20  # clips.js
UPLOAD_BYTES = 12_000_000
# Set to a path to keep the screenshot (docs/web-songs.png in the repository is one).
SCREENSHOT_ENV = "MOSIC_WEB_SCREENSHOT"
STATIC = Path(__file__).resolve().parents[1] / "mosic" / "web" / "static"
# What the library's page loads: its style sheets and every module of its script (preloaded
# together rather than found one import after another); admin.js when an admin opens Users.
APP_FILES = (
    "icon.svg", "player.css", "app.css", "app.js", "api.js", "browse.js",
    "clips.js", "dom.js", "gain.js", "lyrics.js", "mine.js", "player.js", "queue.js",
    "seekbar.js", "session.js", "songs.js", "upload.js",
)  # fmt: skip
# The budget for the page's JavaScript and CSS, uncompressed.
SCRIPT_AND_STYLE_MAX = 100 * 1024


# -- without a browser: the headers ----------------------------------------------------------


class Page(HTMLParser):
    """What a page loads and anything inline that a strict CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inline += [f"{tag} {name}" for name in attrs if name == "style" or name[:2] == "on"]
        if tag == "style":
            self.inline.append("style element")
        if tag == "script" and "src" not in attrs:
            self.inline.append("script element")
        for name in ("src", "href"):
            if tag in ("script", "link", "img") and attrs.get(name):
                self.loads.append(attrs[name])


@pytest.fixture
def client(tmp_path) -> falcon.testing.TestClient:
    settings = Settings(data_dir=tmp_path / "data", api_key="k", signing_secret="s")
    return falcon.testing.TestClient(create_app(settings))


def csp(headers) -> dict[str, str]:
    policy = headers["Content-Security-Policy"]
    return {d.split()[0]: d.split(" ", 1)[1] for d in (p.strip() for p in policy.split(";")) if d}


def test_the_page_and_its_files_carry_a_strict_policy_and_validators(client):
    page = client.simulate_get("/")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    html = Page()
    html.feed(page.text)
    assert html.inline == [], "inline script or style would need 'unsafe-inline'"
    assert sorted(set(html.loads)) == sorted(f"/web/{name}" for name in APP_FILES)

    expected = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for path in ["/", *sorted(set(html.loads))]:
        result = client.simulate_get(path)
        assert result.status_code == 200, path
        if path != "/":
            assert result.headers["Content-Type"].startswith(expected[Path(path).suffix])
        policy = csp(result.headers)
        assert policy["default-src"] == "'none'"
        for directive in ("script-src", "style-src", "media-src", "connect-src", "img-src"):
            assert policy[directive] == "'self'", directive  # no 'unsafe-inline', no other host
        assert policy["frame-ancestors"] == policy["base-uri"] == "'none'"
        assert result.headers["X-Content-Type-Options"] == "nosniff"
        assert result.headers["Cache-Control"] == "no-cache"
        etag = result.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
        again = client.simulate_get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["ETag"] == etag
        other = client.simulate_get(path, headers={"If-None-Match": '"other"'})
        assert other.status_code == 200 and other.content == result.content


IMPORT = r'^(?:import|export)\b[^;]*?from "\./([\w-]+\.js)";'
PLAYER_MODULES = {"dom.js", "gain.js", "lyrics.js", "queue.js", "seekbar.js", "session.js"}


def imports(module: str) -> set[str]:
    """The modules ``module`` imports, and theirs, and so on (static imports)."""
    found, todo = set(), [module]
    while todo:
        text = (STATIC / todo.pop()).read_text(encoding="utf-8")
        for name in re.findall(IMPORT, text, re.M | re.S):
            if name not in found:
                found.add(name)
                todo.append(name)
    return found


def test_the_page_preloads_every_module_and_stays_under_its_size_budget(client):
    html = Page()
    html.feed(client.simulate_get("/").text)
    scripts = {Path(url).name for url in html.loads if url.endswith(".js")}
    # Every module the script imports is asked for at once: no round trip per import level.
    assert scripts == {"app.js"} | imports("app.js")
    # The player stands alone (a share page loads it without the library's screens).
    assert imports("player.js") == PLAYER_MODULES
    assert 'import("./admin.js")' in (STATIC / "app.js").read_text(encoding="utf-8")
    # The budget holds for everything the app may load, the admin's screens too.
    styled = [url for url in html.loads if url.endswith((".js", ".css"))] + ["/web/admin.js"]
    size = sum(len(client.simulate_get(url).content) for url in set(styled))
    assert 20 * 1024 < size < SCRIPT_AND_STYLE_MAX, size


def test_an_unknown_player_file_is_a_json_404(client):
    for path in ("/web/nope.js", "/web/..%2Fpages.py", "/web/index.htm"):
        result = client.simulate_get(path)
        assert result.status_code == 404, path
        assert result.json["title"] == "Not found"


# -- in a browser ----------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path) -> Iterator[webdriver.Chrome]:
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture(params=LOCAL_BACKENDS)
def database(request) -> Iterator[dict[str, str]]:
    """``mosic serve``'s database settings: SQLite in its data dir, or a fresh PostgreSQL."""
    with new_postgres_db(request) as postgres:
        yield database_env(postgres)


def play_buttons(driver) -> list[str] | None:
    """The titles on the list's Play buttons, as a screen reader reads them (None mid-render).
    Each row also has "Add TITLE to queue" and "Star TITLE"."""
    found = names(driver, "#clips button")
    if found is None:
        return None
    return [n.removeprefix("Play ") for n in found if n.startswith("Play ")]


def audio_time(driver) -> float:
    """Where the playing song is (the player has a second <audio>, "audio-next", that loads
    the next song of the queue before its turn)."""
    return driver.execute_script("return document.getElementById('audio').currentTime")


def stream_requests(server, status: str = "20[06]") -> int:
    """Stream GETs answered with ``status`` (a pattern; by default, those sending bytes), as
    Mosic counted them when each response started."""
    pattern = r'mosic_total_api_requests_total\{method="GET",route="/play/\{clip_id\}/stream",'
    found = re.findall(pattern + f'status="{status}"' + r"\} (\S+)", server.metrics())
    return int(sum(float(value) for value in found))


def seed(server, tmp_path) -> None:
    songs = [
        ("Morning Birds", "Field Recordings", "Dawn", 6.0, 440),
        ("Harbour at Night", "Field Recordings", "Dusk", 8.0, 330),
        ("Slow Piano Study", "A. Pianist", "Études", 5.0, 523),
    ]
    for title, artist, album, seconds, freq in songs:
        path = make_clip(
            tmp_path / f"{freq}.mp3", "mp3", seconds=seconds, freq=freq,
            title=title, artist=artist, album=album,
        )  # fmt: skip
        server.upload(path, "audio/mpeg")
    external = {"title": "Radio Elsewhere", "duration": 60, "audio_url": "https://x.test/a.mp3"}
    response = httpx.post(server.base + "/play", json=external, headers=server.headers)
    assert response.status_code == 201, response.text


def sign_in(driver, server) -> None:
    driver.get(server.base + "/")
    key = wait(driver, "the key prompt", lambda: named(driver, "input", "API key"))
    assert key.get_attribute("type") == "password"
    assert key == driver.switch_to.active_element  # focused: type at once
    assert accessibility_problems(driver) == []
    key.send_keys(server.api_key, Keys.ENTER)


def to_songs(driver) -> None:
    """Open Songs: the app opens on the album grid; the clips' list is under Songs."""
    click(driver, wait(driver, "the navigation", lambda: appears(driver, "nav a", "Songs")))
    wait(driver, "Songs", lambda: driver.find_elements(By.ID, "summary"))


def test_a_visit_lists_searches_uploads_plays_seeks_and_counts_once(browser, database, tmp_path):
    with mosic_serve(tmp_path / "data", **database) as server:
        seed(server, tmp_path)
        sign_in(browser, server)
        who = browser.find_element(By.ID, "who")  # whose key this screen uses
        wait(browser, "who is signed in", lambda: who.text == "Signed in as mosic (admin)")
        search = named(browser, "input", "Search")
        assert search.get_attribute("type") == "search"
        assert search == browser.switch_to.active_element  # the focus moved on from the key
        to_songs(browser)
        wait(browser, "the list", lambda: len(play_buttons(browser) or ()) == 4)
        assert play_buttons(browser) == [
            "Radio Elsewhere", "Slow Piano Study", "Harbour at Night", "Morning Birds",
        ]  # fmt: skip
        assert browser.find_element(By.ID, "summary").text == "1–4 of 4 clips"
        # Not playable here (the policy allows media from Mosic only), and says so.
        assert not named(browser, "button", "Play Radio Elsewhere").is_enabled()
        assert "Hosted elsewhere" in browser.find_element(By.CSS_SELECTOR, "#clips li").text

        search.send_keys("field")
        wait(browser, "the search", lambda: len(play_buttons(browser) or ()) == 2)
        assert play_buttons(browser) == ["Harbour at Night", "Morning Birds"]
        search.clear()
        search.send_keys(Keys.ENTER)
        wait(browser, "the whole list", lambda: len(play_buttons(browser) or ()) == 4)

        # Long enough (12 MB, 2 min 16 s) that Chromium has not fetched the middle by the
        # time it seeks there, so the seek is a Range request from the middle.
        uploaded = make_wav_of_size(tmp_path / "River Long Take.wav", UPLOAD_BYTES)
        upload = named(browser, "input", "Upload")
        assert upload.get_attribute("type") == "file"
        upload.send_keys(str(uploaded))
        wait(browser, "the upload", lambda: "River Long Take" in (play_buttons(browser) or ()))
        assert browser.find_element(By.ID, "status").text == "Uploaded River Long Take."
        [clip] = [c for c in server.get("/play").json() if c["title"] == "River Long Take"]
        assert clip["size"] == uploaded.stat().st_size
        plays = browser.find_element(By.CSS_SELECTOR, f'[data-plays-for="{clip["id"]}"]')
        assert plays.text == "0 plays"

        listen_and_seek(browser, server, clip, plays)
        assert accessibility_problems(browser) == []  # the list, the player and its seek bar
        keep_screenshot(browser, tmp_path)
        page_through(browser, server)
        browser.refresh()  # the key is remembered: straight back to Songs
        wait(browser, "the list again", lambda: len(play_buttons(browser) or ()) == PAGE_SIZE)
        assert not browser.find_element(By.ID, "sign-in").is_displayed()

        assert_clean(browser)


def listen_and_seek(browser, server, clip: dict, plays: WebElement) -> None:
    click(browser, named(browser, "button", f"Play {clip['title']}"))
    wait(browser, "playback", lambda: audio_time(browser) > 1.0)
    wait(browser, "the count", lambda: plays.text == "1 play")
    seek = named(browser, "[role=slider]", "Seek")
    duration = clip["duration"]
    assert seek.get_attribute("aria-valuemax") == str(round(duration))
    assert audio_time(browser) < duration / 4

    # A click at the middle of the bar (selenium's offsets are from the centre).
    ActionChains(browser).move_to_element_with_offset(seek, 0, 0).click().perform()
    landed = audio_time(browser)
    assert abs(landed - duration / 2) < duration * 0.02, (landed, duration)
    wait(browser, "playback after the seek", lambda: audio_time(browser) > landed + 1.0)
    assert abs(float(seek.get_attribute("aria-valuenow")) - audio_time(browser)) <= 1.5

    # The keyboard: the slider takes the focus, and each arrow moves 5 s (playback goes on
    # meanwhile, hence the slack; a step of other than 5 s would still fall outside).
    before_keys = audio_time(browser)
    seek.send_keys(Keys.ARROW_LEFT)
    after_left = audio_time(browser)
    assert before_keys - 5 <= after_left <= before_keys - 5 + 2, (before_keys, after_left)
    seek.send_keys(Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    after_right = audio_time(browser)
    assert after_left + 10 <= after_right <= after_left + 10 + 2, (after_left, after_right)
    wait(browser, "playback after the keys", lambda: audio_time(browser) > after_right + 1)

    stats = server.get(f"/play/{clip['id']}/stats").json()
    assert stats["play_count"] == 1, "the seeks must not count"
    assert plays.text == "1 play"
    served = stream_requests(server)
    assert served >= 2, f"{served} stream request(s): the seek was not a new Range request"
    assert re.search(r"^mosic_plays_total 1\.0$", server.metrics(), re.M), "one play in all"


def keep_screenshot(browser, tmp_path) -> None:
    shot = tmp_path / "web-player.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get(SCREENSHOT_ENV):
        shutil.copyfile(shot, os.environ[SCREENSHOT_ENV])


def page_through(browser, server) -> None:
    for n in range(PAGE_SIZE):
        clip = {"title": f"Station {n:02}", "duration": 30, "audio_url": f"https://x.test/{n}"}
        response = httpx.post(server.base + "/play", json=clip, headers=server.headers)
        assert response.status_code == 201, response.text
    total = PAGE_SIZE + 5
    named(browser, "input", "Search").send_keys(Keys.ENTER)
    summary = browser.find_element(By.ID, "summary")
    wait(browser, "a full page", lambda: summary.text == f"1–{PAGE_SIZE} of {total} clips")
    first_page = play_buttons(browser)
    click(browser, named(browser, "button", "Next page"))
    wait(browser, "the next page", lambda: summary.text == f"21–{total} of {total} clips")
    assert len(play_buttons(browser)) == 5
    assert not set(play_buttons(browser)) & set(first_page)
    assert not named(browser, "button", "Next page").is_enabled()
    click(browser, named(browser, "button", "Previous page"))
    wait(browser, "the first page again", lambda: play_buttons(browser) == first_page)


# -- the seek bar drawn from peaks, and a file dropped on the page ---------------------------

DROP = """
const [b64, name] = arguments;
const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
const files = new DataTransfer();
files.items.add(new File([bytes], name, {type: "audio/wav"}));
for (const type of ["dragenter", "dragover", "drop"]) {
  document.body.dispatchEvent(
    new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: files}));
}
"""
COLUMN_HEIGHTS = """
const canvas = document.getElementById("wave");
const {width, height} = canvas;
const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
const heights = [];
for (let x = 0; x < width; x++) {
  let n = 0;
  for (let y = 0; y < height; y++) if (pixels[4 * (y * width + x) + 3] > 0) n++;
  heights.push(n);
}
return [height, heights];
"""


def silent_then_loud(path: Path, seconds: float) -> Path:
    """A WAV tone that is silent for its first half and at full scale in its second (ffmpeg's
    sine source is at 1/8 of full scale), 16-bit mono at 22.05 kHz."""
    half = seconds / 2
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", f"sine=frequency=440:duration={seconds},volume='if(lt(t,{half}),0,8)':eval=frame",
            "-ac", "1", "-ar", "22050", "-c:a", "pcm_s16le", str(path),
        ],
        check=True,
    )  # fmt: skip
    return path


# The server's last point holds the clip's last few samples (ceil(samples / points) a point),
# less than one period of the tone, so the last column or two may be drawn lower.
TAIL_COLUMNS = 3


def drawn_peaks(browser) -> tuple[int, list[int]] | None:
    """The seek bar's height and the height drawn in each column, once the peaks are drawn
    (the plain track shown until they arrive is an eighth of the bar high)."""
    height, columns = browser.execute_script(COLUMN_HEIGHTS)
    return (height, columns) if max(columns[-TAIL_COLUMNS:]) > height / 2 else None


def test_a_dropped_file_uploads_and_its_seek_bar_shows_its_waveform(browser, database, tmp_path):
    song = silent_then_loud(tmp_path / "half-silent.wav", 10.0)
    with mosic_serve(tmp_path / "data", **database) as server:
        sign_in(browser, server)
        to_songs(browser)
        summary = browser.find_element(By.ID, "summary")
        wait(browser, "the empty list", lambda: summary.text == "No clips.")
        browser.execute_script(DROP, base64.b64encode(song.read_bytes()).decode(), song.name)
        wait(browser, "the upload", lambda: play_buttons(browser) == ["half-silent"])
        bar = browser.find_element(By.CSS_SELECTOR, "progress[aria-label='Upload progress']")
        assert bar.get_property("value") == 100 and not bar.is_displayed()  # done, put away
        [clip] = server.get("/play").json()
        assert clip["size"] == song.stat().st_size

        click(browser, named(browser, "button", "Play half-silent"))
        wait(browser, "playback", lambda: audio_time(browser) > 0.2)
        height, columns = wait(browser, "the waveform", lambda: drawn_peaks(browser))
        quiet = columns[: len(columns) * 2 // 5]
        loud = columns[len(columns) * 3 // 5 : -TAIL_COLUMNS]
        assert max(quiet) <= 2, "the silent half draws as a line"
        assert min(loud) >= height * 0.8, "the loud half fills the bar"
        assert_clean(browser)


# -- refusals the page recovers from ---------------------------------------------------------


def expires(clip: dict) -> int:
    return int(re.search(r"[?&]expires=(\d+)", clip["stream_url"]).group(1))


def test_a_refused_key_asks_again_and_an_expired_link_is_renewed(browser, database, tmp_path):
    song = make_clip(tmp_path / "a.mp3", "mp3", seconds=3.0, title="Short Song")
    # Links live 2 s: the one in the list has expired by the time Play is pressed.
    with mosic_serve(tmp_path / "data", MOSIC_SIGNED_URL_TTL="2", **database) as server:
        clip = server.upload(song, "audio/mpeg")
        browser.get(server.base + "/")
        key = wait(browser, "the key prompt", lambda: named(browser, "input", "API key"))
        key.send_keys("not-the-key", Keys.ENTER)
        error = browser.find_element(By.ID, "key-error")
        wait(browser, "the refusal", lambda: error.text == "Mosic did not accept that key.")
        assert named(browser, "input", "API key") == browser.switch_to.active_element
        assert browser.execute_script("return localStorage.length") == 0  # not remembered
        assert [e["message"] for e in console(browser)] == [
            f"{server.base}/me - Failed to load resource: "
            "the server responded with a status of 401 (Unauthorized)"
        ]

        named(browser, "input", "API key").send_keys(server.api_key, Keys.ENTER)
        heading = wait(browser, "the app", lambda: browser.find_elements(By.ID, "view-heading"))
        assert heading[0].text == "Albums"  # where the app opens
        to_songs(browser)
        wait(browser, "the list", lambda: play_buttons(browser) == ["Short Song"])
        listed_until = expires(server.get("/play").json()[0])
        wait(browser, "the listed link to expire", lambda: time.time() > listed_until + 1, 10)
        # By keyboard: the button takes the focus and Enter presses it.
        named(browser, "button", "Play Short Song").send_keys(Keys.ENTER)
        wait(browser, "playback on a renewed link", lambda: audio_time(browser) > 0.5)
        plays = browser.find_element(By.CSS_SELECTOR, f'[data-plays-for="{clip["id"]}"]')
        wait(browser, "the count", lambda: plays.text == "1 play")
        assert server.get(f"/play/{clip['id']}/stats").json()["play_count"] == 1
        assert stream_requests(server, "403") >= 1, "the expired link was not tried"
        refused = [e["message"] for e in console(browser)]
        # The browser reports the refused stream; nothing else went wrong.
        assert len(refused) == 1 and "403 (Forbidden)" in refused[0], refused
        assert browser.execute_script("return window.__violations") == []
        assert browser.execute_script("return window.__errors") == []
