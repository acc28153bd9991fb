//! Webhook routes: create, list, read and delete subscriptions. The rules
//! and the delivery live in `crate::webhooks`; this module maps them to HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tether_protocol::{CreateWebhook, StreamReset, Webhook, WebhookList};

use super::{ApiJson, AppRef};
use crate::error::ErrorCode;
use crate::http::ApiError;
use crate::webhooks::WebhookError;

pub fn router() -> Router<AppRef> {
    Router::new().route("/v1/webhooks", get(list).post(create)).route("/v1/webhooks/{id}", get(one).delete(remove))
}

fn api_error(app: &AppRef, e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid(detail) => ApiError::invalid(detail),
        WebhookError::NotFound(id) => ApiError::of(ErrorCode::WebhookNotFound, format!("no webhook with id {id:?}")),
        e @ WebhookError::UnknownSession { .. } => ApiError::of(ErrorCode::SessionNotFound, e.to_string()),
        WebhookError::CursorAhead { after, last } => ApiError::cursor_ahead(
            "gseq",
            StreamReset { last_seq: last, store_id: app.shared.store.store_id().to_string(), after: Some(after) },
        ),
        WebhookError::Store(e) => ApiError::from(e),
    }
}

/// 201 with the new webhook's view.
async fn create(State(app): State<AppRef>, ApiJson(req): ApiJson<CreateWebhook>) -> Result<Response, ApiError> {
    let hook = app.webhooks.create(req).await.map_err(|e| api_error(&app, e))?;
    Ok((StatusCode::CREATED, Json(hook)).into_response())
}

async fn list(State(app): State<AppRef>) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(WebhookList { webhooks: app.webhooks.list().await.map_err(|e| api_error(&app, e))? }))
}

async fn one(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Webhook>, ApiError> {
    app.webhooks.get(&id).await.map(Json).map_err(|e| api_error(&app, e))
}

/// Stops the delivery at once and answers the removed webhook.
async fn remove(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Webhook>, ApiError> {
    app.webhooks.delete(&id).await.map(Json).map_err(|e| api_error(&app, e))
}
