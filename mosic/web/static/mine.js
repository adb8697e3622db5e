// What the signed-in person keeps: playlists (theirs, and public ones they may see) and
// favourites (what they starred), through Subsonic.

import { clock, el, iconButton } from "./dom.js";
import { albumTile } from "./browse.js";
import { fromSubsonic, songList, totalTime } from "./songs.js";

export async function playlistsView(ctx, section) {
  const answer = await ctx.api.subsonic("getPlaylists");
  const playlists = (answer.playlists && answer.playlists.playlist) || [];
  const items = playlists.map((p) =>
    el(
      "li",
      {},
      el("a", { href: `#/playlist/${encodeURIComponent(p.id)}`, text: p.name }),
      el("span", { className: "meta", text: [`${p.songCount} songs`, clock(p.duration), p.owner].join(" · ") }),
    ),
  );
  section.append(
    items.length ? el("ul", { className: "playlists" }, ...items) : el("p", { className: "summary", text: "No playlists yet." }),
    saveQueueForm(ctx),
  );
}

/** "Save the queue as a playlist": the way to make one here. */
function saveQueueForm(ctx) {
  const name = el("input", { id: "playlist-name", type: "text", required: true, maxLength: 200, autocomplete: "off" });
  const form = el(
    "form",
    { className: "inline-form" },
    el("label", { for: "playlist-name", text: "New playlist from the queue" }),
    name,
    el("button", { type: "submit", text: "Save queue" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ids = ctx.player.queue.songs.map((s) => s.id);
    if (!ids.length) return ctx.say("The queue is empty: add songs to it first.", true);
    try {
      await ctx.api.subsonic("createPlaylist", { name: name.value.trim(), songId: ids });
      ctx.rerender();
      ctx.say(`Saved the queue as ${name.value.trim()}.`);
    } catch (error) {
      ctx.report(error);
    }
  });
  return form;
}

export async function playlistView(ctx, section, id) {
  const answer = await ctx.api.subsonic("getPlaylist", { id });
  const playlist = answer.playlist;
  const songs = (playlist.entry || []).map(fromSubsonic);
  ctx.title(playlist.name);
  const play = iconButton("play", "Play playlist", { iconOnly: false });
  play.addEventListener("click", () => ctx.player.playSongs(songs, 0));
  play.disabled = !songs.length;
  const facts = [playlist.owner, `${songs.length} songs`, totalTime(songs), playlist.comment];
  section.append(
    el("p", { className: "meta", text: facts.filter(Boolean).join(" · ") }),
    el("div", { className: "actions" }, play),
    songList(ctx, songs, { numbered: true }),
  );
}

export async function favouritesView(ctx, section) {
  const answer = await ctx.api.subsonic("getStarred2");
  const starred = answer.starred2 || {};
  const artists = starred.artist || [];
  const albums = starred.album || [];
  const songs = (starred.song || []).map(fromSubsonic);
  if (!artists.length && !albums.length && !songs.length) {
    section.append(el("p", { className: "summary", text: "Nothing starred yet: press a song's star to keep it here." }));
    return;
  }
  if (artists.length) {
    const links = artists.map((a) => el("li", {}, el("a", { href: `#/artist/${encodeURIComponent(a.id)}`, text: a.name })));
    section.append(el("h3", { text: "Artists" }), el("ul", { className: "artists" }, ...links));
  }
  if (albums.length) {
    section.append(el("h3", { text: "Albums" }), el("ul", { className: "grid" }, ...albums.map((a) => albumTile(ctx, a))));
  }
  if (songs.length) section.append(el("h3", { text: "Songs" }), songList(ctx, songs));
}
