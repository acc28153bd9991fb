//! Path confinement: every user path is resolved inside the workspace root.
//!
//! A path is first normalized lexically (relative to the root, or absolute
//! under it; `..` may never climb above the root; NUL bytes are refused).
//! Then it is looked up beneath the open root directory ([`super::beneath`]):
//! never by a path string checked first and opened after, so a directory
//! swapped for a symlink between the two cannot lead outside. Symlinks inside
//! the root that point inside are followed; the last component of a stat, a
//! deletion or a rename is the entry itself, never followed.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{mkdirat, openat, Mode, OFlags};

pub use super::beneath::Root;
use super::FsError;

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
pub fn confine(root: &Path, user: &str) -> Result<RelPath, FsError> {
    if user.contains('\0') {
        return Err(FsError::NulByte);
    }
    let given = Path::new(user);
    let relative = if given.is_absolute() { given.strip_prefix(root).map_err(|_| outside(user))? } else { given };
    let mut out = PathBuf::new();
    for component in relative.components() {
        match component {
            Component::Normal(c) if c.len() > NAME_MAX => {
                return Err(FsError::NameTooLong {
                    name: c.to_string_lossy().chars().take(24).collect(),
                    path: user.to_string(),
                    len: c.len(),
                })
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

fn outside(user: &str) -> FsError {
    FsError::Outside { path: user.to_string() }
}

/// The workspace root, held open for one operation.
pub fn open_root(root: &Path) -> Result<Root, FsError> {
    Root::open(root).map_err(|source| FsError::RootUnavailable { root: root.to_path_buf(), source })
}

/// The directory holding the last component of `rel` (every symlink on the
/// way followed, inside the root), and that component. The root itself has
/// no parent.
pub fn parent_and_name(root: &Root, rel: &RelPath, user: &str) -> Result<(OwnedFd, OsString), FsError> {
    root.parent(&rel.0).map_err(|e| io_error(e, user))?.ok_or(FsError::RootItself)
}

/// Like [`parent_and_name`], creating the missing parents one by one, each
/// beneath the root (a symlink to elsewhere is refused, never written through).
pub fn create_parents(root: &Root, rel: &RelPath, user: &str) -> Result<(OwnedFd, OsString), FsError> {
    let name = rel.0.file_name().ok_or(FsError::RootItself)?;
    let parent = rel.0.parent().unwrap_or(Path::new(""));
    let dir = mkdir_all(root, parent, user)?;
    Ok((dir, name.to_os_string()))
}

/// Creates `rel` (relative to the root) and its parents; answers it, open.
pub fn mkdir_all(root: &Root, rel: &Path, user: &str) -> Result<OwnedFd, FsError> {
    let not_a_dir = |e: io::Error| match e.raw_os_error() {
        Some(libc::ENOTDIR) => FsError::ParentNotADirectory { path: user.to_string() },
        _ => io_error(e, user),
    };
    match root.open_dir(rel) {
        Ok(dir) => return Ok(dir),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(not_a_dir(e)),
    }
    let mut done = PathBuf::new();
    for component in rel.components() {
        let Component::Normal(name) = component else { continue };
        let dir = root.open_dir(&done).map_err(not_a_dir)?;
        match mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
            // With `--agent-user`, what tether creates in the workspace is the agents' to change.
            Ok(()) => crate::process::user::give_entry_to_agent(dir.as_fd(), name).map_err(|e| io_error(e, user))?,
            // Whatever is there (a racing creator's, a symlink) is looked up again next.
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io_error(e.into(), user)),
        }
        done.push(name);
    }
    root.open_dir(rel).map_err(not_a_dir)
}

/// An existing entry, every symlink followed, inside the root (opened
/// `O_PATH`: to check it is there, or to look at it).
pub fn resolve_existing(root: &Path, rel: &RelPath, user: &str) -> Result<OwnedFd, FsError> {
    open_root(root)?.open_at(&rel.0, OFlags::PATH).map_err(|e| io_error(e, user))
}

/// An existing directory, every symlink followed, inside the root; opened
/// for listing. A file is a `conflict`.
pub fn open_existing_dir(root: &Root, rel: &RelPath, user: &str) -> Result<OwnedFd, FsError> {
    let found = root.open_at(&rel.0, OFlags::PATH).map_err(|e| io_error(e, user))?;
    let dir = openat(&found, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty());
    match dir {
        Ok(dir) => Ok(dir),
        Err(rustix::io::Errno::NOTDIR) => Err(FsError::NotADirectory { path: user.to_string() }),
        Err(e) => Err(io_error(e.into(), user)),
    }
}

/// Opens an existing regular file for reading, inside the root (a FIFO or a
/// device is refused, without blocking on it).
pub fn open_read(root: &Path, rel: &RelPath, user: &str) -> Result<File, FsError> {
    let fd = open_root(root)?
        .open_at(&rel.0, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY)
        .map_err(|e| io_error(e, user))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(|e| io_error(e, user))?;
    if meta.is_dir() {
        return Err(FsError::IsADirectory { path: user.to_string() });
    }
    if !meta.is_file() {
        return Err(FsError::NotARegularFile { path: user.to_string() });
    }
    Ok(file)
}

/// Creates a new temporary file in `dir` (`O_EXCL | O_NOFOLLOW`); answers its name.
pub fn create_temp(dir: BorrowedFd<'_>) -> io::Result<(OsString, File)> {
    loop {
        let name = OsString::from(format!(".{}.tmp", crate::ids::new_id("tether")));
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match openat(dir.as_fd(), &name, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => {
                let file = File::from(fd);
                if let Err(e) = crate::process::user::give_fd_to_agent(file.as_fd()) {
                    let _ = rustix::fs::unlinkat(dir, &name, rustix::fs::AtFlags::empty());
                    return Err(e);
                }
                return Ok((name, file));
            }
            Err(rustix::io::Errno::EXIST) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// An I/O error met on `user`, in the filesystem's terms.
pub fn io_error(e: io::Error, user: &str) -> FsError {
    FsError::io(e, user)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::fs::beneath::tests::rig;

    fn code(r: Result<impl std::fmt::Debug, FsError>) -> &'static str {
        crate::error::AsProblem::code(&r.unwrap_err()).as_str()
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
        let root = Root::open(&r.root).unwrap();
        let rel = confine(&r.root, "out/secret").unwrap();
        assert_eq!(code(open_read(&r.root, &rel, "out/secret")), "path_outside_root");
        assert_eq!(code(parent_and_name(&root, &rel, "out/secret")), "path_outside_root");
        let rel = confine(&r.root, "out/new/file").unwrap();
        assert_eq!(code(create_parents(&root, &rel, "out/new/file")), "path_outside_root");
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
    fn a_fifo_is_refused_without_blocking() {
        let r = rig();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            r.root.join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let rel = confine(&r.root, "fifo").unwrap();
        assert_eq!(code(open_read(&r.root, &rel, "fifo")), "conflict");
    }

    #[test]
    fn parents_are_created_inside() {
        let r = rig();
        let root = Root::open(&r.root).unwrap();
        let rel = confine(&r.root, "x/y/z.txt").unwrap();
        let (_, name) = create_parents(&root, &rel, "x/y/z.txt").unwrap();
        assert_eq!(name, "z.txt");
        assert!(r.root.join("x/y").is_dir());
        let rel = confine(&r.root, "sub/a.txt/z").unwrap();
        assert_eq!(code(create_parents(&root, &rel, "sub/a.txt/z")), "conflict");
    }
}
