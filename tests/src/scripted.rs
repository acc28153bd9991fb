//! The HTTP scaffolding shared by the scripted model servers ([`crate::anthropic`],
//! [`crate::openai`], [`crate::opencode`]): binding 127.0.0.1:0, recording
//! every request ([`Recorded`]), refusing `CONNECT`, unique ids, graceful
//! shutdown on drop. Each API supplies its [`Dialect`]: its model path, error
//! body and replies.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use tokio::sync::watch;

/// One request received by a scripted server, whatever its path.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query (`/v1/messages?beta=true`), or the authority of a `CONNECT`.
    pub uri: String,
    /// The body: JSON if it parses, else a string (`Null` when empty).
    pub body: Value,
    /// The API key sent (`x-api-key`, or a bearer token).
    pub api_key: Option<String>,
}

/// What distinguishes one scripted API from another.
pub struct Dialect {
    /// Names the server in messages (`bind the scripted {name} server`).
    pub name: &'static str,
    /// The path whose `POST` bodies are model requests (`/v1/messages`).
    pub model_path: &'static str,
    /// The response header that carries the request id.
    pub request_id_header: &'static str,
    /// The API's error body from `(type, code, message)`.
    pub error_body: fn(&str, &str, &str) -> Value,
    /// The reply to a model request (already recorded), given its body and request id.
    pub reply: fn(&Recorder, &Value, &str) -> Response,
    /// The `200` JSON body for any other method and path.
    pub other: fn(&Method, &str) -> Value,
}

/// What a scripted server has received, and its helpers for replies.
pub struct Recorder {
    dialect: Dialect,
    /// Bodies of `POST <model_path>`, in order.
    model_requests: Mutex<Vec<Value>>,
    /// Every request, in order.
    all: Mutex<Vec<Recorded>>,
    shutdown: watch::Receiver<bool>,
    /// Makes ids unique across servers of one test (e.g. before and after a restart).
    nonce: u64,
    counter: AtomicU64,
}

impl Recorder {
    /// A new id `<prefix>_scripted<nonce><counter>`, unique to this server.
    pub fn next_id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}_scripted{:08x}{n:04}", self.nonce)
    }

    /// Becomes `true` when the server stops (streams in progress end then).
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// A JSON response with the dialect's request-id header.
    pub fn json_response(&self, status: StatusCode, request_id: &str, body: &Value) -> Response {
        json_response(status, self.dialect.request_id_header, request_id, body)
    }
}

/// A JSON response whose `id_header` carries `request_id`.
pub fn json_response(status: StatusCode, id_header: &'static str, request_id: &str, body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(id_header, id);
    }
    response
}

/// A scripted model server on `127.0.0.1:<OS-chosen port>`. Stops when dropped.
pub struct ScriptedServer {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    shutdown: watch::Sender<bool>,
}

impl ScriptedServer {
    /// Binds 127.0.0.1:0 and serves `dialect` in the current tokio runtime.
    pub async fn start(dialect: Dialect) -> Self {
        let name = dialect.name;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind the scripted {name} server: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("local address of the scripted {name} server: {e}"));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let recorder = Arc::new(Recorder {
            dialect,
            model_requests: Mutex::new(Vec::new()),
            all: Mutex::new(Vec::new()),
            shutdown: shutdown_rx.clone(),
            nonce: u64::from(nanos) ^ u64::from(addr.port()),
            counter: AtomicU64::new(1),
        });
        let app = Router::new().fallback(handle).with_state(Arc::clone(&recorder));
        let mut stop = shutdown_rx;
        tokio::spawn(async move {
            let signal = async move {
                let _ = stop.wait_for(|s| *s).await;
            };
            if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(signal).await {
                eprintln!("scripted {name} server: {e}");
            }
        });
        Self { addr, recorder, shutdown }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every `POST <model_path>` body received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.recorder.model_requests.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Every request received so far, any method and path (`CONNECT` included).
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.recorder.all.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        // Closes the listener, idle connections, and cuts streams in progress.
        let _ = self.shutdown.send(true);
    }
}

/// Records the request, refuses `CONNECT` (403), answers a model request with
/// [`Dialect::reply`] (400 if its body is not JSON), anything else with
/// [`Dialect::other`].
async fn handle(
    State(recorder): State<Arc<Recorder>>,
    method: Method,
    uri: Uri,
    request_headers: HeaderMap,
    body: Bytes,
) -> Response {
    let api_key = request_headers.get("x-api-key").and_then(|v| v.to_str().ok()).map(str::to_owned).or_else(|| {
        let auth = request_headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        auth.strip_prefix("Bearer ").map(str::to_owned)
    });
    let parsed: Result<Value, _> = serde_json::from_slice(&body);
    let recorded_body = match &parsed {
        _ if body.is_empty() => Value::Null,
        Ok(v) => v.clone(),
        Err(_) => Value::String(String::from_utf8_lossy(&body).into_owned()),
    };
    let path = uri.path().to_owned();
    let uri_text = uri.path_and_query().map(|p| p.to_string()).unwrap_or_else(|| uri.to_string());
    if let Ok(mut all) = recorder.all.lock() {
        all.push(Recorded { method: method.to_string(), uri: uri_text, body: recorded_body, api_key });
    }
    let request_id = recorder.next_id("req");
    let dialect = &recorder.dialect;

    if method == Method::CONNECT {
        let body = (dialect.error_body)("permission_error", "forbidden", "the scripted model server is no proxy");
        return recorder.json_response(StatusCode::FORBIDDEN, &request_id, &body);
    }
    if method == Method::POST && path == dialect.model_path {
        let Ok(request) = parsed else {
            let body = (dialect.error_body)("invalid_request_error", "invalid_json", "the request body is not JSON");
            return recorder.json_response(StatusCode::BAD_REQUEST, &request_id, &body);
        };
        if let Ok(mut requests) = recorder.model_requests.lock() {
            requests.push(request.clone());
        }
        return (dialect.reply)(&recorder, &request, &request_id);
    }
    recorder.json_response(StatusCode::OK, &request_id, &(dialect.other)(&method, &path))
}

/// `(start, end, tag)` of the first `<open>TAG]` in `text` (byte offsets), the
/// tag trimmed and lowercase; `open` is a dialect's tag opening, e.g. `[claude:`.
pub fn find_tag(open: &str, text: &str) -> Option<(usize, usize, String)> {
    let start = text.find(open)?;
    let rest = &text[start + open.len()..];
    let close = rest.find(']')?;
    let tag = rest[..close].trim().to_ascii_lowercase();
    Some((start, start + open.len() + close + 1, tag))
}

/// The text of a message's `content` (a string, or parts whose texts are joined).
pub fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

pub fn first_chars(text: &str, n: usize) -> String {
    text.chars().take(n).collect()
}

/// `text` cut into a few pieces (at about every 12 characters), for deltas.
pub fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(12).map(|c| c.iter().collect()).collect()
}
