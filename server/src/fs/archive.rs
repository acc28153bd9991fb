//! Tar upload (extraction confined to the workspace root: an entry that
//! climbs out, through `..`, an absolute name or a symlink, is refused) and
//! download (a directory as a tar stream; symlinks stored as links, never
//! followed). Both run on the blocking pool, bridged to the async body by
//! bounded channels, so memory stays constant whatever the size. Both walk
//! the tree by descriptors beneath the root ([`super::beneath`]), never by
//! path strings, so a directory swapped for a symlink meanwhile leads nowhere.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use rustix::fs::{openat, readlinkat, symlinkat, unlinkat, AtFlags, Mode, OFlags};
use tokio::sync::mpsc;

use super::beneath::{is_utf8, lstat_at, names};
use super::path::{self as fspath, confine, create_parents, io_error, mkdir_all, open_root, RelPath};
use super::FsError;
use super::PendingWrite;

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
pub fn extract(root: &Path, dest: &str, input: impl Read, gzip: bool) -> Result<u64, FsError> {
    let dest_rel = confine(root, dest)?;
    let root_path = root;
    let root = open_root(root_path)?;
    mkdir_all(&root, &dest_rel.0, dest)?;
    let input: Box<dyn Read> = if gzip { Box::new(flate2::read::MultiGzDecoder::new(input)) } else { Box::new(input) };
    let mut archive = tar::Archive::new(input);
    let bad = FsError::BadArchive;
    let mut count = 0;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.into_owned();
        let shown = name.to_string_lossy().into_owned();
        if !is_utf8(name.as_os_str()) {
            return Err(FsError::NameNotUtf8 { what: format!("tar entry {shown:?}") });
        }
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
                _ => return Err(FsError::ArchiveEscapes { entry: shown }),
            }
        }
        let rel = RelPath(rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            mkdir_all(&root, &rel.0, &shown)?;
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            if rel.0 == dest_rel.0 {
                continue;
            }
            let (dir, file_name) = create_parents(&root, &rel, &shown)?;
            // A symlink in the way is replaced, never written through; a directory is not.
            if lstat_at(dir.as_fd(), &file_name).is_ok_and(|m| m.is_dir()) {
                return Err(FsError::ArchiveReplacesDirectory { entry: shown });
            }
            let (temp, mut file) = fspath::create_temp(dir.as_fd()).map_err(|e| io_error(e, &shown))?;
            let pending = PendingWrite { dir, name: file_name, temp: Some(temp), rel, user: shown.clone() };
            io::copy(&mut entry, &mut file).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => bad(e),
                _ => io_error(e, &shown),
            })?;
            if let Ok(mode) = entry.header().mode() {
                use std::os::unix::fs::PermissionsExt;
                let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
            }
            pending.put_in_place().map_err(|e| io_error(e, &shown))?;
        } else if kind.is_symlink() {
            let link =
                entry.link_name().map_err(bad)?.ok_or_else(|| bad(io::Error::other("symlink without a target")))?;
            // The link's target, resolved lexically from where it lives, stays
            // inside the root (and every later lookup through it is beneath the root anyway).
            let parent_rel = rel.0.parent().unwrap_or(Path::new(""));
            let joined = if link.is_absolute() { link.to_path_buf() } else { root_path.join(parent_rel).join(&link) };
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
            if !check.starts_with(root_path) {
                return Err(FsError::ArchiveSymlinkOutside { entry: shown });
            }
            let (dir, file_name) = create_parents(&root, &rel, &shown)?;
            let _ = unlinkat(&dir, &file_name, AtFlags::empty());
            symlinkat(link.as_os_str(), &dir, &file_name).map_err(|e| io_error(e.into(), &shown))?;
            crate::process::user::give_entry_to_agent(dir.as_fd(), &file_name).map_err(|e| io_error(e, &shown))?;
        } else if kind.is_hard_link() {
            return Err(FsError::ArchiveHardLink { entry: shown });
        } else {
            // Devices, fifos, extended headers already applied: nothing to write.
            continue;
        }
        count += 1;
    }
    Ok(count)
}

/// Checks that `dir` is a directory inside the root; answers it, open.
pub fn download_dir(root: &Path, dir: &str) -> Result<OwnedFd, FsError> {
    let rel = confine(root, dir)?;
    fspath::open_existing_dir(&open_root(root)?, &rel, dir)
}

/// Writes the directory `dir` as a tar to `out` (entries under `./`);
/// symlinks stored as links; sockets, FIFOs and devices left out.
pub fn archive(dir: OwnedFd, out: impl Write) -> io::Result<()> {
    let mut builder = tar::Builder::new(out);
    let meta = File::from(rustix::io::dup(&dir)?).metadata()?;
    append_dir(&mut builder, dir.as_fd(), Path::new("."), &meta)?;
    let mut out = builder.into_inner()?;
    out.flush()
}

fn header(meta: &std::fs::Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    header
}

/// Appends `dir` (open, named `at` in the archive) and everything under it.
fn append_dir<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: BorrowedFd<'_>,
    at: &Path,
    meta: &std::fs::Metadata,
) -> io::Result<()> {
    builder.append_data(&mut header(meta), at, io::empty())?;
    let mut children = names(dir)?;
    children.sort();
    for name in children {
        let path = at.join(&name);
        let meta = match lstat_at(dir, &name) {
            Ok(meta) => meta,
            // Removed since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match openat(dir, &name, flags, Mode::empty()) {
                Ok(sub) => append_dir(builder, sub.as_fd(), &path, &meta)?,
                // Swapped for something else since: left out.
                Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR | rustix::io::Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        } else if kind.is_symlink() {
            let Ok(target) = readlinkat(dir, &name, Vec::new()) else { continue };
            let target = OsStr::from_bytes(target.as_bytes());
            builder.append_link(&mut header(&meta), &path, target)?;
        } else if kind.is_file() {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
            let Ok(fd) = openat(dir, &name, flags, Mode::empty()) else { continue };
            let file = File::from(fd);
            let meta = file.metadata()?;
            if !meta.is_file() {
                continue;
            }
            // Exactly the size the header states, even if the file changes while read.
            let size = meta.len();
            let body = file.take(size).chain(io::repeat(0)).take(size);
            builder.append_data(&mut header(&meta), &path, body)?;
        }
    }
    Ok(())
}
