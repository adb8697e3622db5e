// Drives Mosic's Subsonic API with the subsonic-api package (GET requests), as a web or
// desktop app built on it would, and prints what it saw as JSON for the Python test.
// Env: MOSIC_URL, MOSIC_KEY, MOSIC_AUTH ("token" or "apiKey"), MOSIC_SONG (a song id).
import { SubsonicAPI } from "subsonic-api";

const { MOSIC_URL: url, MOSIC_KEY: key, MOSIC_AUTH: mode, MOSIC_SONG: songId } = process.env;
const auth = (secret) => (mode === "apiKey" ? { apiKey: secret } : { username: "mosic", password: secret });
const api = new SubsonicAPI({ url, auth: auth(key) });

const seen = {};
seen.ping = (await api.ping()).status;
const { musicFolders } = await api.getMusicFolders();
seen.folders = musicFolders.musicFolder.map((folder) => folder.id);
const { artists } = await api.getArtists();
seen.artists = artists.index.flatMap((index) => index.artist.map((artist) => artist.name));

// Symfonium-style sync: an empty quoted query, page by page.
seen.synced = [];
for (let offset = 0; ; offset += 2) {
  const { searchResult3 } = await api.search3({ query: '""', songCount: 2, songOffset: offset, artistCount: 0, albumCount: 0 });
  const songs = searchResult3.song ?? [];
  seen.synced.push(...songs.map((song) => song.id));
  if (songs.length < 2) break;
}

const { song } = await api.getSong({ id: songId });
const { album } = await api.getAlbum({ id: song.albumId });
seen.album = { name: album.name, songs: album.song.map((s) => s.title) };

const whole = await api.stream({ id: songId });
seen.streamed = (await whole.arrayBuffer()).byteLength;
const ranged = await api.custom("stream.view", { id: songId });
await ranged.arrayBuffer();
const part = await fetch(api.baseURL() + "rest/stream.view?" + new URL(ranged.url).searchParams, {
  headers: { Range: "bytes=0-9" },
});
seen.ranged = { status: part.status, bytes: (await part.arrayBuffer()).byteLength };

await api.scrobble({ id: songId, submission: true });

const wrong = new SubsonicAPI({ url, auth: auth("not-the-key") });
const failed = await wrong.ping();
seen.wrong = { status: failed.status, code: failed.error?.code };

process.stdout.write(JSON.stringify(seen));
