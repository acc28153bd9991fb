//! Service routes: health, info, the OpenAPI document, Prometheus metrics.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tether_protocol::{Health, Info};

use super::AppRef;
use crate::error::ApiError;
use crate::store::reader;

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/info", get(info))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

async fn info(State(app): State<AppRef>) -> Result<Json<Info>, ApiError> {
    let last_gseq = app.shared.store.read(reader::last_gseq).await?;
    Ok(Json(Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_ms: app.started.elapsed().as_millis() as u64,
        data_dir: app.shared.data_dir.display().to_string(),
        workspace_root: app.shared.workspace.display().to_string(),
        capabilities: ["sessions", "events", "sse", "replay", "mock_agent", "ui"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        last_gseq,
        store_id: app.shared.store.store_id().to_string(),
        boot_id: app.shared.boot_id.clone(),
    }))
}

async fn openapi() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| tether_protocol::openapi::openapi().to_string());
    ([(header::CONTENT_TYPE, "application/json")], doc.as_str())
}

async fn metrics(State(app): State<AppRef>) -> Result<impl IntoResponse, ApiError> {
    let (by_status, events) = app
        .shared
        .store
        .read(|c| {
            let mut stmt = c.prepare("SELECT status, COUNT(*) FROM sessions GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            let by_status = rows.collect::<Result<Vec<_>, _>>()?;
            Ok((by_status, reader::event_count(c)?))
        })
        .await?;
    let mut out = String::new();
    out.push_str("# HELP tether_sessions Sessions by status.\n# TYPE tether_sessions gauge\n");
    for status in ["starting", "idle", "running", "waiting", "ended", "failed"] {
        let n = by_status.iter().find(|(s, _)| s == status).map(|(_, n)| *n).unwrap_or(0);
        out.push_str(&format!("tether_sessions{{status=\"{status}\"}} {n}\n"));
    }
    let m = &app.shared.metrics;
    out.push_str(&format!(
        "# HELP tether_events_stored Events in the store.\n# TYPE tether_events_stored gauge\ntether_events_stored {events}\n\
         # HELP tether_sse_clients Open event streams (SSE and WebSocket).\n# TYPE tether_sse_clients gauge\ntether_sse_clients {}\n\
         # HELP tether_agent_processes Running agent processes.\n# TYPE tether_agent_processes gauge\ntether_agent_processes {}\n",
        m.sse_clients.load(Ordering::Relaxed),
        m.agent_processes.load(Ordering::Relaxed),
    ));
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
