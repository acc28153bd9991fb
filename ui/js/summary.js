// One universal event in a few human words, for the Activity view and the
// raw Events list: summarize(ev) → {label, text}, `label` a short name for
// what happened ("You", "Assistant", "Tool", "Needs permission") and `text`
// the gist of it on one line. Pure: no DOM, no network.

import { statusWord, stopWord, endedWord, exitWord, durationWord, decisionWord, answerWord, actionWord, itemStatusWord, plural } from "./words.js";
import { EventType } from "./event-types.js";

/** The longest `text` returned. */
const MAX = 160;

/** `s` on one line, cut to `max` characters. */
export function oneLine(s, max = MAX) {
  const flat = String(s ?? "").replace(/\s+/g, " ").trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** The text parts of a list of `Part`s, joined. */
function partsText(parts) {
  return (parts || []).map((p) => (p.type === "text" ? p.text : p.type === "image" ? "[image]" : p.path || `[${p.type}]`)).join(" ");
}

/** "1,234 tokens · $0.0123" from a `Usage`, or "". */
export function usageText(u) {
  if (!u) return "";
  const tokens = (u.input_tokens || 0) + (u.output_tokens || 0);
  const bits = [];
  if (tokens) bits.push(`${fmtCount(tokens)} ${tokens === 1 ? "token" : "tokens"}`);
  if (typeof u.cost_usd === "number") bits.push(fmtCost(u.cost_usd));
  return bits.join(" · ");
}

/** 950, 1.2k, 3.4M. */
export function fmtCount(n) {
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(n < 1e4 ? 1 : 0).replace(/\.0$/, "")}k`;
  return `${(n / 1e6).toFixed(1).replace(/\.0$/, "")}M`;
}

/** "$0.42", "$0.0031", "<$0.0001". */
export function fmtCost(usd) {
  if (typeof usd !== "number") return "";
  if (usd === 0) return "$0";
  if (usd < 0.0001) return "<$0.0001";
  if (usd >= 1) return `$${usd.toFixed(2)}`;
  // Two significant digits, trailing zeros dropped (0.995 rounds to "$1").
  return `$${String(Number(usd.toPrecision(2)))}`;
}

function toolText(item) {
  const t = item.tool || {};
  const input = t.input || {};
  const brief = input.command || input.file_path || input.path || input.pattern || input.url || input.query || (t.paths || [])[0] || "";
  return [t.name || "tool", brief ? oneLine(Array.isArray(brief) ? brief.join(" ") : brief, 80) : ""].filter(Boolean).join(" ");
}

function itemSummary(item, done) {
  if (!item) return { label: "Item", text: "" };
  switch (item.kind) {
    case "message": {
      const text = oneLine(partsText(item.content));
      if (item.role === "user") return { label: "You", text };
      return { label: "Assistant", text: done ? text : "is writing…" };
    }
    case "reasoning": return { label: "Thinking", text: done ? oneLine(partsText(item.content)) || "done" : "…" };
    case "tool_call": {
      const exit = done && typeof item.tool?.exit_code === "number" ? ` (exit ${item.tool.exit_code})` : "";
      return { label: "Tool", text: `${toolText(item)} · ${itemStatusWord(item.status)}${exit}` };
    }
    case "plan": return { label: "Plan", text: plural((item.plan || []).length, "step") };
    default: return { label: "Item", text: `${item.kind || "item"} · ${itemStatusWord(item.status)}` };
  }
}

const DELTA = { text: "Assistant", reasoning: "Thinking", output: "Tool output", arguments: "Tool input" };

/** What `ev` (a universal event) says, in words: {label, text}. */
export function summarize(ev) {
  const d = ev?.data || {};
  switch (ev?.type) {
    case EventType.SESSION_STARTED:
      return { label: "Started", text: [d.agent, d.model, d.cwd].filter(Boolean).join(" · ") };
    case EventType.SESSION_STATUS: return { label: "Status", text: statusWord(d.status) };
    case EventType.SESSION_ENDED: return { label: "Ended", text: oneLine([endedWord(d.reason), d.message].filter(Boolean).join(": ")) };
    case EventType.AGENT_EXITED:
      if (d.reason === "idle") return { label: "Agent", text: `stopped after ${durationWord(d.idle_ms || 0)} idle` };
      return { label: "Agent", text: `${exitWord(d)}${d.expected ? "" : " unexpectedly"}${d.stderr_tail ? `: ${oneLine(d.stderr_tail, 100)}` : ""}` };
    case EventType.SERVER_RESTARTED: return { label: "Server", text: "restarted" };
    case EventType.SERVER_RESUMED: return { label: "Server", text: "woke from a pause" };
    case EventType.SERVER_DISK:
      return { label: "Disk", text: d.state === "full" ? "full: turns end and new work waits for room" : d.state === "low" ? "low on space" : "has room again" };
    case EventType.SERVER_KEEP_AWAKE:
      return { label: "Server", text: d.held ? "keeps the Sprite awake again" : "lets the Sprite sleep while it waits for you" };
    case "stream.reset": return { label: "Server", text: "the store was reset" };
    case EventType.TURN_STARTED: return { label: "You", text: oneLine(partsText(d.input)) || "(new turn)" };
    case EventType.TURN_COMPLETED: {
      const bits = [stopWord(d.stop_reason), usageText(d.usage), d.error ? oneLine(d.error.message, 100) : ""].filter(Boolean);
      return { label: "Turn", text: bits.join(" · ") };
    }
    case EventType.ITEM_STARTED: return itemSummary(d.item, false);
    case EventType.ITEM_COMPLETED: return itemSummary(d.item, true);
    case EventType.ITEM_DELTA: {
      const [kind, value] = Object.entries(d.delta || {})[0] || ["", ""];
      return { label: DELTA[kind] || "Delta", text: oneLine(typeof value === "string" ? value : JSON.stringify(value)) };
    }
    case EventType.PERMISSION_REQUESTED:
      return { label: "Needs permission", text: oneLine(d.title || d.command || d.path || actionWord(d.action)) };
    case EventType.PERMISSION_RESOLVED: return { label: "Permission", text: decisionWord(d.decision, d.by) };
    case EventType.QUESTION_REQUESTED: return { label: "Question", text: oneLine(d.questions?.[0]?.prompt || "") };
    case EventType.QUESTION_RESOLVED: return { label: "Question", text: answerWord(d) };
    case EventType.USAGE_UPDATED: return { label: "Usage", text: usageText(d) };
    case EventType.ERROR: return { label: "Error", text: oneLine(d.message || d.code) };
    case EventType.AGENT_LOG: return { label: d.stream === "stderr" ? "Agent stderr" : "Agent output", text: oneLine(d.text) };
    case EventType.AGENT_UNPARSED: return { label: "Unreadable", text: oneLine(d.line) };
    default: return { label: oneLine(String(ev?.type || "event").replace(/[._]/g, " "), 40), text: oneLine(JSON.stringify(d)) };
  }
}

/**
 * What to call a session: its title, else the first line of its first
 * prompt (`summary.first_prompt`), else "New <agent> session". The list, the
 * session's own page and Activity all use it.
 */
export function sessionTitle(s) {
  if (s.title && s.title.trim()) return oneLine(s.title, 120);
  const first = (s.summary?.first_prompt || "").split("\n").map((l) => l.trim()).find(Boolean);
  if (first) return oneLine(first, 120);
  return `New ${s.agent} session`;
}
