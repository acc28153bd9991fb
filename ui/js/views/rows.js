// How each conversation row looks: user turns, assistant text (streaming),
// reasoning (collapsed), tool calls (input, output, exit code, diff), plans,
// permission and question cards answered inline, turn endings with usage
// and cost, errors and lifecycle notes.

import { h, json, fmtTime } from "../dom.js";
import { itemText } from "../conversation.js";

/** Text shown at most this long (the rest behind a button). */
const SHOW_CHARS = 20_000;
/** While an item streams, only its last this many characters are shown. */
const STREAM_CHARS = 20_000;

export function renderRow(row, ctx) {
  const el = body(row, ctx);
  el.classList.add("row");
  el.dataset.kind = row.kind === "item" ? row.item.kind : row.kind;
  el.dataset.first = row.first;
  el.dataset.index = row.index;
  const raw = h("button.raw", { type: "button", title: "raw events", "aria-label": "raw events", on: { click: () => ctx.showRaw(row) } }, "{ }");
  el.prepend(raw);
  return el;
}

/** Updates a streaming text row in place; false when it must be redrawn. */
export function updateRow(el, row) {
  if (row.kind !== "item" || row.item.status !== "in_progress") return false;
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
      return h("div", { dataset: { role: "user" } }, h("div.who", "you"), textBlock(row.text));
    case "item":
      return item(row);
    case "turn":
      return turnEnd(row);
    case "permission":
      return permission(row, ctx);
    case "question":
      return question(row, ctx);
    case "error":
      return h("div", { role: "alert" }, h("div.who", `error · ${row.error.code || ""}${row.error.retryable ? " (retryable)" : ""}`), h("div.text", row.error.message || ""), row.error.detail ? h("pre", json(row.error.detail)) : null);
    case "log":
      return h("details", h("summary", `agent log · ${row.lines.length} line${row.lines.length === 1 ? "" : "s"}`), h("pre", row.lines.join("\n")));
    default:
      return h("div", h("div.note", row.text, row.time ? h("time", ` · ${fmtTime(row.time)}`) : null), row.detail ? h("pre.detail", row.detail) : null);
  }
}

function item(row) {
  const it = row.item;
  const status = h("span.status", { dataset: { status: it.status } }, it.status);
  switch (it.kind) {
    case "message":
      return h("div", { dataset: { role: it.role || "assistant", item: it.item_id, status: it.status } }, h("div.who", it.role || "assistant", " ", it.status !== "completed" ? status : null), itemBlock(row, itemText(row)));
    case "reasoning":
      return h("details", { dataset: { item: it.item_id, status: it.status } }, h("summary", "reasoning ", status), itemBlock(row, itemText(row)));
    case "plan":
      return h("div", { dataset: { item: it.item_id } }, h("div.who", "plan"), h("ul.plan", (it.plan || []).map((s) => h("li", { dataset: { status: s.status } }, s.text))));
    case "tool_call":
      return tool(row, status);
    default:
      return h("div", { dataset: { item: it.item_id } }, h("div.who", it.kind), h("pre", json(it)));
  }
}

function tool(row, status) {
  const it = row.item;
  const t = it.tool || {};
  const input = t.input && Object.keys(t.input).length ? t.input : parseArgs(row.args);
  const brief = input?.command || input?.file_path || input?.path || input?.pattern || input?.url || "";
  const output = t.output ?? row.output;
  const open = it.status === "in_progress" || it.status === "failed";
  return h("details.tool", { open, dataset: { item: it.item_id, status: it.status, tool: t.name || "" } },
    h("summary", h("span.tool-name", t.name || "tool"), " ", h("code.brief", String(brief).slice(0, 200)), " ", status,
      t.exit_code !== undefined && t.exit_code !== null ? h("span.exit", { dataset: { ok: String(t.exit_code === 0) } }, `exit ${t.exit_code}`) : null),
    input ? h("div.section", h("div.label", "input"), h("pre.input", json(input))) : row.args ? h("pre.input", row.args) : null,
    output ? h("div.section", h("div.label", "output"), itemBlock(row, output, ".text.output")) : null,
    t.diff ? diff(t.diff) : null,
    t.paths && t.paths.length ? h("div.section", h("div.label", "paths"), h("ul", t.paths.map((p) => h("li", h("code", p))))) : null);
}

function parseArgs(args) {
  if (!args) return null;
  try { return JSON.parse(args); } catch { return null; }
}

export function diff(text) {
  return h("div.section", h("div.label", "diff"), h("pre.diff", text.split("\n").map((line) => {
    const cls = line.startsWith("+++") || line.startsWith("---") ? "meta" : line[0] === "+" ? "add" : line[0] === "-" ? "del" : line.startsWith("@@") ? "hunk" : "";
    return h("span", { class: cls }, line + "\n");
  })));
}

function turnEnd(row) {
  const u = row.usage || {};
  const parts = [];
  if (u.input_tokens !== undefined) parts.push(`${u.input_tokens} in`);
  if (u.output_tokens !== undefined) parts.push(`${u.output_tokens} out`);
  if (u.cached_input_tokens) parts.push(`${u.cached_input_tokens} cached`);
  if (u.reasoning_tokens) parts.push(`${u.reasoning_tokens} reasoning`);
  const cost = u.cost_usd !== undefined && u.cost_usd !== null ? ` · $${Number(u.cost_usd).toFixed(4)}` : "";
  return h("div", { dataset: { turn: row.turn_id, stop: row.stop_reason } },
    h("div.note", h("span.stop", { dataset: { stop: row.stop_reason } }, `turn ${row.stop_reason.replace("_", " ")}`),
      parts.length ? ` · ${parts.join(" / ")} tokens` : "", cost, row.time ? h("time", ` · ${fmtTime(row.time)}`) : null),
    row.error ? h("div.text", `${row.error.code}: ${row.error.message}`) : null);
}

function permission(row, ctx) {
  const r = row.req;
  const id = r.permission_id;
  const done = row.resolved;
  const card = h("div.card.card-permission", { role: "group", "aria-label": "permission request", dataset: { permission: id, resolved: done ? done.decision : "" } },
    h("div.who", `permission · ${r.action}`),
    h("div.title", r.title || ""),
    r.command ? h("pre", r.command) : null,
    r.path && !r.diff ? h("code", r.path) : null,
    r.diff ? diff(r.diff) : null,
    !r.command && !r.diff && r.input ? h("pre", json(r.input)) : null);
  if (done) {
    card.append(h("div.resolved", `${done.decision.replace("_", " ")} (by ${done.by})`));
  } else {
    const err = h("div.error-text", { role: "status" });
    const labels = { allow_once: "Allow once", allow_always: "Always allow", deny: "Deny" };
    card.append(h("div.actions", (r.options || ["allow_once", "allow_always", "deny"]).map((opt) =>
      h("button", { type: "button", class: opt === "deny" ? "danger" : opt === "allow_once" ? "primary" : "", dataset: { decision: opt }, on: { click: async (e) => {
        for (const b of card.querySelectorAll("button[data-decision]")) b.disabled = true;
        try { await ctx.answerPermission(id, opt); } catch (x) { err.textContent = x.describe ? x.describe() : String(x); for (const b of card.querySelectorAll("button[data-decision]")) b.disabled = false; }
      } } }, labels[opt] || opt))), err);
  }
  return card;
}

function question(row, ctx) {
  const r = row.req;
  const id = r.question_id;
  const done = row.resolved;
  const card = h("div.card.card-question", { role: "group", "aria-label": "question", dataset: { question: id, resolved: done ? (done.rejected ? "rejected" : "answered") : "" } });
  const picks = r.questions.map(() => new Set());
  const err = h("div.error-text", { role: "status" });
  const send = async (body) => {
    for (const b of card.querySelectorAll("button")) b.disabled = true;
    try { await ctx.answerQuestion(id, body); } catch (x) { err.textContent = x.describe ? x.describe() : String(x); for (const b of card.querySelectorAll("button")) b.disabled = false; }
  };
  const single = r.questions.length === 1 && !r.questions[0].multi_select;
  r.questions.forEach((q, qi) => {
    card.append(h("div.who", q.header || "question"), h("div.title", q.prompt));
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
    card.append(h("div.resolved", done.rejected ? "rejected" : `answered: ${(done.answers || []).map((a) => a.join(", ")).join(" / ")}`));
  } else {
    card.append(h("div.actions",
      single ? null : h("button.primary", { type: "button", dataset: { submit: "" }, on: { click: () => send({ answers: picks.map((p) => [...p]) }) } }, "Answer"),
      h("button.danger", { type: "button", dataset: { reject: "" }, on: { click: () => send({ reject: true }) } }, "Reject")), err);
  }
  return card;
}
