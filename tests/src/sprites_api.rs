//! A fake of the Sprites REST API as a laptop sees it (`https://api.sprites.dev`,
//! here plain `http://127.0.0.1:PORT`), for `tether sprite deploy`. One
//! Sprite, with its filesystem in a temporary "Sprite root", answering as
//! the platform's sources show:
//!
//! - every call needs `Authorization: Bearer <token>`, else 401 with the
//!   `{"error","message"}` body of superfly/sprites-go `errors.go` (`APIError`);
//! - `GET /v1/sprites/{name}` → the `SpriteInfo` of sprites-go `types.go`
//!   (`url` among it); another name → 404 (sprites-go `management.go`:
//!   "sprite not found");
//! - `PUT /v1/sprites/{name}/fs/write?path&workingDir&mode&mkdirParents`, the
//!   body the bytes, mode an octal string; `GET …/fs/read?path&workingDir`
//!   → the bytes, or 404 with `{"error","code","path"}` (sprites-go
//!   `filesystem.go`, `fsError`);
//! - `POST …/exec?cmd=…&cmd=…&path&stdin&dir`: the command runs here, for
//!   real, and the answer is its output framed as the exec stream frames it
//!   (sprites-go `websocket.go`: a stream-id byte, 1 stdout, 2 stderr, before
//!   each chunk), ending with the exit frame `0x03` + the code, which is all
//!   sprites-docs `integrations/claude-managed-agents.mdx` reads of it.
//!   Absolute paths under `/home/sprite` in the arguments and `dir` are
//!   mapped into the Sprite root; `HOME` is the root's `/home/sprite` and
//!   `TETHER_SPRITE_SOCKET` the socket of a [`FakeSprite`] (the in-Sprite
//!   API, whose services run for real);
//! - `/v1/sprites/{name}/proxy`, the TCP proxy, on the same port: such
//!   connections are handed to a [`FakeSpritesProxy`] (its handshake as
//!   sprites-go `proxy.go` and SPRITES.md describe), which relays to the
//!   port the client asks for on 127.0.0.1.
//!
//! - `POST /v1/sprites/{name}/checkpoint {"comment"}` copies the whole
//!   Sprite root aside and answers NDJSON progress (`info` lines, then
//!   `complete` "Checkpoint vN created successfully": the API reference's
//!   stream events); `GET …/checkpoints` lists `{id, create_time, comment}`
//!   (sprites-go `types.go` `Checkpoint`); `POST …/checkpoints/{id}/restore`
//!   stops every service, puts the root back as it was, and starts the
//!   services again, like the cold boot a restore is (SPRITES.md,
//!   "Checkpoints"); an unknown id is 404.
//!
//! Every REST call is recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::remote::FakeSpritesProxy;
use crate::sprite::FakeSprite;

/// Where the Sprite's user lives, in the Sprite.
pub const SPRITE_HOME: &str = "/home/sprite";

/// One REST call the fake received.
#[derive(Debug, Clone)]
pub struct RestCall {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
}

impl RestCall {
    /// `"PUT /v1/sprites/x/fs/write"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The `cmd` values of an exec, in order.
    pub fn exec_argv(&self) -> Vec<String> {
        parse_query(self.query.as_deref().unwrap_or_default())
            .into_iter()
            .filter(|(k, _)| k == "cmd")
            .map(|(_, v)| v)
            .collect()
    }
}

struct Shared {
    name: String,
    token: String,
    root: PathBuf,
    socket: PathBuf,
    calls: Mutex<Vec<RestCall>>,
    /// The `url` `GET /v1/sprites/{name}` answers, when set.
    sprite_url: Mutex<Option<String>>,
    /// The in-Sprite API whose services a restore stops and starts.
    sprite: Arc<FakeSprite>,
    /// Where checkpoints are kept, and each one's id, time and comment.
    checkpoint_dir: PathBuf,
    checkpoints: Mutex<Vec<(String, String, String)>>,
}

/// A running fake; dropping it stops everything it started.
pub struct FakeSpritesApi {
    /// `http://127.0.0.1:PORT`: `--sprites-api` for deploy.
    pub url: String,
    /// `ws://127.0.0.1:PORT`: the same API in the proxy's form.
    pub ws_url: String,
    shared: Arc<Shared>,
    sprite: Arc<FakeSprite>,
    _proxy: FakeSpritesProxy,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _root: TempDir,
    _checkpoints: TempDir,
}

impl Drop for FakeSpritesApi {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl FakeSpritesApi {
    /// The Sprite `name`, reachable with `token`.
    pub async fn start(name: &str, token: &str) -> FakeSpritesApi {
        let root = tempfile::Builder::new().prefix("tether-fake-sprite-root-").tempdir().expect("a temporary root");
        std::fs::create_dir_all(root.path().join("home/sprite")).expect("the Sprite's home");
        let sprite = Arc::new(FakeSprite::start().await);
        let proxy = FakeSpritesProxy::start(name, token, None).await;
        let checkpoints =
            tempfile::Builder::new().prefix("tether-fake-checkpoints-").tempdir().expect("a checkpoint dir");
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            token: token.to_owned(),
            root: root.path().to_path_buf(),
            socket: sprite.socket().to_path_buf(),
            calls: Mutex::new(Vec::new()),
            sprite_url: Mutex::new(None),
            sprite: sprite.clone(),
            checkpoint_dir: checkpoints.path().to_path_buf(),
            checkpoints: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/sprites/{name}", get(get_sprite))
            .route("/v1/sprites/{name}/fs/write", put(fs_write))
            .route("/v1/sprites/{name}/fs/read", get(fs_read))
            .route("/v1/sprites/{name}/exec", post(exec))
            .route("/v1/sprites/{name}/checkpoint", post(checkpoint))
            .route("/v1/sprites/{name}/checkpoints", get(list_checkpoints))
            .route("/v1/sprites/{name}/checkpoints/{id}/restore", post(restore))
            .fallback(|| async { not_found("no such route") })
            .layer(axum::extract::DefaultBodyLimit::max(512 << 20))
            .layer(axum::middleware::from_fn_with_state(shared.clone(), auth_and_record))
            .with_state(shared.clone());
        let rest = TcpListener::bind("127.0.0.1:0").await.expect("bind the REST listener");
        let rest_port = rest.local_addr().unwrap().port();
        let rest_task = tokio::spawn(async move {
            let _ = axum::serve(rest, app).await;
        });
        let proxy_port: u16 = proxy.url.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the proxy's port");
        let front = TcpListener::bind("127.0.0.1:0").await.expect("bind the API listener");
        let port = front.local_addr().unwrap().port();
        let front_task = tokio::spawn(async move {
            while let Ok((conn, _)) = front.accept().await {
                tokio::spawn(dispatch(conn, rest_port, proxy_port));
            }
        });
        FakeSpritesApi {
            url: format!("http://127.0.0.1:{port}"),
            ws_url: format!("ws://127.0.0.1:{port}"),
            shared,
            sprite,
            _proxy: proxy,
            tasks: vec![rest_task, front_task],
            _root: root,
            _checkpoints: checkpoints,
        }
    }

    /// The in-Sprite API the Sprite's commands talk to.
    pub fn sprite(&self) -> &FakeSprite {
        &self.sprite
    }

    /// Makes `GET /v1/sprites/{name}` name this URL (a [`crate::remote::TlsFront`]
    /// standing in for the Sprite URL) instead of `https://NAME-org.sprites.app`.
    pub fn set_sprite_url(&self, url: &str) {
        *self.shared.sprite_url.lock().unwrap() = Some(url.to_owned());
    }

    /// Where a path of the Sprite is on this machine.
    pub fn local_path(&self, sprite_path: &str) -> PathBuf {
        self.shared.root.join(sprite_path.trim_start_matches('/'))
    }

    /// Every REST call so far, oldest first.
    pub fn calls(&self) -> Vec<RestCall> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The paths written through `fs/write` so far.
    pub fn writes(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.path.ends_with("/fs/write"))
            .filter_map(|c| parse_query(c.query.as_deref()?).into_iter().find(|(k, _)| k == "path").map(|(_, v)| v))
            .collect()
    }
}

/// Reads a connection's request line, then relays the whole connection to
/// the proxy (for `…/proxy`) or to the REST server.
async fn dispatch(mut conn: TcpStream, rest_port: u16, proxy_port: u16) {
    let _ = conn.set_nodelay(true);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let target = line.split(' ').nth(1).unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let port = if path.ends_with("/proxy") { proxy_port } else { rest_port };
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else { return };
    let _ = upstream.set_nodelay(true);
    if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
}

/// `application/x-www-form-urlencoded` pairs, repeated keys kept.
fn parse_query(q: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://q/?{q}")).expect("a query");
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({"error": code, "message": message}))).into_response()
}

fn not_found(message: &str) -> Response {
    api_error(StatusCode::NOT_FOUND, "not_found", message)
}

async fn auth_and_record(
    State(shared): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    if given != Some(format!("Bearer {}", shared.token).as_str()) {
        return api_error(StatusCode::UNAUTHORIZED, "unauthorized", "invalid or missing token");
    }
    shared.calls.lock().unwrap().push(RestCall {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().map(str::to_owned),
    });
    next.run(req).await
}

/// The 404 the platform gives for a Sprite that is not this one.
fn other_sprite(shared: &Shared, name: &str) -> Option<Response> {
    (name != shared.name).then(|| not_found(&format!("sprite not found: {name}")))
}

async fn get_sprite(State(shared): State<Arc<Shared>>, UrlPath(name): UrlPath<String>) -> Response {
    if let Some(r) = other_sprite(&shared, &name) {
        return r;
    }
    let url = shared.sprite_url.lock().unwrap().clone().unwrap_or_else(|| format!("https://{name}-org.sprites.app"));
    Json(json!({
        "id": "01234567-89ab-cdef-0123-456789abcdef",
        "name": name,
        "organization": "org",
        "status": "running",
        "url": url,
        "url_settings": {"auth": "sprite"},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }))
    .into_response()
}

/// A path of the Sprite (absolute, or relative to `workingDir`) on this
/// machine; `None` for one that climbs out with `..`.
fn resolve(shared: &Shared, path: &str, working_dir: Option<&String>) -> Option<PathBuf> {
    let joined = if path.starts_with('/') {
        PathBuf::from(path)
    } else {
        Path::new(working_dir.map(String::as_str).unwrap_or("/")).join(path)
    };
    if joined.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return None;
    }
    Some(shared.root.join(joined.strip_prefix("/").unwrap_or(&joined)))
}

fn fs_error(status: StatusCode, error: &str, code: &str, path: &str) -> Response {
    (status, Json(json!({"error": error, "code": code, "path": path}))).into_response()
}

/// The Sprite's path of an fs call (`path`, `workingDir`) and where it is
/// here; or the platform's answer when the Sprite or the path is wrong.
fn fs_target(shared: &Shared, name: &str, q: &BTreeMap<String, String>) -> Result<(String, PathBuf), Box<Response>> {
    if let Some(r) = other_sprite(shared, name) {
        return Err(Box::new(r));
    }
    let Some(path) = q.get("path") else {
        return Err(Box::new(fs_error(StatusCode::BAD_REQUEST, "path is required", "EINVAL", "")));
    };
    match resolve(shared, path, q.get("workingDir")) {
        Some(local) => Ok((path.clone(), local)),
        None => Err(Box::new(fs_error(StatusCode::BAD_REQUEST, "invalid path", "EINVAL", path))),
    }
}

async fn fs_write(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    use std::os::unix::fs::PermissionsExt;
    let (path, local) = match fs_target(&shared, &name, &q) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let path = path.as_str();
    let mode = match q.get("mode").map(|m| u32::from_str_radix(m, 8)) {
        None => 0o644,
        Some(Ok(m)) => m,
        Some(Err(_)) => return fs_error(StatusCode::BAD_REQUEST, "invalid mode", "EINVAL", path),
    };
    if let Some(parent) = local.parent() {
        if !parent.is_dir() {
            if q.get("mkdirParents").map(String::as_str) != Some("true") {
                return fs_error(StatusCode::NOT_FOUND, "parent directory does not exist", "ENOENT", path);
            }
            if let Err(e) = std::fs::create_dir_all(parent) {
                return fs_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), "EIO", path);
            }
        }
    }
    // Written aside and renamed, so no process can inherit a descriptor
    // open for writing on the file it may execute next (ETXTBSY).
    let tmp = local.with_extension("fake-upload");
    let written = std::fs::write(&tmp, &body)
        .and_then(|_| std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)))
        .and_then(|_| std::fs::rename(&tmp, &local));
    match written {
        Ok(()) => Json(json!({"path": path, "size": body.len()})).into_response(),
        Err(e) => fs_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), "EIO", path),
    }
}

async fn fs_read(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let (path, local) = match fs_target(&shared, &name, &q) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let path = path.as_str();
    match std::fs::read(&local) {
        Ok(bytes) => (StatusCode::OK, [("content-type", "application/octet-stream")], bytes).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs_error(StatusCode::NOT_FOUND, "file not found", "ENOENT", path)
        }
        Err(e) => fs_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), "EIO", path),
    }
}

/// `/home/sprite…` in `s` pointed into the root.
fn map_home(shared: &Shared, s: &str) -> String {
    let local_home = shared.root.join("home/sprite");
    s.replace(SPRITE_HOME, &local_home.display().to_string())
}

fn framed(stdout: &[u8], stderr: &[u8], code: u8) -> Vec<u8> {
    let mut body = Vec::with_capacity(stdout.len() + stderr.len() + 4);
    if !stdout.is_empty() {
        body.push(1);
        body.extend_from_slice(stdout);
    }
    if !stderr.is_empty() {
        body.push(2);
        body.extend_from_slice(stderr);
    }
    body.extend_from_slice(&[3, code]);
    body
}

async fn exec(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    _headers: HeaderMap,
) -> Response {
    if let Some(r) = other_sprite(&shared, &name) {
        return r;
    }
    let pairs = parse_query(query.as_deref().unwrap_or_default());
    let argv: Vec<String> = pairs.iter().filter(|(k, _)| k == "cmd").map(|(_, v)| map_home(&shared, v)).collect();
    let Some((program, args)) = argv.split_first() else {
        return api_error(StatusCode::BAD_REQUEST, "bad_request", "cmd is required");
    };
    let dir = pairs.iter().find(|(k, _)| k == "dir").map(|(_, v)| map_home(&shared, v));
    let home = shared.root.join("home/sprite");
    let deadline = Instant::now() + Duration::from_secs(5);
    let output = loop {
        let mut command = tokio::process::Command::new(program);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        crate::server::scrub_env_tokio(&mut command);
        command.env("HOME", &home).env("TETHER_SPRITE_SOCKET", &shared.socket);
        command.current_dir(dir.as_deref().map(PathBuf::from).unwrap_or_else(|| home.clone()));
        match command.output().await {
            // A file just renamed into place can be busy a moment longer in
            // a process forked meanwhile by another test: poll until it is not.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => break other,
        }
    };
    let body = match output {
        Ok(out) => {
            let code = out.status.code().map(|c| c.clamp(0, 255) as u8).unwrap_or(128);
            framed(&out.stdout, &out.stderr, code)
        }
        Err(e) => framed(b"", format!("{program}: {e}\n").as_bytes(), 127),
    };
    (StatusCode::OK, [("content-type", "application/octet-stream")], body).into_response()
}

/// Copies the tree at `from` into `to` (modes and symlinks kept).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

fn ndjson(lines: &[serde_json::Value]) -> Response {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    (StatusCode::OK, [("content-type", "application/x-ndjson")], body).into_response()
}

fn stream_line(kind: &str, data: &str) -> serde_json::Value {
    let time = crate::sprite::rfc3339(std::time::SystemTime::now());
    if kind == "error" {
        json!({"type": kind, "error": data, "time": time})
    } else {
        json!({"type": kind, "data": data, "time": time})
    }
}

async fn checkpoint(
    State(shared): State<Arc<Shared>>,
    UrlPath(name): UrlPath<String>,
    body: Option<Json<serde_json::Value>>,
) -> Response {
    if let Some(r) = other_sprite(&shared, &name) {
        return r;
    }
    let comment = body.and_then(|Json(b)| b["comment"].as_str().map(str::to_owned)).unwrap_or_default();
    let id = format!("v{}", shared.checkpoints.lock().unwrap().len() + 1);
    if let Err(e) = copy_tree(&shared.root, &shared.checkpoint_dir.join(&id)) {
        return ndjson(&[stream_line("error", &format!("Checkpoint failed: {e}"))]);
    }
    let time = crate::sprite::rfc3339(std::time::SystemTime::now());
    shared.checkpoints.lock().unwrap().push((id.clone(), time, comment));
    ndjson(&[
        stream_line("info", "Creating checkpoint..."),
        stream_line("info", "Saving filesystem state"),
        stream_line("complete", &format!("Checkpoint {id} created successfully")),
    ])
}

async fn list_checkpoints(State(shared): State<Arc<Shared>>, UrlPath(name): UrlPath<String>) -> Response {
    if let Some(r) = other_sprite(&shared, &name) {
        return r;
    }
    let list: Vec<serde_json::Value> = shared
        .checkpoints
        .lock()
        .unwrap()
        .iter()
        .rev()
        .map(|(id, time, comment)| json!({"id": id, "create_time": time, "comment": comment}))
        .collect();
    Json(list).into_response()
}

async fn restore(State(shared): State<Arc<Shared>>, UrlPath((name, id)): UrlPath<(String, String)>) -> Response {
    if let Some(r) = other_sprite(&shared, &name) {
        return r;
    }
    if !shared.checkpoints.lock().unwrap().iter().any(|(c, _, _)| *c == id) {
        return not_found(&format!("checkpoint not found: {id}"));
    }
    // Like a cold boot: every process stops, the filesystem goes back, services start fresh.
    let services = shared.sprite.stop_all().await;
    let put_back = (|| -> std::io::Result<()> {
        for entry in std::fs::read_dir(&shared.root)? {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        copy_tree(&shared.checkpoint_dir.join(&id), &shared.root)
    })();
    if let Err(e) = put_back {
        return ndjson(&[stream_line("error", &format!("Restore failed: {e}"))]);
    }
    for service in &services {
        shared.sprite.start_service(service).await;
    }
    ndjson(&[
        stream_line("info", &format!("Restoring to checkpoint {id}...")),
        stream_line("complete", &format!("Restored to checkpoint {id}")),
    ])
}
