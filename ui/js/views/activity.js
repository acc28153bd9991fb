// Global activity: every session's events as they happen (the global stream
// from the newest event on, plus the last 200 before it), newest first, kept
// to the last 1,000, each said in words (summary.js, as the Events list
// does), under its session's title. Filterable by session or by what
// happened; the streamed text itself (deltas, usage ticks) only on request.

import { h, fill, fmtTime } from "../dom.js";
import { api, follow, enc } from "../api.js";
import { failureSentence } from "../words.js";
import { summarize, sessionTitle } from "../summary.js";
import { EventType } from "../event-types.js";

const KEEP = 1000;
/** Events that repeat what others say whole: shown only with "Show streaming". */
const NOISY = new Set([EventType.ITEM_DELTA, EventType.USAGE_UPDATED]);

export function mount(root) {
  const filter = h("input#activity-filter", { type: "search", placeholder: "Filter by session, title or event", "aria-label": "Filter" });
  const noisy = h("input#activity-deltas", { type: "checkbox" });
  const list = h("ol#activity.activity", { reversed: true, "aria-label": "activity" });
  const empty = h("p.note.empty-line", "Nothing yet: events show here as sessions work.");
  const error = h("div.error-text", { role: "alert" });
  fill(root, h("section.page.activity-page",
    h("div.page-head", h("h1", "Activity")),
    h("div.filters", filter, h("label.check", noisy, " Show streaming text")),
    error, h("div.panel.flush", list, empty)));
  const keep = [];
  const titles = new Map();

  function matches(ev) {
    if (!noisy.checked && NOISY.has(ev.type)) return false;
    const f = filter.value.trim().toLowerCase();
    if (!f) return true;
    const s = summarize(ev);
    return [ev.session_id, ev.type, titles.get(ev.session_id) || "", s.label, s.text].some((v) => v.toLowerCase().includes(f));
  }

  function line(ev) {
    const { label, text } = summarize(ev);
    return h("li", { dataset: { type: ev.type, session: ev.session_id, gseq: ev.gseq } },
      h("time", { datetime: ev.time, title: ev.time }, fmtTime(ev.time)),
      h("a.who", { href: `#/sessions/${enc(ev.session_id)}`, title: ev.session_id }, titles.get(ev.session_id) || ev.session_id),
      h("span.what", { dataset: { label } }, label),
      h("span.sum", text));
  }

  function redraw() {
    fill(list, keep.filter(matches).reverse().map(line));
    empty.hidden = list.children.length > 0;
  }
  filter.addEventListener("input", redraw);
  noisy.addEventListener("change", redraw);

  let stream = null;
  let closed = false;
  Promise.all([api.get("/v1/info"), api.get("/v1/sessions?limit=100").catch(() => ({ sessions: [] }))]).then(([info, page]) => {
    if (closed) return;
    for (const s of page.sessions) titles.set(s.id, sessionTitle(s));
    stream = follow("/v1/events/stream", {
      after: Math.max(0, (info.last_gseq || 0) - 200),
      onEvents: (batch) => {
        const fresh = batch.map((f) => f.data).filter((e) => e && e.session_id);
        for (const e of fresh) {
          // A new session's first prompt names it until a list says otherwise.
          if (!titles.has(e.session_id) && e.type === EventType.TURN_STARTED) titles.set(e.session_id, summarize(e).text.slice(0, 80));
        }
        keep.push(...fresh);
        if (keep.length > KEEP) keep.splice(0, keep.length - KEEP);
        const shown = fresh.filter(matches).map(line).reverse();
        list.prepend(...shown);
        while (list.children.length > KEEP) list.lastChild.remove();
        empty.hidden = list.children.length > 0;
      },
    });
  }, (e) => { error.textContent = failureSentence("follow the activity", e); });
  return () => { closed = true; stream?.close(); };
}
