//! The HTTP scaffolding shared by the scripted model servers ([`crate::anthropic`],
//! [`crate::openai`], [`crate::opencode`], [`crate::gemini`], [`crate::pi`]): binding 127.0.0.1:0, recording
//! every request ([`Recorded`]), refusing `CONNECT`, unique ids, the HTTP
//! errors a tag injects ([`InjectedError`]), streaming a reply as SSE with a
//! pause before each frame ([`Frames`], cut short when the server stops),
//! graceful shutdown on drop. Each API supplies its [`Dialect`]: its model
//! paths, error body, injected errors and replies; what it encodes (the
//! events of its stream) stays in its own file.
//!
//! A new agent's model is a `Dialect` plus a reply function that reads the
//! tag and the step from the request and writes frames.
//!
//! Also what the models' scripts share: tags ([`find_tag`]) and MCP call
//! scripts ([`McpScript`]), one call (`[DIALECT:mcp:SERVER:TOOL]`) or a
//! sequence (`[DIALECT:mcp-seq:SERVER] TOOL {json} ;; TOOL {json} ...`) whose
//! arguments can take a field of the previous call's result (`"$NAME"`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// The API key sent (`x-api-key`, `x-goog-api-key`, or a bearer token).
    pub api_key: Option<String>,
}

/// What distinguishes one scripted API from another.
pub struct Dialect {
    /// Names the server in messages (`bind the scripted {name} server`).
    pub name: &'static str,
    /// Whether `POST` bodies to a path are model requests
    /// (`|p| p == "/v1/messages"`; Gemini's paths name the model).
    pub model_path: fn(&str) -> bool,
    /// The response header that carries the request id.
    pub request_id_header: &'static str,
    /// The API's error body from `(type, code, message)`.
    pub error_body: fn(&str, &str, &str) -> Value,
    /// The reply to a model request (already recorded), given its path, body and request id.
    pub reply: fn(&Recorder, &str, &Value, &str) -> Response,
    /// The `200` JSON body for any other method and path, given the request's
    /// body (JSON, a string, or `Null`; Amp's internal API names its method there).
    pub other: fn(&Method, &str, &Value) -> Value,
    /// The HTTP errors tags inject (`[DIALECT:401]`, ...).
    pub errors: &'static [InjectedError],
    /// The `content-type` of a streamed reply.
    pub sse_content_type: &'static str,
}

/// An HTTP error a tag injects: a model request whose prompt has the tag
/// `tag` is answered `status` with the dialect's error body of
/// `(kind, code, message)`.
pub struct InjectedError {
    pub tag: &'static str,
    pub status: u16,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

/// The errors of OpenAI's APIs (Responses and Chat Completions) the tags `401` and `500` inject.
pub const OPENAI_ERRORS: &[InjectedError] = &[
    InjectedError {
        tag: "401",
        status: 401,
        kind: "invalid_request_error",
        code: "invalid_api_key",
        message: "Incorrect API key provided: scripted.",
    },
    InjectedError {
        tag: "500",
        status: 500,
        kind: "server_error",
        code: "server_error",
        message: "scripted upstream failure",
    },
];

/// OpenAI's error body.
pub fn openai_error(kind: &str, code: &str, message: &str) -> Value {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

/// `GET /v1/models` of an OpenAI API serving `model`: a one-model list; anything else `{}`.
pub fn openai_other(model: &str, method: &Method, path: &str) -> Value {
    if method == Method::GET && path == "/v1/models" {
        serde_json::json!({"object": "list", "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "scripted"},
        ]})
    } else {
        serde_json::json!({})
    }
}

/// Seconds since the Unix epoch (the `created` of OpenAI's objects).
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A streamed reply being built: its SSE frames, each with the pause before it.
#[derive(Debug, Default)]
pub struct Frames(Vec<(Duration, String)>);

impl Frames {
    /// `event: NAME` with `data`, after `pause`.
    pub fn event(&mut self, pause: Duration, name: &str, data: &Value) {
        self.0.push((pause, format!("event: {name}\ndata: {data}\n\n")));
    }

    /// A frame of `data` only (Chat Completions' chunks, its `[DONE]`), after `pause`.
    pub fn data(&mut self, pause: Duration, data: &str) {
        self.0.push((pause, format!("data: {data}\n\n")));
    }
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

    /// The error response `tag` injects, if it is one of the dialect's [`InjectedError`]s.
    pub fn injected_error(&self, tag: &str, request_id: &str) -> Option<Response> {
        let error = self.dialect.errors.iter().find(|e| e.tag == tag)?;
        let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = (self.dialect.error_body)(error.kind, error.code, error.message);
        Some(self.json_response(status, request_id, &body))
    }

    /// Streams `frames`, each as its own chunk, after its pause; cut short
    /// (the connection aborted) when the server stops.
    pub fn sse_response(&self, frames: Frames, request_id: &str) -> Response {
        fn stopped() -> Result<Bytes, std::io::Error> {
            Err(std::io::Error::other("scripted server stopped"))
        }
        let state = (frames.0.into_iter(), self.shutdown());
        let stream = futures_util::stream::unfold(state, move |(mut frames, mut shutdown)| async move {
            let (pause, frame) = frames.next()?;
            if *shutdown.borrow() {
                return Some((stopped(), (frames, shutdown)));
            }
            if !pause.is_zero() {
                let stop = tokio::select! {
                    () = tokio::time::sleep(pause) => false,
                    _ = shutdown.wait_for(|s| *s) => true,
                };
                if stop {
                    return Some((stopped(), (frames, shutdown)));
                }
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(frame)), (frames, shutdown)))
        });
        let mut response = Response::new(Body::from_stream(stream));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.dialect.sse_content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert(self.dialect.request_id_header, id);
        }
        response
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
    /// The env that sends an agent's stray internet traffic to this server
    /// (which refuses `CONNECT`): `HTTPS_PROXY`, `HTTP_PROXY`, and `NO_PROXY` for loopback.
    pub fn proxy_trap(&self) -> [(String, String); 3] {
        let url = self.url();
        [
            ("HTTPS_PROXY".to_owned(), url.clone()),
            ("HTTP_PROXY".to_owned(), url),
            ("NO_PROXY".to_owned(), "127.0.0.1,localhost".to_owned()),
        ]
    }

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

/// Makes a dialect's server type (`ScriptedAnthropic(ScriptedServer)`, ...)
/// a model of [`crate::rig::Rig`]: the [`ScriptedServer`] methods (`url`,
/// `addr`, `requests`, `all_requests`, `proxy_trap`) through `Deref`, and
/// [`crate::rig::ScriptedModel`] (its agent requests picked by `filter` when given).
#[macro_export]
macro_rules! scripted_model {
    ($model:ty $(, agent_requests = $filter:expr)?) => {
        impl std::ops::Deref for $model {
            type Target = $crate::scripted::ScriptedServer;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl $crate::rig::ScriptedModel for $model {
            fn requests(&self) -> Vec<serde_json::Value> {
                self.0.requests()
            }
            $(
                fn agent_requests(&self) -> Vec<serde_json::Value> {
                    self.0.requests().into_iter().filter($filter).collect()
                }
            )?
        }
    };
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
    let header_text = |name: &str| request_headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let api_key = header_text("x-api-key").or_else(|| header_text("x-goog-api-key")).or_else(|| {
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
        all.push(Recorded { method: method.to_string(), uri: uri_text, body: recorded_body.clone(), api_key });
    }
    let request_id = recorder.next_id("req");
    let dialect = &recorder.dialect;

    if method == Method::CONNECT {
        let body = (dialect.error_body)("permission_error", "forbidden", "the scripted model server is no proxy");
        return recorder.json_response(StatusCode::FORBIDDEN, &request_id, &body);
    }
    if method == Method::POST && (dialect.model_path)(&path) {
        let Ok(request) = parsed else {
            let body = (dialect.error_body)("invalid_request_error", "invalid_json", "the request body is not JSON");
            return recorder.json_response(StatusCode::BAD_REQUEST, &request_id, &body);
        };
        if let Ok(mut requests) = recorder.model_requests.lock() {
            requests.push(request.clone());
        }
        return (dialect.reply)(&recorder, &path, &request, &request_id);
    }
    recorder.json_response(StatusCode::OK, &request_id, &(dialect.other)(&method, &path, &recorded_body))
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

/// The first tag of `text` of any of the openings `opens` (an agent's
/// model answers `[opencode:` and `[opencode-acp:`): how it opens, and the tag.
pub fn first_tag(opens: &[&'static str], text: &str) -> Option<(&'static str, String)> {
    opens
        .iter()
        .filter_map(|open| find_tag(open, text).map(|(start, _, tag)| (start, *open, tag)))
        .min_by_key(|(start, _, _)| *start)
        .map(|(_, open, tag)| (open, tag))
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

// ---- MCP call scripts ---------------------------------------------------------

/// How much of the last MCP result the closing text `MCP said: <result>`
/// keeps (a `wait_for_turn` report of tether's own MCP server fits).
pub const MCP_SAID_CHARS: usize = 4000;

/// One MCP call of a script: a tool of the script's server and its arguments
/// (before substitution: a string `"$NAME"` stands for a field of the previous result).
#[derive(Debug, Clone, PartialEq)]
pub struct McpCall {
    pub tool: String,
    pub arguments: Value,
}

/// The MCP calls a prompt scripts, all on one server, made in order.
#[derive(Debug, Clone, PartialEq)]
pub struct McpScript {
    pub server: String,
    pub steps: Vec<McpCall>,
}

/// Where a script stands in a conversation, as the dialect reads it from the request.
pub struct McpProgress<'a> {
    /// The results (their text) of the script's calls so far, in order: the
    /// calls of the script's server after the prompt.
    pub results: Vec<String>,
    /// Whether the model can call this tool of the server now (it is offered,
    /// or a search has loaded it).
    pub available: &'a dyn Fn(&str) -> bool,
    /// Whether a search after the prompt has already looked for this tool.
    pub searched: &'a dyn Fn(&str) -> bool,
}

/// What the model does next in an MCP script.
#[derive(Debug, Clone, PartialEq)]
pub enum McpNext {
    /// Search for deferred tools: the next step's tool first, then the later
    /// steps' tools that are not available either (a dialect that searches
    /// one tool at a time takes the first).
    Search(Vec<String>),
    /// Call this tool with these (substituted) arguments.
    Call(McpCall),
    /// The tool is still not available after a search for it.
    Missing(String),
    /// Answer with this text: `MCP said: <last result>` after the last
    /// step, or why the script cannot go on.
    Text(String),
}

impl McpScript {
    /// A script of one call of `tool` with the arguments a single-call tag
    /// gives: `echo` gets `{"text": echo}`, `add` `{"a": 2, "b": 3}`, any other `{}`.
    pub fn single(server: &str, tool: &str, echo: &str) -> McpScript {
        let arguments = match tool {
            "echo" => serde_json::json!({ "text": echo }),
            "add" => serde_json::json!({"a": 2, "b": 3}),
            _ => serde_json::json!({}),
        };
        McpScript { server: server.to_owned(), steps: vec![McpCall { tool: tool.to_owned(), arguments }] }
    }

    /// The steps of `[DIALECT:mcp-seq:SERVER]`, from the text after the tag:
    /// `TOOL {json arguments}` steps separated by `;;` (the arguments, a JSON
    /// object, may be left out for `{}`; a `;;` inside them is theirs).
    pub fn parse(server: &str, text: &str) -> Result<McpScript, String> {
        let mut steps = Vec::new();
        let mut rest = text.trim_start();
        loop {
            let k = steps.len() + 1;
            let end = rest.find(|c: char| c.is_whitespace() || c == '{' || c == ';').unwrap_or(rest.len());
            let tool = &rest[..end];
            if tool.is_empty() {
                return Err(format!("step {k} names no tool: {:?}", first_chars(rest, 80)));
            }
            rest = rest[end..].trim_start();
            let arguments = if rest.starts_with('{') {
                let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                let value = match values.next() {
                    Some(Ok(value)) => value,
                    Some(Err(e)) => return Err(format!("step {k} ({tool}): its arguments are not JSON: {e}")),
                    None => Value::Object(Default::default()),
                };
                rest = rest[values.byte_offset()..].trim_start();
                value
            } else {
                Value::Object(Default::default())
            };
            if !arguments.is_object() {
                return Err(format!("step {k} ({tool}): its arguments are not a JSON object: {arguments}"));
            }
            steps.push(McpCall { tool: tool.to_owned(), arguments });
            if rest.is_empty() {
                break;
            }
            let Some(next) = rest.strip_prefix(";;") else {
                return Err(format!("step {k} ({tool}): `;;` or the end expected, not {:?}", first_chars(rest, 80)));
            };
            rest = next.trim_start();
        }
        Ok(McpScript { server: server.to_owned(), steps })
    }

    /// The next move, once `progress.results.len()` calls have results:
    /// step k is taken after k-1 results, its arguments substituted from
    /// result k-1 ([`substitute`]); after the last: `MCP said: <result>`.
    pub fn next(&self, progress: &McpProgress) -> McpNext {
        let done = progress.results.len();
        let Some(step) = self.steps.get(done) else {
            let last = progress.results.last().map(|r| r.trim()).unwrap_or("");
            return McpNext::Text(format!("MCP said: {}", first_chars(last, MCP_SAID_CHARS)));
        };
        let previous = done.checked_sub(1).map(|i| (self.steps[i].tool.as_str(), progress.results[i].as_str()));
        let arguments = match substitute(&step.arguments, previous) {
            Ok(arguments) => arguments,
            Err(e) => return McpNext::Text(format!("MCP sequence stopped at step {} ({}): {e}", done + 1, step.tool)),
        };
        if (progress.available)(&step.tool) {
            return McpNext::Call(McpCall { tool: step.tool.clone(), arguments });
        }
        if (progress.searched)(&step.tool) {
            return McpNext::Missing(step.tool.clone());
        }
        let mut tools = vec![step.tool.clone()];
        for later in &self.steps[done + 1..] {
            if !tools.contains(&later.tool) && !(progress.available)(&later.tool) && !(progress.searched)(&later.tool) {
                tools.push(later.tool.clone());
            }
        }
        McpNext::Search(tools)
    }
}

/// `arguments` with every JSON string that is exactly `$NAME` replaced by
/// the top-level field `NAME` of `previous` = (tool, result text), the
/// result parsed as JSON. An error says why not: no previous result, a
/// result that is not a JSON object, or one without the field.
pub fn substitute(arguments: &Value, previous: Option<(&str, &str)>) -> Result<Value, String> {
    let mut parsed: Option<Value> = None;
    substitute_in(arguments, previous, &mut parsed)
}

/// `NAME` of a string `$NAME` (NAME: letters, digits, `_`, not starting with a digit).
fn placeholder(s: &str) -> Option<&str> {
    let name = s.strip_prefix('$')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    ((first.is_ascii_alphabetic() || first == '_') && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(name)
}

fn substitute_in(value: &Value, previous: Option<(&str, &str)>, parsed: &mut Option<Value>) -> Result<Value, String> {
    match value {
        Value::String(s) if placeholder(s).is_some() => {
            let name = placeholder(s).unwrap_or_default();
            let Some((tool, result)) = previous else {
                return Err(format!("no previous result to take ${name} from"));
            };
            if parsed.is_none() {
                match serde_json::from_str::<Value>(result.trim()) {
                    Ok(v @ Value::Object(_)) => *parsed = Some(v),
                    _ => {
                        return Err(format!(
                            "the result of {tool} is not a JSON object, so ${name} cannot be taken from it: {}",
                            first_chars(result.trim(), 300)
                        ))
                    }
                }
            }
            match parsed.as_ref().and_then(|p| p.get(name)) {
                Some(field) => Ok(field.clone()),
                None => Err(format!("the result of {tool} has no field {name}: {}", first_chars(result.trim(), 300))),
            }
        }
        Value::Array(items) => {
            items.iter().map(|v| substitute_in(v, previous, parsed)).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
        Value::Object(fields) => fields
            .iter()
            .map(|(k, v)| substitute_in(v, previous, parsed).map(|v| (k.clone(), v)))
            .collect::<Result<serde_json::Map<_, _>, _>>()
            .map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// The MCP script of a prompt whose tag (lowercase, as [`find_tag`] gives
/// it) starts with `mcp:` or `mcp-seq:`; `text` is the prompt and `open` the
/// dialect's tag opening. `None` for any other tag; an error for a
/// malformed one.
pub fn mcp_script(open: &str, tag: &str, text: &str, echo: &str) -> Option<Result<McpScript, String>> {
    if let Some(server) = tag.strip_prefix("mcp-seq:") {
        let after = find_tag(open, text).map(|(_, end, _)| &text[end..]).unwrap_or("");
        if server.is_empty() || server.contains(':') {
            return Some(Err(format!("Malformed tag {tag}: mcp-seq:SERVER expected")));
        }
        return Some(McpScript::parse(server, after).map_err(|e| format!("Malformed mcp-seq script: {e}")));
    }
    let rest = tag.strip_prefix("mcp:")?;
    Some(match rest.split_once(':') {
        Some((server, tool)) if !server.is_empty() && !tool.is_empty() => Ok(McpScript::single(server, tool, echo)),
        _ => Err(format!("Malformed tag {tag}")),
    })
}

/// `text` without its first `<open>TAG]` tag, trimmed, cut to 40
/// characters: what a script echoes of a prompt (`Scripted reply: <echo>`).
pub fn echo(open: &str, text: &str) -> String {
    let without = match find_tag(open, text) {
        Some((start, end, _)) => format!("{}{}", &text[..start], &text[end..]),
        None => text.to_owned(),
    };
    first_chars(without.trim(), 40).trim().to_owned()
}

// ---- for the models' own tests and the recorders of the real CLIs -----------

/// Where an ignored `record_*_transcripts` test writes a real CLI's
/// transcripts: `out_dir` (the agent's `testdata`, read by the server's
/// converter tests) and `side_dir` (`$TMPDIR/tether-<agent>-recordings`:
/// model requests and logs, for a human to read), both created.
#[cfg(test)]
pub(crate) struct Recording {
    pub out_dir: std::path::PathBuf,
    pub side_dir: std::path::PathBuf,
    /// `TETHER_RECORD_ONLY=a,b`: record only those cases.
    only: Option<String>,
}

#[cfg(test)]
impl Recording {
    /// The recording of `agent` (its folder under `server/src/agents`).
    pub fn new(agent: &str) -> Recording {
        let out_dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../server/src/agents/{agent}/testdata"));
        let side_dir = std::env::temp_dir().join(format!("tether-{agent}-recordings"));
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::create_dir_all(&side_dir).unwrap();
        Recording { out_dir, side_dir, only: std::env::var("TETHER_RECORD_ONLY").ok() }
    }

    /// Whether the case `name` is to be recorded.
    pub fn wanted(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o.split(',').any(|n| n == name))
    }

    /// Writes every request `server` received to `<side_dir>/<name>.requests.json`.
    pub fn save_requests(&self, name: &str, server: &impl std::ops::Deref<Target = ScriptedServer>) {
        let all: Vec<Value> = server
            .all_requests()
            .into_iter()
            .map(|r| serde_json::json!({"method": r.method, "uri": r.uri, "body": r.body}))
            .collect();
        let path = self.side_dir.join(format!("{name}.requests.json"));
        std::fs::write(path, serde_json::to_string_pretty(&all).unwrap()).unwrap();
    }
}

/// The `data:` objects of an SSE body, without a closing `[DONE]`.
#[cfg(test)]
pub(crate) fn sse_data(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// A Chat Completions stream's deltas of `field` (`content`, `reasoning_content`), joined.
#[cfg(test)]
pub(crate) fn chat_deltas(chunks: &[Value], field: &str) -> String {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"][field].as_str()).collect()
}

/// `lines`, each ended by a newline (a JSONL file).
#[cfg(test)]
pub(crate) fn jsonl(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// `POST url` with the JSON text `body`: (status, content type, body text).
#[cfg(test)]
pub(crate) async fn post_json(url: &str, body: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// Checks `server` answers a `CONNECT authority` with 403 and records it.
#[cfg(test)]
pub(crate) async fn assert_refuses_connect(server: &impl std::ops::Deref<Target = ScriptedServer>, authority: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256];
    let n = tcp.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let all = server.all_requests();
    assert_eq!((all[0].method.as_str(), all[0].uri.as_str()), ("CONNECT", authority));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(tool: &str, arguments: Value) -> McpCall {
        McpCall { tool: tool.into(), arguments }
    }

    #[test]
    fn mcp_seq_steps_parse() {
        let text = r#" create_session {"agent":"mock","prompt":"a ;; b"} ;; wait_for_turn {"session_id":"$session_id","timeout_s":60};;list_agents"#;
        let script = McpScript::parse("tether", text).unwrap();
        assert_eq!(script.server, "tether");
        assert_eq!(
            script.steps,
            [
                call("create_session", json!({"agent": "mock", "prompt": "a ;; b"})),
                call("wait_for_turn", json!({"session_id": "$session_id", "timeout_s": 60})),
                call("list_agents", json!({})),
            ]
        );
        assert_eq!(McpScript::parse("s", "echo").unwrap().steps, [call("echo", json!({}))]);
        for (bad, why) in [
            ("", "names no tool"),
            ("echo {\"text\": ", "not JSON"),
            ("echo [1]", "`;;` or the end expected"),
            ("echo {} ;; ", "step 2 names no tool"),
            ("echo {} add {}", "`;;` or the end expected"),
        ] {
            let e = McpScript::parse("s", bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let single = McpScript::single("tt", "echo", "hi");
        assert_eq!(single.steps, [call("echo", json!({"text": "hi"}))]);
    }

    #[test]
    fn mcp_scripts_come_from_tags() {
        let text = "[claude:mcp-seq:Tether] mint {} ;; echo {\"text\": \"$token\"}";
        let (_, _, tag) = find_tag("[claude:", text).unwrap();
        let script = mcp_script("[claude:", &tag, text, "").unwrap().unwrap();
        assert_eq!((script.server.as_str(), script.steps.len()), ("tether", 2));
        assert_eq!(script.steps[1], call("echo", json!({"text": "$token"})));
        let script = mcp_script("[codex:", "mcp:tt:add", "[codex:mcp:tt:add]", "").unwrap().unwrap();
        assert_eq!(script.steps, [call("add", json!({"a": 2, "b": 3}))]);
        assert!(mcp_script("[codex:", "shell", "[codex:shell]", "").is_none());
        assert!(mcp_script("[codex:", "mcp:tt", "[codex:mcp:tt]", "").unwrap().is_err());
        assert!(mcp_script("[codex:", "mcp-seq:", "[codex:mcp-seq:] echo", "").unwrap().is_err());
    }

    #[test]
    fn placeholders_take_fields_of_the_previous_result() {
        let args =
            json!({"session_id": "$session_id", "deep": ["$n", {"x": "$session_id"}], "keep": "$ x", "money": "$5"});
        let got = substitute(&args, Some(("create_session", r#" {"session_id": "ses_1", "n": 3} "#))).unwrap();
        assert_eq!(got, json!({"session_id": "ses_1", "deep": [3, {"x": "ses_1"}], "keep": "$ x", "money": "$5"}));
        // Nothing to substitute: the previous result need not be JSON.
        assert_eq!(substitute(&json!({"a": 1}), Some(("t", "plain"))).unwrap(), json!({"a": 1}));
        assert_eq!(substitute(&json!({"a": "$x"}), None).unwrap_err(), "no previous result to take $x from");
        let e = substitute(&json!({"a": "$x"}), Some(("echo", "echo: hi"))).unwrap_err();
        assert_eq!(e, "the result of echo is not a JSON object, so $x cannot be taken from it: echo: hi");
        let e = substitute(&json!({"a": "$x"}), Some(("mint", r#"{"token": "t"}"#))).unwrap_err();
        assert_eq!(e, r#"the result of mint has no field x: {"token": "t"}"#);
    }

    #[test]
    fn steps_follow_the_results() {
        let script = McpScript::parse("tt", r#"mint ;; echo {"text": "$token"} ;; add {"a": 1, "b": 2}"#).unwrap();
        let offered = |tools: &'static [&'static str]| move |t: &str| tools.contains(&t);
        let progress = |results: &[&str], available: &'static [&'static str], searched: &'static [&'static str]| {
            let next = script.next(&McpProgress {
                results: results.iter().map(|r| r.to_string()).collect(),
                available: &offered(available),
                searched: &offered(searched),
            });
            next
        };
        // Nothing offered: search for every tool still missing, the next step's first.
        assert_eq!(progress(&[], &[], &[]), McpNext::Search(vec!["mint".into(), "echo".into(), "add".into()]));
        assert_eq!(progress(&[], &["add"], &[]), McpNext::Search(vec!["mint".into(), "echo".into()]));
        assert_eq!(progress(&[], &[], &["mint"]), McpNext::Missing("mint".into()));
        let all: &'static [&'static str] = &["mint", "echo", "add"];
        assert_eq!(progress(&[], all, &[]), McpNext::Call(call("mint", json!({}))));
        let minted = r#"{"token":"tok-1"}"#;
        assert_eq!(progress(&[minted], all, &[]), McpNext::Call(call("echo", json!({"text": "tok-1"}))));
        // A later step's tool not loaded by the first search is searched for then.
        assert_eq!(progress(&[minted], &["mint"], &["mint"]), McpNext::Search(vec!["echo".into(), "add".into()]));
        assert_eq!(progress(&[minted, "echo: tok-1"], all, &[]), McpNext::Call(call("add", json!({"a": 1, "b": 2}))));
        assert_eq!(progress(&[minted, "echo: tok-1", " 3\n"], all, &[]), McpNext::Text("MCP said: 3".into()));
        // A result the next step cannot take its field from: say so, call nothing.
        let McpNext::Text(text) = progress(&["oops"], all, &[]) else { panic!("a text expected") };
        assert!(
            text.starts_with("MCP sequence stopped at step 2 (echo): the result of mint is not a JSON object"),
            "{text}"
        );
        // The closing text keeps up to MCP_SAID_CHARS of the last result.
        let long = "x".repeat(MCP_SAID_CHARS + 10);
        let McpNext::Text(text) = progress(&[minted, "e", &long], all, &[]) else { panic!("a text expected") };
        assert_eq!(text.len(), "MCP said: ".len() + MCP_SAID_CHARS);
    }
}
