//! Tar upload (extraction confined to the workspace root: an entry that
//! climbs out, through `..`, an absolute name or a symlink, is refused) and
//! download (a directory as a tar stream; symlinks stored as links, never
//! followed). Both run on the blocking pool, bridged to the async body by
//! bounded channels, so memory stays constant whatever the size.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::path::{self as fspath, canonical_inside, confine, create_parents, io_error, mkdir_all, RelPath};
use crate::error::ApiError;

/// A `Read` over chunks sent from the async side.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChannelReader { rx, current: Bytes::new() }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A `Write` that sends 64 KiB chunks to the async side.
pub struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<Bytes>) -> Self {
        ChannelWriter { tx, buf: Vec::with_capacity(CHUNK) }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(chunk).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

/// Extracts the tar read from `input` under `dest` (a path relative to the
/// root, created if missing); answers the number of entries written.
pub fn extract(root: &Path, dest: &str, input: impl Read, gzip: bool) -> Result<u64, ApiError> {
    let dest_rel = confine(root, dest)?;
    mkdir_all(root, &dest_rel.0, dest)?;
    let input: Box<dyn Read> = if gzip { Box::new(flate2::read::GzDecoder::new(input)) } else { Box::new(input) };
    let mut archive = tar::Archive::new(input);
    let bad = |e: io::Error| ApiError::invalid(format!("not a valid tar archive: {e}"));
    let mut count = 0;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.into_owned();
        let shown = name.to_string_lossy().into_owned();
        // Every entry stays under `dest`: no absolute names, no `..` above it.
        let mut rel = dest_rel.0.clone();
        let depth = rel.components().count();
        for c in name.components() {
            match c {
                Component::Normal(c) => rel.push(c),
                Component::CurDir => {}
                Component::ParentDir if rel.components().count() > depth => {
                    rel.pop();
                }
                _ => {
                    return Err(ApiError::path_outside_root(format!(
                        "tar entry {shown:?} climbs out of the upload directory"
                    )))
                }
            }
        }
        let rel = RelPath(rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            mkdir_all(root, &rel.0, &shown)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if rel.0 == dest_rel.0 {
                continue;
            }
            let (dir, file_name) = create_parents(root, &rel, &shown)?;
            // A symlink (or directory) in the way is replaced, never written through.
            let target = dir.join(&file_name);
            if let Ok(meta) = std::fs::symlink_metadata(&target) {
                if meta.is_dir() {
                    return Err(ApiError::conflict(format!("tar entry {shown:?} would replace a directory")));
                }
            }
            let (temp, mut file) = fspath::create_temp(&dir).map_err(|e| io_error(e, &shown))?;
            let guard = TempFile(Some(temp.clone()));
            io::copy(&mut entry, &mut file).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => bad(e),
                _ => io_error(e, &shown),
            })?;
            if let Ok(mode) = entry.header().mode() {
                use std::os::unix::fs::PermissionsExt;
                let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
            }
            std::fs::rename(&temp, &target).map_err(|e| io_error(e, &shown))?;
            drop(guard.disarm());
        } else if kind.is_symlink() {
            let link =
                entry.link_name().map_err(bad)?.ok_or_else(|| bad(io::Error::other("symlink without a target")))?;
            let (dir, file_name) = create_parents(root, &rel, &shown)?;
            // The link's target, resolved lexically from where it lives, stays inside the root.
            let parent_rel = dir.strip_prefix(root).map(Path::to_path_buf).unwrap_or_default();
            let joined = if link.is_absolute() { link.to_path_buf() } else { root.join(&parent_rel).join(&link) };
            let mut check = PathBuf::new();
            for c in joined.components() {
                match c {
                    Component::ParentDir => {
                        check.pop();
                    }
                    Component::CurDir => {}
                    other => check.push(other),
                }
            }
            if !check.starts_with(root) {
                return Err(ApiError::path_outside_root(format!("tar symlink {shown:?} points outside the root")));
            }
            let target = dir.join(&file_name);
            let _ = std::fs::remove_file(&target);
            std::os::unix::fs::symlink(&link, &target).map_err(|e| io_error(e, &shown))?;
        } else if kind.is_hard_link() {
            return Err(ApiError::invalid(format!("tar entry {shown:?}: hard links are not supported")));
        } else {
            // Devices, fifos, extended headers already applied: nothing to write.
            continue;
        }
        count += 1;
    }
    Ok(count)
}

struct TempFile(Option<PathBuf>);

impl TempFile {
    fn disarm(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Checks that `dir` is a directory inside the root; answers its real path.
pub fn download_dir(root: &Path, dir: &str) -> Result<PathBuf, ApiError> {
    let rel = confine(root, dir)?;
    let real = canonical_inside(root, &root.join(&rel.0), dir)?;
    if !real.is_dir() {
        return Err(ApiError::conflict(format!("{dir:?} is not a directory")));
    }
    Ok(real)
}

/// Writes `real` (a directory) as a tar to `out`; symlinks stored as links.
pub fn archive(real: &Path, out: impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    builder.append_dir_all(".", real)?;
    let mut out = builder.into_inner()?;
    out.flush()
}
