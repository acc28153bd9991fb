//! What can go wrong with a workspace path or file, in the filesystem's own
//! terms; each variant carries the path the client gave (`path`, as given,
//! shown quoted) and says in its message what to do. The code and status of
//! each are here too ([`AsProblem`]), once, for the HTTP API and the MCP
//! tools alike. Nothing here knows HTTP.

use std::io;
use std::path::PathBuf;

use crate::error::{AsProblem, ErrorCode};

use super::path::NAME_MAX;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("a path may not contain a NUL byte")]
    NulByte,
    /// `name` is the name's first 24 characters; `len` its length in bytes.
    #[error(
        "the name {name:?}… in path {path:?} is {len} bytes long; a file or directory name may be at most {max} \
         bytes",
        max = NAME_MAX
    )]
    NameTooLong { name: String, path: String, len: usize },
    /// A name the API could not give back (`what` says where it was met).
    #[error(
        "{what} is not valid UTF-8: tether names files by UTF-8 paths only (percent-encode the UTF-8 bytes of the \
         name); an entry whose name on disk is not UTF-8 is listed with \"not_utf8\": true and cannot be asked for"
    )]
    NameNotUtf8 { what: String },
    #[error("path {path:?} is outside the workspace root")]
    Outside { path: String },
    /// The last component is a symlink that a lookup may not follow.
    #[error("path {path:?} is a symlink that may not be followed")]
    Symlink { path: String },
    #[error("no such file: {path:?}")]
    NoSuchFile { path: String },
    /// The root is a directory that is always there: it cannot be written,
    /// moved or deleted as an entry (a conflict with its state, like any directory).
    #[error("this is the workspace root itself, a directory")]
    RootItself,
    #[error("the workspace root itself cannot be deleted")]
    DeleteRoot,
    #[error("the workspace root itself cannot be moved or replaced")]
    MoveRoot,
    #[error("{path:?} is a directory")]
    IsADirectory { path: String },
    #[error("{path:?} is not a directory")]
    NotADirectory { path: String },
    #[error("a parent of {path:?} is not a directory")]
    ParentNotADirectory { path: String },
    #[error("{path:?} is not a regular file")]
    NotARegularFile { path: String },
    #[error("{path:?} exists and is not a directory")]
    ExistsNotADirectory { path: String },
    #[error("directory {path:?} is not empty (use recursive=true)")]
    NotEmpty { path: String },
    /// The entry exists, or a directory is not empty, where neither may be.
    #[error("{path:?}: {source}")]
    InTheWay { path: String, source: io::Error },
    #[error("{to:?} exists (use overwrite=true)")]
    TargetExists { to: String },
    #[error("cannot move {from:?} into itself")]
    MoveIntoItself { from: String },
    #[error("{from:?} and {to:?} are on different file systems")]
    CrossDevice { from: String, to: String },
    #[error("cannot replace {to:?}: {source}")]
    CannotReplace { to: String, source: io::Error },
    #[error("permission denied: {path:?}")]
    PermissionDenied { path: String },
    #[error("no space left on device")]
    NoSpace,
    #[error("not a valid tar archive: {0}")]
    BadArchive(io::Error),
    #[error("tar entry {entry:?} climbs out of the upload directory")]
    ArchiveEscapes { entry: String },
    #[error("tar symlink {entry:?} points outside the root")]
    ArchiveSymlinkOutside { entry: String },
    #[error("tar entry {entry:?} would replace a directory")]
    ArchiveReplacesDirectory { entry: String },
    #[error("tar entry {entry:?}: hard links are not supported")]
    ArchiveHardLink { entry: String },
    #[error("the workspace root {}: {source}", .root.display())]
    RootUnavailable { root: PathBuf, source: io::Error },
    /// The file watcher could not start or watch (`what` says which).
    #[error("{what}")]
    Watch { what: String },
    /// Any other I/O failure on `path`: a server-side failure.
    #[error("{path:?}: {source}")]
    Io { path: String, source: io::Error },
}

impl FsError {
    /// An I/O error met on `path`, in the filesystem's terms.
    pub fn io(e: io::Error, path: &str) -> FsError {
        let path = path.to_string();
        match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => FsError::NoSuchFile { path },
            // A lookup beneath the root that would have left it.
            Some(libc::EXDEV) => FsError::Outside { path },
            Some(libc::ELOOP) => FsError::Symlink { path },
            Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => FsError::InTheWay { path, source: e },
            Some(libc::EISDIR) => FsError::IsADirectory { path },
            Some(libc::EACCES) | Some(libc::EPERM) => FsError::PermissionDenied { path },
            Some(libc::ENOSPC) => FsError::NoSpace,
            _ => FsError::Io { path, source: e },
        }
    }
}

impl AsProblem for FsError {
    fn code(&self) -> ErrorCode {
        use FsError::*;
        match self {
            NulByte | MoveIntoItself { .. } | BadArchive(_) | ArchiveHardLink { .. } => ErrorCode::InvalidRequest,
            NameTooLong { .. } => ErrorCode::NameTooLong,
            NameNotUtf8 { .. } => ErrorCode::NameNotUtf8,
            Outside { .. } | Symlink { .. } | ArchiveEscapes { .. } | ArchiveSymlinkOutside { .. } => {
                ErrorCode::PathOutsideRoot
            }
            NoSuchFile { .. } => ErrorCode::NotFound,
            RootItself
            | DeleteRoot
            | MoveRoot
            | IsADirectory { .. }
            | NotADirectory { .. }
            | ParentNotADirectory { .. }
            | NotARegularFile { .. }
            | ExistsNotADirectory { .. }
            | NotEmpty { .. }
            | InTheWay { .. }
            | TargetExists { .. }
            | CrossDevice { .. }
            | CannotReplace { .. }
            | ArchiveReplacesDirectory { .. } => ErrorCode::Conflict,
            PermissionDenied { .. } => ErrorCode::PermissionDenied,
            NoSpace => ErrorCode::NoSpace,
            RootUnavailable { .. } | Watch { .. } | Io { .. } => ErrorCode::Internal,
        }
    }
}
