// The raw events of a session (the session view's Events tab): one line per
// event, virtualized by seq (rows have a fixed height and are fetched by
// pages as they scroll into view, so a 200,000-event session costs what is
// on screen). Selecting a line shows the whole event with the agent's native
// message (`include_raw=true`). Each line says what happened in the same
// words as the Activity view (summary.js).

import { h, fill, json, fmtTime } from "../dom.js";
import { api } from "../api.js";
import { summarize } from "../summary.js";

const ROW = 24;
const PAGE = 200;
const KEEP_PAGES = 60;

export function mountEvents(root, { base, lastSeq, select }) {
  const pages = new Map(); // page number -> events | Promise
  const spacer = h("div.ev-spacer");
  const viewport = h("div#events.ev-list", { tabindex: "0", role: "listbox", "aria-label": "events" }, spacer);
  const detail = h("div#event-detail.ev-detail", { "aria-live": "polite" }, h("p.note", "Select an event to see it whole, with the agent's raw message."));
  fill(root, h("div.ev-wrap", viewport, detail));
  let selected = select;
  let stick = !select;

  function pageOf(seq) { return Math.floor((seq - 1) / PAGE); }

  function load(p) {
    if (pages.has(p)) return;
    const promise = api.get(`${base}/events?after=${p * PAGE}&limit=${PAGE}`).then((page) => {
      pages.set(p, page.events);
      if (pages.size > KEEP_PAGES) pages.delete(pages.keys().next().value);
      draw();
    }, () => pages.delete(p));
    pages.set(p, promise);
  }

  function draw() {
    const n = lastSeq();
    spacer.style.height = `${n * ROW}px`;
    const first = Math.max(1, Math.floor(viewport.scrollTop / ROW) + 1);
    const last = Math.min(n, first + Math.ceil(viewport.clientHeight / ROW) + 1);
    const rows = [];
    for (let seq = first; seq <= last; seq++) {
      const page = pages.get(pageOf(seq));
      if (!Array.isArray(page)) { load(pageOf(seq)); }
      const ev = Array.isArray(page) ? page.find((e) => e.seq === seq) : null;
      // A page read before the session grew may not hold this seq yet.
      if (Array.isArray(page) && !ev && page.length < PAGE) { pages.delete(pageOf(seq)); load(pageOf(seq)); }
      rows.push(h("div.ev-row", {
        role: "option", "aria-selected": String(seq === selected), style: { top: `${(seq - 1) * ROW}px` }, dataset: { seq },
        on: { click: () => show(seq) },
      }, h("span.seq", seq), h("span.type", ev ? ev.type : "…"), h("span.sum", ev ? summaryText(ev) : ""), h("time", ev ? fmtTime(ev.time) : "")));
    }
    spacer.replaceChildren(...rows);
  }

  async function show(seq) {
    selected = seq;
    draw();
    fill(detail, h("p.note", `loading event ${seq}…`));
    try {
      const page = await api.get(`${base}/events?after=${seq - 1}&limit=1&include_raw=true`);
      const ev = page.events[0];
      fill(detail, h("div.who", `event ${seq} · ${ev.type}`), h("pre#event-json", json(ev)));
    } catch (e) {
      fill(detail, h("p.error-text", e.describe ? e.describe() : String(e)));
    }
  }

  viewport.addEventListener("scroll", () => {
    stick = viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - ROW;
    draw();
  }, { passive: true });
  viewport.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    e.preventDefault();
    const next = Math.min(lastSeq(), Math.max(1, (selected || 0) + (e.key === "ArrowDown" ? 1 : -1)));
    viewport.scrollTop = Math.max(0, (next - 3) * ROW);
    show(next);
  });

  // Scrolls to the selected event once the list is long enough to hold it.
  let positioned = !selected;
  const position = () => {
    if (positioned || lastSeq() < selected) return;
    draw();
    viewport.scrollTop = Math.max(0, (selected - 3) * ROW);
    positioned = true;
  };
  draw();
  if (selected) show(selected);
  position();

  return {
    /** The session has more events (or history finished loading). */
    grew() {
      // The last page may have been read before it filled.
      const lp = pageOf(Math.max(1, lastSeq()));
      const page = pages.get(lp);
      if (Array.isArray(page) && page.length < PAGE) pages.delete(lp);
      position();
      if (stick && positioned) viewport.scrollTop = viewport.scrollHeight;
      draw();
    },
    destroy() {},
  };
}

/** "Tool · Bash ls · Done": the shared summary of an event, on one line. */
function summaryText(ev) {
  const { label, text } = summarize(ev);
  return text ? `${label} · ${text}` : label;
}
