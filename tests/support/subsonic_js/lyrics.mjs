// Asks Mosic's Subsonic API for lyrics with the subsonic-api package, as a player built on it
// would, and prints what it saw as JSON for tests/test_lyrics.py.
// Env: MOSIC_URL, MOSIC_KEY, MOSIC_SONGS (a JSON list of song ids), MOSIC_ARTIST, MOSIC_TITLE.
import { SubsonicAPI } from "subsonic-api";

const env = process.env;
const api = new SubsonicAPI({ url: env.MOSIC_URL, auth: { apiKey: env.MOSIC_KEY } });
const seen = { extensions: [], bySong: {} };
const { openSubsonicExtensions } = await api.getOpenSubsonicExtensions();
seen.extensions = openSubsonicExtensions.map((e) => [e.name, e.versions]);
for (const id of JSON.parse(env.MOSIC_SONGS)) {
  const answer = await api.getLyricsBySongId({ id });
  seen.bySong[id] = answer.status === "ok" ? answer.lyricsList.structuredLyrics ?? [] : answer.error.code;
}
const { lyrics } = await api.getLyrics({ artist: env.MOSIC_ARTIST, title: env.MOSIC_TITLE });
seen.byName = lyrics;
process.stdout.write(JSON.stringify(seen));
