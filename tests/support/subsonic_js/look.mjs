// Logs in to Mosic's Subsonic API as a given user with the subsonic-api package (token auth or
// an API key), looks at everything a user keeps, tries to change another's playlists, and
// prints what it saw as JSON for tests/test_subsonic_users.py.
// Env: MOSIC_URL, MOSIC_USER, MOSIC_KEY, MOSIC_AUTH ("token" or "apiKey"),
// MOSIC_SONGS (a JSON list of song ids), MOSIC_PLAYLISTS (a JSON object of playlist ids by
// what the test calls them), MOSIC_STAR (a song id this user stars, or "").
import { SubsonicAPI } from "subsonic-api";

const env = process.env;
const auth = env.MOSIC_AUTH === "apiKey"
  ? { apiKey: env.MOSIC_KEY }
  : { username: env.MOSIC_USER, password: env.MOSIC_KEY };
const api = new SubsonicAPI({ url: env.MOSIC_URL, auth });
const songIds = JSON.parse(env.MOSIC_SONGS);
const playlistIds = JSON.parse(env.MOSIC_PLAYLISTS);

// A failed answer becomes its code; a good one must say "ok".
const ok = (answer) => {
  if (answer.status !== "ok") throw new Error(JSON.stringify(answer));
  return answer;
};
const code = (answer) => (answer.status === "ok" ? "ok" : answer.error.code);

const seen = {};
seen.ping = ok(await api.ping()).status;
if (env.MOSIC_STAR) ok(await api.star({ id: env.MOSIC_STAR }));

const { starred2 } = ok(await api.getStarred2());
seen.starred2 = {
  song: (starred2.song ?? []).map((s) => s.id),
  album: (starred2.album ?? []).map((a) => a.id),
  artist: (starred2.artist ?? []).map((a) => a.id),
};
const { starred } = ok(await api.getStarred());
seen.starred = (starred.song ?? []).map((s) => s.id);

// What this user's copy of each song says: the marks and counts are the caller's.
seen.songs = {};
for (const id of songIds) {
  const { song } = ok(await api.getSong({ id }));
  seen.songs[id] = {
    title: song.title,
    starred: song.starred ?? null,
    userRating: song.userRating ?? null,
    playCount: song.playCount ?? null,
    played: song.played ?? null,
  };
}

const { playQueue } = ok(await api.getPlayQueue());
seen.playQueue = {
  username: playQueue.username,
  entry: (playQueue.entry ?? []).map((s) => s.id),
  current: playQueue.current ?? null,
};
const { bookmarks } = ok(await api.getBookmarks());
seen.bookmarks = (bookmarks.bookmark ?? []).map((b) => ({ id: b.entry.id, username: b.username }));

const { playlists } = ok(await api.getPlaylists());
seen.playlists = (playlists.playlist ?? []).map((p) => ({
  id: p.id, name: p.name, owner: p.owner, public: p.public,
}));
seen.playlist = {};
seen.update = {};
seen.delete = {};
for (const [what, id] of Object.entries(playlistIds)) {
  const got = await api.getPlaylist({ id });
  seen.playlist[what] = got.status === "ok" ? got.playlist.entry.map((s) => s.id) : got.error.code;
  seen.update[what] = code(await api.updatePlaylist({ playlistId: id, name: "Taken by " + env.MOSIC_USER }));
  seen.delete[what] = code(await api.deletePlaylist({ id }));
}

const { nowPlaying } = ok(await api.getNowPlaying());
seen.nowPlaying = (nowPlaying.entry ?? []).map((e) => ({
  username: e.username, id: e.id, playerName: e.playerName,
}));

process.stdout.write(JSON.stringify(seen));
