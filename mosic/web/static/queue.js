// The play queue: songs in order and which one is current, kept in the browser's
// localStorage (when given a key) so a reload finds it where it was.

// localStorage holds a few megabytes per site; a song is a few hundred bytes.
export const QUEUE_MAX = 5000;
// Signed links expire: they are fetched again rather than kept.
const NOT_KEPT = ["stream_url", "waveform_url"];

function keepable(song) {
  const kept = { ...song };
  for (const name of NOT_KEPT) delete kept[name];
  return kept;
}

export class Queue {
  constructor(storageKey = null) {
    this.storageKey = storageKey;
    this.songs = [];
    this.index = -1;
    this.position = 0; // seconds into the current song, as last saved
  }

  get current() {
    return this.songs[this.index] || null;
  }

  get next() {
    return this.songs[this.index + 1] || null;
  }

  get previous() {
    return this.songs[this.index - 1] || null;
  }

  /** Play ``songs`` from ``start``: the queue is replaced. */
  replace(songs, start = 0) {
    this.songs = songs.slice(0, QUEUE_MAX);
    this.index = this.songs.length ? Math.min(Math.max(start, 0), this.songs.length - 1) : -1;
    this.position = 0;
    this.save();
  }

  /** Add ``songs`` at the end; an empty queue starts at the first of them. */
  append(songs) {
    const room = QUEUE_MAX - this.songs.length;
    this.songs.push(...songs.slice(0, Math.max(room, 0)));
    if (this.index < 0 && this.songs.length) this.index = 0;
    this.save();
  }

  moveTo(index) {
    if (index < 0 || index >= this.songs.length) return false;
    this.index = index;
    this.position = 0;
    this.save();
    return true;
  }

  remove(index) {
    if (index < 0 || index >= this.songs.length) return;
    this.songs.splice(index, 1);
    if (index < this.index) this.index -= 1;
    else if (this.index >= this.songs.length) this.index = this.songs.length - 1;
    this.save();
  }

  clear() {
    this.songs = [];
    this.index = -1;
    this.position = 0;
    this.save();
  }

  save(position = this.position) {
    this.position = position;
    if (!this.storageKey) return;
    const kept = { songs: this.songs.map(keepable), index: this.index, position };
    try {
      localStorage.setItem(this.storageKey, JSON.stringify(kept));
    } catch {
      // Storage full or refused (a private window): the queue still works until a reload.
    }
  }

  /** The queue as it was saved under ``storageKey``, or an empty one. */
  static restore(storageKey) {
    const queue = new Queue(storageKey);
    try {
      const kept = JSON.parse(localStorage.getItem(storageKey) || "null");
      if (kept && Array.isArray(kept.songs)) {
        queue.songs = kept.songs.filter((s) => s && typeof s.id === "string").slice(0, QUEUE_MAX);
        const index = Number.isInteger(kept.index) ? kept.index : 0;
        queue.index = queue.songs.length ? Math.min(Math.max(index, 0), queue.songs.length - 1) : -1;
        queue.position = Number.isFinite(kept.position) ? Math.max(kept.position, 0) : 0;
      }
    } catch {
      // Not ours, or broken: start empty.
    }
    return queue;
  }
}
