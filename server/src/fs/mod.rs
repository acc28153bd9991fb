//! The workspace filesystem: every operation confined to the workspace root
//! (see [`path`]). These are blocking; the HTTP routes and the MCP tools
//! run them on the blocking pool. Every failure is an [`FsError`], in the
//! filesystem's terms, with its code and status beside it (`error.rs`);
//! this module knows nothing of HTTP.

pub mod archive;
pub mod beneath;
mod error;
pub mod path;
pub mod watch;

use std::ffi::OsString;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::UNIX_EPOCH;

use rustix::fs::{renameat, unlinkat, AtFlags, OFlags};
use tether_protocol::{FsEntries, FsEntry, FsKind};

use beneath::{is_utf8, lstat_at};
pub use error::FsError;
use path::{
    confine, create_parents, create_temp, io_error, mkdir_all, open_existing_dir, open_read, open_root,
    parent_and_name, RelPath,
};

/// The default upload limit (`--max-upload-bytes`): 4 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// An entry as the API answers it, from its `lstat`. A name that is not
/// UTF-8 is shown with U+FFFD in its place and flagged `not_utf8`: the API
/// names files by UTF-8 paths, so such an entry cannot be asked for.
pub fn entry(rel: &RelPath, meta: &Metadata) -> FsEntry {
    let kind = if meta.file_type().is_symlink() {
        FsKind::Symlink
    } else if meta.is_dir() {
        FsKind::Dir
    } else {
        FsKind::File
    };
    let modified_ms =
        meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_millis() as i64).unwrap_or(0);
    FsEntry {
        name: rel.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        path: rel.display(),
        kind,
        size: meta.len(),
        modified: crate::ids::rfc3339_ms(modified_ms),
        not_utf8: !is_utf8(rel.0.as_os_str()),
    }
}

/// A file being written: a new temporary file in the target's folder
/// ([`NewFile::file`]), put in place by [`PendingWrite::commit`] (so a reader
/// never sees half a file).
pub struct NewFile {
    pub file: File,
    pub pending: PendingWrite,
}

/// Where a written temporary file goes: the target's folder, held open, and
/// the names. Dropped without a commit (an error, the client gone), the
/// temporary file is removed.
pub struct PendingWrite {
    dir: OwnedFd,
    name: OsString,
    temp: Option<OsString>,
    rel: RelPath,
    user: String,
}

impl PendingWrite {
    /// Renames the temporary file over the target (atomic).
    pub fn put_in_place(mut self) -> io::Result<()> {
        let Some(temp) = self.temp.take() else { return Ok(()) };
        renameat(&self.dir, &temp, &self.dir, &self.name).inspect_err(|_| {
            let _ = unlinkat(&self.dir, &temp, AtFlags::empty());
        })?;
        Ok(())
    }

    /// Puts the file in place, syncs its folder, and answers its entry (at
    /// the path asked, which may be a symlink written through).
    pub fn commit(self) -> Result<FsEntry, FsError> {
        let dir = rustix::io::dup(&self.dir).map_err(|e| io_error(e.into(), &self.user))?;
        let (name, rel, user) = (self.name.clone(), self.rel.clone(), self.user.clone());
        self.put_in_place().map_err(|e| io_error(e, &user))?;
        let _ = rustix::fs::fsync(&dir);
        let meta = lstat_at(dir.as_fd(), &name).map_err(|e| io_error(e, &user))?;
        Ok(entry(&rel, &meta))
    }
}

impl Drop for PendingWrite {
    fn drop(&mut self) {
        if let Some(temp) = self.temp.take() {
            let _ = unlinkat(&self.dir, &temp, AtFlags::empty());
        }
    }
}

/// Starts writing `user`: creates its parent folders and a temporary file
/// beside it. A folder cannot be replaced; a symlink as the last component
/// is written through only when it points inside the root (the link stays).
pub fn begin_write(root: &Path, user: &str) -> Result<NewFile, FsError> {
    let rel = confine(root, user)?;
    let root = open_root(root)?;
    let (dir, name) = create_parents(&root, &rel, user)?;
    let is_dir = || FsError::IsADirectory { path: user.to_string() };
    let (dir, name) = match lstat_at(dir.as_fd(), &name) {
        Ok(meta) if meta.is_dir() => return Err(is_dir()),
        Ok(meta) if meta.file_type().is_symlink() => {
            let (dir, name) = root.parent_following(&rel.0).map_err(|e| io_error(e, user))?;
            if lstat_at(dir.as_fd(), &name).is_ok_and(|m| m.is_dir()) {
                return Err(is_dir());
            }
            (dir, name)
        }
        _ => (dir, name),
    };
    let (temp, file) = create_temp(dir.as_fd()).map_err(|e| io_error(e, user))?;
    Ok(NewFile { file, pending: PendingWrite { dir, name, temp: Some(temp), rel, user: user.to_string() } })
}

/// Writes `bytes` as the whole of `user`, atomically.
pub fn write_file(root: &Path, user: &str, bytes: &[u8]) -> Result<FsEntry, FsError> {
    let NewFile { mut file, pending } = begin_write(root, user)?;
    file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| io_error(e, user))?;
    drop(file);
    pending.commit()
}

/// Reads at most `max` bytes of the file `user` from `offset`; answers them
/// and the file's size.
pub fn read_range(root: &Path, user: &str, offset: u64, max: u64) -> Result<(Vec<u8>, u64), FsError> {
    let mut file = open_read(root, &confine(root, user)?, user)?;
    let size = file.metadata().map_err(|e| io_error(e, user))?.len();
    file.seek(SeekFrom::Start(offset)).map_err(|e| io_error(e, user))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).map_err(|e| io_error(e, user))?;
    Ok((bytes, size))
}

/// `GET /v1/fs/stat`: the entry itself (a symlink is not followed).
pub fn stat(root: &Path, user: &str) -> Result<FsEntry, FsError> {
    let rel = confine(root, user)?;
    let root = open_root(root)?;
    let meta = if rel.is_root() {
        File::from(root.open_at(&rel.0, OFlags::PATH).map_err(|e| io_error(e, user))?).metadata()
    } else {
        let (dir, name) = parent_and_name(&root, &rel, user)?;
        lstat_at(dir.as_fd(), &name)
    };
    Ok(entry(&rel, &meta.map_err(|e| io_error(e, user))?))
}

/// `GET /v1/fs/entries`: a directory's entries, sorted by name.
pub fn list(root: &Path, user: &str) -> Result<FsEntries, FsError> {
    let rel = confine(root, user)?;
    let dir = open_existing_dir(&open_root(root)?, &rel, user)?;
    let mut entries = Vec::new();
    for name in beneath::names(dir.as_fd()).map_err(|e| io_error(e, user))? {
        let meta = match lstat_at(dir.as_fd(), &name) {
            Ok(meta) => meta,
            // Removed since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(e, user)),
        };
        entries.push(entry(&RelPath(rel.0.join(name)), &meta));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FsEntries { entries })
}

/// `DELETE /v1/fs/entries`: a file or symlink (the link itself), an empty
/// directory, or any directory with `recursive`.
pub fn delete(root: &Path, user: &str, recursive: bool) -> Result<(), FsError> {
    let rel = confine(root, user)?;
    if rel.is_root() {
        return Err(FsError::DeleteRoot);
    }
    let root = open_root(root)?;
    let (dir, name) = parent_and_name(&root, &rel, user)?;
    let meta = lstat_at(dir.as_fd(), &name).map_err(|e| io_error(e, user))?;
    let result = if meta.is_dir() {
        if recursive {
            beneath::remove_tree(dir.as_fd(), &name)
        } else {
            unlinkat(&dir, &name, AtFlags::REMOVEDIR).map_err(io::Error::from)
        }
    } else {
        unlinkat(&dir, &name, AtFlags::empty()).map_err(io::Error::from)
    };
    result.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => FsError::NotEmpty { path: user.to_string() },
        _ => io_error(e, user),
    })
}

/// `POST /v1/fs/mkdir`: the directory and its parents; `true` when created.
pub fn mkdir(root: &Path, user: &str) -> Result<(FsEntry, bool), FsError> {
    let rel = confine(root, user)?;
    let existed = match stat(root, user) {
        Ok(e) if e.kind == FsKind::Dir => true,
        Ok(_) => return Err(FsError::ExistsNotADirectory { path: user.to_string() }),
        Err(_) => false,
    };
    let dir = mkdir_all(&open_root(root)?, &rel.0, user)?;
    let meta = File::from(dir).metadata().map_err(|e| io_error(e, user))?;
    Ok((entry(&rel, &meta), !existed))
}

/// `POST /v1/fs/move`: renames `from` (the entry itself, a symlink not
/// followed) to `to`, creating `to`'s parents.
pub fn rename(root: &Path, from: &str, to: &str, overwrite: bool) -> Result<FsEntry, FsError> {
    let from_rel = confine(root, from)?;
    let to_rel = confine(root, to)?;
    if from_rel.is_root() || to_rel.is_root() {
        return Err(FsError::MoveRoot);
    }
    let root = open_root(root)?;
    let (from_dir, from_name) = parent_and_name(&root, &from_rel, from)?;
    lstat_at(from_dir.as_fd(), &from_name).map_err(|e| io_error(e, from))?;
    let (to_dir, to_name) = create_parents(&root, &to_rel, to)?;
    let same_dir = |a: &OwnedFd, b: &OwnedFd| match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(a), Ok(b)) => (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino),
        _ => false,
    };
    if from_name == to_name && same_dir(&from_dir, &to_dir) {
        let meta = lstat_at(to_dir.as_fd(), &to_name).map_err(|e| io_error(e, to))?;
        return Ok(entry(&to_rel, &meta));
    }
    if lstat_at(to_dir.as_fd(), &to_name).is_ok() && !overwrite {
        return Err(FsError::TargetExists { to: to.to_string() });
    }
    renameat(&from_dir, &from_name, &to_dir, &to_name).map_err(|e| match e {
        rustix::io::Errno::INVAL => FsError::MoveIntoItself { from: from.to_string() },
        rustix::io::Errno::XDEV => FsError::CrossDevice { from: from.to_string(), to: to.to_string() },
        rustix::io::Errno::NOTEMPTY
        | rustix::io::Errno::EXIST
        | rustix::io::Errno::ISDIR
        | rustix::io::Errno::NOTDIR => FsError::CannotReplace { to: to.to_string(), source: e.into() },
        _ => io_error(e.into(), to),
    })?;
    let meta = lstat_at(to_dir.as_fd(), &to_name).map_err(|e| io_error(e, to))?;
    Ok(entry(&to_rel, &meta))
}
