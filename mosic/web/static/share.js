// A share's page: the songs someone shared, played in the browser without any key. Plain
// JavaScript, no build step. It reads /share/{id}/songs and plays each song's share-scoped
// stream_url; the page lists nothing but the share's songs.
"use strict";

(() => {
  const SEEK_STEP_S = 5;
  const GONE = "This share has expired, or its owner deleted it.";

  const $ = (id) => document.getElementById(id);
  const audio = $("audio");
  const seek = $("seek");
  const wave = $("wave");
  // /share/{id}: the id is the path's last part (the page loads nothing from elsewhere).
  const shareId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");

  const state = { songs: [], current: null };

  function say(message, isError = false) {
    const status = $("status");
    status.textContent = message;
    status.classList.toggle("error", isError);
  }

  function clock(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return "0:00";
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
  }

  // -- the share ---------------------------------------------------------------------------

  async function load() {
    const resp = await fetch(`/share/${encodeURIComponent(shareId)}/songs`, {
      headers: { Accept: "application/json" },
      cache: "no-store",
    });
    if (resp.status === 410) return gone();
    if (!resp.ok) return say(resp.status === 404 ? "No share has this address." : `HTTP ${resp.status}`, true);
    show(await resp.json());
  }

  function gone() {
    audio.pause();
    audio.removeAttribute("src");
    $("player").hidden = true;
    $("clips").replaceChildren();
    $("share-from").textContent = "";
    say(GONE, true);
  }

  function show(share) {
    state.songs = share.songs;
    const title = share.description || "Shared music";
    $("share-heading").textContent = title;
    document.title = `${title} · Mosic`;
    const count = share.songs.length === 1 ? "1 song" : `${share.songs.length} songs`;
    const until = share.expires_at ? ` · until ${new Date(share.expires_at).toLocaleString()}` : "";
    $("share-from").textContent = `Shared by ${share.owner} · ${count}${until}`;
    $("clips").replaceChildren(...share.songs.map(songItem));
    if (share.songs.length === 0) say("Nothing here can be played any more.");
  }

  function songItem(song) {
    const item = document.createElement("li");
    item.className = "clip";
    item.dataset.id = song.id;

    const play = document.createElement("button");
    play.type = "button";
    play.className = "round";
    play.textContent = `Play ${song.title}`;
    play.addEventListener("click", () => start(song));

    const text = document.createElement("div");
    const title = document.createElement("p");
    title.className = "title";
    title.textContent = song.title;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = [song.artist, song.album, clock(song.duration)].filter(Boolean).join(" · ");
    text.append(title, meta);
    item.append(play, text);
    return item;
  }

  // -- playing -----------------------------------------------------------------------------

  function start(song) {
    $("player").hidden = false;
    if (state.current && state.current.id === song.id) {
      resume();
      return;
    }
    state.current = song;
    audio.src = song.stream_url;
    $("now-title").textContent = song.title;
    $("now-detail").textContent = [song.artist, song.album].filter(Boolean).join(" · ");
    for (const item of document.querySelectorAll(".clip")) {
      if (item.dataset.id === song.id) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    }
    say("");
    update();
    resume();
  }

  function resume() {
    audio.play().catch((error) => {
      // A newer choice interrupted this one (AbortError), or the source could not be loaded
      // (NotSupportedError), which the element's "error" event reports: nothing to say here.
      if (error.name !== "AbortError" && error.name !== "NotSupportedError") {
        say(`Cannot play: ${error.message}`, true);
      }
    });
  }

  function playNext() {
    const at = state.songs.findIndex((song) => state.current && song.id === state.current.id);
    if (at >= 0 && at + 1 < state.songs.length) start(state.songs[at + 1]);
  }

  async function failed() {
    // The stream was refused: most likely the share expired or was deleted meanwhile.
    const resp = await fetch(`/share/${encodeURIComponent(shareId)}/songs`, { cache: "no-store" });
    if (resp.status === 410) gone();
    else say("This song cannot be played now.", true);
  }

  function duration() {
    if (Number.isFinite(audio.duration) && audio.duration > 0) return audio.duration;
    return state.current ? state.current.duration || 0 : 0;
  }

  function seekTo(seconds) {
    if (!state.current) return;
    audio.currentTime = Math.min(Math.max(seconds, 0), duration());
    update();
  }

  function watchSeekBar() {
    seek.addEventListener("click", (event) => {
      const box = seek.getBoundingClientRect();
      seekTo(((event.clientX - box.left) / box.width) * duration());
    });
    seek.addEventListener("keydown", (event) => {
      const moves = { ArrowRight: SEEK_STEP_S, ArrowUp: SEEK_STEP_S, ArrowLeft: -SEEK_STEP_S, ArrowDown: -SEEK_STEP_S };
      if (event.key in moves) seekTo(audio.currentTime + moves[event.key]);
      else if (event.key === "Home") seekTo(0);
      else if (event.key === "End") seekTo(duration());
      else return;
      event.preventDefault();
    });
    new ResizeObserver(draw).observe(seek);
  }

  function watchAudio() {
    for (const name of ["timeupdate", "durationchange", "seeking", "emptied"]) {
      audio.addEventListener(name, update);
    }
    audio.addEventListener("play", showToggle);
    audio.addEventListener("pause", showToggle);
    audio.addEventListener("ended", playNext);
    audio.addEventListener("error", () => failed().catch(() => say("This song cannot be played now.", true)));
    $("toggle").addEventListener("click", () => (audio.paused ? resume() : audio.pause()));
  }

  function showToggle() {
    const toggle = $("toggle");
    toggle.textContent = audio.paused ? "Resume" : "Pause";
    toggle.classList.toggle("pause", !audio.paused);
  }

  function update() {
    const total = duration();
    const now = Math.min(audio.currentTime || 0, total);
    seek.setAttribute("aria-valuemax", String(Math.round(total)));
    seek.setAttribute("aria-valuenow", String(Math.round(now)));
    seek.setAttribute("aria-valuetext", `${clock(now)} of ${clock(total)}`);
    $("time").textContent = `${clock(now)} / ${clock(total)}`;
    draw();
  }

  // The seek bar: a plain track, played part in the accent colour (player.css).
  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(wave.clientWidth * ratio));
    const height = Math.max(1, Math.round(wave.clientHeight * ratio));
    if (wave.width !== width || wave.height !== height) {
      wave.width = width;
      wave.height = height;
    }
    const ctx = wave.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const style = getComputedStyle(seek);
    const total = duration();
    const split = total > 0 ? Math.round((Math.min(audio.currentTime, total) / total) * width) : 0;
    const thickness = Math.max(2, Math.round(height / 8));
    const y = Math.round((height - thickness) / 2);
    ctx.fillStyle = style.getPropertyValue("--wave-rest").trim();
    ctx.fillRect(0, y, width, thickness);
    ctx.fillStyle = style.getPropertyValue("--wave-played").trim();
    ctx.fillRect(0, y, split, thickness);
    ctx.beginPath();
    const knob = Math.min(Math.max(split, thickness), width - thickness);
    ctx.arc(knob, height / 2, thickness * 1.5, 0, 2 * Math.PI);
    ctx.fill();
  }

  watchSeekBar();
  watchAudio();
  load().catch((error) => say(error.message || String(error), true));
})();
