// The inspector's shell: asks for the token when the server wants one (kept
// in this browser's localStorage until "Forget token"), the navigation, the
// connection indicator, and the hash router that mounts one view at a time:
//   #/            sessions          #/sessions/{id}          one session
//   #/sessions/{id}/events          its raw events          #/server
//   #/files?path=dir                the workspace           #/activity

import { h, fill } from "./dom.js";
import { api, auth, streams } from "./api.js";
import * as sessions from "./views/sessions.js";
import * as session from "./views/session.js";
import * as server from "./views/server.js";
import * as files from "./views/files.js";
import * as activity from "./views/activity.js";
import * as login from "./views/login.js";

// State the page exposes for debugging and for its browser tests.
window.tether = { sessions: {}, route: null, conn: [], errors: [] };
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
  main.focus({ preventScroll: true });
}

function showLogin(message) {
  unmount?.();
  unmount = null;
  document.body.dataset.auth = "required";
  login.mount(main, {
    message,
    onToken: async (token) => {
      auth.token = token;
      const err = await check();
      if (err) { auth.token = ""; return err; }
      start();
      return null;
    },
  });
}

/** null when the server accepts us, else the error. */
async function check() {
  try { await api.get("/v1/info"); return null; } catch (e) { return e; }
}

let started = false;
function start() {
  document.body.dataset.auth = "ok";
  if (!started) {
    started = true;
    window.addEventListener("hashchange", render);
  }
  render();
}

auth.onUnauthorized = (err) => {
  if (document.body.dataset.auth === "required") return;
  for (const s of [...streams.all]) s.close();
  auth.token = "";
  showLogin(`The server refused the token: ${err.describe()}`);
};

streams.listeners.add((state) => {
  if (conn.dataset.state !== state) window.tether.conn.push(state);
  conn.dataset.state = state;
  conn.textContent = { live: "● live", reconnecting: "● reconnecting…", connecting: "● connecting…", unauthorized: "● signed out", idle: "" }[state] || state;
});

document.getElementById("forget").addEventListener("click", () => {
  auth.token = "";
  for (const s of [...streams.all]) s.close();
  showLogin("Token forgotten.");
});

(async () => {
  const err = await check();
  if (err && err.status === 401) showLogin(auth.token ? `The saved token was refused: ${err.describe()}` : null);
  else if (err) fill(main, h("p.error-text", { role: "alert" }, `Cannot reach the server: ${err.describe()}`));
  else start();
})();
