// For an admin: "Users" (who may listen, their keys: made and shown once, revoked) through
// REST /users, and "Library" (the music folders, the last scan, a new scan).

import { el } from "./dom.js";

// While a scan runs, its counts are read again this often.
const SCAN_POLL_MS = 2000;
const SCAN_FIELDS = [
  ["started_at", "Started"],
  ["finished_at", "Finished"],
  ["seen", "Files seen"],
  ["added", "Added"],
  ["updated", "Updated"],
  ["moved", "Moved"],
  ["missing", "Missing"],
  ["unchanged", "Unchanged"],
  ["failed", "Failed"],
];

const path = (name) => `/users/${encodeURIComponent(name)}`;
const post = (body) => ({
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(body),
});

export async function usersView(ctx, section) {
  const [users, folders] = await Promise.all([ctx.api.json("/users"), musicFolders(ctx)]);
  const shown = el("div", { className: "new-key", role: "status", "aria-live": "polite" });
  const table = el(
    "table",
    { className: "users" },
    el("caption", { className: "visually-hidden", text: "Users" }),
    el("thead", {}, el("tr", {}, ...["Name", "Role", "Music folders", "Keys"].map((h) => el("th", { scope: "col", text: h })))),
    el("tbody", {}, ...users.map((user) => userRow(ctx, user, shown))),
  );
  section.append(shown, table, newUserForm(ctx, folders, shown));
}

/** A key appears here once, in the answer that made it: Mosic keeps no copy to show again. */
function showKey(shown, who, key) {
  shown.replaceChildren(
    el("p", { text: `The key of ${who} (shown once: copy it now):` }),
    el("code", { className: "key", text: key }),
  );
}

function userRow(ctx, user, shown) {
  const keys = el("ul", { className: "keys" });
  const cell = el("td", {}, keys);
  const newKey = el("button", { type: "button", className: "quiet", text: `New key for ${user.name}` });
  newKey.addEventListener("click", async () => {
    try {
      const made = await ctx.api.json(`${path(user.name)}/keys`, post({ scope: "full" }));
      showKey(shown, user.name, made.key);
      await listKeys(ctx, user, keys);
    } catch (error) {
      ctx.report(error);
    }
  });
  cell.append(newKey);
  listKeys(ctx, user, keys).catch(ctx.report);
  const folders = user.music_folders ? user.music_folders.join(", ") : "All";
  const remove = el("button", { type: "button", className: "quiet danger", text: `Delete ${user.name}` });
  remove.hidden = user.name === ctx.me.name; // not oneself: the page would lose its key
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete ${user.name}, their keys, stars and playlists?`)) return;
    try {
      await ctx.api.rest(path(user.name), { method: "DELETE" });
      ctx.rerender();
    } catch (error) {
      ctx.report(error);
    }
  });
  cell.append(remove);
  return el("tr", {}, el("th", { scope: "row", text: user.name }), el("td", { text: user.role }), el("td", { text: folders }), cell);
}

async function listKeys(ctx, user, list) {
  const keys = await ctx.api.json(`${path(user.name)}/keys`);
  list.replaceChildren(
    ...keys.map((key) => {
      const revoke = el("button", { type: "button", className: "quiet", text: `Revoke key ${key.id}` });
      revoke.addEventListener("click", async () => {
        try {
          await ctx.api.rest(`${path(user.name)}/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
          await listKeys(ctx, user, list);
          ctx.say(`Revoked key ${key.id} of ${user.name}.`);
        } catch (error) {
          ctx.report(error);
        }
      });
      const made = new Date(key.created_at).toLocaleDateString();
      return el("li", {}, el("span", { text: `${key.id} · ${key.scope} · ${made}` }), revoke);
    }),
  );
}

function newUserForm(ctx, folders, shown) {
  const name = el("input", { id: "new-user-name", type: "text", required: true, maxLength: 64, autocomplete: "off" });
  const role = el(
    "select",
    { id: "new-user-role" },
    el("option", { value: "listener", text: "Listener" }),
    el("option", { value: "admin", text: "Admin" }),
  );
  const boxes = folders.map((f) => el("input", { type: "checkbox", value: f.name, id: `folder-${f.id}` }));
  const form = el(
    "form",
    { className: "card-form", "aria-labelledby": "new-user-heading" },
    el("h3", { id: "new-user-heading", text: "New user" }),
    el("label", { for: "new-user-name", text: "Name" }),
    name,
    el("label", { for: "new-user-role", text: "Role" }),
    role,
    el(
      "fieldset",
      {},
      el("legend", { text: "Music folders (none ticked: all)" }),
      ...boxes.map((box, i) => el("label", { className: "check", for: box.id }, box, ` ${folders[i].name}`)),
    ),
    el("button", { type: "submit", text: "Create user" }),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const ticked = boxes.filter((b) => b.checked).map((b) => b.value);
    const body = { name: name.value.trim(), role: role.value, music_folders: ticked.length ? ticked : null };
    try {
      const made = await ctx.api.json("/users", post(body));
      await ctx.rerender();
      showKey(document.querySelector(".new-key"), made.name, made.key.key);
    } catch (error) {
      ctx.report(error);
    }
  });
  return form;
}

async function musicFolders(ctx) {
  const answer = await ctx.api.subsonic("getMusicFolders");
  return (answer.musicFolders && answer.musicFolders.musicFolder) || [];
}

export async function libraryView(ctx, section) {
  const folders = await musicFolders(ctx);
  const status = el("dl", { className: "scan" });
  const scan = el("button", { type: "button", text: "Scan now" });
  const state = el("p", { className: "summary", role: "status" });
  section.append(
    el("h3", { text: "Music folders" }),
    el("ul", { className: "folders" }, ...folders.map((f) => el("li", { text: f.name }))),
    el("h3", { text: "Scan" }),
    state,
    status,
    scan,
  );
  let timer = 0;
  const show = async () => {
    const now = await ctx.api.json("/library/scan");
    state.textContent = now.scanning ? "Scanning…" : "No scan is running.";
    scan.disabled = now.scanning;
    status.replaceChildren(
      ...SCAN_FIELDS.flatMap(([field, label]) => [el("dt", { text: label }), el("dd", { text: shownValue(now[field]) })]),
    );
    clearTimeout(timer);
    if (now.scanning && !ctx.signal.aborted) timer = setTimeout(() => show().catch(ctx.report), SCAN_POLL_MS);
  };
  ctx.signal.addEventListener("abort", () => clearTimeout(timer));
  scan.addEventListener("click", async () => {
    scan.disabled = true;
    try {
      await ctx.api.rest("/library/scan", { method: "POST" });
      ctx.say("Started a scan of the music folders.");
    } catch (error) {
      ctx.report(error);
    }
    await show().catch(ctx.report);
  });
  await show();
}

function shownValue(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string" && /^\d{4}-\d\d-\d\dT/.test(value)) return new Date(value).toLocaleString();
  return String(value);
}
