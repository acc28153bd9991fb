//! Claude Code's stream-json messages (output of `claude -p --output-format
//! stream-json --verbose --include-partial-messages`), as typed serde structs.
//! Unknown message types and fields are tolerated; the converter turns what it
//! cannot place into `agent.unparsed`.

use serde::Deserialize;
use serde_json::Value;

pub use crate::agents::asked::{AskedOption, AskedQuestion, Todo};
use crate::agents::lenient::Lenient;

/// One output line. Decoded in two steps (the `type`, then the payload) so
/// the hot path — thousands of `stream_event` lines a second — never goes
/// through serde's buffering of internally tagged enums.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // lives for one line; boxing the hot variant would allocate per line
pub enum Line {
    System(SystemLine),
    StreamEvent(StreamEventLine),
    Assistant(AssistantLine),
    User(UserLine),
    Result(ResultLine),
    ControlRequest(ControlRequestLine),
    /// The CLI withdrew a request it made (e.g. a permission, after an interrupt).
    ControlCancelRequest {
        request_id: String,
    },
    /// Answers to the host's own requests, and keepalives: protocol, not content.
    Ignored,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

impl Line {
    pub fn parse(line: &str) -> Result<Line, String> {
        let head: Head<'_> = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let e = |e: serde_json::Error| e.to_string();
        Ok(match &*head.kind {
            "stream_event" => Line::StreamEvent(serde_json::from_str(line).map_err(e)?),
            "assistant" => Line::Assistant(serde_json::from_str(line).map_err(e)?),
            "user" => Line::User(serde_json::from_str(line).map_err(e)?),
            "system" => Line::System(serde_json::from_str(line).map_err(e)?),
            "result" => Line::Result(serde_json::from_str(line).map_err(e)?),
            "control_request" => Line::ControlRequest(serde_json::from_str(line).map_err(e)?),
            "control_cancel_request" => {
                #[derive(Deserialize)]
                struct Cancel {
                    request_id: String,
                }
                let c: Cancel = serde_json::from_str(line).map_err(e)?;
                Line::ControlCancelRequest { request_id: c.request_id }
            }
            "control_response" | "keep_alive" => Line::Ignored,
            other => return Err(format!("unknown message type {other:?}")),
        })
    }
}

#[derive(Debug, Deserialize)]
pub struct SystemLine {
    pub subtype: String,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    /// `api_retry`: attempt number and error.
    #[serde(default)]
    pub attempt: Option<u32>,
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default)]
    pub error_status: Option<u16>,
    /// `init`: the MCP servers and how each stands.
    #[serde(default)]
    pub mcp_servers: Vec<McpServerStatus>,
}

/// One entry of `system/init`'s `mcp_servers`.
#[derive(Debug, Deserialize)]
pub struct McpServerStatus {
    pub name: String,
    /// `connected`, `failed`, `pending`, `needs-auth`, `disabled`.
    pub status: String,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StreamEventLine {
    pub event: StreamEvent,
    /// The Task (Agent) tool call whose subagent wrote this line; null for the main agent.
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
}

/// A raw Anthropic Messages API streaming event (`message_start`,
/// `content_block_start|delta|stop`, `message_delta`, `message_stop`), flat:
/// which fields are set depends on `kind`.
#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub index: Option<u32>,
    #[serde(default)]
    pub message: Option<ApiMessage>,
    #[serde(default)]
    pub content_block: Option<ContentBlock>,
    #[serde(default)]
    pub delta: Option<BlockDelta>,
    #[serde(default)]
    pub usage: Option<ApiUsage>,
}

/// `text_delta`, `thinking_delta`, `input_json_delta`, `signature_delta`, ...
/// (flat; a `message_delta`'s delta has no type).
#[derive(Debug, Deserialize)]
pub struct BlockDelta {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub partial_json: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ApiMessage {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub content: Vec<ContentBlock>,
    #[serde(default)]
    pub usage: Option<ApiUsage>,
    /// Why the message ended (`end_turn`, `tool_use`, ...): Amp's assistant
    /// lines carry it (one line holds a whole message).
    #[serde(default)]
    pub stop_reason: Option<Lenient<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    RedactedThinking {},
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: ToolResultContent,
        #[serde(default)]
        is_error: Option<bool>,
    },
    Image {},
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ApiUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct AssistantLine {
    pub message: ApiMessage,
    /// The Task (Agent) tool call whose subagent wrote this line; null for the main agent.
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
    /// A synthetic message standing for a failed API call (2.1.330 writes it
    /// snake_case; older versions camelCase).
    #[serde(default, alias = "isApiErrorMessage")]
    pub is_api_error_message: bool,
    /// The message was cut short by an interrupt.
    #[serde(default)]
    pub aborted: bool,
    /// Set on an API error: its code when it is a string.
    #[serde(default)]
    pub error: Option<Lenient<String>>,
}

#[derive(Debug, Deserialize)]
pub struct UserLine {
    pub message: UserMessage,
    /// The Task (Agent) tool call whose subagent wrote this line; null for the main agent.
    #[serde(default)]
    pub parent_tool_use_id: Option<String>,
    #[serde(default)]
    pub tool_use_result: Option<Lenient<ToolUseResult>>,
}

#[derive(Debug, Deserialize)]
pub struct UserMessage {
    #[serde(default)]
    pub content: UserContent,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl Default for UserContent {
    fn default() -> Self {
        UserContent::Blocks(Vec::new())
    }
}

#[derive(Debug, Deserialize)]
pub struct ResultLine {
    #[serde(default)]
    pub subtype: String,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default)]
    pub result: Option<String>,
    #[serde(default)]
    pub total_cost_usd: Option<f64>,
    #[serde(default)]
    pub usage: Option<ApiUsage>,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
    /// Amp: why the run failed (`error_during_execution`).
    #[serde(default)]
    pub error: Option<Lenient<String>>,
}

#[derive(Debug, Deserialize)]
pub struct ControlRequestLine {
    pub request_id: String,
    pub request: ControlRequest,
}

// Read once per request and converted at once: its size is never held.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Deserialize)]
#[serde(tag = "subtype", rename_all = "snake_case")]
pub enum ControlRequest {
    CanUseTool {
        tool_name: String,
        #[serde(default)]
        input: Value,
        #[serde(default)]
        tool_use_id: Option<String>,
        #[serde(default)]
        permission_suggestions: Option<Value>,
        #[serde(default)]
        blocked_path: Option<String>,
    },
    #[serde(other)]
    Other,
}

/// The fields of a tool's input (written by the model) that tether reads:
/// which exist depends on the tool; each is absent when of another type.
#[derive(Debug, Default, Deserialize)]
pub struct ToolInput {
    #[serde(default)]
    pub file_path: Lenient<String>,
    #[serde(default)]
    pub notebook_path: Lenient<String>,
    #[serde(default)]
    pub path: Lenient<String>,
    /// Bash.
    #[serde(default)]
    pub command: Lenient<String>,
    /// Write.
    #[serde(default)]
    pub content: Lenient<String>,
    /// Edit.
    #[serde(default)]
    pub old_string: Lenient<String>,
    #[serde(default)]
    pub new_string: Lenient<String>,
    /// MultiEdit.
    #[serde(default)]
    pub edits: Lenient<Vec<Lenient<Edit>>>,
    /// TodoWrite.
    #[serde(default)]
    pub todos: Lenient<Vec<Lenient<Todo>>>,
    /// AskUserQuestion.
    #[serde(default)]
    pub questions: Lenient<Vec<Lenient<AskedQuestion>>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Edit {
    #[serde(default)]
    pub old_string: Lenient<String>,
    #[serde(default)]
    pub new_string: Lenient<String>,
}

/// A tool result's `content`: a string, a list of blocks (their text is
/// read), or anything else (shown as JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ToolResultContent {
    Text(String),
    Blocks(Vec<Lenient<TextBlock>>),
    Other(Option<Value>),
}

impl Default for ToolResultContent {
    fn default() -> Self {
        ToolResultContent::Other(None)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TextBlock {
    #[serde(default)]
    pub text: Lenient<String>,
}

/// A user line's structured `tool_use_result` (a string for some errors).
#[derive(Debug, Default, Deserialize)]
pub struct ToolUseResult {
    #[serde(default, rename = "exitCode")]
    pub exit_code_camel: Option<Lenient<i64>>,
    #[serde(default)]
    pub exit_code: Option<Lenient<i64>>,
}

impl ToolUseResult {
    /// `exitCode` (or, when that is absent, `exit_code`) if it is an integer.
    pub fn exit_code(&self) -> Option<i64> {
        self.exit_code_camel.as_ref().or(self.exit_code.as_ref()).and_then(|c| c.get().copied())
    }
}

/// A permission or question Claude asked (`can_use_tool`): what the answer
/// needs. The reply echoes `input` as `updatedInput` (with a question's
/// answers added) and, for "always", the suggestions as `updatedPermissions`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    pub request_id: String,
    pub tool_name: String,
    pub input: Value,
    pub permission_suggestions: Option<Value>,
}

impl ToolRequest {
    /// As tether showed it before it was typed (Debug, snapshots).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "request_id": self.request_id,
            "tool_name": self.tool_name,
            "input": self.input,
            "permission_suggestions": self.permission_suggestions,
        })
    }
}
