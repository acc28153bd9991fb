// Generated from the event types of tether-protocol (schemas/src/event.rs): do not edit.
// Rewrite with: TETHER_BLESS=1 cargo test -p tether-protocol

/** Each event `type` by the name of its constant, e.g. `EventType.TURN_COMPLETED`. */
export const EventType = Object.freeze({
  SESSION_STARTED: "session.started",
  SESSION_STATUS: "session.status",
  SESSION_ENDED: "session.ended",
  AGENT_EXITED: "agent.exited",
  SERVER_RESTARTED: "server.restarted",
  SERVER_RESUMED: "server.resumed",
  TURN_STARTED: "turn.started",
  TURN_COMPLETED: "turn.completed",
  ITEM_STARTED: "item.started",
  ITEM_DELTA: "item.delta",
  ITEM_COMPLETED: "item.completed",
  PERMISSION_REQUESTED: "permission.requested",
  PERMISSION_RESOLVED: "permission.resolved",
  QUESTION_REQUESTED: "question.requested",
  QUESTION_RESOLVED: "question.resolved",
  USAGE_UPDATED: "usage.updated",
  ERROR: "error",
  AGENT_LOG: "agent.log",
  AGENT_UNPARSED: "agent.unparsed",
  MCP_STATUS: "mcp.status",
  SERVER_KEEP_AWAKE: "server.keep_awake",
  SERVER_DISK: "server.disk",
  PORT_OPENED: "port.opened",
  PORT_CLOSED: "port.closed",
});

/** Every event `type`, in the order of the contract. */
export const EVENT_TYPES = Object.freeze(Object.values(EventType));
