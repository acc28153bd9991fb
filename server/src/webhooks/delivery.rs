//! One webhook's delivery task: reads the events after its cursor from the
//! store, keeps those its filters want, POSTs them in batches of up to 100
//! and, once a batch is acknowledged (2xx), persists the new cursor before
//! the next one is sent (in the same write that records the next batch's
//! extent, so a batch cut short by a crash is sent again whole and
//! identical, with the same `X-Tether-Event-Ids`). A batch that is not acknowledged (another status, a
//! connect error, a timeout) is sent again, the same events, after a
//! back-off; nothing is ever skipped. While caught up it sleeps until the
//! store's writer publishes a commit (through the store's follower, the one
//! the event streams use: [`crate::store::follow`]).
//!
//! It must not log the secret, nor the URL (it may carry credentials).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use tether_protocol::WebhookState;

use super::{signature, Context, Filters, Hook};
use crate::store::follow::{Follower, Scope};
use crate::store::{reader, stored, StoreError};

/// Most events in one delivery.
pub const MAX_BATCH: usize = 100;
/// Events read from the store per query.
const PAGE: u32 = 1000;
/// Most events looked at (and filtered out) for one batch before the cursor
/// moves past them, so a narrow filter over a long log makes progress that shows.
const MAX_SCAN: usize = 20_000;
/// Consecutive failures after which a webhook is `failing`.
pub const FAILING_AFTER: u64 = 3;
/// A caught-up task looks at the store this often even without a commit notification.
const IDLE_TICK: Duration = Duration::from_secs(30);
/// Most bytes of a receiver's answer read (and ignored).
const DRAIN_BYTES: usize = 64 * 1024;
/// A cursor that only moved past filtered-out events is stored at most this often.
const SKIP_PERSIST_EVERY: Duration = Duration::from_secs(1);
/// Wait before a failed store read or cursor write is tried again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The back-off between attempts at the same batch: `min` doubling with each
/// consecutive failure up to `max`, then lowered by up to a quarter at random.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry { min: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

impl Retry {
    /// The wait after the `failures`-th consecutive failure (1 for the first),
    /// `unit` being a random draw in `[0, 1)`: within `[3/4 d, d]` of
    /// `d = min(min * 2^(failures-1), max)`. Pure.
    pub fn delay(&self, failures: u64, unit: f64) -> Duration {
        let max = self.max.max(self.min);
        let doublings = failures.saturating_sub(1).min(32) as u32;
        let base = self.min.checked_mul(1u32 << doublings.min(31)).unwrap_or(max).min(max);
        let unit = if unit.is_finite() { unit.clamp(0.0, 1.0) } else { 0.0 };
        base.mul_f64(1.0 - 0.25 * unit)
    }
}

/// A random draw in `[0, 1)`.
fn jitter() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// The next batch: the matching events after a cursor, and how far the store was read.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// `(gseq, event JSON without raw)`, in gseq order.
    pub events: Vec<(u64, String)>,
    /// The gseq of the last event looked at (the cursor once the batch is acknowledged).
    pub scanned_to: u64,
}

impl Batch {
    /// The delivery body: `{"webhook_id":..,"events":[..]}`, from the stored event texts.
    pub fn body(&self, webhook_id: &str) -> Bytes {
        let size: usize = self.events.iter().map(|(_, j)| j.len() + 1).sum();
        let mut out = String::with_capacity(size + webhook_id.len() + 32);
        out.push_str("{\"webhook_id\":");
        out.push_str(&serde_json::to_string(webhook_id).unwrap_or_default());
        out.push_str(",\"events\":");
        stored::write_array(&mut out, self.events.iter().map(|(_, json)| json.as_str()));
        out.push('}');
        Bytes::from(out)
    }

    /// The `traceparent` of the turn the batch's first event belongs to (its
    /// session's latest turn), when this server started it.
    fn traceparent(&self, traces: &crate::telemetry::TurnTraces) -> Option<String> {
        #[derive(serde::Deserialize)]
        struct Of {
            session_id: String,
        }
        let (_, first) = self.events.first()?;
        let of: Of = serde_json::from_str(first).ok()?;
        let traces = traces.lock().unwrap_or_else(|e| e.into_inner());
        traces.get(of.session_id.as_str()).map(|t| t.traceparent())
    }

    /// `X-Tether-Event-Ids`: the gseqs, comma-separated.
    pub fn ids(&self) -> String {
        self.events.iter().map(|(g, _)| g.to_string()).collect::<Vec<_>>().join(",")
    }
}

/// Reads the store after `cursor` until a batch is full, the log ends, or
/// [`MAX_SCAN`] events were looked at. With `upto` (the batch a crash cut
/// short), only up to that gseq: the same events as the first time.
async fn next_batch(
    store: &crate::store::Store,
    filters: &Arc<Filters>,
    cursor: u64,
    upto: Option<u64>,
) -> Result<Batch, StoreError> {
    let filters = filters.clone();
    store.read(move |conn| scan(conn, &filters, cursor, upto)).await
}

/// [`next_batch`] on a connection.
pub fn scan(
    conn: &rusqlite::Connection,
    filters: &Filters,
    cursor: u64,
    upto: Option<u64>,
) -> Result<Batch, StoreError> {
    let mut batch = Batch { events: Vec::new(), scanned_to: cursor };
    let mut scanned = 0;
    loop {
        let page = reader::global_events(conn, batch.scanned_to, PAGE)?;
        let full = page.len() == PAGE as usize;
        for e in page {
            if upto.is_some_and(|u| e.gseq > u) {
                return Ok(batch);
            }
            scanned += 1;
            batch.scanned_to = e.gseq;
            if filters.matches(&e) {
                batch.events.push((e.gseq, e.json));
                if batch.events.len() == MAX_BATCH {
                    return Ok(batch);
                }
            }
        }
        if !full || (upto.is_none() && scanned >= MAX_SCAN) {
            if let Some(u) = upto {
                // Everything up to it was looked at (some may have been purged since).
                batch.scanned_to = batch.scanned_to.max(u);
            }
            return Ok(batch);
        }
    }
}

/// Why an attempt was not acknowledged, as shown in `last_error` (no URL, no secret).
fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    if e.is_timeout() {
        return format!("timeout: no answer within {} s", super::REQUEST_TIMEOUT.as_secs());
    }
    let kind = if e.is_connect() { "connect error" } else { "request error" };
    // The innermost cause says the most ("Connection refused (os error 111)").
    let mut detail = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        detail = c.to_string();
        cause = c.source();
    }
    format!("{kind}: {detail}")
}

/// Sends one attempt of `body`; `Ok` when acknowledged.
async fn attempt(ctx: &Context, hook: &Hook, body: &Bytes, ids: &str, traceparent: Option<&str>) -> Result<(), String> {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let sig = signature::signature(hook.secret.as_bytes(), t, body);
    let mut request = ctx.client.post(hook.url.clone());
    if let Some(t) = traceparent {
        request = request.header(crate::telemetry::TRACEPARENT, t);
    }
    let sent = request
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("x-tether-webhook-id", &hook.id)
        .header("x-tether-event-ids", ids)
        .header("x-tether-signature", sig)
        .body(body.clone())
        .send()
        .await;
    match sent {
        Ok(mut resp) => {
            let status = resp.status();
            // Read a little of the answer so the connection can be reused; the rest is not ours to wait for.
            let mut read = 0;
            while let Ok(Some(chunk)) = resp.chunk().await {
                read += chunk.len();
                if read > DRAIN_BYTES {
                    break;
                }
            }
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        }
        Err(e) => Err(describe(&e.without_url())),
    }
}

/// Writes the hook's progress, retrying until it is stored (the next batch
/// waits for it: delivery resumes from the stored cursor after a crash).
async fn persist(ctx: &Context, hook: &Hook) {
    let mut warned = false;
    loop {
        match ctx.store.webhook_progress(hook.progress()).await {
            Ok(()) => return,
            Err(StoreError::Closed) => return,
            Err(e) => {
                if !warned {
                    tracing::warn!(webhook = %hook.id, error = %e, "cannot store the webhook's cursor; retrying");
                    warned = true;
                }
                tokio::time::sleep(STORE_RETRY).await;
            }
        }
    }
}

/// The task: runs until aborted (DELETE, shutdown) or the store closes.
pub(super) async fn run(ctx: Arc<Context>, hook: Arc<Hook>) {
    // Subscribed before the first read: no commit after it goes unnoticed.
    let mut follower = Follower::subscribe(&ctx.store, Scope::Global);
    let mut stored = hook.progress();
    let mut stored_at = tokio::time::Instant::now();
    loop {
        // The store is read next: what was committed so far is covered.
        if !follower.drain() {
            return;
        }
        let p = hook.progress();
        // A batch a crash cut short is rebuilt as it was sent.
        let upto = p.inflight_to.filter(|&u| u > p.cursor);
        let batch = match next_batch(&ctx.store, &hook.filters, p.cursor, upto).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(webhook = %hook.id, error = %e, "webhook: reading the store failed; retrying");
                tokio::time::sleep(STORE_RETRY).await;
                continue;
            }
        };
        if batch.events.is_empty() {
            hook.update(|p| {
                p.inflight_to = None;
                // Only events the filters do not want: move past them.
                p.cursor = p.cursor.max(batch.scanned_to);
            });
            if batch.scanned_to > p.cursor {
                ctx.moved();
                continue;
            }
            // Caught up: store where it stands, then sleep until a commit. An
            // acknowledgement is stored at once; a cursor that only moved past
            // filtered-out events at most every SKIP_PERSIST_EVERY (after a
            // crash they are only looked at again), so a narrow filter costs
            // no write per commit.
            let now = hook.progress();
            let acked = stored.inflight_to.is_some();
            let skipped = now.cursor != stored.cursor;
            if acked || (skipped && stored_at.elapsed() >= SKIP_PERSIST_EVERY) {
                persist(&ctx, &hook).await;
                stored = now;
                stored_at = tokio::time::Instant::now();
            }
            let tick = if stored.cursor != hook.progress().cursor { SKIP_PERSIST_EVERY } else { IDLE_TICK };
            tokio::select! {
                open = follower.changed() => {
                    if !open {
                        return;
                    }
                }
                _ = tokio::time::sleep(tick) => {}
            }
            continue;
        }
        // The previous batch's cursor and this batch's extent, stored before it is sent.
        hook.update(|p| p.inflight_to = Some(batch.scanned_to));
        persist(&ctx, &hook).await;
        stored = hook.progress();
        stored_at = tokio::time::Instant::now();
        deliver(&ctx, &hook, &batch).await;
    }
}

/// Sends `batch` until it is acknowledged, backing off between attempts.
async fn deliver(ctx: &Context, hook: &Hook, batch: &Batch) {
    let body = batch.body(&hook.id);
    let ids = batch.ids();
    let traceparent = batch.traceparent(&ctx.traces);
    loop {
        let outcome = attempt(ctx, hook, &body, &ids, traceparent.as_deref()).await;
        let now = crate::ids::now_ms();
        match outcome {
            Ok(()) => {
                ctx.deliveries_ok.fetch_add(1, Ordering::Relaxed);
                let was = hook.update(|p| {
                    let was = p.state;
                    p.cursor = batch.scanned_to;
                    p.inflight_to = None;
                    p.delivered_events += batch.events.len() as u64;
                    p.consecutive_failures = 0;
                    p.state = WebhookState::Active.as_str();
                    p.last_error = None;
                    p.last_attempt_at = Some(now);
                    p.last_success_at = Some(now);
                    was
                });
                ctx.moved();
                if was == WebhookState::Failing.as_str() {
                    tracing::info!(webhook = %hook.id, "webhook deliveries succeed again");
                }
                return;
            }
            Err(why) => {
                ctx.deliveries_error.fetch_add(1, Ordering::Relaxed);
                let (failures, now_failing) = hook.update(|p| {
                    p.consecutive_failures += 1;
                    p.last_error = Some(why.clone());
                    p.last_attempt_at = Some(now);
                    let now_failing = p.consecutive_failures >= FAILING_AFTER && p.state != "failing";
                    if p.consecutive_failures >= FAILING_AFTER {
                        p.state = WebhookState::Failing.as_str();
                    }
                    (p.consecutive_failures, now_failing)
                });
                if now_failing {
                    tracing::warn!(webhook = %hook.id, error = %why, failures,
                        "webhook deliveries are failing; the same batch is retried until it is acknowledged");
                } else {
                    tracing::debug!(webhook = %hook.id, error = %why, failures, "webhook delivery failed");
                }
                // Best effort: the failure shows after a restart too; the cursor does not move.
                let _ = ctx.store.webhook_progress(hook.progress()).await;
                tokio::time::sleep(ctx.retry.delay(failures, jitter())).await;
            }
        }
    }
}
