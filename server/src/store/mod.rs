//! The durable event log on SQLite (bundled, WAL).
//!
//! One writer thread owns the write connection and commits events in batches
//! (group commit): it assigns `seq` and `gseq`, keeps the derived columns of
//! `sessions` (status, last_seq, open turn, open items) in the same
//! transaction, and only after the commit publishes the events on the bus.
//! Readers use their own connections and never block the writer.
//! Nothing here holds a connection across an `.await`.
//!
//! - [`stored`]: the one place an event's stored JSON is written (the
//!   envelope, `raw` spliced in on demand, lists of events); everything
//!   else sends that text as it is.
//! - [`follow`]: the one follower of the live log (subscribe, catch up from
//!   the store, live, back to the store when behind), used by the event
//!   streams, turn waits, keep-awake and the webhooks. The bus itself is
//!   not handed out.
//! - [`reader`]: the read queries; `writer`: the writer thread; [`health`]:
//!   stalls of a failing disk.

pub mod follow;
pub mod health;
pub mod reader;
pub mod space;
pub mod stored;
pub mod tail;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use tether_protocol::{PermissionMode, Session, SessionStatus, SessionSummary, Source};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use health::{Stall, StallEnded, StallKind, StoreHealth};
pub use reader::ReadPool;
pub use space::{Disk, DiskState};

/// Migrations, applied in order; `PRAGMA user_version` counts the applied ones.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    ("0002_mcp_servers", include_str!("migrations/0002_mcp_servers.sql")),
    ("0003_store_meta", include_str!("migrations/0003_store_meta.sql")),
    ("0004_webhooks", include_str!("migrations/0004_webhooks.sql")),
    ("0005_session_summary", include_str!("migrations/0005_session_summary.sql")),
    ("0006_compact_events", include_str!("migrations/0006_compact_events.sql")),
];

/// Capacity of the live bus; a subscriber that falls further behind is caught
/// up from the store, so this bounds memory, not correctness.
pub const BUS_CAPACITY: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the store writer has stopped")]
    Closed,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("session not found")]
    SessionNotFound,
    /// Commits are failing; the command could not wait for the store to recover.
    #[error("{0}")]
    Stalled(Stall),
}

/// An event committed to the store, as shared with subscribers (its JSON
/// written by [`stored::StoredEvent`]).
#[derive(Debug)]
pub struct Committed {
    pub session_id: Arc<str>,
    pub seq: u64,
    pub gseq: u64,
    pub etype: &'static str,
    /// The event JSON without `raw`.
    pub json: String,
    /// The agent's native message as JSON text, if any.
    pub raw: Option<Arc<str>>,
}

/// The `'static` name of a stored event type (all are ones this server wrote).
pub fn intern_type(t: &str) -> &'static str {
    tether_protocol::EVENT_TYPES.iter().find(|k| **k == t).copied().unwrap_or("unknown")
}

/// A change to the derived session state that an event implies.
#[derive(Debug, Clone)]
pub enum Effect {
    Status(SessionStatus),
    ItemOpen {
        item_id: String,
        item_json: String,
    },
    ItemClose {
        item_id: String,
    },
    TurnOpen(String),
    TurnClose,
    NativeSession(String),
    AgentLive(bool),
    /// A turn started; the first one's text (the first 2 KiB) becomes the
    /// session's `first_prompt`.
    TurnStarted {
        text: Option<String>,
    },
    /// A turn reported its usage: added to the session's totals.
    Usage {
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: Option<f64>,
    },
    /// The assistant completed a message with this text (its last 2 KiB).
    LastText(String),
    /// The event is the server's own bookkeeping (a restart, a resume), not
    /// activity: it does not move the session's `updated_at`.
    Quiet,
}

/// An event ready to be committed: everything but `seq` and `gseq`
/// ([`NewEvent::new`] makes one from an event body).
#[derive(Debug)]
pub struct NewEvent {
    pub etype: &'static str,
    pub source: Source,
    pub time: Arc<str>,
    /// The serialized `data` object.
    pub data_json: String,
    pub raw: Option<Arc<str>>,
    pub effects: Vec<Effect>,
}

/// A session's stored row.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id: String,
    pub agent: String,
    pub status: SessionStatus,
    pub cwd: String,
    pub model: Option<String>,
    pub permission_mode: PermissionMode,
    pub title: Option<String>,
    pub native_session_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_seq: u64,
    pub metadata: Option<serde_json::Value>,
    /// JSON of the launch configuration (env, mcp servers, skills).
    pub config: String,
    pub agent_live: bool,
    pub open_turn: Option<String>,
    /// As stored; [`SessionRow::to_api`] shapes the texts into lines.
    pub summary: SessionSummary,
}

impl SessionRow {
    pub fn to_api(&self) -> Session {
        Session {
            id: self.id.clone(),
            agent: self.agent.clone(),
            status: self.status,
            cwd: self.cwd.clone(),
            model: self.model.clone(),
            permission_mode: self.permission_mode,
            title: self.title.clone(),
            native_session_id: self.native_session_id.clone(),
            created_at: crate::ids::rfc3339_ms(self.created_at),
            updated_at: crate::ids::rfc3339_ms(self.updated_at),
            last_seq: self.last_seq,
            metadata: self.metadata.clone(),
            summary: SessionSummary {
                first_prompt: self.summary.first_prompt.as_deref().and_then(|t| summary_line(t, Line::First)),
                last_text: self.summary.last_text.as_deref().and_then(|t| summary_line(t, Line::Last)),
                ..self.summary.clone()
            },
        }
    }
}

/// How many bytes of a text the summary keeps (see migration 0005).
pub const SUMMARY_TEXT_BYTES: usize = 2048;

/// The most characters of a summary line.
const SUMMARY_LINE_CHARS: usize = 200;

/// Which line of a text a summary shows.
#[derive(Clone, Copy)]
enum Line {
    First,
    Last,
}

/// The first or last non-blank line of `text`, trimmed, cut to
/// [`SUMMARY_LINE_CHARS`] characters with `…`; `None` if every line is blank.
fn summary_line(text: &str, which: Line) -> Option<String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let line = match which {
        Line::First => lines.next(),
        Line::Last => lines.next_back(),
    }?;
    Some(match line.char_indices().nth(SUMMARY_LINE_CHARS) {
        Some((cut, _)) => format!("{}…", line[..cut].trim_end()),
        None => line.to_string(),
    })
}

/// At most the first (`head`) or last [`SUMMARY_TEXT_BYTES`] bytes of
/// `text`, cut at a character boundary.
pub fn summary_text(text: &str, head: bool) -> String {
    if text.len() <= SUMMARY_TEXT_BYTES {
        return text.to_string();
    }
    if head {
        let mut end = SUMMARY_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_string()
    } else {
        let mut start = text.len() - SUMMARY_TEXT_BYTES;
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }
}

pub(crate) enum WriteCmd {
    Append {
        session_id: Arc<str>,
        events: Vec<NewEvent>,
    },
    CreateSession {
        row: Box<SessionRow>,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    Purge {
        session_id: String,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Deletes up to `max` events of an ended session, and the session itself
    /// once none are left; answers whether it is gone (retention, in steps
    /// that leave the writer free for appends in between).
    PurgeSome {
        session_id: String,
        max: u64,
        /// Filled in by the writer: the events deleted, and whether the session is gone.
        deleted: u64,
        gone: bool,
        ack: oneshot::Sender<Result<(u64, bool), StoreError>>,
    },
    /// Gives up to `pages` free pages back to the file system (incremental vacuum).
    Vacuum {
        pages: u32,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Adds or replaces a global MCP server; answers the config it replaced.
    PutMcpServer {
        name: String,
        config: String,
        /// Filled in by the writer inside the transaction.
        previous: Option<String>,
        ack: oneshot::Sender<Result<Option<String>, StoreError>>,
    },
    /// Removes a global MCP server; answers its config, if it was there.
    DeleteMcpServer {
        name: String,
        previous: Option<String>,
        ack: oneshot::Sender<Result<Option<String>, StoreError>>,
    },
    /// Adds a webhook subscription.
    CreateWebhook {
        row: Box<WebhookRow>,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Records how a webhook's delivery stands (its cursor, counters, state).
    WebhookProgress {
        progress: Box<WebhookProgress>,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Removes a webhook; answers whether it was there.
    DeleteWebhook {
        id: String,
        existed: bool,
        ack: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// Resolves once everything sent before it is committed.
    Flush {
        ack: oneshot::Sender<()>,
    },
    /// Tests: SQL run on the writer's connection, even during a stall.
    #[cfg(test)]
    Exec {
        sql: String,
        ack: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A webhook's stored row (its `Debug` leaves the secret out).
#[derive(Clone, PartialEq)]
pub struct WebhookRow {
    pub id: String,
    pub url: String,
    /// The HMAC key of its deliveries: never answered, never logged.
    pub secret: String,
    /// JSON `{"events":[..]|null,"sessions":[..]|null}`.
    pub filters: String,
    pub created_at: i64,
    pub progress: WebhookProgress,
}

impl std::fmt::Debug for WebhookRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookRow")
            .field("id", &self.id)
            .field("filters", &self.filters)
            .field("created_at", &self.created_at)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// The changing part of a webhook's row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WebhookProgress {
    pub id: String,
    /// The last acknowledged gseq.
    pub cursor: u64,
    /// The last gseq of the batch being sent, if one is: after a crash the
    /// same batch is rebuilt from `(cursor, inflight_to]` and sent again whole.
    pub inflight_to: Option<u64>,
    pub delivered_events: u64,
    pub consecutive_failures: u64,
    /// `active` or `failing`.
    pub state: &'static str,
    pub last_error: Option<String>,
    pub last_attempt_at: Option<i64>,
    pub last_success_at: Option<i64>,
}

/// Handle to the store: cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Appends and flushes: bounded, the agents' back-pressure.
    tx: mpsc::Sender<WriteCmd>,
    /// Commands that cannot wait through a stall: create, purge, MCP writes.
    control: mpsc::Sender<WriteCmd>,
    health: Arc<StoreHealth>,
    bus: broadcast::Sender<Arc<Committed>>,
    /// The newest committed events, for followers catching up ([`tail`]).
    tail: Arc<tail::Tail>,
    pub reads: Arc<ReadPool>,
    /// Reads running at once: at most [`reader::READERS`], so a burst of
    /// readers (hundreds of streams catching up) queues here rather than
    /// opening a connection (and its page cache) and a thread each.
    reading: Arc<tokio::sync::Semaphore>,
    path: Arc<PathBuf>,
    store_id: Arc<str>,
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "busy_timeout", 5000)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// Copies the WAL back into the database file every so often (PASSIVE: never
/// blocks the writer or readers), and truncates it when it has grown large
/// and no reader is in the way. The writer's own auto-checkpoint is off.
/// Also empties the idle ring of newest events ([`tail`]).
fn checkpointer(conn: Connection, health: Arc<StoreHealth>, ring: Arc<tail::Tail>) {
    // A full disk fails every checkpoint: say so once per failing streak.
    let mut failing = false;
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        // The same clock empties the ring of newest events once nothing comes, and hands its memory back.
        if ring.drop_if_idle(tail::IDLE) {
            crate::process::release_free_memory();
        }
        // Copying the WAL into the database file grows the file: not while
        // the disk is full and its reserve is kept for the last events.
        if health.checkpoints_held() {
            continue;
        }
        let r: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
        let ok = r.is_ok();
        match r {
            // All frames copied and the WAL is big: try to reset it (fails harmlessly if busy).
            Ok((0, log, done)) if log == done && log > 16_384 => {
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "WAL checkpoint failed (retried every 500 ms)");
            }
            Err(_) => {}
        }
        if failing && ok {
            failing = false;
            tracing::info!("WAL checkpoints succeed again");
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    migrate_to(conn, MIGRATIONS.len())
}

/// Applies the migrations not yet applied among the first `upto`.
fn migrate_to(conn: &mut Connection, upto: usize) -> Result<(), StoreError> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate().take(upto).skip(applied.max(0) as usize) {
        // An existing store's format changes: say so, a large one takes a while.
        let started = std::time::Instant::now();
        if applied > 0 {
            tracing::info!(migration = name, "updating the store's format (a large store takes a while)");
        }
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        if applied > 0 {
            tracing::info!(
                migration = name,
                ms = started.elapsed().as_millis() as u64,
                "the store's format is updated"
            );
        }
    }
    if (applied.max(0) as usize) < upto.min(MIGRATIONS.len()) && applied > 0 {
        // A migration that rewrote a table (0006) leaves the old one's pages
        // free: a store made with incremental auto-vacuum hands them back to
        // the file system now (each step of the statement frees a page);
        // in any other they are reused by the next events.
        let mut stmt = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(())
}

impl Store {
    /// Opens (creating and migrating) the database at `path` and starts the writer thread.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if std::fs::metadata(path).map_or(true, |m| m.len() == 0) {
            // A new store gives the space of purged sessions back to the file
            // system (retention): set before the first table and WAL mode.
            Connection::open(path)?.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        let mut conn = open_connection(path)?;
        migrate(&mut conn)?;
        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('store_id', ?1)", [crate::ids::new_id("sto_")])?;
        let store_id: String = conn.query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| r.get(0))?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // Each command is at most one batch of a session's output: a short queue
        // bounds memory and pushes back on the agents when the disk is slower.
        let (tx, appends) = mpsc::channel(16);
        let (control, control_rx) = mpsc::channel(64);
        let (bus, _) = broadcast::channel(BUS_CAPACITY);
        let health = Arc::new(StoreHealth::default());
        let tail = Arc::new(tail::Tail::default());
        let state = writer::Writer::new(conn, bus.clone(), tail.clone(), health.clone())?;
        let queues = writer::Queues { appends, control: control_rx };
        std::thread::Builder::new().name("tether-store".into()).spawn(move || state.run(queues))?;
        // Checkpoints run beside the writer, never inside a commit (no latency spikes).
        let checkpoint = open_connection(path)?;
        let held = health.clone();
        let ring = tail.clone();
        std::thread::Builder::new()
            .name("tether-checkpoint".into())
            .spawn(move || checkpointer(checkpoint, held, ring))?;
        Ok(Store {
            tx,
            control,
            health,
            bus,
            tail,
            reads: Arc::new(ReadPool::new(path.to_path_buf())),
            reading: Arc::new(tokio::sync::Semaphore::new(reader::READERS)),
            path: Arc::new(path.to_path_buf()),
            store_id: store_id.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store's identity (`sto_…`), created with the database.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// Tests: the raw bus of events committed from now on (everything else
    /// follows the log through [`follow::Follower`]).
    #[cfg(test)]
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Committed>> {
        self.bus.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.bus.receiver_count()
    }

    /// Queues events for commit, in order. Waits only when the writer is saturated.
    pub async fn append(&self, session_id: Arc<str>, events: Vec<NewEvent>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.tx.send(WriteCmd::Append { session_id, events }).await.map_err(|_| StoreError::Closed)
    }

    /// Waits until everything queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (ack, rx) = oneshot::channel();
        self.tx.send(WriteCmd::Flush { ack }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)
    }

    /// How the store stands: committing, or stalled on a failing disk.
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// Sends a control command, or answers the stall at once if commits are failing.
    async fn control<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteCmd,
    ) -> Result<T, StoreError> {
        if let Some(stall) = self.health.stall() {
            return Err(StoreError::Stalled(stall));
        }
        let (ack, rx) = oneshot::channel();
        self.control.send(make(ack)).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Creates a session's row (fails at once while the store is stalled).
    pub async fn create_session(&self, row: SessionRow) -> Result<(), StoreError> {
        self.control(|ack| WriteCmd::CreateSession { row: Box::new(row), ack }).await
    }

    /// Deletes a session and all its events (fails at once while the store is stalled).
    pub async fn purge(&self, session_id: &str) -> Result<(), StoreError> {
        self.control(|ack| WriteCmd::Purge { session_id: session_id.to_string(), ack }).await
    }

    /// Deletes up to `max` events of session `session_id` (an ended one), and
    /// the session once none are left: (events deleted, whether it is gone).
    pub async fn purge_some(&self, session_id: &str, max: u64) -> Result<(u64, bool), StoreError> {
        self.control(|ack| WriteCmd::PurgeSome {
            session_id: session_id.to_string(),
            max,
            deleted: 0,
            gone: false,
            ack,
        })
        .await
    }

    /// Returns up to `pages` free pages of the database file to the file
    /// system (a store made before incremental vacuum was on keeps them for reuse).
    pub async fn vacuum(&self, pages: u32) -> Result<(), StoreError> {
        self.control(|ack| WriteCmd::Vacuum { pages, ack }).await
    }

    /// Adds or replaces the global MCP server `name` (its config as JSON);
    /// answers the config it replaced, once committed.
    pub async fn put_mcp_server(&self, name: &str, config: String) -> Result<Option<String>, StoreError> {
        self.control(|ack| WriteCmd::PutMcpServer { name: name.to_string(), config, previous: None, ack }).await
    }

    /// Removes the global MCP server `name`; answers its config (None if there was none), once committed.
    pub async fn delete_mcp_server(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.control(|ack| WriteCmd::DeleteMcpServer { name: name.to_string(), previous: None, ack }).await
    }

    /// Adds a webhook subscription, once committed (fails at once while the store is stalled).
    pub async fn create_webhook(&self, row: WebhookRow) -> Result<(), StoreError> {
        self.control(|ack| WriteCmd::CreateWebhook { row: Box::new(row), ack }).await
    }

    /// Records a webhook's cursor, counters and state (fails at once while the store is stalled).
    pub async fn webhook_progress(&self, progress: WebhookProgress) -> Result<(), StoreError> {
        self.control(|ack| WriteCmd::WebhookProgress { progress: Box::new(progress), ack }).await
    }

    /// Removes a webhook; answers whether it was there, once committed.
    pub async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        self.control(|ack| WriteCmd::DeleteWebhook { id: id.to_string(), existed: false, ack }).await
    }

    /// Tests: runs `sql` on the writer's connection (also during a stall).
    #[cfg(test)]
    pub(crate) async fn exec_on_writer(&self, sql: &str) -> Result<(), StoreError> {
        let (ack, rx) = oneshot::channel();
        self.control.send(WriteCmd::Exec { sql: sql.to_string(), ack }).await.map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Copies the WAL into the database file and empties it, waiting at most
    /// half a second for readers in the way. Done at a clean shutdown, so the
    /// next start need not read the WAL back (tens of ms on a large one).
    pub async fn checkpoint_wal(&self) -> Result<bool, StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> Result<bool, StoreError> {
            let conn = Connection::open(&*path)?;
            conn.pragma_update(None, "busy_timeout", 500)?;
            let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
            Ok(busy == 0)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }

    /// Runs a read on a pooled connection off the async runtime.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = self.reads.clone();
        // The permit goes with the read, which runs to its end even if the caller gives up on it.
        let permit = self.reading.clone().acquire_owned().await;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with(f)
        })
        .await
        .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?
    }
}

#[cfg(test)]
mod tests;
