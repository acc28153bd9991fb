//! Event routes: pages of a session's events, and SSE streams (one session,
//! or every session) that resume after a cursor with no gap and no duplicate.
//!
//! A stream subscribes to the live bus first, then catches up from the store,
//! then forwards live events, skipping any at or below its cursor. When it
//! falls behind the bus (a slow client) it goes back to the store. So a slow
//! client costs only its own catch-up reads: it never blocks the agent or
//! other clients, and the server holds at most the bus's fixed window.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use super::{resume_cursor, ApiQuery, AppRef};
use crate::error::ApiError;
use crate::store::{reader, Committed};

/// Events read from the store per catch-up query.
const CATCH_UP_PAGE: u32 = 2000;
/// Most bytes gathered into one body chunk.
const CHUNK_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/sessions/{id}/events", get(page))
        .route("/v1/sessions/{id}/events/stream", get(session_stream))
        .route("/v1/events/stream", get(global_stream))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PageQuery {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
    #[serde(default)]
    include_raw: bool,
}

async fn page(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let body = app.shared.events_page(&id, q.after, q.limit, q.include_raw).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    after: Option<u64>,
    #[serde(default)]
    include_raw: bool,
}

/// Which events a stream carries and which cursor it counts in.
#[derive(Clone)]
enum Scope {
    Session(Arc<str>),
    Global,
}

impl Scope {
    fn cursor(&self, e: &Committed) -> u64 {
        match self {
            Scope::Session(_) => e.seq,
            Scope::Global => e.gseq,
        }
    }

    fn wants(&self, e: &Committed) -> bool {
        match self {
            Scope::Session(id) => *e.session_id == **id,
            Scope::Global => true,
        }
    }
}

async fn session_stream(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let cursor = resume_cursor(&headers, q.after)?;
    app.shared.get(&id).await?;
    Ok(sse(app, Scope::Session(Arc::from(id)), cursor, q.include_raw))
}

async fn global_stream(
    State(app): State<AppRef>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let cursor = resume_cursor(&headers, q.after)?;
    Ok(sse(app, Scope::Global, cursor, q.include_raw))
}

fn sse(app: AppRef, scope: Scope, cursor: u64, include_raw: bool) -> Response {
    // Subscribe before the first store read, so nothing committed in between is missed.
    let bus = app.shared.store.subscribe();
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    tokio::spawn(pump(app, scope, cursor, include_raw, bus, tx));
    super::sse_response(super::frames_of(rx))
}

struct ClientGauge(AppRef);

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.shared.metrics.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Feeds one SSE client until it goes away or the server shuts down.
async fn pump(
    app: AppRef,
    scope: Scope,
    mut cursor: u64,
    include_raw: bool,
    mut bus: broadcast::Receiver<Arc<Committed>>,
    tx: mpsc::Sender<Bytes>,
) {
    app.shared.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
    let _gauge = ClientGauge(app.clone());
    let mut shutdown = app.shutdown.clone();
    // Send the headers and a first comment at once, so clients know the stream is open.
    if tx.send(Bytes::from_static(b": connected\n\n")).await.is_err() {
        return;
    }
    let mut keepalive = tokio::time::interval(app.keepalive);
    keepalive.reset();
    'outer: loop {
        // Catch up from the store.
        loop {
            let store = app.shared.store.clone();
            let s = scope.clone();
            let page = store
                .read(move |c| match &s {
                    Scope::Session(id) => reader::session_events(c, id, cursor, CATCH_UP_PAGE),
                    Scope::Global => reader::global_events(c, cursor, CATCH_UP_PAGE),
                })
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "SSE catch-up read failed; closing the stream");
                    return;
                }
            };
            let full = page.len() == CATCH_UP_PAGE as usize;
            let mut buf = Vec::with_capacity(CHUNK_BYTES);
            for e in &page {
                cursor = scope.cursor(e);
                e.write_sse(cursor, include_raw, &mut buf);
                if buf.len() >= CHUNK_BYTES && tx.send(Bytes::from(std::mem::take(&mut buf))).await.is_err() {
                    return;
                }
            }
            if !buf.is_empty() && tx.send(Bytes::from(buf)).await.is_err() {
                return;
            }
            if !full {
                break;
            }
        }
        // Live.
        loop {
            let first = tokio::select! {
                r = bus.recv() => r,
                _ = keepalive.tick() => {
                    if tx.send(Bytes::from_static(b": keepalive\n\n")).await.is_err() {
                        return;
                    }
                    continue;
                }
                _ = shutdown.changed() => return,
            };
            let mut buf = Vec::new();
            let mut next = Some(first);
            while let Some(r) = next.take() {
                match r {
                    Ok(e) => {
                        if scope.wants(&e) && scope.cursor(&e) > cursor {
                            cursor = scope.cursor(&e);
                            e.write_sse(cursor, include_raw, &mut buf);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !buf.is_empty() && tx.send(Bytes::from(buf)).await.is_err() {
                            return;
                        }
                        continue 'outer;
                    }
                    Err(broadcast::error::RecvError::Closed) => break 'outer,
                }
                if buf.len() < CHUNK_BYTES {
                    next = match bus.try_recv() {
                        Ok(e) => Some(Ok(e)),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            Some(Err(broadcast::error::RecvError::Lagged(n)))
                        }
                        Err(_) => None,
                    };
                }
            }
            if !buf.is_empty() {
                if tx.send(Bytes::from(buf)).await.is_err() {
                    return;
                }
                keepalive.reset();
            }
        }
    }
}
