"""What measuring loudness costs the upload path: a 50 MiB WAV, with and without it.

1. The decoding pass alone, in this process: ``waveform.decode`` of the same bytes with the
   EBU R128 measure (``measure=True``, what an upload without ReplayGain tags runs) and
   without it (the peaks alone, what it ran before), taking turns, ``RUNS`` rounds each; for
   the benchmark's mono WAV and for a stereo one of the same size.
2. The upload: ``POST /play/upload`` of the 50 MiB WAV (``make_wav_of_size``: 16-bit mono
   44.1 kHz, 594 s) as multipart through a real ``mosic serve --workers 1``, streamed from
   disk with a Content-Length, in turns: the file as it is (its loudness is measured), and
   the same audio with ``REPLAYGAIN_TRACK_GAIN``/``_PEAK`` tags in its ID3 chunk (the tags
   win: nothing is measured). Both are over 16 MiB, so both get their peaks after the 201,
   the untagged one in the pass that measures it, in the server's low-priority worker
   process. Each round waits until the clip's waveform is drawn, then deletes the clip.

Reported: MiB/s (median and range) of each; the seconds from the request until the peaks
(and the figures) are there; and the CPU seconds per upload of the server and its worker
processes together.
Run: ``python -m bench.loudness``
"""

from __future__ import annotations

import shutil
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: python bench/loudness.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    MiB,
    Row,
    arguments,
    group_cpu_seconds,
    log,
    mb_per_s,
    mosic_server,
    report,
    temp_dir,
    upload_streamed,
)

SIZE_BYTES = 50 * MiB
RUNS = 3
UPLOAD_TIMEOUT_S = 120
DRAW_TIMEOUT_S = 120
TAGS = {"REPLAYGAIN_TRACK_GAIN": "-1.00 dB", "REPLAYGAIN_TRACK_PEAK": "0.25"}


def decode_speeds(path: Path) -> tuple[list[float], list[float]]:
    """MiB/s of the decoding pass over ``path``, with the measure and without, in turns."""
    from mosic.core.waveform import decode

    size = path.stat().st_size
    measured, plain = [], []
    for _ in range(RUNS):
        for measure, speeds in ((True, measured), (False, plain)):
            with path.open("rb") as fh:
                began = time.perf_counter()
                decode(fh, measure=measure)
                speeds.append(mb_per_s(size, time.perf_counter() - began))
    return measured, plain


def upload_speeds(root: Path, untagged: Path, tagged: Path) -> dict[str, list[float]]:
    """MiB/s, seconds until drawn and CPU of uploads of the two files, in turns."""
    found = {f"{name}{part}": [] for name in ("measured", "tagged")
             for part in ("", "_cpu", "_drawn_s")}  # fmt: skip
    with mosic_server(root / "data", env={"MOSIC_MAX_UPLOAD_MB": "100"}) as server:
        for run in range(RUNS):
            for name, path in (("measured", untagged), ("tagged", tagged)):
                cpu = group_cpu_seconds(server.pid)
                response, elapsed = upload_streamed(
                    server, path, "audio/wav", timeout=UPLOAD_TIMEOUT_S
                )
                assert response.status_code == 201, response.text[:300]
                clip = drawn(server, response.json()["id"])
                found[f"{name}_drawn_s"].append(elapsed + clip.pop("waited_s"))
                found[f"{name}_cpu"].append(group_cpu_seconds(server.pid) - cpu)
                gain = clip["replay_gain"]["track_gain_db"]
                assert (gain == -1.0) == (name == "tagged"), clip["replay_gain"]
                found[name].append(mb_per_s(path.stat().st_size, elapsed))
                log(f"run {run}: {name} {found[name][-1]:,.0f} MiB/s, drawn after "
                    f"{found[f'{name}_drawn_s'][-1]:.1f} s, gain {gain}")  # fmt: skip
                assert server.delete(f"/play/{clip['id']}").status_code == 204
    return found


def drawn(server, clip_id: str) -> dict:
    """The clip once its peaks (and with them its figures) are there, with ``waited_s``."""
    began = time.perf_counter()
    while (clip := server.get(f"/play/{clip_id}").json())["waveform_url"] is None:
        if time.perf_counter() - began > DRAW_TIMEOUT_S:
            raise RuntimeError(f"clip {clip_id}: no waveform after {DRAW_TIMEOUT_S} s")
        time.sleep(0.05)
    return {**clip, "waited_s": time.perf_counter() - began}


def spread(speeds: list[float]) -> str:
    return f"{statistics.median(speeds):,.0f} MiB/s ({min(speeds):,.0f}–{max(speeds):,.0f})"


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    from tests.support.audio import _ffmpeg, make_wav_of_size
    from tests.support.tagging import tag_replay_gain

    rows = []
    with temp_dir("mosic-bench-loudness-") as root:
        log(f"writing {SIZE_BYTES // MiB} MiB WAVs")
        mono = make_wav_of_size(root / "mono.wav", SIZE_BYTES)
        stereo = root / "stereo.wav"
        seconds = (SIZE_BYTES - 44) / (44_100 * 4)
        _ffmpeg("-f", "lavfi", "-i", f"anoisesrc=color=pink:r=44100:d={seconds}",
                "-ac", "2", "-c:a", "pcm_s16le", str(stereo))  # fmt: skip
        for label, path in (("mono 44.1 kHz, 594 s", mono), ("stereo 44.1 kHz, 297 s", stereo)):
            measured, plain = decode_speeds(path)
            rows.append(Row(
                benchmark="loudness", case=f"decoding pass, 50 MiB WAV {label}",
                reference=f"peaks alone: {spread(plain)}",
                ours=f"peaks + EBU R128: {spread(measured)}",
                check=f"{statistics.median(plain) / statistics.median(measured):.1f}x the time",
                data={"measured_mib_s": measured, "peaks_mib_s": plain},
            ))  # fmt: skip
        tagged = tag_replay_gain(shutil.copy(mono, root / "tagged.wav"), "wav", TAGS)
        found = upload_speeds(root, mono, tagged)
        cpu = {k: statistics.median(found[f"{k}_cpu"]) for k in ("measured", "tagged")}
        after = {k: statistics.median(found[f"{k}_drawn_s"]) for k in ("measured", "tagged")}
        rows.append(Row(
            benchmark="loudness", case="POST /play/upload, 50 MiB WAV, --workers 1",
            reference=f"tagged (not measured): {spread(found['tagged'])}",
            ours=f"measured: {spread(found['measured'])}",
            check=(f"drawn {after['measured']:.1f} s vs {after['tagged']:.1f} s after the "
                   f"request; CPU {cpu['measured']:.2f} s vs {cpu['tagged']:.2f} s per upload"),
            data=found,
        ))  # fmt: skip
    report(rows, args.json)


if __name__ == "__main__":
    main()
