//! Arguments and results of tether's own MCP tools (`/mcp`, `tether mcp`).
//! Argument names follow the HTTP API; each tool's JSON Schema is generated
//! from these types, and every result is one of them as structured content.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::event::{Decision, ItemStatus, PermissionRequested, QuestionRequested, StopReason, ToolKind, Usage};
use crate::{Session, SessionStatus};

/// No arguments.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// One session, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionArgs {
    /// The session's id (`ses_...`).
    pub session_id: String,
}

/// `create_session`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionCreated {
    pub session_id: String,
    /// The turn the `prompt` started; null without a prompt.
    pub turn_id: Option<String>,
    pub session: Session,
}

/// `send_message`: a user message; it starts a turn, or waits behind the running one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageArgs {
    pub session_id: String,
    /// The message.
    pub text: String,
}

/// `wait_for_turn`: blocks until the turn ends, asks for a permission or an
/// answer, or `timeout_s` passes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitForTurnArgs {
    pub session_id: String,
    /// The turn to wait for (from `create_session` or `send_message`); the session's latest turn if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// Seconds to wait at most (0 to 3600; 60 if absent). On timeout the report says `done: false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

/// Where a turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnState {
    /// Sent, not started yet (another turn runs first).
    Queued,
    /// The agent is working.
    Running,
    /// The agent waits for an answer: see `permissions` and `questions`.
    Waiting,
    /// Over: see `stop_reason`.
    Completed,
    /// The session has no turn yet.
    None,
}

/// A tool call of a turn, in brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ToolBrief {
    pub item_id: String,
    pub name: String,
    pub kind: ToolKind,
    pub status: ItemStatus,
    /// The MCP server, for MCP tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The input as JSON, cut to a few hundred characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The output, cut to a few hundred characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// `wait_for_turn`'s result: a turn as far as it has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TurnProgress {
    pub session_id: String,
    pub turn_id: Option<String>,
    pub state: TurnState,
    /// The turn is over.
    pub done: bool,
    /// The wait ended because `timeout_s` passed (the turn goes on).
    pub timed_out: bool,
    pub session_status: SessionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    /// The turn's last assistant message so far.
    pub text: String,
    pub tools: Vec<ToolBrief>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Why the turn failed (`stop_reason: error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Permission requests waiting for `answer_permission`.
    pub permissions: Vec<PermissionRequested>,
    /// Questions waiting for `answer_question`.
    pub questions: Vec<QuestionRequested>,
    /// The session's last event `seq` seen: `get_events` with `after` = this reads on.
    pub last_seq: u64,
}

/// `get_events`: a page of a session's events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetEventsArgs {
    pub session_id: String,
    /// Events after this `seq` (0: from the start).
    #[serde(default)]
    pub after: u64,
    /// At most this many events (1 to 10000; 100 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Include each event's native agent message as `raw`.
    #[serde(default)]
    pub include_raw: bool,
}

/// `answer_permission`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerPermissionArgs {
    pub session_id: String,
    pub permission_id: String,
    pub decision: Decision,
    /// Told to the agent with a `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `answer_question`: `answers` (one list of chosen labels per question) or `reject`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerQuestionArgs {
    pub session_id: String,
    pub question_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<Vec<String>>>,
    #[serde(default)]
    pub reject: bool,
}

/// `delete_session`: ends the session and its processes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteSessionArgs {
    pub session_id: String,
    /// Also forget its events.
    #[serde(default)]
    pub purge: bool,
}

/// `list_sessions`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SessionStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// 1 to 1000; 50 if absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// A path in the workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathArgs {
    /// Relative to the workspace root ("" or "." for the root).
    #[serde(default)]
    pub path: String,
}

/// How file content is written in `read_file` and `write_file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// `read_file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    pub path: String,
    /// Start at this byte.
    #[serde(default)]
    pub offset: u64,
    /// Read at most this many bytes (1 MiB if absent, at most 8 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// `read_file`'s result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FileContent {
    pub path: String,
    /// The file's whole size in bytes.
    pub size: u64,
    pub offset: u64,
    /// `utf8`, or `base64` when the bytes read are not UTF-8.
    pub encoding: Encoding,
    pub content: String,
    /// More of the file follows the bytes read.
    pub truncated: bool,
}

/// `write_file`: creates or atomically replaces a file (and its parent folders).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    pub path: String,
    pub content: String,
    /// How `content` is written (`utf8` if absent).
    #[serde(default)]
    pub encoding: Encoding,
}

/// The result of a tool that only acknowledges.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Done {
    pub ok: bool,
}

/// One process, by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessArgs {
    /// The process's id (`prc_...`).
    pub process_id: String,
}

/// `read_process_output`: the output from a byte offset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadOutputArgs {
    pub process_id: String,
    /// The offset to read from (0 if absent); read on with after = the answer's `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Most bytes to answer (1 to 1048576; 65536 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
}

/// `send_input`: text typed into a process (a newline is not added).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendInputArgs {
    pub process_id: String,
    pub text: String,
}

/// `create_preview_link`: a link a person opens in a browser (no token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewLinkArgs {
    pub port: u16,
    /// Seconds the link is good for (1 to 604800; 3600 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub style: crate::ProxyStyle,
    /// The path inside the app to open (`/` if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl PreviewLinkArgs {
    /// The link as `POST /v1/ports/{port}/links` takes it.
    pub fn link(&self) -> crate::CreatePreviewLink {
        crate::CreatePreviewLink { ttl_secs: self.ttl_secs, style: self.style, path: self.path.clone() }
    }
}
