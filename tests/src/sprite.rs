//! A fake of the in-Sprite API (`/.sprite/api.sock`): HTTP over a Unix
//! socket at a path of the test's, with the services, tasks and info routes
//! answering as the platform does (shared/platform/SPRITES.md, and the
//! sources it cites: superfly/sprites-go `services.go`/`types.go`, Fly's
//! in-Sprite code, live reports). It records every call, and it runs
//! services for real: a PUT or a start spawns the service's command (its own
//! process group, output in a log file), a stop ends it. Where the platform
//! is unkind, so is the fake:
//! - a PUT over an existing name answers 200 "already running" and keeps the
//!   old definition, whatever the new one says;
//! - a second service with an `http_port` gets 409;
//! - `args`, `needs`, `env`, `dir` and `http_port` read back as `null` when
//!   unset;
//! - a service stopped on purpose shows as `failed` (`exited with code 143`);
//! - DELETE answers 204, and 409 while the service runs;
//! - a service that dies while starting streams its output, `exit`, and then
//!   `started` again (the runtime restarts crashed services);
//! - tasks read back as `{name, started_at, expires_at}` timestamps, DELETE 204.
//!
//! Tasks expire on the clock like the platform's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tempfile::TempDir;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: Option<String>,
    pub body: Option<Value>,
}

impl Call {
    /// `"PUT /v1/tasks/x"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

struct Service {
    /// The definition of the first PUT: later ones do not change it.
    def: Value,
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    started_at: Option<String>,
    restart_count: u32,
    /// Stopped through the API: shows as `failed`, "exited with code 143".
    stopped: bool,
}

struct Task {
    started_at: Instant,
    started_wall: std::time::SystemTime,
    expires_at: Instant,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    services: BTreeMap<String, Service>,
    tasks: BTreeMap<String, Task>,
}

type Shared = Arc<(Mutex<Inner>, PathBuf)>;

/// A running fake; dropping it stops its services.
pub struct FakeSprite {
    socket: PathBuf,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

/// The URL `GET /info` names.
pub const FAKE_SPRITE_URL: &str = "https://fake-sprite-org.sprites.app";

impl FakeSprite {
    pub async fn start() -> FakeSprite {
        let dir =
            tempfile::Builder::new().prefix("tether-fake-sprite-").tempdir().expect("create a temporary directory");
        let socket = dir.path().join("api.sock");
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).expect("create the log dir");
        let shared: Shared = Arc::new((Mutex::new(Inner::default()), logs));
        let app = Router::new()
            .route("/info", get(info))
            .route("/v1/services", get(list_services))
            .route("/v1/services/{name}", get(get_service).put(put_service).delete(delete_service))
            .route("/v1/services/{name}/{action}", axum::routing::post(service_action))
            .route("/v1/tasks", get(list_tasks).post(post_task))
            .route("/v1/tasks/{name}", get(get_task).put(put_task).delete(delete_task))
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such route") })
            .layer(axum::middleware::from_fn_with_state(shared.clone(), record))
            .with_state(shared.clone());
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind the fake Sprite API socket");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSprite { socket, shared, server, _dir: dir }
    }

    /// The socket's path (`--sprite-socket`, `--socket`, `TETHER_SPRITE_SOCKET`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.0.lock().expect("fake state").calls.clone()
    }

    /// Calls so far as `"METHOD /path"` lines.
    pub fn call_lines(&self) -> Vec<String> {
        self.calls().iter().map(Call::line).collect()
    }

    /// Names of the tasks that exist and have not expired.
    pub fn live_tasks(&self) -> Vec<String> {
        let now = Instant::now();
        let inner = self.shared.0.lock().expect("fake state");
        inner.tasks.iter().filter(|(_, t)| t.expires_at > now).map(|(n, _)| n.clone()).collect()
    }

    /// The registered definition of a service, if any.
    pub fn service(&self, name: &str) -> Option<Value> {
        self.shared.0.lock().expect("fake state").services.get(name).map(|s| s.def.clone())
    }

    /// Puts a task in place as a previous run would have left it.
    pub fn plant_task(&self, name: &str, expire: Duration) {
        let now = Instant::now();
        self.shared.0.lock().expect("fake state").tasks.insert(
            name.into(),
            Task { started_at: now, started_wall: std::time::SystemTime::now(), expires_at: now + expire },
        );
    }

    /// Writes the network policy the platform mounts read-only beside the
    /// socket (`/.sprite/policy/network.json`; sprites-go `NetworkPolicy`).
    pub fn write_network_policy(&self, policy: &str) {
        let dir = self.socket.parent().expect("the socket's dir").join("policy");
        std::fs::create_dir_all(&dir).expect("create the policy dir");
        std::fs::write(dir.join("network.json"), policy).expect("write the network policy");
    }

    /// Stops every service that runs, as a checkpoint restore does (it
    /// restarts the environment like a cold boot); answers their names.
    pub async fn stop_all(&self) -> Vec<String> {
        let names: Vec<String> = self.shared.0.lock().expect("fake state").services.keys().cloned().collect();
        for name in &names {
            self.stop_service(name).await;
        }
        names
    }

    /// Starts a registered service, as a cold boot does (not recorded as a call).
    pub async fn start_service(&self, name: &str) {
        let _ = start(&self.shared, name).await;
    }

    /// Registers a service without running it, as another program would have.
    pub fn plant_service(&self, name: &str, def: Value) {
        let service = Service { def, child: None, pid: None, started_at: None, restart_count: 0, stopped: false };
        self.shared.0.lock().expect("fake state").services.insert(name.into(), service);
    }

    /// Stops a service as `sprite-env services stop` would (not recorded as a call).
    pub async fn stop_service(&self, name: &str) {
        let taken = {
            let mut inner = self.shared.0.lock().expect("fake state");
            inner.services.get_mut(name).map(|s| (s.child.take(), s.pid.take()))
        };
        let Some((child, pid)) = taken else { return };
        stop_process(child, pid).await;
        if let Some(s) = self.shared.0.lock().expect("fake state").services.get_mut(name) {
            s.stopped = true;
        }
    }

    /// Waits until `cond` holds of the calls so far; panics with them after `timeout`.
    pub async fn wait_for_calls(&self, what: &str, timeout: Duration, cond: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = Instant::now() + timeout;
        loop {
            let calls = self.calls();
            if cond(&calls) {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not seen within {timeout:?}; calls: {:#?}",
                calls.iter().map(Call::line).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log file of a service the fake ran.
    pub fn service_log(&self, name: &str) -> PathBuf {
        self.shared.1.join(format!("{name}.log"))
    }
}

impl Drop for FakeSprite {
    fn drop(&mut self) {
        self.server.abort();
        if let Ok(mut inner) = self.shared.0.lock() {
            for s in inner.services.values_mut() {
                stop_group(s);
            }
        }
    }
}

/// SIGKILL to the service's process group (the wrapper and the server it execs).
fn stop_group(s: &mut Service) {
    if let Some(pid) = s.pid.take() {
        // A negative pid names the process group.
        unsafe_kill(-(pid as i32), libc::SIGKILL);
    }
    if let Some(mut child) = s.child.take() {
        let _ = child.start_kill();
    }
}

#[allow(unsafe_code)]
fn unsafe_kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects.
    unsafe {
        libc::kill(pid, sig);
    }
}

async fn record(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    let body_json = serde_json::from_slice::<Value>(&bytes).ok();
    if let Ok(mut inner) = shared.0.lock() {
        inner.calls.push(Call {
            method: method.to_string(),
            path: uri.path().to_string(),
            query: uri.query().map(str::to_string),
            body: body_json,
        });
    }
    next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await
}

async fn info() -> Json<Value> {
    Json(json!({
        "sprite_id": "spr_fake0001",
        "sprite_name": "fake-sprite",
        "sprite_url": FAKE_SPRITE_URL,
        "version": "fake",
        "org": "org"
    }))
}

/// `null` for an unset or empty field, as the platform answers.
fn or_null(v: &Value) -> Value {
    match v {
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::Object(o) if o.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

fn service_json(name: &str, s: &mut Service) -> Value {
    let exited = s.child.as_mut().map(|c| c.try_wait());
    let (status, error) = match exited {
        Some(Ok(None)) => ("running", None),
        Some(Ok(Some(st))) => ("failed", Some(format!("exited with code {}", st.code().unwrap_or(-1)))),
        Some(Err(e)) => ("failed", Some(e.to_string())),
        None if s.stopped => ("failed", Some("exited with code 143".to_string())),
        None => ("stopped", None),
    };
    json!({
        "name": name,
        "cmd": s.def["cmd"],
        "args": or_null(&s.def["args"]),
        "needs": or_null(&s.def["needs"]),
        "env": or_null(&s.def["env"]),
        "dir": or_null(&s.def["dir"]),
        "http_port": s.def["http_port"],
        "state": {
            "name": name,
            "status": status,
            "pid": if status == "running" { json!(s.pid) } else { Value::Null },
            "started_at": s.started_at,
            "restart_count": s.restart_count,
            "error": error,
            "next_restart_at": null,
        }
    })
}

async fn list_services(State(shared): State<Shared>) -> Json<Value> {
    let mut inner = shared.0.lock().expect("fake state");
    let list: Vec<Value> = inner.services.iter_mut().map(|(n, s)| service_json(n, s)).collect();
    Json(json!(list))
}

async fn get_service(State(shared): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let mut inner = shared.0.lock().expect("fake state");
    match inner.services.get_mut(&name) {
        Some(s) => Json(service_json(&name, s)).into_response(),
        None => (StatusCode::NOT_FOUND, "service not found").into_response(),
    }
}

fn ndjson(lines: Vec<Value>) -> Response {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    (StatusCode::OK, [("content-type", "application/x-ndjson")], body).into_response()
}

fn spawn(def: &Value, log_path: &Path) -> Result<tokio::process::Child, String> {
    let cmd = def["cmd"].as_str().unwrap_or_default();
    let args: Vec<String> = def["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path).map_err(|e| e.to_string())?;
    let log2 = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = tokio::process::Command::new(cmd);
    command.args(&args).stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2));
    command.process_group(0).kill_on_drop(true);
    crate::server::scrub_env_tokio(&mut command);
    command.spawn().map_err(|e| e.to_string())
}

/// Starts the registered service `name` and answers its progress as the
/// platform streams it: `started`, then `complete`; or, when it dies within
/// the monitoring window, its output as `stderr`, `exit`, and `started`
/// again for the automatic restart (which is left running or dead).
async fn start(shared: &Shared, name: &str) -> Response {
    let log_path = shared.1.join(format!("{name}.log"));
    let Some(def) = shared.0.lock().expect("fake state").services.get(name).map(|s| s.def.clone()) else {
        return (StatusCode::NOT_FOUND, "service not found").into_response();
    };
    let _ = std::fs::write(&log_path, b"");
    let mut lines = Vec::new();
    let mut child = match spawn(&def, &log_path) {
        Ok(c) => c,
        Err(e) => return ndjson(vec![json!({"type": "error", "data": e, "timestamp": 0})]),
    };
    lines.push(json!({"type": "started", "data": format!("pid {}", child.id().unwrap_or(0)), "timestamp": 0}));
    let early = tokio::time::timeout(Duration::from_millis(400), child.wait()).await;
    let mut restarts = 0;
    if let Ok(Ok(status)) = early {
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !output.trim().is_empty() {
            lines.push(json!({"type": "stderr", "data": output, "timestamp": 0}));
        }
        lines.push(json!({"type": "exit", "exit_code": status.code(), "timestamp": 0}));
        // The runtime restarts a crashed service.
        restarts = 1;
        child = match spawn(&def, &log_path) {
            Ok(c) => c,
            Err(e) => return ndjson(vec![json!({"type": "error", "data": e, "timestamp": 0})]),
        };
        lines.push(json!({"type": "started", "timestamp": 0}));
    } else {
        lines.push(json!({"type": "complete", "log_files": {"combined": log_path.display().to_string()}}));
    }
    let pid = child.id();
    if let Some(s) = shared.0.lock().expect("fake state").services.get_mut(name) {
        s.child = Some(child);
        s.pid = pid;
        s.started_at = Some(rfc3339(std::time::SystemTime::now()));
        s.restart_count += restarts;
        s.stopped = false;
    }
    ndjson(lines)
}

async fn put_service(
    State(shared): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(_q): Query<BTreeMap<String, String>>,
    Json(def): Json<Value>,
) -> Response {
    if def["cmd"].as_str().is_none() {
        return (StatusCode::BAD_REQUEST, "cmd is required").into_response();
    }
    {
        let mut inner = shared.0.lock().expect("fake state");
        if inner.services.contains_key(&name) {
            // Five live reports: 200, this message, and the OLD definition kept.
            let message = format!(
                "Service already running with that command, use POST /v1/services/{name}/restart if you want to \
                 restart it"
            );
            return (StatusCode::OK, Json(json!({"message": message, "name": name}))).into_response();
        }
        if !def["http_port"].is_null() && inner.services.values().any(|s| !s.def["http_port"].is_null()) {
            return (StatusCode::CONFLICT, Json(json!({"error": "another service already has an http_port"})))
                .into_response();
        }
        let service = Service { def, child: None, pid: None, started_at: None, restart_count: 0, stopped: false };
        inner.services.insert(name.clone(), service);
    }
    start(&shared, &name).await
}

/// SIGTERM to the process group, SIGKILL after 5 s.
async fn stop_process(child: Option<tokio::process::Child>, pid: Option<u32>) {
    if let Some(pid) = pid {
        unsafe_kill(-(pid as i32), libc::SIGTERM);
    }
    if let Some(mut child) = child {
        if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
            if let Some(pid) = pid {
                unsafe_kill(-(pid as i32), libc::SIGKILL);
            }
            let _ = child.kill().await;
        }
    }
}

async fn service_action(State(shared): State<Shared>, UrlPath((name, action)): UrlPath<(String, String)>) -> Response {
    if !shared.0.lock().expect("fake state").services.contains_key(&name) {
        return (StatusCode::NOT_FOUND, "service not found").into_response();
    }
    let stop = |shared: Shared, name: String| async move {
        let taken =
            shared.0.lock().expect("fake state").services.get_mut(&name).map(|s| (s.child.take(), s.pid.take()));
        if let Some((child, pid)) = taken {
            stop_process(child, pid).await;
        }
        if let Some(s) = shared.0.lock().expect("fake state").services.get_mut(&name) {
            s.stopped = true;
        }
    };
    match action.as_str() {
        "start" => start(&shared, &name).await,
        "stop" => {
            stop(shared.clone(), name).await;
            ndjson(vec![json!({"type": "stopping", "timestamp": 0}), json!({"type": "stopped", "timestamp": 0})])
        }
        "restart" => {
            stop(shared.clone(), name.clone()).await;
            start(&shared, &name).await
        }
        _ => (StatusCode::NOT_FOUND, "no such action").into_response(),
    }
}

async fn delete_service(State(shared): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let mut inner = shared.0.lock().expect("fake state");
    let Some(s) = inner.services.get_mut(&name) else {
        return (StatusCode::NOT_FOUND, "service not found").into_response();
    };
    if s.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None))) {
        // The SDKs handle this: stop first.
        return (StatusCode::CONFLICT, "service is running; stop it first").into_response();
    }
    inner.services.remove(&name);
    StatusCode::NO_CONTENT.into_response()
}

/// RFC 3339 UTC (seconds), as the platform writes `started_at`/`expires_at`.
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days to civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// `"5m"`, `"300s"`, `"1h"`, `"1500ms"` (the subset of Go durations tests use).
fn parse_expire(s: &str) -> Option<Duration> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map(|i| s.split_at(i))?;
    let n: u64 = num.parse().ok()?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return None,
    };
    (d <= Duration::from_secs(3600)).then_some(d)
}

/// `{name, started_at, expires_at}` with timestamps, as sprites-go's task type has it.
fn task_json(name: &str, t: &Task) -> Value {
    let expires_wall = t.started_wall + t.expires_at.saturating_duration_since(t.started_at);
    json!({
        "name": name,
        "started_at": rfc3339(t.started_wall),
        "expires_at": rfc3339(expires_wall),
    })
}

fn upsert_task(shared: &Shared, name: &str, body: &Value, create_only: bool) -> Response {
    let Some(expire) = body["expire"].as_str().and_then(parse_expire) else {
        return (StatusCode::BAD_REQUEST, "expire must be a duration of at most 1h").into_response();
    };
    let mut inner = shared.0.lock().expect("fake state");
    let now = Instant::now();
    inner.tasks.retain(|_, t| t.expires_at > now);
    if create_only && inner.tasks.contains_key(name) {
        return (StatusCode::CONFLICT, "task exists").into_response();
    }
    let (started_at, started_wall) =
        inner.tasks.get(name).map(|t| (t.started_at, t.started_wall)).unwrap_or((now, std::time::SystemTime::now()));
    let task = Task { started_at, started_wall, expires_at: now + expire };
    let v = task_json(name, &task);
    inner.tasks.insert(name.to_string(), task);
    (if create_only { StatusCode::CREATED } else { StatusCode::OK }, Json(v)).into_response()
}

async fn post_task(State(shared): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some(name) = body["name"].as_str().map(str::to_string) else {
        return (StatusCode::BAD_REQUEST, "name is required").into_response();
    };
    upsert_task(&shared, &name, &body, true)
}

async fn put_task(State(shared): State<Shared>, UrlPath(name): UrlPath<String>, Json(body): Json<Value>) -> Response {
    upsert_task(&shared, &name, &body, false)
}

async fn list_tasks(State(shared): State<Shared>) -> Json<Value> {
    let mut inner = shared.0.lock().expect("fake state");
    let now = Instant::now();
    inner.tasks.retain(|_, t| t.expires_at > now);
    Json(json!({"tasks": inner.tasks.iter().map(|(n, t)| task_json(n, t)).collect::<Vec<_>>()}))
}

async fn get_task(State(shared): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let inner = shared.0.lock().expect("fake state");
    match inner.tasks.get(&name).filter(|t| t.expires_at > Instant::now()) {
        Some(t) => Json(task_json(&name, t)).into_response(),
        None => (StatusCode::NOT_FOUND, "task not found").into_response(),
    }
}

async fn delete_task(State(shared): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let removed = shared.0.lock().expect("fake state").tasks.remove(&name);
    match removed.filter(|t| t.expires_at > Instant::now()) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (StatusCode::NOT_FOUND, "task not found").into_response(),
    }
}
