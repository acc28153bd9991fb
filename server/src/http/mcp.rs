//! MCP routes: the global MCP servers (applied to every new session) and
//! listing one server's tools by connecting to it. The rules, the registry,
//! the probe and the code of each failure (`McpError`) live in `crate::mcp_servers`;
//! this module only answers them over HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use tether_protocol::{McpServer, McpServerList, McpToolList, McpToolsQuery};

use super::{ApiJson, ApiQuery, AppRef};
use crate::http::ApiError;
use crate::mcp_servers::{self, McpError};

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/mcp/servers", get(list))
        .route("/v1/mcp/servers/{name}", get(one).put(put_server).delete(delete_server))
        .route("/v1/mcp/servers/{name}/tools", get(tools))
        // An empty name matches no `{name}`: say so rather than "no route".
        .route("/v1/mcp/servers/", put(empty_name).delete(empty_name))
        .route("/v1/mcp/servers//tools", get(empty_name))
}

async fn empty_name() -> ApiError {
    checked_name("").err().map_or_else(|| ApiError::invalid("an MCP server name must not be empty"), ApiError::from)
}

fn checked_name(name: &str) -> Result<(), McpError> {
    mcp_servers::validate_name(name).map_err(McpError::Invalid)
}

fn unknown(name: &str) -> McpError {
    McpError::Unknown { name: name.to_string() }
}

async fn list(State(app): State<AppRef>) -> Result<Json<McpServerList>, ApiError> {
    Ok(Json(McpServerList { servers: mcp_servers::global_servers(&app.shared.store).await? }))
}

async fn one(State(app): State<AppRef>, Path(name): Path<String>) -> Result<Json<McpServer>, ApiError> {
    checked_name(&name)?;
    Ok(Json(mcp_servers::global_server(&app.shared.store, &name).await?.ok_or_else(|| unknown(&name))?))
}

/// 201 with the server when it is new, 200 when it replaced one.
async fn put_server(
    State(app): State<AppRef>,
    Path(name): Path<String>,
    ApiJson(server): ApiJson<McpServer>,
) -> Result<Response, ApiError> {
    mcp_servers::validate(&name, &server).map_err(McpError::Invalid)?;
    let replaced = mcp_servers::put_global_server(&app.shared.store, &name, &server).await?;
    let status = if replaced.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(server)).into_response())
}

async fn delete_server(State(app): State<AppRef>, Path(name): Path<String>) -> Result<Json<McpServer>, ApiError> {
    checked_name(&name)?;
    Ok(Json(mcp_servers::delete_global_server(&app.shared.store, &name).await?.ok_or_else(|| unknown(&name))?))
}

/// Connects to the server and lists its tools: 502 `mcp_unavailable` when it
/// cannot be started or does not speak MCP, 504 when it does not answer in time.
async fn tools(
    State(app): State<AppRef>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<McpToolsQuery>,
) -> Result<Json<McpToolList>, ApiError> {
    let tools = mcp_servers::probe_global(&app.shared.store, &app.shared.workspace, &name, q.timeout_ms).await?;
    Ok(Json(McpToolList { server: name, tools }))
}

#[cfg(test)]
mod tests;
