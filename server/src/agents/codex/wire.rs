//! The parts of Codex's app-server protocol (JSON-RPC 2.0, one object per
//! line, `"jsonrpc"` omitted) that tether uses, as serde types. The full
//! protocol: `codex app-server generate-json-schema --out DIR` (a copy of the
//! relevant part is kept in `testdata/schema/`).

use serde::Deserialize;
use serde_json::Value;

/// Any line: a request (id + method), a notification (method), or a response (id + result|error).
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Value>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<RpcError>,
}

#[derive(Debug, Deserialize)]
pub struct RpcError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

/// `item/started` and `item/completed`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemNotification {
    pub item: ThreadItem,
}

/// `item/agentMessage/delta`, `item/reasoning/summaryTextDelta`, `item/commandExecution/outputDelta`, ...
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaNotification {
    pub item_id: String,
    pub delta: String,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ThreadItem {
    UserMessage {
        id: String,
    },
    #[serde(rename_all = "camelCase")]
    AgentMessage {
        id: String,
        #[serde(default)]
        text: String,
    },
    Reasoning {
        id: String,
        #[serde(default)]
        summary: Vec<Value>,
        #[serde(default)]
        content: Vec<Value>,
    },
    #[serde(rename_all = "camelCase")]
    CommandExecution {
        id: String,
        #[serde(default)]
        command: String,
        #[serde(default)]
        cwd: Option<Value>,
        #[serde(default)]
        aggregated_output: Option<String>,
        #[serde(default)]
        exit_code: Option<i32>,
        #[serde(default)]
        status: String,
    },
    FileChange {
        id: String,
        #[serde(default)]
        changes: Vec<FileChange>,
        #[serde(default)]
        status: String,
    },
    McpToolCall {
        id: String,
        #[serde(default)]
        server: String,
        #[serde(default)]
        tool: String,
        #[serde(default)]
        arguments: Value,
        #[serde(default)]
        result: Option<Value>,
        #[serde(default)]
        error: Option<Value>,
        #[serde(default)]
        status: String,
    },
    WebSearch {
        id: String,
        #[serde(default)]
        query: String,
    },
    Plan {
        id: String,
        #[serde(default)]
        text: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct FileChange {
    pub path: String,
    #[serde(default)]
    pub diff: String,
}

/// `turn/started` and `turn/completed`.
#[derive(Debug, Deserialize)]
pub struct TurnNotification {
    pub turn: Turn,
}

#[derive(Debug, Deserialize)]
pub struct Turn {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub error: Option<TurnError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub additional_details: Option<String>,
}

/// `error`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorNotification {
    pub error: TurnError,
    #[serde(default)]
    pub will_retry: bool,
}

/// `thread/tokenUsage/updated`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsageNotification {
    pub token_usage: ThreadTokenUsage,
}

#[derive(Debug, Deserialize)]
pub struct ThreadTokenUsage {
    pub last: TokenUsage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub reasoning_output_tokens: u64,
}

/// `turn/plan/updated`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanNotification {
    pub turn_id: String,
    #[serde(default)]
    pub plan: Vec<PlanStep>,
}

#[derive(Debug, Deserialize)]
pub struct PlanStep {
    #[serde(default)]
    pub step: String,
    #[serde(default)]
    pub status: String,
}

/// `item/commandExecution/requestApproval`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommandApproval {
    pub item_id: String,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub cwd: Option<Value>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `item/fileChange/requestApproval`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileChangeApproval {
    pub item_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `item/tool/requestUserInput`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInputRequest {
    #[serde(default)]
    pub item_id: Option<String>,
    #[serde(default)]
    pub questions: Vec<UserInputQuestion>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserInputQuestion {
    pub id: String,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub question: String,
    #[serde(default)]
    pub options: Option<Vec<UserInputOption>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UserInputOption {
    pub label: String,
    #[serde(default)]
    pub description: Option<String>,
}
