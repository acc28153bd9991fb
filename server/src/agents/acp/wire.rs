//! What an ACP agent says: JSON-RPC 2.0 envelopes, one object per line, whose
//! payloads are the protocol crate's types (`agent-client-protocol-schema`,
//! protocol v1), and the replies tether sends. Request ids from an agent may
//! be numbers (starting at 0) or strings, so an id is kept as the JSON value
//! it was and answered with exactly that.

use serde::Deserialize;
use serde_json::{json, Value};

pub use agent_client_protocol_schema::v1::{
    ContentBlock, PermissionOption, PermissionOptionKind, ReadTextFileRequest, RequestPermissionRequest,
    SessionNotification, SessionUpdate, ToolCall, ToolCallContent, ToolCallStatus, ToolCallUpdate, ToolKind,
    WriteTextFileRequest,
};

/// Any JSON-RPC message: a request (`id` and `method`), a notification
/// (`method`), or an answer (`id` and `result` or `error`).
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

/// A JSON-RPC error. Agents differ: Gemini puts the model's HTTP status in
/// `code` and its raw body in `message`; Qwen `-32603` with `data.details`.
#[derive(Debug, Clone, Deserialize)]
pub struct RpcError {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: Option<Value>,
}

impl RpcError {
    /// What a person should read: the innermost message the error carries.
    pub fn text(&self) -> String {
        // A raw API body as the message: its `error.message`.
        let inner = serde_json::from_str::<Value>(&self.message)
            .ok()
            .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string));
        let details = self.data.as_ref().and_then(|d| d.get("details")).and_then(Value::as_str);
        match (inner, details) {
            (Some(m), _) => m,
            (None, Some(d)) => d.to_string(),
            (None, None) if self.message.is_empty() => format!("error {}", self.code),
            (None, None) => self.message.clone(),
        }
    }
}

/// A `session/request_permission` as the agent made it: its id and the
/// options it offered (the reply names one by `optionId`).
#[derive(Debug, Clone, PartialEq)]
pub struct PermissionAsk {
    pub id: Value,
    pub options: Vec<PermissionOption>,
}

impl PermissionAsk {
    /// The request id as its cancellation (`$/cancel_request`) names it.
    pub fn request_id(&self) -> String {
        id_text(&self.id)
    }

    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "method": "session/request_permission", "options": self.options})
    }
}

/// A request id as text: a string as it is, anything else as JSON.
pub fn id_text(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A request of ours.
pub fn request(id: u64, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A notification of ours.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// The answer to one of the agent's requests.
pub fn result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A refusal of one of the agent's requests.
pub fn error(id: &Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// JSON-RPC's "method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC's "invalid params": what a file request outside the workspace gets.
pub const INVALID_PARAMS: i64 = -32602;
/// ACP's "resource not found".
pub const RESOURCE_NOT_FOUND: i64 = -32002;

use crate::agents::lenient::Lenient;

/// The `_meta` fields tether reads of a tool call: its tool's own name
/// (Qwen, and Claude's adapter under `claudeCode`), and where an MCP call
/// went (Qwen: `provenance: "mcp"`, `serverId`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolMeta {
    #[serde(default)]
    pub tool_name: Lenient<String>,
    #[serde(default)]
    pub provenance: Lenient<String>,
    #[serde(default)]
    pub server_id: Lenient<String>,
    #[serde(default)]
    pub claude_code: Lenient<ClaudeCodeMeta>,
    /// Codex's adapter: an MCP call (`rawInput` `{server, tool, arguments}`).
    #[serde(default, rename = "is_mcp_tool_call")]
    pub is_mcp_tool_call: Lenient<bool>,
    /// Codex's adapter: a command's output, in pieces (the converter keeps
    /// the whole of it so far here).
    #[serde(default, rename = "terminal_output_delta")]
    pub terminal_output_delta: Lenient<TerminalOutput>,
    /// Codex's adapter: how a command exited.
    #[serde(default, rename = "terminal_exit")]
    pub terminal_exit: Lenient<TerminalExit>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TerminalOutput {
    #[serde(default)]
    pub data: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TerminalExit {
    #[serde(default)]
    pub exit_code: Lenient<i64>,
}

/// Codex's adapter's MCP call `rawInput`.
#[derive(Debug, Default, Deserialize)]
pub struct CodexMcpInput {
    #[serde(default)]
    pub server: Lenient<String>,
    #[serde(default)]
    pub tool: Lenient<String>,
    /// The MCP tool's own arguments.
    #[serde(default)]
    pub arguments: Lenient<Value>,
}

/// Codex's adapter's MCP call `rawOutput`: `{"result": {"content": [..]}, "error": ..}`.
#[derive(Debug, Default, Deserialize)]
pub struct CodexMcpOutput {
    #[serde(default)]
    pub result: Lenient<CodexMcpResult>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CodexMcpResult {
    #[serde(default)]
    pub content: Vec<Lenient<CodexMcpText>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CodexMcpText {
    #[serde(default)]
    pub text: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct CodexMcpError {
    #[serde(default)]
    pub message: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaudeCodeMeta {
    #[serde(default)]
    pub tool_name: Lenient<String>,
    /// A subagent's call (without the client's `subagents` capability, the
    /// adapter sends them on the parent session): the `Agent`/`Task` call
    /// that started it.
    #[serde(default)]
    pub parent_tool_use_id: Lenient<String>,
}

/// What tether reads of a tool call's `rawInput`: a shell call's command.
#[derive(Debug, Default, Deserialize)]
pub struct ToolInput {
    #[serde(default)]
    pub command: Lenient<String>,
}

/// The diff in a call's `rawInput` (Copilot asks to write with `{fileName, diff}`, a git diff).
#[derive(Debug, Default, Deserialize)]
pub struct DiffInput {
    #[serde(default)]
    pub diff: Lenient<String>,
}

/// What tether reads of an object `rawOutput` (Qwen's shell result;
/// OpenCode's, with the exit code in `metadata.exit`).
#[derive(Debug, Default, Deserialize)]
pub struct ToolOutput {
    #[serde(default)]
    pub output: Lenient<String>,
    #[serde(default, rename = "exitCode", alias = "exit_code")]
    pub exit_code: Lenient<i64>,
    #[serde(default)]
    pub metadata: Lenient<OutputMetadata>,
    /// Copilot's: a command's `{"type": "shell_exit", "exitCode": N}` among them.
    #[serde(default)]
    pub contents: Lenient<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OutputMetadata {
    #[serde(default)]
    pub exit: Lenient<i64>,
}

impl ToolOutput {
    pub fn exit_code(&self) -> Option<i32> {
        let code = self.exit_code.get().or_else(|| self.metadata.get()?.exit.get()).copied();
        let shell_exit = || {
            let contents = self.contents.get()?;
            contents.iter().find(|c| c["type"] == "shell_exit")?.get("exitCode")?.as_i64()
        };
        code.or_else(shell_exit).map(|c| c as i32)
    }
}

/// Token counts in ACP's own shape (a prompt answer's `usage`; Qwen puts
/// them in the `_meta.usage` of its last message chunk).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AcpUsage {
    #[serde(default)]
    pub input_tokens: Lenient<u64>,
    #[serde(default)]
    pub output_tokens: Lenient<u64>,
    #[serde(default)]
    pub cached_read_tokens: Lenient<u64>,
    #[serde(default)]
    pub thought_tokens: Lenient<u64>,
}

impl AcpUsage {
    pub fn to_usage(&self) -> tether_protocol::Usage {
        tether_protocol::Usage {
            input_tokens: self.input_tokens.get().copied(),
            output_tokens: self.output_tokens.get().copied(),
            cached_input_tokens: self.cached_read_tokens.get().copied(),
            reasoning_tokens: self.thought_tokens.get().copied(),
            cost_usd: None,
        }
    }
}

/// A message chunk's `_meta`, for the usage in it.
#[derive(Debug, Default, Deserialize)]
pub struct ChunkMeta {
    #[serde(default)]
    pub usage: Lenient<AcpUsage>,
}

/// A `session/prompt` answer: why the turn stopped, and token counts in
/// ACP's `usage` or Gemini's `_meta.quota.token_count`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptAnswer {
    #[serde(default)]
    pub stop_reason: Lenient<String>,
    #[serde(default)]
    pub usage: Lenient<AcpUsage>,
    #[serde(default, rename = "_meta")]
    pub meta: Lenient<PromptMeta>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptMeta {
    #[serde(default)]
    pub quota: Lenient<Quota>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Quota {
    #[serde(default)]
    pub token_count: Lenient<TokenCount>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenCount {
    #[serde(default)]
    pub input_tokens: Lenient<u64>,
    #[serde(default)]
    pub output_tokens: Lenient<u64>,
}

impl PromptAnswer {
    pub fn usage(&self) -> Option<tether_protocol::Usage> {
        if let Some(u) = self.usage.get() {
            return Some(u.to_usage());
        }
        let t = self.meta.get()?.quota.get()?.token_count.get()?;
        Some(tether_protocol::Usage {
            input_tokens: t.input_tokens.get().copied(),
            output_tokens: t.output_tokens.get().copied(),
            ..Default::default()
        })
    }
}

/// What tether reads of `initialize`'s answer (and keeps, as the agent
/// announced itself, for `GET /v1/agents`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initialized {
    #[serde(default)]
    pub agent_capabilities: Lenient<AgentCaps>,
    #[serde(default)]
    pub agent_info: Lenient<AgentInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentCaps {
    #[serde(default)]
    pub load_session: Lenient<bool>,
    #[serde(default)]
    pub prompt_capabilities: Lenient<PromptCaps>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PromptCaps {
    #[serde(default)]
    pub image: Lenient<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AgentInfo {
    #[serde(default)]
    pub version: Lenient<String>,
}

impl Initialized {
    pub fn load_session(&self) -> bool {
        self.agent_capabilities.get().and_then(|c| c.load_session.get().copied()).unwrap_or(false)
    }

    pub fn images(&self) -> bool {
        let prompt = self.agent_capabilities.get().and_then(|c| c.prompt_capabilities.get());
        prompt.and_then(|p| p.image.get().copied()).unwrap_or(false)
    }

    pub fn version(&self) -> Option<String> {
        self.agent_info.get()?.version.get().cloned()
    }
}

/// What tether reads of `session/new`'s (or `session/load`'s) answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionOpened {
    #[serde(default)]
    pub session_id: Lenient<String>,
    #[serde(default)]
    pub models: Lenient<Models>,
    #[serde(default)]
    pub modes: Lenient<Modes>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Models {
    #[serde(default)]
    pub current_model_id: Lenient<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Modes {
    #[serde(default)]
    pub current_mode_id: Lenient<String>,
    #[serde(default)]
    pub available_modes: Vec<Lenient<Mode>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Mode {
    pub id: String,
}

/// `$/cancel_request`'s params.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    #[serde(default)]
    pub request_id: Option<Value>,
    #[serde(default)]
    pub id: Option<Value>,
}
