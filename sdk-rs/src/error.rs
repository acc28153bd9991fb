//! The error type of the SDK: an API problem (RFC 7807), a transport error,
//! or a body that could not be decoded.

use reqwest::header::LOCATION;
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tether_protocol::{ErrorCode, Problem, StreamReset};

/// The `type` given to a non-2xx answer whose body is not problem JSON.
pub const UNKNOWN_PROBLEM_TYPE: &str = "urn:tether:error:unknown";

/// What can go wrong talking to a tether server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-2xx status. `problem` is its
    /// `application/problem+json` body, or one synthesized with type
    /// `urn:tether:error:unknown` and the body text as `detail`. `code` is
    /// the problem's code as an enum, to match on
    /// (`Error::Api { code: ErrorCode::SessionNotFound, .. }`). A redirect
    /// (3xx) is never followed: it is `ErrorCode::SpritesTokenRefused` when it
    /// points at the Sprites login, otherwise `ErrorCode::Redirected` with the
    /// `Location` in the detail; neither is retryable.
    #[error("HTTP {status} {code}: {detail}", code = .problem.code(), detail = .problem.detail)]
    Api { status: u16, code: ErrorCode, problem: Problem },
    /// The request could not be sent or the answer could not be read.
    #[error("HTTP transport error: {0}")]
    Http(#[from] reqwest::Error),
    /// A 2xx body (or a streamed event) is not what the API promises.
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    /// The cursor asked for is beyond what the server's store holds: its
    /// data dir was restored from an older copy (a checkpoint), so the
    /// events seen after `last_seq` are not in it any more (new events will
    /// take their numbers). Discard what was seen after `last_seq` and go on
    /// from there. From the page call (`409 cursor_ahead`), and from an
    /// [`EventStream`](crate::EventStream) (a `stream.reset` frame), which then
    /// goes on by itself after `last_seq`. On the global stream `last_seq` is a `gseq`.
    #[error(
        "cursor_ahead: the cursor {after} is beyond the last one ({last}) of store {store}, which was restored from \
         an older copy; go on after {last}",
        after = .0.after.map(|a| a.to_string()).unwrap_or_else(|| "asked for".into()),
        last = .0.last_seq,
        store = .0.store_id
    )]
    CursorAhead(StreamReset),
    /// The Sprites transport could not be set up (no tokio runtime, the
    /// local relay socket could not be made).
    #[error("Sprites transport: {0}")]
    Tunnel(String),
    /// The session ended while a helper waited on it.
    #[error("session {0} ended")]
    SessionEnded(String),
    /// A helper's deadline passed first (`wait_for_status`, `run_turn`).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A terminal's WebSocket failed, or closed before the process ended:
    /// reattach after the terminal's last offset.
    #[error("terminal WebSocket: {0}")]
    WebSocket(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The stable error code (`session_not_found`, `unauthorized`, ..) of an
    /// API error; `None` for transport and decode errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { problem, .. } => Some(problem.code()),
            Error::CursorAhead(_) => Some("cursor_ahead"),
            Error::Http(_)
            | Error::Decode(_)
            | Error::Tunnel(_)
            | Error::Timeout(_)
            | Error::SessionEnded(_)
            | Error::WebSocket(_) => None,
        }
    }

    /// The problem code as an [`ErrorCode`] (`ErrorCode::Unknown` for a code
    /// this SDK does not know); `None` for transport and decode errors.
    pub fn kind(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            Error::CursorAhead(_) => Some(ErrorCode::CursorAhead),
            Error::Http(_)
            | Error::Decode(_)
            | Error::Tunnel(_)
            | Error::Timeout(_)
            | Error::SessionEnded(_)
            | Error::WebSocket(_) => None,
        }
    }

    /// Whether retrying the same request later can succeed: a transport
    /// failure, a 5xx, `starting`, `store_unavailable` or
    /// `insufficient_storage`. Never a redirect (`sprites_token_refused`,
    /// `redirected`) nor `sprite_not_found`.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Http(_) => true,
            Error::Api { status, code, .. } => {
                *status >= 500
                    || matches!(
                        code,
                        ErrorCode::Starting | ErrorCode::StoreUnavailable | ErrorCode::InsufficientStorage
                    )
            }
            Error::Timeout(_) | Error::WebSocket(_) => true,
            Error::CursorAhead(_) | Error::Decode(_) | Error::Tunnel(_) | Error::SessionEnded(_) => false,
        }
    }

    /// The HTTP status of the answer, when there was one (409 for
    /// [`Error::CursorAhead`], the status of its code, also when it came
    /// as a `stream.reset` frame).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::CursorAhead(_) => Some(409),
            Error::Http(e) => e.status().map(|s| s.as_u16()),
            Error::Decode(_) | Error::Tunnel(_) | Error::Timeout(_) | Error::SessionEnded(_) | Error::WebSocket(_) => {
                None
            }
        }
    }
}

/// Reads a non-2xx answer into an [`Error::Api`]; a 3xx is not read (see [`redirected`]).
pub(crate) async fn from_response(resp: reqwest::Response) -> Error {
    let status = resp.status();
    if status.is_redirection() {
        let location = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
        let target = location.map(|l| resp.url().join(l).map_err(|_| l.to_owned()));
        return redirected(status, target, false);
    }
    match resp.bytes().await {
        Ok(body) => api_error(status, &body),
        Err(e) => Error::Http(e),
    }
}

/// Where the Sprites login lives: the Sprite URL's edge redirects a request
/// whose Sprites token is missing, wrong or not allowed there to
/// `https://sprites.dev/auth/sprite?return_url=…` (SPRITES.md, "The Sprite URL").
fn is_sprites_login(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    host == "sprites.dev" || host.ends_with(".sprites.dev") || url.path().starts_with("/auth/sprite")
}

/// A redirect, never followed (it would carry tether's token with it): to
/// the Sprites login, `sprites_token_refused`; anywhere else, `redirected`,
/// naming where. `target` is the `Location` resolved, or as given when it
/// is not a URL; `followed` when the caller's HTTP client followed it.
pub(crate) fn redirected(
    status: StatusCode,
    target: Option<std::result::Result<Url, String>>,
    followed: bool,
) -> Error {
    let shown = match &target {
        Some(Ok(url)) => url.as_str().to_owned(),
        Some(Err(raw)) => raw.clone(),
        None => "nowhere (no Location)".to_owned(),
    };
    let how = if followed {
        "the HTTP client given to the SDK followed a redirect there, and the SDK did not read the answer"
    } else {
        "not followed"
    };
    let (code, title, detail) = match target {
        Some(Ok(url)) if is_sprites_login(&url) => (
            ErrorCode::SpritesTokenRefused,
            "Sprites token refused",
            format!(
                "the Sprite URL's edge redirected to the Sprites login ({shown}; {how}): the Sprites token is \
                 missing, wrong, or may not reach this Sprite"
            ),
        ),
        _ => (ErrorCode::Redirected, "Redirected", format!("redirected to {shown} ({how})")),
    };
    let problem = Problem {
        type_: format!("urn:tether:error:{code}"),
        title: title.to_owned(),
        status: status.as_u16(),
        detail,
        last_seq: None,
        store_id: None,
    };
    Error::Api { status: status.as_u16(), code, problem }
}

/// An answer that came from `url` instead of the URL asked: the caller's
/// HTTP client followed a redirect.
pub(crate) fn followed_redirect(url: &Url) -> Error {
    redirected(StatusCode::FOUND, Some(Ok(url.clone())), true)
}

/// The problem of a non-2xx answer. Lenient: a JSON object with a string
/// `type` is taken as a problem even when other members are missing. A
/// `cursor_ahead` problem with its `last_seq` and `store_id` is
/// [`Error::CursorAhead`].
pub(crate) fn api_error(status: StatusCode, body: &[u8]) -> Error {
    let reason = || status.canonical_reason().unwrap_or("Unknown error").to_owned();
    let problem = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(obj)) if obj.get("type").is_some_and(Value::is_string) => {
            let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
            Problem {
                type_: text("type").unwrap_or_default(),
                title: text("title").unwrap_or_else(reason),
                status: obj
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .unwrap_or(status.as_u16()),
                detail: text("detail").unwrap_or_default(),
                last_seq: obj.get("last_seq").and_then(Value::as_u64),
                store_id: text("store_id"),
            }
        }
        _ => Problem {
            type_: UNKNOWN_PROBLEM_TYPE.to_owned(),
            title: reason(),
            status: status.as_u16(),
            detail: String::from_utf8_lossy(body).into_owned(),
            last_seq: None,
            store_id: None,
        },
    };
    if let (true, Some(last_seq), Some(store_id)) =
        (problem.code() == "cursor_ahead", problem.last_seq, problem.store_id.clone())
    {
        return Error::CursorAhead(StreamReset { last_seq, store_id, after: None });
    }
    Error::Api { status: status.as_u16(), code: problem.error_code(), problem }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_json_is_parsed() {
        let body = br#"{"type":"urn:tether:error:session_not_found","title":"Not Found","status":404,"detail":"no session ses_x"}"#;
        let err = api_error(StatusCode::NOT_FOUND, body);
        assert_eq!(err.code(), Some("session_not_found"));
        assert_eq!(err.kind(), Some(ErrorCode::SessionNotFound));
        assert!(matches!(err, Error::Api { code: ErrorCode::SessionNotFound, .. }));
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(404));
        match &err {
            Error::Api { problem, .. } => assert_eq!(problem.detail, "no session ses_x"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(err.to_string(), "HTTP 404 session_not_found: no session ses_x");
    }

    #[test]
    fn non_problem_body_is_synthesized() {
        let err = api_error(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(err.code(), Some("unknown"));
        assert_eq!(err.kind(), Some(ErrorCode::Unknown));
        assert!(err.is_retryable());
        assert_eq!(err.status(), Some(502));
        match err {
            Error::Api { problem, .. } => {
                assert_eq!(problem.type_, UNKNOWN_PROBLEM_TYPE);
                assert_eq!(problem.status, 502);
                assert_eq!(problem.title, "Bad Gateway");
                assert_eq!(problem.detail, "upstream down");
            }
            other => panic!("unexpected {other:?}"),
        }
        // JSON that is not a problem is not taken for one.
        assert_eq!(api_error(StatusCode::BAD_REQUEST, b"{\"x\":1}").code(), Some("unknown"));
    }

    #[test]
    fn cursor_ahead_is_typed() {
        let body = br#"{"type":"urn:tether:error:cursor_ahead","title":"Conflict","status":409,"detail":"ahead","last_seq":7,"store_id":"sto_1"}"#;
        let err = api_error(StatusCode::CONFLICT, body);
        assert_eq!((err.status(), err.code()), (Some(409), Some("cursor_ahead")));
        match &err {
            Error::CursorAhead(reset) => {
                assert_eq!((reset.last_seq, reset.store_id.as_str()), (7, "sto_1"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("go on after 7"), "{err}");
        // Without its members it stays a plain problem.
        let bare = api_error(StatusCode::CONFLICT, br#"{"type":"urn:tether:error:cursor_ahead"}"#);
        assert!(matches!(bare, Error::Api { status: 409, .. }), "{bare:?}");
    }

    #[test]
    fn redirects_are_typed_and_never_retryable() {
        let to = |url: &str| Some(Ok(Url::parse(url).unwrap()));
        for login in ["https://sprites.dev/auth/sprite?return_url=x", "https://127.0.0.1:9/auth/sprite?return_url=y"] {
            let err = redirected(StatusCode::FOUND, to(login), false);
            assert!(matches!(err, Error::Api { status: 302, code: ErrorCode::SpritesTokenRefused, .. }), "{err:?}");
            assert_eq!(err.code(), Some("sprites_token_refused"));
            assert!(!err.is_retryable());
            assert!(err.to_string().contains(login), "{err}");
        }
        let elsewhere = redirected(StatusCode::MOVED_PERMANENTLY, to("https://example.com/v1/info"), false);
        assert!(matches!(elsewhere, Error::Api { status: 301, code: ErrorCode::Redirected, .. }), "{elsewhere:?}");
        assert!(elsewhere.to_string().contains("redirected to https://example.com/v1/info (not followed)"));
        assert!(!elsewhere.is_retryable());
        let nowhere = redirected(StatusCode::FOUND, None, false);
        assert_eq!(nowhere.kind(), Some(ErrorCode::Redirected));
        let followed = followed_redirect(&Url::parse("https://sprites.dev/auth/sprite").unwrap());
        assert_eq!(followed.kind(), Some(ErrorCode::SpritesTokenRefused));
        assert!(followed.to_string().contains("followed a redirect"), "{followed}");
    }

    #[test]
    fn partial_problem_gets_defaults() {
        let err = api_error(StatusCode::CONFLICT, br#"{"type":"urn:tether:error:conflict"}"#);
        match err {
            Error::Api { status, code, problem } => {
                assert_eq!(code, ErrorCode::Conflict);
                assert_eq!(status, 409);
                assert_eq!(problem.code(), "conflict");
                assert_eq!(problem.status, 409);
                assert_eq!(problem.title, "Conflict");
                assert_eq!(problem.detail, "");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
