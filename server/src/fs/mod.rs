//! The workspace filesystem: every operation confined to the workspace root
//! (see [`path`]). These are blocking; the HTTP layer runs them on the
//! blocking pool.

pub mod archive;
pub mod path;
pub mod watch;

use std::fs::Metadata;
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use tether_protocol::{FsEntries, FsEntry, FsKind};

use crate::error::ApiError;
use path::{confine, create_parents, io_error, mkdir_all, parent_and_name, resolve_existing, RelPath};

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
        return Err(ApiError::invalid(format!("{user:?} is not a directory")));
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
        return Err(ApiError::invalid("the workspace root itself cannot be deleted"));
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
        return Err(ApiError::invalid("the workspace root itself cannot be moved or replaced"));
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
