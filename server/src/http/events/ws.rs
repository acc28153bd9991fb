//! Event streams over WebSocket: `GET /v1/sessions/{id}/events/ws` and
//! `GET /v1/events/ws`, for clients and proxies that handle WebSockets better
//! than long responses.
//!
//! The same pump as SSE (cursor, catch-up, no gap, no duplicate, reset,
//! idle lifetime); only the framing differs: one text message per event (the
//! same JSON as SSE `data:`), a control frame as a text message
//! `{"type":"stream.reset","data":{..}}`, pings as keepalive, and a close
//! frame saying why the stream ends (1000 idle, 1001 shutdown, 1011 store
//! failure). Messages from the client are read (for pongs and its close) and
//! otherwise ignored.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tether_protocol::{StreamControl, StreamEnded};
use tokio::sync::mpsc;

use super::pump::{self, End, Framing};
use super::{open, slot, Opened, Scope, StreamQuery, StreamSlot};
use crate::connections::ClientAddr;
use crate::http::ApiError;
use crate::http::{resume_cursor, ApiQuery, AppRef};
use crate::store::Committed;

/// How long a closing stream waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// Largest message (and frame) taken from a client, which only sends pongs and its close.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// The socket's read buffer: small, since the client sends next to nothing
/// (tungstenite allocates it up front, 128 KiB by default).
const READ_BUFFER: usize = 4 * 1024;

pub(super) async fn session_ws(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let path = format!("/v1/sessions/{id}/events/ws");
    start(app, Scope::Session(id.into()), &path, &headers, client, q, upgrade).await
}

pub(super) async fn global_ws(
    State(app): State<AppRef>,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    start(app, Scope::Global, "/v1/events/ws", &headers, client, q, upgrade).await
}

/// Checks everything (upgrade, cursor, session) before upgrading, so every
/// refusal is a problem+json answer rather than a closed socket.
async fn start(
    app: AppRef,
    scope: Scope,
    path: &str,
    headers: &HeaderMap,
    client: Option<Extension<ClientAddr>>,
    q: StreamQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let cursor = match resume_cursor(headers, q.after) {
        Ok(cursor) => cursor,
        Err(e) => return e.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rejection) => return refuse(path, rejection, "or read the SSE stream at .../events/stream"),
    };
    let slot = match slot(&app, client) {
        Ok(slot) => slot,
        Err(e) => return e.into_response(),
    };
    // Bounded like SSE: a small read buffer, messages written once they
    // reach a chunk, nothing large taken from the client.
    let upgrade = upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(pump::CHUNK_BYTES)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    match open(&app, scope, cursor, &q).await {
        Ok(opened) => upgrade.on_upgrade(move |socket| drive(app, socket, opened, slot)),
        Err(e) => e.into_response(),
    }
}

/// A request that is not a WebSocket upgrade: `426 upgrade_required` (with
/// `Upgrade: websocket`) when it is not asking to upgrade at all, else the
/// status axum gives the defect, as problem+json.
/// `instead` names what a client can do without a WebSocket.
pub(in crate::http) fn refuse(path: &str, rejection: WebSocketUpgradeRejection, instead: &str) -> Response {
    use WebSocketUpgradeRejection as R;
    match rejection {
        R::InvalidConnectionHeader(_) | R::InvalidUpgradeHeader(_) | R::ConnectionNotUpgradable(_) => {
            let e = ApiError::upgrade_required(format!(
                "{path} is a WebSocket: send `Connection: Upgrade` and `Upgrade: websocket` ({instead})"
            ));
            ([(header::UPGRADE, "websocket")], e).into_response()
        }
        R::MethodNotGet(_) | R::MethodNotConnect(_) => {
            ApiError::method_not_allowed(format!("{path} is a WebSocket: open it with GET")).into_response()
        }
        other => {
            let status = other.status();
            let detail = format!("not a valid WebSocket upgrade of {path}: {}", other.body_text());
            if status == StatusCode::BAD_REQUEST || !status.is_client_error() {
                ApiError::invalid(detail).into_response()
            } else {
                ApiError::new(status, crate::error::ErrorCode::InvalidRequest, detail).into_response()
            }
        }
    }
}

/// WebSocket messages: one text message per event or control frame.
#[derive(Default)]
struct Ws {
    msgs: Vec<Message>,
    bytes: usize,
}

impl Ws {
    fn push(&mut self, text: String) {
        self.bytes += text.len();
        self.msgs.push(Message::Text(Utf8Bytes::from(text)));
    }

    fn close(code: u16, reason: String) -> Vec<Message> {
        vec![Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from(reason) }))]
    }
}

impl Framing for Ws {
    type Chunk = Vec<Message>;

    fn event(&mut self, e: &Committed, _cursor: u64, include_raw: bool) {
        self.push(e.json_with(include_raw).into_owned());
    }

    fn control(&mut self, c: &StreamControl, _id: Option<u64>) {
        // The reset's `last_seq` is the cursor; a WebSocket has no frame id.
        if let Ok(text) = serde_json::to_string(c) {
            self.push(text);
        }
    }

    fn buffered(&self) -> usize {
        self.bytes
    }

    fn take(&mut self) -> Option<Vec<Message>> {
        self.bytes = 0;
        (!self.msgs.is_empty()).then(|| std::mem::take(&mut self.msgs))
    }

    fn opened(&self) -> Option<Vec<Message>> {
        None
    }

    fn keepalive(&self) -> Vec<Message> {
        vec![Message::Ping(Bytes::new())]
    }

    fn end(&mut self, why: End) -> Option<Vec<Message>> {
        match why {
            End::Gone => None,
            End::Idle(after) => Some(Ws::close(
                close_code::NORMAL,
                format!("idle: no event for {} s; reconnect with after=", after.as_secs()),
            )),
            End::Shutdown => Some(Ws::close(close_code::AWAY, "server shutting down".into())),
            End::Failed => Some(Ws::close(close_code::ERROR, "the event store could not be read".into())),
            End::Ended(last_seq) => {
                self.control(&StreamControl::Ended(StreamEnded { last_seq }), None);
                let mut last = self.take().unwrap_or_default();
                last.extend(Ws::close(close_code::NORMAL, "the session ended".into()));
                Some(last)
            }
        }
    }
}

/// Aborts the pump when the connection is done, however it ends.
struct AbortOnDrop(tokio::task::JoinHandle<End>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Moves the pump's messages to the socket and reads the client's side
/// (pongs, its close) until either ends; the client's stream slot is held until then.
async fn drive(app: AppRef, socket: WebSocket, opened: Opened, _slot: Option<StreamSlot>) {
    let (tx, mut rx) = mpsc::channel::<Vec<Message>>(pump::CHANNEL_CHUNKS);
    let _pump = AbortOnDrop(tokio::spawn(pump::pump(app, opened, Ws::default(), tx)));
    let (mut sink, mut incoming) = socket.split();
    loop {
        tokio::select! {
            chunk = rx.recv() => {
                let Some(msgs) = chunk else { return };
                let closing = msgs.iter().any(|m| matches!(m, Message::Close(_)));
                for m in msgs {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
                if closing {
                    // Let the client answer the close, so the socket ends cleanly on both sides.
                    let _ = tokio::time::timeout(CLOSE_WAIT, async {
                        while let Some(Ok(m)) = incoming.next().await {
                            if matches!(m, Message::Close(_)) {
                                break;
                            }
                        }
                    })
                    .await;
                    return;
                }
            }
            msg = incoming.next() => match msg {
                // Its close is answered by axum; an error or the end means it is gone.
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
