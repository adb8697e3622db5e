// Shares through Mosic's Subsonic API with the subsonic-api package, as a web or desktop app
// built on it would: make one of songs (with an expiry) and one of an album, list them, change
// and delete them; another user tries to change and delete them. Prints what it saw as JSON
// for tests/test_shares.py.
// Env: MOSIC_URL, MOSIC_KEY (the owner's, by API key), MOSIC_OTHER (another user's key),
// MOSIC_SONGS (a JSON list of song ids), MOSIC_ALBUM (an album id), MOSIC_EXPIRES (ms).
import { SubsonicAPI } from "subsonic-api";

const env = process.env;
const owner = new SubsonicAPI({ url: env.MOSIC_URL, auth: { apiKey: env.MOSIC_KEY } });
const other = new SubsonicAPI({ url: env.MOSIC_URL, auth: { apiKey: env.MOSIC_OTHER } });
const songs = JSON.parse(env.MOSIC_SONGS);

// A failed answer becomes its code; a good one must say "ok".
const ok = (answer) => {
  if (answer.status !== "ok") throw new Error(JSON.stringify(answer));
  return answer;
};
const code = (answer) => (answer.status === "ok" ? "ok" : answer.error.code);
const seen = (share) => ({
  id: share.id,
  url: share.url,
  description: share.description ?? null,
  username: share.username,
  expires: share.expires ? new Date(share.expires).getTime() : null,
  visitCount: share.visitCount,
  entry: (share.entry ?? []).map((song) => song.id),
});

const out = {};
const bySongs = ok(await owner.createShare({
  id: songs, description: "For the road", expires: Number(env.MOSIC_EXPIRES),
})).shares.share[0];
out.songs = seen(bySongs);
const byAlbum = ok(await owner.createShare({ id: env.MOSIC_ALBUM })).shares.share[0];
out.album = seen(byAlbum);

// The page is public: fetched with no credentials at all.
const page = await fetch(bySongs.url);
out.page = { status: page.status, type: page.headers.get("content-type") };
await page.arrayBuffer();

out.listed = (ok(await owner.getShares()).shares.share ?? []).map(seen);
const mine = [bySongs.id, byAlbum.id];
out.otherListed = (ok(await other.getShares()).shares.share ?? []).filter((s) => mine.includes(s.id)).length;
out.otherUpdate = code(await other.updateShare({ id: bySongs.id, description: "Mine now" }));
out.otherDelete = code(await other.deleteShare({ id: bySongs.id }));

ok(await owner.updateShare({ id: bySongs.id, description: "For the way back", expires: 0 }));
ok(await owner.deleteShare({ id: byAlbum.id }));
out.after = (ok(await owner.getShares()).shares.share ?? []).map(seen);
out.deletedAgain = code(await owner.deleteShare({ id: byAlbum.id }));
out.unknown = code(await owner.createShare({ id: "al-0000000000000000" }));

process.stdout.write(JSON.stringify(out));
