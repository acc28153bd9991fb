//! Service routes: health, info, the OpenAPI document, Prometheus metrics.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tether_protocol::{Health, Info, StoreStatus};

use super::AppRef;
use crate::http::ApiError;
use crate::store::{reader, StallKind};

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/info", get(info))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
}

/// `ok`, or `degraded` (still 200: the server answers) with why.
async fn health(State(app): State<AppRef>) -> Json<Health> {
    let mut reasons = Vec::new();
    match app.shared.disk.state() {
        crate::store::DiskState::Ok => {}
        crate::store::DiskState::Low => reasons.push("disk_low".to_string()),
        crate::store::DiskState::Full => reasons.push("disk_full".to_string()),
    }
    if app.shared.store.health().is_stalled() {
        reasons.push("store_stalled".to_string());
    }
    let status = if reasons.is_empty() { "ok" } else { "degraded" };
    Json(Health { status: status.into(), reasons })
}

async fn info(State(app): State<AppRef>) -> Result<Json<Info>, ApiError> {
    let last_gseq = app.shared.store.read(reader::last_gseq).await?;
    let sprite = match &app.sprite {
        Some(here) => Some(here.status().await),
        None => None,
    };
    Ok(Json(Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_ms: app.started.elapsed().as_millis() as u64,
        data_dir: app.shared.data_dir.display().to_string(),
        workspace_root: app.shared.workspace.display().to_string(),
        capabilities: ["sessions", "events", "sse", "replay", "mock_agent", "ui", "webhooks"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        last_gseq,
        store_id: app.shared.store.store_id().to_string(),
        boot_id: app.shared.boot_id.clone(),
        store: store_status(app.shared.store.health()),
        sprite,
    }))
}

fn store_status(health: &crate::store::StoreHealth) -> StoreStatus {
    let (last_error_at, last_error) = match health.last_error() {
        Some((at, e)) => (Some(crate::ids::rfc3339_ms(at)), Some(e)),
        None => (None, None),
    };
    let mut status =
        StoreStatus { last_error, last_error_at, commit_failures: health.commit_failures(), ..Default::default() };
    if let Some(stall) = health.stall() {
        status.state = "stalled".into();
        status.reason = Some(stall.kind.as_str().into());
        status.stalled_since = Some(crate::ids::rfc3339_ms(stall.since_ms));
        status.stalled_ms = Some(stall.since.elapsed().as_millis() as u64);
        status.held_events = Some(stall.held_events);
    }
    status
}

/// The document as this server serves it: a session's `agent` also takes
/// the agents the user declared.
pub fn served_openapi() -> serde_json::Value {
    let mut doc = tether_protocol::openapi::openapi();
    let declared = crate::agents::declared::declared();
    if let Some(serde_json::Value::Array(ids)) =
        doc.pointer_mut("/components/schemas/CreateSession/properties/agent/enum")
    {
        ids.extend(declared.iter().map(|d| serde_json::Value::from(d.id)));
    }
    doc
}

async fn openapi() -> impl IntoResponse {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| served_openapi().to_string());
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
    let health = app.shared.store.health();
    let stall = health.stall();
    out.push_str("# HELP tether_store_stalled 1 while the store cannot commit (events are held back and retried).\n# TYPE tether_store_stalled gauge\n");
    for kind in [StallKind::DiskFull, StallKind::ReadOnly, StallKind::Io] {
        let on = stall.as_ref().is_some_and(|s| s.kind == kind) as u8;
        out.push_str(&format!("tether_store_stalled{{reason=\"{}\"}} {on}\n", kind.as_str()));
    }
    out.push_str(&format!(
        "# HELP tether_store_stalled_seconds How long the current stall has lasted (0 when none).\n# TYPE tether_store_stalled_seconds gauge\ntether_store_stalled_seconds {:.3}\n\
         # HELP tether_store_commit_failures_total Commits that failed and were retried.\n# TYPE tether_store_commit_failures_total counter\ntether_store_commit_failures_total {}\n\
         # HELP tether_store_stalls_total Stalls of the store since the start.\n# TYPE tether_store_stalls_total counter\ntether_store_stalls_total {}\n",
        stall.as_ref().map(|s| s.since.elapsed().as_secs_f64()).unwrap_or(0.0),
        health.commit_failures(),
        health.stalls(),
    ));
    let m = &app.shared.metrics;
    out.push_str(&format!(
        "# HELP tether_events_stored Events in the store.\n# TYPE tether_events_stored gauge\ntether_events_stored {events}\n\
         # HELP tether_sse_clients Open event streams (SSE and WebSocket).\n# TYPE tether_sse_clients gauge\ntether_sse_clients {}\n\
         # HELP tether_agent_processes Running agent processes.\n# TYPE tether_agent_processes gauge\ntether_agent_processes {}\n\
         # HELP tether_allocations_total Memory allocations the server made (a cost count for benchmarks and tests).\n# TYPE tether_allocations_total counter\ntether_allocations_total {}\n",
        m.sse_clients.load(Ordering::Relaxed),
        m.agent_processes.load(Ordering::Relaxed),
        crate::alloc::allocations(),
    ));
    out.push_str(&app.shared.telemetry.prometheus());
    out.push_str(&app.webhooks.metrics().await?);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out))
}
