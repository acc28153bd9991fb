// How each conversation row looks: user turns, assistant text (streaming),
// reasoning (collapsed), tool calls (input, output, exit code, diff; folded
// where a card shows them), plans, permission and question cards answered
// inline, a subagent's steps nested (collapsed) in its tool call, one line per turn end (how it ended, tokens, cost; a failure's
// error and the agent's exit with it), errors and lifecycle notes, in the
// words of `words.js`. Also how a failed request is shown (`problemView`).

import { h, json, fmtTime } from "../dom.js";
import { itemText } from "../conversation.js";
import * as words from "../words.js";
import { fmtCost } from "../summary.js";
import { EventType } from "../event-types.js";

/** Text shown at most this long (the rest behind a button). */
const SHOW_CHARS = 20_000;
/** While an item streams, only its last this many characters are shown. */
const STREAM_CHARS = 20_000;

export function renderRow(row, ctx) {
  // A row folded into another (log lines now shown with the agent's exit) keeps its place, empty.
  if (row.folded) return h("div.row", { hidden: true, dataset: { kind: row.kind, first: row.first, index: row.index, folded: "" } });
  const el = body(row, ctx);
  el.classList.add("row");
  el.dataset.kind = row.kind === "item" ? row.item.kind : row.kind;
  el.dataset.first = row.first;
  el.dataset.index = row.index;
  const raw = h("button.raw", { type: "button", title: "Raw events", "aria-label": "raw events", on: { click: () => ctx.showRaw(row) } }, "{ }");
  el.prepend(raw);
  return el;
}

/**
 * A failed request, shown to people: one sentence (`words.failureSentence`)
 * and the server's problem details behind a toggle.
 */
export function problemView(err, doing) {
  const facts = err?.problem ? { status: err.status, ...err.problem } : { error: String(err?.message || err) };
  return h("div.problem", { role: "alert" },
    h("p.problem-text", words.failureSentence(doing, err)),
    h("details.problem-details", h("summary", "Details"), h("pre", json(facts))));
}

/** Updates a streaming text row in place; false when it must be redrawn. */
export function updateRow(el, row) {
  if (row.kind !== "item" || row.item.status !== "in_progress" || row.children) return false;
  const node = el.querySelector(".text");
  if (!node) return false;
  const text = streamed(row);
  if (text.length > STREAM_CHARS) {
    // A long stream: show its tail, one text node replaced per frame.
    node.textContent = `…\n${text.slice(-STREAM_CHARS)}`;
    return true;
  }
  const have = node.textContent.length;
  if (text.length < have) return false;
  node.append(text.slice(have));
  return true;
}

function streamed(row) {
  const k = row.item.kind;
  if (k === "tool_call") return row.output;
  return itemText(row);
}

/** An item's text: its tail while it streams, else the whole (clipped) text. */
function itemBlock(row, text, cls = ".text") {
  if (row.item.status === "in_progress" && text.length > STREAM_CHARS) return h(`div${cls}`, `…\n${text.slice(-STREAM_CHARS)}`);
  return textBlock(text, cls);
}

function textBlock(text, cls = ".text") {
  if (text.length <= SHOW_CHARS) return h(`div${cls}`, text);
  const node = h(`div${cls}`, { dataset: { clipped: "1" } }, `… ${text.length - SHOW_CHARS} earlier characters …\n`, text.slice(-SHOW_CHARS));
  const all = h("button", { type: "button", on: { click: () => { node.textContent = text; delete node.dataset.clipped; all.remove(); } } }, `show all ${text.length} characters`);
  return h("div", node, all);
}

function body(row, ctx) {
  switch (row.kind) {
    case "user":
      return h("div", { dataset: { role: "user" } }, h("div.who", "You"), textBlock(row.text));
    case "item":
      return item(row);
    case "turn":
      return turnEnd(row);
    case "permission":
      return permission(row, ctx);
    case "question":
      return question(row, ctx);
    case "error":
      return h("div", h("div.who", row.error.retryable ? "Error (the agent retries)" : "Error"), h("div.text", row.error.message || words.humanize(row.error.code)),
        details("Details", json(row.error)));
    case "log":
      return h("details", h("summary", `Agent output · ${words.plural(row.lines.length, "line")}`), h("pre", row.lines.join("\n")));
    case "port":
      return portNotice(row, ctx);
    default:
      return system(row);
  }
}

/** A dev server the agent started: "Dev server on :5173 — open" (a preview
 *  link made and opened on the click); greyed, without the button, once it closed. */
function portNotice(row, ctx) {
  const problem = h("div.card-error");
  const fallback = h("span.preview-link");
  const open = h("button.link.open-preview", { type: "button", dataset: { port: row.port }, on: { click: async () => {
    open.disabled = true;
    problem.replaceChildren();
    try {
      const made = await ctx.openPreview(row.port);
      if (!made.opened) fallback.replaceChildren(" ", h("a", { href: made.url, target: "_blank", rel: "noopener" }, "Open the preview"));
    } catch (e) {
      problem.replaceChildren(problemView(e, `open a preview of port ${row.port}`));
    }
    open.disabled = false;
  } } }, "open");
  return h("div.port-notice", { dataset: { port: row.port, open: String(row.open) } },
    h("div.note", `Dev server on :${row.port} — `, row.open ? [open, fallback] : "closed", at(row)),
    problem);
}

/** A collapsed block of text: `<details><summary>label</summary><pre>text</pre></details>`. */
function details(label, text, cls = "") {
  return h(`details.more${cls}`, h("summary", label), h("pre", text));
}

function at(row) {
  return row.time ? h("time", { datetime: row.time, title: row.time }, ` · ${fmtTime(row.time)}`) : null;
}

function system(row) {
  let text;
  let more = null;
  switch (row.type) {
    case EventType.SESSION_STARTED: {
      const s = row.started;
      text = `Started ${s.agent}${s.agent_version ? ` ${s.agent_version}` : ""} · ${s.model || "default model"} · ${words.modeWord(s.permission_mode)}`;
      break;
    }
    case EventType.AGENT_EXITED:
      text = row.exit.expected ? words.agentStoppedWord(row.exit) : `The agent stopped unexpectedly: it ${words.exitWord(row.exit)}`;
      if (row.exit.stderr_tail && !row.exit.expected) more = details("What it printed last", row.exit.stderr_tail);
      break;
    case EventType.SERVER_RESTARTED:
      text = "The server restarted; the turn that was open was closed";
      break;
    case EventType.SERVER_RESUMED:
      text = `The machine was paused for ${(row.paused_ms / 1000).toFixed(1)} s${row.detected_by ? ` (seen by the ${row.detected_by.replace("_", " ")})` : ""}`;
      break;
    case EventType.SERVER_KEEP_AWAKE:
      text = row.held
        ? "Work resumed: tether keeps the Sprite awake again"
        : "Waiting for you: tether stopped keeping the Sprite awake, so it may pause until you answer";
      break;
    case EventType.SESSION_ENDED:
      text = `${words.endedWord(row.ended.reason)}${row.ended.message ? `: ${row.ended.message}` : ""}`;
      break;
    default:
      text = row.type;
      if (row.detail && row.detail !== "{}") more = details("Data", row.detail);
  }
  return h("div", { dataset: { type: row.type } }, h("div.note", text, at(row)), more);
}

function item(row) {
  const it = row.item;
  const status = h("span.status", { dataset: { status: it.status } }, words.itemStatusWord(it.status));
  switch (it.kind) {
    case "message":
      return h("div", { dataset: { role: it.role || "assistant", item: it.item_id, status: it.status } }, h("div.who", it.role === "user" ? "You" : "Agent", it.status !== "completed" ? [" · ", status] : null), itemBlock(row, itemText(row)));
    case "reasoning":
      return h("details", { dataset: { item: it.item_id, status: it.status } }, h("summary", "Thinking", it.status !== "completed" ? [" · ", status] : null), itemBlock(row, itemText(row)));
    case "plan":
      return h("div", { dataset: { item: it.item_id } }, h("div.who", "Plan"), h("ul.plan", (it.plan || []).map((s) => h("li", { dataset: { status: s.status }, title: words.planStatusWord(s.status) }, s.text))));
    case "tool_call":
      return tool(row, status);
    default:
      return h("div", { dataset: { item: it.item_id } }, h("div.who", words.humanize(it.kind)), h("pre", json(it)));
  }
}

function tool(row, status) {
  const it = row.item;
  const t = it.tool || {};
  const input = t.input && Object.keys(t.input).length ? t.input : parseArgs(row.args);
  // A question's card shows what it asks; a permission's card what it would do.
  const asks = row.card === "question";
  const brief = asks ? "" : input?.command || input?.file_path || input?.path || input?.pattern || input?.url || "";
  const output = t.output ?? row.output;
  const open = !row.card && (it.status === "in_progress" || it.status === "failed");
  return h("details.tool", { open, dataset: { item: it.item_id, status: it.status, tool: t.name || "", card: row.card || "" } },
    h("summary", h("span.tool-name", t.name || "tool"), " ", brief ? h("code.brief", String(brief).slice(0, 200)) : null, " ", status,
      t.exit_code !== undefined && t.exit_code !== null ? h("span.exit", { dataset: { ok: String(t.exit_code === 0) } }, `exit ${t.exit_code}`) : null,
      asks ? h("span.note", " · the question is below") : null),
    asks ? null : input ? h("div.section", h("div.label", "Input"), h("pre.input", json(input))) : row.args ? h("pre.input", row.args) : null,
    output ? h("div.section", h("div.label", "Output"), itemBlock(row, output, ".text.output")) : null,
    t.diff ? diff(t.diff) : null,
    t.paths && t.paths.length ? h("div.section", h("div.label", "Paths"), h("ul", t.paths.map((p) => h("li", h("code", p))))) : null,
    row.children ? subagent(row) : null);
}

/** What a subagent did, nested in the tool call that started it: collapsed
 *  until opened (and kept open or closed as the call goes on). */
function subagent(row) {
  const steps = row.children;
  const working = steps.some((c) => c.item.status === "in_progress");
  return h("details.subagent", { open: !!row.subagentOpen, on: { toggle: (e) => { row.subagentOpen = e.target.open; } } },
    h("summary", `Subagent · ${words.plural(steps.length, "step")}${working ? " · working" : ""}`),
    steps.map((child) => {
      const el = item(child);
      el.classList.add("child");
      return el;
    }));
}

function parseArgs(args) {
  if (!args) return null;
  try { return JSON.parse(args); } catch { return null; }
}

export function diff(text) {
  return h("div.section", h("div.label", "Diff"), h("pre.diff", text.split("\n").map((line) => {
    const cls = line.startsWith("+++") || line.startsWith("---") ? "meta" : line[0] === "+" ? "add" : line[0] === "-" ? "del" : line.startsWith("@@") ? "hunk" : "";
    return h("span", { class: cls }, line + "\n");
  })));
}

/** "20 in / 9 out tokens · $0.0001", or "" without usage. */
function usageText(u) {
  if (!u) return "";
  const parts = [];
  if (u.input_tokens !== undefined && u.input_tokens !== null) parts.push(`${u.input_tokens} in`);
  if (u.output_tokens !== undefined && u.output_tokens !== null) parts.push(`${u.output_tokens} out`);
  if (u.cached_input_tokens) parts.push(`${u.cached_input_tokens} cached`);
  if (u.reasoning_tokens) parts.push(`${u.reasoning_tokens} reasoning`);
  let text = parts.length ? ` · ${parts.join(" / ")} tokens` : "";
  if (u.cost_usd) text += ` · ${fmtCost(u.cost_usd)}`;
  return text;
}

/**
 * One line per turn end: "Finished · 20 in / 9 out tokens · $0.0001",
 * "Interrupted", "Stopped by an error: …" (the error event, the turn's end
 * and the agent's exit of one failure are this one row; their details open
 * on demand).
 */
function turnEnd(row) {
  const stop = row.stop_reason;
  const err = row.error || row.reported;
  let what = words.stopWord(stop);
  if (err?.message) what += `: ${err.message}`;
  const facts = {};
  if (row.reported) facts.error = row.reported;
  if (row.error && row.error.message !== row.reported?.message) facts.turn_error = row.error;
  if (row.exit) facts.agent = { exit_code: row.exit.exit_code, signal: row.exit.signal };
  return h("div", { dataset: { turn: row.turn_id, stop } },
    h("div.turn-line", h("span.stop", { dataset: { stop } }, what), h("span.usage", usageText(row.usage)), at(row)),
    row.exit ? h("div.note", `The agent ${words.exitWord(row.exit)}; the next message starts it again.`) : null,
    row.exit?.stderr_tail ? details("What the agent printed last", row.exit.stderr_tail) : null,
    Object.keys(facts).length ? details("Details", json(facts)) : null);
}

function permission(row, ctx) {
  const r = row.req;
  const id = r.permission_id;
  const done = row.resolved;
  const card = h("div.card.card-permission", { role: "group", "aria-label": "permission request", dataset: { permission: id, resolved: done ? done.decision : "" } },
    h("div.who", done ? "Permission" : "Permission needed", " · ", words.actionWord(r.action)),
    h("div.title", r.title || ""),
    r.command ? h("pre", r.command) : null,
    r.path && !r.diff ? h("code.path", r.path) : null,
    r.diff ? diff(r.diff) : null,
    !r.command && !r.diff && r.input ? details("Input", json(r.input)) : null);
  if (done) {
    card.append(h("div.resolved", { dataset: { decision: done.decision, by: done.by } }, words.decisionWord(done.decision, done.by)));
  } else {
    const err = h("div.card-error");
    const buttons = () => card.querySelectorAll("button[data-decision]");
    card.append(h("div.actions", (r.options || ["allow_once", "allow_always", "deny"]).map((opt) =>
      h("button", { type: "button", class: opt === "deny" ? "danger" : opt === "allow_once" ? "primary" : "", dataset: { decision: opt }, on: { click: async () => {
        for (const b of buttons()) b.disabled = true;
        err.replaceChildren();
        try { await ctx.answerPermission(id, opt); } catch (x) { err.replaceChildren(problemView(x, "answer the permission")); for (const b of buttons()) b.disabled = false; }
      } } }, words.decisionAction(opt)))), err);
  }
  return card;
}

function question(row, ctx) {
  const r = row.req;
  const id = r.question_id;
  const done = row.resolved;
  const card = h("div.card.card-question", { role: "group", "aria-label": "question", dataset: { question: id, resolved: done ? (done.rejected ? "rejected" : "answered") : "" } });
  const picks = r.questions.map(() => new Set());
  const err = h("div.card-error");
  const send = async (body) => {
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    err.replaceChildren();
    try { await ctx.answerQuestion(id, body); } catch (x) { err.replaceChildren(problemView(x, "answer the question")); for (const b of card.querySelectorAll("button")) b.disabled = false; }
  };
  const single = r.questions.length === 1 && !r.questions[0].multi_select;
  r.questions.forEach((q, qi) => {
    card.append(h("div.who", q.header || "Question"), h("div.title", q.prompt));
    if (done) return;
    card.append(h("div.choices", q.options.map((o) => {
      if (single) return h("button", { type: "button", dataset: { choice: o.label }, title: o.description || "", on: { click: () => send({ answers: [[o.label]] }) } }, o.label, o.description ? h("small", ` — ${o.description}`) : null);
      const input = h("input", { type: q.multi_select ? "checkbox" : "radio", name: `${id}-${qi}`, value: o.label, on: { change: (e) => {
        if (!q.multi_select) picks[qi].clear();
        e.target.checked ? picks[qi].add(o.label) : picks[qi].delete(o.label);
      } } });
      return h("label.choice", input, " ", o.label, o.description ? h("small", ` — ${o.description}`) : null);
    })));
  });
  if (done) {
    card.append(h("div.resolved", words.answerWord(done)));
  } else {
    card.append(h("div.actions",
      single ? null : h("button.primary", { type: "button", dataset: { submit: "" }, on: { click: () => send({ answers: picks.map((p) => [...p]) }) } }, "Answer"),
      h("button.danger", { type: "button", dataset: { reject: "" }, on: { click: () => send({ reject: true }) } }, "Reject")), err);
  }
  return card;
}
