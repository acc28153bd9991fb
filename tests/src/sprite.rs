//! A fake of the in-Sprite API (`/.sprite/api.sock`): HTTP over a Unix
//! socket at a path of the test's, with the services, tasks and info routes
//! in the shapes of shared/platform/SPRITES.md. It records every call, and
//! it runs services for real: a PUT spawns the service's command (its own
//! process group, output in a log file), a DELETE stops it. Tasks expire on
//! the clock like the platform's.

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
    def: Value,
    child: Option<tokio::process::Child>,
    pid: Option<u32>,
    started_at: String,
}

struct Task {
    started_at: Instant,
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
        self.shared
            .0
            .lock()
            .expect("fake state")
            .tasks
            .insert(name.into(), Task { started_at: now, expires_at: now + expire });
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

fn service_json(name: &str, s: &mut Service) -> Value {
    let status = match s.child.as_mut().map(|c| c.try_wait()) {
        Some(Ok(None)) => "running",
        Some(_) => "failed",
        None => "stopped",
    };
    let mut v = s.def.clone();
    v["name"] = json!(name);
    v["state"] = json!({
        "name": name,
        "status": status,
        "pid": s.pid,
        "started_at": s.started_at,
        "restart_count": 0,
        "error": null
    });
    v
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

async fn put_service(
    State(shared): State<Shared>,
    UrlPath(name): UrlPath<String>,
    Query(_q): Query<BTreeMap<String, String>>,
    Json(def): Json<Value>,
) -> Response {
    let Some(cmd) = def["cmd"].as_str().map(str::to_string) else {
        return (StatusCode::BAD_REQUEST, "cmd is required").into_response();
    };
    let args: Vec<String> = def["args"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    {
        let inner = shared.0.lock().expect("fake state");
        if let Some(existing) = inner.services.get(&name) {
            // The platform: the same definition again is a no-op; a changed one needs a delete first.
            return if existing.def == def {
                (StatusCode::OK, "already running").into_response()
            } else {
                (StatusCode::CONFLICT, "service exists with another definition").into_response()
            };
        }
    }
    let log_path = shared.1.join(format!("{name}.log"));
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let log2 = match log.try_clone() {
        Ok(f) => f,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let mut command = tokio::process::Command::new(&cmd);
    command.args(&args).stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(log2));
    command.process_group(0).kill_on_drop(true);
    crate::server::scrub_env_tokio(&mut command);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (StatusCode::OK, format!("{}\n", json!({"type": "exit", "exit_code": 127, "error": e.to_string()})))
                .into_response()
        }
    };
    let pid = child.id();
    // Like the platform: progress as NDJSON, `exit` if the service dies at once, else `complete`.
    let early = tokio::time::timeout(Duration::from_millis(300), child.wait()).await;
    let mut lines = format!("{}\n", json!({"type": "started", "pid": pid}));
    match early {
        Ok(Ok(status)) => {
            lines.push_str(&format!("{}\n", json!({"type": "exit", "exit_code": status.code()})));
            return (StatusCode::OK, lines).into_response();
        }
        _ => lines.push_str(&format!(
            "{}\n",
            json!({"type": "complete", "log_files": {"combined": log_path.display().to_string()}})
        )),
    }
    let started_at = format!("{:?}", std::time::SystemTime::now());
    shared.0.lock().expect("fake state").services.insert(name, Service { def, child: Some(child), pid, started_at });
    (StatusCode::OK, [("content-type", "application/x-ndjson")], lines).into_response()
}

async fn delete_service(State(shared): State<Shared>, UrlPath(name): UrlPath<String>) -> Response {
    let removed = shared.0.lock().expect("fake state").services.remove(&name);
    match removed {
        Some(mut s) => {
            if let Some(pid) = s.pid {
                unsafe_kill(-(pid as i32), libc::SIGTERM);
            }
            if let Some(child) = s.child.as_mut() {
                if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                    stop_group(&mut s);
                }
            }
            s.pid = None;
            (StatusCode::OK, Json(json!({"deleted": name}))).into_response()
        }
        None => (StatusCode::NOT_FOUND, "service not found").into_response(),
    }
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

fn task_json(name: &str, t: &Task) -> Value {
    let now = Instant::now();
    json!({
        "name": name,
        "started_at_ms_ago": now.saturating_duration_since(t.started_at).as_millis() as u64,
        "expires_in_ms": t.expires_at.saturating_duration_since(now).as_millis() as u64,
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
    let started_at = inner.tasks.get(name).map(|t| t.started_at).unwrap_or(now);
    let task = Task { started_at, expires_at: now + expire };
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
        Some(_) => (StatusCode::OK, Json(json!({"deleted": name}))).into_response(),
        None => (StatusCode::NOT_FOUND, "task not found").into_response(),
    }
}
