// The conversation of a session, folded from its universal events: a list of
// rows (user turns, items, permission and question cards, turn endings,
// errors, lifecycle notes) that the session view renders by windows. Pure:
// no DOM, no I/O. Deltas are appended to their item, so the page holds the
// conversation, not the events (a 200,000-event session is a few thousand rows).

export class Conversation {
  constructor() {
    this.rows = [];
    this.items = new Map(); // item_id -> row
    this.turns = new Map(); // turn_id -> {row, usage}
    this.turn = null; // the latest started turn's entry
    this.cards = new Map(); // permission_id / question_id -> row
    this.status = null;
    this.started = null; // session.started data
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
    row.last = ev.seq;
    this.changed.add(row);
  }

  /** Folds one event (in seq order). */
  apply(ev) {
    if (ev.seq <= this.lastSeq) return;
    this.lastSeq = ev.seq;
    const d = ev.data || {};
    switch (ev.type) {
      case "session.status":
        this.status = d.status;
        break;
      case "session.started":
        this.started = d;
        this.push({ kind: "system", type: ev.type, text: `${d.agent} ${d.agent_version || ""} started · ${d.model || "default model"} · ${d.permission_mode || ""}`.trim(), time: ev.time }, ev);
        break;
      case "turn.started": {
        const text = (d.input || []).map(partText).join("\n");
        const row = this.push({ kind: "user", turn_id: d.turn_id, text, time: ev.time }, ev);
        this.turn = { row, usage: null };
        this.turns.set(d.turn_id, this.turn);
        break;
      }
      case "turn.completed": {
        const t = this.turns.get(d.turn_id);
        this.push({ kind: "turn", turn_id: d.turn_id, stop_reason: d.stop_reason, usage: d.usage || t?.usage || null, error: d.error, time: ev.time }, ev);
        break;
      }
      case "usage.updated":
        if (this.turn) this.turn.usage = { ...(this.turn.usage || {}), ...d };
        break;
      case "item.started":
      case "item.completed": {
        const item = d.item || {};
        let row = this.items.get(item.item_id);
        if (!row) {
          if (item.kind === "message" && item.role === "user") break; // shown by turn.started
          row = this.push({ kind: "item", item: { ...item }, text: "", reasoning: "", output: "", args: "" }, ev);
          this.items.set(item.item_id, row);
        } else {
          row.item = { ...row.item, ...item, tool: item.tool ? { ...(row.item.tool || {}), ...item.tool } : row.item.tool };
          this.touch(row, ev);
        }
        break;
      }
      case "item.delta": {
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
      case "permission.requested": {
        const row = this.push({ kind: "permission", req: d, resolved: null, time: ev.time }, ev);
        this.cards.set(d.permission_id, row);
        break;
      }
      case "permission.resolved": {
        const row = this.cards.get(d.permission_id);
        if (row) { row.resolved = d; this.touch(row, ev); }
        break;
      }
      case "question.requested": {
        const row = this.push({ kind: "question", req: d, resolved: null, time: ev.time }, ev);
        this.cards.set(d.question_id, row);
        break;
      }
      case "question.resolved": {
        const row = this.cards.get(d.question_id);
        if (row) { row.resolved = d; this.touch(row, ev); }
        break;
      }
      case "error":
        this.push({ kind: "error", error: d, time: ev.time }, ev);
        break;
      case "agent.exited":
        this.push({ kind: "system", type: ev.type, text: `agent exited${d.exit_code !== undefined && d.exit_code !== null ? ` with code ${d.exit_code}` : ""}${d.signal ? ` by signal ${d.signal}` : ""}${d.expected ? "" : " (unexpected)"}`, detail: d.stderr_tail, time: ev.time }, ev);
        break;
      case "server.restarted":
        this.push({ kind: "system", type: ev.type, text: "the server restarted; open turns were closed", time: ev.time }, ev);
        break;
      case "server.resumed":
        this.push({ kind: "system", type: ev.type, text: `the machine was paused for ${d.paused_ms} ms`, time: ev.time }, ev);
        break;
      case "session.ended":
        this.push({ kind: "system", type: ev.type, text: `session ended: ${d.reason}${d.message ? ` (${d.message})` : ""}`, time: ev.time }, ev);
        break;
      case "agent.log":
        this.log(ev, d.text);
        break;
      case "agent.unparsed":
        this.log(ev, `unparsed: ${d.line} (${d.error})`);
        break;
      default:
        this.push({ kind: "system", type: ev.type, text: ev.type, detail: JSON.stringify(d), time: ev.time }, ev);
    }
  }

  /** Consecutive log lines share one collapsed row. */
  log(ev, text) {
    const last = this.rows[this.rows.length - 1];
    if (last && last.kind === "log" && last.lines.length < 500) {
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
