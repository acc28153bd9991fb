// The inspector's shell: asks for the token only when the server wants one
// (a 401; kept for this tab in sessionStorage until "Forget token", which
// shows only while a token is in use), the navigation, how many sessions
// wait for a person, the connection indicator (live / reconnecting /
// offline, nothing when no stream is open), and the hash router that mounts
// one view at a time:
//   #/            sessions          #/sessions/{id}          one session
//   #/sessions/{id}/events          its raw events          #/server
//   #/files?path=dir                the workspace           #/activity
//   #/processes                     processes and ports     #/processes/{id}  one, its terminal
//   #/sessions/{id}/terminal        the agent's terminal, read-only

import { h, fill } from "./dom.js";
import { api, auth, streams, follow } from "./api.js";
import { EventType } from "./event-types.js";
import { failureSentence } from "./words.js";
import * as sessions from "./views/sessions.js";
import * as session from "./views/session.js";
import * as server from "./views/server.js";
import * as files from "./views/files.js";
import * as activity from "./views/activity.js";
import * as processes from "./views/processes.js";
import * as login from "./views/login.js";

// State the page exposes for debugging and for its browser tests.
window.tether = { sessions: {}, terminals: {}, route: null, conn: [], errors: [] };
// Script errors and CSP violations, kept so a test (or a person) can see them.
window.addEventListener("error", (e) => window.tether.errors.push(`error: ${e.message} at ${e.filename}:${e.lineno}`));
window.addEventListener("unhandledrejection", (e) => window.tether.errors.push(`unhandled rejection: ${e.reason}`));
document.addEventListener("securitypolicyviolation", (e) => window.tether.errors.push(`CSP: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`));

const main = document.getElementById("main");
const conn = document.getElementById("conn");
let unmount = null;

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = hash.split("?");
  const query = new URLSearchParams(qs || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "sessions" && parts[1]) return ["sessions", session, { id: parts[1], tab: parts[2] || null, query }];
  if (parts[0] === "server") return ["server", server, { query }];
  if (parts[0] === "files") return ["files", files, { query }];
  if (parts[0] === "activity") return ["activity", activity, { query }];
  if (parts[0] === "processes") return ["processes", processes, { id: parts[1] || null, query }];
  return ["sessions", sessions, { query }];
}

function render() {
  unmount?.();
  unmount = null;
  const [nav, view, params] = route();
  window.tether.route = location.hash || "#/";
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.toggleAttribute("aria-current", a.dataset.nav === nav);
  }
  unmount = view.mount(main, params) || null;
  // For screen readers and the keyboard: the new view is where focus starts (no ring is drawn).
  main.focus({ preventScroll: true });
}

function showLogin(message) {
  unmount?.();
  unmount = null;
  stopShell();
  document.body.dataset.auth = "required";
  login.mount(main, {
    message,
    onToken: async (token) => {
      auth.token = token;
      const err = await check();
      if (err) { auth.token = ""; return err; }
      start(true);
      return null;
    },
  });
}

/** null when the server accepts us, else the error. */
async function check() {
  try { await api.get("/v1/info"); return null; } catch (e) { return e; }
}

let started = false;
/** Shows the views; `token`: a token is in use (so "Forget token" applies). */
function start(token) {
  document.body.dataset.auth = token ? "token" : "open";
  document.getElementById("forget").hidden = !token;
  if (!started) {
    started = true;
    window.addEventListener("hashchange", render);
  }
  startShell();
  render();
}

// The header's live parts: how many sessions wait for a person (a link to
// them), kept fresh from the global event stream, whose state the
// connection indicator shows. Views hear of session changes through a
// "tether:sessions" event on window (detail: the batch's events).
const waiting = document.getElementById("waiting");
let shell = null;
let countTimer = null;

async function countWaiting() {
  try {
    const page = await api.get("/v1/sessions?status=waiting&limit=100");
    const n = page.sessions.length;
    const label = page.next_cursor ? `${n}+` : String(n);
    waiting.dataset.count = String(n);
    fill(waiting, h("span.waiting-word", "Needs you"), h("span.count", label));
    waiting.title = n ? `${label} ${n === 1 ? "session is" : "sessions are"} waiting for an answer` : "No session is waiting for you";
    waiting.setAttribute("aria-label", waiting.title);
    waiting.hidden = false;
    document.title = n ? `(${label}) tether` : "tether";
  } catch { /* the indicator says why */ }
}

// What the shell's global stream carries: what changes a session's row or
// the waiting count, not every streamed token (the server filters).
const SHELL_TYPES = [
  EventType.SESSION_STARTED, EventType.SESSION_STATUS, EventType.SESSION_ENDED,
  EventType.TURN_STARTED, EventType.TURN_COMPLETED,
  EventType.PERMISSION_REQUESTED, EventType.PERMISSION_RESOLVED, EventType.QUESTION_REQUESTED, EventType.QUESTION_RESOLVED,
].join(",");

// Which start of the shell is current: an /v1/info answer that arrives
// after a later start or a stop opens nothing.
let shellGen = 0;

function startShell() {
  stopShell();
  const gen = shellGen;
  countWaiting();
  api.get("/v1/info").then((info) => {
    if (gen !== shellGen || document.body.dataset.auth === "required") return;
    shell = follow(`/v1/events/stream?types=${SHELL_TYPES}`, {
      after: info.last_gseq || 0,
      // Anything missed while the stream was down: count again.
      onState: (state) => { if (state === "live" && shell?.reconnects) countWaiting(); },
      onEvents: (batch) => {
        const changed = batch.filter((f) => /^(session|turn|permission|question)\./.test(f.event));
        if (!changed.length) return;
        window.dispatchEvent(new CustomEvent("tether:sessions", { detail: changed.map((f) => f.data) }));
        if (!changed.some((f) => f.event === EventType.SESSION_STATUS || f.event === EventType.SESSION_ENDED)) return;
        clearTimeout(countTimer);
        countTimer = setTimeout(countWaiting, 150);
      },
    });
  }, () => {});
}

function stopShell() {
  shellGen++;
  shell?.close();
  shell = null;
  clearTimeout(countTimer);
  waiting.hidden = true;
}

auth.onUnauthorized = () => {
  if (document.body.dataset.auth === "required") return;
  for (const s of [...streams.all]) s.close();
  const had = !!auth.token;
  auth.token = "";
  showLogin(had ? "The server no longer accepts the saved token. Enter its current token." : null);
};

// The connection indicator: the state of the page's event streams, in words;
// nothing while none is open. A reconnect that lasts is called offline.
const CONN = {
  live: "Live",
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  unauthorized: "Signed out",
};
const CONN_HINT = {
  live: "Updates arrive as they happen",
  connecting: "Connecting to the server",
  reconnecting: "The connection dropped; trying again (nothing is missed)",
  offline: "The server cannot be reached; still trying",
  unauthorized: "The server refused the token",
};
/** How long a reconnect lasts before it is called offline. */
const OFFLINE_AFTER_MS = 5000;
let offlineTimer = null;

function showConn(state) {
  if (conn.dataset.state !== state) window.tether.conn.push(state);
  conn.dataset.state = state;
  conn.hidden = !(state in CONN);
  conn.textContent = CONN[state] || "";
  conn.title = CONN_HINT[state] || "";
}

streams.listeners.add((state) => {
  // A view opening a stream while the others are live is no news.
  if (state === "connecting" && conn.dataset.state === "live") return;
  if (state === "reconnecting" && (conn.dataset.state === "offline" || !navigator.onLine)) state = "offline";
  if (state !== "reconnecting" && state !== "offline") clearTimeout(offlineTimer);
  else if (conn.dataset.state !== "reconnecting" && conn.dataset.state !== "offline") {
    clearTimeout(offlineTimer);
    offlineTimer = setTimeout(() => { if (conn.dataset.state === "reconnecting") showConn("offline"); }, OFFLINE_AFTER_MS);
  }
  showConn(state);
});

document.getElementById("forget").addEventListener("click", () => {
  auth.token = "";
  for (const s of [...streams.all]) s.close();
  showLogin(null);
});

/** Whether the server answers without a token. */
async function needsNoToken() {
  try { return (await fetch("/v1/info", { cache: "no-store" })).ok; } catch { return false; }
}

(async () => {
  const err = await check();
  if (err && err.status === 401) {
    showLogin(auth.token ? "The server no longer accepts the saved token. Enter its current token." : null);
    if (auth.token) auth.token = "";
  } else if (err) {
    fill(main, h("div.page", h("h1", "Cannot reach the server"), h("p.error-text", { role: "alert" }, failureSentence("load the server's details", err)),
      h("p", h("button", { type: "button", on: { click: () => location.reload() } }, "Try again"))));
  } else if (auth.token && await needsNoToken()) {
    // A token kept from another server: this one needs none.
    auth.token = "";
    start(false);
  } else {
    start(!!auth.token);
  }
})();
