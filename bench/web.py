"""The web app's first screen at scale (issue 22): with 100k tracks indexed, how soon after
navigation the album grid is drawn, read from Chromium's own performance timeline, and how
many bytes of JavaScript and CSS the page loads.

For each database (SQLite, a throwaway PostgreSQL): a fresh data directory and database,
``mosic migrate``, the clip rows of bench/scale_rows.py (100k: 10,000 albums of 10 tracks,
2,500 artists), a cover for every album (16 gradient JPEGs of 600x600 put in the media store,
one per album chosen by its clips' hashes), ``mosic reindex``, then ``mosic serve`` (one
worker) and Debian's headless Chromium at 1280x860. One visit to warm up (it also makes the
covers' 384-pixel copies, once per picture); then ``--visits`` visits of ``/#/albums`` with
the browser's HTTP cache disabled (a first visit: every file, call and cover fetched) and as
many with it (a return visit: the files revalidated, 304). For each visit, in milliseconds
from the start of the navigation:

- names: when the last album name of the first screen was painted (Element Timing: the first
  page's names carry ``elementtiming``, and only the tiles on screen are painted);
- covers: when the last cover of the first screen was painted (Element Timing);
- LCP and FCP: Chromium's largest and first contentful paints;
- mark: the app's own ``mosic:albums-drawn`` mark (first page in the DOM, next frame);
- call: the getAlbumList2 request (60 albums) from its start to its last byte.

The target: the first screen (names and covers) drawn within 1,000 ms, and the page's
JavaScript and CSS under 100 KiB uncompressed. Everything started is stopped and removed at the
end, also on Ctrl-C or SIGTERM.

Run: ``python -m bench.web`` (``--size 100k``, ``--db sqlite|postgresql|both``,
``--visits 10``, ``--out PATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import API_KEY, REPO_ROOT, log, mosic_server, temp_dir
from bench.run_all import machine
from bench.scale import (
    COMMAND_TIMEOUT_S,
    SQLITE_FILE,
    commit,
    fresh_database,
    has_reindex,
    mosic_command,
    parse_size,
    size_label,
)
from bench.scale_rows import insert_postgresql, insert_sqlite
from tests.support.browser import DESKTOP, chromium

TARGET_MS = 1000
BYTES_MAX = 100 * 1024
COVERS = 16  # distinct pictures; each album gets one, by the first hex digit of a clip's hash
COVER_SIDE = 600
VISIT_TIMEOUT_S = 30
SETTLE_MS = 500  # after the last cover is complete, for its paint to reach the timeline
ALBUM_PAGE = 60  # browse.js
STATIC = REPO_ROOT / "mosic" / "web" / "static"

# The first screen is there: the app's mark is set and every cover on screen is complete.
READY = """
if (!performance.getEntriesByName("mosic:albums-drawn").length) return false;
const shown = [...document.querySelectorAll(".grid img")].filter((i) => {
  const box = i.getBoundingClientRect();
  return box.top < innerHeight && box.bottom > 0;
});
return shown.every((i) => i.getAttribute("src") && i.complete);
"""
COLLECT = """
const done = arguments[arguments.length - 1];
const seen = {element: [], lcp: []};
new PerformanceObserver((l) => seen.element.push(...l.getEntries()))
  .observe({type: "element", buffered: true});
new PerformanceObserver((l) => seen.lcp.push(...l.getEntries()))
  .observe({type: "largest-contentful-paint", buffered: true});
setTimeout(() => {
  const painted = (id) => seen.element.filter((e) => e.identifier === id)
    .map((e) => e.renderTime || e.loadTime);
  const resources = performance.getEntriesByType("resource");
  const path = (r) => new URL(r.name).pathname;
  const calls = resources.filter((r) => path(r) === "/rest/getAlbumList2");
  const styled = resources.filter((r) => /\\.(js|css)$/.test(path(r)));
  const fcp = performance.getEntriesByName("first-contentful-paint")[0];
  done({
    names: painted("album-name"),
    covers: painted("album-cover"),
    lcp: seen.lcp.length ? seen.lcp[seen.lcp.length - 1].startTime : null,
    fcp: fcp ? fcp.startTime : null,
    mark: performance.getEntriesByName("mosic:albums-drawn")[0].startTime,
    call: calls.length ? calls[0].responseEnd - calls[0].startTime : null,
    tiles: document.querySelectorAll(".grid li").length,
    styled_files: styled.length,
    styled_bytes: styled.reduce((sum, r) => sum + r.decodedBodySize, 0),
  });
}, arguments[0]);
"""


# -- the library ----------------------------------------------------------------------------
def cover_jpegs(folder: Path) -> list[bytes]:
    """``COVERS`` real JPEGs of soft gradients (ffmpeg), ``COVER_SIDE`` pixels a side."""
    pictures = []
    for seed in range(COVERS):
        out = folder / f"cover-{seed}.jpg"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
             "-i", f"gradients=s={COVER_SIDE}x{COVER_SIDE}:seed={seed}", "-frames:v", "1",
             str(out)],
            check=True,
        )  # fmt: skip
        pictures.append(out.read_bytes())
    return pictures


def give_covers(data: Path, url: str | None, scratch: Path) -> None:
    """Store the pictures as the media store keeps covers (``<sha256>.jpg`` under its first
    two characters) and name one on every clip, by the first hex digit of the clip's hash;
    ``mosic reindex`` then gives each album its first clip's."""
    statements = []
    for digit, picture in zip("0123456789abcdef", cover_jpegs(scratch), strict=True):
        name = hashlib.sha256(picture).hexdigest() + ".jpg"
        path = data / "media" / name[:2] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(picture)
        statements.append((name, digit))
    sql = (
        "UPDATE clip SET cover_name = {p}, cover_type = 'image/jpeg' "
        "WHERE substr(sha256, 1, 1) = {p}"
    )
    if url is None:
        with sqlite3.connect(data / SQLITE_FILE) as conn:
            conn.executemany(sql.format(p="?"), statements)
        return
    import psycopg

    with psycopg.connect(url) as conn:
        conn.cursor().executemany(sql.format(p="%s"), statements)


# -- the visits -----------------------------------------------------------------------------
def visit(driver, base: str) -> dict:
    driver.get("about:blank")
    driver.get(base + "/#/albums")
    deadline = time.monotonic() + VISIT_TIMEOUT_S
    while not driver.execute_script(READY):
        if time.monotonic() > deadline:
            raise RuntimeError("the album grid's first screen did not appear")
        time.sleep(0.05)
    got = driver.execute_async_script(COLLECT, SETTLE_MS)
    return {
        "names_ms": max(got["names"], default=None),
        "covers_ms": max(got["covers"], default=None),
        "on_screen": len(got["names"]),
        **{f"{k}_ms": got[k] for k in ("lcp", "fcp", "mark", "call")},
        **{k: got[k] for k in ("tiles", "styled_files", "styled_bytes")},
    }


# Scroll to the grid's end and time until the next page of tiles is in it (page on page).
SCROLL = """
const done = arguments[arguments.length - 1];
const grid = document.querySelector(".grid");
const before = grid.children.length;
const began = performance.now();
scrollTo(0, document.documentElement.scrollHeight);
const check = () => {
  const took = performance.now() - began;
  if (grid.children.length > before || took > arguments[0]) done([grid.children.length, took]);
  else setTimeout(check, 5);
};
check();
"""
SCROLLS = 5


def scrolled(driver) -> dict:
    """Pages fetched as the grid's end comes near: tiles after each scroll, ms each took."""
    steps = [driver.execute_async_script(SCROLL, VISIT_TIMEOUT_S * 1000) for _ in range(SCROLLS)]
    return {"tiles": [n for n, _ in steps], "ms": [round(ms) for _, ms in steps]}


def visits(base: str, profile: Path, count: int) -> tuple[dict, dict]:
    with chromium(profile, DESKTOP) as driver:
        driver.get(base + "/")
        driver.execute_script("localStorage.setItem('mosic.apiKey', arguments[0])", API_KEY)
        driver.execute_cdp_cmd("Network.enable", {})
        first = visit(driver, base)  # warm-up: also makes the covers' smaller copies
        if first["tiles"] != ALBUM_PAGE or first["covers_ms"] is None:
            raise RuntimeError(f"unexpected first screen: {first}")
        out = {}
        for name, disabled in (("first visit", True), ("return visit", False)):
            driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": disabled})
            out[name] = [visit(driver, base) for _ in range(count)]
        paged = scrolled(driver)
        if paged["tiles"][-1] < (SCROLLS + 1) * ALBUM_PAGE:
            raise RuntimeError(f"the grid did not page on: {paged}")
        return out, paged


def run_database(db: str, size: int, root: Path, count: int, reindex: bool) -> dict:
    label = size_label(size)
    data = root / f"{db}-{label}"
    data.mkdir()
    out: dict = {"size": size}
    with contextlib.ExitStack() as stack:
        url = None
        if db == "postgresql":
            from bench.common import postgres_url

            cluster = stack.enter_context(postgres_url())
            url = stack.enter_context(fresh_database(cluster, f"mosic_web_{label.lower()}"))
        mosic_command(["migrate"], data, url, COMMAND_TIMEOUT_S)
        if url:
            out["insert_seconds"] = insert_postgresql(url, size)
        else:
            out["insert_seconds"] = insert_sqlite(data / SQLITE_FILE, size)
        give_covers(data, url, root)
        if reindex:
            out["reindex_seconds"] = mosic_command(["reindex"], data, url, COMMAND_TIMEOUT_S)
        log(f"{db} {label}: {size:,} clips with covers, indexed")
        server = stack.enter_context(mosic_server(data, database_url=url))
        out["visits"], out["scrolled"] = visits(server.base, root / f"chromium-{db}", count)
    return out


# -- the report -----------------------------------------------------------------------------
def spread(values: list[float | None]) -> str:
    known = sorted(v for v in values if v is not None)
    if not known:
        return "—"
    p95 = known[min(len(known) - 1, round(0.95 * (len(known) - 1)))]
    return f"{statistics.median(known):,.0f} / {p95:,.0f} / {known[-1]:,.0f}"


def table(db: str, result: dict) -> str:
    reindexed = result.get("reindex_seconds") or 0
    lines = [
        f"**{db}**, {result['size']:,} clips (insert {result['insert_seconds']:.1f} s, "
        f"reindex {reindexed:.1f} s); ms after navigation, p50 / p95 / max:",
        "",
        "| visit | names drawn | covers drawn | LCP | FCP | app mark | getAlbumList2 | on screen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in result["visits"].items():
        cells = [
            spread([r[f"{k}_ms"] for r in runs])
            for k in ("names", "covers", "lcp", "fcp", "mark", "call")
        ]
        lines.append(
            f"| {name} ({len(runs)}) | " + " | ".join(cells) + f" | {runs[0]['on_screen']} tiles |"
        )
    worst = max(
        max(r["names_ms"], r["covers_ms"]) for runs in result["visits"].values() for r in runs
    )
    verdict = "met" if worst <= TARGET_MS else "MISSED"
    lines.append(
        f"\nFirst screen (names and covers) within {TARGET_MS:,} ms on every visit: {verdict} "
        f"(slowest {worst:,.0f} ms). Scrolled to the grid's end {SCROLLS} times: "
        f"{result['scrolled']['tiles']} tiles, each next page in {result['scrolled']['ms']} ms."
    )
    return "\n".join(lines)


def on_disk() -> tuple[int, int]:
    files = [p for p in STATIC.iterdir() if p.suffix in (".js", ".css")]
    return len(files), sum(p.stat().st_size for p in files)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100k")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--visits", type=int, default=10, help="of each kind")
    parser.add_argument("--out", type=Path, help="write every figure to this JSON file")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    size = parse_size(args.size)
    databases = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    load_before, began = os.getloadavg(), time.monotonic()
    results = {}
    with temp_dir("mosic-web-") as root:
        for db in databases:
            results[db] = run_database(db, size, root, args.visits, has_reindex())
    load_after = os.getloadavg()
    files, size_bytes = on_disk()
    loaded = results[databases[0]]["visits"]["first visit"][0]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    styled = loaded["styled_bytes"]
    header = [
        f"Measured {when} UTC at {commit()} on {machine()}; headless Chromium "
        f"{DESKTOP[0]}x{DESKTOP[1]}, nothing pinned; wall time {time.monotonic() - began:.0f} s; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after",
        f"JavaScript and CSS: {styled:,} bytes in {loaded['styled_files']} files as loaded "
        f"(mosic/web/static: {size_bytes:,} bytes in {files} files; budget {BYTES_MAX:,}: "
        f"{'met' if styled <= BYTES_MAX else 'MISSED'})",
    ]
    print("\n".join(header), end="\n\n")
    for db in databases:
        print(table(db, results[db]), end="\n\n")
    if args.out:
        args.out.write_text(json.dumps({"header": header, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
