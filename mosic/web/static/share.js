// A share's page: the songs someone shared, played without any key in the web app's own
// player (player.js: its bar, queue, Media Session and keys). It reads /share/{id}/songs,
// whose songs are already the player's songs, and lists nothing but them. A visitor is no
// user: the queue is kept nowhere (the source has no `storage`), and there are no lyrics or
// waveform (those need a key).

import { clock, el, iconButton } from "./dom.js";
import { Player } from "./player.js";

const GONE = "This share has expired, or its owner deleted it.";

class ShareGone extends Error {}

const $ = (id) => document.getElementById(id);
// /share/{id}: the id is the path's last part (the page loads nothing from elsewhere).
const shareId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const songsPath = `/share/${encodeURIComponent(shareId)}/songs`;

async function fetchShare() {
  const resp = await fetch(songsPath, { headers: { Accept: "application/json" }, cache: "no-store" });
  if (resp.status === 410) throw new ShareGone(GONE);
  if (resp.status === 404) throw new Error("No share has this address.");
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  return resp.json();
}

/** The player's source for a share: its streams are plain links that do not expire, so one
 * that fails is asked about again: the share may have ended meanwhile (410). */
const shareSource = {
  async link(song) {
    if (song.stream_url) return { stream_url: song.stream_url };
    try {
      const share = await fetchShare();
      const fresh = share.songs.find((s) => s.id === song.id);
      if (!fresh) throw new Error(`${song.title} is no longer in this share.`);
      return { stream_url: fresh.stream_url };
    } catch (error) {
      if (error instanceof ShareGone) gone();
      throw error;
    }
  },
  cover: (song) => song.cover_url || null,
};

const player = new Player($("player"), shareSource);

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function gone() {
  player.reset();
  $("clips").replaceChildren();
  $("share-from").textContent = "";
}

function show(share) {
  const title = share.description || "Shared music";
  $("share-heading").textContent = title;
  document.title = `${title} · Mosic`;
  const count = share.songs.length === 1 ? "1 song" : `${share.songs.length} songs`;
  const until = share.expires_at ? ` · until ${new Date(share.expires_at).toLocaleString()}` : "";
  $("share-from").textContent = `Shared by ${share.owner} · ${count}${until}`;
  $("clips").replaceChildren(...share.songs.map((song, i) => songRow(share.songs, i)));
  if (share.songs.length === 0) say("Nothing here can be played any more.");
}

/** A song's row: "Play TITLE" plays the share from it, "Add TITLE to queue" queues it. */
function songRow(songs, index) {
  const song = songs[index];
  const play = iconButton("play", `Play ${song.title}`, { className: "round play" });
  play.addEventListener("click", () => player.playSongs(songs, index));
  const add = iconButton("add", `Add ${song.title} to queue`, { className: "quiet" });
  add.addEventListener("click", () => player.addSongs([song]));
  return el(
    "li",
    { className: "song", "data-song-id": song.id },
    play,
    el(
      "div",
      { className: "song-text" },
      el("p", { className: "title", text: song.title }),
      el("p", { className: "meta", text: [song.artist, song.album].filter(Boolean).join(" · ") }),
    ),
    el("span", { className: "duration", text: clock(song.duration) }),
    add,
  );
}

function markPlaying(songId) {
  for (const row of document.querySelectorAll("[data-song-id]")) {
    if (row.dataset.songId === songId) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
}

player.addEventListener("message", (event) => say(event.detail.text, event.detail.error));
player.addEventListener("songchange", (event) => markPlaying(event.detail.id));
player.watchKeys();
fetchShare()
  .then(show)
  .catch((error) => {
    if (error instanceof ShareGone) gone();
    say(error.message || String(error), true);
  });
