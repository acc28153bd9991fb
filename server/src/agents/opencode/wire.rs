//! OpenCode's event stream (`GET /event`: one `{"type", "properties"}`
//! object per server-sent event) as serde types: the fields tether reads,
//! each [`Lenient`] (absent when of another type), so an event of a known
//! type never fails as a whole. Which fields are set depends on `type`; the
//! full API is in `testdata/openapi.json`. Also the token of a permission or
//! question OpenCode asked ([`AskedRequest`]).

use serde::Deserialize;
use serde_json::{json, Value};

pub use crate::agents::asked::{AskedOption, AskedQuestion, Todo};
use crate::agents::lenient::Lenient;

/// One event.
#[derive(Debug, Default, Deserialize)]
pub struct Event {
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,
    /// Kept whole: a permission request shows it as its input.
    #[serde(default)]
    pub properties: Value,
}

/// An event's `properties`, flat: which are set depends on the event type.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Properties {
    #[serde(default, rename = "sessionID")]
    pub session_id: Lenient<String>,
    /// `message.updated`.
    #[serde(default)]
    pub info: Lenient<MessageInfo>,
    /// `message.part.updated`.
    #[serde(default)]
    pub part: Lenient<MessagePart>,
    /// `message.part.delta`.
    #[serde(default, rename = "partID")]
    pub part_id: Lenient<String>,
    #[serde(default)]
    pub delta: Lenient<String>,
    /// `session.status`.
    #[serde(default)]
    pub status: Lenient<SessionStatus>,
    /// `session.error`.
    #[serde(default)]
    pub error: Lenient<SessionError>,
    /// `permission.asked` and `question.asked`: the request's id.
    #[serde(default)]
    pub id: Lenient<String>,
    /// `permission.asked`: the permission's name (`bash`, `edit`, `<server>_<tool>`, ...).
    #[serde(default)]
    pub permission: Lenient<String>,
    #[serde(default)]
    pub metadata: Lenient<PermissionMetadata>,
    /// The tool call a permission or question is about.
    #[serde(default)]
    pub tool: Lenient<ToolRef>,
    /// `question.asked`.
    #[serde(default)]
    pub questions: Lenient<Vec<Lenient<AskedQuestion>>>,
    /// `todo.updated`.
    #[serde(default)]
    pub todos: Lenient<Vec<Lenient<Todo>>>,
    /// `session.warning`, `tui.toast.show`.
    #[serde(default)]
    pub message: Lenient<String>,
}

impl Properties {
    /// The OpenCode session the event belongs to, wherever it names it.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id
            .get()
            .or_else(|| self.info.get().and_then(|i| i.session_id.get()))
            .or_else(|| self.part.get().and_then(|p| p.session_id.get()))
            .map(String::as_str)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct MessageInfo {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default, rename = "sessionID")]
    pub session_id: Lenient<String>,
    #[serde(default)]
    pub role: Lenient<String>,
}

/// A part of a message: `text`, `reasoning`, `tool`, `step-finish`, ...
#[derive(Debug, Default, Deserialize)]
pub struct MessagePart {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default, rename = "messageID")]
    pub message_id: Lenient<String>,
    #[serde(default, rename = "sessionID")]
    pub session_id: Lenient<String>,
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,
    /// text and reasoning: `time.end` is set once the part is complete.
    #[serde(default)]
    pub time: Lenient<PartTime>,
    #[serde(default)]
    pub text: Lenient<String>,
    /// tool: its name, call id and state.
    #[serde(default)]
    pub tool: Lenient<String>,
    #[serde(default, rename = "callID")]
    pub call_id: Lenient<String>,
    #[serde(default)]
    pub state: Lenient<ToolState>,
    /// step-finish: the step's usage.
    #[serde(default)]
    pub tokens: Lenient<Tokens>,
    #[serde(default)]
    pub cost: Lenient<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PartTime {
    #[serde(default)]
    pub end: Lenient<f64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolState {
    /// `pending`, `running`, `completed`, `error`.
    #[serde(default)]
    pub status: Lenient<String>,
    /// The tool's input as the model wrote it.
    #[serde(default)]
    pub input: Value,
    #[serde(default)]
    pub output: Lenient<String>,
    #[serde(default)]
    pub error: Lenient<String>,
    #[serde(default)]
    pub metadata: Lenient<ToolMetadata>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolMetadata {
    #[serde(default)]
    pub diff: Lenient<String>,
    #[serde(default)]
    pub exit: Lenient<i64>,
}

/// The fields of a tool's input tether reads.
#[derive(Debug, Default, Deserialize)]
pub struct ToolInput {
    #[serde(default, rename = "filePath")]
    pub file_path: Lenient<String>,
    /// todowrite.
    #[serde(default)]
    pub todos: Lenient<Vec<Lenient<Todo>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Tokens {
    #[serde(default)]
    pub input: Lenient<u64>,
    #[serde(default)]
    pub output: Lenient<u64>,
    #[serde(default)]
    pub reasoning: Lenient<u64>,
    #[serde(default)]
    pub cache: Lenient<CacheTokens>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CacheTokens {
    #[serde(default)]
    pub read: Lenient<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionStatus {
    /// `idle`, `busy`, `retry`.
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,
    #[serde(default)]
    pub message: Lenient<String>,
    /// Shown as it came (a number, or `null` when absent).
    #[serde(default)]
    pub attempt: Value,
}

#[derive(Debug, Default, Deserialize)]
pub struct SessionError {
    #[serde(default)]
    pub name: Lenient<String>,
    #[serde(default)]
    pub data: Lenient<ErrorData>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorData {
    #[serde(default)]
    pub message: Lenient<String>,
    #[serde(default)]
    pub is_retryable: Lenient<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PermissionMetadata {
    #[serde(default)]
    pub command: Lenient<String>,
    #[serde(default)]
    pub filepath: Lenient<String>,
    #[serde(default)]
    pub diff: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolRef {
    #[serde(default, rename = "callID")]
    pub call_id: Lenient<String>,
}

/// A permission or question OpenCode asked: its id is the path of the reply
/// (`/permission/<id>/reply`, `/question/<id>/reply|reject`).
#[derive(Debug, Clone, PartialEq)]
pub enum AskedRequest {
    Permission { id: Option<String>, permission: String },
    Question { id: Option<String> },
}

impl AskedRequest {
    pub fn id(&self) -> &str {
        match self {
            AskedRequest::Permission { id, .. } | AskedRequest::Question { id } => id.as_deref().unwrap_or_default(),
        }
    }

    /// As tether showed it before it was typed (Debug, snapshots).
    pub fn to_json(&self) -> Value {
        match self {
            AskedRequest::Permission { id, permission } => json!({"request_id": id, "permission": permission}),
            AskedRequest::Question { id } => json!({"request_id": id}),
        }
    }
}

/// A line of the process host's HTTP bridge (not OpenCode's own):
/// `{"bridge":"ready"}`, `{"bridge":"response","id","status","body"}` for
/// one of the adapter's calls, `{"bridge":"error"|"closed","message"?}`.
#[derive(Debug, Default, Deserialize)]
pub struct BridgeLine {
    #[serde(default)]
    pub bridge: Option<Lenient<String>>,
    #[serde(default)]
    pub id: Lenient<u64>,
    #[serde(default)]
    pub status: Lenient<u64>,
    /// OpenCode's answer, decoded per call (and shown whole in errors).
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub message: Lenient<String>,
}

/// The answer to `GET /config` (the merged config), as far as tether reads it.
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub mcp: Lenient<std::collections::BTreeMap<String, Lenient<ConfigMcpServer>>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ConfigMcpServer {
    #[serde(default)]
    pub enabled: Lenient<bool>,
}

/// One server of the answer to `GET /mcp` (`{name: {status, error?}}`).
#[derive(Debug, Default, Deserialize)]
pub struct McpState {
    /// `connected`, `disabled`, `failed`, `needs_auth`, `needs_client_registration`, ...
    #[serde(default)]
    pub status: Lenient<String>,
    #[serde(default)]
    pub error: Lenient<String>,
}

/// The answer to `POST /session`.
#[derive(Debug, Default, Deserialize)]
pub struct SessionCreated {
    #[serde(default)]
    pub id: Lenient<String>,
}
