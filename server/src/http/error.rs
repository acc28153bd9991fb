//! The HTTP API's one error: every failure is answered as RFC 7807
//! problem+json with a stable [`ErrorCode`]. A room's error becomes an
//! [`ApiError`] only through `From` (any [`AsProblem`], the mapping in
//! `crate::error`); the constructors here are for what HTTP itself refuses
//! (a bad body, query or header, a route that does not exist, auth, limits)
//! and are visible inside `http` only. Internals of a 5xx are logged, never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tether_protocol::{Problem, StreamReset};

use crate::error::{status_of, AsProblem, ErrorCode};

#[derive(Debug, Clone)]
pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: ErrorCode,
    pub(super) detail: String,
    /// `cursor_ahead`: what the store holds, sent as the problem's `last_seq` and `store_id`.
    pub(super) reset: Option<Box<StreamReset>>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl<E: AsProblem> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError { status: e.status(), code: e.code(), detail: e.detail(), reset: e.reset().map(Box::new) }
    }
}

impl ApiError {
    /// A problem HTTP itself answers, with the status its code documents.
    pub(super) fn of(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::new(status_of(code), code, detail)
    }
    /// A problem with a status other than its code's own (passing on another layer's status).
    pub(super) fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { status, code, detail: detail.into(), reset: None }
    }
    pub(super) fn invalid(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::InvalidRequest, detail)
    }
    pub(super) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::Unauthorized, detail)
    }
    pub(super) fn not_found(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::NotFound, detail)
    }
    pub(super) fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::PayloadTooLarge, detail)
    }
    pub(super) fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::UnsupportedMediaType, detail)
    }
    pub(super) fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::MethodNotAllowed, detail)
    }
    /// A WebSocket route asked without a WebSocket upgrade.
    pub(super) fn upgrade_required(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::UpgradeRequired, detail)
    }
    /// This client holds as many event streams as one client may (`--max-streams-per-client`).
    pub(super) fn too_many_streams(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::TooManyStreams, detail)
    }
    /// The request body stopped arriving (`--body-read-timeout-secs`).
    pub(super) fn request_timeout(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::RequestTimeout, detail)
    }
    /// A server-side failure; `detail` is logged, and the client sees a generic message.
    pub(super) fn internal(detail: impl Into<String>) -> Self {
        Self::of(ErrorCode::Internal, detail)
    }
    /// Seconds a client should wait before trying again, for errors that pass by themselves.
    fn retry_after(&self) -> Option<&'static str> {
        match self.code {
            ErrorCode::Starting => Some("1"),
            ErrorCode::TooManyConnections => Some("2"),
            ErrorCode::InsufficientStorage | ErrorCode::StoreUnavailable | ErrorCode::TooManyStreams => Some("5"),
            _ => None,
        }
    }

    pub fn to_problem(&self) -> Problem {
        crate::error::problem(self.status, self.code, &self.detail, self.reset.as_deref())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() && self.retry_after().is_none() {
            tracing::error!(code = %self.code, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self.to_problem()).unwrap_or_default();
        let mut resp = (self.status, [(header::CONTENT_TYPE, "application/problem+json")], body).into_response();
        if let Some(secs) = self.retry_after() {
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(secs));
        }
        // A body refused for its size (or for stalling) is not read to its
        // end: the connection cannot carry another request, and a client
        // that pooled it would fail its next one. Say so.
        if matches!(self.code, ErrorCode::PayloadTooLarge | ErrorCode::RequestTimeout) {
            resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        resp
    }
}
