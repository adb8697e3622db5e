// Lyrics beside the player: a list of lines; with synced lyrics, the line being sung is
// marked (aria-current, and drawn highlighted) and kept in the middle of the panel.

import { el } from "./dom.js";

/** The lyrics to show from OpenSubsonic's ``structuredLyrics`` list: synced ones first,
 * else the first; null when there are none (or none has a line). */
export function chooseLyrics(structured) {
  const usable = (structured || []).filter((l) => Array.isArray(l.line) && l.line.length);
  const chosen = usable.find((l) => l.synced) || usable[0];
  if (!chosen) return null;
  return {
    synced: Boolean(chosen.synced),
    // OpenSubsonic: a positive offset shows lines sooner.
    offsetMs: Number(chosen.offset) || 0,
    lines: chosen.line.map((line) => ({ startMs: Number(line.start) || 0, text: line.value || "" })),
  };
}

/** The index of the line sung at ``ms`` (the last that has started), or -1 before the first. */
export function lineAt(lyrics, ms) {
  if (!lyrics || !lyrics.synced) return -1;
  const at = ms + lyrics.offsetMs;
  let found = -1;
  for (const [i, line] of lyrics.lines.entries()) {
    if (line.startMs <= at) found = i;
    else break;
  }
  return found;
}

export class LyricsPanel {
  constructor() {
    this.lyrics = null;
    this.current = -1;
    this.heading = el("h2", { id: "lyrics-heading", text: "Lyrics" });
    this.list = el("ol", { className: "lyrics-lines" });
    this.node = el(
      "section",
      { id: "lyrics-panel", className: "panel lyrics", "aria-labelledby": "lyrics-heading", hidden: true },
      this.heading,
      this.list,
    );
  }

  show(lyrics) {
    this.lyrics = lyrics;
    this.current = -1;
    const lines = lyrics ? lyrics.lines : [];
    this.list.replaceChildren(...lines.map((line) => el("li", { text: line.text || "\u00a0" })));
    this.list.classList.toggle("synced", Boolean(lyrics && lyrics.synced));
  }

  /** Mark the line sung at ``seconds``. */
  follow(seconds) {
    const index = lineAt(this.lyrics, seconds * 1000);
    if (index === this.current) return;
    const items = this.list.children;
    if (items[this.current]) items[this.current].removeAttribute("aria-current");
    this.current = index;
    const line = items[index];
    if (!line) return;
    line.setAttribute("aria-current", "true");
    // Scroll the panel only (scrollIntoView would move the page as well).
    if (!this.node.hidden) {
      this.list.scrollTop = line.offsetTop - this.list.clientHeight / 2 + line.clientHeight / 2;
    }
  }
}
