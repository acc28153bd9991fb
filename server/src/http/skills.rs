//! Skill routes: list, read (JSON or tar), install (JSON files or a tar),
//! remove. Storage and validation are `crate::skills`; this module only
//! reads bodies, picks the representation and answers `SkillError` as
//! problem+json (its code is `crate::skills`' own, through `From`).

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use tether_protocol::{Skill, SkillDetail, SkillFiles, SkillList};

use super::{ApiJson, AppRef};
use crate::http::ApiError;
use crate::skills::{self, SkillError, MAX_REQUEST_BYTES};

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/skills", get(list))
        .route("/v1/skills/{name}", get(show).put(put.layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))).delete(remove))
}

/// Runs blocking skill work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SkillError> + Send + 'static,
) -> Result<T, ApiError> {
    let result =
        tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("skills task failed: {e}")))?;
    Ok(result?)
}

async fn list(State(app): State<AppRef>) -> Result<Json<SkillList>, ApiError> {
    let data_dir = app.shared.data_dir.clone();
    Ok(Json(SkillList { skills: blocking(move || skills::list(&data_dir)).await? }))
}

/// Whether the client asked for the tar (`Accept: application/x-tar`).
fn wants_tar(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|v| {
        let mime = v.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        mime == "application/x-tar" || mime == "application/tar"
    })
}

/// `GET /v1/skills/{name}`: the skill and its files' text, or its folder as a tar.
async fn show(State(app): State<AppRef>, Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let data_dir = app.shared.data_dir.clone();
    let lookup = name.clone();
    let contents = blocking(move || skills::get(&data_dir, &lookup)).await?;
    if wants_tar(&headers) {
        let tar = skills::archive(&contents)?;
        let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}.tar\""))
            .unwrap_or(HeaderValue::from_static("attachment"));
        return Response::builder()
            .header(header::CONTENT_TYPE, "application/x-tar")
            .header(header::CONTENT_DISPOSITION, disposition)
            .body(Body::from(tar))
            .map_err(|_| ApiError::internal("could not build the tar response"));
    }
    let files = contents
        .files
        .into_iter()
        .map(|(path, file)| (path, String::from_utf8(file.bytes).unwrap_or_default()))
        .collect();
    let skill = contents.skill;
    Ok(Json(SkillDetail { name: skill.name, description: skill.description, bundled: skill.bundled, files })
        .into_response())
}

/// `PUT /v1/skills/{name}`: `SkillFiles` as JSON, or a tar of the folder;
/// 201 when new, 200 when it replaced an installed version.
async fn put(
    State(app): State<AppRef>,
    Path(name): Path<String>,
    req: Request,
) -> Result<(StatusCode, Json<Skill>), ApiError> {
    skills::validate_name(&name)?;
    if skills::is_bundled(&name) {
        return Err(SkillError::Bundled(name).into());
    }
    let data_dir = app.shared.data_dir.clone();
    let too_large = || {
        ApiError::payload_too_large(format!(
            "the request body is larger than a skill install accepts ({MAX_REQUEST_BYTES} bytes, MAX_REQUEST_BYTES)"
        ))
    };
    let installed = if let Some(gzip) = super::fs::tar_body(req.headers())? {
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_REQUEST_BYTES) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        let mut stream = req.into_body().into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| super::body_read_error(&e))?;
            if body.len() + chunk.len() > MAX_REQUEST_BYTES {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        blocking(move || skills::install_tar(&data_dir, &name, &body, gzip)).await?
    } else {
        let ApiJson(body) = ApiJson::<SkillFiles>::from_request(req, &()).await.map_err(|e| {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else if e.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                ApiError::unsupported_media_type(
                    "the body must be JSON ({\"files\":{\"SKILL.md\":\"..\"}}, Content-Type: application/json) \
                     or a tar of the skill folder (Content-Type: application/x-tar, or application/gzip)",
                )
            } else {
                e
            }
        })?;
        blocking(move || skills::install_files(&data_dir, &name, &body.files)).await?
    };
    let status = if installed.replaced { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(installed.skill)))
}

/// `DELETE /v1/skills/{name}`: 200 with the removed skill.
async fn remove(State(app): State<AppRef>, Path(name): Path<String>) -> Result<Json<Skill>, ApiError> {
    let data_dir = app.shared.data_dir.clone();
    Ok(Json(blocking(move || skills::remove(&data_dir, &name)).await?))
}
