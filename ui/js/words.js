// The words people read for the API's codes: session statuses, item
// statuses, permission decisions, turn stop reasons, why a session ended,
// what went wrong when a request failed.
// Plain maps and functions, no DOM; an unknown code is shown as itself with
// its underscores turned into spaces, so a new code never shows as blank.

/** A code made readable: "max_turns" → "max turns". */
export function humanize(code) {
  return String(code ?? "").replace(/_/g, " ");
}

function lookup(map, code) {
  return code in map ? map[code] : humanize(code);
}

/** Session statuses (`session.status`, the session object's `status`). */
export const STATUS = {
  starting: "Starting",
  idle: "Idle",
  running: "Running",
  waiting: "Waiting for you",
  ended: "Ended",
  failed: "Failed",
};
/** "waiting" → "Waiting for you". */
export const statusWord = (s) => lookup(STATUS, s);
/** Session statuses in a list's pill, shortest first: "Needs you". */
export const STATUS_SHORT = {
  starting: "Starting",
  idle: "Idle",
  running: "Working",
  waiting: "Needs you",
  ended: "Ended",
  failed: "Failed",
};
export const statusShort = (s) => lookup(STATUS_SHORT, s);
/** What each status means, for a tooltip. */
export const STATUS_HINT = {
  starting: "The agent is starting",
  idle: "Ready for a message",
  running: "A turn is running",
  waiting: "A permission or question is waiting for an answer",
  ended: "The session was ended; its history is kept",
  failed: "The session cannot continue",
};

/** Item statuses (a message, tool call, reasoning block). */
export const ITEM_STATUS = {
  in_progress: "Running",
  completed: "Done",
  failed: "Failed",
  declined: "Declined",
  cancelled: "Cancelled",
};
export const itemStatusWord = (s) => lookup(ITEM_STATUS, s);

/** Plan step statuses. */
export const PLAN_STATUS = { pending: "To do", in_progress: "In progress", completed: "Done" };
export const planStatusWord = (s) => lookup(PLAN_STATUS, s);

/** Permission decisions, as buttons ("Allow once") and as outcomes ("Allowed once"). */
export const DECISION_ACTION = { allow_once: "Allow once", allow_always: "Always allow", deny: "Deny" };
export const DECISION = { allow_once: "Allowed once", allow_always: "Always allowed", deny: "Denied" };
export const decisionAction = (d) => lookup(DECISION_ACTION, d);

/** Who decided a permission: `by` of `permission.resolved`. */
export const DECIDED_BY = {
  client: "",
  mode: "by the session's permission mode",
  agent: "by the agent",
};

/** A resolved permission in words: "Allowed once", "Denied by the agent". */
export function decisionWord(decision, by) {
  const what = lookup(DECISION, decision);
  const who = by in DECIDED_BY ? DECIDED_BY[by] : by ? `by ${humanize(by)}` : "";
  return who ? `${what} ${who}` : what;
}

/** A resolved question in words: "Answered: Blue", "Dismissed". */
export function answerWord(resolved) {
  if (!resolved) return "";
  if (resolved.rejected) return "Rejected, not answered";
  const answers = (resolved.answers || []).map((a) => a.join(", ")).filter(Boolean);
  return answers.length ? `Answered: ${answers.join(" / ")}` : "Answered";
}

/** Permission actions (`permission.requested` `action`). */
export const ACTION = {
  shell: "Run a command",
  file_edit: "Edit a file",
  file_write: "Write a file",
  mcp: "Use an MCP tool",
  other: "Permission",
};
export const actionWord = (a) => lookup(ACTION, a);

/** How a turn ended (`turn.completed` `stop_reason`). */
export const STOP = {
  end_turn: "Finished",
  interrupted: "Interrupted",
  error: "Stopped by an error",
  max_turns: "Stopped at the turn limit",
  refused: "The model refused",
};
export const stopWord = (s) => lookup(STOP, s);

/** Why a session ended (`session.ended` `reason`). */
export const ENDED = {
  terminated: "This session was ended",
  failed: "This session failed and cannot continue",
};
export const endedWord = (r) => lookup(ENDED, r);

/** Permission modes. */
export const MODE = {
  default: "Ask before acting",
  accept_edits: "Accept edits",
  bypass: "Never ask",
  plan: "Plan only",
};
export const modeWord = (m) => lookup(MODE, m);

/** "1 event", "2 events". */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** How the agent process ended (`agent.exited`): "exited with code 3". */
export function exitWord(d) {
  if (!d) return "";
  if (d.signal) return `was stopped by signal ${d.signal}`;
  if (d.exit_code !== undefined && d.exit_code !== null) return `exited with code ${d.exit_code}`;
  return "exited";
}

/** A duration in words: "45 s", "15 min", "2 h". */
export function durationWord(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** Why the server stopped the agent (`agent.exited` with `expected`), as a sentence. */
export function agentStoppedWord(d) {
  switch (d?.reason) {
    case "idle":
      return `The agent was stopped after ${durationWord(d.idle_ms || 0)} idle, to free its memory; the next message starts it again and resumes the conversation`;
    case "interrupt_timeout":
      return "The agent did not stop its turn within 5 s of the interrupt, so it was stopped; the next message starts it again";
    case "shutdown":
      return "The agent process stopped with the server";
    case "disk_full":
      return "The agent was stopped: the disk holding tether's data is full";
    default:
      return "The agent process stopped";
  }
}

/** A process's state (`status`, `ended`, `exit_code`, `signal` of a
 *  process): "Running", "Exited with code 0", "Stopped", "Ended with the server". */
export function processStateWord(p) {
  if (!p || p.status === "running") return "Running";
  if (p.ended === "stopped") return "Stopped";
  if (p.ended === "server_stopped") return "Ended with the server";
  if (p.signal) return `Killed by ${p.signal}`;
  if (p.exit_code !== undefined && p.exit_code !== null) return `Exited with code ${p.exit_code}`;
  return "Exited";
}

/** Who owns a listening port, in words: "Terminal (process prc_1)", "session ses_1", "python3". */
export function portOwnerWord(port, processTitle) {
  if (port.process_id) return processTitle ? `${processTitle} (process)` : `process ${port.process_id}`;
  if (port.session_id) return `an agent's session`;
  if (port.program) return port.program;
  return "unknown";
}

/** What an error code means, where the server's own detail says less. */
export const PROBLEM = {
  network: "the server could not be reached",
  unauthorized: "the server refused the token",
  payload_too_large: "it is larger than the server accepts",
  internal: "the server failed (its log has the details)",
  session_not_found: "the session does not exist",
  not_found: "it no longer exists",
  conflict: "the session cannot do that now",
  invalid_request: "the server did not accept the request",
  agent_not_installed: "the agent is not installed",
  agent_unavailable: "the agent is not available",
  path_outside_root: "the path is outside the workspace",
  process_not_found: "the process does not exist",
  port_not_listening: "nothing listens on that port any more",
  port_not_allowed: "that port is tether's own",
  upgrade_required: "the server expected a WebSocket",
};
/** Codes whose own words beat the server's detail. */
const PLAIN = new Set(["network", "unauthorized", "payload_too_large", "internal"]);

/**
 * A failed request as one sentence: `failureSentence("send the message", err)`
 * → "Could not send the message: session ses_1 has ended." `err` is an
 * ApiError (`code`, `message`) or any Error.
 */
export function failureSentence(doing, err) {
  const code = err?.code || "";
  const detail = String(err?.message || "").replace(/[.\s]+$/, "");
  const why = PLAIN.has(code) || !detail ? PROBLEM[code] || detail || "something went wrong" : detail;
  return `Could not ${doing}: ${why}.`;
}
