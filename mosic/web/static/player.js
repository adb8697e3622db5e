// The Mosic web player. Plain JavaScript, no build step: it uses only the public API (with the
// X-API-Key header) and the signed stream_url of each clip, as any other client would.
"use strict";

(() => {
  const KEY_STORAGE = "mosic.apiKey";
  const PAGE_SIZE = 20;
  const SORT = "-created_at"; // newest first, so an upload shows at the top
  const SEEK_STEP_S = 5;
  const SEARCH_DELAY_MS = 250;
  const MAX_POINTS = 10000; // the waveform endpoint's limit

  const $ = (id) => document.getElementById(id);
  const audio = $("audio");
  const seek = $("seek");
  const wave = $("wave");

  const state = {
    key: null,
    page: null, // {url, start}: the page on screen
    back: [], // the pages before it
    current: null, // the clip in the <audio> element
    peaks: null, // its waveform, once fetched
    relinked: false, // whether the current clip's expired link was renewed once already
    searchTimer: 0,
  };

  class Refused extends Error {}

  // -- talking to the API ------------------------------------------------------------------

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("X-API-Key", state.key);
    headers.set("Accept", "application/json");
    const resp = await fetch(path, { ...options, headers, cache: "no-store" });
    if (resp.status === 401) {
      askForKey("Mosic did not accept that key.");
      throw new Refused("unauthorized");
    }
    if (!resp.ok) throw new Error(await problem(resp));
    return resp;
  }

  async function problem(resp) {
    try {
      const body = await resp.json();
      return body.description || body.title || `HTTP ${resp.status}`;
    } catch {
      return `HTTP ${resp.status}`;
    }
  }

  function nextLink(header) {
    // Link: <path?query>; rel="next" — followed only within this origin.
    const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header || "");
    if (!match) return null;
    const url = new URL(match[1], location.href);
    return url.origin === location.origin ? url.pathname + url.search : null;
  }

  function say(message, isError = false) {
    const status = $("status");
    status.textContent = message;
    status.classList.toggle("error", isError);
  }

  function report(error) {
    if (!(error instanceof Refused)) say(error.message || String(error), true);
  }

  // -- the key -----------------------------------------------------------------------------

  function askForKey(message = "") {
    localStorage.removeItem(KEY_STORAGE);
    state.key = null;
    audio.pause();
    $("player").hidden = true;
    $("library").hidden = true;
    $("forget").hidden = true;
    $("who").hidden = true;
    $("sign-in").hidden = false;
    $("key-error").textContent = message;
    $("api-key").value = "";
    $("api-key").focus();
  }

  // The key is tried first (whose is it?): a refused one asks again, with one request.
  async function useKey(key) {
    state.key = key;
    const me = await (await api("/me")).json();
    localStorage.setItem(KEY_STORAGE, key);
    $("sign-in").hidden = true;
    $("library").hidden = false;
    $("forget").hidden = false;
    // Beside "Forget key", so a shared screen says whose key it uses.
    $("who").textContent = `Signed in as ${me.name}${me.role === "admin" ? " (admin)" : ""}`;
    $("who").hidden = false;
    firstPage();
  }

  // -- the list ----------------------------------------------------------------------------

  function firstPage() {
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), sort: SORT });
    const q = $("search").value.trim();
    if (q) params.set("q", q);
    state.back = [];
    showPage({ url: `/play?${params}`, start: 0 }).catch(report);
  }

  async function showPage(page) {
    const resp = await api(page.url);
    const clips = await resp.json();
    const total = Number(resp.headers.get("X-Total-Count") || clips.length);
    const next = nextLink(resp.headers.get("Link"));
    state.page = { ...page, next, size: clips.length };
    renderList(clips);
    const q = $("search").value.trim();
    const found = q ? ` matching “${q}”` : "";
    const of = `of ${total} ${total === 1 ? "clip" : "clips"}`;
    $("summary").textContent = clips.length
      ? `${page.start + 1}–${page.start + clips.length} ${of}${found}`
      : `No clips${found}.`;
    $("prev").disabled = state.back.length === 0;
    $("next").disabled = next === null;
  }

  function renderList(clips) {
    const list = $("clips");
    list.replaceChildren(...clips.map(clipItem));
    markCurrent();
  }

  function clipItem(clip) {
    const item = document.createElement("li");
    item.className = "clip";
    item.dataset.id = clip.id;

    const play = document.createElement("button");
    play.type = "button";
    play.className = "round";
    play.textContent = `Play ${clip.title}`;
    play.addEventListener("click", () => start(clip));

    const text = document.createElement("div");
    const title = document.createElement("p");
    title.className = "title";
    title.textContent = clip.title;
    const meta = document.createElement("p");
    meta.className = "meta";
    meta.textContent = [clip.artist, clip.album, clock(clip.duration)].filter(Boolean).join(" · ");
    text.append(title, meta);

    if (isExternal(clip)) {
      // The page's Content-Security-Policy allows media from Mosic only: link out instead.
      play.disabled = true;
      const link = document.createElement("a");
      link.href = clip.audio_url;
      link.rel = "noopener noreferrer";
      link.target = "_blank";
      link.textContent = "Hosted elsewhere: open it";
      meta.append(" · ", link);
    }

    const plays = document.createElement("span");
    plays.className = "plays";
    plays.dataset.playsFor = clip.id;
    plays.textContent = playCount(clip.play_count);
    item.append(play, text, plays);
    return item;
  }

  function isExternal(clip) {
    return !clip.audio_url.startsWith("/");
  }

  function playCount(n) {
    return n === 1 ? "1 play" : `${n} plays`;
  }

  function clock(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) return "0:00";
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
  }

  async function refreshCount(id) {
    const stats = await (await api(`/play/${id}/stats`)).json();
    for (const node of document.querySelectorAll(`[data-plays-for="${id}"]`)) {
      node.textContent = playCount(stats.play_count);
    }
  }

  // -- uploads -----------------------------------------------------------------------------

  async function uploadAll(files) {
    const audioFiles = [...files];
    if (!state.key || audioFiles.length === 0) return;
    const done = [];
    for (const [i, file] of audioFiles.entries()) {
      $("upload-name").textContent = `Uploading ${file.name} (${i + 1} of ${audioFiles.length})`;
      $("upload-row").hidden = false;
      const { status, body } = await send(file);
      if (status === 201) done.push(body.title);
      else if (status === 401) return askForKey("Mosic did not accept that key.");
      else if (status === 0) say(`${file.name}: the upload did not reach Mosic.`, true);
      else say(`${file.name}: ${(body && (body.description || body.title)) || status}`, true);
    }
    $("upload-row").hidden = true;
    $("upload").value = "";
    if (done.length) {
      say(`Uploaded ${done.join(", ")}.`);
      $("search").value = "";
      firstPage();
    }
  }

  function send(file) {
    // XMLHttpRequest, not fetch: only it reports upload progress.
    return new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      const bar = $("upload-progress");
      bar.value = 0;
      xhr.open("POST", "/play/upload");
      xhr.setRequestHeader("X-API-Key", state.key);
      xhr.responseType = "json";
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) bar.value = (100 * event.loaded) / event.total;
      });
      xhr.addEventListener("load", () => {
        bar.value = 100;
        resolve({ status: xhr.status, body: xhr.response });
      });
      xhr.addEventListener("error", () => resolve({ status: 0, body: null }));
      const form = new FormData();
      form.append("file", file, file.name);
      xhr.send(form);
    });
  }

  function carriesFiles(event) {
    return state.key !== null && [...(event.dataTransfer?.types || [])].includes("Files");
  }

  function watchDrops() {
    const overlay = $("drop");
    document.addEventListener("dragover", (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      overlay.hidden = false;
    });
    document.addEventListener("dragleave", (event) => {
      if (event.relatedTarget === null) overlay.hidden = true;
    });
    document.addEventListener("drop", (event) => {
      overlay.hidden = true;
      if (!carriesFiles(event)) return;
      event.preventDefault();
      uploadAll(event.dataTransfer.files).catch(report);
    });
  }

  // -- playing -----------------------------------------------------------------------------

  function start(clip) {
    $("player").hidden = false;
    if (state.current && state.current.id === clip.id) {
      resume();
      return;
    }
    state.current = clip;
    state.peaks = null;
    state.relinked = false;
    audio.src = clip.stream_url;
    $("now-title").textContent = clip.title;
    $("now-detail").textContent = [clip.artist, clip.album].filter(Boolean).join(" · ");
    markCurrent();
    update();
    loadPeaks(clip);
    resume();
  }

  function resume() {
    audio.play().catch((error) => {
      // A newer choice interrupted this one: nothing went wrong.
      if (error.name !== "AbortError") say(`Cannot play: ${error.message}`, true);
    });
  }

  function markCurrent() {
    for (const item of document.querySelectorAll(".clip")) {
      const current = state.current !== null && item.dataset.id === state.current.id;
      if (current) item.setAttribute("aria-current", "true");
      else item.removeAttribute("aria-current");
    }
  }

  async function relink() {
    // A signed link expires (MOSIC_SIGNED_URL_TTL): fetch the clip again for a fresh one.
    const clip = state.current;
    if (!clip || state.relinked) {
      say("This clip cannot be played.", true);
      return;
    }
    state.relinked = true;
    const position = audio.currentTime;
    const fresh = await (await api(`/play/${clip.id}`)).json();
    state.current = fresh;
    audio.src = fresh.stream_url;
    audio.currentTime = position;
    resume();
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
      const moves = {
        ArrowRight: SEEK_STEP_S,
        ArrowUp: SEEK_STEP_S,
        ArrowLeft: -SEEK_STEP_S,
        ArrowDown: -SEEK_STEP_S,
      };
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
    // The server counts a listen when the stream starts; show its count, not a guess.
    for (const name of ["playing", "ended"]) {
      audio.addEventListener(name, () => {
        if (state.current) refreshCount(state.current.id).catch(report);
      });
    }
    audio.addEventListener("error", () => relink().catch(report));
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

  // -- the seek bar's picture --------------------------------------------------------------

  async function loadPeaks(clip) {
    if (!clip.waveform_url) return; // no peaks for this clip: a plain track is drawn
    const url = new URL(clip.waveform_url, location.href);
    if (url.origin !== location.origin) return;
    url.searchParams.set("points", String(Math.min(MAX_POINTS, Math.max(1, wave.width))));
    try {
      const peaks = await (await api(url.pathname + url.search)).json();
      if (state.current === clip && validPeaks(peaks)) {
        state.peaks = peaks;
        draw();
      }
    } catch (error) {
      if (error instanceof Refused) return;
      state.peaks = null; // the plain track stays; playing does not depend on the picture
    }
  }

  // audiowaveform JSON, version 2: per point and channel a min and a max, in 8 or 16 bits.
  function validPeaks(p) {
    return (
      p &&
      p.version === 2 &&
      (p.bits === 8 || p.bits === 16) &&
      Number.isInteger(p.length) &&
      p.length > 0 &&
      Number.isInteger(p.channels || 1) &&
      Array.isArray(p.data) &&
      p.data.length >= 2 * p.length * (p.channels || 1)
    );
  }

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
    const colours = {
      played: style.getPropertyValue("--wave-played").trim(),
      rest: style.getPropertyValue("--wave-rest").trim(),
    };
    const total = duration();
    const split = total > 0 ? Math.round((Math.min(audio.currentTime, total) / total) * width) : 0;
    if (state.peaks) drawPeaks(ctx, state.peaks, width, height, split, colours);
    else drawTrack(ctx, width, height, split, colours);
  }

  function drawPeaks(ctx, peaks, width, height, split, colours) {
    const channels = peaks.channels || 1;
    const full = 2 ** (peaks.bits - 1);
    const middle = height / 2;
    for (let x = 0; x < width; x++) {
      // The points that fall in this column of pixels; each column shows their extremes.
      const from = Math.floor((x * peaks.length) / width);
      const to = Math.max(from + 1, Math.floor(((x + 1) * peaks.length) / width));
      let low = 0;
      let high = 0;
      for (let i = from; i < to && i < peaks.length; i++) {
        for (let c = 0; c < channels; c++) {
          low = Math.min(low, peaks.data[2 * (i * channels + c)]);
          high = Math.max(high, peaks.data[2 * (i * channels + c) + 1]);
        }
      }
      const top = middle - (high / full) * middle;
      const bottom = middle - (low / full) * middle;
      ctx.fillStyle = x < split ? colours.played : colours.rest;
      ctx.fillRect(x, top, 1, Math.max(1, bottom - top));
    }
  }

  function drawTrack(ctx, width, height, split, colours) {
    const thickness = Math.max(2, Math.round(height / 8));
    const y = Math.round((height - thickness) / 2);
    ctx.fillStyle = colours.rest;
    ctx.fillRect(0, y, width, thickness);
    ctx.fillStyle = colours.played;
    ctx.fillRect(0, y, split, thickness);
    ctx.beginPath();
    const knob = Math.min(Math.max(split, thickness), width - thickness);
    ctx.arc(knob, height / 2, thickness * 1.5, 0, 2 * Math.PI);
    ctx.fill();
  }

  // -- wiring ------------------------------------------------------------------------------

  function wire() {
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("api-key").value.trim();
      if (!key) return;
      // Once accepted, the field that had the focus is gone: keep the keyboard's place.
      useKey(key)
        .then(() => $("search").focus())
        .catch(report);
    });
    $("forget").addEventListener("click", () => askForKey());
    $("search-form").addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(state.searchTimer);
      firstPage();
    });
    $("search").addEventListener("input", () => {
      clearTimeout(state.searchTimer);
      state.searchTimer = setTimeout(firstPage, SEARCH_DELAY_MS);
    });
    $("next").addEventListener("click", () => {
      const page = state.page;
      if (!page || !page.next) return;
      state.back.push(page);
      showPage({ url: page.next, start: page.start + page.size }).catch(report);
    });
    $("prev").addEventListener("click", () => {
      const page = state.back.pop();
      if (page) showPage(page).catch(report);
    });
    $("upload").addEventListener("change", (event) => uploadAll(event.target.files).catch(report));
    watchDrops();
    watchSeekBar();
    watchAudio();
  }

  wire();
  const saved = localStorage.getItem(KEY_STORAGE);
  if (saved) useKey(saved).catch(report);
  else askForKey();
})();
