//! The pump behind every event stream: catch-up from the store, then the
//! live bus, then the store again when the client falls behind; keepalives;
//! the idle lifetime (`--stream-idle-secs`); the end after a session's
//! `session.ended` (its last event: nothing can follow, so a session stream
//! closes once it has sent it, and at once when it opens on a session that
//! is over and already has it); the end at shutdown. It knows
//! nothing of the wire: a [`Framing`] turns events and control frames into
//! the chunks a transport sends (SSE bytes here, WebSocket messages in `ws`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use tether_protocol::{StreamControl, StreamEnded, StreamIdle};
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::{Opened, Scope};
use crate::http::AppRef;
use crate::store::{reader, Committed};

/// Events read from the store per catch-up query.
const CATCH_UP_PAGE: u32 = 2000;
/// Most bytes gathered into one chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// The client went away.
    Gone,
    /// The server is shutting down.
    Shutdown,
    /// No event to send for this long (`--stream-idle-secs`).
    Idle(Duration),
    /// The store could not be read.
    Failed,
    /// A session stream sent its session's last event (`session.ended`, this seq).
    Ended(u64),
}

/// How one transport frames a stream.
pub(super) trait Framing: Send + 'static {
    /// What is handed to the transport at once.
    type Chunk: Send + 'static;
    /// Buffers one event, whose cursor is `cursor`.
    fn event(&mut self, e: &Committed, cursor: u64, include_raw: bool);
    /// Buffers a frame that is not an event; `id` is the cursor it moves the client to, if any.
    fn control(&mut self, c: &StreamControl, id: Option<u64>);
    /// Bytes buffered since the last [`take`](Self::take).
    fn buffered(&self) -> usize;
    /// Everything buffered, as one chunk; `None` when nothing is.
    fn take(&mut self) -> Option<Self::Chunk>;
    /// Sent when the stream opens, before anything else.
    fn opened(&self) -> Option<Self::Chunk>;
    /// Sent after `keepalive` of silence (not an event: it does not count as activity).
    fn keepalive(&self) -> Self::Chunk;
    /// The last chunk, saying why the stream ends (nothing when the client is gone).
    fn end(&mut self, why: End) -> Option<Self::Chunk>;
}

/// `text/event-stream` frames: `id:`, `event:`, `data:`; comments for the rest.
#[derive(Default)]
pub(super) struct Sse {
    buf: Vec<u8>,
}

impl Framing for Sse {
    type Chunk = Bytes;

    fn event(&mut self, e: &Committed, cursor: u64, include_raw: bool) {
        e.write_sse(cursor, include_raw, &mut self.buf);
    }

    fn control(&mut self, c: &StreamControl, id: Option<u64>) {
        use std::io::Write;
        if let Some(id) = id {
            let _ = writeln!(self.buf, "id: {id}");
        }
        let _ = write!(self.buf, "event: {}\ndata: ", c.name());
        let _ = match c {
            StreamControl::Reset(r) => serde_json::to_writer(&mut self.buf, r),
            StreamControl::Idle(i) => serde_json::to_writer(&mut self.buf, i),
            StreamControl::Ended(e) => serde_json::to_writer(&mut self.buf, e),
        };
        self.buf.extend_from_slice(b"\n\n");
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self) -> Option<Bytes> {
        (!self.buf.is_empty()).then(|| Bytes::from(std::mem::take(&mut self.buf)))
    }

    fn opened(&self) -> Option<Bytes> {
        // The headers and a first comment at once, so clients know the stream is open.
        Some(Bytes::from_static(b": connected\n\n"))
    }

    fn keepalive(&self) -> Bytes {
        Bytes::from_static(b": keepalive\n\n")
    }

    fn end(&mut self, why: End) -> Option<Bytes> {
        match why {
            End::Idle(after) => {
                self.control(&StreamControl::Idle(StreamIdle { idle_secs: after.as_secs() }), None);
                self.take()
            }
            End::Ended(last_seq) => {
                self.control(&StreamControl::Ended(StreamEnded { last_seq }), None);
                self.take()
            }
            End::Gone | End::Shutdown | End::Failed => None,
        }
    }
}

struct ClientGauge(AppRef);

impl ClientGauge {
    fn new(app: &AppRef) -> Self {
        app.shared.metrics.sse_clients.fetch_add(1, Ordering::Relaxed);
        ClientGauge(app.clone())
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.shared.metrics.sse_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Feeds one client until it goes away, the server shuts down, the stream
/// is idle past `--stream-idle-secs`, or the store fails; the framing's last
/// chunk says which (at shutdown it is sent only if it fits at once, so a
/// stuck client cannot hold the shutdown up).
pub(super) async fn pump<F: Framing>(app: AppRef, opened: Opened, mut framing: F, tx: mpsc::Sender<F::Chunk>) -> End {
    let _gauge = ClientGauge::new(&app);
    let why = run(&app, opened, &mut framing, &tx).await;
    if let Some(last) = framing.end(why) {
        match why {
            End::Shutdown => {
                let _ = tx.try_send(last);
            }
            _ => {
                let _ = tx.send(last).await;
            }
        }
    }
    why
}

/// Sleeps until `deadline`, or forever without one.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run<F: Framing>(app: &AppRef, opened: Opened, out: &mut F, tx: &mpsc::Sender<F::Chunk>) -> End {
    let Opened { scope, mut cursor, include_raw, reset, over, types, mut bus } = opened;
    let sent = |e: &Committed| types.as_ref().is_none_or(|t| t.contains(&e.etype));
    // Only a session's own stream ends with it.
    let ends = |e: &Committed| matches!(scope, Scope::Session(_)) && e.etype == "session.ended";
    let mut shutdown = app.shutdown.clone();
    if let Some(first) = out.opened() {
        if tx.send(first).await.is_err() {
            return End::Gone;
        }
    }
    if let Some(reset) = reset {
        // Goes out with the first catch-up chunk; its id moves the client's cursor back.
        out.control(&StreamControl::Reset(reset), Some(cursor));
    }
    let mut keepalive = tokio::time::interval(app.keepalive);
    keepalive.reset();
    let idle = app.stream_idle;
    // The last time something other than a keepalive went out.
    let mut active = Instant::now();
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
                    tracing::error!(error = %e, "event stream catch-up read failed; closing the stream");
                    return End::Failed;
                }
            };
            let full = page.len() == CATCH_UP_PAGE as usize;
            let mut ended = false;
            for e in &page {
                cursor = scope.cursor(e);
                if sent(e) {
                    out.event(e, cursor, include_raw);
                }
                ended |= ends(e);
                if out.buffered() >= CHUNK_BYTES {
                    if let Some(chunk) = out.take() {
                        if tx.send(chunk).await.is_err() {
                            return End::Gone;
                        }
                        active = Instant::now();
                    }
                }
            }
            if let Some(chunk) = out.take() {
                if tx.send(chunk).await.is_err() {
                    return End::Gone;
                }
                active = Instant::now();
                keepalive.reset();
            }
            // A session over when the stream opened had all its events
            // committed then, so catching up reached its last one.
            if ended || (over && !full) {
                return End::Ended(cursor);
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
                    if tx.send(out.keepalive()).await.is_err() {
                        return End::Gone;
                    }
                    continue;
                }
                _ = shutdown.changed() => return End::Shutdown,
                _ = until(idle.map(|d| active + d)) => {
                    if let Some(d) = idle {
                        return End::Idle(d);
                    }
                    continue;
                }
            };
            let mut next = Some(first);
            let mut ended = false;
            while let Some(r) = next.take() {
                match r {
                    Ok(e) => {
                        if scope.wants(&e) && scope.cursor(&e) > cursor {
                            cursor = scope.cursor(&e);
                            if sent(&e) {
                                out.event(&e, cursor, include_raw);
                            }
                            ended |= ends(&e);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(chunk) = out.take() {
                            if tx.send(chunk).await.is_err() {
                                return End::Gone;
                            }
                            active = Instant::now();
                        }
                        continue 'outer;
                    }
                    Err(broadcast::error::RecvError::Closed) => break 'outer,
                }
                if out.buffered() < CHUNK_BYTES && !ended {
                    next = match bus.try_recv() {
                        Ok(e) => Some(Ok(e)),
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            Some(Err(broadcast::error::RecvError::Lagged(n)))
                        }
                        Err(_) => None,
                    };
                }
            }
            if let Some(chunk) = out.take() {
                if tx.send(chunk).await.is_err() {
                    return End::Gone;
                }
                active = Instant::now();
                keepalive.reset();
            }
            if ended {
                return End::Ended(cursor);
            }
        }
    }
    // The bus closed: the store is gone, which happens only as the server stops.
    End::Shutdown
}
