//! The parts of Codex's app-server protocol (JSON-RPC 2.0, one object per
//! line, `"jsonrpc"` omitted) that tether uses, as serde types. The full
//! protocol: `codex app-server generate-json-schema --out DIR` (a copy of the
//! relevant part is kept in `testdata/schema/`).

use serde::Deserialize;
use serde_json::{json, Value};

use crate::agents::lenient::Lenient;

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
        summary: Vec<Lenient<TextPart>>,
        #[serde(default)]
        content: Vec<Lenient<TextPart>>,
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
    /// A call of Codex's multi-agent tools (`spawnAgent`, `wait`, ...); a
    /// spawn's `receiverThreadIds` are the subagents' threads.
    #[serde(rename_all = "camelCase")]
    CollabAgentToolCall {
        id: String,
        #[serde(default)]
        tool: String,
        #[serde(default)]
        prompt: Option<String>,
        #[serde(default)]
        receiver_thread_ids: Vec<String>,
        #[serde(default)]
        agents_states: std::collections::BTreeMap<String, Lenient<CollabAgentState>>,
        #[serde(default)]
        status: String,
    },
    /// Codex's multi-agent v2: a subagent started (`kind: "started"`), was
    /// talked to, interrupted or completed; `agentThreadId` is its thread.
    #[serde(rename_all = "camelCase")]
    SubAgentActivity {
        id: String,
        #[serde(default)]
        agent_thread_id: String,
        #[serde(default)]
        agent_path: String,
        #[serde(default)]
        kind: String,
    },
    #[serde(other)]
    Other,
}

/// What a collab call last knew of an agent.
#[derive(Debug, Default, Deserialize)]
pub struct CollabAgentState {
    #[serde(default)]
    pub message: Option<String>,
}

/// The thread a notification is about (`threadId`), where it names one.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadRef {
    #[serde(default)]
    pub thread_id: Lenient<String>,
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
    pub cwd: Option<String>,
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

/// One part of a reasoning item's `summary` or `content`: a string or a block with `text`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TextPart {
    Text(String),
    Block {
        #[serde(default)]
        text: Lenient<String>,
    },
}

impl TextPart {
    pub fn text(&self) -> Option<&str> {
        match self {
            TextPart::Text(s) => Some(s),
            TextPart::Block { text } => text.get().map(String::as_str),
        }
    }
}

/// An MCP tool call's `result` or `error`, as far as tether reads it.
#[derive(Debug, Default, Deserialize)]
pub struct McpResult {
    #[serde(default)]
    pub content: Lenient<Vec<Lenient<McpContent>>>,
    #[serde(default)]
    pub message: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct McpContent {
    #[serde(default)]
    pub text: Lenient<String>,
}

/// `serverRequest/resolved`: codex closed one of its requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestResolved {
    #[serde(default)]
    pub request_id: Lenient<Value>,
}

/// `mcpServer/startupStatus/updated`.
#[derive(Debug, Default, Deserialize)]
pub struct McpStartupStatus {
    #[serde(default)]
    pub name: Lenient<String>,
    /// `starting`, `ready`, `failed`, `cancelled`.
    #[serde(default)]
    pub status: Lenient<String>,
    #[serde(default)]
    pub error: Lenient<String>,
}

/// `warning`, `configWarning`, `deprecationNotice`, `guardianWarning`.
#[derive(Debug, Default, Deserialize)]
pub struct Warning {
    #[serde(default)]
    pub message: Lenient<String>,
}

/// `mcpServer/elicitation/request`: an MCP server asks the user; codex also
/// asks this way to approve an MCP tool call (marked in `_meta`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElicitationRequest {
    #[serde(default)]
    pub server_name: Lenient<String>,
    #[serde(default)]
    pub message: Lenient<String>,
    #[serde(default, rename = "_meta")]
    pub meta: Lenient<ElicitationMeta>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ElicitationMeta {
    /// `mcp_tool_call` when this approves an MCP tool call.
    #[serde(default)]
    pub codex_approval_kind: Lenient<String>,
    #[serde(default)]
    pub tool_name: Lenient<String>,
    /// How long an approval may last: `session`, `always`.
    #[serde(default)]
    pub persist: Lenient<Value>,
    #[serde(default)]
    pub tool_params: Option<Value>,
}

/// The answer to `thread/start` and `thread/resume`.
#[derive(Debug, Default, Deserialize)]
pub struct ThreadOpened {
    #[serde(default)]
    pub thread: Lenient<IdOnly>,
    #[serde(default)]
    pub model: Lenient<String>,
}

/// The answer to `turn/start`, and `turn/started`.
#[derive(Debug, Default, Deserialize)]
pub struct TurnRef {
    #[serde(default)]
    pub turn: Lenient<IdOnly>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct IdOnly {
    pub id: String,
}

/// A request codex made that tether answers (an approval or a question):
/// its JSON-RPC id (echoed in the answer, a number or a string) and what
/// the answer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRequest {
    pub id: Value,
    pub method: String,
    pub kind: RequestKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RequestKind {
    /// A command or file-change approval (the `item/...` methods or the legacy ones).
    Approval,
    /// An MCP server's elicitation; `tool_call` when it approves an MCP tool
    /// call (of the open item `item_id`, whose approval may `persist`).
    /// (`persist` is kept as codex sent it, `null` included.)
    Elicitation { tool_call: bool, item_id: Option<String>, persist: Lenient<Value> },
    /// `item/tool/requestUserInput`: the ids of its questions, in order.
    UserInput { question_ids: Vec<String> },
}

impl ServerRequest {
    /// The id as `serverRequest/resolved` names it.
    pub fn request_id(&self) -> String {
        self.id.to_string()
    }

    /// An MCP tool call's approval that codex lets last for the session
    /// (`persist` lists `session`).
    pub fn may_persist_for_session(&self) -> bool {
        let RequestKind::Elicitation { persist, .. } = &self.kind else { return false };
        let persist: Option<Vec<Value>> = persist.get().and_then(|p| Vec::deserialize(p).ok());
        persist.is_some_and(|p| p.iter().any(|v| v == "session"))
    }

    /// The legacy approval methods answer with other words.
    pub fn is_legacy(&self) -> bool {
        matches!(&*self.method, "execCommandApproval" | "applyPatchApproval")
    }

    /// As tether showed it before it was typed (Debug, snapshots).
    pub fn to_json(&self) -> Value {
        let mut v = json!({"id": self.id, "method": self.method, "request_id": self.request_id()});
        match &self.kind {
            RequestKind::Approval | RequestKind::Elicitation { tool_call: false, .. } => {}
            RequestKind::Elicitation { tool_call: true, item_id, persist } => {
                v["item_id"] = json!(item_id);
                v["persist"] = persist.get().cloned().unwrap_or(Value::Null);
            }
            RequestKind::UserInput { question_ids } => v["question_ids"] = json!(question_ids),
        }
        v
    }
}

/// An answer tether sends to one of codex's requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An approval's decision (`accept`, `acceptForSession`, `decline`, or
    /// the legacy `approved`, `approved_for_session`, `denied`).
    Decision { id: Value, decision: &'static str },
    /// An elicitation's answer; `session` keeps an approval for the session.
    Elicitation { id: Value, accept: bool, session: bool },
    /// Answers by question id.
    Answers { id: Value, answers: Vec<(String, Vec<String>)> },
    /// A request tether does not handle.
    Unhandled { id: Value, method: String },
}

impl Reply {
    /// The JSON-RPC answer.
    pub fn to_json(&self) -> Value {
        match self {
            Reply::Decision { id, decision } => json!({"id": id, "result": {"decision": decision}}),
            Reply::Elicitation { id, accept, session } => {
                let mut result = json!({"action": if *accept { "accept" } else { "decline" }, "content": null});
                if *session {
                    result["_meta"] = json!({"persist": "session"});
                }
                json!({"id": id, "result": result})
            }
            Reply::Answers { id, answers } => {
                let by_id: serde_json::Map<String, Value> =
                    answers.iter().map(|(q, a)| (q.clone(), json!({"answers": a}))).collect();
                json!({"id": id, "result": {"answers": by_id}})
            }
            Reply::Unhandled { id, method } => {
                json!({"id": id, "error": {"code": -32601, "message": format!("tether does not handle {method}")}})
            }
        }
    }
}
