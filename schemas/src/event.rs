//! The universal event: one envelope, one tagged enum of payloads.
//!
//! Every event type is declared once, in the `event_types!` table below
//! (variant, payload struct, wire name, constant). To add an event: write
//! its payload struct here, add one line to the table, and run
//! `TETHER_BLESS=1 cargo test -p tether-protocol` to regenerate the schemas
//! and the UI's `ui/js/event-types.js`. Code that names an event type uses
//! the [`event_type`] constants (`EventType` in the UI), never a literal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{PermissionMode, SessionStatus};

/// One event of a session, as stored and as streamed.
///
/// `seq` is gap-free per session; `gseq` is the global cursor. Both are
/// assigned by the server when the event is committed to the store.
// Deserialized by hand: `type` first, then `data` straight into its payload,
// without serde's buffering of flattened enums (clients decode many).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Event {
    pub seq: u64,
    pub gseq: u64,
    pub session_id: String,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    pub source: Source,
    #[serde(flatten)]
    pub body: EventBody,
    /// The agent's native message; present only when asked for with `include_raw=true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<Value>,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            seq: u64,
            gseq: u64,
            session_id: String,
            time: String,
            source: Source,
            #[serde(rename = "type")]
            kind: String,
            data: Box<serde_json::value::RawValue>,
            #[serde(default)]
            raw: Option<Value>,
        }
        let w = Wire::deserialize(d)?;
        let body = EventBody::from_parts(&w.kind, w.data.get()).map_err(serde::de::Error::custom)?;
        Ok(Event {
            seq: w.seq,
            gseq: w.gseq,
            session_id: w.session_id,
            time: w.time,
            source: w.source,
            body,
            raw: w.raw,
        })
    }
}

impl Event {
    /// The `type` string of this event, e.g. `item.delta`.
    pub fn event_type(&self) -> &'static str {
        self.body.event_type()
    }
}

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Translated from the agent's output.
    Agent,
    /// Synthesized by the server: lifecycle, errors, restarts.
    Server,
}

/// Declares every event type once: its variant of [`EventBody`], its
/// payload, its wire name and the constant that names it. Everything that
/// lists event types is generated from this one table: the enum (and so the
/// JSON Schema and the OpenAPI document), [`EVENT_TYPES`], the constants of
/// [`event_type`], [`EventBody::from_parts`], [`EventBody::event_type`],
/// [`EventBody::write_data`] and the UI's `ui/js/event-types.js`
/// ([`ui_event_types_js`]).
macro_rules! event_types {
    ($( $variant:ident($payload:ty) = $name:literal as $konst:ident; )*) => {
        /// The `type` and `data` of an event.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
        #[serde(tag = "type", content = "data")]
        pub enum EventBody {
            $( #[serde(rename = $name)] $variant($payload), )*
        }

        /// Every event `type`, in the order of the contract.
        pub const EVENT_TYPES: &[&str] = &[$($name),*];

        /// The wire name of each event type: match and compare on these
        /// rather than on spelled-out strings.
        pub mod event_type {
            $( #[doc = concat!("`", $name, "`")] pub const $konst: &str = $name; )*
            /// `(constant name, wire name)` of every event type, in the order of the contract.
            pub(crate) const NAMED: &[(&str, &str)] = &[$((stringify!($konst), $name)),*];
        }

        impl EventBody {
            /// Decodes `data` (JSON text) as the payload of the event type `kind`.
            pub fn from_parts(kind: &str, data: &str) -> Result<EventBody, serde_json::Error> {
                Ok(match kind {
                    $( $name => EventBody::$variant(serde_json::from_str(data)?), )*
                    other => return Err(serde::de::Error::custom(format!("unknown event type {other:?}"))),
                })
            }

            /// The `type` string of this event, e.g. `item.delta`.
            pub fn event_type(&self) -> &'static str {
                match self {
                    $( EventBody::$variant(_) => $name, )*
                }
            }

            /// Writes the `data` of this event (its payload alone) as JSON.
            pub fn write_data<W: std::io::Write>(&self, out: W) -> Result<(), serde_json::Error> {
                match self {
                    $( EventBody::$variant(d) => serde_json::to_writer(out, d), )*
                }
            }
        }
    };
}

event_types! {
    SessionStarted(SessionStarted) = "session.started" as SESSION_STARTED;
    SessionStatus(SessionStatusData) = "session.status" as SESSION_STATUS;
    SessionEnded(SessionEnded) = "session.ended" as SESSION_ENDED;
    AgentExited(AgentExited) = "agent.exited" as AGENT_EXITED;
    ServerRestarted(ServerRestarted) = "server.restarted" as SERVER_RESTARTED;
    ServerResumed(ServerResumed) = "server.resumed" as SERVER_RESUMED;
    TurnStarted(TurnStarted) = "turn.started" as TURN_STARTED;
    TurnCompleted(TurnCompleted) = "turn.completed" as TURN_COMPLETED;
    ItemStarted(ItemEvent) = "item.started" as ITEM_STARTED;
    ItemDelta(ItemDelta) = "item.delta" as ITEM_DELTA;
    ItemCompleted(ItemEvent) = "item.completed" as ITEM_COMPLETED;
    PermissionRequested(PermissionRequested) = "permission.requested" as PERMISSION_REQUESTED;
    PermissionResolved(PermissionResolved) = "permission.resolved" as PERMISSION_RESOLVED;
    QuestionRequested(QuestionRequested) = "question.requested" as QUESTION_REQUESTED;
    QuestionResolved(QuestionResolved) = "question.resolved" as QUESTION_RESOLVED;
    UsageUpdated(Usage) = "usage.updated" as USAGE_UPDATED;
    Error(ErrorData) = "error" as ERROR;
    AgentLog(AgentLog) = "agent.log" as AGENT_LOG;
    AgentUnparsed(AgentUnparsed) = "agent.unparsed" as AGENT_UNPARSED;
    McpStatus(McpStatus) = "mcp.status" as MCP_STATUS;
    ServerKeepAwake(ServerKeepAwake) = "server.keep_awake" as SERVER_KEEP_AWAKE;
    ServerDisk(ServerDisk) = "server.disk" as SERVER_DISK;
    PortOpened(crate::PortOpened) = "port.opened" as PORT_OPENED;
    PortClosed(crate::PortClosed) = "port.closed" as PORT_CLOSED;
}

impl EventBody {
    /// The `data` of this event (its payload alone) as JSON text.
    pub fn data_json(&self) -> String {
        let mut out = Vec::with_capacity(128);
        match self.write_data(&mut out) {
            // serde_json writes UTF-8 only.
            Ok(()) => String::from_utf8(out).unwrap_or_else(|_| "{}".into()),
            Err(_) => "{}".into(),
        }
    }
}

/// The UI's list of event types (`ui/js/event-types.js`), generated from
/// [`event_types!`] and committed; `TETHER_BLESS=1 cargo test -p
/// tether-protocol` rewrites it, a test fails when it is stale.
pub fn ui_event_types_js() -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "// Generated from the event types of tether-protocol (schemas/src/event.rs): do not edit.\n\
         // Rewrite with: TETHER_BLESS=1 cargo test -p tether-protocol\n\n\
         /** Each event `type` by the name of its constant, e.g. `EventType.TURN_COMPLETED`. */\n\
         export const EventType = Object.freeze({\n",
    );
    for (konst, name) in event_type::NAMED {
        let _ = writeln!(out, "  {konst}: {name:?},");
    }
    out.push_str(
        "});

/** Every event `type`, in the order of the contract. */
export const EVENT_TYPES = Object.freeze(Object.values(EventType));
",
    );
    out
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Capabilities {
    pub streaming_text: bool,
    pub tool_calls: bool,
    pub permissions: bool,
    pub questions: bool,
    pub interrupt: bool,
    pub resume: bool,
    pub mcp: bool,
    pub skills: bool,
    pub models: bool,
    pub reasoning: bool,
    pub usage: bool,
    pub images: bool,
    pub terminal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStarted {
    pub agent: String,
    #[serde(default)]
    pub agent_version: Option<String>,
    #[serde(default)]
    pub native_session_id: Option<String>,
    pub cwd: String,
    #[serde(default)]
    pub model: Option<String>,
    pub permission_mode: PermissionMode,
    pub capabilities: Capabilities,
    /// The store this event was written to (`sto_…`, see `/v1/info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The server start that wrote it (`boot_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionStatusData {
    pub status: SessionStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Terminated,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEnded {
    pub reason: EndReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentExited {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// True when the server asked the agent to stop (DELETE, shutdown, idle).
    pub expected: bool,
    /// Why the server stopped the agent; absent when the agent exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<AgentStopReason>,
    /// With `reason: idle`: how long the session had been idle, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
}

/// Why the server stopped a session's agent process (`agent.exited.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStopReason {
    /// The session was idle for `--agent-idle-secs`: the session stays
    /// `idle`, and its next message starts the agent again, resuming the
    /// conversation as after a restart.
    Idle,
    /// The session was deleted.
    Deleted,
    /// The server shut down.
    Shutdown,
    /// The agent did not end its turn within 5 s of an interrupt.
    InterruptTimeout,
    /// The disk holding the data dir was full: the turn was ended with
    /// `store_full` and what the agent had not handed over was dropped.
    DiskFull,
}

/// The server restarted while the session had a live agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerRestarted {
    /// The store (`sto_…`): a different one than a client saw before means
    /// the data dir was replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The start that recovered the session (`boot_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

/// The machine was paused (a Sprite hibernating, a SIGSTOP) and woke with the
/// agent still running: model calls in flight may have failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerResumed {
    /// How long the server was frozen, as far as its clocks can tell.
    pub paused_ms: u64,
    /// Which clock gave the pause away (absent from servers older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_by: Option<PauseSignal>,
}

/// The clock that showed a pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PauseSignal {
    /// The monotonic clock ran on while the server did not (a stopped
    /// process: SIGSTOP, a debugger, a starved machine).
    Monotonic,
    /// The wall clock moved ahead of the monotonic one (a frozen VM whose
    /// clock is stepped on wake, maybe well after the wake).
    WallClock,
    /// The boot-time clock moved ahead of the monotonic one (a suspended
    /// machine: `CLOCK_BOOTTIME` counts the suspension, `CLOCK_MONOTONIC` does not).
    BootClock,
}

impl PauseSignal {
    /// The wire form (`wall_clock`).
    pub fn as_str(self) -> &'static str {
        match self {
            PauseSignal::Monotonic => "monotonic",
            PauseSignal::WallClock => "wall_clock",
            PauseSignal::BootClock => "boot_clock",
        }
    }
}

/// Inside a Sprite, whether tether holds the Sprite awake for this session.
/// Sent to sessions that only wait for a person (a permission or a
/// question) when tether stops holding the Sprite after the configured time
/// (`held: false`; the Sprite may then pause, which a waiting agent does not
/// mind), and again when work resumes and it holds it again (`held: true`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerKeepAwake {
    pub held: bool,
    /// `waiting_for_person` (released) or `work_resumed` (held again).
    pub reason: String,
    /// How long every busy session had only waited for a person, when released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
}

/// The disk holding the data dir crossed a watermark (on the sandbox log,
/// so on the global stream): `low` (below `--disk-low-mb` free: a warning,
/// `/v1/health` is `degraded`), `full` (below `--disk-flood-mb` free, or the
/// store could not commit for lack of space: new sessions and turns are
/// refused with 507 and running turns end with `store_full`), `ok` (space is
/// back; everything resumes by itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ServerDisk {
    /// `ok`, `low` or `full`.
    pub state: String,
    pub free_bytes: u64,
    pub total_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnStarted {
    pub turn_id: String,
    pub input: Vec<Part>,
    /// The turn's place in a distributed trace (W3C Trace Context): the
    /// caller's trace when it sent a `traceparent`, else a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TurnTrace>,
}

/// Where a turn sits in a distributed trace: the ids its OpenTelemetry spans
/// carry, and that webhook deliveries of its events send as `traceparent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnTrace {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The turn's own span (16 lowercase hex digits).
    pub span_id: String,
    /// The caller's span the turn is a child of, when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    /// Whether the caller asked for the trace to be recorded (its
    /// `traceparent`'s sampled flag; true when it sent none).
    pub sampled: bool,
}

impl TurnTrace {
    /// The W3C `traceparent` header naming the turn's span.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, if self.sampled { "01" } else { "00" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    Interrupted,
    Error,
    MaxTurns,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnCompleted {
    pub turn_id: String,
    pub stop_reason: StopReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TurnError>,
}

/// `item.started` and `item.completed` both carry the whole item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemEvent {
    pub item: Item,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Message,
    Reasoning,
    ToolCall,
    Plan,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    InProgress,
    Completed,
    Failed,
    Declined,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Item {
    pub item_id: String,
    pub turn_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_id: Option<String>,
    /// The item this one belongs to: the tool call (kind `task`) whose
    /// subagent produced it. Absent for the agent's own items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_item_id: Option<String>,
    pub kind: ItemKind,
    #[serde(default)]
    pub role: Option<Role>,
    pub status: ItemStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Part>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlanEntry>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Shell,
    FileEdit,
    FileRead,
    Search,
    Web,
    Mcp,
    Task,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Tool {
    /// The tool's name; for an MCP tool, its name on its server (the agent's
    /// qualified name, e.g. `mcp__srv__echo`, is in the raw event).
    pub name: String,
    pub kind: ToolKind,
    /// The MCP server of an `mcp` tool, by the name the session gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default)]
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanStatus {
    Pending,
    InProgress,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PlanEntry {
    pub text: String,
    pub status: PlanStatus,
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Part {
    Text {
        text: String,
    },
    Image {
        mime: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    File {
        path: String,
    },
}

impl Part {
    pub fn text(text: impl Into<String>) -> Self {
        Part::Text { text: text.into() }
    }

    /// The text of the text parts among `parts`, joined (images and files left out).
    pub fn joined_text(parts: &[Part]) -> String {
        parts
            .iter()
            .filter_map(|p| match p {
                Part::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

impl Item {
    /// The item's text: its text parts, joined.
    pub fn text(&self) -> String {
        Part::joined_text(&self.content)
    }
}

/// An incremental piece of an item: exactly one field is set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delta {
    Text(String),
    Reasoning(String),
    Output(String),
    Arguments(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ItemDelta {
    pub item_id: String,
    pub delta: Delta,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionAction {
    Shell,
    FileEdit,
    FileWrite,
    Mcp,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    AllowOnce,
    AllowAlways,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PermissionRequested {
    pub permission_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    pub action: PermissionAction,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    pub options: Vec<Decision>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedBy {
    Client,
    Mode,
    Agent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PermissionResolved {
    pub permission_id: String,
    pub decision: Decision,
    pub by: ResolvedBy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuestionOption {
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Question {
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    pub options: Vec<QuestionOption>,
    pub multi_select: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuestionRequested {
    pub question_id: String,
    pub questions: Vec<Question>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QuestionResolved {
    pub question_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<Vec<String>>>,
    pub rejected: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorData {
    pub code: String,
    pub message: String,
    pub retryable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stderr,
    Pty,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentLog {
    pub stream: LogStream,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentUnparsed {
    pub line: String,
    pub error: String,
}

/// How an MCP server given to the session stands, as its agent reports it
/// (written when it changes, per server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpStatus {
    pub server: String,
    pub status: McpServerState,
    /// Why it failed, when the agent says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum McpServerState {
    Starting,
    Connected,
    Failed,
    Disabled,
}
