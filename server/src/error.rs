//! How a failure is told to a client, said once for every room. Each room
//! has its own `thiserror` error in domain terms (`fs::FsError`,
//! `session::SessionError`, `tools::ToolError`, ..) whose `Display` is the
//! sentence a client reads; implementing [`AsProblem`] gives it its stable
//! [`ErrorCode`] and HTTP status. Both edges use that one mapping: the HTTP
//! API (its one error type, answered as problem+json) and tether's own MCP
//! tools (a tool error carrying the same problem).
//!
//! This module serves no route and no tool (it only borrows the `http`
//! crate's `StatusCode`); the internals of a 5xx are for the log
//! ([`problem`] never sends them).

use axum::http::StatusCode;
pub use tether_protocol::ErrorCode;
use tether_protocol::{Problem, StreamReset};

use crate::store::{Stall, StallKind, StoreError};

/// A failure the API answers: its code, status and the sentence a client reads.
pub trait AsProblem: std::error::Error {
    /// The stable code clients match on.
    fn code(&self) -> ErrorCode;

    /// The HTTP status; the code's own ([`status_of`]) unless said otherwise.
    fn status(&self) -> StatusCode {
        status_of(self.code())
    }

    /// The sentence a client reads: what went wrong and what to do.
    fn detail(&self) -> String {
        self.to_string()
    }

    /// `cursor_ahead` only: what the store holds (the problem's `last_seq` and `store_id`).
    fn reset(&self) -> Option<StreamReset> {
        None
    }
}

/// The HTTP status each code is answered with (the one its documentation names).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidRequest | ErrorCode::NameTooLong | ErrorCode::NameNotUtf8 => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::PathOutsideRoot
        | ErrorCode::PermissionDenied
        | ErrorCode::OriginNotAllowed
        | ErrorCode::HostNotAllowed
        | ErrorCode::PortNotAllowed
        | ErrorCode::PreviewLinkInvalid => StatusCode::FORBIDDEN,
        ErrorCode::NotFound
        | ErrorCode::SessionNotFound
        | ErrorCode::WebhookNotFound
        | ErrorCode::ProcessNotFound
        | ErrorCode::PortNotListening => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Conflict | ErrorCode::CursorAhead => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType | ErrorCode::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::AgentNotInstalled => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
        ErrorCode::McpUnavailable | ErrorCode::PreviewFailed => StatusCode::BAD_GATEWAY,
        ErrorCode::AgentUnavailable
        | ErrorCode::StoreUnavailable
        | ErrorCode::Starting
        | ErrorCode::TooManyConnections
        | ErrorCode::TooManyStreams => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InsufficientStorage | ErrorCode::NoSpace => StatusCode::INSUFFICIENT_STORAGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The problem+json body of a failure (RFC 7807). An `internal` failure's
/// detail is replaced by a pointer to the log, where the caller writes it.
pub fn problem(status: StatusCode, code: ErrorCode, detail: &str, reset: Option<&StreamReset>) -> Problem {
    let detail = if status.is_server_error() && code == ErrorCode::Internal {
        "the server failed to handle this request; see its log".to_string()
    } else {
        detail.to_string()
    };
    Problem {
        type_: format!("urn:tether:error:{}", code.as_str()),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail,
        last_seq: reset.map(|r| r.last_seq),
        store_id: reset.map(|r| r.store_id.clone()),
    }
}

/// The sentence of a cursor beyond what the store holds (`what` names the
/// cursor: `seq`, `gseq`): the data dir was restored from an older copy.
pub fn cursor_ahead_detail(what: &str, reset: &StreamReset) -> String {
    let after = reset.after.unwrap_or_default();
    format!(
        "after={after} is beyond the last {what} this store holds ({}; store {}): the data dir was restored from an \
         older copy; continue after {}",
        reset.last_seq, reset.store_id, reset.last_seq
    )
}

/// The store's failures, as every room that reads or writes through it answers them.
impl AsProblem for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::SessionNotFound => ErrorCode::NotFound,
            StoreError::Stalled(stall) => stall_code(stall),
            _ => ErrorCode::Internal,
        }
    }

    fn detail(&self) -> String {
        match self {
            StoreError::Stalled(stall) => stall_detail(stall),
            other => other.to_string(),
        }
    }
}

/// A stalled store: `insufficient_storage` when its disk is full, else
/// `store_unavailable`; both pass by themselves.
pub fn stall_code(stall: &Stall) -> ErrorCode {
    match stall.kind {
        StallKind::DiskFull => ErrorCode::InsufficientStorage,
        _ => ErrorCode::StoreUnavailable,
    }
}

/// "<what the store hit>; try again later".
pub fn stall_detail(stall: &Stall) -> String {
    format!("{stall}; try again later")
}

/// The sentence of a value that did not decode (a JSON body, a query, a
/// tool's arguments; `what` says which), naming the field:
/// "invalid JSON body at `title`: invalid type: ..".
pub fn invalid_at<E: std::fmt::Display>(what: &str, e: serde_path_to_error::Error<E>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." || path.is_empty() {
        format!("invalid {what}: {inner}")
    } else {
        format!("invalid {what} at `{path}`: {inner}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_failure_is_logged_not_sent() {
        let p = problem(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "/secret/path: EIO", None);
        assert_eq!(p.detail, "the server failed to handle this request; see its log");
        assert_eq!((p.type_.as_str(), p.status), ("urn:tether:error:internal", 500));
        let p = problem(StatusCode::CONFLICT, ErrorCode::Conflict, "session ses_x has ended", None);
        assert_eq!(p.detail, "session ses_x has ended");
    }

    #[test]
    fn every_code_a_server_answers_has_its_documented_status() {
        let sdk_only = [
            ErrorCode::SpriteUnreachable,
            ErrorCode::SpriteNotFound,
            ErrorCode::SpritesTokenRefused,
            ErrorCode::Redirected,
        ];
        for &code in ErrorCode::ALL.iter().filter(|c| !sdk_only.contains(c)) {
            let status = status_of(code);
            assert_eq!(status == StatusCode::INTERNAL_SERVER_ERROR, code == ErrorCode::Internal, "{code}");
        }
    }
}
