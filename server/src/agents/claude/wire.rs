//! Claude Code's stream-json messages (output of `claude -p --output-format
//! stream-json --verbose --include-partial-messages`), as typed serde structs.
//! Unknown message types and fields are tolerated; the converter turns what it
//! cannot place into `agent.unparsed`.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
pub enum Line {
    #[serde(rename = "system")]
    System(SystemLine),
    #[serde(rename = "stream_event")]
    StreamEvent(StreamEventLine),
    #[serde(rename = "assistant")]
    Assistant(AssistantLine),
    #[serde(rename = "user")]
    User(UserLine),
    #[serde(rename = "result")]
    Result(ResultLine),
    #[serde(rename = "control_request")]
    ControlRequest(ControlRequestLine),
    #[serde(rename = "control_response")]
    ControlResponse(Value),
    #[serde(rename = "keep_alive")]
    KeepAlive(Value),
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
}

#[derive(Debug, Deserialize)]
pub struct StreamEventLine {
    pub event: StreamEvent,
}

/// A raw Anthropic Messages API streaming event.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    MessageStart {
        message: ApiMessage,
    },
    ContentBlockStart {
        index: u32,
        content_block: ContentBlock,
    },
    ContentBlockDelta {
        index: u32,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u32,
    },
    MessageDelta {
        #[serde(default)]
        usage: Option<ApiUsage>,
    },
    MessageStop,
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BlockDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
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
    #[serde(default, rename = "isApiErrorMessage")]
    pub is_api_error_message: bool,
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
