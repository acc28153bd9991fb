//! Agent routes: what agents this server knows and whether they are installed.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use tether_protocol::{Agent, AgentList};

use super::AppRef;
use crate::agents;
use crate::error::ApiError;

pub fn router() -> Router<AppRef> {
    Router::new().route("/v1/agents", get(list)).route("/v1/agents/{agent}", get(one))
}

async fn list(State(app): State<AppRef>) -> Json<AgentList> {
    let data_dir = &app.shared.data_dir;
    Json(AgentList { agents: agents::AGENTS.iter().map(|d| agents::describe(d, data_dir)).collect() })
}

async fn one(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Agent>, ApiError> {
    let def = agents::find(&id).ok_or_else(|| ApiError::not_found(format!("no agent {id:?}")))?;
    Ok(Json(agents::describe(def, &app.shared.data_dir)))
}
