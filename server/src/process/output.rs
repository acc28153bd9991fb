//! A process's output as a byte log with offsets: every byte it wrote has
//! the offset it had since the process started; the last `limit` bytes are
//! kept (older ones are dropped and reported as missed), in memory for
//! readers and, when given a directory, in a file beside the process's
//! record so a restarted server answers the same bytes.
//!
//! Readers never hold the writer back: each follows by offset at its own
//! pace (a [`watch`] of the end tells them there is more), and one that
//! falls behind what is kept skips ahead and is told how much it missed.
//!
//! On disk: `output.<start>` holds the bytes from offset `start` on. When it
//! grows past twice the limit, the kept bytes are written to
//! `output.<new start>.tmp`, renamed, and the old file removed; a start
//! picks the highest complete `output.<n>`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::sync::watch;

/// Where the output stands: the bytes kept run from `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputState {
    pub start: u64,
    pub end: u64,
    /// No byte will follow.
    pub ended: bool,
}

/// A piece of output read at an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The offset of the first byte: the one asked for, or the oldest kept.
    pub start: u64,
    pub bytes: Vec<u8>,
    /// Bytes between the offset asked for and `start` that are no longer kept.
    pub missed: u64,
}

impl OutputChunk {
    pub fn end(&self) -> u64 {
        self.start + self.bytes.len() as u64
    }
}

pub struct OutputLog {
    inner: Mutex<Inner>,
    state: watch::Sender<OutputState>,
    limit: usize,
}

struct Inner {
    start: u64,
    buf: VecDeque<u8>,
    ended: bool,
    spill: Option<Spill>,
}

struct Spill {
    dir: PathBuf,
    file: File,
    /// The offset of the file's first byte.
    from: u64,
    len: u64,
}

impl OutputLog {
    /// A log kept in memory only.
    pub fn in_memory(limit: usize) -> OutputLog {
        OutputLog::from_parts(limit, 0, VecDeque::new(), false, None)
    }

    /// A log whose bytes are also written under `dir`; what an earlier run
    /// left there is read back first (`ended` as given: a process of an
    /// earlier run has ended).
    pub fn open(dir: &Path, limit: usize, ended: bool) -> io::Result<OutputLog> {
        std::fs::create_dir_all(dir)?;
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        let mut stale = Vec::new();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("output.")) else { continue };
            match rest.parse::<u64>() {
                Ok(n) => found.push((n, entry.path())),
                // A compaction cut short.
                Err(_) => stale.push(entry.path()),
            }
        }
        found.sort();
        let newest = found.pop().map(|(n, _)| n);
        stale.extend(found.into_iter().map(|(_, p)| p));
        for path in stale {
            let _ = std::fs::remove_file(path);
        }
        let from = newest.unwrap_or(0);
        let path = dir.join(format!("output.{from}"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let len = bytes.len() as u64;
        let mut buf = VecDeque::from(bytes);
        let mut start = from;
        if buf.len() > limit {
            let excess = buf.len() - limit;
            buf.drain(..excess);
            start += excess as u64;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let spill = Spill { dir: dir.to_path_buf(), file, from, len };
        Ok(OutputLog::from_parts(limit, start, buf, ended, Some(spill)))
    }

    fn from_parts(limit: usize, start: u64, buf: VecDeque<u8>, ended: bool, spill: Option<Spill>) -> OutputLog {
        let state = OutputState { start, end: start + buf.len() as u64, ended };
        let (tx, _) = watch::channel(state);
        OutputLog { inner: Mutex::new(Inner { start, buf, ended, spill }), state: tx, limit: limit.max(1) }
    }

    /// Adds bytes at the end. A failed write to disk is logged; the bytes
    /// stay readable from memory.
    pub fn append(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let state = {
            let Ok(mut inner) = self.inner.lock() else { return };
            inner.buf.extend(bytes);
            if inner.buf.len() > self.limit {
                let excess = inner.buf.len() - self.limit;
                inner.buf.drain(..excess);
                inner.start += excess as u64;
            }
            let limit = self.limit as u64;
            let Inner { start, buf, spill, ended } = &mut *inner;
            if let Some(spill) = spill {
                if let Err(e) = spill.write(bytes, *start, buf, limit) {
                    tracing::warn!(dir = %spill.dir.display(), error = %e, "cannot keep a process's output on disk");
                }
            }
            OutputState { start: *start, end: *start + buf.len() as u64, ended: *ended }
        };
        self.state.send_replace(state);
    }

    /// No more bytes will come.
    pub fn finish(&self) {
        let state = {
            let Ok(mut inner) = self.inner.lock() else { return };
            inner.ended = true;
            if let Some(spill) = &mut inner.spill {
                let _ = spill.file.flush();
            }
            OutputState { start: inner.start, end: inner.start + inner.buf.len() as u64, ended: true }
        };
        self.state.send_replace(state);
    }

    pub fn state(&self) -> OutputState {
        *self.state.borrow()
    }

    /// Told whenever the state changes.
    pub fn subscribe(&self) -> watch::Receiver<OutputState> {
        self.state.subscribe()
    }

    /// Up to `max` bytes from offset `after` (or from the oldest kept byte
    /// when `after` is older); empty at or past the end.
    pub fn read(&self, after: u64, max: usize) -> OutputChunk {
        let Ok(inner) = self.inner.lock() else {
            return OutputChunk { start: after, bytes: Vec::new(), missed: 0 };
        };
        let end = inner.start + inner.buf.len() as u64;
        let from = after.clamp(inner.start, end);
        let missed = from.saturating_sub(after);
        let skip = (from - inner.start) as usize;
        let take = ((end - from) as usize).min(max);
        let bytes: Vec<u8> = inner.buf.range(skip..skip + take).copied().collect();
        OutputChunk { start: from, bytes, missed }
    }
}

impl Spill {
    fn write(&mut self, bytes: &[u8], start: u64, kept: &VecDeque<u8>, limit: u64) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.len += bytes.len() as u64;
        if self.len <= 2 * limit {
            return Ok(());
        }
        // Rewrite the kept bytes alone.
        let tmp = self.dir.join(format!("output.{start}.tmp"));
        let path = self.dir.join(format!("output.{start}"));
        {
            let mut f = File::create(&tmp)?;
            let (a, b) = kept.as_slices();
            f.write_all(a)?;
            f.write_all(b)?;
        }
        std::fs::rename(&tmp, &path)?;
        if self.from != start {
            let _ = std::fs::remove_file(self.dir.join(format!("output.{}", self.from)));
        }
        self.file = OpenOptions::new().append(true).open(&path)?;
        self.from = start;
        self.len = kept.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_by_offset_and_reports_what_was_dropped() {
        let log = OutputLog::in_memory(8);
        log.append(b"hello ");
        log.append(b"world");
        let st = log.state();
        assert_eq!((st.start, st.end), (3, 11));
        let c = log.read(0, 100);
        assert_eq!((c.start, c.missed, c.bytes.as_slice()), (3, 3, &b"lo world"[..]));
        let c = log.read(6, 3);
        assert_eq!((c.start, c.missed, c.bytes.as_slice()), (6, 0, &b"wor"[..]));
        assert!(log.read(11, 10).bytes.is_empty());
        assert!(log.read(50, 10).bytes.is_empty());
    }

    #[test]
    fn the_same_bytes_come_back_from_disk_after_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = Vec::new();
        {
            let log = OutputLog::open(dir.path(), 100, false).unwrap();
            for i in 0..500u32 {
                let piece = format!("{i},");
                all.extend_from_slice(piece.as_bytes());
                log.append(piece.as_bytes());
            }
            log.finish();
        }
        let log = OutputLog::open(dir.path(), 100, true).unwrap();
        let st = log.state();
        assert_eq!(st.end, all.len() as u64);
        assert!(st.ended);
        let c = log.read(0, 1000);
        assert_eq!(c.bytes, all[all.len() - 100..]);
        assert_eq!(c.start, all.len() as u64 - 100);
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "one output file after compaction");
    }
}
