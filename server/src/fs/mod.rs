//! The workspace filesystem: every operation confined to the workspace root
//! (see [`path`]). These are blocking; the HTTP layer runs them on the
//! blocking pool.

pub mod archive;
pub mod path;
pub mod watch;

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tether_protocol::{FsEntries, FsEntry, FsKind};

use crate::error::ApiError;
use path::{
    canonical_inside, confine, create_parents, create_temp, io_error, mkdir_all, open_read, parent_and_name,
    resolve_existing, RelPath,
};

/// The default upload limit (`--max-upload-bytes`): 4 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 4 << 30;

/// An entry as the API answers it, from its `lstat`.
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
        modified: crate::util::rfc3339_ms(modified_ms),
    }
}

/// A file being written: a new temporary file in the target's folder, put in
/// place by [`commit_write`] (so a reader never sees half a file).
pub struct NewFile {
    pub dir: PathBuf,
    pub name: OsString,
    pub temp: PathBuf,
    pub file: File,
}

/// Starts writing `user`: creates its parent folders and a temporary file
/// beside it. A folder cannot be replaced; a symlink as the last component
/// is written through only when it points inside the root (the link stays).
pub fn begin_write(root: &Path, user: &str) -> Result<NewFile, ApiError> {
    let rel = confine(root, user)?;
    let (dir, name) = create_parents(root, &rel, user)?;
    if let Ok(meta) = std::fs::metadata(dir.join(&name)) {
        if meta.is_dir() {
            return Err(ApiError::conflict(format!("{user:?} is a directory")));
        }
    }
    let (dir, name) = match std::fs::symlink_metadata(dir.join(&name)) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let real = canonical_inside(root, &dir.join(&name), user)?;
            let parent = real.parent().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
            let name = real.file_name().map(|n| n.to_os_string()).unwrap_or(name);
            (parent, name)
        }
        _ => (dir, name),
    };
    let (temp, file) = create_temp(&dir).map_err(|e| io_error(e, user))?;
    Ok(NewFile { dir, name, temp, file })
}

/// Puts a written temporary file in place (an atomic rename) and answers its entry.
pub fn commit_write(root: &Path, dir: &Path, name: &OsStr, temp: &Path, user: &str) -> Result<FsEntry, ApiError> {
    let target = dir.join(name);
    std::fs::rename(temp, &target).map_err(|e| io_error(e, user))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    let meta = std::fs::symlink_metadata(&target).map_err(|e| io_error(e, user))?;
    let rel = target.strip_prefix(root).map(Path::to_path_buf).unwrap_or_default();
    Ok(entry(&RelPath(rel), &meta))
}

/// Writes `bytes` as the whole of `user`, atomically.
pub fn write_file(root: &Path, user: &str, bytes: &[u8]) -> Result<FsEntry, ApiError> {
    let NewFile { dir, name, temp, mut file } = begin_write(root, user)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    drop(file);
    let result = written.map_err(|e| io_error(e, user)).and_then(|()| commit_write(root, &dir, &name, &temp, user));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Reads at most `max` bytes of the file `user` from `offset`; answers them
/// and the file's size.
pub fn read_range(root: &Path, user: &str, offset: u64, max: u64) -> Result<(Vec<u8>, u64), ApiError> {
    let mut file = open_read(root, &confine(root, user)?, user)?;
    let size = file.metadata().map_err(|e| io_error(e, user))?.len();
    file.seek(SeekFrom::Start(offset)).map_err(|e| io_error(e, user))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes).map_err(|e| io_error(e, user))?;
    Ok((bytes, size))
}

/// `GET /v1/fs/stat`: the entry itself (a symlink is not followed).
pub fn stat(root: &Path, user: &str) -> Result<FsEntry, ApiError> {
    let rel = confine(root, user)?;
    if rel.is_root() {
        let meta = std::fs::symlink_metadata(root).map_err(|e| io_error(e, user))?;
        return Ok(entry(&rel, &meta));
    }
    let (dir, name) = parent_and_name(root, &rel, user)?;
    let meta = std::fs::symlink_metadata(dir.join(name)).map_err(|e| io_error(e, user))?;
    Ok(entry(&rel, &meta))
}

/// `GET /v1/fs/entries`: a directory's entries, sorted by name.
pub fn list(root: &Path, user: &str) -> Result<FsEntries, ApiError> {
    let rel = confine(root, user)?;
    let real = resolve_existing(root, &rel, user)?;
    let meta = std::fs::metadata(&real).map_err(|e| io_error(e, user))?;
    if !meta.is_dir() {
        return Err(ApiError::conflict(format!("{user:?} is not a directory")));
    }
    let mut entries = Vec::new();
    for item in std::fs::read_dir(&real).map_err(|e| io_error(e, user))? {
        let item = item.map_err(|e| io_error(e, user))?;
        let meta = match item.path().symlink_metadata() {
            Ok(meta) => meta,
            // Removed since the directory was read.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(e, user)),
        };
        entries.push(entry(&RelPath(rel.0.join(item.file_name())), &meta));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(FsEntries { entries })
}

/// `DELETE /v1/fs/entries`: a file or symlink (the link itself), an empty
/// directory, or any directory with `recursive`.
pub fn delete(root: &Path, user: &str, recursive: bool) -> Result<(), ApiError> {
    let rel = confine(root, user)?;
    if rel.is_root() {
        return Err(ApiError::conflict("the workspace root itself cannot be deleted"));
    }
    let (dir, name) = parent_and_name(root, &rel, user)?;
    let target = dir.join(name);
    let meta = std::fs::symlink_metadata(&target).map_err(|e| io_error(e, user))?;
    let result = if meta.is_dir() {
        if recursive {
            // std's remove_dir_all never follows symlinks inside the tree.
            std::fs::remove_dir_all(&target)
        } else {
            std::fs::remove_dir(&target)
        }
    } else {
        std::fs::remove_file(&target)
    };
    result.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {
            ApiError::conflict(format!("directory {user:?} is not empty (use recursive=true)"))
        }
        _ => io_error(e, user),
    })
}

/// `POST /v1/fs/mkdir`: the directory and its parents; `true` when created.
pub fn mkdir(root: &Path, user: &str) -> Result<(FsEntry, bool), ApiError> {
    let rel = confine(root, user)?;
    let existed = match stat(root, user) {
        Ok(e) if e.kind == FsKind::Dir => true,
        Ok(_) => return Err(ApiError::conflict(format!("{user:?} exists and is not a directory"))),
        Err(_) => false,
    };
    let real = mkdir_all(root, &rel.0, user)?;
    let meta = std::fs::symlink_metadata(&real).map_err(|e| io_error(e, user))?;
    Ok((entry(&rel, &meta), !existed))
}

/// `POST /v1/fs/move`: renames `from` (the entry itself, a symlink not
/// followed) to `to`, creating `to`'s parents.
pub fn rename(root: &Path, from: &str, to: &str, overwrite: bool) -> Result<FsEntry, ApiError> {
    let from_rel = confine(root, from)?;
    let to_rel = confine(root, to)?;
    if from_rel.is_root() || to_rel.is_root() {
        return Err(ApiError::conflict("the workspace root itself cannot be moved or replaced"));
    }
    let (from_dir, from_name) = parent_and_name(root, &from_rel, from)?;
    let source = from_dir.join(from_name);
    std::fs::symlink_metadata(&source).map_err(|e| io_error(e, from))?;
    let (to_dir, to_name) = create_parents(root, &to_rel, to)?;
    let target = to_dir.join(to_name);
    if target == source {
        let meta = std::fs::symlink_metadata(&target).map_err(|e| io_error(e, to))?;
        return Ok(entry(&to_rel, &meta));
    }
    match std::fs::symlink_metadata(&target) {
        Ok(_) if !overwrite => return Err(ApiError::conflict(format!("{to:?} exists (use overwrite=true)"))),
        Ok(_) | Err(_) => {}
    }
    std::fs::rename(&source, &target).map_err(|e| match e.raw_os_error() {
        Some(libc::EINVAL) => ApiError::invalid(format!("cannot move {from:?} into itself")),
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST) | Some(libc::EISDIR) | Some(libc::ENOTDIR) => {
            ApiError::conflict(format!("cannot replace {to:?}: {e}"))
        }
        _ => io_error(e, to),
    })?;
    let meta = std::fs::symlink_metadata(&target).map_err(|e| io_error(e, to))?;
    Ok(entry(&to_rel, &meta))
}
