// Global activity: every session's events as they happen (the global stream
// from the newest event on, plus the last 200 before it), newest first, kept
// to the last 1,000, filterable by session or event type.

import { h, fill, fmtTime } from "../dom.js";
import { api, follow, enc } from "../api.js";

const KEEP = 1000;

export function mount(root) {
  const filter = h("input#activity-filter", { type: "search", placeholder: "filter by session id or event type", "aria-label": "filter" });
  const list = h("ol#activity.activity", { reversed: true });
  const error = h("div.error-text", { role: "alert" });
  fill(root, h("section", h("h1", "Activity"), filter, error, list));
  const keep = [];

  function matches(ev) {
    const f = filter.value.trim();
    return !f || ev.session_id.includes(f) || ev.type.includes(f);
  }

  function line(ev) {
    return h("li", { dataset: { type: ev.type, session: ev.session_id, gseq: ev.gseq } },
      h("time", fmtTime(ev.time)), " ",
      h("a", { href: `#/sessions/${enc(ev.session_id)}` }, h("code", ev.session_id)), " ",
      h("span.type", ev.type), " ", h("span.sum", brief(ev)));
  }

  filter.addEventListener("input", () => fill(list, keep.filter(matches).reverse().map(line)));

  let stream = null;
  api.get("/v1/info").then((info) => {
    stream = follow("/v1/events/stream", {
      after: Math.max(0, (info.last_gseq || 0) - 200),
      onEvents: (batch) => {
        const fresh = batch.map((f) => f.data).filter((e) => e && e.session_id);
        keep.push(...fresh);
        if (keep.length > KEEP) keep.splice(0, keep.length - KEEP);
        const shown = fresh.filter(matches).map(line).reverse();
        list.prepend(...shown);
        while (list.children.length > KEEP) list.lastChild.remove();
      },
    });
  }, (e) => { error.textContent = e.describe ? e.describe() : String(e); });
  return () => stream?.close();
}

function brief(ev) {
  const d = ev.data || {};
  if (ev.type === "item.delta") return JSON.stringify(d.delta).slice(0, 80);
  if (ev.type === "session.status") return d.status;
  if (ev.type === "turn.completed") return d.stop_reason;
  if (ev.type.startsWith("item.")) return `${d.item?.kind} ${d.item?.tool?.name || ""} ${d.item?.status || ""}`;
  return JSON.stringify(d).slice(0, 80);
}
