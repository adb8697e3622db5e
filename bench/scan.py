"""Scanning a music folder: files/s of a first scan, seconds of a rescan with nothing changed,
seconds from a file's arrival to its listing, and the server's memory meanwhile.

The tree: ``--files`` (20,000) real MP3s in albums of 10 under artists of 4 albums, each with
its own ID3 tags (title, artist, album), so each has distinct bytes, as a real library has.
They are made from one short MP3 encoded once, with a fresh ID3v2.3 tag in front (built
here: mutagen would take a minute to write 20,000 tags).

A real ``mosic serve`` (one worker, SQLite unless ``--postgres URL``) watches an empty music
folder; the tree is moved into it in one rename, and the watcher's scan of it is the first
scan (the same walk and reads as any scan). Its time is the server's own (``started_at`` to
``finished_at`` of ``GET /library/scan``). Then ``POST /library/scan`` rescans with nothing
changed; then one new file is written into an album and timed until ``GET /play?q=`` lists
it. VmRSS of the server is sampled every 20 ms (the reader processes are reported apart: their
memory is theirs, and is given back when the server stops).

Run: ``python -m bench.scan [--files N]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a file: python bench/scan.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.audio import make_clip  # noqa: E402
from tests.support.measure import RssSampler, rss_kib  # noqa: E402
from tests.support.server import mosic_serve, wait_for  # noqa: E402

ALBUM_TRACKS = 10
ARTIST_ALBUMS = 4
SCAN_TIMEOUT_S = 3600


def id3_tag(**frames: str) -> bytes:
    """An ID3v2.3 tag of text frames (TIT2, TPE1, TALB), Latin-1."""
    body = b""
    for name, text in frames.items():
        data = b"\x00" + text.encode("latin-1")
        body += name.encode() + struct.pack(">I", len(data)) + b"\x00\x00" + data
    size = len(body)
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    return b"ID3\x03\x00\x00" + syncsafe + body


def audio_frames(path: Path) -> bytes:
    """The MPEG frames of an MP3, without the ID3v2 tag ffmpeg put in front."""
    data = path.read_bytes()
    if data[:3] == b"ID3":
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | byte
        data = data[10 + size :]
    return data


def make_tree(root: Path, files: int) -> None:
    frames = audio_frames(make_clip(root.parent / "base.mp3", "mp3", seconds=0.5))
    for n in range(files):
        album, track = divmod(n, ALBUM_TRACKS)
        artist = album // ARTIST_ALBUMS
        folder = root / f"Artist {artist:05d}" / f"Album {album:06d}"
        if track == 0:
            folder.mkdir(parents=True)
        tag = id3_tag(TIT2=f"Track {n}", TPE1=f"Artist {artist}", TALB=f"Album {album}")
        (folder / f"{track + 1:02d} Track {n}.mp3").write_bytes(tag + frames)


def status(server) -> dict:
    return server.get("/library/scan").json()


def seconds_of(scan: dict) -> float:
    started = dt.datetime.fromisoformat(scan["started_at"].replace("Z", "+00:00"))
    finished = dt.datetime.fromisoformat(scan["finished_at"].replace("Z", "+00:00"))
    return (finished - started).total_seconds()


def wait_scan(server, after: str | None, timeout: float = SCAN_TIMEOUT_S) -> dict:
    def done():
        scan = status(server)
        fresh = scan["finished_at"] and scan["started_at"] != after and not scan["scanning"]
        return scan if fresh else None

    return wait_for("a scan to finish", done, timeout, server.log)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (the forkserver and the reader pool it forked)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in map(int, (task / "children").read_text().split()):
                found += [child, *descendants(child)]
    except OSError:
        pass
    return found


def descendants_rss_mib(pid: int) -> float:
    return sum(rss_kib(child) or 0 for child in descendants(pid)) / 1024


def first_scan(server, library: Path, tree: Path, files: int) -> dict:
    """Move the tree into the watched folder; the watcher's scan of it, timed, with the
    server's memory and its reader processes' at their peak."""
    with RssSampler(server.pid) as rss:
        time.sleep(1)
        baseline = rss.baseline_mib()
        before = status(server)["started_at"]
        tree.rename(library / tree.name)
        readers = 0.0
        deadline = time.monotonic() + SCAN_TIMEOUT_S
        while time.monotonic() < deadline:
            readers = max(readers, descendants_rss_mib(server.pid))
            scan = status(server)
            if scan["finished_at"] and scan["started_at"] != before and not scan["scanning"]:
                break
            time.sleep(0.5)
        peak, _ = rss.peak_mib()
    seconds = seconds_of(scan)
    return {
        "scan": scan,
        "seconds": seconds,
        "files_per_s": scan["added"] / seconds,
        "rss_baseline_mib": baseline,
        "rss_peak_mib": peak,
        "readers_mib": readers,
    }


def rescan(server) -> dict:
    before = status(server)["started_at"]
    response = httpx.post(server.base + "/library/scan", headers=server.headers, timeout=30)
    assert response.status_code == 202, response.text
    scan = wait_scan(server, before)
    return {"scan": scan, "seconds": seconds_of(scan)}


def arrival(server, album: Path) -> float:
    """Seconds from a new file's arrival in ``album`` to its listing by ``GET /play?q=``."""
    frames = audio_frames(next(album.glob("*.mp3")))
    title = f"Arrived {time.time_ns()}"
    landed = time.monotonic()
    (album / "99 Arrived.mp3").write_bytes(id3_tag(TIT2=title, TPE1="New", TALB="New") + frames)

    def listed():
        return server.get("/play", params={"q": title.casefold()}).json()

    wait_for("the new file to be listed", listed, 120, server.log)
    return time.monotonic() - landed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: SQLite)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mosic-bench-scan-"))
    try:
        made = time.monotonic()
        tree = work / "staging" / "Collection"
        make_tree(tree, args.files)
        print(f"tree: {args.files} files made in {time.monotonic() - made:.0f} s", flush=True)
        library = work / "Music"
        library.mkdir()
        extra = {"MOSIC_DATABASE_URL_OVERRIDE": args.postgres} if args.postgres else {}
        with mosic_serve(work / "data", MOSIC_LIBRARY_DIRS=str(library),
                         MOSIC_LIBRARY_SCAN_INTERVAL_S="0", **extra) as server:  # fmt: skip
            wait_scan(server, None, 60)  # the empty folder's scan at start
            first = first_scan(server, library, tree, args.files)
            again = rescan(server)
            album = next((library / tree.name).glob("Artist */Album *"))
            landed = arrival(server, album)
        report(args.files, first, again, landed)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(files: int, first: dict, again: dict, landed: float) -> None:
    growth = first["rss_peak_mib"] - first["rss_baseline_mib"]
    print(
        f"first scan: {first['scan']['added']} files in {first['seconds']:.1f} s = "
        f"{first['files_per_s']:.0f} files/s (target >= 300)"
    )
    print(
        f"rescan, nothing changed: {again['seconds']:.2f} s for {files} files "
        f"({again['scan']['unchanged']} unchanged; target <= 10 s for 100k)"
    )
    print(f"new file listed {landed:.2f} s after it landed (target <= 5 s)")
    print(f"server RSS: {first['rss_baseline_mib']:.0f} MiB before, {first['rss_peak_mib']:.0f} "
          f"MiB at peak, growth {growth:.0f} MiB (target <= 50); reader processes "
          f"{first['readers_mib']:.0f} MiB together at peak")  # fmt: skip


if __name__ == "__main__":
    main()
