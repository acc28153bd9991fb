//! The HTTP API: one module per route group, each returning a `Router`;
//! auth, body limits and problem+json errors apply to all of them.
//!
//! Routes serve from [`AppState`]: the application core (`crate::app`)
//! plus what only HTTP holds. Every failure is an [`ApiError`]
//! ([`error`]), made from a room's own error by `From` at the handler's
//! `?`; this module and its children alone build one for what HTTP itself
//! refuses. tether's own MCP server is handed in ([`router`]'s `mcp`),
//! not imported: the tools and the routes know nothing of each other.

mod agents;
pub mod edge;
mod encoding;
pub mod error;
mod events;
mod fs;
mod mcp;
mod ports;
mod processes;
mod service;
mod sessions;
mod skills;
mod ui;
mod webhooks;

use std::sync::Arc;
#[cfg(test)]
use std::time::{Duration, Instant};

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::de::DeserializeOwned;

pub use self::error::ApiError;
use crate::app::App;
use crate::error::ErrorCode;

pub use events::StreamSlots;

/// What the routes serve from: the application core, and what only HTTP
/// holds (the `Host`/`Origin` policy, the event streams per client).
/// Derefs to the core, so a handler reads `app.shared` either way.
pub struct AppState {
    pub core: Arc<App>,
    /// Which `Host`s and `Origin`s browsers may reach the server with.
    pub edge: edge::EdgePolicy,
    /// Event streams open per client address (`--max-streams-per-client`).
    pub streams: StreamSlots,
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.core
    }
}

pub type AppRef = Arc<AppState>;

/// The whole API, with `mcp` (tether's own MCP server, which `serve`
/// builds) answering at `/mcp` behind the same auth and edge checks. Tests call
/// this in-process; `serve::serve` binds it.
pub fn router<S>(state: AppRef, mcp: S) -> Router
where
    S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse + 'static,
    S::Future: Send + 'static,
{
    let limit = state.max_body_bytes;
    Router::new()
        .merge(service::router())
        .merge(agents::router())
        .merge(sessions::router())
        .merge(events::router())
        .merge(fs::router())
        .merge(processes::router())
        .merge(mcp::router())
        .merge(skills::router())
        .merge(ui::router())
        .merge(webhooks::router())
        .merge(ports::router())
        .route("/mcp", mcp_endpoint(mcp))
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(documented_query))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(middleware::from_fn_with_state(state.clone(), edge::check))
        .with_state(state)
}

/// tether's own MCP endpoint: the Streamable HTTP transport's three
/// methods (any other is a 405 problem like everywhere else).
fn mcp_endpoint<S>(service: S) -> axum::routing::MethodRouter<AppRef>
where
    S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
    S::Response: IntoResponse + 'static,
    S::Future: Send + 'static,
{
    use axum::routing::{delete_service, get_service, post_service};
    post_service(service.clone())
        .merge(get_service(service.clone()))
        .merge(delete_service(service))
        .layer(middleware::from_fn(mcp_problems))
}

/// The MCP transport's own refusals (rmcp answers them as `text/plain`, or
/// with no type) as problem+json like every other route; a body that is not
/// JSON is a 400, not the transport's 415; a session ended by `DELETE` is a
/// 204, not the transport's 202.
async fn mcp_problems(req: Request, next: Next) -> Response {
    let delete = req.method() == Method::DELETE;
    let json_body = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("application/json"));
    let mut resp = next.run(req).await;
    let status = resp.status();
    if delete && status == StatusCode::ACCEPTED {
        // A session ended: the SDKs take 200 or 204 as done, and log a 202 as a failed termination.
        *resp.status_mut() = StatusCode::NO_CONTENT;
        return resp;
    }
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json") || ct.contains("event-stream"));
    if status.is_success() || is_problem {
        return resp;
    }
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    // "Bad Request: Session ID is required" → "Session ID is required".
    let said = text.split_once(": ").map(|(_, t)| t).unwrap_or(&text).trim().to_string();
    let (status, code, detail) = match status.as_u16() {
        415 if json_body => {
            (StatusCode::BAD_REQUEST, ErrorCode::InvalidRequest, format!("the body is not JSON-RPC: {said}"))
        }
        400 => (status, ErrorCode::InvalidRequest, format!("the MCP request was refused: {said}")),
        404 => (
            status,
            ErrorCode::NotFound,
            format!("{said}: the MCP session ended or the server restarted; initialize a new session"),
        ),
        406 => (status, ErrorCode::NotAcceptable, format!("{said} (send Accept: application/json, text/event-stream)")),
        413 => (status, ErrorCode::PayloadTooLarge, said),
        415 => (status, ErrorCode::UnsupportedMediaType, format!("{said} (send Content-Type: application/json)")),
        405 => (status, ErrorCode::MethodNotAllowed, said),
        401 => (status, ErrorCode::Unauthorized, said),
        s if s < 500 => (status, ErrorCode::InvalidRequest, said),
        _ => (status, ErrorCode::Internal, said),
    };
    ApiError::new(status, code, detail).into_response()
}

/// The query parameters each route takes, by method and path template, as
/// the OpenAPI document lists them.
fn documented_queries() -> &'static std::collections::HashMap<(String, String), Vec<String>> {
    static TABLE: std::sync::OnceLock<std::collections::HashMap<(String, String), Vec<String>>> =
        std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let doc = tether_protocol::openapi::openapi();
        let mut table = std::collections::HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let names = op["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                table.insert((method.to_ascii_uppercase(), path.clone()), names);
            }
        }
        table
    })
}

/// One rule for every route: a query parameter the OpenAPI document does
/// not list for the route is refused (400), whether or not its handler
/// reads a query. The inspector's pages (`/`, `/ui/...`) are a browser's
/// addresses and take any.
async fn documented_query(matched: Option<axum::extract::MatchedPath>, req: Request, next: Next) -> Response {
    let (Some(matched), Some(query)) = (matched, req.uri().query()) else { return next.run(req).await };
    if ui::is_ui_path(req.uri().path()) {
        return next.run(req).await;
    }
    let key = (req.method().as_str().to_owned(), matched.as_str().replace("{*", "{"));
    let Some(known) = documented_queries().get(&key) else { return next.run(req).await };
    if let Some((name, _)) = form_urlencoded::parse(query.as_bytes()).find(|(name, _)| !known.iter().any(|k| k == name))
    {
        let takes = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
        return ApiError::invalid(format!(
            "unknown query parameter `{name}`: {} {} takes {takes}",
            req.method(),
            matched.as_str()
        ))
        .into_response();
    }
    next.run(req).await
}

/// The answer to every route but the health check while the server starts
/// (`crate::serve`'s gate): 503 `starting`, `Retry-After: 1`.
pub fn starting() -> Response {
    ApiError::of(
        ErrorCode::Starting,
        "the server is starting (opening the store, recovering sessions); try again in a moment",
    )
    .into_response()
}

/// The answer on a connection past `--max-connections` (`crate::connections`):
/// 503 `too_many_connections`, `Retry-After: 2`.
pub fn too_many_connections() -> Response {
    ApiError::of(
        ErrorCode::TooManyConnections,
        "the server holds as many connections as it takes (--max-connections); try again after the Retry-After",
    )
    .into_response()
}

async fn fallback(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(format!("{method} is not allowed on {}", uri.path()))
}

pub use tether_protocol::TOKEN_HEADER;

/// Token auth on every route but `GET /v1/health` and the UI's files: the
/// token comes in `X-Tether-Token` or as `Authorization: Bearer`; when both
/// are sent, `X-Tether-Token` is the one checked.
///
/// Previews, for browsers that cannot send a header: opening a signed link
/// (`/v1/ports/{port}/open`) needs no token, its signature is checked by the
/// route; the cookie it sets lets requests into that port's preview
/// (`/v1/ports/{port}/proxy…`, `/absproxy…`) and nowhere else. A preview
/// request with a cookie that is not valid (expired, forged, another
/// port's) and no valid token is a 403 `preview_link_invalid`.
async fn auth(State(state): State<AppRef>, req: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else { return next.run(req).await };
    let path = req.uri().path();
    if path == "/v1/health" || ui::is_ui_path(path) || ports::is_open_path(path) {
        return next.run(req).await;
    }
    let mut cookie_refused = None;
    if let Some(port) = ports::preview_port(path) {
        if let Some(value) = ports::cookie_of(req.headers(), port) {
            let now = u64::try_from(crate::ids::now_ms() / 1000).unwrap_or(0);
            match state.ports.check_cookie(port, &value, now) {
                Ok(()) => return next.run(req).await,
                Err(e) => cookie_refused = Some(ApiError::from(e)),
            }
        }
    }
    let headers = req.headers();
    let protocol = protocol_token(headers);
    let given = match headers.get(TOKEN_HEADER) {
        Some(v) => Some(("X-Tether-Token", v.to_str().ok())),
        None => match headers.get(header::AUTHORIZATION) {
            Some(v) => {
                let bearer =
                    v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
                Some(("bearer", bearer))
            }
            // A browser's WebSocket cannot carry a header: the token comes as a subprotocol.
            None => protocol.as_ref().map(|t| ("WebSocket protocol", t.as_deref())),
        },
    };
    match (given, cookie_refused) {
        (Some((_, Some(t))), _) if crate::token::constant_time_eq(t.trim().as_bytes(), token.as_bytes()) => {
            next.run(req).await
        }
        (_, Some(refused)) => refused.into_response(),
        (Some((from, _)), None) => ApiError::unauthorized(format!("the {from} token is not valid")).into_response(),
        (None, None) => {
            ApiError::unauthorized("missing `Authorization: Bearer <token>` (or `X-Tether-Token: <token>`) header")
                .into_response()
        }
    }
}

/// The subprotocol that carries the token of a browser's WebSocket (a
/// browser cannot set a header on one): `tether.token.` and the token in
/// base64url without padding, offered beside [`WS_PROTOCOL`].
pub const WS_TOKEN_PROTOCOL_PREFIX: &str = "tether.token.";
/// The subprotocol the server answers a WebSocket with when the client
/// offered it (browsers fail a socket whose offered protocols all go unanswered).
pub const WS_PROTOCOL: &str = "tether";

/// The token in `Sec-WebSocket-Protocol`, if one of the offered protocols
/// carries one: `Some(None)` when it does not decode.
fn protocol_token(headers: &HeaderMap) -> Option<Option<String>> {
    use base64::Engine as _;
    let offered = headers.get_all(header::SEC_WEBSOCKET_PROTOCOL).into_iter().filter_map(|v| v.to_str().ok());
    let encoded = offered.flat_map(|v| v.split(',')).find_map(|p| p.trim().strip_prefix(WS_TOKEN_PROTOCOL_PREFIX))?;
    Some(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
    )
}

/// A JSON body whose every failure is a problem+json: 415 without a JSON
/// content type, 413 past the body limit, 400 with serde's message otherwise.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
                mime == "application/json" || mime.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::unsupported_media_type("the body must be JSON (Content-Type: application/json)"));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(body_error)?;
        let mut json: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?;
        integral_floats_as_integers(&mut json);
        let value = serde_path_to_error::deserialize(json).map_err(|e| invalid_at("JSON body", e))?;
        Ok(ApiJson(value))
    }
}

/// JSON has one number type, and JSON Schema reads `280.0` as the integer
/// 280: every whole number written with a fraction becomes that integer, so
/// integer fields take it as the document promises.
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f >= i64::MIN as f64 && f < u64::MAX as f64 {
                *v = if f < 0.0 { Value::from(f as i64) } else { Value::from(f as u64) };
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// A value that did not decode, as a 400 naming the field (`crate::error::invalid_at`).
fn invalid_at<E: std::fmt::Display>(what: &str, e: serde_path_to_error::Error<E>) -> ApiError {
    ApiError::invalid(crate::error::invalid_at(what, e))
}

fn body_error(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::payload_too_large("the request body is larger than the server accepts (--max-body-bytes)")
    } else {
        body_read_error(&e)
    }
}

/// A request body that could not be read: `408 request_timeout` when it
/// stopped arriving (`--body-read-timeout-secs`, see `crate::connections`),
/// else `400`.
pub(crate) fn body_read_error(e: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::request_timeout(
                "the request body stopped arriving (nothing for --body-read-timeout-secs); send the request again",
            );
        }
        cause = c.source();
    }
    ApiError::invalid(format!("could not read the request body: {e}"))
}

/// Query parameters with unknown or ill-typed fields refused as problem+json.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        utf8_query(query)?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| invalid_at("query parameter", e))
    }
}

/// Refuses a query whose names or values are not UTF-8 once percent-decoded
/// (`?path=%FF`), rather than reading them with U+FFFD in their place: a
/// `path` so decoded would name another file.
fn utf8_query(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if [key, value].iter().all(|part| percent_encoding::percent_decode_str(part).decode_utf8().is_ok()) {
            continue;
        }
        let key = percent_encoding::percent_decode_str(key).decode_utf8_lossy();
        return Err(if key == "path" {
            crate::fs::FsError::NameNotUtf8 { what: format!("the path {value:?} (percent-decoded)") }.into()
        } else {
            ApiError::invalid(format!("query parameter {key:?} is not valid UTF-8 once percent-decoded"))
        });
    }
    Ok(())
}

/// A `text/event-stream` answer (no caching, no proxy buffering) whose body is `frames`.
pub fn sse_response(frames: impl futures_util::Stream<Item = axum::body::Bytes> + Send + 'static) -> Response {
    use futures_util::StreamExt;
    let body = axum::body::Body::from_stream(frames.map(Ok::<_, std::io::Error>));
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| ApiError::internal("could not build the SSE response").into_response())
}

/// The frames a pump task sends, as a stream that ends when the task does.
pub fn frames_of(
    rx: tokio::sync::mpsc::Receiver<axum::body::Bytes>,
) -> impl futures_util::Stream<Item = axum::body::Bytes> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) })
}

/// The cursor a stream resumes after: `Last-Event-ID` wins over `?after=`.
pub fn resume_cursor(headers: &HeaderMap, after: Option<u64>) -> Result<u64, ApiError> {
    match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            // 1 to 19 digits, as documented: always a u64, no sign.
            .filter(|s| (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| ApiError::invalid("Last-Event-ID must be a cursor: 1 to 19 digits")),
        None => Ok(after.unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests;

/// The whole router in-process over temporary data dir and workspace, for tests.
#[cfg(test)]
pub(crate) struct TestApp {
    pub router: Router,
    pub data: std::path::PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

#[cfg(test)]
impl TestApp {
    pub async fn new(token: Option<&str>, max_body_bytes: usize) -> TestApp {
        let data = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let config = crate::config::Config {
            host: "127.0.0.1".parse().unwrap(),
            port: 0,
            data_dir: data.path().to_path_buf(),
            workspace: ws.path().canonicalize().unwrap(),
            token: token.map(str::to_string),
            max_body_bytes,
            max_upload_bytes: crate::fs::DEFAULT_MAX_UPLOAD_BYTES,
            process_output_bytes: crate::exec::DEFAULT_OUTPUT_BYTES,
            keepalive: Duration::from_secs(15),
            sprite_socket: None,
            keep_awake: true,
            allow_hosts: vec![],
            allow_origins: vec![],
            keep_awake_expire: Duration::from_secs(300),
            keep_awake_refresh: Duration::from_secs(60),
            keep_awake_wait: crate::sprite::keepawake::DEFAULT_WAIT_LIMIT,
            keep_awake_webhooks: crate::sprite::keepawake::DEFAULT_WEBHOOK_LIMIT,
            pause_threshold: crate::pause::DEFAULT_THRESHOLD,
            stream_idle: None,
            store_stall_limit: crate::config::DEFAULT_STORE_STALL_LIMIT,
            start_gate: None,
            webhook_retry: crate::webhooks::Retry::default(),
            connections: crate::connections::Limits {
                max_connections: 64,
                header_read_timeout: crate::connections::DEFAULT_HEADER_READ_TIMEOUT,
                body_read_timeout: crate::connections::DEFAULT_BODY_READ_TIMEOUT,
                send_timeout: crate::connections::DEFAULT_SEND_TIMEOUT,
            },
            max_streams_per_client: 8,
            ports_poll: None,
            agent_idle: None,
            retain: None,
            disk: Default::default(),
            telemetry: Default::default(),
        };
        let prepared = crate::serve::prepare(&config, Instant::now()).await.unwrap();
        TestApp {
            router: crate::serve::router(prepared.app.clone()),
            data: data.path().to_path_buf(),
            _dirs: (data, ws),
        }
    }
}
