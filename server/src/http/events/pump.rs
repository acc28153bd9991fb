//! The pump behind every event stream: catch-up from the store, then the
//! live bus, then the store again when the client falls behind (all three
//! through the store's [`Follower`](crate::store::follow::Follower)); keepalives;
//! the idle lifetime (`--stream-idle-secs`); the end after a session's
//! `session.ended` (its last event: nothing can follow, so a session stream
//! closes once it has sent it, and at once when it opens on a session that
//! is over and already has it); the end at shutdown. It knows
//! nothing of the wire: a [`Framing`] turns events and control frames into
//! the chunks a transport sends (SSE bytes here, WebSocket messages in `ws`).
//!
//! What a client that does not read costs is bounded in bytes, whatever it
//! asked for: a catch-up page holds at most [`CATCH_UP_BYTES`] of events
//! (a client that keeps up gets pages that double up to
//! [`CATCH_UP_MAX_BYTES`], and chunks of a quarter of that: fewer reads and
//! writes for a long replay; the first page and any after one it did not
//! take at once are small again), a chunk at most [`CHUNK_BYTES`] otherwise, and the transport takes one chunk at a
//! time (the HTTP connection buffers at most `connections::WRITE_BUFFER`
//! more, the kernel `connections::UNSENT_LOWAT`). A client that takes
//! nothing of what waits for it for `--send-timeout-secs` is disconnected
//! (by the connection, `crate::connections`), which ends its pump; like any
//! dropped client it resumes with its cursor, with no gap.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use tether_protocol::{event_type, StreamControl, StreamEnded, StreamIdle, StreamStalled};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Opened;
use crate::http::AppRef;
use crate::store::follow::{Live, Page, Scope};
use crate::store::Committed;

/// Most events read from the store per catch-up query.
const CATCH_UP_PAGE: u32 = 2000;
/// Most bytes of events read per catch-up query (a page may pass it by one
/// event): the first page's, and any page's after the client did not take
/// the last one's chunks at once.
pub(super) const CATCH_UP_BYTES: usize = 16 * 1024;
/// The most a page grows to, doubling after each page the client took at once.
pub(super) const CATCH_UP_MAX_BYTES: usize = 256 * 1024;
/// Most bytes gathered into one chunk (a chunk may pass it by one event).
pub(super) const CHUNK_BYTES: usize = 16 * 1024;
/// Most bytes of a catch-up chunk once the pages have grown (fewer, larger
/// writes to a client that keeps up): a quarter of the page.
const CATCH_UP_CHUNK_MAX_BYTES: usize = CATCH_UP_MAX_BYTES / 4;
/// Chunks waiting for the transport: one, so a client that does not read
/// holds one chunk here and one in the pump.
pub(super) const CHANNEL_CHUNKS: usize = 1;

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
            StreamControl::Stalled(s) => serde_json::to_writer(&mut self.buf, s),
        };
        self.buf.extend_from_slice(b"\n\n");
    }

    fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() {
            return None;
        }
        // A chunk exactly its size (a Vec grown by doubling has up to twice
        // the room, and a chunk keeps it while it waits for the client); the
        // buffer is kept for the next one unless one large event grew it.
        let chunk = Bytes::copy_from_slice(&self.buf);
        self.buf.clear();
        if self.buf.capacity() > 2 * CHUNK_BYTES {
            self.buf = Vec::new();
        }
        Some(chunk)
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
/// The `stream.stalled` frame of a stall of the store.
fn stalled(stall: &crate::store::Stall) -> StreamStalled {
    StreamStalled {
        reason: stall.kind.as_str().to_string(),
        since: crate::ids::rfc3339_ms(stall.since_ms),
        message: format!(
            "{}: no new event can be stored for now; nothing is lost, and events resume here once it can",
            stall.kind.describe()
        ),
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn run<F: Framing>(app: &AppRef, opened: Opened, out: &mut F, tx: &mpsc::Sender<F::Chunk>) -> End {
    let Opened { mut follower, include_raw, reset, over, types } = opened;
    let scope = follower.scope().clone();
    let sent = |e: &Committed| types.as_ref().is_none_or(|t| t.contains(&e.etype));
    // Only a session's own stream ends with it.
    let ends = |e: &Committed| matches!(scope, Scope::Session(_)) && e.etype == event_type::SESSION_ENDED;
    let mut page = Page { rows: CATCH_UP_PAGE, bytes: CATCH_UP_BYTES, include_raw };
    let mut shutdown = app.shutdown.clone();
    if let Some(first) = out.opened() {
        if tx.send(first).await.is_err() {
            return End::Gone;
        }
    }
    if let Some(reset) = reset {
        // Goes out with the first catch-up chunk; its id moves the client's cursor back.
        out.control(&StreamControl::Reset(reset), Some(follower.cursor()));
    }
    let mut keepalive = tokio::time::interval(app.keepalive);
    keepalive.reset();
    let idle = app.stream_idle;
    // The last time something other than a keepalive went out.
    let mut active = Instant::now();
    'outer: loop {
        // Catch up from the store, from a small page (first-event latency; a
        // client the bus left behind may be a slow one).
        page.bytes = CATCH_UP_BYTES;
        loop {
            let (events, full) = match follower.page(page).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "event stream catch-up read failed; closing the stream");
                    return End::Failed;
                }
            };
            // The transport took everything sent while the page was read: the
            // client keeps up, and the next page may be larger.
            page.bytes = match tx.capacity() == CHANNEL_CHUNKS {
                true => (page.bytes * 2).min(CATCH_UP_MAX_BYTES),
                false => CATCH_UP_BYTES,
            };
            let chunk_bytes = (page.bytes / 4).clamp(CHUNK_BYTES, CATCH_UP_CHUNK_MAX_BYTES);
            let mut ended = false;
            for e in &events {
                if sent(e) {
                    out.event(e, scope.cursor(e), include_raw);
                }
                ended |= ends(e);
                if out.buffered() >= chunk_bytes {
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
                return End::Ended(follower.cursor());
            }
            if !full {
                break;
            }
        }
        // Live.
        loop {
            let first = tokio::select! {
                live = follower.recv() => live,
                _ = keepalive.tick() => {
                    // While the store cannot commit, the client is told so instead.
                    let chunk = match app.shared.store.health().stall() {
                        Some(stall) => {
                            out.control(&StreamControl::Stalled(stalled(&stall)), None);
                            out.take().unwrap_or_else(|| out.keepalive())
                        }
                        None => out.keepalive(),
                    };
                    if tx.send(chunk).await.is_err() {
                        return End::Gone;
                    }
                    continue;
                }
                // A client that left frees its stream slot at once, not at the next keepalive.
                _ = tx.closed() => return End::Gone,
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
            while let Some(live) = next.take() {
                match live {
                    Live::Event(e) => {
                        if sent(&e) {
                            out.event(&e, follower.cursor(), include_raw);
                        }
                        ended |= ends(&e);
                    }
                    Live::Behind => {
                        if let Some(chunk) = out.take() {
                            if tx.send(chunk).await.is_err() {
                                return End::Gone;
                            }
                            active = Instant::now();
                        }
                        continue 'outer;
                    }
                    Live::Closed => break 'outer,
                }
                if out.buffered() < CHUNK_BYTES && !ended {
                    next = follower.try_recv();
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
                return End::Ended(follower.cursor());
            }
        }
    }
    // The bus closed: the store is gone, which happens only as the server stops.
    End::Shutdown
}
