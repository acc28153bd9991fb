//! One error type for the HTTP API, answered as RFC 7807 problem+json with a
//! stable code. Internals of a 5xx are logged, never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tether_protocol::{Problem, StreamReset};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// `cursor_ahead`: what the store holds, sent as the problem's `last_seq` and `store_id`.
    pub reset: Option<Box<StreamReset>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        // Every code the API answers is one SDK users can match on.
        debug_assert!(
            tether_protocol::ErrorCode::from_code(code) != tether_protocol::ErrorCode::Unknown,
            "problem code {code:?} is missing from tether_protocol::ErrorCode"
        );
        ApiError { status, code, detail: detail.into(), reset: None }
    }
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }
    pub fn session_not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "session_not_found", format!("no session with id {id:?}"))
    }
    pub fn webhook_not_found(id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "webhook_not_found", format!("no webhook with id {id:?}"))
    }
    pub fn agent_not_installed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "agent_not_installed", detail)
    }
    pub fn agent_unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
    }
    pub fn path_outside_root(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "path_outside_root", detail)
    }
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", detail)
    }
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", detail)
    }
    /// An MCP server could not be started, reached, or did not speak MCP.
    pub fn mcp_unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "mcp_unavailable", detail)
    }
    /// An MCP server did not answer in time.
    pub fn mcp_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "mcp_unavailable", detail)
    }
    /// A cursor beyond what the store holds (it was restored from an older
    /// copy): 409 naming the real last cursor and the store.
    pub fn cursor_ahead(what: &str, reset: StreamReset) -> Self {
        let after = reset.after.unwrap_or_default();
        let detail = format!(
            "after={after} is beyond the last {what} this store holds ({}; store {}): the data dir was restored \
             from an older copy; continue after {}",
            reset.last_seq, reset.store_id, reset.last_seq
        );
        ApiError { reset: Some(Box::new(reset)), ..Self::new(StatusCode::CONFLICT, "cursor_ahead", detail) }
    }
    /// A WebSocket route asked without a WebSocket upgrade.
    pub fn upgrade_required(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UPGRADE_REQUIRED, "upgrade_required", detail)
    }
    /// The disk holding the data dir is full: nothing new can be stored until space returns.
    pub fn insufficient_storage(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", detail)
    }
    /// The store cannot commit (an I/O error, a read-only file system); it retries by itself.
    pub fn store_unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", detail)
    }
    /// The server is still starting (opening the store, recovering sessions).
    pub fn starting(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "starting", detail)
    }

    /// The server holds as many connections as it takes (`--max-connections`).
    pub fn too_many_connections(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_connections", detail)
    }
    /// This client holds as many event streams as one client may (`--max-streams-per-client`).
    pub fn too_many_streams(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", detail)
    }
    /// The request body stopped arriving (`--body-read-timeout-secs`).
    pub fn request_timeout(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", detail)
    }

    /// Seconds a client should wait before trying again, for errors that pass by themselves.
    fn retry_after(&self) -> Option<&'static str> {
        match self.code {
            "starting" => Some("1"),
            "too_many_connections" => Some("2"),
            "insufficient_storage" | "store_unavailable" | "too_many_streams" => Some("5"),
            _ => None,
        }
    }

    /// A server-side failure; `detail` is logged, and the client sees a generic message.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", detail)
    }

    pub fn to_problem(&self) -> Problem {
        let detail = if self.status.is_server_error() && self.code == "internal" {
            "the server failed to handle this request; see its log".to_string()
        } else {
            self.detail.clone()
        };
        Problem {
            type_: format!("urn:tether:error:{}", self.code),
            title: self.status.canonical_reason().unwrap_or("Error").to_string(),
            status: self.status.as_u16(),
            detail,
            last_seq: self.reset.as_ref().map(|r| r.last_seq),
            store_id: self.reset.as_ref().map(|r| r.store_id.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.retry_after().is_none() {
            tracing::error!(code = self.code, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut resp = (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(secs));
        }
        resp
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::SessionNotFound => ApiError::not_found("session not found"),
            crate::store::StoreError::Stalled(stall) => ApiError::from(&stall),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<&crate::store::Stall> for ApiError {
    fn from(stall: &crate::store::Stall) -> Self {
        let detail = format!("{stall}; try again later");
        match stall.kind {
            crate::store::StallKind::DiskFull => ApiError::insufficient_storage(detail),
            _ => ApiError::store_unavailable(detail),
        }
    }
}
