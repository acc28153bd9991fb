//! Probing an MCP server: connect with `rmcp`'s client (a stdio child, or
//! streamable HTTP), initialize, list every page of tools, disconnect.
//!
//! Bounded and clean: the whole probe has a deadline, and a stdio server
//! runs in its own process group (tagged `TETHER_MCP_PROBE=<id>`) that is
//! ended (SIGTERM, then SIGKILL after a short grace) when the probe ends,
//! however it ends — including when its future is dropped mid-way. A server
//! that cannot start, exits, hangs or prints something other than JSON-RPC
//! yields a [`ProbeError`] saying so.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::ServiceExt;
use serde_json::Value;
use tether_protocol::{McpServer, McpTool};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::process::signal_group;

/// Tags the environment of every probed stdio server (and its descendants).
pub const PROBE_ENV: &str = "TETHER_MCP_PROBE";

/// How long a probe may take, unless the caller says otherwise.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Between SIGTERM and SIGKILL when a probed server is ended.
const KILL_GRACE: Duration = Duration::from_millis(300);

/// Bytes of the server's stderr kept for the error message.
const STDERR_TAIL: usize = 2048;

/// This many non-JSON-RPC lines on stdout before any JSON-RPC: it does not speak MCP.
const GARBAGE_LINES: usize = 3;

/// The longest stdout line examined whole before the server has said anything valid.
const MAX_LINE: u64 = 16 * 1024 * 1024;

/// Why a server could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("could not start `{command}`: {reason}")]
    Spawn { command: String, reason: String },
    #[error("exited before answering ({status}){}", tail_suffix(.stderr_tail))]
    Exited { status: String, stderr_tail: String },
    #[error("did not answer within {}", seconds(*.0))]
    Timeout(Duration),
    #[error("did not speak MCP: {0}")]
    Protocol(String),
    /// The HTTP exchange failed: not reachable, or answered with an error status.
    #[error("failed at {url}: {detail}")]
    Http { url: String, detail: String },
}

impl ProbeError {
    /// The server did not answer in time (as opposed to answering wrongly or not at all).
    pub fn is_timeout(&self) -> bool {
        matches!(self, ProbeError::Timeout(_))
    }
}

fn tail_suffix(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// `10 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Connects to `server`, initializes, lists all its tools and disconnects,
/// all within `timeout`. A stdio server runs in `cwd` resolved against
/// `workspace` (the workspace itself when unset), with its `env` added to
/// this server's environment.
pub async fn probe(server: &McpServer, workspace: &Path, timeout: Duration) -> Result<Vec<McpTool>, ProbeError> {
    let started = Instant::now();
    let result = match server {
        McpServer::Stdio { command, args, env, cwd } => {
            let cwd = cwd.as_deref().map_or_else(|| workspace.to_path_buf(), |c| workspace.join(c));
            probe_stdio(command, args, env, &cwd, timeout).await
        }
        McpServer::Http { url, headers } => probe_http(url, headers, timeout).await,
    };
    match &result {
        Ok(tools) => tracing::debug!(tools = tools.len(), ms = started.elapsed().as_millis() as u64, "MCP probe"),
        Err(e) => tracing::debug!(error = %e, ms = started.elapsed().as_millis() as u64, "MCP probe failed"),
    }
    result
}

fn to_api(tool: rmcp::model::Tool) -> McpTool {
    McpTool {
        name: tool.name.into_owned(),
        description: tool.description.map(|d| d.into_owned()),
        input_schema: Value::Object((*tool.input_schema).clone()),
    }
}

/// An I/O error without its `(os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Ends a process group when dropped: SIGTERM now, SIGKILL after the grace.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let pgid = self.0;
        if !signal_group(pgid, libc::SIGTERM) {
            return;
        }
        let reaper = move || {
            let deadline = Instant::now() + KILL_GRACE;
            while Instant::now() < deadline && signal_group(pgid, 0) {
                std::thread::sleep(Duration::from_millis(10));
            }
            signal_group(pgid, libc::SIGKILL);
        };
        if std::thread::Builder::new().name("mcp-probe-reap".into()).spawn(reaper).is_err() {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// Aborts a helper task when the probe ends.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the server's stdout looked like before it said anything valid.
#[derive(Default)]
struct Tap {
    /// A JSON-RPC message was seen: from then on bytes pass unexamined.
    spoke: AtomicBool,
    garbage_lines: AtomicUsize,
    first_garbage: Mutex<Option<String>>,
    too_much_garbage: Notify,
}

impl Tap {
    fn examine(&self, line: &[u8]) {
        let text = line.trim_ascii();
        if text.is_empty() {
            return;
        }
        if matches!(serde_json::from_slice::<Value>(text), Ok(Value::Object(m)) if m.contains_key("jsonrpc")) {
            self.spoke.store(true, Ordering::Relaxed);
            return;
        }
        if let Ok(mut first) = self.first_garbage.lock() {
            if first.is_none() {
                let shown: String = String::from_utf8_lossy(text).chars().take(160).collect();
                *first = Some(shown);
            }
        }
        if self.garbage_lines.fetch_add(1, Ordering::Relaxed) + 1 >= GARBAGE_LINES {
            self.too_much_garbage.notify_one();
        }
    }

    /// The first non-JSON-RPC line, if the server never said anything valid.
    fn garbage(&self) -> Option<String> {
        if self.spoke.load(Ordering::Relaxed) {
            return None;
        }
        self.first_garbage.lock().ok().and_then(|g| g.clone())
    }
}

/// Copies the server's stdout to the MCP client, examining lines until the first JSON-RPC message.
async fn pump(stdout: impl AsyncRead + Unpin, mut out: tokio::io::DuplexStream, tap: Arc<Tap>) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        if tap.spoke.load(Ordering::Relaxed) {
            let _ = tokio::io::copy_buf(&mut reader, &mut out).await;
            return;
        }
        line.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        tap.examine(&line);
        if out.write_all(&line).await.is_err() {
            return;
        }
    }
}

/// Keeps the last bytes of the server's stderr.
async fn keep_tail(mut stderr: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            return;
        }
        if let Ok(mut t) = tail.lock() {
            t.extend_from_slice(&buf[..n]);
            if t.len() > STDERR_TAIL {
                let cut = t.len() - STDERR_TAIL;
                t.drain(..cut);
            }
        }
    }
}

fn status_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "exit status unknown".into(),
    }
}

/// How the MCP conversation itself ended, before the process is looked at.
enum Failure {
    Rmcp(String),
    Garbage,
}

async fn probe_stdio(
    command: &str,
    args: &[String],
    env: &std::collections::BTreeMap<String, String>,
    cwd: &Path,
    timeout: Duration,
) -> Result<Vec<McpTool>, ProbeError> {
    if !cwd.is_dir() {
        return Err(ProbeError::Spawn {
            command: command.to_string(),
            reason: format!("its cwd {} is not a directory", cwd.display()),
        });
    }
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args)
        .envs(env)
        .env(PROBE_ENV, crate::ids::new_id("mcp"))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child =
        cmd.spawn().map_err(|e| ProbeError::Spawn { command: command.to_string(), reason: io_reason(&e) })?;
    let _group = child.id().map(|pid| GroupGuard(pid as i32));
    let (Some(stdin), Some(stdout), Some(stderr)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(ProbeError::Spawn { command: command.to_string(), reason: "its stdio is not piped".into() });
    };

    let tail = Arc::new(Mutex::new(Vec::new()));
    let stderr_task = AbortOnDrop(tokio::spawn(keep_tail(stderr, tail.clone())));
    let tap = Arc::new(Tap::default());
    let (to_client, from_server) = tokio::io::duplex(64 * 1024);
    let _pump = AbortOnDrop(tokio::spawn(pump(stdout, to_client, tap.clone())));
    let (client_read, _unused) = tokio::io::split(from_server);

    let conversation = async {
        let client = ().serve((client_read, stdin)).await.map_err(|e| Failure::Rmcp(e.to_string()))?;
        let tools = client.list_all_tools().await.map_err(|e| Failure::Rmcp(e.to_string()))?;
        let _ = client.cancel().await;
        Ok(tools)
    };
    let watched = async {
        tokio::select! {
            r = conversation => r,
            _ = tap.too_much_garbage.notified() => Err(Failure::Garbage),
        }
    };
    let failure = match tokio::time::timeout(timeout, watched).await {
        Ok(Ok(tools)) => return Ok(tools.into_iter().map(to_api).collect()),
        Ok(Err(failure)) => failure,
        Err(_) => {
            return Err(match tap.garbage() {
                Some(line) => not_json_rpc(&line),
                None => ProbeError::Timeout(timeout),
            })
        }
    };
    // The conversation broke: did the server exit?
    if let Ok(Ok(status)) = tokio::time::timeout(Duration::from_millis(500), child.wait()).await {
        let mut stderr_task = stderr_task;
        let _ = tokio::time::timeout(Duration::from_millis(200), &mut stderr_task.0).await;
        let stderr_tail = tail.lock().map(|t| String::from_utf8_lossy(&t).trim().to_string()).unwrap_or_default();
        return Err(ProbeError::Exited { status: status_text(status), stderr_tail });
    }
    Err(match (tap.garbage(), failure) {
        (Some(line), _) => not_json_rpc(&line),
        (None, Failure::Rmcp(detail)) => ProbeError::Protocol(detail),
        (None, Failure::Garbage) => ProbeError::Protocol("its stdout is not JSON-RPC".into()),
    })
}

fn not_json_rpc(line: &str) -> ProbeError {
    ProbeError::Protocol(format!("its stdout is not JSON-RPC, e.g. {line:?}"))
}

/// `url` without its query and fragment (they may carry credentials).
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "the server's url".into(),
    }
}

/// An error and its sources, `: `-joined, with the URL replaced by [`shown_url`].
fn chain(e: &(dyn std::error::Error + 'static), url: &str) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    let shown = shown_url(url);
    let mut text = parts.join(": ").replace(url, &shown);
    if let Ok(normalized) = reqwest::Url::parse(url) {
        text = text.replace(normalized.as_str(), &shown);
    }
    text
}

async fn probe_http(
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    timeout: Duration,
) -> Result<Vec<McpTool>, ProbeError> {
    if url.starts_with("https://") {
        // This build links no TLS stack; the agents reach https servers themselves.
        return Err(ProbeError::Http {
            url: shown_url(url),
            detail: "this build of tether cannot list the tools of an https:// server (it has no TLS client); \
                     sessions still get the server, their agents connect to it themselves"
                .into(),
        });
    }
    let mut custom = HashMap::new();
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ProbeError::Protocol(format!("{name:?} is not a valid HTTP header name")))?;
        let mut value = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| ProbeError::Protocol(format!("the value of header {name:?} is not valid")))?;
        value.set_sensitive(true);
        custom.insert(name, value);
    }
    let http = tether_sdk::http_client(|| {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).connect_timeout(timeout)
    })
    .map_err(|e| ProbeError::Http { url: shown_url(url), detail: e.to_string() })?;
    let config = StreamableHttpClientTransportConfig::with_uri(url).custom_headers(custom);
    let transport = StreamableHttpClientTransport::with_client(http, config);
    let conversation = async {
        let client = ().serve(transport).await.map_err(|e| match &e {
            // The transport's own error, without rmcp's wrapper naming Rust types.
            rmcp::service::ClientInitializeError::TransportError { error, .. } => {
                use rmcp::transport::streamable_http_client::StreamableHttpError;
                // A client error does not list reqwest's error as its source: walk that one.
                let detail = match error.error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
                    Some(StreamableHttpError::Client(inner)) => chain(inner, url),
                    _ => chain(&*error.error, url),
                };
                ProbeError::Http { url: shown_url(url), detail }
            }
            _ => ProbeError::Protocol(chain(&e, url)),
        })?;
        let tools = client.list_all_tools().await.map_err(|e| ProbeError::Protocol(chain(&e, url)))?;
        let _ = client.cancel().await;
        Ok(tools)
    };
    match tokio::time::timeout(timeout, conversation).await {
        Ok(Ok(tools)) => Ok(tools.into_iter().map(to_api).collect()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ProbeError::Timeout(timeout)),
    }
}
