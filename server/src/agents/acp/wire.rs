//! What an ACP agent says: JSON-RPC 2.0 envelopes, one object per line, whose
//! payloads are the protocol crate's types (`agent-client-protocol-schema`,
//! protocol v1), and the replies tether sends. Request ids from an agent may
//! be numbers (starting at 0) or strings, so an id is kept as the JSON value
//! it was and answered with exactly that.

use serde::Deserialize;
use serde_json::{json, Value};

pub use agent_client_protocol_schema::v1::{
    ContentBlock, InitializeResponse, PermissionOption, PermissionOptionKind, ReadTextFileRequest,
    RequestPermissionRequest, SessionNotification, SessionUpdate, ToolCall, ToolCallContent, ToolCallStatus,
    ToolCallUpdate, ToolKind, WriteTextFileRequest,
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
