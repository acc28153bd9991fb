//! MCP servers: the rules every server name and configuration must follow
//! (so that each agent accepts them), the durable registry of *global*
//! servers (applied to every new session), and [`probe`], which connects to
//! one with `rmcp`'s client and lists its tools.
//!
//! Registry writes go through the store's single writer; reads use its read
//! connections. Giving servers to an agent is each agent's own business
//! (`agents/`), not this module's. Nothing here logs a server's `env` or
//! `headers`: they hold secrets. A failure is an [`McpError`], whose code
//! and status are beside it (`crate::error::AsProblem`); the routes are
//! `http::mcp`'s business.

mod probe;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use axum::http::StatusCode;
use rusqlite::params;
use tether_protocol::{McpServer, McpTool};

pub use probe::{probe, ProbeError, PROBE_ENV, PROBE_TIMEOUT};

use crate::error::{AsProblem, ErrorCode};
use crate::store::{Store, StoreError};

/// What can go wrong with a global MCP server.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// A name or configuration breaks a rule ([`validate_name`], [`validate`]); the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("no global MCP server named {name:?}")]
    Unknown { name: String },
    #[error("timeout_ms {ms} is outside 100..=60000")]
    ProbeTimeout { ms: u64 },
    /// The server could not be started or reached, did not speak MCP, or did not answer in time.
    #[error("MCP server {name:?} {source}")]
    Probe { name: String, source: ProbeError },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AsProblem for McpError {
    fn code(&self) -> ErrorCode {
        match self {
            McpError::Invalid(_) | McpError::ProbeTimeout { .. } => ErrorCode::InvalidRequest,
            McpError::Unknown { .. } => ErrorCode::NotFound,
            McpError::Probe { .. } => ErrorCode::McpUnavailable,
            McpError::Store(e) => e.code(),
        }
    }

    /// A server that did not answer in time is a 504, any other probe failure a 502.
    fn status(&self) -> StatusCode {
        match self {
            McpError::Probe { source, .. } if source.is_timeout() => StatusCode::GATEWAY_TIMEOUT,
            McpError::Store(e) => e.status(),
            other => crate::error::status_of(other.code()),
        }
    }

    fn detail(&self) -> String {
        match self {
            McpError::Store(e) => e.detail(),
            other => other.to_string(),
        }
    }
}

/// Connects to the global server `name` and lists its tools, waiting
/// `timeout_ms` (100 to 60000; [`PROBE_TIMEOUT`] when not given).
pub async fn probe_global(
    store: &Store,
    workspace: &Path,
    name: &str,
    timeout_ms: Option<u64>,
) -> Result<Vec<McpTool>, McpError> {
    validate_name(name).map_err(McpError::Invalid)?;
    let timeout = match timeout_ms {
        None => PROBE_TIMEOUT,
        Some(ms @ 100..=60_000) => Duration::from_millis(ms),
        Some(ms) => return Err(McpError::ProbeTimeout { ms }),
    };
    let server = global_server(store, name).await?.ok_or_else(|| McpError::Unknown { name: name.to_string() })?;
    probe(&server, workspace, timeout).await.map_err(|source| McpError::Probe { name: name.to_string(), source })
}

/// Longest MCP server name.
pub const MAX_NAME_LEN: usize = 48;

/// Whether `name` is one every agent accepts as an MCP server name: Claude
/// prefixes the tools `mcp__<name>__<tool>`, Codex keys a TOML table and
/// exposes `mcp__<name>`, OpenCode names them `<name>_<tool>`. So: ASCII
/// letters, digits, `-` and `_`, starting with a letter or digit, 1 to 48
/// characters, and no `__` (Claude's tool names would be ambiguous).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("an MCP server name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!("MCP server name {name:?} is longer than {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!("MCP server name {name:?} has {c:?}: only ASCII letters, digits, `-` and `_` are allowed"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(format!("MCP server name {name:?} must start with a letter or a digit"));
    }
    if name.contains("__") {
        return Err(format!(
            "MCP server name {name:?} must not contain `__` (Claude names MCP tools mcp__<server>__<tool>)"
        ));
    }
    Ok(())
}

/// Whether `server` (named `name`) is one tether can hand to an agent:
/// a valid name, a non-empty command, valid environment variable names,
/// valid HTTP header names and values, a URL with a host, and no NUL
/// byte anywhere. The message names the offending field (never a value of
/// `env` or `headers`, which may be secrets).
pub fn validate(name: &str, server: &McpServer) -> Result<(), String> {
    validate_name(name)?;
    let no_nul = |what: &str, s: &str| {
        if s.contains('\0') {
            Err(format!("MCP server {name:?}: {what} must not contain a NUL byte"))
        } else {
            Ok(())
        }
    };
    match server {
        McpServer::Stdio { command, args, env, cwd } => {
            if command.trim().is_empty() {
                return Err(format!("MCP server {name:?}: `command` must not be empty"));
            }
            no_nul("`command`", command)?;
            for (i, arg) in args.iter().enumerate() {
                no_nul(&format!("`args[{i}]`"), arg)?;
            }
            for (key, value) in env {
                if key.is_empty() {
                    return Err(format!("MCP server {name:?}: an `env` variable name must not be empty"));
                }
                if key.contains('=') {
                    return Err(format!("MCP server {name:?}: `env` variable name {key:?} must not contain `=`"));
                }
                no_nul("an `env` variable name", key)?;
                no_nul(&format!("the value of `env.{key}`"), value)?;
            }
            if let Some(cwd) = cwd {
                if cwd.is_empty() {
                    return Err(format!("MCP server {name:?}: `cwd` must not be empty (leave it out instead)"));
                }
                no_nul("`cwd`", cwd)?;
            }
        }
        McpServer::Http { url, headers } => {
            no_nul("`url`", url)?;
            let parsed =
                reqwest::Url::parse(url).map_err(|e| format!("MCP server {name:?}: `url` is not a URL: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("MCP server {name:?}: `url` must be http:// or https://"));
            }
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!("MCP server {name:?}: `url` has no host"));
            }
            if url.len() > tether_protocol::MAX_URL_LEN
                || !crate::patterns::matches(tether_protocol::HTTP_URL_PATTERN, url)
            {
                return Err(format!(
                    "MCP server {name:?}: `url` is not one tether calls: http(s)://, a host name, an IPv4 or a \
                     [IPv6] address, an optional port, then printable ASCII with no space, at most {} bytes",
                    tether_protocol::MAX_URL_LEN
                ));
            }
            for (key, value) in headers {
                reqwest::header::HeaderName::from_bytes(key.as_bytes())
                    .map_err(|_| format!("MCP server {name:?}: {key:?} is not a valid HTTP header name"))?;
                let valid = crate::patterns::matches(tether_protocol::HEADER_VALUE_PATTERN, value)
                    && reqwest::header::HeaderValue::from_str(value).is_ok();
                if !valid {
                    return Err(format!(
                        "MCP server {name:?}: the value of header {key:?} is not a valid HTTP header value \
                         (visible ASCII, spaces and tabs)"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The MCP servers applied to every new session, by name.
pub async fn global_servers(store: &Store) -> Result<BTreeMap<String, McpServer>, StoreError> {
    let rows = store
        .read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT name, config FROM mcp_servers ORDER BY name")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    Ok(rows.into_iter().filter_map(|(name, config)| decode(&name, &config).map(|s| (name, s))).collect())
}

/// One global MCP server.
pub async fn global_server(store: &Store, name: &str) -> Result<Option<McpServer>, StoreError> {
    let key = name.to_string();
    let config: Option<String> = store
        .read(move |conn| {
            use rusqlite::OptionalExtension;
            let mut stmt = conn.prepare_cached("SELECT config FROM mcp_servers WHERE name = ?1")?;
            Ok(stmt.query_row(params![key], |r| r.get(0)).optional()?)
        })
        .await?;
    Ok(config.and_then(|c| decode(name, &c)))
}

/// Adds or replaces the global server `name` (validate it first); answers the one it replaced.
pub async fn put_global_server(store: &Store, name: &str, server: &McpServer) -> Result<Option<McpServer>, StoreError> {
    let config = serde_json::to_string(server).map_err(|e| StoreError::Io(std::io::Error::other(e)))?;
    let previous = store.put_mcp_server(name, config).await?;
    Ok(previous.and_then(|c| decode(name, &c)))
}

/// Removes the global server `name`; answers it, or None if there was none.
pub async fn delete_global_server(store: &Store, name: &str) -> Result<Option<McpServer>, StoreError> {
    let previous = store.delete_mcp_server(name).await?;
    Ok(previous.and_then(|c| decode(name, &c)))
}

/// A stored config that no longer decodes (written by another version) is skipped, with a warning.
fn decode(name: &str, config: &str) -> Option<McpServer> {
    match serde_json::from_str(config) {
        Ok(server) => Some(server),
        Err(e) => {
            tracing::warn!(server = name, error = %e, "stored MCP server config does not decode; skipped");
            None
        }
    }
}

#[cfg(test)]
mod tests;
