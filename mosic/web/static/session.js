// The browser's Media Session: what the lock screen, the notification and the media keys show
// and do. Browsers without it (or without one of its actions) simply get less.

const ARTWORK_SIZE = 512;
const SEEK_OFFSET_S = 10; // when the system asks to skip without saying how far

function supported() {
  return "mediaSession" in navigator && typeof MediaMetadata === "function";
}

/** Wire the system's buttons to ``controls`` ({play, pause, previous, next, seekTo, now}). */
export function connectSession(controls) {
  if (!supported()) return;
  const actions = {
    play: () => controls.play(),
    pause: () => controls.pause(),
    previoustrack: () => controls.previous(),
    nexttrack: () => controls.next(),
    seekto: (details) => controls.seekTo(details.seekTime),
    seekbackward: (details) => controls.seekTo(controls.now() - (details.seekOffset || SEEK_OFFSET_S)),
    seekforward: (details) => controls.seekTo(controls.now() + (details.seekOffset || SEEK_OFFSET_S)),
  };
  for (const [action, handler] of Object.entries(actions)) {
    try {
      navigator.mediaSession.setActionHandler(action, handler);
    } catch {
      // This browser does not know that action.
    }
  }
}

/** Say what plays: title, artist, album and the cover at ``coverUrl(size)`` if any. */
export function describe(song, coverUrl) {
  if (!supported()) return;
  if (!song) {
    navigator.mediaSession.metadata = null;
    return;
  }
  const url = coverUrl(ARTWORK_SIZE);
  navigator.mediaSession.metadata = new MediaMetadata({
    title: song.title || "",
    artist: song.artist || "",
    album: song.album || "",
    artwork: url ? [{ src: new URL(url, location.href).href, sizes: `${ARTWORK_SIZE}x${ARTWORK_SIZE}` }] : [],
  });
}

export function showState(playing) {
  if (supported()) navigator.mediaSession.playbackState = playing ? "playing" : "paused";
}

export function showPosition(position, duration, rate) {
  if (!supported() || !navigator.mediaSession.setPositionState) return;
  if (!(Number.isFinite(duration) && duration > 0)) return;
  try {
    navigator.mediaSession.setPositionState({
      duration,
      position: Math.min(Math.max(position, 0), duration),
      playbackRate: rate || 1,
    });
  } catch {
    // A state the browser refuses (a rate of 0 while loading): the next update fixes it.
  }
}
