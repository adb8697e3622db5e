// Songs as the library's screens show them: one row per song with "Play TITLE",
// "Add TITLE to queue" and "Star TITLE", and the conversions from what the APIs answer to
// the player's songs.

import { clock, el, iconButton } from "./dom.js";

/** A Subsonic song (getAlbum, search3, getStarred2, getPlaylist) as the player's song. */
export function fromSubsonic(song) {
  return {
    id: song.id,
    title: song.title,
    artist: song.artist || null,
    album: song.album || null,
    albumId: song.albumId || null,
    artistId: song.artistId || null,
    duration: song.duration || 0,
    track: song.track || null,
    disc: song.discNumber || null,
    coverArt: song.coverArt || null,
    replayGain: song.replayGain || null,
    starred: Boolean(song.starred),
  };
}

/** A REST clip (``GET /play``) as the player's song; its signed link is used while fresh. */
export function fromClip(clip) {
  return {
    id: clip.id,
    title: clip.title,
    artist: clip.artist,
    album: clip.album,
    duration: clip.duration || 0,
    coverArt: clip.cover_url ? clip.id : null,
    stream_url: clip.stream_url,
    waveform_url: clip.waveform_url,
    replay_gain: clip.replay_gain || null,
    starred: Boolean(clip.starred),
  };
}

/** A song's row. ``play()`` starts it (and what follows it in its list); ``detail`` says
 * which of artist and album to show beside the title; ``extra`` nodes go at the end. */
export function songRow(ctx, song, { play, number = null, detail = ["artist", "album"], extra = [] }) {
  const playButton = iconButton("play", `Play ${song.title}`, { className: "round play" });
  playButton.addEventListener("click", play);
  const add = iconButton("add", `Add ${song.title} to queue`, { className: "quiet" });
  add.addEventListener("click", () => ctx.player.addSongs([song]));
  const about = detail.map((name) => song[name]).filter(Boolean).join(" · ");
  const text = el(
    "div",
    { className: "song-text" },
    el("p", { className: "title", text: song.title }),
    el("p", { className: "meta", text: about }),
  );
  const row = el(
    "li",
    { className: "song", "data-song-id": song.id },
    number !== null ? el("span", { className: "number", "aria-hidden": "true", text: String(number) }) : null,
    playButton,
    text,
    el("span", { className: "duration", text: clock(song.duration) }),
    add,
    starButton(ctx, song.id, song.title, song.starred),
    ...extra,
  );
  if (ctx.player.song && ctx.player.song.id === song.id) row.setAttribute("aria-current", "true");
  return row;
}

/** "Star NAME": pressed when starred; a press stars or unstars through Subsonic. */
export function starButton(ctx, id, name, starred) {
  const button = iconButton("star", `Star ${name}`, { className: "quiet star" });
  button.setAttribute("aria-pressed", String(Boolean(starred)));
  button.addEventListener("click", async () => {
    const starring = button.getAttribute("aria-pressed") !== "true";
    button.setAttribute("aria-pressed", String(starring));
    try {
      await ctx.api.subsonic(starring ? "star" : "unstar", { id });
    } catch (error) {
      button.setAttribute("aria-pressed", String(!starring));
      ctx.report(error);
    }
  });
  return button;
}

/** Rows for ``songs[from..to)``, where Play starts that song and queues the rest of the
 * whole list after it. */
export function songList(ctx, songs, options = {}) {
  const { numbered = false, detail, from = 0, to = songs.length } = options;
  const list = el("ol", { className: "songs" });
  for (let i = from; i < to; i++) {
    const song = songs[i];
    list.append(
      songRow(ctx, song, {
        play: () => ctx.player.playSongs(songs, i),
        number: numbered ? song.track || i + 1 : null,
        detail,
      }),
    );
  }
  return list;
}

/** Mark the rows of the song that plays (``aria-current``), wherever they are. */
export function markPlaying(songId) {
  for (const row of document.querySelectorAll("[data-song-id]")) {
    if (row.dataset.songId === songId) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
}

export function totalTime(songs) {
  return clock(songs.reduce((sum, song) => sum + (Number(song.duration) || 0), 0));
}
