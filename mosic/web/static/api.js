// Talking to Mosic as any other client does: the REST API with the X-API-Key header, and the
// Subsonic API (JSON, by POST form so the key stays out of URLs) with OpenSubsonic's apiKey.
// Only an <img src> cannot send a header or a form: a cover's URL carries the key in its
// query, as Subsonic apps' covers do (Mosic's access log records routes, never queries).

export const KEY_STORAGE = "mosic.apiKey";
const CLIENT = "mosic-web";
const SUBSONIC_VERSION = "1.16.1";
// Subsonic's answers to a key it does not take: wrong credentials, invalid API key.
const REFUSED_CODES = new Set([40, 44]);

/** Thrown when Mosic refused the key: the page has already asked for another. */
export class Refused extends Error {}

export class Api {
  /** ``onRefused(message)`` runs when Mosic does not take the key. */
  constructor(onRefused) {
    this.key = null;
    this.onRefused = onRefused;
  }

  refused() {
    this.onRefused("Mosic did not accept that key.");
    return new Refused("unauthorized");
  }

  async rest(path, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("X-API-Key", this.key);
    headers.set("Accept", "application/json");
    const resp = await fetch(path, { ...options, headers, cache: "no-store" });
    if (resp.status === 401) throw this.refused();
    if (!resp.ok) throw new Error(await problem(resp));
    return resp;
  }

  async json(path, options = {}) {
    return (await this.rest(path, options)).json();
  }

  /** ``method``'s answer (the inside of "subsonic-response"); list values repeat the name. */
  async subsonic(method, params = {}) {
    const form = new URLSearchParams({ apiKey: this.key, f: "json", v: SUBSONIC_VERSION, c: CLIENT });
    for (const [name, value] of Object.entries(params)) {
      for (const one of Array.isArray(value) ? value : [value]) {
        if (one !== undefined && one !== null) form.append(name, String(one));
      }
    }
    const resp = await fetch(`/rest/${method}`, { method: "POST", body: form, cache: "no-store" });
    if (!resp.ok) throw new Error(`${method}: HTTP ${resp.status}`);
    const answer = (await resp.json())["subsonic-response"];
    if (answer.status === "ok") return answer;
    const error = answer.error || {};
    if (REFUSED_CODES.has(error.code)) throw this.refused();
    throw new Error(error.message || `${method} failed`);
  }

  /** The URL of cover art ``id`` at about ``size`` pixels a side (null for none). */
  coverUrl(id, size) {
    if (!id) return null;
    const query = new URLSearchParams({ id, size: String(size), apiKey: this.key, c: CLIENT });
    return `/rest/getCoverArt?${query}`;
  }
}

export async function problem(resp) {
  try {
    const body = await resp.json();
    return body.description || body.title || `HTTP ${resp.status}`;
  } catch {
    return `HTTP ${resp.status}`;
  }
}

/** The REST ``Link: <…>; rel="next"`` target, followed only within this origin. */
export function nextLink(header) {
  const match = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header || "");
  if (!match) return null;
  const url = new URL(match[1], location.href);
  return url.origin === location.origin ? url.pathname + url.search : null;
}
