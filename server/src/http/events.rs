//! Event routes: pages of a session's events, and event streams (one
//! session, or every session) over SSE or WebSocket that resume after a
//! cursor with no gap and no duplicate.
//!
//! Both transports share one pump ([`pump`]), which reads the log through
//! the store's follower ([`crate::store::follow`]): it subscribes to the
//! live bus first, then catches up from the store, then forwards live
//! events, skipping any at or below its cursor; when it falls behind the bus
//! (a slow client) it goes back to the store. So a slow client costs only
//! its own catch-up reads: it never blocks the agent or other clients, and
//! the server holds at most the bus's fixed window. A transport only says how
//! frames look ([`pump::Framing`]): `text/event-stream` here, WebSocket
//! messages in [`ws`].
//!
//! `?types=a,b` limits any stream to those event types (the cursor moves
//! past the others all the same), so a client that only watches statuses
//! is not sent every streamed token.
//!
//! A session's stream ends after its last event, `session.ended` (at once
//! for a session already over whose cursor is past it); the global stream
//! goes on.
//!
//! A cursor beyond what the store holds (the data dir went back in time, e.g.
//! a checkpoint restore) is answered explicitly: the page route with `409
//! cursor_ahead`, a stream with a first `stream.reset` frame naming the real
//! last cursor, after which it goes on from there.
//!
//! One client address holds at most `--max-streams-per-client` streams
//! ([`slots`]); past that a stream is `503 too_many_streams` with
//! `Retry-After`.

mod pump;
mod slots;
pub(super) mod ws;

pub use slots::{StreamSlot, StreamSlots};

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use tether_protocol::{EventPageQuery, SessionStatus, StreamQuery, StreamReset};
use tokio::sync::mpsc;

use super::{resume_cursor, ApiQuery, AppRef};
use crate::connections::ClientAddr;
use crate::http::ApiError;
use crate::store::follow::{Follower, Scope};
use crate::store::reader;

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/sessions/{id}/events", get(page))
        .route("/v1/sessions/{id}/events/stream", get(session_stream))
        .route("/v1/events/stream", get(global_stream))
        .route("/v1/sessions/{id}/events/ws", get(ws::session_ws))
        .route("/v1/events/ws", get(ws::global_ws))
}

async fn page(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<EventPageQuery>,
) -> Result<Response, ApiError> {
    let body = app.shared.events_page(&id, q.after, q.limit, q.include_raw).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The event types a stream is limited to (`?types=`).
type Types = Arc<[&'static str]>;

/// A stream ready to be pumped: subscribed to the bus, its cursor checked
/// against the store.
struct Opened {
    /// Subscribed; its cursor is where the stream starts: events after it
    /// are sent (no more than the store's last cursor).
    follower: Follower,
    include_raw: bool,
    /// Sent first when the client's cursor was beyond the store's last one.
    reset: Option<StreamReset>,
    /// A session stream whose session was over (ended or failed) when it opened.
    over: bool,
    /// Only events of these types are sent (the cursor still moves past the others).
    types: Option<Types>,
}

/// Subscribes, then reads the store's last cursor for `scope` (a session
/// that does not exist is `404`). Subscribing first means nothing committed
/// between the two is missed; reading after it means a cursor above the
/// last one read was never committed in this store.
async fn open(app: &AppRef, scope: Scope, after: u64, q: &StreamQuery) -> Result<Opened, ApiError> {
    let types: Option<Types> = q.types().map_err(ApiError::invalid)?.map(Into::into);
    let include_raw = q.include_raw;
    let follower = Follower::subscribe(&app.shared.store, scope.clone());
    let (last, over) = match &scope {
        Scope::Session(id) => {
            let row = app.shared.get(id).await?;
            (row.last_seq, matches!(row.status, SessionStatus::Ended | SessionStatus::Failed))
        }
        Scope::Global => (app.shared.store.read(reader::last_gseq).await?, false),
    };
    let reset = (after > last).then(|| StreamReset {
        last_seq: last,
        store_id: app.shared.store.store_id().to_string(),
        after: Some(after),
    });
    if let Some(reset) = &reset {
        tracing::info!(after, last = reset.last_seq, "a stream asked for a cursor beyond the store: stream.reset");
    }
    Ok(Opened { follower: follower.at(after.min(last)), include_raw, reset, over, types })
}

/// A stream slot of the client the request came from, or `503
/// too_many_streams`. A request with no client address (the router called
/// in-process) is not counted.
fn slot(app: &AppRef, client: Option<Extension<ClientAddr>>) -> Result<Option<StreamSlot>, ApiError> {
    let Some(Extension(ClientAddr(addr))) = client else { return Ok(None) };
    match app.streams.take(addr.ip()) {
        Some(slot) => Ok(Some(slot)),
        None => Err(ApiError::too_many_streams(format!(
            "this client ({}) already holds {} event streams (--max-streams-per-client); close one, or try again \
             after the Retry-After",
            addr.ip(),
            app.streams.per_client()
        ))),
    }
}

async fn session_stream(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let cursor = resume_cursor(&headers, q.after)?;
    let slot = slot(&app, client)?;
    let opened = open(&app, Scope::Session(Arc::from(id)), cursor, &q).await?;
    Ok(sse(app, opened, slot))
}

async fn global_stream(
    State(app): State<AppRef>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let cursor = resume_cursor(&headers, q.after)?;
    let slot = slot(&app, client)?;
    let opened = open(&app, Scope::Global, cursor, &q).await?;
    Ok(sse(app, opened, slot))
}

/// The stream's pump on a task of its own (holding the client's slot), its chunks as the body.
fn sse(app: AppRef, opened: Opened, slot: Option<StreamSlot>) -> Response {
    let (tx, rx) = mpsc::channel(pump::CHANNEL_CHUNKS);
    tokio::spawn(async move {
        let _slot = slot;
        pump::pump(app, opened, pump::Sse::default(), tx).await
    });
    super::sse_response(super::frames_of(rx))
}
