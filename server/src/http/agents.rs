//! Agent routes: what agents this server knows, whether they are installed,
//! and installing the pinned version of one (progress as SSE on request).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tether_protocol::{Agent, AgentList};

use super::AppRef;
use crate::agents::{self, install, AgentDef};
use crate::http::ApiError;

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/agents", get(list))
        .route("/v1/agents/{agent}", get(one))
        .route("/v1/agents/{agent}/install", post(install_agent))
}

async fn list(State(app): State<AppRef>) -> Json<AgentList> {
    Json(agents::list(&app.shared.data_dir).await)
}

fn find(id: &str) -> Result<&'static AgentDef, ApiError> {
    agents::find(id).ok_or_else(|| {
        let known: Vec<&str> = agents::all().map(|a| a.id).collect();
        ApiError::not_found(format!("no agent {id:?}; known agents: {}", known.join(", ")))
    })
}

async fn one(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Agent>, ApiError> {
    Ok(Json(agents::describe(find(&id)?, &app.shared.data_dir).await))
}

/// Installs the pinned version. With `Accept: text/event-stream` the answer is
/// SSE: `progress` events, then one `done` (the agent) or `error` (a problem).
async fn install_agent(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let def = find(&id)?;
    if def.id == "mock" {
        return Ok(Json(agents::describe(def, &app.shared.data_dir).await).into_response());
    }
    let sse =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    let data_dir = app.shared.data_dir.clone();
    if !sse {
        install::install(def, &data_dir, |p| tracing::info!(agent = def.id, stage = p.stage, "{}", p.message))
            .await
            .map_err(ApiError::from)?;
        return Ok(Json(agents::describe(def, &data_dir).await).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let frame = |event: &str, data: String| Bytes::from(format!("event: {event}\ndata: {data}\n\n"));
    tokio::spawn(async move {
        let progress_tx = tx.clone();
        let result = install::install(def, &data_dir, move |p| {
            let _ = progress_tx.send(frame("progress", serde_json::to_string(&p).unwrap_or_default()));
        })
        .await;
        let last = match result {
            Ok(_) => frame("done", serde_json::to_string(&agents::describe(def, &data_dir).await).unwrap_or_default()),
            Err(e) => frame("error", serde_json::to_string(&ApiError::from(e).to_problem()).unwrap_or_default()),
        };
        let _ = tx.send(last);
    });
    // Unbounded: the progress callback cannot wait, and an install sends a few dozen frames.
    let frames = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok(super::sse_response(frames))
}
