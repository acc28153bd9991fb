// A terminal pane attached to a terminal WebSocket (a process's, or a
// session's agent, read-only): binary frames are terminal bytes both ways,
// text frames JSON control (`attached`, `missed`, `exit` from the server;
// `resize`, `replay` from the page). The pane counts the bytes it has
// shown, so after a drop it attaches again with `after=<that offset>`: no
// byte shown twice, none lost (bytes the server no longer keeps are said).
//
// Drawn by xterm.js when the binary embeds it (`scripts/install-ui-deps`
// before the build; served under /ui/vendor/): keys go to the process,
// the pane's size follows its box (fit addon). Without it, or with
// `plain`, the output is plain text in a <pre> (control sequences
// stripped) with a line field to send input, and a sentence says how to
// get the full terminal.

import { h } from "./dom.js";
import { openSocket, request } from "./api.js";
import { exitWord, failureSentence, plural } from "./words.js";

/** The plain pane keeps at most this many characters (the oldest go). */
const PLAIN_CHARS = 200_000;
/** Reconnects back off up to this long. */
const MAX_DELAY_MS = 4000;

let xterm = null;

/** xterm.js and its fit addon ({Terminal, FitAddon, version}), or null when the binary has none. */
export function loadXterm() {
  xterm ??= (async () => {
    try {
      const res = await fetch("vendor/vendor.json", { cache: "no-cache" });
      const have = res.ok ? await res.json() : {};
      if (!have.xterm) return null;
      if (!document.querySelector("link[data-xterm]")) {
        document.head.append(h("link", { rel: "stylesheet", href: "vendor/xterm.css", dataset: { xterm: have.xterm } }));
      }
      const [{ Terminal }, { FitAddon }] = await Promise.all([import("../vendor/xterm.mjs"), import("../vendor/addon-fit.mjs")]);
      return { Terminal, FitAddon, version: have.xterm };
    } catch {
      return null;
    }
  })();
  return xterm;
}

/**
 * Terminal output as plain text: escape sequences (CSI, OSC, DCS, charset
 * and other two-byte ESC sequences) and control characters other than
 * newline and tab removed (CR too: CR LF becomes LF), a backspace
 * taking back the character before it. `pending` is an unfinished escape
 * sequence carried over from the previous chunk; returns {text, pending}.
 */
export function stripControls(chunk, pending = "") {
  const s = pending + chunk;
  let out = "";
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (c === "\x1b") {
      const end = escapeEnd(s, i);
      if (end < 0) return { text: out, pending: s.slice(i) };
      i = end;
      continue;
    }
    if (c === "\r") { i++; continue; }
    if (c === "\b") { out = out.slice(0, -1); i++; continue; }
    const code = c.charCodeAt(0);
    if (c === "\n" || c === "\t" || code >= 0x20 && code !== 0x7f && !(code >= 0x80 && code < 0xa0)) out += c;
    i++;
  }
  return { text: out, pending: "" };
}

/** The index after the escape sequence at `i` (s[i] is ESC), or -1 when it is not finished yet. */
function escapeEnd(s, i) {
  const next = s[i + 1];
  if (next === undefined) return -1;
  if (next === "[") {
    for (let j = i + 2; j < s.length; j++) {
      const code = s.charCodeAt(j);
      if (code >= 0x40 && code <= 0x7e) return j + 1;
    }
    return s.length - i > 64 ? s.length : -1;
  }
  if (next === "]" || next === "P" || next === "_" || next === "^") {
    // Ends with BEL or ST (ESC \).
    for (let j = i + 2; j < s.length; j++) {
      if (s[j] === "\x07") return j + 1;
      if (s[j] === "\x1b" && s[j + 1] === "\\") return j + 2;
      if (s[j] === "\x1b" && s[j + 1] === undefined) return -1;
    }
    return s.length - i > 4096 ? s.length : -1;
  }
  if ("()*+-./#%".includes(next)) return s[i + 2] === undefined ? -1 : i + 3;
  return i + 2;
}

/**
 * Attaches a pane in `root` to the terminal WebSocket at `path`
 * (`/v1/processes/{id}/terminal` or `/v1/sessions/{id}/terminal`).
 * Options: `readOnly` (no input, no resize), `plain` (text even when
 * xterm.js is there), `onExit(exit)` once the process ended. The pane's
 * state is in `window.tether.terminals[path]` (for the browser tests).
 * Returns {close(), focus()}.
 */
export function attachTerminal(root, { path, readOnly = false, plain = false, onExit } = {}) {
  const stats = { path, mode: "loading", state: "connecting", offset: null, first: null, attaches: 0, bytes: 0, missed: 0, exit: null, error: null, cols: null, rows: null };
  (window.tether.terminals ||= {})[path] = stats;
  const status = h("p.term-status.note", { role: "status" }, "Connecting to the terminal…");
  const screen = h("div.term-screen", { dataset: { mode: "loading" } });
  const foot = h("div.term-foot");
  const pane = h("div.term", { dataset: { state: "connecting", readOnly: readOnly ? "true" : "false" } }, status, screen, foot);
  root.append(pane);

  let closed = false;
  let ws = null;
  let timer = null;
  let delay = 250;
  let sink = null; // {write(bytes), size(), dispose()}
  let notes = []; // what the status line says besides the connection

  function set(state, text) {
    stats.state = state;
    pane.dataset.state = state;
    status.textContent = [text, ...notes].filter(Boolean).join(" · ");
  }

  (async () => {
    const lib = plain ? null : await loadXterm();
    if (closed) return;
    sink = lib ? xtermSink(lib) : plainSink(lib === null && !plain);
    stats.mode = lib ? "xterm" : "plain";
    screen.dataset.mode = stats.mode;
    connect();
  })();

  function xtermSink({ Terminal, FitAddon }) {
    const dark = matchMedia("(prefers-color-scheme: dark)").matches;
    const term = new Terminal({
      convertEol: false,
      disableStdin: readOnly,
      cursorBlink: !readOnly,
      fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace',
      fontSize: 13,
      scrollback: 5000,
      theme: dark ? { background: "#0b0c0f", foreground: "#e8e9ed" } : { background: "#fbfbfc", foreground: "#17191e", cursor: "#17191e", selectionBackground: "#c9d3ff" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(screen);
    const encoder = new TextEncoder();
    if (!readOnly) {
      term.onData((data) => send(encoder.encode(data)));
      term.onBinary((data) => send(Uint8Array.from(data, (c) => c.charCodeAt(0) & 0xff)));
      term.onResize(({ cols, rows }) => sendControl({ type: "resize", cols, rows }));
    }
    const refit = () => { try { if (screen.clientWidth > 0 && screen.clientHeight > 0) fit.fit(); } catch { /* not laid out yet */ } };
    const observer = new ResizeObserver(refit);
    observer.observe(screen);
    refit();
    return {
      write: (bytes) => term.write(bytes),
      size: () => ({ cols: term.cols, rows: term.rows }),
      focus: () => term.focus(),
      dispose: () => { observer.disconnect(); term.dispose(); },
    };
  }

  function plainSink(missing) {
    const pre = h("pre.term-text", { tabindex: "0", "aria-label": "terminal output" });
    screen.append(pre);
    if (missing) {
      foot.append(h("p#term-plain-note.note", "This is the terminal's output as plain text: the full terminal needs a tether built with xterm.js (run scripts/install-ui-deps, then build tether again)."));
    }
    let line = null;
    if (!readOnly) {
      line = h("input#term-line", { type: "text", autocomplete: "off", spellcheck: false, placeholder: "A line to send (Enter)", "aria-label": "a line to send" });
      const form = h("form.term-input", { on: { submit: (e) => {
        e.preventDefault();
        send(new TextEncoder().encode(`${line.value}\r`));
        line.value = "";
      } } }, line, h("button", { type: "submit" }, "Send"));
      foot.prepend(form);
    }
    const decoder = new TextDecoder();
    let pending = "";
    let text = "";
    return {
      write: (bytes) => {
        const stripped = stripControls(decoder.decode(bytes, { stream: true }), pending);
        pending = stripped.pending;
        if (!stripped.text) return;
        const follow = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        text += stripped.text;
        if (text.length > PLAIN_CHARS) {
          text = text.slice(-PLAIN_CHARS);
          pre.textContent = text;
        } else {
          pre.append(stripped.text);
        }
        if (follow) pre.scrollTop = pre.scrollHeight;
      },
      size: () => null,
      focus: () => (line || pre).focus(),
      dispose: () => {},
    };
  }

  function send(bytes) {
    if (readOnly || ws?.readyState !== WebSocket.OPEN) return;
    ws.send(bytes);
  }

  function sendControl(msg) {
    if (readOnly || ws?.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(msg));
    if (msg.type === "resize") Object.assign(stats, { cols: msg.cols, rows: msg.rows });
  }

  function connect() {
    if (closed) return;
    const q = new URLSearchParams();
    if (stats.offset !== null) q.set("after", String(stats.offset));
    if (readOnly) q.set("read_only", "true");
    const url = q.size ? `${path}?${q}` : path;
    let opened = false;
    const socket = openSocket(url);
    ws = socket;
    // For a person debugging (and the tests, which drop it to see the pane attach again); not enumerable.
    Object.defineProperty(stats, "socket", { value: socket, configurable: true, enumerable: false });
    socket.binaryType = "arraybuffer";
    socket.onopen = () => { opened = true; };
    socket.onmessage = (e) => {
      if (socket !== ws) return;
      if (typeof e.data === "string") {
        let msg;
        try { msg = JSON.parse(e.data); } catch { return; }
        control(msg);
        return;
      }
      const bytes = new Uint8Array(e.data);
      if (stats.offset !== null) stats.offset += bytes.length;
      stats.bytes += bytes.length;
      sink.write(bytes);
    };
    socket.onclose = () => {
      if (socket !== ws || closed || stats.exit) return;
      if (!opened) { refused(url); return; }
      retry("The connection dropped; attaching again from where it stopped…");
    };
  }

  function control(msg) {
    switch (msg.type) {
      case "attached": {
        stats.attaches++;
        stats.offset = msg.offset;
        stats.first ??= msg.offset;
        delay = 250;
        if (msg.missed) {
          stats.missed += msg.missed;
          notes = [`${plural(stats.missed, "byte")} of older output are no longer kept`];
        }
        set("live", readOnly ? "Attached, read-only" : "Attached");
        const size = sink.size();
        if (size && !readOnly) sendControl({ type: "resize", ...size });
        break;
      }
      case "missed":
        stats.missed += msg.to - msg.from;
        stats.offset = msg.to;
        notes = [`${plural(stats.missed, "byte")} were skipped: this page fell behind`];
        set(stats.state, readOnly ? "Attached, read-only" : "Attached");
        break;
      case "exit":
        stats.exit = msg;
        notes = [];
        set("exited", `The process ${exitWord(msg)}`);
        onExit?.(msg);
        break;
      default:
        break;
    }
  }

  function retry(text) {
    set("reconnecting", text);
    clearTimeout(timer);
    timer = setTimeout(connect, delay);
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }

  /** The WebSocket was refused before it opened: asks the route over plain HTTP why. */
  async function refused(url) {
    let err = null;
    try {
      await request(url);
    } catch (e) {
      err = e;
    }
    if (closed) return;
    // 426: the route is there and takes the token; the socket failed for another reason.
    if (err && err.status >= 400 && err.status < 500 && err.status !== 426) {
      stats.error = err.code;
      // An empty box says nothing: shown only when it holds output from before.
      screen.hidden = stats.bytes === 0;
      set("failed", failureSentence("attach to the terminal", err));
      return;
    }
    retry("The terminal could not connect; trying again…");
  }

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      ws?.close(1000);
      sink?.dispose();
      if (window.tether.terminals?.[path] === stats) delete window.tether.terminals[path];
    },
    focus() { sink?.focus(); },
  };
}
