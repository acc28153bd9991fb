//! The test MCP server, written with `rmcp`'s server side: the tools `echo`,
//! `add`, `whoami` and `mint` (a JSON result, as text and structured
//! content, with a value no script can guess), served over stdio (the `mcp-test-server` binary) or
//! streamable HTTP (the binary with `--http`, or [`McpHttpServer`] in the
//! test's own runtime). Every tool call is appended as one JSON line
//! `{"label","tool","arguments","result"}` to a log file before the result is
//! returned, so a test can prove that an agent really called a tool, with
//! which arguments, and on which server ([`McpLog`]).
//!
//! It holds no tether logic: it is the far end that tether and the agents
//! connect to.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ServerCapabilities, ServerConfig};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{tool, tool_handler, tool_router, ErrorData, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// The environment variable whose value `whoami` reports.
pub const SECRET_ENV: &str = "MCP_TEST_SECRET";

/// The `mcp-test-server` executable, built by cargo next to the test
/// executable (`<target>/<profile>/mcp-test-server`, the test being
/// `<target>/<profile>/deps/all-*`) before the integration tests run.
pub fn mcp_test_server_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe.parent().expect("the test executable's folder");
    let profile_dir = if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().unwrap_or(dir) } else { dir };
    let bin = profile_dir.join("mcp-test-server");
    assert!(
        bin.is_file(),
        "{} is missing: it is a [[bin]] of tether-e2e, built by `cargo test -p tether-e2e` \
         (or `cargo build -p tether-e2e --bin mcp-test-server`)",
        bin.display()
    );
    bin
}

/// The tools. `label` names this instance in its answers and in the log.
#[derive(Clone)]
pub struct TestTools {
    label: Arc<str>,
    log: Arc<Path>,
    /// Lines are written whole, one call at a time.
    log_lock: Arc<Mutex<()>>,
    tool_router: ToolRouter<Self>,
}

/// The arguments of `echo`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to echo back.
    pub text: String,
}

/// The arguments of `add`.
#[derive(Debug, Deserialize, rmcp::schemars::JsonSchema)]
pub struct AddArgs {
    /// The first integer.
    pub a: i64,
    /// The second integer.
    pub b: i64,
}

#[tool_router]
impl TestTools {
    pub fn new(label: &str, log: impl Into<PathBuf>) -> TestTools {
        TestTools {
            label: label.into(),
            log: log.into().into(),
            log_lock: Arc::new(Mutex::new(())),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Echoes the given text back, prefixed with `echo: `.")]
    async fn echo(&self, Parameters(args): Parameters<EchoArgs>) -> Result<String, ErrorData> {
        let result = format!("echo: {}", args.text);
        self.logged("echo", json!({ "text": args.text }), result)
    }

    #[tool(description = "Adds two integers and answers their sum.")]
    async fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> Result<String, ErrorData> {
        let sum = a.checked_add(b).ok_or_else(|| ErrorData::invalid_params("the sum overflows", None))?;
        self.logged("add", json!({ "a": a, "b": b }), sum.to_string())
    }

    #[tool(
        description = "Answers this server's label, its working directory and the value of MCP_TEST_SECRET, as JSON."
    )]
    async fn whoami(&self) -> Result<String, ErrorData> {
        let cwd = std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default();
        let secret = std::env::var(SECRET_ENV).ok();
        let result = json!({ "label": &*self.label, "cwd": cwd, "secret": secret }).to_string();
        self.logged("whoami", json!({}), result)
    }

    #[tool(
        description = "Mints a fresh token and answers {\"token\": \"tok-...\"}, as JSON text and as structured content."
    )]
    async fn mint(&self) -> Result<CallToolResult, ErrorData> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let token = format!("tok-{}-{:x}{nanos:08x}{n}", self.label, std::process::id());
        let result = json!({ "token": token });
        self.logged("mint", json!({}), result.to_string())?;
        Ok(CallToolResult::structured(result))
    }
}

impl TestTools {
    /// Appends the call to the log (written and flushed) and hands back the result.
    fn logged(&self, tool: &str, arguments: Value, result: String) -> Result<String, ErrorData> {
        let mut line =
            json!({ "label": &*self.label, "tool": tool, "arguments": arguments, "result": result }).to_string();
        line.push('\n');
        let _guard = self.log_lock.lock().unwrap_or_else(|e| e.into_inner());
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .and_then(|mut f| f.write_all(line.as_bytes()).and_then(|_| f.flush()))
            .map_err(|e| ErrorData::internal_error(format!("cannot write {}: {e}", self.log.display()), None))?;
        Ok(result)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for TestTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("tether's test MCP server: echo, add, whoami, mint")
    }
}

/// Serves the tools over this process's stdin and stdout until the client goes away.
pub async fn serve_stdio(tools: TestTools) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let running = tools.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}

/// An axum router serving the tools at `/mcp` (streamable HTTP); with
/// `require_header` (name, value), a request without it is answered 401.
pub fn http_router(
    tools: TestTools,
    require_header: Option<(String, String)>,
    cancel: CancellationToken,
) -> axum::Router {
    // No SSE priming event (an empty `data:`): Gemini CLI's MCP client cannot parse it.
    let config = StreamableHttpServerConfig::default().with_cancellation_token(cancel).with_sse_retry(None);
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.sse_retry = None;
    let service: StreamableHttpService<TestTools, LocalSessionManager> =
        StreamableHttpService::new(move || Ok(tools.clone()), std::sync::Arc::new(sessions), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    match require_header {
        None => router,
        Some((name, value)) => {
            let required = Arc::new((name, value));
            router.layer(axum::middleware::from_fn(move |req: Request, next: Next| {
                let required = required.clone();
                async move {
                    let (name, value) = &*required;
                    if req.headers().get(name.as_str()).and_then(|v| v.to_str().ok()) == Some(value.as_str()) {
                        next.run(req).await
                    } else {
                        missing_header(name)
                    }
                }
            }))
        }
    }
}

fn missing_header(name: &str) -> Response {
    (StatusCode::UNAUTHORIZED, format!("header {name} missing or wrong")).into_response()
}

/// The test MCP server over streamable HTTP on 127.0.0.1:0, in the current
/// tokio runtime; stops when dropped.
pub struct McpHttpServer {
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl McpHttpServer {
    /// Starts it (needs a tokio runtime). Calls are logged to `log`.
    pub fn start(label: &str, log: impl Into<PathBuf>) -> McpHttpServer {
        McpHttpServer::start_with(label, log, None)
    }

    /// As [`McpHttpServer::start`], answering 401 to any request without the header `name: value`.
    pub fn start_requiring(label: &str, log: impl Into<PathBuf>, name: &str, value: &str) -> McpHttpServer {
        McpHttpServer::start_with(label, log, Some((name.into(), value.into())))
    }

    fn start_with(label: &str, log: impl Into<PathBuf>, require_header: Option<(String, String)>) -> McpHttpServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = std_listener.local_addr().expect("the bound address");
        let listener = tokio::net::TcpListener::from_std(std_listener).expect("a tokio runtime");
        let cancel = CancellationToken::new();
        let router = http_router(TestTools::new(label, log), require_header, cancel.child_token());
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await;
        });
        McpHttpServer { addr, cancel }
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }
}

impl Drop for McpHttpServer {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The call log of one or more test servers (one JSON object a line).
#[derive(Debug, Clone)]
pub struct McpLog {
    path: PathBuf,
}

impl McpLog {
    pub fn new(path: impl Into<PathBuf>) -> McpLog {
        McpLog { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every call logged so far, in order (none when the file does not exist yet).
    pub fn calls(&self) -> Vec<Value> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", self.path.display()),
        };
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad log line {l:?}: {e}")))
            .collect()
    }

    /// The calls of `tool`.
    pub fn calls_of(&self, tool: &str) -> Vec<Value> {
        self.calls().into_iter().filter(|c| c["tool"] == tool).collect()
    }

    /// Waits (polling every 20 ms, up to `timeout`) until at least `n` calls
    /// are logged; panics with what is there otherwise.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let calls = self.calls();
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "{} MCP call(s) logged within {timeout:?}, wanted {n}: {calls:#?}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The variable tether tags every probed stdio MCP server with.
pub const PROBE_ENV: &str = "TETHER_MCP_PROBE";

/// Pids of live processes tagged `TETHER_MCP_PROBE=…` whose environment also
/// holds `marker` (`K=V`, e.g. set through the server's `env`, so parallel
/// tests do not see each other's probes).
pub fn probe_processes(marker: &str) -> Vec<i32> {
    let tag = format!("{PROBE_ENV}=");
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<i32> = dir
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let mut vars = environ.split(|&b| b == 0);
            let (mut tagged, mut marked) = (false, false);
            for kv in &mut vars {
                tagged |= kv.starts_with(tag.as_bytes());
                marked |= kv == marker.as_bytes();
            }
            (tagged && marked).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Waits (polling every 20 ms, up to `timeout`) until no probe process
/// carrying `marker` is left; panics naming the survivors.
pub async fn wait_no_probe_processes(marker: &str, timeout: Duration) {
    crate::procs::wait_none(&format!("MCP probe processes ({marker})"), timeout, || probe_processes(marker)).await
}

/// Waits (polling every 20 ms, up to `timeout`) until a probe process carrying `marker` runs.
pub async fn wait_some_probe_process(marker: &str, timeout: Duration) -> Vec<i32> {
    crate::procs::wait_some(&format!("MCP probe process ({marker})"), timeout, || probe_processes(marker)).await
}
