//! Pi's RPC mode (`pi --mode rpc`, `docs/rpc.md` of
//! `@mariozechner/pi-coding-agent` 0.73.1) as serde types: the commands
//! tether writes to its stdin ([`Command`], [`UiResponse`]) and the lines it
//! writes back ([`Line`]: a `response` to a command, or an event). Every field
//! read is [`Lenient`] (absent when of another type), so a line of a known
//! type never fails as a whole; which fields are set depends on `type`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agents::lenient::Lenient;

/// A command on Pi's stdin, one JSON object a line. Every command carries an
/// `id`; Pi's `response` to it carries the same one.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// A user message; events stream after the response accepts it.
    Prompt {
        id: String,
        message: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        images: Vec<Image>,
    },
    /// Stops the running agent loop: its message ends `stopReason: "aborted"`.
    Abort { id: String },
    /// The session's state: its file, id and model.
    GetState { id: String },
}

/// An image of a prompt (`ImageContent`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Base64.
    pub data: String,
    pub mime_type: String,
}

/// The answer to an extension's dialog (`extension_ui_request` with
/// `select`, `confirm`, `input` or `editor`): tether offers no extension UI,
/// so every dialog is dismissed at once rather than left to time out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UiResponse {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub cancelled: bool,
}

impl UiResponse {
    pub fn cancelled(id: String) -> Self {
        UiResponse { kind: "extension_ui_response", id, cancelled: true }
    }
}

/// What tether writes to Pi: a command or a dialog's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outgoing {
    Command(Command),
    Ui(UiResponse),
}

impl Outgoing {
    /// The line to write (without its newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// One line Pi writes: `{"type":"response",..}` to a command, or an event
/// (`agent_start`, `message_update`, `tool_execution_end`, ...).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,

    // `response`
    /// The command's id, as tether sent it.
    #[serde(default)]
    pub id: Lenient<String>,
    /// The command answered (`prompt`, `get_state`, `abort`, `parse`, ...).
    #[serde(default)]
    pub command: Lenient<String>,
    #[serde(default)]
    pub success: Lenient<bool>,
    /// Why a command failed.
    #[serde(default)]
    pub error: Lenient<String>,
    /// `get_state`'s answer (other commands answer other shapes: all absent then).
    #[serde(default)]
    pub data: Lenient<State>,

    // `message_start`, `message_update`, `message_end`
    #[serde(default)]
    pub message: Lenient<Message>,
    #[serde(default)]
    pub assistant_message_event: Lenient<StreamEvent>,

    // `tool_execution_start`, `_update`, `_end`
    #[serde(default)]
    pub tool_call_id: Lenient<String>,
    #[serde(default)]
    pub tool_name: Lenient<String>,
    /// The tool's arguments, passed on whole.
    #[serde(default)]
    pub args: Value,
    /// `tool_execution_update`: the output so far (all of it, not a delta).
    #[serde(default)]
    pub partial_result: Lenient<ToolResult>,
    #[serde(default)]
    pub result: Lenient<ToolResult>,
    #[serde(default)]
    pub is_error: Lenient<bool>,

    // `auto_retry_start`, `compaction_start`, `extension_error`
    #[serde(default)]
    pub attempt: Lenient<u64>,
    #[serde(default)]
    pub max_attempts: Lenient<u64>,
    #[serde(default)]
    pub delay_ms: Lenient<u64>,
    #[serde(default)]
    pub error_message: Lenient<String>,
    #[serde(default)]
    pub reason: Lenient<String>,

    // `extension_ui_request`
    /// `select`, `confirm`, `input`, `editor` (dialogs, answered) or
    /// `notify`, `setStatus`, ... (fire and forget).
    #[serde(default)]
    pub method: Lenient<String>,
    #[serde(default)]
    pub title: Lenient<String>,
}

/// `get_state`'s `data`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The session file (absent with `--no-session`): what `--session` reopens.
    #[serde(default)]
    pub session_file: Lenient<String>,
    #[serde(default)]
    pub session_id: Lenient<String>,
    #[serde(default)]
    pub model: Lenient<Model>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Model {
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub provider: Lenient<String>,
}

/// An `AgentMessage`: a user, assistant or tool-result message (or one an
/// extension adds).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `user`, `assistant`, `toolResult`, `bashExecution`, `custom`, ...
    #[serde(default)]
    pub role: Lenient<String>,
    #[serde(default)]
    pub content: Lenient<Vec<Lenient<Block>>>,
    /// `stop`, `length`, `toolUse`, `error`, `aborted`.
    #[serde(default)]
    pub stop_reason: Lenient<String>,
    #[serde(default)]
    pub error_message: Lenient<String>,
    #[serde(default)]
    pub usage: Lenient<MessageUsage>,
}

/// A content block of a message.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Block {
    /// `text`, `thinking`, `toolCall`, `image`.
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,
    #[serde(default)]
    pub text: Lenient<String>,
    #[serde(default)]
    pub thinking: Lenient<String>,
    /// A tool call's id and name.
    #[serde(default)]
    pub id: Lenient<String>,
    #[serde(default)]
    pub name: Lenient<String>,
    /// A tool call's arguments, passed on whole.
    #[serde(default)]
    pub arguments: Value,
}

/// An assistant message's usage.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageUsage {
    #[serde(default)]
    pub input: Lenient<u64>,
    #[serde(default)]
    pub output: Lenient<u64>,
    #[serde(default)]
    pub cache_read: Lenient<u64>,
    #[serde(default)]
    pub cost: Lenient<Cost>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Cost {
    #[serde(default)]
    pub total: Lenient<f64>,
}

/// `message_update`'s `assistantMessageEvent`: one step of the stream.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    /// `start`, `text_start`/`_delta`/`_end`, `thinking_*`, `toolcall_*`, `done`, `error`.
    #[serde(default, rename = "type")]
    pub kind: Lenient<String>,
    #[serde(default)]
    pub content_index: Lenient<usize>,
    #[serde(default)]
    pub delta: Lenient<String>,
    /// `toolcall_end`: the whole call.
    #[serde(default)]
    pub tool_call: Lenient<Block>,
    /// The message so far: at `toolcall_start` it holds the call's id and name.
    #[serde(default)]
    pub partial: Lenient<Message>,
}

/// A tool's result (`content` text blocks, `details` per tool).
#[derive(Debug, Default, Deserialize)]
pub struct ToolResult {
    #[serde(default)]
    pub content: Lenient<Vec<Lenient<Block>>>,
    #[serde(default)]
    pub details: Lenient<ToolDetails>,
}

impl ToolResult {
    /// The text of its text blocks, joined.
    pub fn text(&self) -> String {
        let blocks = self.content.get().map(Vec::as_slice).unwrap_or_default();
        blocks.iter().filter_map(|b| b.get()).filter_map(|b| b.text.get().map(String::as_str)).collect()
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct ToolDetails {
    /// `edit`: the change, one `-N old` / `+N new` line per changed line.
    #[serde(default)]
    pub diff: Lenient<String>,
}

/// The arguments of Pi's built-in tools that tether shows.
#[derive(Debug, Default, Deserialize)]
pub struct ToolArgs {
    /// `read`, `edit`, `write`, `ls`, ...
    #[serde(default)]
    pub path: Lenient<String>,
}
