// The seek bar: a slider (role "slider", named "Seek") drawn on a canvas, from the song's
// waveform peaks when it has them and as a plain track otherwise. A press at x% of its width
// seeks to x% of the song (and a drag follows the pointer); arrows move by SEEK_STEP_S.

import { clock, el } from "./dom.js";

export const SEEK_STEP_S = 5;
export const MAX_POINTS = 10000; // the waveform endpoint's limit

// audiowaveform JSON, version 2: per point and channel a min and a max, in 8 or 16 bits.
export function validPeaks(p) {
  return (
    p &&
    p.version === 2 &&
    (p.bits === 8 || p.bits === 16) &&
    Number.isInteger(p.length) &&
    p.length > 0 &&
    Number.isInteger(p.channels || 1) &&
    Array.isArray(p.data) &&
    p.data.length >= 2 * p.length * (p.channels || 1)
  );
}

export class SeekBar {
  /** ``seekTo(seconds)`` moves the song; ``now()`` and ``total()`` say where it is. */
  constructor({ seekTo, now, total }) {
    this.seekTo = seekTo;
    this.now = now;
    this.total = total;
    this.peaks = null;
    this.canvas = el("canvas", { id: "wave", "aria-hidden": "true" });
    this.node = el(
      "div",
      {
        id: "seek",
        className: "seek",
        role: "slider",
        tabIndex: 0,
        "aria-label": "Seek",
        "aria-valuemin": "0",
        "aria-valuemax": "0",
        "aria-valuenow": "0",
        "aria-valuetext": "0:00 of 0:00",
      },
      this.canvas,
    );
    this.watch();
  }

  watch() {
    const at = (event) => {
      const box = this.node.getBoundingClientRect();
      const share = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
      this.seekTo(share * this.total());
    };
    this.node.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      this.node.setPointerCapture(event.pointerId);
      at(event);
    });
    this.node.addEventListener("pointermove", (event) => {
      if (this.node.hasPointerCapture(event.pointerId)) at(event);
    });
    this.node.addEventListener("keydown", (event) => this.key(event));
    new ResizeObserver(() => this.draw()).observe(this.node);
  }

  key(event) {
    const moves = {
      ArrowRight: SEEK_STEP_S,
      ArrowUp: SEEK_STEP_S,
      ArrowLeft: -SEEK_STEP_S,
      ArrowDown: -SEEK_STEP_S,
    };
    if (event.key in moves) this.seekTo(this.now() + moves[event.key]);
    else if (event.key === "Home") this.seekTo(0);
    else if (event.key === "End") this.seekTo(this.total());
    else return;
    event.preventDefault();
  }

  update() {
    const total = this.total();
    const now = Math.min(this.now(), total);
    this.node.setAttribute("aria-valuemax", String(Math.round(total)));
    this.node.setAttribute("aria-valuenow", String(Math.round(now)));
    this.node.setAttribute("aria-valuetext", `${clock(now)} of ${clock(total)}`);
    this.draw();
  }

  /** Points to ask the waveform for: one per pixel column. */
  points() {
    return Math.min(MAX_POINTS, Math.max(1, this.canvas.width));
  }

  showPeaks(peaks) {
    this.peaks = validPeaks(peaks) ? peaks : null;
    this.draw();
  }

  draw() {
    const wave = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(wave.clientWidth * ratio));
    const height = Math.max(1, Math.round(wave.clientHeight * ratio));
    if (wave.width !== width || wave.height !== height) {
      wave.width = width;
      wave.height = height;
    }
    const ctx = wave.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(this.node);
    const colours = {
      played: style.getPropertyValue("--wave-played").trim(),
      rest: style.getPropertyValue("--wave-rest").trim(),
    };
    const total = this.total();
    const split = total > 0 ? Math.round((Math.min(this.now(), total) / total) * width) : 0;
    if (this.peaks) drawPeaks(ctx, this.peaks, width, height, split, colours);
    else drawTrack(ctx, width, height, split, colours);
  }
}

function drawPeaks(ctx, peaks, width, height, split, colours) {
  const channels = peaks.channels || 1;
  const full = 2 ** (peaks.bits - 1);
  const middle = height / 2;
  for (let x = 0; x < width; x++) {
    // The points that fall in this column of pixels; each column shows their extremes.
    const from = Math.floor((x * peaks.length) / width);
    const to = Math.max(from + 1, Math.floor(((x + 1) * peaks.length) / width));
    let low = 0;
    let high = 0;
    for (let i = from; i < to && i < peaks.length; i++) {
      for (let c = 0; c < channels; c++) {
        low = Math.min(low, peaks.data[2 * (i * channels + c)]);
        high = Math.max(high, peaks.data[2 * (i * channels + c) + 1]);
      }
    }
    const top = middle - (high / full) * middle;
    const bottom = middle - (low / full) * middle;
    ctx.fillStyle = x < split ? colours.played : colours.rest;
    ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
  }
}

function drawTrack(ctx, width, height, split, colours) {
  const thickness = Math.max(2, Math.round(height / 8));
  const y = Math.round((height - thickness) / 2);
  ctx.fillStyle = colours.rest;
  ctx.fillRect(0, y, width, thickness);
  ctx.fillStyle = colours.played;
  ctx.fillRect(0, y, split, thickness);
  ctx.beginPath();
  const knob = Math.min(Math.max(split, thickness), width - thickness);
  ctx.arc(knob, height / 2, thickness * 1.5, 0, 2 * Math.PI);
  ctx.fill();
}
