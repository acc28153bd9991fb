//! The disk holding the data dir, watched the way well-run stores watch it
//! (disk watermarks, a reserve): every half second its free space is read.
//!
//! - Below the low watermark (`--disk-low-mb`): `server.disk {state: low}`
//!   on the sandbox log and `/v1/health` `degraded` — a warning.
//! - Below the flood stage (`--disk-flood-mb`), or when the store could not
//!   commit for lack of space: `full`. New sessions and turns are refused
//!   (507), and each running turn is ended: its agent stopped, what it had
//!   not yet handed over dropped, and a retryable `store_full` error and the
//!   turn's end written. Those last events always find room: a reserve file
//!   kept in the data dir (`--disk-reserve-mb`) is deleted first.
//! - Once space is back above the low watermark: the reserve is made again,
//!   `server.disk {state: ok}`, and everything goes on by itself.
//!
//! Nothing the store accepted is lost on the way: a batch that cannot commit
//! is kept and retried by the store's writer until it does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tether_protocol::{EventBody, ServerDisk, Source, SANDBOX_LOG};

use crate::session::Sessions;
use crate::store::{DiskState, NewEvent, StallKind};

/// How often free space is read.
const POLL: Duration = Duration::from_millis(500);
/// The reserve file's name in the data dir.
pub const RESERVE_FILE: &str = "reserve";

/// Watermarks and the reserve, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskLimits {
    pub low: u64,
    pub flood: u64,
    pub reserve: u64,
}

impl Default for DiskLimits {
    fn default() -> Self {
        DiskLimits { low: 1024 << 20, flood: 256 << 20, reserve: 16 << 20 }
    }
}

impl DiskLimits {
    /// The marks for a disk of `total` bytes: as configured, but at most 10%
    /// (low) and 3% (flood) of it, so a small disk is not always "low".
    fn marks(&self, total: u64) -> (u64, u64) {
        (self.low.min(total / 10), self.flood.min(total / 33))
    }
}

/// (free bytes for an unprivileged writer, total bytes) of the file system holding `path`.
pub fn space(path: &Path) -> std::io::Result<(u64, u64)> {
    let st = rustix::fs::statvfs(path)?;
    Ok((st.f_bavail.saturating_mul(st.f_frsize), st.f_blocks.saturating_mul(st.f_frsize)))
}

/// The reserve file: made when there is room, deleted when the disk is full.
struct Reserve {
    path: PathBuf,
    size: u64,
}

impl Reserve {
    fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Writes it whole (zeros, synced) or not at all.
    fn make(&self) -> bool {
        use std::io::Write;
        if self.size == 0 || self.exists() {
            return true;
        }
        let tmp = self.path.with_extension("new");
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            // Blocks allocated at once where the file system can (no bytes
            // written); zeros written where it cannot.
            let allocated = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, self.size);
            if let Err(e) = allocated {
                if e == rustix::io::Errno::NOSPC {
                    return Err(e.into());
                }
                let chunk = vec![0u8; 1 << 20];
                let mut left = self.size;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    f.write_all(&chunk[..n])?;
                    left -= n as u64;
                }
            }
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        match written {
            Ok(()) => true,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::debug!(error = %e, "no room for the disk reserve yet");
                false
            }
        }
    }

    fn release(&self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => {
                tracing::warn!(bytes = self.size, "the disk is full: the reserve was released for the last events")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, "could not release the disk reserve"),
        }
    }
}

/// Where the disk stands for `free` of `total` bytes, and the store stalled
/// for lack of space or not: `full` wins, then `low`. Leaving `full` needs
/// free space above the low watermark (no flapping at the flood stage).
pub fn judge(limits: &DiskLimits, free: u64, total: u64, store_full: bool, was: DiskState) -> DiskState {
    let (low, flood) = limits.marks(total);
    if store_full || free < flood || (was == DiskState::Full && free < low) {
        DiskState::Full
    } else if free < low {
        DiskState::Low
    } else {
        DiskState::Ok
    }
}

/// Watches the disk of `shared.data_dir` until the server stops.
pub async fn watch(shared: Arc<Sessions>, limits: DiskLimits) {
    let reserve = Reserve { path: shared.data_dir.join(RESERVE_FILE), size: limits.reserve };
    let mut was = DiskState::Ok;
    let mut failing = false;
    loop {
        let dir = shared.data_dir.clone();
        let read = tokio::task::spawn_blocking(move || space(&dir)).await;
        let (free, total) = match read {
            Ok(Ok(s)) => {
                failing = false;
                s
            }
            Ok(Err(e)) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read the data dir's free space");
                (u64::MAX, u64::MAX)
            }
            _ => (u64::MAX, u64::MAX),
        };
        let store_full = shared.store.health().stall().is_some_and(|s| s.kind == StallKind::DiskFull);
        // The reserve counts as used even while it is released: the room it
        // freed is for the last events, not a sign that the disk has room.
        let owed = if reserve.exists() { 0 } else { limits.reserve };
        let now = judge(&limits, free.saturating_sub(owed), total, store_full, was);
        shared.disk.set(now, free, total);
        shared.store.health().hold_checkpoints(now == DiskState::Full);
        if now == DiskState::Full && was != DiskState::Full {
            // The agents are paused first, then the reserve makes room for
            // the last events, and the running turns are ended.
            shared.disk_full().await;
            reserve.release();
        }
        if now != DiskState::Full && !reserve.exists() {
            let r = Reserve { path: reserve.path.clone(), size: reserve.size };
            let _ = tokio::task::spawn_blocking(move || r.make()).await;
        }
        if now != was {
            let (low, flood) = limits.marks(total);
            match now {
                DiskState::Ok => tracing::info!(free, "the data dir's disk has room again"),
                DiskState::Low => tracing::warn!(free, low, "the data dir's disk is low on space"),
                DiskState::Full => tracing::warn!(free, flood, store_full, "the data dir's disk is full"),
            }
            let body =
                EventBody::ServerDisk(ServerDisk { state: now.as_str().into(), free_bytes: free, total_bytes: total });
            let event = NewEvent::new(Source::Server, Arc::from(crate::ids::now_rfc3339()), &body, None, vec![]);
            if let Err(e) = shared.store.append(Arc::from(SANDBOX_LOG), vec![event]).await {
                tracing::warn!(error = %e, "could not write server.disk");
            }
            was = now;
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_watermarks_decide_and_full_is_left_only_above_the_low_one() {
        let limits = DiskLimits { low: 16 * MIB, flood: 4 * MIB, reserve: MIB };
        let total = 1024 * MIB;
        assert_eq!(judge(&limits, 100 * MIB, total, false, DiskState::Ok), DiskState::Ok);
        assert_eq!(judge(&limits, 10 * MIB, total, false, DiskState::Ok), DiskState::Low);
        assert_eq!(judge(&limits, 3 * MIB, total, false, DiskState::Low), DiskState::Full);
        assert_eq!(
            judge(&limits, 100 * MIB, total, true, DiskState::Ok),
            DiskState::Full,
            "a store that cannot commit"
        );
        assert_eq!(judge(&limits, 10 * MIB, total, false, DiskState::Full), DiskState::Full, "no flapping");
        assert_eq!(judge(&limits, 20 * MIB, total, false, DiskState::Full), DiskState::Ok);
    }

    #[test]
    fn a_small_disk_is_judged_by_its_share() {
        let limits = DiskLimits::default();
        let total = 2048 * MIB;
        assert_eq!(limits.marks(total), (total / 10, total / 33));
        assert_eq!(judge(&limits, 300 * MIB, total, false, DiskState::Ok), DiskState::Ok);
    }

    #[test]
    fn the_reserve_is_whole_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reserve { path: dir.path().join(RESERVE_FILE), size: 3 * MIB + 5 };
        assert!(r.make());
        assert_eq!(std::fs::metadata(&r.path).unwrap().len(), 3 * MIB + 5);
        r.release();
        assert!(!r.exists());
    }
}
