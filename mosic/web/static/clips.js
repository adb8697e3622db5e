// "Songs": every clip of the library, newest first, a page at a time, through the REST list
// (so uploads show at the top, with their play counts); with words in the Search box, the
// matching artists and albums (Subsonic search3) above the matching clips (REST `q`).

import { nextLink } from "./api.js";
import { albumTile } from "./browse.js";
import { el } from "./dom.js";
import { fromClip, songRow } from "./songs.js";

export const PAGE_SIZE = 20;
const SORT = "-created_at"; // newest first, so an upload shows at the top
const FOUND_ARTISTS = 8;
const FOUND_ALBUMS = 12;

export function playCount(n) {
  return n === 1 ? "1 play" : `${n} plays`;
}

/** The server counts a listen when its stream starts: show its count, not a guess. */
export async function refreshCount(api, id) {
  const shown = document.querySelectorAll(`[data-plays-for="${CSS.escape(id)}"]`);
  if (!shown.length) return;
  const stats = await api.json(`/play/${id}/stats`);
  for (const node of shown) node.textContent = playCount(stats.play_count);
}

export function clipsView(ctx, section) {
  const state = { page: null, back: [] };
  const found = el("div", { className: "found" });
  const summary = el("p", { id: "summary", className: "summary" });
  const list = el("ul", { id: "clips", className: "clips", "aria-labelledby": "view-heading" });
  const prev = el("button", { type: "button", id: "prev", className: "quiet", text: "Previous page", disabled: true });
  const next = el("button", { type: "button", id: "next", className: "quiet", text: "Next page", disabled: true });
  section.append(found, summary, list, el("nav", { className: "pages", "aria-label": "Pages" }, prev, next));

  const show = async (page) => {
    const resp = await ctx.api.rest(page.url);
    const clips = await resp.json();
    const total = Number(resp.headers.get("X-Total-Count") || clips.length);
    state.page = { ...page, next: nextLink(resp.headers.get("Link")), size: clips.length };
    const songs = clips.map(fromClip);
    const playable = songs.filter((song, i) => !isExternal(clips[i]));
    list.replaceChildren(...clips.map((clip, i) => clipRow(ctx, clip, songs[i], playable)));
    const q = ctx.query();
    const matching = q ? ` matching “${q}”` : "";
    const of = `of ${total} ${total === 1 ? "clip" : "clips"}`;
    summary.textContent = clips.length
      ? `${page.start + 1}–${page.start + clips.length} ${of}${matching}`
      : `No clips${matching}.`;
    prev.disabled = state.back.length === 0;
    next.disabled = state.page.next === null;
  };
  const first = () => {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), sort: SORT });
    const q = ctx.query();
    if (q) params.set("q", q);
    state.back = [];
    showFound(ctx, found, q).catch(ctx.report);
    return show({ url: `/play?${params}`, start: 0 }).catch(ctx.report);
  };
  next.addEventListener("click", () => {
    if (!state.page || !state.page.next) return;
    state.back.push(state.page);
    show({ url: state.page.next, start: state.page.start + state.page.size }).catch(ctx.report);
  });
  prev.addEventListener("click", () => {
    const page = state.back.pop();
    if (page) show(page).catch(ctx.report);
  });
  first();
  return { search: first };
}

async function showFound(ctx, found, q) {
  found.replaceChildren();
  if (!q) return;
  const answer = await ctx.api.subsonic("search3", {
    query: q,
    artistCount: FOUND_ARTISTS,
    albumCount: FOUND_ALBUMS,
    songCount: 0,
  });
  if (q !== ctx.query()) return; // the words changed meanwhile
  const result = answer.searchResult3 || {};
  const artists = result.artist || [];
  const albums = result.album || [];
  if (artists.length) {
    const links = artists.map((a) => el("li", {}, el("a", { href: `#/artist/${encodeURIComponent(a.id)}`, text: a.name })));
    found.append(el("h3", { text: "Artists" }), el("ul", { className: "artists found-artists" }, ...links));
  }
  if (albums.length) {
    found.append(el("h3", { text: "Albums" }), el("ul", { className: "grid" }, ...albums.map((a) => albumTile(ctx, a))));
  }
  if (artists.length || albums.length) found.append(el("h3", { text: "Songs" }));
}

function isExternal(clip) {
  return !clip.audio_url.startsWith("/");
}

function clipRow(ctx, clip, song, playable) {
  const plays = el("span", { className: "plays", "data-plays-for": clip.id, text: playCount(clip.play_count) });
  const row = songRow(ctx, song, {
    play: () => ctx.player.playSongs(playable, playable.indexOf(song)),
    extra: [plays],
  });
  row.classList.add("clip");
  if (!isExternal(clip)) return row;
  // The page's Content-Security-Policy allows media from Mosic only: link out instead.
  for (const button of row.querySelectorAll("button")) button.disabled = true;
  row.querySelector(".star").hidden = true; // not a song of the library: nothing to star
  const link = el("a", { href: clip.audio_url, rel: "noopener noreferrer", target: "_blank", text: "Hosted elsewhere: open it" });
  const meta = row.querySelector(".meta");
  meta.append(meta.textContent ? " · " : "", link);
  return row;
}
