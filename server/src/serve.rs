//! Wiring: check the data dir, answer on the listener at once (health says
//! `starting`) while the store opens and crash recovery runs, then serve the
//! API until a shutdown signal, then stop every agent within the grace period.
//! Here the two edges meet: [`router`] mounts tether's own MCP tools
//! (`crate::tether_mcp`) on the HTTP API (`crate::http`), which know nothing of
//! each other and share the application core (`crate::app`).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::app::App;
use crate::config::Config;
use crate::error::AsProblem;
use crate::http::AppState;
use crate::session::Sessions;
use crate::sprite::{KeepAwakeConfig, Keeper, SpriteApi};
use crate::store::{StallKind, Store, StoreError};

/// How long the agents get to stop at shutdown while the store is stalled
/// (their last events cannot be written; the next start closes their turns).
const STALLED_SHUTDOWN_LIMIT: Duration = Duration::from_secs(3);

/// A server ready to accept: state built, crash recovery done.
pub struct Prepared {
    pub app: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    platform: Platform,
}

/// What the server does for the machine it runs on: keep a Sprite awake, notice pauses.
struct Platform {
    sprite: Option<SpriteApi>,
    keep_awake_expire: Duration,
    keep_awake_refresh: Duration,
    keep_awake_wait: Duration,
    keep_awake_webhooks: Duration,
    pause_threshold: Duration,
    retain: Option<crate::retention::Retain>,
    disk: crate::disk::DiskLimits,
    telemetry: crate::telemetry::TelemetryConfig,
}

/// Checks, before anything is bound, that the data dir can be created and
/// written: a read-only or full disk is one clear sentence, not a raw SQLite
/// error later.
pub fn check_data_dir(dir: &Path) -> Result<(), StartError> {
    let shown = dir.display();
    let why = |e: &std::io::Error| -> String {
        match e.raw_os_error() {
            Some(libc::EROFS) => format!("the data dir {shown} is on a read-only file system"),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
                format!("the disk holding the data dir {shown} is full (no space left on device); free some space")
            }
            Some(libc::EACCES) | Some(libc::EPERM) => format!("the data dir {shown} is not writable ({e})"),
            _ => format!("cannot write in the data dir {shown}: {e}"),
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| StartError(why(&e)))?;
    // A write the size of a few pages, not synced (file systems refuse a
    // write they have no room for at once); removed straight away.
    let probe = dir.join(".tether-write-check");
    let written = std::fs::write(&probe, [0u8; 64 * 1024]);
    let _ = std::fs::remove_file(&probe);
    written.map_err(|e| StartError(why(&e)))
}

/// Opens the store, runs recovery and builds the application state.
pub async fn prepare(config: &Config, started: Instant) -> Result<Prepared, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
    protect_data_dir(&config.data_dir, &config.workspace)?;
    let store = Store::open(&config.data_dir.join("tether.db")).map_err(|e| open_error(&config.data_dir, e))?;
    owner_only_files(&config.data_dir);
    // Paths handed to agents (which run in the workspace) must be absolute.
    let data_dir = std::path::absolute(&config.data_dir).unwrap_or_else(|_| config.data_dir.clone());
    let data_dir_abs = data_dir.clone();
    let shared = Sessions::new(store, data_dir, config.workspace.clone());
    shared.set_agent_idle(config.agent_idle);
    shared.close_turns_after_stalls(config.store_stall_limit);
    let recovered =
        shared.recover().await.map_err(|e| StartError(format!("recovery failed: {}: {}", e.code(), e.detail())))?;
    if recovered > 0 {
        tracing::info!(sessions = recovered, "closed turns left open by a previous run");
    }
    let webhooks =
        crate::webhooks::Webhooks::start(shared.store.clone(), config.webhook_retry, shared.turn_traces.clone())
            .await
            .map_err(StartError)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let sprite = config.sprite_socket.as_deref().and_then(SpriteApi::detect);
    if let Some(api) = &sprite {
        let what = if config.keep_awake { "keeping it awake while agents work" } else { "not keeping it awake" };
        tracing::info!(socket = %api.socket().display(), "inside a Sprite: {what}");
    }
    let here = sprite.clone().map(|api| crate::sprite::Here::new(api, config.keep_awake, config.keep_awake_wait));
    let sprite = sprite.filter(|_| config.keep_awake);
    let core = Arc::new(App {
        shared,
        token: config.token.clone(),
        started,
        keepalive: config.keepalive,
        stream_idle: config.stream_idle,
        max_body_bytes: config.max_body_bytes,
        max_upload_bytes: config.max_upload_bytes,
        shutdown: shutdown_rx,
        webhooks,
        processes: Arc::new(crate::exec::Processes::open(&data_dir_abs, config.process_output_bytes)),
        sprite: here,
        ports: crate::ports::Ports::new(config.token.as_deref(), config.ports_poll),
    });
    let app = Arc::new(AppState {
        core,
        edge: crate::http::edge::EdgePolicy::new(
            config.token.is_some(),
            config.host,
            &config.allow_hosts,
            &config.allow_origins,
        ),
        streams: crate::http::StreamSlots::new(config.max_streams_per_client),
    });
    let platform = Platform {
        sprite,
        keep_awake_expire: config.keep_awake_expire,
        keep_awake_refresh: config.keep_awake_refresh,
        keep_awake_wait: config.keep_awake_wait,
        keep_awake_webhooks: config.keep_awake_webhooks,
        retain: config.retain,
        disk: config.disk,
        pause_threshold: config.pause_threshold,
        telemetry: config.telemetry.clone(),
    };
    Ok(Prepared { app, shutdown_tx, platform })
}

/// The data dir holds the token and every session's record: 0700 (0711 when
/// agents run as another user, who may then reach its own session's folder
/// under `sessions/` by name and nothing else). With `--agent-user`, the
/// workspace is given to that user.
fn protect_data_dir(data_dir: &Path, workspace: &Path) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let agent_user = crate::process::user::agent_user();
    let mode = if agent_user.is_some() { 0o711 } else { 0o700 };
    let shown = data_dir.display();
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(mode))
        .map_err(|e| StartError(format!("cannot restrict the data dir {shown} to its owner: {e}")))?;
    if data_dir.starts_with(workspace) {
        tracing::warn!(
            data_dir = %shown,
            workspace = %workspace.display(),
            "the data dir is inside the workspace: agents working there can read or delete it; pass --data-dir outside it"
        );
    }
    if let Some(user) = agent_user {
        if data_dir.starts_with(workspace) {
            return Err(StartError(format!(
                "the data dir {shown} is inside the workspace {}, which --agent-user gives to {}: \
                 pass --data-dir outside the workspace",
                workspace.display(),
                user.name
            )));
        }
        let sessions = crate::session::sessions_dir(data_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&sessions)
            .and_then(|_| std::fs::set_permissions(&sessions, std::fs::Permissions::from_mode(0o711)))
            .map_err(|e| StartError(format!("cannot prepare {}: {e}", sessions.display())))?;
        crate::process::user::give_tree_to_agent(workspace).map_err(|e| {
            StartError(format!(
                "cannot give the workspace {} to the agent user {}: {e}",
                workspace.display(),
                user.name
            ))
        })?;
        tracing::info!(user = %user.name, uid = user.uid, "agents run as another user");
    }
    Ok(())
}

/// The store and the token file: readable by their owner only (SQLite gives
/// its -wal and -shm files the database's mode).
fn owner_only_files(data_dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for name in ["tether.db", "tether.db-wal", "tether.db-shm", "token"] {
        let path = data_dir.join(name);
        if path.exists() {
            if let Err(e) = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %path.display(), "cannot make the file readable by its owner only: {e}");
            }
        }
    }
}

fn open_error(dir: &Path, e: StoreError) -> StartError {
    let shown = dir.display();
    match StallKind::of(&e) {
        StallKind::DiskFull => {
            StartError(format!("the disk holding the data dir {shown} is full ({e}); free some space"))
        }
        StallKind::ReadOnly => StartError(format!("the data dir {shown} is read-only ({e})")),
        StallKind::Io => StartError(format!("cannot open the store in {shown}: {e}")),
    }
}

/// The API once it is ready; until then, the answers of a starting server.
#[derive(Clone, Default)]
struct Gate(Arc<OnceLock<Router>>);

impl Gate {
    fn router(&self) -> Router {
        let gate = self.clone();
        Router::new().fallback(move |req: Request| {
            let gate = gate.clone();
            async move { gate.handle(req).await }
        })
    }

    async fn handle(self, req: Request) -> Response {
        match self.0.get() {
            Some(api) => match api.clone().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            },
            None => starting(&req),
        }
    }
}

/// While the store opens and recovery runs: `GET /v1/health` answers 503
/// `{"status":"starting"}`, everything else 503 problem `starting`, both
/// with `Retry-After: 1`.
fn starting(req: &Request) -> Response {
    let mut resp = if req.uri().path() == "/v1/health" {
        let body = serde_json::to_vec(&tether_protocol::Health { status: "starting".into(), reasons: Vec::new() })
            .unwrap_or_default();
        (StatusCode::SERVICE_UNAVAILABLE, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    } else {
        crate::http::starting()
    };
    resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

/// The whole API of `app`, tether's own MCP tools at `/mcp` among its routes.
pub fn router(app: Arc<AppState>) -> Router {
    let mcp = crate::tether_mcp::service(app.core.clone());
    crate::http::router(app, mcp)
}

/// Serves on `listener` at once, prepares the server behind it, then serves
/// the API until `shutdown` resolves; then ends SSE streams and agents.
/// A shutdown while starting stops at once.
pub async fn run(
    config: Config,
    started: Instant,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let gate = Gate::default();
    let (stop_tx, stop_rx) = watch::channel(false);
    let front = gate.router();
    let mut http = tokio::spawn(crate::connections::serve(
        listener,
        front,
        config.connections,
        crate::http::too_many_connections,
        stop_rx,
    ));
    tokio::pin!(shutdown);
    let ready = async {
        if let Some(file) = &config.start_gate {
            while !file.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        prepare(&config, started).await
    };
    let prepared = tokio::select! {
        p = ready => p?,
        _ = &mut shutdown => {
            tracing::info!("shutting down while starting");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_millis(500), http).await;
            return Ok(());
        }
    };
    let Prepared { app, shutdown_tx, platform } = prepared;
    let shared = app.shared.clone();
    let webhooks = app.webhooks.clone();
    let pauses = tokio::spawn(crate::pause::watch(shared.clone(), platform.pause_threshold));
    let disk = tokio::spawn(crate::disk::watch(shared.clone(), platform.disk));
    let retention =
        platform.retain.map(|r| tokio::spawn(crate::retention::run(shared.store.clone(), webhooks.clone(), r)));
    let keeper = platform.sprite.map(|api| {
        let config = KeepAwakeConfig {
            expire: platform.keep_awake_expire,
            refresh: platform.keep_awake_refresh,
            wait_limit: platform.keep_awake_wait,
            webhook_limit: platform.keep_awake_webhooks,
            ..KeepAwakeConfig::for_port(port)
        };
        Keeper::start(api, config, shared.clone(), webhooks.clone())
    });
    if app.sprite.is_some() {
        // Read the Sprite's identity now: the edge allows its URL's host.
        let app = app.clone();
        tokio::spawn(async move {
            if let Some(here) = &app.sprite {
                here.status().await;
            }
        });
    }
    let processes = app.processes.clone();
    // The first look at the ports is taken before the API answers: a port
    // opened after the server is ready is announced.
    app.ports.set_own_port(port);
    let owners: Arc<dyn crate::ports::Owners> = app.core.clone();
    let ports_watch = crate::ports::watch(app.ports.clone(), owners, shared.clone()).await;
    let telemetry = {
        let sprite_name = match (&app.sprite, crate::telemetry::enabled(&platform.telemetry)) {
            (Some(here), true) => here.status().await.name,
            _ => None,
        };
        let (a, b, c) = (shared.clone(), shared.clone(), shared.clone());
        let gauges = crate::telemetry::Gauges {
            sse_clients: Box::new(move || a.metrics.sse_clients.load(std::sync::atomic::Ordering::Relaxed)),
            agent_processes: Box::new(move || b.metrics.agent_processes.load(std::sync::atomic::Ordering::Relaxed)),
            store_stalled: Box::new(move || c.store.health().is_stalled()),
        };
        let store = shared.store.clone();
        crate::telemetry::start(
            &platform.telemetry,
            store,
            shared.telemetry.clone(),
            &shared.boot_id,
            sprite_name,
            gauges,
        )
    };
    let _ = gate.0.set(router(app));
    tracing::info!(ms = started.elapsed().as_millis() as u64, "ready");
    tokio::select! {
        _ = &mut shutdown => {}
        r = &mut http => {
            // The accept loop ended by itself (it panicked).
            webhooks.shutdown();
            shared.shutdown().await;
            return Err(StartError(match r {
                Ok(()) => "the server stopped accepting connections".to_string(),
                Err(e) => format!("server error: {e}"),
            }));
        }
    }
    tracing::info!("shutting down");
    // Open SSE streams end, no new connections; then the agents (they need
    // the store), then whatever connections remain.
    let _ = shutdown_tx.send(true);
    let _ = stop_tx.send(true);
    pauses.abort();
    disk.abort();
    if let Some(r) = &retention {
        r.abort();
    }
    if let Some(w) = ports_watch {
        w.abort();
    }
    // Deliveries stop where they are: the next start resumes from the stored cursors.
    webhooks.shutdown();
    tokio::join!(stop_agents(&shared), processes.shutdown());
    if let Some(keeper) = keeper {
        keeper.stop().await;
    }
    telemetry.shutdown().await;
    if !shared.store.health().is_stalled() {
        match shared.store.checkpoint_wal().await {
            Ok(true) => {}
            Ok(false) => tracing::debug!("the WAL was busy at shutdown; the next start reads it back"),
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint at shutdown failed"),
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(500), http).await;
    Ok(())
}

/// Stops the agents; bounded when the store is stalled, since their last
/// events wait for a disk that may not come back before the process ends.
async fn stop_agents(shared: &Arc<Sessions>) {
    let stop = shared.shutdown();
    tokio::pin!(stop);
    loop {
        if let Some(stall) = shared.store.health().stall() {
            if tokio::time::timeout(STALLED_SHUTDOWN_LIMIT, &mut stop).await.is_err() {
                tracing::error!(%stall, "stopping while the store is stalled: the events held back are not written; the next start closes the open turns");
            }
            return;
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);
