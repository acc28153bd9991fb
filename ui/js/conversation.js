// The conversation of a session, folded from its universal events: a list of
// rows (user turns, items, permission and question cards, turn endings,
// errors, lifecycle notes) that the session view renders by windows. Pure:
// no DOM, no I/O. Deltas are appended to their item, so the page holds the
// conversation, not the events (a 200,000-event session is a few thousand rows).
// One happening is one row: a failed turn's error, its end and the agent's
// exit (or the server's restart) fold into the turn's end; a tool call a
// card shows is marked so. A subagent's items (`parent_item_id`) are the
// `children` of the tool call row that started the subagent.

import { EventType } from "./event-types.js";

export class Conversation {
  constructor() {
    this.rows = [];
    this.items = new Map(); // item_id -> row
    this.turns = new Map(); // turn_id -> {row, usage, error, end}
    this.turn = null; // the latest started turn's entry
    this.cards = new Map(); // permission_id / question_id -> row
    this.ports = new Map(); // port -> the row of its latest port.opened
    this.status = null;
    this.started = null; // session.started data
    this.ended = null; // {reason, message, time} once the session is over
    this.lastSeq = 0;
    this.changed = new Set(); // rows changed since the last take
  }

  /** Rows changed since the last call (and forgets them). */
  takeChanged() {
    const c = this.changed;
    this.changed = new Set();
    return c;
  }

  push(row, ev) {
    row.index = this.rows.length;
    row.first = row.last = ev.seq;
    this.rows.push(row);
    return row;
  }

  touch(row, ev) {
    // A subagent's item is drawn inside the tool call that started it: that row changes.
    let top = row;
    while (top.parent) top = top.parent;
    row.last = ev.seq;
    top.last = ev.seq;
    this.changed.add(top);
  }

  /** Folds one event (in seq order). */
  apply(ev) {
    if (ev.seq <= this.lastSeq) return;
    this.lastSeq = ev.seq;
    const d = ev.data || {};
    switch (ev.type) {
      case EventType.SESSION_STATUS:
        this.status = d.status;
        break;
      case EventType.SESSION_STARTED:
        this.started = d;
        this.push({ kind: "system", type: ev.type, started: d, time: ev.time }, ev);
        break;
      case EventType.TURN_STARTED: {
        const text = (d.input || []).map(partText).join("\n");
        const row = this.push({ kind: "user", turn_id: d.turn_id, text, time: ev.time }, ev);
        this.turn = { row, usage: null, error: null, end: null };
        this.turns.set(d.turn_id, this.turn);
        break;
      }
      case EventType.TURN_COMPLETED:
        this.turnEnd(ev, d);
        break;
      case EventType.USAGE_UPDATED:
        if (this.turn) this.turn.usage = { ...(this.turn.usage || {}), ...d };
        break;
      case EventType.ITEM_STARTED:
      case EventType.ITEM_COMPLETED: {
        const item = d.item || {};
        let row = this.items.get(item.item_id);
        if (!row) {
          if (item.kind === "message" && item.role === "user") break; // shown by turn.started
          const fresh = { kind: "item", item: { ...item }, text: "", reasoning: "", output: "", args: "", card: null };
          const parent = item.parent_item_id ? this.items.get(item.parent_item_id) : null;
          if (parent) {
            // A subagent's item: nested (collapsed) in the tool call that started it, not a row of its own.
            row = Object.assign(fresh, { parent, first: ev.seq, last: ev.seq });
            (parent.children ||= []).push(row);
            this.touch(row, ev);
          } else {
            row = this.push(fresh, ev);
          }
          this.items.set(item.item_id, row);
        } else {
          row.item = { ...row.item, ...item, tool: item.tool ? { ...(row.item.tool || {}), ...item.tool } : row.item.tool };
          this.touch(row, ev);
        }
        break;
      }
      case EventType.ITEM_DELTA: {
        const row = this.items.get(d.item_id);
        if (!row) break;
        const delta = d.delta || {};
        if (delta.text !== undefined) row.text += delta.text;
        if (delta.reasoning !== undefined) row.reasoning += delta.reasoning;
        if (delta.output !== undefined) row.output += delta.output;
        if (delta.arguments !== undefined) row.args += delta.arguments;
        this.touch(row, ev);
        break;
      }
      case EventType.PERMISSION_REQUESTED: {
        const row = this.push({ kind: "permission", req: d, resolved: null, time: ev.time }, ev);
        this.cards.set(d.permission_id, row);
        // The tool call it asks about shows its input in the card: the call itself stays folded.
        this.link(d.item_id ? this.items.get(d.item_id) : null, "permission", ev);
        break;
      }
      case EventType.PERMISSION_RESOLVED: {
        const row = this.cards.get(d.permission_id);
        if (row) { row.resolved = d; this.touch(row, ev); }
        break;
      }
      case EventType.QUESTION_REQUESTED: {
        const row = this.push({ kind: "question", req: d, resolved: null, time: ev.time }, ev);
        this.cards.set(d.question_id, row);
        // A question names no item: it is the open tool call of this turn that carries the questions.
        this.link(this.askingTool(), "question", ev);
        break;
      }
      case EventType.QUESTION_RESOLVED: {
        const row = this.cards.get(d.question_id);
        if (row) { row.resolved = d; this.touch(row, ev); }
        break;
      }
      case EventType.ERROR: {
        const row = this.push({ kind: "error", error: d, turn_id: this.openTurnId(), time: ev.time }, ev);
        if (row.turn_id) this.turn.error = row;
        break;
      }
      case EventType.AGENT_EXITED:
        this.exited(ev, d);
        break;
      case EventType.SERVER_RESTARTED: {
        // The turn the restart closed already says so.
        const end = this.turn?.end;
        if (end && end.error?.code === "server_restarted" && !end.restarted) {
          end.restarted = true;
          this.touch(end, ev);
        } else {
          this.push({ kind: "system", type: ev.type, time: ev.time }, ev);
        }
        break;
      }
      case EventType.SERVER_RESUMED:
        this.push({ kind: "system", type: ev.type, paused_ms: d.paused_ms, detected_by: d.detected_by || null, time: ev.time }, ev);
        break;
      case EventType.SERVER_KEEP_AWAKE:
        this.push({ kind: "system", type: ev.type, held: d.held, time: ev.time }, ev);
        break;
      case EventType.SESSION_ENDED: {
        this.ended = { reason: d.reason, message: d.message || null, time: ev.time };
        // "The agent process stopped" just before says nothing the end does not.
        const last = this.rows[this.rows.length - 1];
        if (last && last.type === EventType.AGENT_EXITED && last.exit.expected) {
          Object.assign(last, { type: ev.type, ended: this.ended, time: ev.time });
          this.touch(last, ev);
        } else {
          this.push({ kind: "system", type: ev.type, ended: this.ended, time: ev.time }, ev);
        }
        break;
      }
      case EventType.PORT_OPENED: {
        // "Dev server on :5173 — open"; greyed once it closes.
        const row = this.push({ kind: "port", port: d.port, address: d.address, open: true, time: ev.time }, ev);
        this.ports.set(d.port, row);
        break;
      }
      case EventType.PORT_CLOSED: {
        const row = this.ports.get(d.port);
        if (row && row.open) {
          row.open = false;
          row.closed_at = ev.time;
          this.touch(row, ev);
        }
        break;
      }
      case EventType.AGENT_LOG:
        this.log(ev, d.text);
        break;
      case EventType.AGENT_UNPARSED:
        this.log(ev, `unparsed: ${d.line} (${d.error})`);
        break;
      default:
        this.push({ kind: "system", type: ev.type, detail: JSON.stringify(d), time: ev.time }, ev);
    }
  }

  /** The id of the turn that is running (started, not completed), if any. */
  openTurnId() {
    return this.turn && !this.turn.end ? this.turn.row.turn_id : null;
  }

  /**
   * A turn ended: one row says how. A failed turn has already reported its
   * error (the server sends `error` first): that row becomes the turn's end
   * rather than a second message about the same failure.
   */
  turnEnd(ev, d) {
    const t = this.turns.get(d.turn_id);
    const usage = d.usage || t?.usage || null;
    const fields = { kind: "turn", turn_id: d.turn_id, stop_reason: d.stop_reason, usage, error: d.error || null, time: ev.time };
    let row;
    if (d.stop_reason === "error" && t?.error) {
      row = t.error;
      Object.assign(row, fields, { reported: row.error, error: d.error || null });
      this.touch(row, ev);
    } else {
      row = this.push(fields, ev);
    }
    if (t) t.end = row;
  }

  /**
   * The agent process ended. Right after a turn it failed, that turn's row
   * tells it (with the exit code and the agent's last output); an expected
   * stop is a quiet note, an unexpected one outside a turn a row of its own.
   */
  exited(ev, d) {
    const end = this.turn?.end;
    if (!d.expected && end && end.stop_reason === "error" && !end.exit) {
      end.exit = d;
      this.touch(end, ev);
      // The agent's log lines of that end are in the exit's output now.
      const tail = d.stderr_tail || "";
      for (let i = this.rows.length - 1; i > this.turn.row.index && tail; i--) {
        const row = this.rows[i];
        if (row.kind === "log" && !row.folded && row.lines.every((l) => tail.includes(l.trim()))) {
          row.folded = true;
          this.touch(row, ev);
        }
      }
      return;
    }
    this.push({ kind: "system", type: ev.type, exit: d, time: ev.time }, ev);
  }

  /** The open tool call of the running turn that asks the user questions. */
  askingTool() {
    for (let i = this.rows.length - 1; i >= 0; i--) {
      const row = this.rows[i];
      if (row.kind === "user") return null;
      if (row.kind !== "item" || row.item.kind !== "tool_call" || row.card) continue;
      const tool = row.item.tool || {};
      if (Array.isArray(tool.input?.questions) || /question/i.test(tool.name || "")) return row;
    }
    return null;
  }

  /** Marks a tool call row as shown by a card. */
  link(row, card, ev) {
    if (!row || row.kind !== "item") return;
    row.card = card;
    this.touch(row, ev);
  }

  /** Consecutive log lines share one collapsed row. */
  log(ev, text) {
    const last = this.rows[this.rows.length - 1];
    if (last && last.kind === "log" && !last.folded && last.lines.length < 500) {
      last.lines.push(text);
      this.touch(last, ev);
    } else {
      this.push({ kind: "log", lines: [text], time: ev.time }, ev);
    }
  }
}

export function partText(p) {
  if (!p) return "";
  if (p.type === "text") return p.text;
  if (p.type === "image") return `[image ${p.mime || ""} ${p.path || ""}]`;
  if (p.type === "file") return `[file ${p.path}]`;
  return JSON.stringify(p);
}

/** The text of an item row: its final content, or what streamed so far. */
export function itemText(row) {
  const content = row.item.content;
  if (content && content.length) return content.map(partText).join("");
  return row.item.kind === "reasoning" ? row.reasoning || row.text : row.text;
}
