//! `--agent-user`: when tether runs as root, the agents (and every process
//! they start) run as an unprivileged user, so they cannot read tether's
//! token or store, signal it, or delete its data dir. Unsafe code: the user
//! database and the credential calls are libc's.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The user agents run as: who it is and what `setgroups`/`setgid`/`setuid` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentUser {
    pub name: String,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    /// Its supplementary groups (from the group database), primary group included.
    pub groups: Vec<libc::gid_t>,
    pub home: PathBuf,
    pub shell: PathBuf,
}

impl AgentUser {
    /// Looks `name` up in the user database and checks that tether can become it.
    pub fn resolve(name: &str) -> Result<AgentUser, String> {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(format!(
                "--agent-user {name} needs tether to run as root (it starts the agents as that user); \
                 run tether as root, or drop --agent-user to run agents as yourself"
            ));
        }
        let user = lookup(name)?;
        if user.uid == 0 {
            return Err(format!(
                "--agent-user {name} is root: name an unprivileged user (create one with `useradd --create-home NAME`)"
            ));
        }
        Ok(user)
    }
}

fn lookup(name: &str) -> Result<AgentUser, String> {
    let cname = CString::new(name).map_err(|_| format!("the user name {name:?} holds a NUL byte"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter for getpwnam_r.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the duration of the call; buf outlives the reads below.
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 {
        return Err(format!("cannot look up the user {name}: {}", io::Error::from_raw_os_error(rc)));
    }
    if found.is_null() {
        return Err(format!(
            "there is no user named {name} on this machine; create it (`useradd --create-home {name}`) or name another"
        ));
    }
    // SAFETY: getpwnam_r filled pw with pointers into buf, which is alive.
    let (home, shell) = unsafe {
        (
            PathBuf::from(std::ffi::OsStr::from_bytes(CStr::from_ptr(pw.pw_dir).to_bytes())),
            PathBuf::from(std::ffi::OsStr::from_bytes(CStr::from_ptr(pw.pw_shell).to_bytes())),
        )
    };
    let groups = group_list(&cname, pw.pw_gid);
    Ok(AgentUser { name: name.to_owned(), uid: pw.pw_uid, gid: pw.pw_gid, groups, home, shell })
}

/// `getgrouplist`, growing the buffer until it fits.
fn group_list(name: &CStr, gid: libc::gid_t) -> Vec<libc::gid_t> {
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: groups has room for `count` entries; getgrouplist writes at most that many.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return groups;
        }
        if count <= n || n > 65_536 {
            return vec![gid];
        }
        n = count;
    }
}

static AGENT_USER: OnceLock<AgentUser> = OnceLock::new();

/// Makes every process spawned from now on run as `user` (set once, at start).
pub fn run_agents_as(user: AgentUser) {
    let _ = AGENT_USER.set(user);
}

/// The user agents run as, if not tether's own.
pub fn agent_user() -> Option<&'static AgentUser> {
    AGENT_USER.get()
}

/// In the forked child, before exec: become the agent user. Only
/// async-signal-safe calls; `groups` was prepared before the fork.
pub fn become_user(uid: libc::uid_t, gid: libc::gid_t, groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: setgroups/setgid/setuid take plain integers and a valid slice.
    unsafe {
        if libc::setgroups(groups.len(), groups.as_ptr()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Gives `path` to the agent user, if there is one (a folder tether prepares
/// for an agent: its session folder, its state). Not recursive.
pub fn give_to_agent(path: &Path) -> io::Result<()> {
    match agent_user() {
        Some(user) => chown(path, user.uid, user.gid),
        None => Ok(()),
    }
}

/// Gives `root` and everything under it to the agent user, if there is one;
/// symbolic links are changed themselves, never followed.
pub fn give_tree_to_agent(root: &Path) -> io::Result<()> {
    let Some(user) = agent_user() else { return Ok(()) };
    give_tree(root, user.uid, user.gid)
}

/// Gives a file or folder tether just created in the workspace (open as
/// `fd`) to the agent user, if there is one, so agents can change it.
pub fn give_fd_to_agent(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    let Some(user) = agent_user() else { return Ok(()) };
    let (uid, gid) = (rustix::fs::Uid::from_raw_unchecked(user.uid), rustix::fs::Gid::from_raw_unchecked(user.gid));
    rustix::fs::fchown(fd, Some(uid), Some(gid)).map_err(io::Error::from)
}

/// As [`give_fd_to_agent`], for the entry `name` of the folder `dir` (a
/// symbolic link is changed itself).
pub fn give_entry_to_agent(dir: std::os::fd::BorrowedFd<'_>, name: &std::ffi::OsStr) -> io::Result<()> {
    let Some(user) = agent_user() else { return Ok(()) };
    let (uid, gid) = (rustix::fs::Uid::from_raw_unchecked(user.uid), rustix::fs::Gid::from_raw_unchecked(user.gid));
    rustix::fs::chownat(dir, name, Some(uid), Some(gid), rustix::fs::AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

fn give_tree(root: &Path, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.uid() != uid || meta.gid() != gid {
            chown(&path, uid, gid)?;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(())
}

fn chown(path: &Path, uid: libc::uid_t, gid: libc::gid_t) -> io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_with_its_home_and_groups() {
        let root = lookup("root").unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert!(root.groups.contains(&0), "{root:?}");
        assert!(root.home.is_absolute(), "{root:?}");
    }

    #[test]
    fn an_unknown_user_is_a_sentence() {
        let e = lookup("no-such-user-tether-test").unwrap_err();
        assert!(e.contains("there is no user named no-such-user-tether-test"), "{e}");
    }
}
