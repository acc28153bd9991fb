//! An MCP client of tether's own `/mcp` (rmcp's streamable HTTP client):
//! tool calls answered as the JSON of their structured result, or the text
//! of their tool error.

use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ContentBlock, NumberOrString, ProgressNotificationParam, ProgressToken,
    RequestMetaObject,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;

use crate::TestServer;

pub type McpClient = RunningService<RoleClient, Progress>;

/// The client side: keeps the message of every progress notification.
#[derive(Clone, Default)]
pub struct Progress(pub Arc<Mutex<Vec<String>>>);

impl Progress {
    pub fn messages(&self) -> Vec<String> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl ClientHandler for Progress {
    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        if let Ok(mut m) = self.0.lock() {
            m.push(params.message.unwrap_or_default());
        }
    }
}

/// Connects to `server`'s `/mcp` with `token` (none: no Authorization header).
pub async fn connect_with(server: &TestServer, token: Option<&str>) -> Result<McpClient, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(server.endpoint("/mcp"));
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::with_client(reqwest::Client::new(), config);
    Progress::default().serve(transport).await.map_err(|e| e.to_string())
}

/// The text of a result's first content block.
pub fn first_text(result: &CallToolResult) -> String {
    match result.content.first() {
        Some(ContentBlock::Text(t)) => t.text.clone(),
        other => panic!("a tool result without text content: {other:?}"),
    }
}

/// Calls `tool`: `Ok(structured result)`, or `Err(the tool error's text)`.
/// A protocol error (not a tool error) panics.
pub async fn call(client: &McpClient, tool: &str, arguments: Value) -> Result<Value, String> {
    call_with(client, tool, arguments, false).await
}

/// [`call`], asking for progress notifications when `progress`.
pub async fn call_with(client: &McpClient, tool: &str, arguments: Value, progress: bool) -> Result<Value, String> {
    let mut meta = RequestMetaObject::new();
    if progress {
        meta.set_progress_token(ProgressToken(NumberOrString::Number(1)));
    }
    call_meta(client, tool, arguments, meta).await
}

/// [`call`] with the request's `_meta` (e.g. a W3C `traceparent`).
pub async fn call_meta(
    client: &McpClient,
    tool: &str,
    arguments: Value,
    meta: RequestMetaObject,
) -> Result<Value, String> {
    let mut params = CallToolRequestParams::new(tool.to_string());
    params.arguments = arguments.as_object().cloned();
    if !meta.is_empty() {
        params.meta = Some(meta);
    }
    let result = client.call_tool(params).await.unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
    let text = first_text(&result);
    if result.is_error == Some(true) {
        assert!(result.structured_content.is_none(), "{tool}: a tool error carries no structured result");
        return Err(text);
    }
    let structured = result.structured_content.clone().unwrap_or_else(|| panic!("{tool}: no structured result"));
    let from_text: Value = serde_json::from_str(&text).expect("the text content is the result's JSON");
    assert_eq!(from_text, structured, "{tool}: the text content and the structured result agree");
    Ok(structured)
}
