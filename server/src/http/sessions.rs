//! Session routes: create, list, get, delete, messages, interrupt, and the
//! answers to permission requests and questions.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use tether_protocol::{
    CreateSession, MessageAccepted, PermissionReply, QuestionReply, SendMessage, Session, SessionDeleteQuery,
    SessionList, SessionListQuery,
};

use super::{ApiJson, ApiQuery, AppRef};
use crate::http::ApiError;

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/sessions", post(create).get(list))
        .route("/v1/sessions/{id}", get(one).delete(delete))
        .route("/v1/sessions/{id}/messages", post(message))
        .route("/v1/sessions/{id}/interrupt", post(interrupt))
        .route("/v1/sessions/{id}/permissions/{permission_id}", post(permission))
        .route("/v1/sessions/{id}/questions/{question_id}", post(question))
}

/// The caller's W3C `traceparent`, when it sent one: the turn a request
/// starts joins that trace.
fn traceparent(headers: &HeaderMap) -> Option<&str> {
    headers.get(crate::telemetry::TRACEPARENT).and_then(|v| v.to_str().ok())
}

async fn create(
    State(app): State<AppRef>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<CreateSession>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    let session = app.shared.create(req, traceparent(&headers)).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

async fn list(
    State(app): State<AppRef>,
    ApiQuery(q): ApiQuery<SessionListQuery>,
) -> Result<Json<SessionList>, ApiError> {
    Ok(Json(app.shared.list(q.status, q.agent, q.limit, q.cursor.as_deref()).await?))
}

async fn one(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Session>, ApiError> {
    Ok(Json(app.shared.get(&id).await?.to_api()))
}

async fn delete(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SessionDeleteQuery>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(app.shared.delete(&id, q.purge).await?))
}

async fn message(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    let parts = body.into_parts().map_err(ApiError::invalid)?;
    let turn_id = app.shared.send(&id, parts, traceparent(&headers)).await?;
    Ok((StatusCode::ACCEPTED, Json(MessageAccepted { turn_id })))
}

async fn interrupt(State(app): State<AppRef>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.shared.interrupt(&id).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn permission(
    State(app): State<AppRef>,
    Path((id, permission_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<PermissionReply>,
) -> Result<StatusCode, ApiError> {
    app.shared.permission(&id, permission_id, body.decision, body.message).await?;
    Ok(StatusCode::OK)
}

async fn question(
    State(app): State<AppRef>,
    Path((id, question_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<QuestionReply>,
) -> Result<StatusCode, ApiError> {
    app.shared.question(&id, question_id, body).await?;
    Ok(StatusCode::OK)
}
