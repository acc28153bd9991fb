// One session at #/sessions/{id}: its conversation rendered from the
// universal events (history loaded by pages, then the live stream resumed
// after the last seq), the status, the live event count, a composer
// (focused on open; messages sent while a turn runs are queued by the server
// and shown as queued), interrupt, end, and the raw events tab. A session
// that is not there says so; one that is over (ended, failed) says why and
// when, keeps no controls that cannot work, and offers a new session like it.

import { h, fill, fmtTime, frameThrottle } from "../dom.js";
import { api, follow, enc } from "../api.js";
import { Conversation } from "../conversation.js";
import { WindowedList } from "../window.js";
import { renderRow, updateRow, problemView } from "./rows.js";
import { mountEvents } from "./events.js";
import * as words from "../words.js";
import { sessionTitle } from "../summary.js";
import { EventType } from "../event-types.js";
import { attachTerminal } from "../terminal.js";
import { openPreview } from "../preview.js";

/** History is read in pages of this many events. */
const PAGE = 5000;
/** Statuses of a session that takes no more messages. */
const OVER = new Set(["ended", "failed"]);

export function mount(root, { id, tab, query }) {
  const base = `/v1/sessions/${enc(id)}`;
  // What arrived from the network, in order (the tests compare it with the store).
  const stats = { session_id: id, seqs: [], history_done: false, first_render_ms: null, history_ms: null, live: false, stream: null, states: [] };
  window.tether.sessions[id] = stats;
  const t0 = performance.now();
  let closed = false;
  let teardown = null;

  const loading = h("p#session-loading.note", { role: "status" }, "Loading session…");
  fill(root, h("section#session.session", { dataset: { session: id, state: "loading" } }, loading));

  (async () => {
    let session;
    try {
      session = await api.get(base);
    } catch (e) {
      if (closed) return;
      if (e.status === 404) notFound(root, id);
      else fill(root, h("section#session.session", { dataset: { session: id, state: "error" } },
        problemView(e, "load this session"),
        h("p", h("a", { href: "#/" }, "← All sessions"))));
      return;
    }
    if (!closed) teardown = open(root, { id, tab, query, base, stats, t0, session });
  })();

  return () => {
    closed = true;
    teardown?.();
  };
}

/** No session with this id: a sentence and the way back, nothing else. */
function notFound(root, id) {
  document.title = "Session not found · tether";
  fill(root, h("section#session.session.session-missing", { dataset: { session: id, state: "missing" } },
    h("h1", "Session not found"),
    h("p#not-found", "There is no session ", h("code", id), " on this server. It may have been deleted together with its history, or the link is wrong."),
    h("p", h("a#back-to-sessions.button", { href: "#/" }, "← Back to sessions"))));
}

/** The view of a session that exists; returns its teardown. */
function open(root, { id, tab, query, base, stats, t0, session }) {
  const conv = new Conversation();
  let current = session; // the session object, its status kept up to date
  let over = false;

  const status = h("span#status.badge");
  const title = h("h1.title", sessionTitle(session));
  const count = h("span#event-count.count", { role: "status", "aria-live": "off" }, "Loading history…");
  const meta = h("div.meta");
  const interrupt = h("button#interrupt", { type: "button", hidden: true, on: { click: () => act("interrupt the turn", () => api.post(`${base}/interrupt`, {})) } }, "Interrupt");
  // Ending asks first, in place (no browser dialog).
  const endIt = h("button#confirm-end.danger", { type: "button", on: { click: async () => {
    endIt.disabled = true;
    const ok = await act("end the session", () => api.del(base));
    endIt.disabled = false;
    if (!ok && !over) { confirmEnd.hidden = true; remove.hidden = false; }
  } } }, "End it");
  const keep = h("button#cancel-end", { type: "button", on: { click: () => { confirmEnd.hidden = true; remove.hidden = false; remove.focus(); } } }, "Cancel");
  const confirmEnd = h("div#end-confirm.end-confirm", { hidden: true, role: "group", "aria-label": "end the session?" },
    h("span", "Stop the agent and end this session? Its history is kept."), endIt, keep);
  const remove = h("button#delete.danger", { type: "button", on: { click: () => { remove.hidden = true; confirmEnd.hidden = false; keep.focus(); } } }, "End session");
  // Failures show where they happened: the header's actions above, sending by the composer.
  const flash = h("div#session-error.flash");
  const sendError = h("div#send-error.flash");
  const tabs = h("nav.tabs", { "aria-label": "session views" },
    h("a#tab-conversation", { href: `#/sessions/${enc(id)}`, "aria-current": tab ? null : "page" }, "Conversation"),
    h("a#tab-events", { href: `#/sessions/${enc(id)}/events`, "aria-current": tab === "events" ? "page" : null }, "Events"),
    h("a#tab-terminal", { href: `#/sessions/${enc(id)}/terminal`, "aria-current": tab === "terminal" ? "page" : null }, "Terminal"));
  const scroller = h("div#conv.conv", { tabindex: "0", "aria-label": "conversation", "aria-live": "off" });
  const jump = h("button#jump.jump", { type: "button", hidden: true, on: { click: () => list?.jumpToEnd() } }, "↓ Latest");
  const queued = h("ul#queued.queued", { "aria-label": "queued messages" });
  const text = h("textarea#message", { rows: 3, placeholder: "Message the agent (Ctrl+Enter to send)", "aria-label": "message" });
  const send = h("button#send.primary", { type: "submit" }, "Send");
  const composer = h("form#composer.composer", { on: { submit: (e) => { e.preventDefault(); sendMessage(); } } }, text, send);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendMessage(); } });
  // The composer while the session takes messages; why it ended once it does not.
  const foot = h("div.session-foot");

  const pane = h("div.pane");
  const el = h("section#session.session", { dataset: { session: id, state: "open" } },
    h("header.session-head",
      h("div.session-id", title, meta),
      h("div.actions.session-actions", status, count, interrupt, remove, confirmEnd)),
    flash, tabs, pane);
  fill(root, el);

  let events = null;
  let terminal = null;
  if (tab === "events") {
    const body = h("div.pane");
    fill(pane, body, foot);
    events = mountEvents(body, { base, lastSeq: () => conv.lastSeq, select: Number(query.get("seq")) || null });
  } else if (tab === "terminal") {
    // What the agent's own terminal shows, read-only (its PTY, while the agent runs).
    const body = h("div.term-wrap");
    fill(pane, h("p.note.term-hint", "The agent's terminal, read-only: what its program prints, as it prints it."), body, foot);
    terminal = attachTerminal(body, { path: `${base}/terminal`, readOnly: true, plain: query.get("view") === "text" });
  } else {
    fill(pane, h("div.conv-wrap", scroller, jump), queued, foot);
  }

  const ctx = {
    showRaw: (row) => { location.hash = `#/sessions/${enc(id)}/events?seq=${row.first}`; },
    answerPermission: (pid, decision) => api.post(`${base}/permissions/${enc(pid)}`, { decision }),
    answerQuestion: (qid, body) => api.post(`${base}/questions/${enc(qid)}`, body),
    openPreview,
  };
  const list = tab ? null : new WindowedList(scroller, { count: () => conv.rows.length, render: (i) => renderRow(conv.rows[i], ctx) });
  if (list) list.onFollow = (following) => { jump.hidden = following; };

  /** Runs a request; a failure is shown as a sentence with its details. True when it went through. */
  async function act(doing, fn, where = flash) {
    where.replaceChildren();
    try {
      await fn();
      return true;
    } catch (e) {
      where.replaceChildren(problemView(e, doing));
      return false;
    }
  }

  async function sendMessage() {
    const value = text.value;
    if (!value.trim() || over) return;
    send.disabled = true;
    await act("send the message", async () => {
      const { turn_id } = await api.post(`${base}/messages`, { text: value });
      text.value = "";
      if (!conv.turns.has(turn_id)) queued.append(h("li", { dataset: { turn: turn_id } }, h("span.badge", { dataset: { status: "queued" } }, "Queued"), " ", value));
    }, sendError);
    send.disabled = false;
    if (!over) text.focus();
  }

  function setMeta(s) {
    title.textContent = sessionTitle(s);
    fill(meta, h("code", s.id), " · ", s.agent, ` · ${s.model || "default model"}`, ` · ${words.modeWord(s.permission_mode)}`, " · ", h("code", s.cwd), ` · created ${fmtTime(s.created_at)}`);
    document.title = `${sessionTitle(s)} · tether`;
  }

  function setStatus(s) {
    if (s) {
      current = { ...current, status: s };
      status.textContent = words.statusWord(s);
      status.dataset.status = s;
      status.title = words.STATUS_HINT[s] || "";
    }
    interrupt.hidden = over || !(current.status === "running" || current.status === "waiting");
    if (OVER.has(current.status) || conv.ended) showEnded();
  }

  function setCount() {
    const n = words.plural(conv.lastSeq, "event");
    count.textContent = stats.history_done ? n : `Loading history… ${n}`;
    count.dataset.count = conv.lastSeq;
  }

  /** The session is over: why and when, and a new one like it; no controls that cannot work. */
  let shownEnd = null;
  function showEnded() {
    const end = conv.ended || { reason: current.status === "failed" ? "failed" : "terminated", message: null, time: current.updated_at };
    const key = JSON.stringify(end);
    if (key === shownEnd) return;
    shownEnd = key;
    const active = document.activeElement;
    const refocus = active === text || confirmEnd.contains(active) || foot.contains(active);
    over = true;
    el.dataset.state = "ended";
    interrupt.hidden = true;
    remove.hidden = true;
    confirmEnd.hidden = true;
    queued.replaceChildren();
    const problem = h("div.ended-problem");
    const again = h("button#new-like-this.primary", { type: "button", on: { click: async () => {
      again.disabled = true;
      problem.replaceChildren();
      try {
        const s = await api.post("/v1/sessions", likeThis(current));
        location.hash = `#/sessions/${enc(s.id)}`;
      } catch (e) {
        problem.replaceChildren(problemView(e, "create the new session"));
        again.disabled = false;
      }
    } } }, "New session like this");
    fill(foot, h("div#ended.ended", { role: "status", dataset: { reason: end.reason } },
      h("p.ended-title", words.endedWord(end.reason), end.time ? h("time", { datetime: end.time, title: end.time }, ` · ${fmtTime(end.time)}`) : null),
      end.message ? h("p.ended-why", end.message) : null,
      h("p.note", `Its history is kept, but it takes no more messages. A new session starts ${current.agent} again in the same folder, with the same model and permission mode.`),
      h("div.actions", again, h("a.button", { href: "#/" }, "All sessions")),
      problem));
    if (refocus) again.focus();
  }

  // Folds a batch of events and redraws what changed (at most once a frame).
  const redraw = frameThrottle(() => {
    const changed = conv.takeChanged();
    if (list) {
      for (const row of changed) list.changed(row.index, (old) => updateRow(old, row));
      list.appended();
    }
    setStatus(conv.status);
    setCount();
    for (const li of [...queued.children]) if (conv.turns.has(li.dataset.turn)) li.remove();
    events?.grew();
  });

  function take(list_) {
    for (const ev of list_) {
      stats.seqs.push(ev.seq);
      conv.apply(ev);
    }
  }

  setMeta(session);
  setStatus(session.status);
  if (!over && !tab) {
    fill(foot, sendError, composer);
    // Focused on open, unless the person is already somewhere else on the page.
    const active = document.activeElement;
    if (!active || active === document.body || active.id === "main" || !active.closest("#main")) text.focus();
  }

  let stream = null;
  let closed = false;
  (async () => {
    try {
      let after = 0;
      for (;;) {
        const page = await api.get(`${base}/events?after=${after}&limit=${PAGE}`);
        if (closed) return;
        take(page.events);
        after = page.next_after ?? after;
        conv.takeChanged();
        list?.appended();
        setStatus(conv.status);
        if (stats.first_render_ms === null) {
          stats.first_render_ms = performance.now() - t0;
          performance.mark("tether:first-render");
        }
        setCount();
        if (!page.has_more) break;
      }
      stats.history_done = true;
      stats.history_ms = performance.now() - t0;
      performance.mark("tether:history-loaded");
      setCount();
      events?.grew();
      if (conv.ended) return; // its last event is here: nothing more can come
      stream = follow(`${base}/events/stream`, {
        after: conv.lastSeq,
        final: EventType.SESSION_ENDED,
        onEvents: (batch) => {
          take(batch.map((f) => f.data).filter((e) => e && typeof e === "object" && e.seq));
          redraw();
        },
        onState: (state) => { stats.live = state === "live"; stats.stream = state; stats.states.push(state); },
        onEnd: () => redraw(),
        onFatal: (e) => { flash.replaceChildren(problemView(e, "follow the session's events")); },
      });
    } catch (e) {
      if (!closed) flash.replaceChildren(problemView(e, "load the session's history"));
    }
  })();

  return () => {
    closed = true;
    stream?.close();
    list?.destroy();
    events?.destroy();
    terminal?.close();
  };
}

/** The create body of a session like `s`: same agent, folder, model and permission mode. */
function likeThis(s) {
  const body = { agent: s.agent, cwd: s.cwd, permission_mode: s.permission_mode };
  if (s.model) body.model = s.model;
  return body;
}
