//! MCP routes of [`Client`]: the global MCP servers (applied to every new
//! session) and listing a server's tools.

use reqwest::{Method, StatusCode};

use super::{json, path, send, Client, Error, Result};
use crate::{McpServer, McpServerList, McpToolList};

/// The answer of [`Client::put_mcp_server`].
#[derive(Debug, Clone, PartialEq)]
pub struct PutMcpServer {
    /// The server as stored.
    pub server: McpServer,
    /// True when the name was new (201), false when it replaced a server (200).
    pub created: bool,
}

impl Client {
    /// `GET /v1/mcp/servers`: the global MCP servers, by name.
    pub async fn list_mcp_servers(&self) -> Result<McpServerList> {
        json(self.request(Method::GET, "/v1/mcp/servers")).await
    }

    /// `GET /v1/mcp/servers/{name}`.
    pub async fn get_mcp_server(&self, name: impl AsRef<str>) -> Result<McpServer> {
        json(self.request(Method::GET, &path(&["v1", "mcp", "servers", name.as_ref()]))).await
    }

    /// `PUT /v1/mcp/servers/{name}`: adds or replaces a global MCP server.
    pub async fn put_mcp_server(&self, name: impl AsRef<str>, server: &McpServer) -> Result<PutMcpServer> {
        let request = self.request(Method::PUT, &path(&["v1", "mcp", "servers", name.as_ref()])).json(server);
        let response = send(request).await?;
        let created = response.status() == StatusCode::CREATED;
        let body = response.bytes().await?;
        let server = serde_json::from_slice(&body).map_err(|e| Error::Decode(format!("McpServer: {e}")))?;
        Ok(PutMcpServer { server, created })
    }

    /// `DELETE /v1/mcp/servers/{name}`: removes a global MCP server; answers it.
    pub async fn delete_mcp_server(&self, name: impl AsRef<str>) -> Result<McpServer> {
        json(self.request(Method::DELETE, &path(&["v1", "mcp", "servers", name.as_ref()]))).await
    }

    /// `GET /v1/mcp/servers/{name}/tools`: connects to the server and lists
    /// its tools (the server's default deadline, 10 s).
    pub async fn mcp_server_tools(&self, name: impl AsRef<str>) -> Result<McpToolList> {
        json(self.request(Method::GET, &path(&["v1", "mcp", "servers", name.as_ref(), "tools"]))).await
    }

    /// [`mcp_server_tools`](Self::mcp_server_tools) with a deadline of
    /// `timeout_ms` (100..=60000).
    pub async fn mcp_server_tools_within(&self, name: impl AsRef<str>, timeout_ms: u64) -> Result<McpToolList> {
        let path = path(&["v1", "mcp", "servers", name.as_ref(), "tools"]);
        let query = tether_protocol::McpToolsQuery { timeout_ms: Some(timeout_ms) };
        json(self.request(Method::GET, &path).query(&query)).await
    }
}
