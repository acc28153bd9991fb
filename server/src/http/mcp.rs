//! MCP routes: the global MCP servers (applied to every new session) and
//! listing one server's tools by connecting to it. The rules, the registry
//! and the probe live in `crate::mcp`; this module only maps them to HTTP.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use tether_protocol::{McpServer, McpServerList, McpToolList, McpToolsQuery};

use super::{ApiJson, ApiQuery, AppRef};
use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::mcp::{self, ProbeError};

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
    checked_name("").err().unwrap_or_else(|| ApiError::invalid("an MCP server name must not be empty"))
}

fn checked_name(name: &str) -> Result<(), ApiError> {
    mcp::validate_name(name).map_err(ApiError::invalid)
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(format!("no global MCP server named {name:?}"))
}

async fn list(State(app): State<AppRef>) -> Result<Json<McpServerList>, ApiError> {
    Ok(Json(McpServerList { servers: mcp::global_servers(&app.shared.store).await? }))
}

async fn one(State(app): State<AppRef>, Path(name): Path<String>) -> Result<Json<McpServer>, ApiError> {
    checked_name(&name)?;
    mcp::global_server(&app.shared.store, &name).await?.map(Json).ok_or_else(|| unknown(&name))
}

/// 201 with the server when it is new, 200 when it replaced one.
async fn put_server(
    State(app): State<AppRef>,
    Path(name): Path<String>,
    ApiJson(server): ApiJson<McpServer>,
) -> Result<Response, ApiError> {
    mcp::validate(&name, &server).map_err(ApiError::invalid)?;
    let replaced = mcp::put_global_server(&app.shared.store, &name, &server).await?;
    let status = if replaced.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(server)).into_response())
}

async fn delete_server(State(app): State<AppRef>, Path(name): Path<String>) -> Result<Json<McpServer>, ApiError> {
    checked_name(&name)?;
    mcp::delete_global_server(&app.shared.store, &name).await?.map(Json).ok_or_else(|| unknown(&name))
}

/// Connects to the server and lists its tools: 502 `mcp_unavailable` when it
/// cannot be started or does not speak MCP, 504 when it does not answer in time.
async fn tools(
    State(app): State<AppRef>,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<McpToolsQuery>,
) -> Result<Json<McpToolList>, ApiError> {
    checked_name(&name)?;
    let timeout = match q.timeout_ms {
        None => mcp::PROBE_TIMEOUT,
        Some(ms @ 100..=60_000) => Duration::from_millis(ms),
        Some(ms) => return Err(ApiError::invalid(format!("timeout_ms {ms} is outside 100..=60000"))),
    };
    let server = mcp::global_server(&app.shared.store, &name).await?.ok_or_else(|| unknown(&name))?;
    let tools = mcp::probe(&server, &app.shared.workspace, timeout).await.map_err(|e| probe_error(&name, e))?;
    Ok(Json(McpToolList { server: name, tools }))
}

fn probe_error(name: &str, e: ProbeError) -> ApiError {
    let detail = format!("MCP server {name:?} {e}");
    // 504 when it did not answer in time, else 502.
    let status = if e.is_timeout() { StatusCode::GATEWAY_TIMEOUT } else { StatusCode::BAD_GATEWAY };
    ApiError::new(status, ErrorCode::McpUnavailable, detail)
}

#[cfg(test)]
mod tests;
