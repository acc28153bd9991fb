//! Processes: the agent processes of a session (found through the
//! `TETHER_SESSION_ID` tag in their environment) and signals.

use std::time::{Duration, Instant};

/// The environment variable that tags every process of a session.
pub const SESSION_ENV: &str = "TETHER_SESSION_ID";

/// Pids of the live processes whose environment carries
/// `TETHER_SESSION_ID=<session_id>` (a scan of `/proc/*/environ`; zombies,
/// whose environment is gone, are not counted).
pub fn processes_of_session(session_id: &str) -> Vec<i32> {
    let needle = format!("{SESSION_ENV}={session_id}");
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut pids: Vec<i32> = dir
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            environ.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// `/proc/<pid>/cmdline` with spaces, for messages.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Waits (polling every 20 ms, up to `timeout`) until `find` finds no
/// process; panics naming the survivors (`what` says whose they are).
pub async fn wait_none(what: &str, timeout: Duration, find: impl Fn() -> Vec<i32>) {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = find();
        if pids.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = pids.iter().map(|p| format!("{p}: {}", cmdline(*p))).collect();
            panic!("{what} still alive after {timeout:?}:\n{}", list.join("\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (polling every 20 ms, up to `timeout`) until `find` finds a process; returns them.
pub async fn wait_some(what: &str, timeout: Duration, find: impl Fn() -> Vec<i32>) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let pids = find();
        if !pids.is_empty() {
            return pids;
        }
        assert!(Instant::now() < deadline, "no {what} appeared within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no process of the session is left; panics naming the survivors.
pub async fn wait_no_processes(session_id: &str, timeout: Duration) {
    wait_none(&format!("processes of session {session_id}"), timeout, || processes_of_session(session_id)).await
}

/// Waits until the session has at least one process; returns them.
pub async fn wait_some_processes(session_id: &str, timeout: Duration) -> Vec<i32> {
    wait_some(&format!("process of session {session_id}"), timeout, || processes_of_session(session_id)).await
}

/// `kill(pid, sig)`; false when there is no such process.
#[allow(unsafe_code)]
pub fn signal(pid: i32, sig: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and has no memory effects.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Pids of the live processes with `needle` in their command line (e.g. a
/// path unique to a test): how to find processes that do not carry the
/// session's tag, like the MCP servers an agent starts with an environment of
/// its own making.
pub fn processes_with_arg(needle: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id() as i32;
    let mut pids: Vec<i32> = dir
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            (pid != me && cmdline.split(|&b| b == 0).any(|arg| String::from_utf8_lossy(arg).contains(needle)))
                .then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Waits (polling every 20 ms, up to `timeout`) until no process has
/// `needle` in its command line; panics naming the survivors.
pub async fn wait_no_processes_with_arg(needle: &str, timeout: Duration) {
    wait_none(&format!("processes with {needle:?}"), timeout, || processes_with_arg(needle)).await
}

/// Raises this process's soft limit of open files to its hard limit (the
/// tests that hold hundreds of connections at once run beside others).
#[allow(unsafe_code)]
pub fn raise_open_files_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid resource and a valid out-pointer, then a pointer to an initialised rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
