//! Webhooks: subscriptions that push the committed events to a URL. This
//! module owns the rules of a subscription (URL, secret, filters, where it
//! starts), the registry of live ones, their views and metrics; each
//! subscription's delivery task lives in [`delivery`], the signature in
//! [`signature`].
//!
//! Subscriptions and their cursors are stored through the store's single
//! writer (control commands); the events are read back from the store, never
//! kept in memory, so delivery is at-least-once, in `gseq` order, and
//! resumes after a restart or a crash from the last acknowledged cursor.
//! Nothing here logs or answers a secret. A failure is a [`WebhookError`],
//! whose code and status are beside it (`crate::error::AsProblem`); HTTP
//! is `http::webhooks`'s business.

pub mod delivery;
pub mod signature;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_protocol::{CreateWebhook, StreamReset, Webhook, WebhookFrom, WebhookState};
use tokio::task::JoinHandle;

pub use delivery::Retry;

use crate::error::{AsProblem, ErrorCode};
use crate::store::{reader, Committed, Store, StoreError, WebhookProgress, WebhookRow};

/// Longest time one delivery request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds of a secret, in bytes.
pub const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=1024;
/// Longest URL accepted.
const MAX_URL_LEN: usize = tether_protocol::MAX_URL_LEN;

/// Why a webhook request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is wrong; the message says which field and why (never the secret).
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook with id {0:?}")]
    NotFound(String),
    /// `sessions[index]` names no session of the store.
    #[error("`sessions[{index}]`: no session with id {id:?}")]
    UnknownSession { index: usize, id: String },
    /// `from` is beyond the last gseq of the store (`store_id`): it was
    /// restored from an older copy.
    #[error("from={after} is beyond the store's last gseq {last}")]
    CursorAhead { after: u64, last: u64, store_id: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The code and status each failure is answered with (`http::webhooks`).
impl AsProblem for WebhookError {
    fn code(&self) -> ErrorCode {
        match self {
            WebhookError::Invalid(_) => ErrorCode::InvalidRequest,
            WebhookError::NotFound(_) => ErrorCode::WebhookNotFound,
            WebhookError::UnknownSession { .. } => ErrorCode::SessionNotFound,
            WebhookError::CursorAhead { .. } => ErrorCode::CursorAhead,
            WebhookError::Store(e) => e.code(),
        }
    }

    fn detail(&self) -> String {
        match (self, self.reset()) {
            (_, Some(reset)) => crate::error::cursor_ahead_detail("gseq", &reset),
            (WebhookError::Store(e), _) => e.detail(),
            (other, _) => other.to_string(),
        }
    }

    fn reset(&self) -> Option<StreamReset> {
        match self {
            WebhookError::CursorAhead { after, last, store_id } => {
                Some(StreamReset { last_seq: *last, store_id: store_id.clone(), after: Some(*after) })
            }
            _ => None,
        }
    }
}

/// Which events a webhook delivers (`None`: no restriction), as stored in `filters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    pub events: Option<Vec<String>>,
    pub sessions: Option<Vec<String>>,
}

impl Filters {
    pub fn matches(&self, e: &Committed) -> bool {
        self.events.as_ref().is_none_or(|types| types.iter().any(|t| t == e.etype))
            && self.sessions.as_ref().is_none_or(|ids| ids.iter().any(|s| **s == *e.session_id))
    }
}

/// A checked `POST /v1/webhooks` body.
pub struct Checked {
    pub url: url::Url,
    pub secret: String,
    pub filters: Filters,
    pub from: WebhookFrom,
}

/// Checks a create body: an absolute http(s) URL with a host, a secret of
/// [`SECRET_LEN`] bytes, known event types, well-formed session ids (whether
/// they exist is checked against the store by [`Webhooks::create`]).
pub fn check(req: CreateWebhook) -> Result<Checked, String> {
    let CreateWebhook { url, secret, events, sessions, from } = req;
    if url.len() > MAX_URL_LEN {
        return Err(format!("`url` is longer than {MAX_URL_LEN} bytes"));
    }
    let parsed = url::Url::parse(&url).map_err(|e| format!("`url` is not an absolute URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("`url` must be http:// or https://, not {}://", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("`url` has no host".into());
    }
    if !crate::patterns::matches(tether_protocol::HTTP_URL_PATTERN, &url) {
        return Err("`url` is not one tether calls: http(s)://, a host name, an IPv4 or a [IPv6] address, an \
                    optional port, then printable ASCII with no space (see HTTP_URL_PATTERN in the OpenAPI document)"
            .into());
    }
    let secret_chars = secret.chars().count();
    if !SECRET_LEN.contains(&secret_chars) {
        return Err(format!(
            "`secret` must be {} to {} characters long (it is {secret_chars})",
            SECRET_LEN.start(),
            SECRET_LEN.end(),
        ));
    }
    let events = match events {
        None => None,
        Some(list) if list.is_empty() => None,
        Some(list) => {
            let mut types: Vec<String> = Vec::with_capacity(list.len());
            for (i, t) in list.into_iter().enumerate() {
                if !tether_protocol::EVENT_TYPES.contains(&t.as_str()) {
                    return Err(format!(
                        "`events[{i}]`: {t:?} is not an event type (one of: {})",
                        tether_protocol::EVENT_TYPES.join(", ")
                    ));
                }
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            Some(types)
        }
    };
    let sessions = match sessions {
        None => None,
        Some(list) if list.is_empty() => {
            return Err("`sessions` must not be empty (leave it out for every session)".into());
        }
        Some(list) => {
            let mut ids: Vec<String> = Vec::with_capacity(list.len());
            for (i, id) in list.into_iter().enumerate() {
                let well_formed = id.len() <= 128
                    && id.strip_prefix("ses_").is_some_and(|rest| {
                        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    });
                if !well_formed {
                    return Err(format!("`sessions[{i}]`: {id:?} is not a session id (`ses_…`)"));
                }
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Some(ids)
        }
    };
    Ok(Checked { url: parsed, secret, filters: Filters { events, sessions }, from: from.unwrap_or_default() })
}

/// One subscription, as its delivery task and the views see it.
pub struct Hook {
    pub id: String,
    /// As given at creation (shown in views).
    url_text: String,
    url: url::Url,
    secret: String,
    filters: Arc<Filters>,
    created_at: i64,
    /// Cursor, counters and state; the task updates it, views read it.
    status: Mutex<WebhookProgress>,
}

impl Hook {
    fn from_row(row: WebhookRow) -> Result<Hook, String> {
        let url = url::Url::parse(&row.url).map_err(|e| format!("stored url: {e}"))?;
        let filters: Filters = serde_json::from_str(&row.filters).map_err(|e| format!("stored filters: {e}"))?;
        Ok(Hook {
            id: row.id,
            url_text: row.url,
            url,
            secret: row.secret,
            filters: Arc::new(filters),
            created_at: row.created_at,
            status: Mutex::new(row.progress),
        })
    }

    /// A copy of its progress.
    pub fn progress(&self) -> WebhookProgress {
        self.status.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Changes its progress under the lock (never held across an await).
    fn update<R>(&self, f: impl FnOnce(&mut WebhookProgress) -> R) -> R {
        match self.status.lock() {
            Ok(mut p) => f(&mut p),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    fn failing(&self) -> bool {
        self.progress().state == WebhookState::Failing.as_str()
    }

    /// Its API view; `pending` is the number of events after its cursor.
    fn view(&self, pending: u64) -> Webhook {
        let p = self.progress();
        Webhook {
            id: self.id.clone(),
            url: self.url_text.clone(),
            events: self.filters.events.clone(),
            sessions: self.filters.sessions.clone(),
            created_at: crate::ids::rfc3339_ms(self.created_at),
            state: if p.state == WebhookState::Failing.as_str() { WebhookState::Failing } else { WebhookState::Active },
            cursor: p.cursor,
            pending,
            delivered_events: p.delivered_events,
            consecutive_failures: p.consecutive_failures,
            last_error: p.last_error,
            last_attempt_at: p.last_attempt_at.map(crate::ids::rfc3339_ms),
            last_success_at: p.last_success_at.map(crate::ids::rfc3339_ms),
        }
    }
}

/// What every delivery task shares.
pub(crate) struct Context {
    store: Store,
    client: reqwest::Client,
    retry: Retry,
    deliveries_ok: AtomicU64,
    deliveries_error: AtomicU64,
    /// Bumped whenever a subscription's cursor moves or one comes or goes
    /// (keep-awake waits on it for the events to be delivered).
    moved: tokio::sync::watch::Sender<u64>,
    /// The sessions' latest turn traces: a delivery sends its first event's as `traceparent`.
    traces: crate::telemetry::TurnTraces,
}

impl Context {
    fn moved(&self) {
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }
}

struct Entry {
    hook: Arc<Hook>,
    task: JoinHandle<()>,
}

/// The live subscriptions: one delivery task each.
pub struct Webhooks {
    ctx: Arc<Context>,
    hooks: Mutex<BTreeMap<String, Entry>>,
}

impl Webhooks {
    /// Loads the stored subscriptions and starts a delivery task for each.
    pub async fn start(
        store: Store,
        retry: Retry,
        traces: crate::telemetry::TurnTraces,
    ) -> Result<Arc<Webhooks>, String> {
        let client = tether_sdk::http_client(|| {
            reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
        })
        .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        let rows = store.read(reader::webhooks).await.map_err(|e| format!("cannot read the webhooks: {e}"))?;
        let ctx = Arc::new(Context {
            store,
            client,
            retry,
            deliveries_ok: AtomicU64::new(0),
            deliveries_error: AtomicU64::new(0),
            moved: tokio::sync::watch::channel(0).0,
            traces,
        });
        let webhooks = Arc::new(Webhooks { ctx, hooks: Mutex::new(BTreeMap::new()) });
        for row in rows {
            let id = row.id.clone();
            match Hook::from_row(row) {
                Ok(hook) => webhooks.spawn(Arc::new(hook)),
                Err(e) => {
                    tracing::error!(webhook = %id, error = %e, "a stored webhook cannot be read; not delivering it")
                }
            }
        }
        Ok(webhooks)
    }

    fn spawn(&self, hook: Arc<Hook>) {
        let task = tokio::spawn(delivery::run(self.ctx.clone(), hook.clone()));
        if let Ok(mut hooks) = self.hooks.lock() {
            if let Some(old) = hooks.insert(hook.id.clone(), Entry { hook, task }) {
                old.task.abort();
            }
        }
    }

    fn hook(&self, id: &str) -> Option<Arc<Hook>> {
        self.hooks.lock().ok().and_then(|h| h.get(id).map(|e| e.hook.clone()))
    }

    fn all(&self) -> Vec<Arc<Hook>> {
        let mut hooks: Vec<Arc<Hook>> =
            self.hooks.lock().map(|h| h.values().map(|e| e.hook.clone()).collect()).unwrap_or_default();
        hooks.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        hooks
    }

    /// Events after each cursor, in one read.
    async fn pending(&self, cursors: Vec<u64>) -> Result<Vec<u64>, StoreError> {
        self.ctx
            .store
            .read(move |c| cursors.into_iter().map(|cursor| reader::events_after_count(c, cursor)).collect())
            .await
    }

    async fn views(&self, hooks: &[Arc<Hook>]) -> Result<Vec<Webhook>, StoreError> {
        let pending = self.pending(hooks.iter().map(|h| h.progress().cursor).collect()).await?;
        Ok(hooks.iter().zip(pending).map(|(h, n)| h.view(n)).collect())
    }

    /// Creates a subscription (stored before its task starts) and answers its view.
    pub async fn create(&self, req: CreateWebhook) -> Result<Webhook, WebhookError> {
        let checked = check(req).map_err(WebhookError::Invalid)?;
        let sessions = checked.filters.sessions.clone().unwrap_or_default();
        let (last, missing) = self
            .ctx
            .store
            .read(move |c| {
                let last = reader::last_gseq(c)?;
                for (i, id) in sessions.iter().enumerate() {
                    if reader::get_session(c, id)?.is_none() {
                        return Ok((last, Some((i, id.clone()))));
                    }
                }
                Ok((last, None))
            })
            .await?;
        if let Some((i, id)) = missing {
            return Err(WebhookError::UnknownSession { index: i, id });
        }
        let cursor = match checked.from {
            WebhookFrom::Now => last,
            WebhookFrom::Start => 0,
            WebhookFrom::Gseq(after) if after > last => {
                let store_id = self.ctx.store.store_id().to_string();
                return Err(WebhookError::CursorAhead { after, last, store_id });
            }
            WebhookFrom::Gseq(after) => after,
        };
        let id = crate::ids::new_id("whk");
        let filters = serde_json::to_string(&checked.filters).map_err(|e| WebhookError::Invalid(e.to_string()))?;
        let row = WebhookRow {
            id: id.clone(),
            url: checked.url.as_str().to_string(),
            secret: checked.secret,
            filters,
            created_at: crate::ids::now_ms(),
            progress: WebhookProgress {
                id: id.clone(),
                cursor,
                state: WebhookState::Active.as_str(),
                ..Default::default()
            },
        };
        self.ctx.store.create_webhook(row.clone()).await?;
        let hook = Arc::new(Hook::from_row(row).map_err(WebhookError::Invalid)?);
        tracing::info!(webhook = %id, cursor, "webhook created");
        self.spawn(hook.clone());
        self.ctx.moved();
        Ok(self.views(&[hook]).await?.remove(0))
    }

    /// Every subscription, oldest first.
    pub async fn list(&self) -> Result<Vec<Webhook>, WebhookError> {
        Ok(self.views(&self.all()).await?)
    }

    pub async fn get(&self, id: &str) -> Result<Webhook, WebhookError> {
        let hook = self.hook(id).ok_or_else(|| WebhookError::NotFound(id.to_string()))?;
        Ok(self.views(&[hook]).await?.remove(0))
    }

    /// Removes a subscription: deleted from the store, then its task stopped
    /// (and waited for), so no request starts once this returns. Its last view.
    pub async fn delete(&self, id: &str) -> Result<Webhook, WebhookError> {
        let not_found = || WebhookError::NotFound(id.to_string());
        self.hook(id).ok_or_else(not_found)?;
        self.ctx.store.delete_webhook(id).await?;
        let entry = self.hooks.lock().ok().and_then(|mut h| h.remove(id)).ok_or_else(not_found)?;
        entry.task.abort();
        let _ = entry.task.await;
        self.ctx.moved();
        tracing::info!(webhook = %id, "webhook deleted");
        Ok(self.views(&[entry.hook]).await?.remove(0))
    }

    /// The lowest cursor of the subscriptions (`None` without any): the
    /// committed events after it have not all been delivered or passed over.
    pub fn lowest_cursor(&self) -> Option<u64> {
        self.all().iter().map(|h| h.progress().cursor).min()
    }

    /// Changes whenever a cursor moves or a subscription comes or goes.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.ctx.moved.subscribe()
    }

    /// Keep-awake stopped waiting for the subscriptions still behind `gseq`:
    /// each is marked failing (until its next acknowledged delivery). Their ids.
    pub fn gave_up_on(&self, gseq: u64, waited: Duration) -> Vec<String> {
        let mut ids = Vec::new();
        for hook in self.all() {
            let behind = hook.update(|p| {
                if p.cursor >= gseq {
                    return false;
                }
                p.state = WebhookState::Failing.as_str();
                if p.last_error.is_none() {
                    p.last_error = Some(format!("not delivered after {} s", waited.as_secs()));
                }
                true
            });
            if behind {
                tracing::warn!(webhook = %hook.id, waited_secs = waited.as_secs(),
                    "webhook events are still undelivered; keep-awake lets the Sprite sleep (delivery goes on when it wakes)");
                ids.push(hook.id.clone());
            }
        }
        ids
    }

    /// Stops every delivery task (the server is stopping; cursors are stored).
    pub fn shutdown(&self) {
        if let Ok(hooks) = self.hooks.lock() {
            for entry in hooks.values() {
                entry.task.abort();
            }
        }
    }

    /// The Prometheus lines of the webhooks.
    pub async fn metrics(&self) -> Result<String, StoreError> {
        use std::fmt::Write as _;
        let hooks = self.all();
        let pending = self.pending(hooks.iter().map(|h| h.progress().cursor).collect()).await?;
        let failing = hooks.iter().filter(|h| h.failing()).count();
        let mut out = String::new();
        let _ = write!(
            out,
            "# HELP tether_webhooks Webhooks by delivery state.\n# TYPE tether_webhooks gauge\n\
             tether_webhooks{{state=\"active\"}} {}\ntether_webhooks{{state=\"failing\"}} {failing}\n",
            hooks.len() - failing
        );
        out.push_str(
            "# HELP tether_webhook_failing 1 while a webhook's last 3 or more attempts failed.\n\
             # TYPE tether_webhook_failing gauge\n",
        );
        for h in &hooks {
            let _ = writeln!(out, "tether_webhook_failing{{webhook=\"{}\"}} {}", h.id, h.failing() as u8);
        }
        out.push_str(
            "# HELP tether_webhook_pending_events Events in the log after a webhook's cursor.\n\
             # TYPE tether_webhook_pending_events gauge\n",
        );
        for (h, n) in hooks.iter().zip(&pending) {
            let _ = writeln!(out, "tether_webhook_pending_events{{webhook=\"{}\"}} {n}", h.id);
        }
        let _ = write!(
            out,
            "# HELP tether_webhook_deliveries_total Delivery attempts, by outcome.\n\
             # TYPE tether_webhook_deliveries_total counter\n\
             tether_webhook_deliveries_total{{result=\"ok\"}} {}\ntether_webhook_deliveries_total{{result=\"error\"}} {}\n",
            self.ctx.deliveries_ok.load(Ordering::Relaxed),
            self.ctx.deliveries_error.load(Ordering::Relaxed),
        );
        Ok(out)
    }
}
