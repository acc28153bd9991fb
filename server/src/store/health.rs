//! Whether the store can commit. The writer records every failed and every
//! successful commit here; the HTTP layer reads it to fail fast (commands
//! that cannot wait while events are held back), and to report the stall on
//! `/v1/info` and `/metrics`. A stall that ends is announced on a broadcast
//! so the sessions can close the turns it held back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

/// Why commits fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StallKind {
    /// The disk (or the database's size limit) is full: SQLite's `SQLITE_FULL`, `ENOSPC`.
    DiskFull,
    /// The file system became read-only under the server.
    ReadOnly,
    /// Any other I/O failure.
    Io,
}

impl StallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StallKind::DiskFull => "disk_full",
            StallKind::ReadOnly => "read_only",
            StallKind::Io => "io_error",
        }
    }

    /// How a failed commit's error is classified.
    pub fn of(e: &super::StoreError) -> StallKind {
        use rusqlite::ErrorCode;
        match e {
            super::StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => match f.code {
                ErrorCode::DiskFull => StallKind::DiskFull,
                ErrorCode::ReadOnly => StallKind::ReadOnly,
                _ => StallKind::Io,
            },
            super::StoreError::Io(io) if io.raw_os_error() == Some(libc::ENOSPC) => StallKind::DiskFull,
            super::StoreError::Io(io) if io.raw_os_error() == Some(libc::EROFS) => StallKind::ReadOnly,
            super::StoreError::Stalled(s) => s.kind,
            _ => StallKind::Io,
        }
    }

    /// A sentence for people: what is wrong with the disk.
    pub fn describe(self) -> &'static str {
        match self {
            StallKind::DiskFull => "the disk holding the data dir is full",
            StallKind::ReadOnly => "the data dir's file system is read-only",
            StallKind::Io => "the data dir's disk fails to write",
        }
    }
}

/// The store cannot commit, since `since`.
#[derive(Debug, Clone)]
pub struct Stall {
    pub kind: StallKind,
    /// The last commit's error.
    pub error: String,
    pub since: Instant,
    /// Wall clock of `since`, unix ms.
    pub since_ms: i64,
    /// Failed commits in this stall.
    pub attempts: u64,
    /// Events waiting in the failing batch (more wait in the queue behind it).
    pub held_events: u64,
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: the store has not committed for {} s ({}); events are held back until it can",
            self.kind.describe(),
            self.since.elapsed().as_secs(),
            self.error
        )
    }
}

/// A stall that is over: the first commit after it succeeded.
#[derive(Debug, Clone)]
pub struct StallEnded {
    pub kind: StallKind,
    pub error: String,
    pub duration: Duration,
}

pub struct StoreHealth {
    /// Set while the disk is full (`crate::disk`): no WAL checkpoint then.
    hold_checkpoints: AtomicBool,
    stalled: AtomicBool,
    stall: Mutex<Option<Stall>>,
    last_error: Mutex<Option<(i64, String)>>,
    commit_failures: AtomicU64,
    stalls: AtomicU64,
    ended: broadcast::Sender<StallEnded>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            hold_checkpoints: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            stall: Mutex::new(None),
            last_error: Mutex::new(None),
            commit_failures: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            ended: broadcast::channel(16).0,
        }
    }
}

impl StoreHealth {
    /// The current stall, if commits are failing.
    pub fn stall(&self) -> Option<Stall> {
        if !self.stalled.load(Ordering::Acquire) {
            return None;
        }
        self.stall.lock().ok().and_then(|s| s.clone())
    }

    /// Holds (or lets go) the WAL checkpoints: copying the WAL into the
    /// database file takes as much room again, which a full disk has not.
    pub fn hold_checkpoints(&self, hold: bool) {
        self.hold_checkpoints.store(hold, Ordering::Release);
    }

    pub fn checkpoints_held(&self) -> bool {
        self.hold_checkpoints.load(Ordering::Acquire)
    }

    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Acquire)
    }

    /// Failed commits since the start.
    pub fn commit_failures(&self) -> u64 {
        self.commit_failures.load(Ordering::Relaxed)
    }

    /// Stalls since the start (ended or not).
    pub fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    /// The most recent commit error (unix ms, message), even if the stall is over.
    pub fn last_error(&self) -> Option<(i64, String)> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Stalls that end from now on.
    pub fn subscribe_ended(&self) -> broadcast::Receiver<StallEnded> {
        self.ended.subscribe()
    }

    /// A commit failed with `e` while `held_events` events wait in its batch;
    /// answers the stall as it now stands.
    pub(crate) fn failed(&self, e: &super::StoreError, held_events: u64) -> Stall {
        self.commit_failures.fetch_add(1, Ordering::Relaxed);
        let kind = StallKind::of(e);
        let error = e.to_string();
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((crate::ids::now_ms(), error.clone()));
        }
        let mut guard = match self.stall.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let stall = match guard.as_mut() {
            Some(s) => {
                s.kind = kind;
                s.error = error;
                s.attempts += 1;
                s.held_events = held_events;
                s.clone()
            }
            None => {
                self.stalls.fetch_add(1, Ordering::Relaxed);
                let s = Stall {
                    kind,
                    error,
                    since: Instant::now(),
                    since_ms: crate::ids::now_ms(),
                    attempts: 1,
                    held_events,
                };
                *guard = Some(s.clone());
                s
            }
        };
        self.stalled.store(true, Ordering::Release);
        stall
    }

    /// A commit succeeded: ends the stall, if there was one, and announces it.
    pub(crate) fn committed(&self) -> Option<StallEnded> {
        if !self.stalled.load(Ordering::Acquire) {
            return None;
        }
        let stall = self.stall.lock().ok().and_then(|mut s| s.take());
        self.stalled.store(false, Ordering::Release);
        let stall = stall?;
        let ended = StallEnded { kind: stall.kind, error: stall.error, duration: stall.since.elapsed() };
        // Nobody listening is fine (no sessions to close).
        let _ = self.ended.send(ended.clone());
        Some(ended)
    }
}
