// Albums (a grid of covers, a page at a time as it scrolls into view), an album's page in
// disc and track order, artists, and an artist's albums. Everything through Subsonic.

import { coverImage, el, iconButton } from "./dom.js";
import { fromSubsonic, songList, starButton, totalTime } from "./songs.js";

// Albums asked for at once: more than a large screen shows, so one page fills it.
export const ALBUM_PAGE = 60;
// Start fetching the next page this far before its place scrolls into view.
const AHEAD = "1200px";
// Cover sizes asked for, in pixels: steps Mosic keeps (mosic/core/covers.py), about twice a
// tile's width (at most ~190 CSS pixels) and an album page's cover, for sharp high-DPI screens.
const TILE_COVER = 384;
const PAGE_COVER = 512;
const ORDERS = [
  ["alphabeticalByName", "By name"],
  ["alphabeticalByArtist", "By artist"],
  ["newest", "Newest"],
  ["recent", "Recently played"],
  ["frequent", "Most played"],
  ["starred", "Favourites"],
];
const ORDER_KEY = "mosic.albumOrder";
// What the browser's performance timeline calls the first page's album names and covers
// (Element Timing): bench/web.py reads when they were painted.
export const TIMING_NAME = "album-name";
export const TIMING_COVER = "album-cover";
export const DRAWN_MARK = "mosic:albums-drawn";

export function albumTile(ctx, album, timed = false) {
  const cover = coverImage(ctx.api.coverUrl(album.coverArt, TILE_COVER), TILE_COVER / 2, { lazy: true });
  const name = el("span", { className: "name", text: album.name });
  if (timed) {
    name.setAttribute("elementtiming", TIMING_NAME);
    cover.setAttribute("elementtiming", TIMING_COVER);
  }
  const link = el("a", { href: `#/album/${encodeURIComponent(album.id)}`, className: "album-link" }, cover, name);
  const artist = album.artistId
    ? el("a", { href: `#/artist/${encodeURIComponent(album.artistId)}`, className: "artist", text: album.artist })
    : el("span", { className: "artist", text: album.artist || "" });
  return el("li", { className: "tile" }, link, artist);
}

export async function albumsView(ctx, section) {
  const order = el("select", { id: "album-order" });
  const saved = localStorage.getItem(ORDER_KEY);
  for (const [value, label] of ORDERS) order.append(el("option", { value, text: label, selected: value === saved }));
  const grid = el("ul", { className: "grid", "aria-labelledby": "view-heading" });
  const end = el("p", { className: "summary", role: "status" });
  section.append(
    el("div", { className: "view-tools" }, el("label", { for: "album-order", text: "Order" }), order),
    grid,
    end,
  );
  let pager = albumPager(ctx, grid, end, order.value);
  order.addEventListener("change", () => {
    localStorage.setItem(ORDER_KEY, order.value);
    pager.stop();
    grid.replaceChildren();
    pager = albumPager(ctx, grid, end, order.value);
  });
  ctx.signal.addEventListener("abort", () => pager.stop());
}

/** Fills ``grid`` a page at a time: the first at once, each next one when the end of the
 * grid (``end``) comes near the screen (IntersectionObserver), until a page comes back short. */
function albumPager(ctx, grid, end, type) {
  let offset = 0;
  let busy = false;
  let done = false;
  let stopped = false; // another order, or another screen: a page on its way is dropped
  const more = async () => {
    if (busy || done || stopped) return;
    busy = true;
    try {
      const answer = await ctx.api.subsonic("getAlbumList2", { type, size: ALBUM_PAGE, offset });
      if (stopped) return;
      const albums = (answer.albumList2 && answer.albumList2.album) || [];
      const first = offset === 0;
      grid.append(...albums.map((album) => albumTile(ctx, album, first)));
      if (first) requestAnimationFrame(() => performance.mark(DRAWN_MARK));
      offset += albums.length;
      done = albums.length < ALBUM_PAGE;
      end.textContent = done ? (offset ? `${offset} albums` : "No albums yet.") : "";
    } catch (error) {
      done = true;
      ctx.report(error);
    } finally {
      busy = false;
    }
    // Watched afresh: the observer says at once whether the end is still near (a tall screen,
    // or a scroll while this page was on its way), which it would not say again by itself.
    observer.unobserve(end);
    if (!done && !stopped) observer.observe(end);
  };
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) more();
  }, { rootMargin: AHEAD });
  more();
  return {
    stop: () => {
      stopped = true;
      observer.disconnect();
    },
  };
}

export async function albumView(ctx, section, id) {
  const answer = await ctx.api.subsonic("getAlbum", { id });
  const album = answer.album;
  const songs = (album.song || []).map(fromSubsonic);
  ctx.title(album.name);
  const play = iconButton("play", "Play album", { iconOnly: false });
  play.addEventListener("click", () => ctx.player.playSongs(songs, 0));
  const add = iconButton("add", "Add album to queue", { iconOnly: false, className: "quiet" });
  add.addEventListener("click", () => ctx.player.addSongs(songs));
  const artist = album.artistId
    ? el("a", { href: `#/artist/${encodeURIComponent(album.artistId)}`, text: album.artist })
    : el("span", { text: album.artist || "" });
  const facts = [album.year, `${songs.length} ${songs.length === 1 ? "song" : "songs"}`, totalTime(songs)];
  section.append(
    el(
      "div",
      { className: "album-head" },
      coverImage(ctx.api.coverUrl(album.coverArt, PAGE_COVER), PAGE_COVER / 2),
      el(
        "div",
        { className: "album-facts" },
        el("p", { className: "byline" }, artist),
        el("p", { className: "meta", text: facts.filter(Boolean).join(" · ") }),
      ),
      el("div", { className: "actions" }, play, add, starButton(ctx, album.id, "album", album.starred)),
    ),
    ...discs(ctx, songs, album.artist),
  );
}

/** The album's songs, in the order Mosic gives (disc, then track), a list per disc when
 * there are several. Play starts the song and queues the rest of the album after it. */
function discs(ctx, songs, albumArtist) {
  // A song's artist is shown where it is not the album's (a compilation, a guest).
  const detail = songs.some((s) => s.artist !== albumArtist) ? ["artist"] : [];
  const starts = songs.map((s, i) => i).filter((i) => i === 0 || songs[i].disc !== songs[i - 1].disc);
  if (starts.length < 2) return [songList(ctx, songs, { numbered: true, detail })];
  return starts.flatMap((from, n) => [
    el("h3", { text: `Disc ${songs[from].disc || 1}` }),
    songList(ctx, songs, { numbered: true, detail, from, to: starts[n + 1] ?? songs.length }),
  ]);
}

export async function artistsView(ctx, section) {
  const answer = await ctx.api.subsonic("getArtists");
  const index = (answer.artists && answer.artists.index) || [];
  const groups = index.map((group) =>
    el(
      "section",
      { className: "letter", "aria-label": group.name },
      el("h3", { text: group.name }),
      el(
        "ul",
        { className: "artists" },
        ...group.artist.map((artist) =>
          el(
            "li",
            {},
            el("a", { href: `#/artist/${encodeURIComponent(artist.id)}`, text: artist.name }),
            el("span", { className: "meta", text: albumCount(artist.albumCount) }),
          ),
        ),
      ),
    ),
  );
  section.append(...(groups.length ? groups : [el("p", { className: "summary", text: "No artists yet." })]));
}

export async function artistView(ctx, section, id) {
  const answer = await ctx.api.subsonic("getArtist", { id });
  const artist = answer.artist;
  ctx.title(artist.name);
  const albums = artist.album || [];
  section.append(
    el("p", { className: "meta", text: albumCount(albums.length) }),
    el("ul", { className: "grid", "aria-labelledby": "view-heading" }, ...albums.map((a) => albumTile(ctx, a))),
  );
}

function albumCount(n) {
  return n === 1 ? "1 album" : `${n || 0} albums`;
}
