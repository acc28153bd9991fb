//! How the disk holding the data dir stands, as `crate::disk` last saw it
//! (kept here, beside the store it is about, so the sessions and the HTTP
//! layer read it without depending on the watcher).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Where the disk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    Ok = 0,
    Low = 1,
    Full = 2,
}

impl DiskState {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskState::Ok => "ok",
            DiskState::Low => "low",
            DiskState::Full => "full",
        }
    }

    fn from_u8(v: u8) -> DiskState {
        match v {
            1 => DiskState::Low,
            2 => DiskState::Full,
            _ => DiskState::Ok,
        }
    }
}

/// What the watcher last saw; read by the HTTP layer and the sessions.
#[derive(Debug, Default)]
pub struct Disk {
    state: AtomicU8,
    free: AtomicU64,
    total: AtomicU64,
}

impl Disk {
    pub fn state(&self) -> DiskState {
        DiskState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// (free, total) bytes at the last look.
    pub fn space(&self) -> (u64, u64) {
        (self.free.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }

    pub(crate) fn set(&self, state: DiskState, free: u64, total: u64) {
        self.free.store(free, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.state.store(state as u8, Ordering::Release);
    }
}
