//! Path confinement: every user path is resolved inside the workspace root.
//!
//! A path is first normalized lexically (relative to the root, or absolute
//! under it; `..` may never climb above the root; NUL bytes are refused).
//! Then the directory that holds its last component is canonicalized (every
//! symlink on the way followed) and must still be inside the root; the last
//! component itself is never followed implicitly: files are opened with
//! `O_NOFOLLOW`, so a symlink swapped in after the check is refused (ELOOP),
//! and renames and deletions act on the link, not on what it points to.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::ApiError;

/// A user path, normalized and relative to the root (empty for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(pub PathBuf);

impl RelPath {
    pub fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    /// `/`-separated, as answered on the wire.
    pub fn display(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

/// The longest file or directory name Linux file systems take (`NAME_MAX`), in bytes.
pub const NAME_MAX: usize = 255;

/// The lexical half: `user` relative to `root` (or absolute under it).
pub fn confine(root: &Path, user: &str) -> Result<RelPath, ApiError> {
    if user.contains('\0') {
        return Err(ApiError::invalid("a path may not contain a NUL byte"));
    }
    let given = Path::new(user);
    let relative = if given.is_absolute() { given.strip_prefix(root).map_err(|_| outside(user))? } else { given };
    let mut out = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(c) if c.len() > NAME_MAX => {
                return Err(ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "name_too_long",
                    format!(
                        "the name {:?}… in path {user:?} is {} bytes long; a file or directory name may be at most \
                         {NAME_MAX} bytes",
                        c.to_string_lossy().chars().take(24).collect::<String>(),
                        c.len()
                    ),
                ))
            }
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(outside(user));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(outside(user)),
        }
    }
    Ok(RelPath(out))
}

/// The root is a directory that is always there: it cannot be written,
/// moved or deleted as an entry (a conflict with its state, like any directory).
fn root_itself() -> ApiError {
    ApiError::conflict("this is the workspace root itself, a directory")
}

fn outside(user: &str) -> ApiError {
    ApiError::path_outside_root(format!("path {user:?} is outside the workspace root"))
}

/// Canonicalizes `path` and checks that it is inside `root`.
pub fn canonical_inside(root: &Path, path: &Path, user: &str) -> Result<PathBuf, ApiError> {
    let real = path.canonicalize().map_err(|e| io_error(e, user))?;
    if !real.starts_with(root) {
        return Err(outside(user));
    }
    Ok(real)
}

/// The real (canonical, inside the root) directory holding the last
/// component of `rel`, and that component. The root itself has no parent.
pub fn parent_and_name(root: &Path, rel: &RelPath, user: &str) -> Result<(PathBuf, OsString), ApiError> {
    let name = rel.0.file_name().ok_or_else(root_itself)?;
    let parent = rel.0.parent().unwrap_or(Path::new(""));
    let real = canonical_inside(root, &root.join(parent), user)?;
    Ok((real, name.to_os_string()))
}

/// Like [`parent_and_name`], creating the missing parents one by one, each
/// checked inside the root first (a symlink to elsewhere is refused, never
/// written through).
pub fn create_parents(root: &Path, rel: &RelPath, user: &str) -> Result<(PathBuf, OsString), ApiError> {
    let name = rel.0.file_name().ok_or_else(root_itself)?;
    let parent = rel.0.parent().unwrap_or(Path::new(""));
    let dir = mkdir_all(root, parent, user)?;
    Ok((dir, name.to_os_string()))
}

/// Creates `rel` (relative to `root`) and its parents; answers its real path.
pub fn mkdir_all(root: &Path, rel: &Path, user: &str) -> Result<PathBuf, ApiError> {
    let mut cur = root.to_path_buf();
    for component in rel.components() {
        let next = cur.join(component);
        match std::fs::symlink_metadata(&next) {
            Ok(meta) if meta.is_dir() => cur = next,
            Ok(meta) if meta.file_type().is_symlink() => {
                let real = canonical_inside(root, &next, user)?;
                if !real.is_dir() {
                    return Err(ApiError::conflict(format!("a parent of {user:?} is not a directory")));
                }
                cur = real;
            }
            Ok(_) => return Err(ApiError::conflict(format!("a parent of {user:?} is not a directory"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match std::fs::create_dir(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_error(e, user)),
                }
                // Whatever is there now (ours, or a racing creator's) is checked again.
                let real = canonical_inside(root, &next, user)?;
                if !real.is_dir() {
                    return Err(ApiError::conflict(format!("a parent of {user:?} is not a directory")));
                }
                cur = real;
            }
            Err(e) => return Err(io_error(e, user)),
        }
    }
    Ok(cur)
}

/// The real path of an existing entry, every symlink followed, inside the
/// root: what a read or a listing acts on.
pub fn resolve_existing(root: &Path, rel: &RelPath, user: &str) -> Result<PathBuf, ApiError> {
    canonical_inside(root, &root.join(&rel.0), user)
}

/// Opens an existing file for reading: resolved inside the root, then opened
/// with `O_NOFOLLOW` so a symlink swapped in after the check is refused.
pub fn open_read(root: &Path, rel: &RelPath, user: &str) -> Result<File, ApiError> {
    let real = resolve_existing(root, rel, user)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&real)
        .map_err(|e| io_error(e, user))?;
    let meta = file.metadata().map_err(|e| io_error(e, user))?;
    if meta.is_dir() {
        return Err(ApiError::conflict(format!("{user:?} is a directory")));
    }
    if !meta.is_file() {
        return Err(ApiError::conflict(format!("{user:?} is not a regular file")));
    }
    Ok(file)
}

/// Creates a new temporary file in `dir` (`O_EXCL | O_NOFOLLOW`).
pub fn create_temp(dir: &Path) -> io::Result<(PathBuf, File)> {
    loop {
        let path = dir.join(format!(".{}.tmp", crate::util::new_id("tether")));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// An I/O error as the API answers it.
pub fn io_error(e: io::Error, user: &str) -> ApiError {
    match e.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => return ApiError::not_found(format!("no such file: {user:?}")),
        Some(libc::ELOOP) => {
            return ApiError::path_outside_root(format!("path {user:?} is a symlink that may not be followed"))
        }
        Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => {
            return ApiError::conflict(format!("{user:?}: {e}"));
        }
        Some(libc::EISDIR) => return ApiError::conflict(format!("{user:?} is a directory")),
        Some(libc::EACCES) | Some(libc::EPERM) => {
            return ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "permission_denied",
                format!("permission denied: {user:?}"),
            )
        }
        Some(libc::ENOSPC) => {
            return ApiError::new(axum::http::StatusCode::INSUFFICIENT_STORAGE, "no_space", "no space left on device")
        }
        _ => {}
    }
    ApiError::internal(format!("{user:?}: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::symlink;

    use super::*;

    struct Rig {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn rig() -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
        Rig { _tmp: tmp, root, outside }
    }

    fn code(r: Result<impl std::fmt::Debug, ApiError>) -> &'static str {
        r.unwrap_err().code
    }

    #[test]
    fn lexical_normalization() {
        let root = Path::new("/ws");
        assert_eq!(confine(root, "a/./b/../c").unwrap().0, PathBuf::from("a/c"));
        assert!(confine(root, "").unwrap().is_root());
        assert!(confine(root, ".").unwrap().is_root());
        assert!(confine(root, "a/..").unwrap().is_root());
        assert_eq!(confine(root, "/ws/x/y").unwrap().0, PathBuf::from("x/y"));
        assert!(confine(root, "/ws").unwrap().is_root());
    }

    #[test]
    fn dotdot_escapes_are_refused() {
        let root = Path::new("/ws");
        assert_eq!(code(confine(root, "..")), "path_outside_root");
        assert_eq!(code(confine(root, &format!("a/{}/b", "x".repeat(256)))), "name_too_long");
        assert!(confine(root, &format!("a/{}", "x".repeat(255))).is_ok());
        assert_eq!(code(confine(root, "../x")), "path_outside_root");
        assert_eq!(code(confine(root, "a/../../x")), "path_outside_root");
        assert_eq!(code(confine(root, "/ws/../etc/passwd")), "path_outside_root");
    }

    #[test]
    fn absolute_paths_elsewhere_are_refused() {
        let root = Path::new("/ws");
        assert_eq!(code(confine(root, "/etc/passwd")), "path_outside_root");
        assert_eq!(code(confine(root, "/wsx/a")), "path_outside_root");
        assert_eq!(code(confine(root, "/")), "path_outside_root");
    }

    #[test]
    fn nul_bytes_are_invalid() {
        assert_eq!(code(confine(Path::new("/ws"), "a\0b")), "invalid_request");
    }

    #[test]
    fn a_symlink_to_outside_is_refused_for_reads() {
        let r = rig();
        symlink(r.outside.join("secret"), r.root.join("link")).unwrap();
        let rel = confine(&r.root, "link").unwrap();
        assert_eq!(code(open_read(&r.root, &rel, "link")), "path_outside_root");
        assert_eq!(code(resolve_existing(&r.root, &rel, "link")), "path_outside_root");
    }

    #[test]
    fn a_symlink_in_the_middle_is_refused() {
        let r = rig();
        symlink(&r.outside, r.root.join("out")).unwrap();
        let rel = confine(&r.root, "out/secret").unwrap();
        assert_eq!(code(open_read(&r.root, &rel, "out/secret")), "path_outside_root");
        assert_eq!(code(parent_and_name(&r.root, &rel, "out/secret")), "path_outside_root");
        let rel = confine(&r.root, "out/new/file").unwrap();
        assert_eq!(code(create_parents(&r.root, &rel, "out/new/file")), "path_outside_root");
        assert!(!r.outside.join("new").exists());
    }

    #[test]
    fn a_symlink_inside_is_followed() {
        let r = rig();
        symlink(r.root.join("sub"), r.root.join("alias")).unwrap();
        let rel = confine(&r.root, "alias/a.txt").unwrap();
        let mut s = String::new();
        use std::io::Read;
        open_read(&r.root, &rel, "alias/a.txt").unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "a");
    }

    #[test]
    fn o_nofollow_refuses_a_swapped_in_symlink() {
        let r = rig();
        // What a racer would leave after the check: the final component a symlink.
        symlink(r.outside.join("secret"), r.root.join("swapped")).unwrap();
        let err =
            OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(r.root.join("swapped")).unwrap_err();
        assert_eq!(io_error(err, "swapped").code, "path_outside_root");
    }

    #[test]
    fn parents_are_created_inside() {
        let r = rig();
        let rel = confine(&r.root, "x/y/z.txt").unwrap();
        let (dir, name) = create_parents(&r.root, &rel, "x/y/z.txt").unwrap();
        assert_eq!(dir, r.root.join("x/y"));
        assert_eq!(name, "z.txt");
        let rel = confine(&r.root, "sub/a.txt/z").unwrap();
        assert_eq!(code(create_parents(&r.root, &rel, "sub/a.txt/z")), "conflict");
    }
}
