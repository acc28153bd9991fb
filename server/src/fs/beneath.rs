//! Opening paths beneath an open root directory, so that nothing done to
//! the tree between a check and a use (a directory swapped for a symlink to
//! elsewhere, in a loop, by an agent or anyone else) can make tether touch a
//! file outside the workspace.
//!
//! Every lookup starts from a file descriptor of the root, never from a path
//! string. Where the kernel has it (Linux 5.6 and later), one `openat2(2)`
//! with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS` does the whole lookup and
//! the kernel refuses any step out of the root. Where it does not (`ENOSYS`,
//! or `EPERM` from an older container's seccomp filter; detected once), and
//! for the cases `RESOLVE_BENEATH` refuses but the contract allows (an
//! absolute symlink naming a place inside the root), [`Root`] walks the path
//! itself: one component at a time, each opened with `O_NOFOLLOW` relative to
//! the directory before it, every symlink read from the descriptor just opened
//! and expanded here, `..` popping the directories actually walked through.
//! An escape in either way is `EXDEV`, as `openat2` answers it.
//!
//! This module answers `io::Error`s; turning them into API errors is
//! [`super::path`]'s job. It must not open anything by a path from `/`.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use rustix::fs::{fstat, openat, openat2, readlinkat, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Symlinks followed in one lookup before giving up (`ELOOP`), as Linux does.
const MAX_LINKS: usize = 40;

/// How a root resolves paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `openat2(RESOLVE_BENEATH)`, with the walk for what it refuses.
    Openat2,
    /// The walk only (kernels before 5.6).
    Walk,
}

/// Whether this kernel has `openat2`; asked once per process.
fn kernel_strategy(probe: BorrowedFd<'_>) -> Strategy {
    static STRATEGY: OnceLock<Strategy> = OnceLock::new();
    *STRATEGY.get_or_init(|| {
        match openat2(probe, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::BENEATH) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => {
                tracing::info!("openat2 is not available: workspace paths are resolved by a component walk");
                Strategy::Walk
            }
            _ => Strategy::Openat2,
        }
    })
}

/// The workspace root, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    /// Its canonical path: only to recognise absolute symlinks that stay inside.
    path: PathBuf,
    strategy: Strategy,
}

/// What the walk is asked for at the last component.
#[derive(Clone, Copy)]
enum Last {
    /// Open it with these flags, following it if it is a symlink.
    Open(OFlags),
    /// The directory it is in and its name, following it while it is a symlink.
    Parent,
}

enum Walked {
    Opened(OwnedFd),
    Parent(OwnedFd, OsString),
}

impl Root {
    /// Opens `path` (canonical) as the root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        let strategy = kernel_strategy(fd.as_fd());
        Ok(Root { fd, path: path.to_path_buf(), strategy })
    }

    /// Like [`Root::open`] with the given strategy (tests exercise both).
    pub fn open_with(path: &Path, strategy: Strategy) -> io::Result<Root> {
        Ok(Root { strategy, ..Root::open(path)? })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `rel` (relative, normalized: no `..`) with `flags`, every
    /// symlink on the way and at the end followed, never out of the root.
    pub fn open_at(&self, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        if self.strategy == Strategy::Openat2 {
            let path: &OsStr = if rel.as_os_str().is_empty() { OsStr::new(".") } else { rel.as_os_str() };
            let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
            // EAGAIN: a rename raced the lookup; the kernel asks to retry.
            for _ in 0..4 {
                match openat2(&self.fd, path, flags, Mode::empty(), resolve) {
                    Ok(fd) => return Ok(fd),
                    Err(Errno::AGAIN) => continue,
                    // An escape, or an absolute symlink (which RESOLVE_BENEATH
                    // refuses even when it names a place inside): the walk decides.
                    Err(Errno::XDEV) | Err(Errno::LOOP) => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        match self.walk(rel, Last::Open(flags))? {
            Walked::Opened(fd) => Ok(fd),
            Walked::Parent(..) => Err(Errno::INVAL.into()),
        }
    }

    /// An open directory (`O_RDONLY`, so it can be listed and synced).
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        self.open_at(rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// The directory holding the last component of `rel` (every symlink on
    /// the way followed) and that component, itself not followed: what a
    /// stat, a deletion or a rename acts on. `None` for the root.
    pub fn parent(&self, rel: &Path) -> io::Result<Option<(OwnedFd, OsString)>> {
        let Some(name) = rel.file_name() else { return Ok(None) };
        let dir = self.open_dir(rel.parent().unwrap_or(Path::new("")))?;
        Ok(Some((dir, name.to_os_string())))
    }

    /// Where a write to `rel` lands: like [`Root::parent`], but a symlink as
    /// the last component is followed (while it points inside the root) to
    /// the directory and name it names, which may not exist yet.
    pub fn parent_following(&self, rel: &Path) -> io::Result<(OwnedFd, OsString)> {
        match self.walk(rel, Last::Parent)? {
            Walked::Parent(dir, name) => Ok((dir, name)),
            Walked::Opened(_) => Err(Errno::ISDIR.into()),
        }
    }

    /// The walk: one component at a time from the root descriptor.
    fn walk(&self, rel: &Path, last: Last) -> io::Result<Walked> {
        // Directories walked through below the root, innermost last.
        let mut stack: Vec<OwnedFd> = Vec::new();
        // Components still to walk, the next one last.
        let mut todo: Vec<OsString> = Vec::new();
        push_components(&mut todo, rel);
        let mut links = 0;
        loop {
            let dir = stack.last().map(AsFd::as_fd).unwrap_or(self.fd.as_fd());
            let Some(name) = todo.pop() else {
                // The path ended on a directory (the root itself, or a `..` or
                // `.` from a symlink's target).
                return match last {
                    Last::Open(flags) => Ok(Walked::Opened(openat(dir, ".", flags, Mode::empty())?)),
                    Last::Parent => Err(Errno::ISDIR.into()),
                };
            };
            if name == ".." {
                if stack.pop().is_none() {
                    return Err(Errno::XDEV.into());
                }
                continue;
            }
            let target = if !todo.is_empty() {
                // A directory on the way: opened without following, then looked at.
                let fd = openat(dir, &name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
                match FileType::from_raw_mode(fstat(&fd)?.st_mode) {
                    FileType::Directory => {
                        stack.push(fd);
                        continue;
                    }
                    FileType::Symlink => readlinkat(&fd, "", Vec::new())?,
                    _ => return Err(Errno::NOTDIR.into()),
                }
            } else {
                match last {
                    Last::Open(flags) => match openat(dir, &name, flags | OFlags::NOFOLLOW, Mode::empty()) {
                        Ok(fd) if !flags.contains(OFlags::PATH) => return Ok(Walked::Opened(fd)),
                        Ok(fd) => {
                            if FileType::from_raw_mode(fstat(&fd)?.st_mode) != FileType::Symlink {
                                return Ok(Walked::Opened(fd));
                            }
                            readlinkat(&fd, "", Vec::new())?
                        }
                        // A symlink opened with O_NOFOLLOW: ELOOP (or ENOTDIR
                        // with O_DIRECTORY). Anything else is the answer.
                        Err(e @ (Errno::LOOP | Errno::NOTDIR)) => readlinkat(dir, &name, Vec::new()).map_err(|_| e)?,
                        Err(e) => return Err(e.into()),
                    },
                    Last::Parent => {
                        match openat(dir, &name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
                            Ok(fd) if FileType::from_raw_mode(fstat(&fd)?.st_mode) == FileType::Symlink => {
                                readlinkat(&fd, "", Vec::new())?
                            }
                            Ok(_) | Err(Errno::NOENT) => {
                                let dir = openat(
                                    dir,
                                    ".",
                                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                                    Mode::empty(),
                                )?;
                                return Ok(Walked::Parent(dir, name));
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
            };
            // A symlink: its target replaces it, from where it is.
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::LOOP.into());
            }
            let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
            if target.as_os_str().is_empty() {
                return Err(Errno::NOENT.into());
            }
            if target.is_absolute() {
                // Absolute: allowed only when it names a place under the root.
                let inside = target.strip_prefix(&self.path).map_err(|_| io::Error::from(Errno::XDEV))?;
                stack.clear();
                push_components(&mut todo, inside);
            } else {
                push_components(&mut todo, &target);
            }
        }
    }
}

/// Pushes the components of `path` on `todo` so that the first is popped
/// first; `..` kept as a name, `.` and `/` dropped.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(names.into_iter().rev());
}

/// The entry `name` in `dir` itself (a symlink not followed), as `lstat` sees it.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Metadata> {
    let fd = openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
    File::from(fd).metadata()
}

/// The names in the open directory `dir` (not `.` and `..`), unsorted.
pub fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        let name = item.file_name().to_bytes();
        if name != b"." && name != b".." {
            out.push(OsString::from_vec(name.to_vec()));
        }
    }
    Ok(out)
}

/// Deletes `name` in `dir` and everything under it, never following a
/// symlink (a directory swapped for one meanwhile is removed as a link).
pub fn remove_tree(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    use rustix::fs::{unlinkat, AtFlags};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let sub = match openat(dir, name, flags, Mode::empty()) {
        Ok(sub) => sub,
        // Not a directory (any more): remove the entry itself.
        Err(Errno::LOOP | Errno::NOTDIR) => return Ok(unlinkat(dir, name, AtFlags::empty())?),
        Err(e) => return Err(e.into()),
    };
    for child in names(sub.as_fd())? {
        match unlinkat(&sub, &child, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR) => remove_tree(sub.as_fd(), &child)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Whether `name` is valid UTF-8 (names that are not cannot be asked for by
/// the API, whose paths are strings).
pub fn is_utf8(name: &OsStr) -> bool {
    std::str::from_utf8(name.as_bytes()).is_ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    /// A workspace `root` (with `sub/a.txt` and `sub/deeper/`) beside an
    /// `outside` folder holding `secret`; the fs tests' common ground.
    pub(crate) struct Rig {
        _tmp: tempfile::TempDir,
        pub(crate) root: PathBuf,
        pub(crate) outside: PathBuf,
    }

    pub(crate) fn rig() -> Rig {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"secret").unwrap();
        std::fs::write(root.join("sub/a.txt"), b"a").unwrap();
        Rig { _tmp: tmp, root, outside }
    }

    fn both(r: &Rig) -> [Root; 2] {
        [Root::open_with(&r.root, Strategy::Openat2).unwrap(), Root::open_with(&r.root, Strategy::Walk).unwrap()]
    }

    fn read(root: &Root, rel: &str) -> io::Result<String> {
        let mut s = String::new();
        File::from(root.open_at(Path::new(rel), OFlags::RDONLY)?).read_to_string(&mut s)?;
        Ok(s)
    }

    fn errno(r: io::Result<impl std::fmt::Debug>) -> i32 {
        r.unwrap_err().raw_os_error().unwrap()
    }

    #[test]
    fn symlinks_inside_are_followed_relative_and_absolute() {
        let r = rig();
        symlink("sub", r.root.join("rel")).unwrap();
        symlink(r.root.join("sub"), r.root.join("abs")).unwrap();
        symlink("../a.txt", r.root.join("sub/deeper/up")).unwrap();
        symlink("rel/deeper/up", r.root.join("chain")).unwrap();
        for root in both(&r) {
            for path in ["sub/a.txt", "rel/a.txt", "abs/a.txt", "sub/deeper/up", "chain", "abs/deeper/../a.txt"] {
                assert_eq!(read(&root, path).unwrap(), "a", "{path} ({:?})", root.strategy);
            }
            assert!(root.open_dir(Path::new("")).is_ok());
        }
    }

    #[test]
    fn symlinks_out_are_exdev() {
        let r = rig();
        symlink(&r.outside, r.root.join("out")).unwrap();
        symlink(r.outside.join("secret"), r.root.join("secret")).unwrap();
        symlink("../outside/secret", r.root.join("dotdot")).unwrap();
        symlink("../../outside", r.root.join("sub/up2")).unwrap();
        symlink("/proc/self/root", r.root.join("magic")).unwrap();
        symlink(format!("{}/../outside", r.root.display()), r.root.join("absdotdot")).unwrap();
        for root in both(&r) {
            for path in ["out/secret", "secret", "dotdot", "sub/up2/secret", "magic/etc/passwd", "absdotdot/secret"] {
                assert_eq!(errno(read(&root, path)), libc::EXDEV, "{path} ({:?})", root.strategy);
            }
            assert_eq!(errno(root.parent_following(Path::new("secret"))), libc::EXDEV);
            assert_eq!(errno(root.open_dir(Path::new("out"))), libc::EXDEV);
        }
    }

    #[test]
    fn parent_following_lands_where_a_write_would() {
        let r = rig();
        symlink("sub/new.txt", r.root.join("dangling")).unwrap();
        symlink("sub/a.txt", r.root.join("existing")).unwrap();
        for root in both(&r) {
            let (dir, name) = root.parent_following(Path::new("dangling")).unwrap();
            assert_eq!(name, "new.txt");
            assert!(names(dir.as_fd()).unwrap().contains(&OsString::from("a.txt")));
            let (_, name) = root.parent_following(Path::new("existing")).unwrap();
            assert_eq!(name, "a.txt");
            let (_, name) = root.parent_following(Path::new("sub/plain")).unwrap();
            assert_eq!(name, "plain");
        }
    }

    #[test]
    fn a_symlink_loop_is_eloop() {
        let r = rig();
        symlink("b", r.root.join("a")).unwrap();
        symlink("a", r.root.join("b")).unwrap();
        for root in both(&r) {
            assert_eq!(errno(read(&root, "a")), libc::ELOOP);
        }
    }

    #[test]
    fn remove_tree_never_follows_links() {
        let r = rig();
        symlink(&r.outside, r.root.join("sub/deeper/out")).unwrap();
        let root = Root::open(&r.root).unwrap();
        remove_tree(root.fd(), OsStr::new("sub")).unwrap();
        assert!(!r.root.join("sub").exists());
        assert_eq!(std::fs::read(r.outside.join("secret")).unwrap(), b"secret");
    }

    /// The check-then-open race: a thread keeps swapping a directory of the
    /// workspace for a symlink to outside (two renames), while lookups go
    /// through it. Whatever interleaving happens, no lookup ever reaches the
    /// outside: the canary is never read, nothing is ever created there.
    #[test]
    fn a_directory_swapped_for_a_symlink_never_lets_a_lookup_out() {
        let r = rig();
        std::fs::write(r.outside.join("file"), b"canary").unwrap();
        std::fs::create_dir(r.root.join("d")).unwrap();
        std::fs::write(r.root.join("d/file"), b"inside").unwrap();
        symlink(&r.outside, r.root.join("evil")).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (root, stop) = (r.root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // d (a directory) → aside, evil (the symlink) → d, then back.
                    std::fs::rename(root.join("d"), root.join("aside")).unwrap();
                    std::fs::rename(root.join("evil"), root.join("d")).unwrap();
                    std::fs::rename(root.join("d"), root.join("evil")).unwrap();
                    std::fs::rename(root.join("aside"), root.join("d")).unwrap();
                    swaps += 1;
                }
                swaps
            })
        };
        // The control: the old way (canonicalize, check, then open the path)
        // reads the canary now and then under the same swaps.
        let deadline = Instant::now() + Duration::from_millis(1000);
        let (mut tries, mut escapes) = (0, 0);
        while tries < 20_000 && Instant::now() < deadline {
            tries += 1;
            if let Ok(real) = r.root.join("d/file").canonicalize() {
                if real.starts_with(&r.root) && std::fs::read(&real).is_ok_and(|s| s == b"canary") {
                    escapes += 1;
                }
            }
        }
        let mut counts = [0u64; 2];
        for (i, root) in both(&r).iter().enumerate() {
            let deadline = Instant::now() + Duration::from_millis(1500);
            let mut n = 0;
            while n < 20_000 && Instant::now() < deadline {
                n += 1;
                if let Ok(s) = read(root, "d/file") {
                    assert_eq!(s, "inside", "read outside the root ({:?})", root.strategy);
                }
                if let Ok(dir) = root.open_dir(Path::new("d")) {
                    let created = openat(
                        &dir,
                        "new",
                        OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    );
                    drop(created);
                }
                if let Ok((dir, name)) = root.parent_following(Path::new("d/made")) {
                    let _ = rustix::fs::mkdirat(&dir, &name, Mode::from_raw_mode(0o755));
                }
                assert!(!r.outside.join("new").exists() && !r.outside.join("made").exists());
            }
            counts[i] = n;
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = swapper.join().unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&r.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["file", "secret"], "something was created outside the root");
        println!(
            "race: {swaps} swaps; lookups beneath the root, none out: openat2 {}, walk {}; check-then-open control: \
             {escapes} of {tries} read the canary",
            counts[0], counts[1]
        );
        assert!(swaps > 0 && counts.iter().all(|&n| n > 0));
    }
}
