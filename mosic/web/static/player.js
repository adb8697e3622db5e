// The Mosic player: a queue, the player bar (cover, Previous, Play/Pause, Next, Seek,
// Volume, Queue, Lyrics), the Media Session and the keyboard shortcuts. It knows nothing of
// keys or of the library: it plays a list of songs through a *source*, so the library app and
// a public share page drive the same player.
//
//   const player = new Player(document.getElementById("player"), source);
//   player.playSongs([{id, title, artist, album, duration, stream_url, cover_url}], 0);
//
// A song needs `id` and `title`; `artist`, `album`, `duration`, `stream_url` (a link the
// <audio> element can open), `replayGain` or `replay_gain` are used when present. The source:
//   link(song)        -> Promise of {stream_url, waveform_url?, replay_gain?}: a fresh link,
//                        asked for when the song has none or its link failed (expired);
//   cover(song, size) -> the URL of its cover at about `size` pixels, or null;
//   lyrics(song)      -> Promise of OpenSubsonic structuredLyrics[] (optional: no Lyrics);
//   peaks(link, n)    -> Promise of audiowaveform JSON with n points (optional);
//   storage           -> a localStorage key for the queue (optional: not kept).
// It fires "songchange", "playing" and "ended" (detail: the song) and "message" (detail:
// {text, error}); `player.watchKeys()` gives it the page's keys (Space, arrows, N, P, Esc).

import { el, icon, iconButton, clock, typingIn } from "./dom.js";
import { DEFAULT_GAIN_MODE, GAIN_MODES, gainFactor } from "./gain.js";
import { chooseLyrics, LyricsPanel } from "./lyrics.js";
import { Queue } from "./queue.js";
import { SeekBar, SEEK_STEP_S } from "./seekbar.js";
import * as session from "./session.js";

// The next song is fetched this long before the current one ends (or at once when the current
// one is shorter), so it starts without a pause. A stream counts a play when it starts, so a
// preloaded song is counted then.
export const PRELOAD_LEAD_S = 20;
// "Previous" this far into a song goes back to its start, as on a CD player.
export const RESTART_AFTER_S = 3;
export const VOLUME_STEP = 0.05;
// How often the position is written down, so a reload resumes near where it was.
const SAVE_EVERY_S = 5;
const COVER_SIZE = 96;
const VOLUME_KEY = "mosic.volume";
const GAIN_KEY = "mosic.replayGain";

export class Player extends EventTarget {
  constructor(root, source) {
    super();
    this.root = root;
    this.source = source;
    this.queue = source.storage ? Queue.restore(source.storage) : new Queue();
    this.decks = [deck("audio"), deck("audio-next")];
    this.audio = this.decks[0]; // the one that plays
    this.standby = this.decks[1]; // the next song, loading
    this.standbySong = null; // the song loaded in this.standby
    this.preloading = null; // the song whose link is being fetched for this.standby
    this.song = null; // the song in this.audio (null until one is loaded)
    this.relinked = false;
    this.loading = 0; // bumped by each load: a slower, older one gives way
    this.savedAt = 0;
    this.volume = storedNumber(VOLUME_KEY, 1);
    this.gainMode = GAIN_MODES.includes(localStorage.getItem(GAIN_KEY))
      ? localStorage.getItem(GAIN_KEY)
      : DEFAULT_GAIN_MODE;
    this.build();
    this.watch();
    session.connectSession(this);
    this.showSong(this.queue.current);
    this.renderQueue();
  }

  // -- what the page asks of it ----------------------------------------------------------

  playSongs(songs, start = 0) {
    if (!songs.length) return;
    this.queue.replace(songs, start);
    this.renderQueue();
    this.load({ autoplay: true });
  }

  addSongs(songs) {
    const wasEmpty = !this.queue.current;
    this.queue.append(songs);
    this.renderQueue();
    // Shown, not loaded: an <audio> that loads counts a play, and nothing was asked to play.
    if (wasEmpty) this.showSong(this.queue.current);
    this.say(songs.length === 1 ? `Added ${songs[0].title} to the queue.` : `Added ${songs.length} songs to the queue.`);
  }

  playAt(index) {
    if (this.queue.moveTo(index)) this.load({ autoplay: true });
  }

  next() {
    if (this.queue.next) this.playAt(this.queue.index + 1);
  }

  previous() {
    if (this.audio.currentTime > RESTART_AFTER_S || !this.queue.previous) this.seekTo(0);
    else this.playAt(this.queue.index - 1);
  }

  play() {
    if (!this.queue.current) return;
    if (this.song !== this.queue.current) {
      this.load({ autoplay: true, position: this.queue.position });
      return;
    }
    this.audio.play().catch((error) => {
      // A newer choice interrupted this one: nothing went wrong.
      if (error.name !== "AbortError") this.say(`Cannot play: ${error.message}`, true);
    });
  }

  pause() {
    this.audio.pause();
  }

  toggle() {
    if (this.audio.paused) this.play();
    else this.pause();
  }

  now() {
    return this.audio.currentTime || 0;
  }

  duration() {
    if (Number.isFinite(this.audio.duration) && this.audio.duration > 0) return this.audio.duration;
    return this.queue.current ? Number(this.queue.current.duration) || 0 : 0;
  }

  seekTo(seconds) {
    if (!this.song) return;
    this.audio.currentTime = Math.min(Math.max(seconds, 0), this.duration());
    this.update();
  }

  setVolume(volume) {
    this.volume = Math.min(Math.max(volume, 0), 1);
    localStorage.setItem(VOLUME_KEY, String(this.volume));
    this.volumeInput.value = String(this.volume);
    this.applyGain();
  }

  setGainMode(mode) {
    if (!GAIN_MODES.includes(mode)) return;
    this.gainMode = mode;
    localStorage.setItem(GAIN_KEY, mode);
    this.applyGain();
  }

  /** Keys pressed on the page work the player (not while typing, nor with a dialog open). */
  watchKeys(target = document) {
    target.addEventListener("keydown", (event) => {
      if (event.defaultPrevented || document.querySelector("dialog[open]")) return;
      if (this.shortcut(event)) event.preventDefault();
    });
  }

  /** True when the key pressed was a player shortcut, and done. */
  shortcut(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typingIn(event.target)) return false;
    // Space on a button or a link presses it.
    if (event.key === " " && event.target.closest("button, a, summary")) return false;
    const actions = {
      " ": () => this.toggle(),
      ArrowLeft: () => this.seekTo(this.now() - SEEK_STEP_S),
      ArrowRight: () => this.seekTo(this.now() + SEEK_STEP_S),
      ArrowUp: () => this.setVolume(this.volume + VOLUME_STEP),
      ArrowDown: () => this.setVolume(this.volume - VOLUME_STEP),
      n: () => this.next(),
      p: () => this.previous(),
      Escape: () => this.closePanels(),
    };
    const action = actions[event.key];
    if (action) action();
    return Boolean(action);
  }

  /** Stop and forget the queue (another person signs in). */
  reset(storageKey = null) {
    this.stop();
    this.queue = storageKey ? Queue.restore(storageKey) : new Queue();
    this.source.storage = storageKey;
    this.showSong(this.queue.current);
    this.renderQueue();
  }

  stop() {
    for (const audio of this.decks) {
      audio.pause();
      audio.removeAttribute("src");
      audio.load(); // and stop fetching
    }
    this.song = null;
    this.standbySong = null;
    this.preloading = null;
  }

  say(text, error = false) {
    this.dispatchEvent(new CustomEvent("message", { detail: { text, error } }));
  }

  // -- loading songs ---------------------------------------------------------------------

  /** Put the queue's current song in the player (from the preloaded deck when it is there)
   * and play it if ``autoplay``. */
  async load({ autoplay = false, position = 0 } = {}) {
    const song = this.queue.current;
    const loading = ++this.loading;
    this.showSong(song);
    if (!song) {
      this.stop();
      return;
    }
    this.relinked = false;
    let link = song;
    if (this.standbySong === song && !this.standby.error) {
      link = this.standbyLink;
      this.swapDecks();
    } else {
      this.audio.pause();
      if (!song.stream_url) {
        try {
          link = await this.source.link(song);
        } catch (error) {
          if (loading === this.loading) this.say(error.message || String(error), true);
          return;
        }
        if (loading !== this.loading) return;
      }
      this.audio.src = link.stream_url;
    }
    this.song = song;
    this.standbySong = null;
    this.preloading = null;
    this.applyGain(link);
    if (position) this.audio.currentTime = position;
    this.update();
    if (autoplay) this.play();
    this.loadExtras(song, link, loading);
  }

  swapDecks() {
    const finished = this.audio;
    this.audio = this.standby;
    this.standby = finished;
    finished.pause();
    finished.removeAttribute("src");
    finished.load(); // stop fetching the finished one
    finished.id = "audio-next";
    this.audio.id = "audio";
  }

  async preload(song) {
    this.preloading = song;
    let link;
    try {
      link = await this.source.link(song);
    } catch {
      this.preloading = null; // it will be asked for again when its turn comes
      return;
    }
    if (this.preloading !== song) return;
    this.preloading = null;
    this.standbySong = song;
    this.standbyLink = link;
    this.standby.preload = "auto";
    this.standby.src = link.stream_url;
    this.standby.load();
  }

  /** The waveform and the lyrics: nice to have, never in the way of playing. */
  async loadExtras(song, link, loading) {
    this.seekBar.showPeaks(null);
    this.lyricsPanel.show(null); // the button and the panel stay until the answer says
    const peaks = this.source.peaks && link.waveform_url
      ? this.source.peaks(link, this.seekBar.points()).catch(() => null)
      : null;
    const lyrics = this.source.lyrics ? this.source.lyrics(song).catch(() => null) : null;
    const [drawn, found] = await Promise.all([peaks, lyrics]);
    if (loading !== this.loading) return;
    if (drawn) this.seekBar.showPeaks(drawn);
    this.showLyrics(chooseLyrics(found));
  }

  async relink() {
    // A signed link expires: ask the source for a fresh one, once per song.
    const song = this.song;
    if (!song || this.relinked) {
      this.say(`${song ? song.title : "This song"} cannot be played.`, true);
      return;
    }
    this.relinked = true;
    const position = this.audio.currentTime;
    const loading = this.loading;
    const fresh = await this.source.link({ ...song, stream_url: null });
    if (loading !== this.loading) return;
    this.audio.src = fresh.stream_url;
    this.audio.currentTime = position;
    this.play();
  }

  applyGain(link = null) {
    if (link) this.gainSource = { ...this.song, ...link };
    const factor = gainFactor(this.gainSource, this.gainMode);
    this.audio.volume = Math.min(1, this.volume * factor);
    this.audio.dataset.gain = String(factor);
  }

  // -- the player bar --------------------------------------------------------------------

  build() {
    this.cover = el("span", { className: "now-cover" });
    this.title = el("p", { id: "now-title", className: "now-title" });
    this.detail = el("p", { id: "now-detail", className: "now-detail" });
    this.prevButton = iconButton("previous", "Previous");
    this.toggleButton = iconButton("play", "Play", { className: "toggle" });
    this.toggleButton.id = "toggle";
    this.nextButton = iconButton("next", "Next");
    this.seekBar = new SeekBar({
      seekTo: (s) => this.seekTo(s),
      now: () => this.now(),
      total: () => this.duration(),
    });
    this.time = el("span", { id: "time", className: "time", "aria-hidden": "true", text: "0:00 / 0:00" });
    this.volumeInput = el("input", {
      id: "volume",
      type: "range",
      min: "0",
      max: "1",
      step: "0.01",
      value: String(this.volume),
      "aria-label": "Volume",
    });
    this.lyricsPanel = new LyricsPanel();
    this.queueList = el("ol", { className: "queue-list" });
    this.queueSummary = el("p", { className: "queue-summary" });
    this.queuePanel = el(
      "section",
      { id: "queue-panel", className: "panel", "aria-labelledby": "queue-heading", hidden: true },
      el("h2", { id: "queue-heading", text: "Queue" }),
      this.queueSummary,
      this.queueList,
    );
    this.lyricsButton = panelButton("lyrics", "Lyrics", this.lyricsPanel.node);
    this.lyricsButton.hidden = true; // until a song's lyrics are found
    this.queueButton = panelButton("queue", "Queue", this.queuePanel);
    this.root.classList.add("player");
    this.root.replaceChildren(
      this.queuePanel,
      this.lyricsPanel.node,
      el("div", { className: "now" }, this.cover, el("div", { className: "now-text" }, this.title, this.detail)),
      el("div", { className: "transport" }, this.prevButton, this.toggleButton, this.nextButton),
      this.seekBar.node,
      this.time,
      el(
        "div",
        { className: "extras" },
        this.lyricsButton,
        this.queueButton,
        el("label", { className: "volume", title: "Volume" }, icon("volume"), this.volumeInput),
      ),
      ...this.decks,
    );
  }

  watch() {
    this.prevButton.addEventListener("click", () => this.previous());
    this.nextButton.addEventListener("click", () => this.next());
    this.toggleButton.addEventListener("click", () => this.toggle());
    this.volumeInput.addEventListener("input", () => this.setVolume(Number(this.volumeInput.value)));
    for (const [button, panel] of [[this.lyricsButton, this.lyricsPanel.node], [this.queueButton, this.queuePanel]]) {
      button.addEventListener("click", () => this.togglePanel(button, panel));
    }
    for (const audio of this.decks) this.watchDeck(audio);
    window.addEventListener("pagehide", () => this.savePosition(true));
  }

  watchDeck(audio) {
    const mine = (handler) => (event) => {
      if (event.target === this.audio) handler(event);
    };
    for (const name of ["timeupdate", "durationchange", "seeking", "emptied"]) {
      audio.addEventListener(name, mine(() => this.update()));
    }
    audio.addEventListener("play", mine(() => this.showPlaying()));
    audio.addEventListener("pause", mine(() => {
      this.showPlaying();
      this.savePosition(true);
    }));
    audio.addEventListener("playing", mine(() => {
      this.followLyrics();
      this.dispatchEvent(new CustomEvent("playing", { detail: this.song }));
    }));
    audio.addEventListener("ended", mine(() => this.ended()));
    audio.addEventListener("error", mine(() => this.relink().catch((e) => this.say(e.message, true))));
    audio.addEventListener("error", (event) => {
      if (event.target === this.standby) this.standbySong = null; // fetched afresh in turn
    });
  }

  ended() {
    this.dispatchEvent(new CustomEvent("ended", { detail: this.song }));
    if (this.queue.next) this.playAt(this.queue.index + 1);
    else this.savePosition(true, 0);
  }

  /** Close the queue and the lyrics (another screen opens); true if one was open. */
  closePanels() {
    const open = [this.lyricsPanel.node, this.queuePanel].some((panel) => !panel.hidden);
    for (const panel of [this.lyricsPanel.node, this.queuePanel]) panel.hidden = true;
    for (const button of [this.lyricsButton, this.queueButton]) button.setAttribute("aria-expanded", "false");
    return open;
  }

  togglePanel(button, panel) {
    const open = panel.hidden;
    this.closePanels();
    panel.hidden = !open;
    button.setAttribute("aria-expanded", String(open));
    if (open && panel === this.lyricsPanel.node) {
      this.lyricsPanel.current = -1; // scroll to the line again now that the panel shows
      this.followLyrics();
    }
  }

  showSong(song) {
    this.root.hidden = !song;
    this.title.textContent = song ? song.title : "";
    this.detail.textContent = song ? [song.artist, song.album].filter(Boolean).join(" · ") : "";
    const url = song && this.source.cover ? this.source.cover(song, COVER_SIZE) : null;
    this.cover.replaceChildren(url ? el("img", { src: url, alt: "", width: 48, height: 48 }) : icon("album"));
    this.toggleButton.disabled = !song;
    session.describe(song, (size) => (song && this.source.cover ? this.source.cover(song, size) : null));
    this.markCurrent();
    if (song) this.dispatchEvent(new CustomEvent("songchange", { detail: song }));
  }

  showPlaying() {
    const playing = !this.audio.paused;
    this.toggleButton.setAttribute("aria-label", playing ? "Pause" : "Play");
    this.toggleButton.title = playing ? "Pause" : "Play";
    this.toggleButton.replaceChildren(icon(playing ? "pause" : "play"));
    session.showState(playing);
  }

  showLyrics(lyrics) {
    this.lyricsPanel.show(lyrics);
    this.lyricsButton.hidden = !lyrics;
    if (!lyrics && !this.lyricsPanel.node.hidden) this.togglePanel(this.lyricsButton, this.lyricsPanel.node);
    this.lyricsPanel.follow(this.now());
  }

  /** Follow the sung line every frame while the lyrics show and the song plays. */
  followLyrics() {
    if (this.following) return;
    const step = () => {
      this.lyricsPanel.follow(this.now());
      const going = !this.audio.paused && !this.lyricsPanel.node.hidden && this.lyricsPanel.lyrics;
      this.following = going ? requestAnimationFrame(step) : 0;
    };
    step();
  }

  update() {
    this.seekBar.update();
    const total = this.duration();
    this.time.textContent = `${clock(Math.min(this.now(), total))} / ${clock(total)}`;
    this.lyricsPanel.follow(this.now());
    session.showPosition(this.now(), total, this.audio.playbackRate);
    this.savePosition(false);
    const next = this.queue.next;
    const left = total - this.now();
    const wanted = next && this.standbySong !== next && this.preloading !== next;
    if (wanted && this.song && !this.audio.paused && left <= PRELOAD_LEAD_S) {
      this.preload(next);
    }
  }

  savePosition(now, position = this.now()) {
    const at = performance.now();
    if (!this.song || (!now && at - this.savedAt < SAVE_EVERY_S * 1000)) return;
    this.savedAt = at;
    this.queue.save(position);
  }

  // -- the queue panel -------------------------------------------------------------------

  renderQueue() {
    const songs = this.queue.songs;
    this.queueSummary.textContent = songs.length === 1 ? "1 song" : `${songs.length} songs`;
    this.queueList.replaceChildren(...songs.map((song, i) => this.queueItem(song, i)));
    this.markCurrent();
  }

  queueItem(song, index) {
    const jump = el(
      "button",
      { type: "button", className: "queue-song", "aria-label": `Play ${song.title} from queue` },
      el("span", { className: "title", text: song.title }),
      el("span", { className: "meta", text: [song.artist, clock(song.duration)].filter(Boolean).join(" · ") }),
    );
    jump.addEventListener("click", () => this.playAt(index));
    const remove = iconButton("remove", `Remove ${song.title} from queue`, { className: "quiet" });
    remove.addEventListener("click", () => {
      const wasCurrent = index === this.queue.index;
      this.queue.remove(index);
      this.renderQueue();
      if (wasCurrent) this.load({ autoplay: !this.audio.paused });
    });
    return el("li", {}, jump, remove);
  }

  markCurrent() {
    if (!this.queueList) return;
    for (const [i, item] of [...this.queueList.children].entries()) {
      if (i === this.queue.index) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    }
  }
}

function deck(id) {
  return el("audio", { id, preload: "auto" });
}

function panelButton(iconName, label, panel) {
  const button = iconButton(iconName, label);
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("aria-controls", panel.id);
  return button;
}

function storedNumber(key, fallback) {
  const value = Number(localStorage.getItem(key));
  return localStorage.getItem(key) !== null && Number.isFinite(value) ? value : fallback;
}
