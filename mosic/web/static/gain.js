// ReplayGain: how much to turn a song down (or up) so that songs play at one loudness.
// The figures come with the song: OpenSubsonic's `replayGain` (trackGain, albumGain, peaks,
// in dB) or the REST clip's `replay_gain` (track_gain_db, album_gain_db, …). A song without
// them plays as it is.

export const GAIN_MODES = ["track", "album", "off"];
export const DEFAULT_GAIN_MODE = "track";

/** The song's gain figures in one shape, or null when it has none. */
export function gainFigures(song) {
  const sub = song && song.replayGain;
  const rest = song && song.replay_gain;
  const pick = (...values) => values.find((v) => typeof v === "number" && Number.isFinite(v));
  const figures = {
    track: pick(sub && sub.trackGain, rest && rest.track_gain_db),
    album: pick(sub && sub.albumGain, rest && rest.album_gain_db),
    trackPeak: pick(sub && sub.trackPeak, rest && rest.track_peak),
    albumPeak: pick(sub && sub.albumPeak, rest && rest.album_peak),
    fallback: pick(sub && sub.fallbackGain),
  };
  const known = figures.track ?? figures.album ?? figures.fallback;
  return known === undefined ? null : figures;
}

/** The factor a volume is multiplied by: 1 when the mode is off or the song has no figures;
 * the mode's gain, else the other one, else the fallback; never so loud that the peak
 * clips. An <audio> element cannot go above 1, so a positive gain is capped there. */
export function gainFactor(song, mode = DEFAULT_GAIN_MODE) {
  const figures = mode === "off" ? null : gainFigures(song);
  if (!figures) return 1;
  const album = mode === "album";
  const gain = (album ? figures.album ?? figures.track : figures.track ?? figures.album) ??
    figures.fallback;
  const peak = album ? figures.albumPeak ?? figures.trackPeak : figures.trackPeak ?? figures.albumPeak;
  let factor = 10 ** (gain / 20);
  if (peak > 0) factor = Math.min(factor, 1 / peak);
  return Math.min(1, factor);
}
