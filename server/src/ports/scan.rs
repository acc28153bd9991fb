//! One look at `/proc`: the listening TCP sockets, the pid holding each
//! (by socket inode, scanning `/proc/<pid>/fd` only when the set of
//! listening inodes changed), and tether's own sockets (`/proc/self/fd`).
//! Blocking; the caller runs it off the async runtime.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::procnet;

/// A listening socket as one scan saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub port: u16,
    pub address: IpAddr,
    /// The process holding it, when `/proc` shows it.
    pub pid: Option<i32>,
    /// tether's own socket.
    pub own: bool,
}

/// The scanner's memory between scans: whose each listening inode is.
pub struct Scanner {
    proc: PathBuf,
    /// The listening inodes of the last scan, and the pid holding each (None: not found).
    pids: HashMap<u64, Option<i32>>,
    own: HashSet<u64>,
    last: BTreeSet<u64>,
}

impl Scanner {
    /// A scanner of the `/proc` mounted at `proc`.
    pub fn new(proc: impl Into<PathBuf>) -> Scanner {
        Scanner { proc: proc.into(), pids: HashMap::new(), own: HashSet::new(), last: BTreeSet::new() }
    }

    pub fn proc(&self) -> &Path {
        &self.proc
    }

    fn listeners(&self) -> Vec<procnet::Listener> {
        let mut listeners = Vec::new();
        for file in ["net/tcp", "net/tcp6"] {
            if let Ok(text) = std::fs::read_to_string(self.proc.join(file)) {
                listeners.extend(procnet::listeners(&text));
            }
        }
        listeners
    }

    /// The listening sockets now.
    pub fn scan(&mut self) -> Vec<Seen> {
        let listeners = self.listeners();
        let inodes: BTreeSet<u64> = listeners.iter().map(|l| l.inode).filter(|i| *i != 0).collect();
        if inodes != self.last {
            self.own = socket_inodes(&self.proc.join("self/fd"));
            let unknown: HashSet<u64> =
                inodes.iter().copied().filter(|i| !self.pids.contains_key(i) && !self.own.contains(i)).collect();
            if !unknown.is_empty() {
                let found = holders(&self.proc, &unknown);
                for inode in unknown {
                    self.pids.insert(inode, found.get(&inode).copied());
                }
            }
            self.pids.retain(|inode, _| inodes.contains(inode));
            self.last = inodes;
        }
        listeners
            .into_iter()
            .map(|l| Seen {
                port: l.port,
                address: l.address,
                pid: self.pids.get(&l.inode).copied().flatten(),
                own: self.own.contains(&l.inode),
            })
            .collect()
    }
}

/// The socket inodes among the fds in `dir` (`/proc/<pid>/fd`).
fn socket_inodes(dir: &Path) -> HashSet<u64> {
    let Ok(entries) = std::fs::read_dir(dir) else { return HashSet::new() };
    entries.flatten().filter_map(|e| socket_inode(&e.path())).collect()
}

/// `socket:[123]` → 123.
fn socket_inode(fd: &Path) -> Option<u64> {
    let link = std::fs::read_link(fd).ok()?;
    link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The pid holding each of `wanted` (the lowest pid when several share it,
/// as after a fork: the parent), from every `/proc/<pid>/fd` this process
/// may read.
fn holders(proc: &Path, wanted: &HashSet<u64>) -> HashMap<u64, i32> {
    let mut found: HashMap<u64, i32> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(proc) else { return found };
    let mut pids: Vec<i32> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(proc.join(pid.to_string()).join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Some(inode) = socket_inode(&fd.path()).filter(|i| wanted.contains(i)) {
                found.entry(inode).or_insert(pid);
            }
        }
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}

/// The `TETHER_PROCESS_ID` and `TETHER_SESSION_ID` a process inherited
/// (`/proc/<pid>/environ`, readable for processes of the same user).
pub fn tags(proc: &Path, pid: i32) -> (Option<String>, Option<String>) {
    let Ok(environ) = std::fs::read(proc.join(pid.to_string()).join("environ")) else { return (None, None) };
    let find = |var: &str| {
        let prefix = format!("{var}=");
        environ
            .split(|&b| b == 0)
            .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_string)
    };
    (find(crate::exec::PROCESS_ENV), find(crate::process::SESSION_ENV))
}

/// A process's parent and session id (fields 4 and 6 of `/proc/<pid>/stat`).
pub fn parent_and_session(proc: &Path, pid: i32) -> Option<(i32, i32)> {
    let stat = std::fs::read_to_string(proc.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&stat)
}

/// `pid (comm) state ppid pgrp session ...`: the name may hold spaces and
/// parentheses, so the fields are counted after its last `)`.
fn parse_stat(stat: &str) -> Option<(i32, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(1)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// A process's name (`/proc/<pid>/comm`).
pub fn program(proc: &Path, pid: i32) -> Option<String> {
    let comm = std::fs::read_to_string(proc.join(pid.to_string()).join("comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_string()).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        assert_eq!(parse_stat("4242 (python3) S 4200 4242 4100 34816 4242 4194304"), Some((4200, 4100)));
        assert_eq!(parse_stat("7 (a) b) (c) R 1 7 7 0 -1"), Some((1, 7)));
        assert_eq!(parse_stat("7 (x) R"), None);
    }

    #[test]
    fn this_process_listening_is_seen_as_its_own() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut scanner = Scanner::new("/proc");
        let seen: Vec<Seen> = scanner.scan().into_iter().filter(|s| s.port == port).collect();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].own && seen[0].pid.is_none(), "{seen:?}");
        let me = std::process::id() as i32;
        // The session id may be 0 (its leader outside this pid namespace, as
        // under some CI runners); the parent is known.
        let (ppid, sid) = parent_and_session(Path::new("/proc"), me).unwrap();
        assert_eq!(ppid as u32, std::os::unix::process::parent_id());
        assert!(sid >= 0);
        drop(listener);
        assert!(scanner.scan().iter().all(|s| s.port != port));
    }
}
