// The Mosic web app: sign in with an API key, browse the library (albums, artists, songs,
// playlists, favourites; users and the library for an admin), search, upload, and listen with
// the player (player.js). Plain ES modules, no build step; every request goes to the public
// REST and Subsonic APIs, as any other client's would.

import { Api, KEY_STORAGE, Refused } from "./api.js";
import { albumsView, albumView, artistsView, artistView } from "./browse.js";
import { clipsView, refreshCount } from "./clips.js";
import { el, typingIn } from "./dom.js";
import { favouritesView, playlistsView, playlistView } from "./mine.js";
import { Player } from "./player.js";
import { markPlaying } from "./songs.js";
import { watchUploads } from "./upload.js";

const SEARCH_DELAY_MS = 250;
const HOME = "albums";
// Path (after "#/") -> its screen. `nav` is the navigation link it belongs to.
// The admin's screens are fetched when first opened: a listener never loads them.
const admin = (name) => async (...args) => (await import("./admin.js"))[name](...args);
const ROUTES = [
  { path: /^albums$/, view: albumsView, nav: "albums", title: "Albums" },
  { path: /^album\/(.+)$/, view: albumView, nav: "albums", title: "Album" },
  { path: /^artists$/, view: artistsView, nav: "artists", title: "Artists" },
  { path: /^artist\/(.+)$/, view: artistView, nav: "artists", title: "Artist" },
  { path: /^songs$/, view: clipsView, nav: "songs", title: "Songs" },
  { path: /^playlists$/, view: playlistsView, nav: "playlists", title: "Playlists" },
  { path: /^playlist\/(.+)$/, view: playlistView, nav: "playlists", title: "Playlist" },
  { path: /^favourites$/, view: favouritesView, nav: "favourites", title: "Favourites" },
  { path: /^users$/, view: admin("usersView"), nav: "users", title: "Users", admin: true },
  { path: /^library$/, view: admin("libraryView"), nav: "library", title: "Library", admin: true },
];

const $ = (id) => document.getElementById(id);

/** The player's source for the library: links and covers through the API with the key. */
function librarySource(api) {
  return {
    storage: null, // set per person once signed in
    link: (song) => api.json(`/play/${encodeURIComponent(song.id)}`),
    cover: (song, size) => api.coverUrl(song.coverArt, size),
    async lyrics(song) {
      const answer = await api.subsonic("getLyricsBySongId", { id: song.id });
      return (answer.lyricsList && answer.lyricsList.structuredLyrics) || [];
    },
    async peaks(link, points) {
      const url = new URL(link.waveform_url, location.href);
      if (url.origin !== location.origin) return null;
      url.searchParams.set("points", String(points));
      return api.json(url.pathname + url.search);
    },
  };
}

const api = new Api(askForKey);
const player = new Player($("player"), librarySource(api));
const ctx = {
  api,
  player,
  me: null,
  signal: null, // aborted when the screen is left
  query: () => $("search").value.trim(),
  say,
  report,
  title,
  rerender: () => route(),
};
let screen = { view: null, controller: null };

function say(message, isError = false) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function report(error) {
  if (!(error instanceof Refused)) say(error.message || String(error), true);
}

function title(text) {
  $("view-heading").textContent = text;
  document.title = `${text} · Mosic`;
}

// -- the key -------------------------------------------------------------------------------

function askForKey(message = "") {
  localStorage.removeItem(KEY_STORAGE);
  api.key = null;
  ctx.me = null;
  player.reset();
  for (const id of ["library", "nav", "account", "tools"]) $(id).hidden = true;
  $("sign-in").hidden = false;
  $("key-error").textContent = message;
  $("api-key").value = "";
  $("api-key").focus();
}

// The key is tried first (whose is it?): a refused one asks again, with one request.
async function useKey(key) {
  api.key = key;
  const me = await api.json("/me");
  localStorage.setItem(KEY_STORAGE, key);
  ctx.me = me;
  player.reset(`mosic.queue.${me.name}`); // each person's own queue
  $("sign-in").hidden = true;
  for (const id of ["library", "nav", "account", "tools"]) $(id).hidden = false;
  for (const item of document.querySelectorAll("[data-admin]")) item.hidden = me.role !== "admin";
  // Beside "Forget key", so a shared screen says whose key it uses.
  $("who").textContent = `Signed in as ${me.name}${me.role === "admin" ? " (admin)" : ""}`;
  await route();
}

// -- screens -------------------------------------------------------------------------------

function current() {
  const path = location.hash.replace(/^#\/?/, "");
  for (const route of ROUTES) {
    const match = route.path.exec(path);
    if (match && (!route.admin || (ctx.me && ctx.me.role === "admin"))) {
      return { route, args: match.slice(1).map(decodeURIComponent) };
    }
  }
  return null;
}

/** Show the screen the address names (Albums when it names none); ``focus`` moves the
 * keyboard's place to its heading, as a new page would. */
async function route({ focus = false } = {}) {
  if (!ctx.me) return;
  const found = current();
  if (!found) {
    history.replaceState(null, "", `#/${HOME}`);
    return route({ focus });
  }
  const { route: chosen, args } = found;
  if (screen.controller) screen.controller.abort();
  player.closePanels(); // they would cover the new screen
  const controller = new AbortController();
  screen = { view: null, controller, route: chosen };
  ctx.signal = controller.signal;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === chosen.nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const heading = el("h2", { id: "view-heading", tabIndex: -1 });
  const section = el("section", { className: `view view-${chosen.nav}`, "aria-labelledby": "view-heading" }, heading);
  $("view").replaceChildren(section);
  title(chosen.title);
  say("");
  if (focus) heading.focus();
  try {
    const view = await chosen.view(ctx, section, ...args);
    if (!controller.signal.aborted) screen.view = view || null;
  } catch (error) {
    report(error);
  }
  if (player.song) markPlaying(player.song.id);
}

/** Go to ``path`` (after "#/") and wait for its screen. */
async function go(path) {
  if (location.hash !== `#/${path}`) history.pushState(null, "", `#/${path}`);
  await route();
}

// -- search --------------------------------------------------------------------------------

// Songs shows what the Search box holds: there, a search refreshes it; elsewhere, it goes there.
async function search() {
  if (screen.route && screen.route.nav === "songs" && screen.view) await screen.view.search();
  else await go("songs");
}

function watchSearch() {
  let timer = 0;
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    search().catch(report);
  });
  $("search").addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => search().catch(report), SEARCH_DELAY_MS);
  });
}

// -- keys, dialogs, settings ---------------------------------------------------------------

function watchKeys() {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "?" || !ctx.me || typingIn(event.target)) return;
    if (document.querySelector("dialog[open]")) return;
    event.preventDefault();
    $("shortcuts").showModal();
  });
  player.watchKeys();
  for (const dialog of document.querySelectorAll("dialog")) {
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
  }
  $("open-shortcuts").addEventListener("click", () => $("shortcuts").showModal());
  $("open-settings").addEventListener("click", () => $("settings").showModal());
  const mode = $("gain-mode");
  mode.value = player.gainMode;
  mode.addEventListener("change", () => player.setGainMode(mode.value));
}

function watchPlayer() {
  player.addEventListener("message", (event) => say(event.detail.text, event.detail.error));
  player.addEventListener("songchange", (event) => markPlaying(event.detail.id));
  for (const name of ["playing", "ended"]) {
    player.addEventListener(name, (event) => {
      if (event.detail) refreshCount(api, event.detail.id).catch(report);
    });
  }
}

function wire() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    // Once accepted, the field that had the focus is gone: keep the keyboard's place.
    useKey(key)
      .then(() => $("search").focus())
      .catch(report);
  });
  $("forget").addEventListener("click", () => askForKey());
  window.addEventListener("hashchange", () => route({ focus: true }));
  watchSearch();
  watchUploads(ctx, async (titles) => {
    $("search").value = "";
    await search();
    say(`Uploaded ${titles.join(", ")}.`);
  });
  watchKeys();
  watchPlayer();
}

wire();
const saved = localStorage.getItem(KEY_STORAGE);
if (saved) useKey(saved).catch(report);
else askForKey();
