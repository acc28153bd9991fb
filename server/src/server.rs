//! Wiring: open the store, recover from a crash, bind the router, serve until
//! a shutdown signal, then stop every agent within the grace period.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::http::{router, AppState};
use crate::session::Shared;
use crate::sprite::{KeepAwakeConfig, Keeper, SpriteApi};
use crate::store::Store;

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
    pause_threshold: Duration,
}

/// Opens the store, runs recovery and builds the application state.
pub async fn prepare(config: &Config, started: Instant) -> Result<Prepared, StartError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartError(format!("cannot create data dir {}: {e}", config.data_dir.display())))?;
    let store = Store::open(&config.data_dir.join("tether.db"))
        .map_err(|e| StartError(format!("cannot open the store: {e}")))?;
    let shared = Shared::new(store, config.data_dir.clone(), config.workspace.clone());
    let recovered = shared.recover().await.map_err(|e| StartError(format!("recovery failed: {e}")))?;
    if recovered > 0 {
        tracing::info!(sessions = recovered, "closed turns left open by a previous run");
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = Arc::new(AppState {
        shared,
        token: config.token.clone(),
        started,
        keepalive: config.keepalive,
        stream_idle: config.stream_idle,
        max_body_bytes: config.max_body_bytes,
        max_upload_bytes: config.max_upload_bytes,
        shutdown: shutdown_rx,
    });
    let sprite = config.sprite_socket.as_deref().and_then(SpriteApi::detect);
    if let Some(api) = &sprite {
        tracing::info!(socket = %api.socket().display(), "inside a Sprite: keeping it awake while agents work");
    }
    let platform = Platform {
        sprite,
        keep_awake_expire: config.keep_awake_expire,
        keep_awake_refresh: config.keep_awake_refresh,
        pause_threshold: config.pause_threshold,
    };
    Ok(Prepared { app, shutdown_tx, platform })
}

/// Serves on `listener` until `shutdown` resolves, then ends SSE streams and agents.
pub async fn serve(
    prepared: Prepared,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Prepared { app, shutdown_tx, platform } = prepared;
    let shared = app.shared.clone();
    let pauses = tokio::spawn(crate::wake::watch(shared.clone(), platform.pause_threshold));
    let keeper = platform.sprite.map(|api| {
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        let config = KeepAwakeConfig {
            expire: platform.keep_awake_expire,
            refresh: platform.keep_awake_refresh,
            ..KeepAwakeConfig::for_port(port)
        };
        Keeper::start(api, config, shared.clone())
    });
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let router = router(app);
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = shutdown_tx.send(true);
        let _ = stopped_tx.send(());
    });
    let mut server = tokio::spawn(async move { server.await });
    let mut stopped_rx = stopped_rx;
    let mut finished = None;
    tokio::select! {
        biased;
        _ = &mut stopped_rx => {}
        r = &mut server => {
            let r = r.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            // Graceful shutdown can finish in the same instant the signal fires:
            // only an unrequested end of the server skips stopping the agents.
            if stopped_rx.try_recv().is_err() {
                return r;
            }
            finished = Some(r);
        }
    }
    tracing::info!("shutting down");
    // Agents first (they need the store), then whatever connections remain.
    pauses.abort();
    shared.shutdown().await;
    if let Some(keeper) = keeper {
        keeper.stop().await;
    }
    match finished {
        Some(r) => r,
        None => match tokio::time::timeout(Duration::from_millis(500), server).await {
            Ok(Ok(r)) => r,
            _ => Ok(()),
        },
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);
