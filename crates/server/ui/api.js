// Calls to Lathe's API from the dashboard. The key is typed once and kept in this tab's session
// storage; every call sends it as `Authorization: Bearer <key>`. Paths are resolved against the
// page (`/v1/models` → `../v1/models` from `/ui/`), so the dashboard also works behind a proxy
// that serves Lathe under a path prefix.

const KEY = "lathe.key";

/** The key in use, or "" when none was given. */
export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

/** Keeps `key` for this tab ("" forgets it). */
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

let settings = { auth_required: false, key: null };

/** Reads `/ui/config.json` with the key in use: whether keys are required and the key's scopes. */
export async function loadSettings() {
  const response = await fetch("config.json", { headers: headers() });
  if (response.ok) settings = await response.json();
  return settings;
}

/** The key in use as the server sees it: null, "invalid" or `{name, scopes}`. */
export function keyHolder() {
  return settings.key;
}

/** True when the server asks for a key and no valid one was given. */
export function keyMissing() {
  return settings.auth_required && (!settings.key || settings.key === "invalid");
}

/** True when calls needing `scope` (`admin`, `infer` or `read`) will be let through. */
export function allows(scope) {
  if (!settings.auth_required) return true;
  const held = (settings.key && settings.key.scopes) || [];
  return held.includes("admin") || held.includes(scope) || (scope === "read" && held.includes("infer"));
}

/** An error the API answered, with its status and the server's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  const key = apiKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  return h;
}

/** An API path (`/v1/…`) relative to the page under `/ui/`. */
function url(path) {
  return path.startsWith("/") ? `..${path}` : path;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    const text = typeof body.error === "string" ? body.error : body.error && body.error.message;
    if (text) message = `${response.status}: ${text}`;
  } catch (_) {
    // Not JSON: the status line says enough.
  }
  if (response.status === 401) message += " (type an API key above)";
  if (response.status === 403) message += " (this key lacks the scope; an admin key can do it)";
  return new ApiError(response.status, message);
}

function request(method, body, signal, extra = {}) {
  const init = { method, headers: headers(extra), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers.set("Content-Type", "application/json");
  }
  return init;
}

/**
 * Sends a request and returns the parsed JSON answer; throws ApiError on a non-2xx status.
 * `ifMatch` makes a label or traffic change conditional on the value the page last read (a
 * stale one is 409, shown with the current value).
 */
export async function api(path, options = {}) {
  return (await apiTagged(path, options)).body;
}

/** As `api`, returning `{body, tag}`: the answer and its `ETag` header (null without one). */
export async function apiTagged(path, { method = "GET", body, signal, ifMatch } = {}) {
  const response = await fetch(url(path), request(method, body, signal, ifMatch ? { "If-Match": ifMatch } : {}));
  if (!response.ok) throw await failure(response);
  const text = await response.text();
  return { body: text ? JSON.parse(text) : null, tag: response.headers.get("ETag") };
}

/**
 * Every model with its versions' kinds: the admin listing when the key allows it, else the
 * served names with the manifest of the version each routes to (read scope), without labels
 * and traffic.
 */
export async function catalog(signal) {
  if (allows("admin")) {
    const { models } = await api("/v1/admin/models", { signal });
    return { models, complete: true };
  }
  const { models: names } = await api("/v1/models", { signal });
  const models = await Promise.all(
    names.map(async (name) => {
      const m = await api(`/v1/models/${encodeURIComponent(name)}/manifest`, { signal });
      return { name, versions: [{ version: m.version, kind: m.kind, created_at: m.created_at, state: "READY" }] };
    }),
  );
  return { models, complete: false };
}

/** A catalog model's newest version (the last listed), or null when it has none. */
export function newest(model) {
  return model.versions.length ? model.versions[model.versions.length - 1] : null;
}

/** The text of a GET (for `/metrics`). */
export async function apiText(path, { signal } = {}) {
  const response = await fetch(url(path), { headers: headers(), signal });
  if (!response.ok) throw await failure(response);
  return response.text();
}

/**
 * Reads a server-sent event stream (fetch, so that the key travels as a header, which
 * EventSource cannot send). Calls `onEvent(name, data)` per event (`data` parsed as JSON when
 * it is JSON); resolves when the stream ends. Lines may end in CRLF, LF or CR, as the
 * specification allows; an event the stream cut off before its blank line is discarded, as
 * browsers do. Abort through `signal`.
 */
export async function eventStream(path, { method = "GET", body, signal, onEvent }) {
  const response = await fetch(url(path), request(method, body, signal, { Accept: "text/event-stream" }));
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let [pending, buffer] = ["", ""];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    // A CR at the end of a chunk may be the first half of a CRLF: keep it for the next one.
    pending += value;
    const cut = pending.endsWith("\r") ? pending.length - 1 : pending.length;
    buffer += pending.slice(0, cut).replace(/\r\n?/g, "\n");
    pending = pending.slice(cut);
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end), onEvent);
      buffer = buffer.slice(end + 2);
    }
  }
}

function dispatch(block, onEvent) {
  let name = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch (_) {
    // `[DONE]` and other plain data stay text.
  }
  onEvent(name, parsed);
}
