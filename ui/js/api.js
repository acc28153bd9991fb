// The HTTP API as the page uses it: the token, JSON requests whose errors are
// the server's problem+json, and event streams read with fetch (so the token
// goes in a header, never in a URL) that reconnect by themselves and resume
// after the last cursor they received.

export const TOKEN_KEY = "tether.token";

// The token is kept for this tab only (sessionStorage), never in
// localStorage: a dev server previewed through tether is served from the same
// origin, and its scripts could read what every tab of the origin shares. A
// token an earlier version left in localStorage is moved here and removed.
export const auth = {
  get token() {
    const kept = sessionStorage.getItem(TOKEN_KEY);
    if (kept) return kept;
    const old = localStorage.getItem(TOKEN_KEY);
    if (old) {
      localStorage.removeItem(TOKEN_KEY);
      sessionStorage.setItem(TOKEN_KEY, old);
    }
    return old || "";
  },
  set token(t) {
    localStorage.removeItem(TOKEN_KEY);
    t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY);
  },
  /** Called with the problem when the server answers 401. */
  onUnauthorized: () => {},
};

/** An error answered by the server (problem+json) or the network. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.code = problem?.type?.replace("urn:tether:error:", "") || (status ? `http_${status}` : "network");
  }
  /** "code (status): detail", as shown to people. */
  describe() {
    return this.status ? `${this.code} (${this.status}): ${this.message}` : `network error: ${this.message}`;
  }
}

function headers(extra) {
  const h = new Headers(extra || {});
  if (auth.token) h.set("Authorization", `Bearer ${auth.token}`);
  return h;
}

async function problemOf(res) {
  try { return await res.json(); } catch { return { detail: res.statusText }; }
}

/** fetch() with the token; a non-2xx answer throws an ApiError. */
export async function request(path, { method = "GET", body, json, headers: extra, signal, raw } = {}) {
  const init = { method, headers: headers(extra), signal };
  if (json !== undefined) {
    init.headers.set("Content-Type", "application/json");
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, { detail: e.message });
  }
  if (!res.ok) {
    const err = new ApiError(res.status, await problemOf(res));
    if (res.status === 401) auth.onUnauthorized(err);
    throw err;
  }
  if (raw) return res;
  if (res.status === 204 || res.status === 202 && res.headers.get("content-length") === "0") return null;
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

export const api = {
  get: (path, opts) => request(path, opts),
  post: (path, json, opts) => request(path, { ...opts, method: "POST", json }),
  del: (path, opts) => request(path, { ...opts, method: "DELETE" }),
};

/** Reads SSE frames from a fetch response: yields, per read, the list of
 *  whole frames it completed ({id, event, data}, data as text). */
export async function* sseFrames(res, signal) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort);
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // One pass over what arrived (no re-slicing per frame: a catch-up read can hold thousands).
      buf += value.includes("\r") ? value.replace(/\r\n?/g, "\n") : value;
      const frames = [];
      let pos = 0;
      let cut;
      while ((cut = buf.indexOf("\n\n", pos)) >= 0) {
        const block = buf.slice(pos, cut);
        pos = cut + 2;
        const frame = { id: null, event: "message", data: "" };
        let any = false;
        for (const line of block.split("\n")) {
          if (!line || line[0] === ":") continue;
          const i = line.indexOf(":");
          const field = i < 0 ? line : line.slice(0, i);
          const val = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
          if (field === "data") { frame.data += (any ? "\n" : "") + val; any = true; }
          else if (field === "id") frame.id = val;
          else if (field === "event") frame.event = val;
        }
        if (any) frames.push(frame);
      }
      buf = buf.slice(pos);
      if (frames.length) yield frames;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Events handed to a stream's consumer at once, at most. */
const SLICE = 1000;

/** Every open stream's state, for the connection indicator. */
export const streams = {
  all: new Set(),
  listeners: new Set(),
  changed() { for (const fn of this.listeners) fn(this.summary()); },
  summary() {
    // A stream refused for good (4xx) is its view's to explain, not the connection's.
    const states = [...this.all].map((s) => s.state).filter((s) => s !== "failed");
    if (states.includes("unauthorized")) return "unauthorized";
    if (states.includes("reconnecting")) return "reconnecting";
    if (states.includes("connecting")) return "connecting";
    return states.length ? "live" : "idle";
  },
};

/**
 * Follows an event stream: `path` (without `after`), starting after `after`.
 * `onEvents(list)` gets each batch of parsed frames ({cursor, event, data});
 * on a drop it reconnects (backing off up to 2 s) with `?after=<last cursor>`,
 * so nothing is missed or repeated. `after: null` starts from now (no
 * cursor sent until the first frame). A stream that has a last event
 * (`final: EventType.SESSION_ENDED`: the server ends a session's stream after it,
 * with a `stream.ended` frame) is over once that event or a `stream.ended`
 * frame came: its end is final, not a drop, and `onEnd()` is called instead
 * of reconnecting (state "ended"). Returns {close(), state, cursor}.
 */
export function follow(path, { after = 0, onEvents, onState, onFatal, onEnd, final = null } = {}) {
  const ctl = new AbortController();
  const s = { state: "connecting", cursor: after, reconnects: 0, close: () => { ctl.abort(); streams.all.delete(s); streams.changed(); } };
  const set = (state) => { s.state = state; onState?.(state); streams.changed(); };
  streams.all.add(s);
  streams.changed();
  let over = false; // the `final` event arrived: nothing comes after it
  (async () => {
    let delay = 250;
    while (!ctl.signal.aborted) {
      try {
        const sep = path.includes("?") ? "&" : "?";
        const url = s.cursor === null ? path : `${path}${sep}after=${s.cursor}`;
        const res = await fetch(url, {
          headers: headers({ Accept: "text/event-stream" }),
          signal: ctl.signal,
          cache: "no-store",
        });
        if (res.status === 401) {
          const err = new ApiError(401, await problemOf(res));
          set("unauthorized");
          auth.onUnauthorized(err);
          return;
        }
        if (!res.ok) {
          const err = new ApiError(res.status, await problemOf(res));
          if (res.status >= 400 && res.status < 500) { set("failed"); onFatal?.(err); return; }
          throw err;
        }
        set("live");
        delay = 250;
        for await (const frames of sseFrames(res, ctl.signal)) {
          // Big catch-up reads are handed over in slices, letting the page paint between them.
          for (let at = 0; at < frames.length; at += SLICE) {
            if (at) await new Promise((r) => setTimeout(r, 0));
            const batch = [];
            for (const frame of frames.slice(at, at + SLICE)) {
              let data;
              try { data = JSON.parse(frame.data); } catch { data = frame.data; }
              if (frame.id !== null && /^\d+$/.test(frame.id)) s.cursor = Number(frame.id);
              if (frame.event === "stream.ended" || final && (frame.event === final || data?.type === final)) over = true;
              batch.push({ cursor: s.cursor, event: frame.event, data });
            }
            onEvents(batch);
          }
        }
      } catch (e) {
        if (ctl.signal.aborted) return;
      }
      if (ctl.signal.aborted) return;
      if (over) {
        streams.all.delete(s);
        set("ended");
        onEnd?.();
        return;
      }
      s.reconnects++;
      set("reconnecting");
      await new Promise((r) => { const t = setTimeout(r, delay); ctl.signal.addEventListener("abort", () => { clearTimeout(t); r(); }); });
      delay = Math.min(delay * 2, 2000);
    }
  })();
  return s;
}

/** The token as a WebSocket subprotocol name: base64url, no padding. */
function tokenProtocol(token) {
  const bytes = new TextEncoder().encode(token);
  const b64 = btoa(String.fromCharCode(...bytes));
  return `tether.token.${b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

/**
 * A WebSocket to `path` on this server. A browser cannot put a header on a
 * WebSocket, so the token goes as a subprotocol, never in the URL: the
 * socket offers `tether` and `tether.token.<the token in base64url>`, and the
 * server, having checked the token, answers with `tether`.
 */
export function openSocket(path) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return auth.token ? new WebSocket(url, ["tether", tokenProtocol(auth.token)]) : new WebSocket(url);
}

/** Downloads `path` (with the token) as a file named `name`. */
export async function download(path, name) {
  const res = await request(path, { raw: true });
  const url = URL.createObjectURL(await res.blob());
  const a = Object.assign(document.createElement("a"), { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export const enc = encodeURIComponent;
