// One session at #/sessions/{id}: its conversation rendered from the
// universal events (history loaded by pages, then the live stream resumed
// after the last seq), the status, a composer (messages sent while a turn
// runs are queued by the server and shown as queued), interrupt, delete,
// and the raw events tab.

import { h, fill, badge, fmtTime, frameThrottle } from "../dom.js";
import { api, follow, enc } from "../api.js";
import { Conversation } from "../conversation.js";
import { WindowedList } from "../window.js";
import { renderRow, updateRow } from "./rows.js";
import { mountEvents } from "./events.js";

/** History is read in pages of this many events. */
const PAGE = 5000;

export function mount(root, { id, tab, query }) {
  const base = `/v1/sessions/${enc(id)}`;
  const conv = new Conversation();
  // What arrived from the network, in order (the tests compare it with the store).
  const stats = { session_id: id, seqs: [], history_done: false, first_render_ms: null, history_ms: null, live: false };
  window.tether.sessions[id] = stats;
  const t0 = performance.now();

  const status = badge("starting", "status");
  const title = h("h1.title", id);
  const meta = h("div.meta");
  const interrupt = h("button#interrupt", { type: "button", disabled: true, on: { click: () => act(() => api.post(`${base}/interrupt`, {})) } }, "Interrupt");
  const remove = h("button#delete.danger", { type: "button", on: { click: async () => {
    if (!confirm("End this session? Its agent is stopped; the history is kept.")) return;
    await act(() => api.del(base));
  } } }, "End session");
  const flash = h("div#session-error.error-text", { role: "alert" });
  const loading = h("div#loading.note", { role: "status" }, "loading history…");
  const tabs = h("nav.tabs", { "aria-label": "session views" },
    h("a#tab-conversation", { href: `#/sessions/${enc(id)}`, "aria-current": tab ? null : "page" }, "Conversation"),
    h("a#tab-events", { href: `#/sessions/${enc(id)}/events`, "aria-current": tab === "events" ? "page" : null }, "Events"));
  const scroller = h("div#conv.conv", { tabindex: "0", "aria-label": "conversation", "aria-live": "off" });
  const jump = h("button#jump.jump", { type: "button", hidden: true, on: { click: () => list?.jumpToEnd() } }, "↓ latest");
  const queued = h("ul#queued.queued", { "aria-label": "queued messages" });
  const text = h("textarea#message", { rows: 3, placeholder: "Message the agent (Ctrl+Enter to send)", "aria-label": "message" });
  const send = h("button#send.primary", { type: "submit" }, "Send");
  const composer = h("form#composer.composer", { on: { submit: (e) => { e.preventDefault(); sendMessage(); } } }, text, send);
  text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); sendMessage(); } });

  const pane = h("div.pane");
  const el = h("section#session.session", { dataset: { session: id } },
    h("header.session-head", h("div", title, meta), h("div.actions", status, interrupt, remove)), flash, tabs, pane);
  fill(root, el);

  let events = null;
  if (tab === "events") {
    events = mountEvents(pane, { base, lastSeq: () => conv.lastSeq, select: Number(query.get("seq")) || null });
  } else {
    fill(pane, loading, h("div.conv-wrap", scroller, jump), queued, composer);
  }

  const ctx = {
    showRaw: (row) => { location.hash = `#/sessions/${enc(id)}/events?seq=${row.first}`; },
    answerPermission: (pid, decision) => api.post(`${base}/permissions/${enc(pid)}`, { decision }),
    answerQuestion: (qid, body) => api.post(`${base}/questions/${enc(qid)}`, body),
  };
  const list = tab ? null : new WindowedList(scroller, { count: () => conv.rows.length, render: (i) => renderRow(conv.rows[i], ctx) });
  if (list) list.onFollow = (following) => { jump.hidden = following; };

  async function act(fn) {
    flash.textContent = "";
    try { await fn(); } catch (e) { flash.textContent = e.describe ? e.describe() : String(e); }
  }

  async function sendMessage() {
    const value = text.value;
    if (!value.trim()) return;
    send.disabled = true;
    await act(async () => {
      const { turn_id } = await api.post(`${base}/messages`, { text: value });
      text.value = "";
      if (!conv.turns.has(turn_id)) queued.append(h("li", { dataset: { turn: turn_id } }, h("span.badge", { dataset: { status: "queued" } }, "queued"), " ", value));
    });
    send.disabled = false;
    text.focus();
  }

  function setStatus(s) {
    if (!s) return;
    status.textContent = s;
    status.dataset.status = s;
    interrupt.disabled = !(s === "running" || s === "waiting");
    remove.disabled = s === "ended";
  }

  function setSession(s) {
    title.textContent = s.title || s.id;
    fill(meta, h("code", s.id), ` · ${s.agent}`, s.model ? ` · ${s.model}` : "", ` · ${s.permission_mode}`, ` · `, h("code", s.cwd), ` · created ${fmtTime(s.created_at)}`);
    document.title = `${s.title || s.id} · tether`;
    setStatus(s.status);
  }

  // Folds a batch of events and redraws what changed (at most once a frame).
  const redraw = frameThrottle(() => {
    const changed = conv.takeChanged();
    if (list) {
      for (const row of changed) list.changed(row.index, (old) => updateRow(old, row));
      list.appended();
    }
    setStatus(conv.status);
    for (const li of [...queued.children]) if (conv.turns.has(li.dataset.turn)) li.remove();
    events?.grew();
  });

  function take(list_) {
    for (const ev of list_) {
      stats.seqs.push(ev.seq);
      conv.apply(ev);
    }
  }

  let stream = null;
  let closed = false;
  (async () => {
    try {
      setSession(await api.get(base));
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
        loading.textContent = `loading history… ${conv.lastSeq} events`;
        if (!page.has_more) break;
      }
      stats.history_done = true;
      stats.history_ms = performance.now() - t0;
      performance.mark("tether:history-loaded");
      loading.textContent = `${conv.lastSeq} events`;
      events?.grew();
      stream = follow(`${base}/events/stream`, {
        after: conv.lastSeq,
        onEvents: (batch) => {
          take(batch.map((f) => f.data).filter((e) => e && typeof e === "object" && e.seq));
          redraw();
        },
        onState: (state) => { stats.live = state === "live"; loading.dataset.state = state; },
        onFatal: (e) => { flash.textContent = e.describe(); },
      });
    } catch (e) {
      flash.textContent = e.describe ? e.describe() : String(e);
    }
  })();

  if (!tab) text.focus();
  return () => {
    closed = true;
    stream?.close();
    list?.destroy();
    events?.destroy();
  };
}
