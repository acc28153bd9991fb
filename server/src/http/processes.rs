//! Process routes (`/v1/processes`) and the terminals: a process's (read and
//! write) and a session agent's PTY (read-only). The processes themselves,
//! their output and screen live in `crate::exec`; this module answers them
//! over HTTP and WebSocket.
//!
//! A terminal WebSocket sends the output from an offset (all that is kept,
//! by default) and then live, as binary messages; text messages are JSON
//! `TerminalControl`. Each client follows the output log by offset on its
//! own: a slow one holds back only itself, and if it falls behind what is
//! kept it is told what it `missed` and goes on from the oldest kept byte.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use tether_protocol::{
    CreateProcess, OutputQuery, Process, ProcessEnd, ProcessInput, ProcessList, ProcessOutput, ProcessResize,
    ProcessSignal, Screen, TerminalControl, TerminalQuery, MAX_INPUT_BYTES,
};
use tokio::sync::mpsc;

use super::events::ws::refuse;
use super::{ApiJson, ApiQuery, AppRef};
use crate::exec::Entry;
use crate::http::ApiError;
use crate::process::OutputLog;

/// Most bytes in one binary message to a terminal client.
const FRAME_BYTES: usize = 64 * 1024;
/// A ping this often keeps an idle terminal open through proxies.
const PING_EVERY: Duration = Duration::from_secs(20);

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/processes", get(list).post(create))
        .route("/v1/processes/{id}", get(one).delete(remove))
        .route("/v1/processes/{id}/input", post(input))
        .route("/v1/processes/{id}/resize", post(resize))
        .route("/v1/processes/{id}/signal", post(signal))
        .route("/v1/processes/{id}/output", get(output))
        .route("/v1/processes/{id}/screen", get(screen))
        .route("/v1/processes/{id}/terminal", get(process_terminal))
        .route("/v1/sessions/{id}/terminal", get(session_terminal))
}

async fn create(State(app): State<AppRef>, ApiJson(req): ApiJson<CreateProcess>) -> Result<Response, ApiError> {
    let cwd = app.shared.resolve_cwd(req.cwd.as_deref())?;
    if let Some(session) = &req.session_id {
        app.shared.get(session).await?;
    }
    let processes = app.processes.clone();
    let started = tokio::task::spawn_blocking(move || processes.start(req, cwd))
        .await
        .map_err(|e| ApiError::internal(format!("starting a process failed: {e}")))??;
    Ok((StatusCode::CREATED, Json(started)).into_response())
}

async fn list(State(app): State<AppRef>) -> Json<ProcessList> {
    Json(ProcessList { processes: app.processes.list() })
}

async fn one(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Process>, ApiError> {
    Ok(Json(app.processes.get(&id)?.record()))
}

/// Answers once the whole group is gone.
async fn remove(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Process>, ApiError> {
    let entry = app.processes.get(&id)?;
    Ok(Json(entry.stop(ProcessEnd::Stopped).await))
}

async fn input(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ProcessInput>,
) -> Result<StatusCode, ApiError> {
    let entry = app.processes.get(&id)?;
    entry.write(Entry::input_bytes(req)?)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn resize(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ProcessResize>,
) -> Result<Json<Process>, ApiError> {
    Ok(Json(app.processes.get(&id)?.resize(req.cols, req.rows)?))
}

async fn signal(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ProcessSignal>,
) -> Result<StatusCode, ApiError> {
    app.processes.get(&id)?.signal(req.signal)?;
    Ok(StatusCode::NO_CONTENT)
}

/// JSON by default; the bytes alone for `Accept: application/octet-stream`.
async fn output(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<OutputQuery>,
) -> Result<Response, ApiError> {
    let entry = app.processes.get(&id)?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.map(|l| l.clamp(1, crate::exec::MAX_READ as u64) as usize).unwrap_or(crate::exec::MAX_READ);
    let wants_bytes = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/octet-stream") && !a.contains("application/json"));
    if !wants_bytes {
        return Ok(Json::<ProcessOutput>(entry.output(after, limit)).into_response());
    }
    let chunk = entry.output.read(after, limit);
    let mut resp = (StatusCode::OK, chunk.bytes.clone()).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    for (name, value) in [
        ("tether-output-start", chunk.start),
        ("tether-output-end", chunk.end()),
        ("tether-output-missed", chunk.missed),
    ] {
        h.insert(name, HeaderValue::from(value));
    }
    Ok(resp)
}

async fn screen(State(app): State<AppRef>, Path(id): Path<String>) -> Result<Json<Screen>, ApiError> {
    Ok(Json(app.processes.get(&id)?.screen()?))
}

async fn process_terminal(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TerminalQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let path = format!("/v1/processes/{id}/terminal");
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(r) => return refuse(&path, r, "or read GET .../output?after=OFFSET"),
    };
    let entry = match app.processes.get(&id) {
        Ok(e) => e,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let read_only = q.read_only.unwrap_or(false);
    let log = entry.output.clone();
    let shutdown = app.shutdown.clone();
    limits(upgrade).on_upgrade(move |socket| attach(socket, log, Some(entry), q.after, read_only, shutdown))
}

async fn session_terminal(
    State(app): State<AppRef>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TerminalQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let path = format!("/v1/sessions/{id}/terminal");
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(r) => return refuse(&path, r, "or read the session's events at .../events/stream"),
    };
    let session = match app.shared.get(&id).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let log = app.shared.terminal_log(&Arc::from(session.id.as_str()));
    let shutdown = app.shutdown.clone();
    limits(upgrade).on_upgrade(move |socket| attach(socket, log, None, q.after, true, shutdown))
}

fn limits(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    // Input frames are at most MAX_INPUT_BYTES; a little room for the framing.
    // A browser that offered subprotocols (the token's, beside `tether`) fails a socket answered with none.
    upgrade
        .max_message_size(MAX_INPUT_BYTES + 1024)
        .max_frame_size(MAX_INPUT_BYTES + 1024)
        .protocols([super::WS_PROTOCOL])
}

/// One attached client: the output from `after` then live (a task of its
/// own), and what the client sends (input, resize, replay) here.
async fn attach(
    socket: WebSocket,
    log: Arc<OutputLog>,
    entry: Option<Arc<Entry>>,
    after: Option<u64>,
    read_only: bool,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let (sink, mut stream) = socket.split();
    let (replay_tx, replay_rx) = mpsc::channel::<u64>(4);
    let exit_of = entry.clone();
    let entry = entry.filter(|_| !read_only);
    let mut sender = tokio::spawn(send_output(sink, log, after, read_only, replay_rx, exit_of, shutdown));
    loop {
        tokio::select! {
            _ = &mut sender => return,
            msg = stream.next() => {
                let Some(Ok(msg)) = msg else { break };
                match msg {
                    Message::Binary(bytes) => {
                        if let Some(e) = &entry {
                            // An ended process takes no input; its `exit` is on the way.
                            let _ = e.write(bytes.to_vec());
                        }
                    }
                    Message::Text(text) => match serde_json::from_str::<TerminalControl>(&text) {
                        Ok(TerminalControl::Resize { cols, rows }) => {
                            if let Some(e) = &entry {
                                if let Err(err) = e.resize(cols, rows) {
                                    tracing::debug!(error = %err, "a terminal resize was refused");
                                }
                            }
                        }
                        Ok(TerminalControl::Replay { after }) => {
                            let _ = replay_tx.send(after).await;
                        }
                        _ => {}
                    },
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        }
    }
    sender.abort();
}

async fn send_output(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    log: Arc<OutputLog>,
    after: Option<u64>,
    read_only: bool,
    mut replay: mpsc::Receiver<u64>,
    entry: Option<Arc<Entry>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut state = log.subscribe();
    let mut cursor = after.unwrap_or_else(|| log.state().start);
    let mut announce = true;
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let chunk = log.read(cursor, FRAME_BYTES);
        if announce {
            announce = false;
            let attached = TerminalControl::Attached { offset: chunk.start, missed: chunk.missed, read_only };
            if send_control(&mut sink, &attached).await.is_err() {
                return;
            }
        } else if chunk.missed > 0 {
            let missed = TerminalControl::Missed { from: cursor, to: chunk.start };
            if send_control(&mut sink, &missed).await.is_err() {
                return;
            }
        }
        cursor = chunk.end();
        if !chunk.bytes.is_empty() {
            if sink.send(Message::Binary(chunk.bytes.into())).await.is_err() {
                return;
            }
            continue;
        }
        let st = log.state();
        if st.ended && cursor >= st.end {
            let record = entry.as_ref().map(|e| e.record());
            let exit = TerminalControl::Exit {
                exit_code: record.as_ref().and_then(|r| r.exit_code),
                signal: record.as_ref().and_then(|r| r.signal.clone()),
                end: st.end,
            };
            let _ = send_control(&mut sink, &exit).await;
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: close_code::NORMAL,
                    reason: Utf8Bytes::from_static("the process ended"),
                })))
                .await;
            return;
        }
        tokio::select! {
            changed = state.changed() => if changed.is_err() { return },
            Some(from) = replay.recv() => {
                cursor = from;
                announce = true;
            }
            _ = ping.tick() => {
                if sink.send(Message::Ping(bytes::Bytes::new())).await.is_err() {
                    return;
                }
            }
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::AWAY,
                        reason: Utf8Bytes::from_static("server shutting down"),
                    })))
                    .await;
                return;
            }
        }
    }
}

async fn send_control(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    control: &TerminalControl,
) -> Result<(), axum::Error> {
    let text = serde_json::to_string(control).unwrap_or_default();
    sink.send(Message::Text(Utf8Bytes::from(text))).await
}
