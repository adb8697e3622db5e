// Small DOM helpers shared by the player and the library's screens. No framework: elements
// are made with createElement, so nothing inline needs the page's policy to allow it.

const SVG = "http://www.w3.org/2000/svg";

// 24x24 outlines drawn with one path each; shown beside (or instead of) a control's text,
// always aria-hidden: a control's accessible name comes from its label.
const ICONS = {
  play: "M8 5v14l11-7z",
  pause: "M7 5h4v14H7zM13 5h4v14h-4z",
  previous: "M6 6h2v12H6zM9.5 12 18 18V6z",
  next: "M16 6h2v12h-2zM6 18l8.5-6L6 6z",
  queue: "M4 6h12v2H4zm0 5h12v2H4zm0 5h8v2H4zm12 0 5-3v6z",
  lyrics: "M4 5h16v2H4zm0 4h10v2H4zm0 4h16v2H4zm0 4h10v2H4z",
  add: "M11 5h2v6h6v2h-6v6h-2v-6H5v-2h6z",
  star: "m12 3 2.8 5.7 6.2.9-4.5 4.4 1 6.2L12 17.3 6.5 20.2l1-6.2L3 9.6l6.2-.9z",
  volume: "M4 9v6h4l5 4V5L8 9zm12.5 3A4.5 4.5 0 0 0 14 8v8a4.5 4.5 0 0 0 2.5-4z",
  remove: "M6.4 5 12 10.6 17.6 5 19 6.4 13.4 12l5.6 5.6-1.4 1.4-5.6-5.6L6.4 19 5 17.6l5.6-5.6L5 6.4z",
  album: "M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zm0 6.5a2.5 2.5 0 1 1 0 5 2.5 2.5 0 0 1 0-5z",
};

/** ``el("p", {className: "x", text: "y"}, child…)``: properties set as properties, except
 * names with a dash (aria-*, data-*) and ``for``, which are attributes. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name.includes("-") || name === "for" || name === "role") {
      node.setAttribute(name, value === true ? "" : String(value));
    } else node[name] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

export function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** A button whose accessible name is ``label`` and which shows ``iconName`` (and the label
 * too, unless ``iconOnly``: then the label is its aria-label and its tooltip). */
export function iconButton(iconName, label, { iconOnly = true, className = "" } = {}) {
  const button = el("button", { type: "button", className: `icon-button ${className}`.trim() });
  button.append(icon(iconName));
  if (iconOnly) {
    button.setAttribute("aria-label", label);
    button.title = label;
  } else button.append(el("span", { text: label }));
  return button;
}

export function clock(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "0:00";
  const s = Math.floor(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

// A grid's covers are fetched as they come near the screen, not all at once: a browser opens
// six connections to a server, and covers off screen would hold up those on it. (Native lazy
// loading starts over a thousand pixels early.)
const NEAR_SCREEN = "300px";
const nearScreen = new IntersectionObserver(
  (entries) => {
    for (const entry of entries.filter((e) => e.isIntersecting)) {
      entry.target.src = entry.target.dataset.src;
      nearScreen.unobserve(entry.target);
    }
  },
  { rootMargin: NEAR_SCREEN },
);

/** A cover picture (``lazy``: once near the screen), or a drawn stand-in when there is none
 * (never a request that fails). */
export function coverImage(url, size, { lazy = false } = {}) {
  if (!url) {
    const blank = el("span", { className: "cover blank", "aria-hidden": "true" });
    blank.append(icon("album"));
    return blank;
  }
  const img = el("img", { className: "cover", alt: "", width: size, height: size, decoding: "async" });
  if (lazy) {
    img.dataset.src = url;
    nearScreen.observe(img);
  } else img.src = url;
  return img;
}

/** Whether a key press was meant for the control that has the focus (typing, a slider). */
export function typingIn(target) {
  return Boolean(
    target.closest && target.closest("input, textarea, select, [contenteditable], [role=slider]"),
  );
}
