//! Claude Code's stream-json messages (output of `claude -p --output-format
//! stream-json --verbose --include-partial-messages`), as typed serde structs.
//! Unknown message types and fields are tolerated; the converter turns what it
//! cannot place into `agent.unparsed`.

use serde::Deserialize;
use serde_json::Value;

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
        content: Value,
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
    /// A synthetic message standing for a failed API call (2.1.330 writes it
    /// snake_case; older versions camelCase).
    #[serde(default, alias = "isApiErrorMessage")]
    pub is_api_error_message: bool,
    /// The message was cut short by an interrupt.
    #[serde(default)]
    pub aborted: bool,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub struct UserLine {
    pub message: UserMessage,
    #[serde(default)]
    pub tool_use_result: Option<Value>,
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
}

#[derive(Debug, Deserialize)]
pub struct ControlRequestLine {
    pub request_id: String,
    pub request: ControlRequest,
}

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
