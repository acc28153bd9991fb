//! Webhook routes: create, list, read and delete subscriptions. The rules,
//! the delivery and the code of each failure (`WebhookError`) live in
//! `crate::webhooks`; this module only answers them over HTTP.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tether_protocol::{CreateWebhook, Webhook, WebhookList};

use super::{ApiJson, AppRef};
use crate::http::ApiError;

pub fn router() -> Router<AppRef> {
    Router::new().route("/v1/webhooks", get(list).post(create)).route("/v1/webhooks/{id}", get(one).delete(remove))
}

/// 201 with the new webhook's view.
async fn create(State(app): State<AppRef>, ApiJson(req): ApiJson<CreateWebhook>) -> Result<Response, ApiError> {
    let hook = app.webhooks.create(req).await?;
    Ok((StatusCode::CREATED, Json(hook)).into_response())
}

async fn list(State(app): State<AppRef>) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(WebhookList { webhooks: app.webhooks.list().await? }))
}

async fn one(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(app.webhooks.get(&id).await?))
}

/// Stops the delivery at once and answers the removed webhook.
async fn remove(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(app.webhooks.delete(&id).await?))
}
