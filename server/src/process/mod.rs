//! The PTY host: runs an agent as the leader of its own session and process
//! group, with a raw-mode PTY as its controlling terminal, stdout and stderr
//! (and stdin, unless its protocol needs a pipe there). Output is split into
//! lines on a reader thread; input is written by a writer thread so a large
//! write never blocks the async runtime. Ending a process ends its whole group.
//!
//! This module knows nothing about agents' protocols or events.

mod bridge;
mod output;
mod spec;
mod sys;
mod terminal;
pub mod user;

pub use bridge::HttpBridge;
pub use output::{OutputChunk, OutputLog, OutputState};
pub use spec::{LaunchSpec, StdinMode};
pub use terminal::{spawn_terminal, RawEvent, Terminal, TerminalSpec};

/// Sees every byte an agent writes to its PTY, as read, before it is split
/// into lines (a session's read-only terminal).
pub type Tee = Arc<dyn Fn(&[u8]) + Send + Sync>;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use sys::{
    limit_malloc_arenas, monotonic_and_boot_clocks, raise_open_files_limit, release_free_memory, signal_group,
    signal_pid,
};
/// For the terminal client (`tether sh`).
pub use sys::{terminal_size, RawTerminal};

/// The environment variable that tags every process of a session (inherited
/// by all descendants), so a restarted server can find leftovers.
pub const SESSION_ENV: &str = "TETHER_SESSION_ID";

/// Longest line kept whole; longer output is cut into pieces of this size.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// Most output bytes gathered into one batch of lines.
const MAX_BATCH_BYTES: usize = 256 * 1024;

/// What the host reports about a running process, in order.
#[derive(Debug)]
pub enum ProcEvent {
    /// Complete output lines (without the newline; a trailing CR is removed).
    Lines(Vec<String>),
    /// The process ended; every line it wrote came before this.
    Exited(ExitInfo),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// A running agent process.
pub struct Process {
    pub pid: i32,
    input: Option<mpsc::UnboundedSender<Vec<u8>>>,
    master: Arc<OwnedFd>,
    pub events: mpsc::Receiver<ProcEvent>,
}

impl Process {
    /// Queues bytes for the process's input; they are written in order.
    pub fn write(&self, bytes: Vec<u8>) -> io::Result<()> {
        match &self.input {
            Some(tx) => tx.send(bytes).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "agent input closed")),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "agent input closed")),
        }
    }

    /// Closes the agent's input once everything queued is written (EOF on a pipe).
    pub fn close_input(&mut self) {
        self.input = None;
    }

    /// Sends a signal to the whole process group.
    pub fn signal(&self, sig: i32) -> bool {
        signal_group(self.pid, sig)
    }

    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        sys::set_winsize(&*self.master, cols, rows)
    }

    /// Ends the process group: SIGTERM, then SIGKILL after `grace`; waits for the exit report.
    /// Lines that arrive meanwhile are returned so nothing is lost.
    pub async fn terminate(&mut self, grace: Duration) -> (Vec<String>, Option<ExitInfo>) {
        let mut lines = Vec::new();
        self.signal(libc::SIGTERM);
        let mut deadline = tokio::time::Instant::now() + grace;
        let mut killed = false;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ProcEvent::Lines(l))) => lines.extend(l),
                Ok(Some(ProcEvent::Exited(info))) => return (lines, Some(info)),
                Ok(None) => return (lines, None),
                Err(_) if !killed => {
                    self.signal(libc::SIGKILL);
                    killed = true;
                    deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                }
                Err(_) => return (lines, None),
            }
        }
    }
}

pub(crate) type SpawnJob = Box<dyn FnOnce() + Send>;

/// Children are spawned from one thread that lives as long as the server,
/// because the parent-death signal fires when the spawning *thread* exits.
pub(crate) fn spawner() -> io::Result<std_mpsc::Sender<SpawnJob>> {
    static SPAWNER: OnceLock<Mutex<std_mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let m = SPAWNER.get_or_init(|| {
        let (tx, rx) = std_mpsc::channel::<SpawnJob>();
        let _ = std::thread::Builder::new().name("tether-spawner".into()).spawn(move || {
            for job in rx {
                job();
            }
        });
        Mutex::new(tx)
    });
    m.lock().map(|tx| tx.clone()).map_err(|_| io::Error::other("spawner poisoned"))
}

/// `program args` in `cwd` with the server's environment less tether's own
/// settings (`TETHER_TOKEN` above all) and the Sprites token: a child gets
/// them only when asked for (an agent that drives tether). Run as another
/// user (`--agent-user`), it gets that user's home and name.
pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>, args: &[String], cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("TETHER_") || k == "SPRITES_TOKEN") {
            cmd.env_remove(&key);
        }
    }
    if let Some(user) = user::agent_user() {
        cmd.env("HOME", &user.home).env("USER", &user.name).env("LOGNAME", &user.name).env("SHELL", &user.shell);
    }
    cmd
}

/// Waits for the leader on a thread of its own, ends what is left of its
/// group, reports the exit, and a second later tells the reader to stop
/// (something outside the group may hold the terminal open).
pub(crate) fn wait_in_thread(
    name: String,
    mut child: std::process::Child,
    exit_tx: std_mpsc::Sender<ExitInfo>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let pid = child.id() as i32;
    std::thread::Builder::new().name(name).spawn(move || {
        let info = match child.wait() {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                ExitInfo { code: s.code(), signal: s.signal() }
            }
            Err(_) => ExitInfo { code: None, signal: None },
        };
        reap_group(pid);
        let _ = exit_tx.send(info);
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
    })?;
    Ok(())
}

/// Starts `spec` in `cwd` with `env` (the session's) added to the server's
/// environment less tether's own `TETHER_*` settings, and the spec's own env over both (an adapter that needs a
/// variable the session also sets merges it itself). Blocking (briefly).
pub fn spawn(
    spec: &LaunchSpec,
    cwd: &Path,
    env: &BTreeMap<String, String>,
    session_id: &str,
    tee: Option<Tee>,
) -> io::Result<Process> {
    let (master, slave) = sys::open_raw_pty(200, 50)?;
    let mut cmd = command(&spec.program, &spec.args, cwd);
    cmd.envs(env);
    cmd.envs(spec.env.iter().map(|(k, v)| (k, v)));
    cmd.env(SESSION_ENV, session_id).env("TERM", "xterm-256color");
    cmd.stdout(Stdio::from(slave.try_clone()?));
    cmd.stderr(Stdio::from(slave.try_clone()?));
    match &spec.stdin {
        StdinMode::Pty => cmd.stdin(Stdio::from(slave.try_clone()?)),
        StdinMode::Pipe => cmd.stdin(Stdio::piped()),
        StdinMode::Http(_) => cmd.stdin(Stdio::null()),
    };
    let (tx, rx) = std_mpsc::channel();
    spawner()?
        .send(Box::new(move || {
            let _ = tx.send(sys::spawn_in_session(&mut cmd, true).map(|c| (c, cmd)));
        }))
        .map_err(|_| io::Error::other("spawner stopped"))?;
    let (mut child, cmd) = rx.recv().map_err(|_| io::Error::other("spawner stopped"))??;
    // Drop our copies of the slave so the master sees EOF when the group is gone.
    drop(cmd);
    drop(slave);
    let pid = child.id() as i32;
    let master = Arc::new(master);

    // Output and exit.
    // A few batches in flight: the agent is slowed (its PTY fills) before memory grows.
    let (ev_tx, ev_rx) = mpsc::channel(4);

    // Input: a pipe, the PTY master, or the HTTP bridge.
    let (in_tx, in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    match (&spec.stdin, child.stdin.take()) {
        (StdinMode::Http(bridge), _) => {
            let runtime = tokio::runtime::Handle::try_current().map_err(|e| io::Error::other(e.to_string()))?;
            runtime.spawn(bridge::run(bridge.clone(), in_rx, ev_tx.clone()));
        }
        (_, Some(stdin)) => {
            let input: Box<dyn Write + Send> = Box::new(stdin);
            std::thread::Builder::new().name(format!("agent-in-{pid}")).spawn(move || write_input(input, in_rx))?;
        }
        (_, None) => {
            let input: Box<dyn Write + Send> = Box::new(File::from(master.try_clone()?));
            std::thread::Builder::new().name(format!("agent-in-{pid}")).spawn(move || write_input(input, in_rx))?;
        }
    }
    let (exit_tx, exit_rx) = std_mpsc::channel::<ExitInfo>();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = File::from(master.try_clone()?);
    let reader_stop = stop.clone();
    std::thread::Builder::new()
        .name(format!("agent-out-{pid}"))
        .spawn(move || read_output(reader, ev_tx, exit_rx, reader_stop, tee))?;
    wait_in_thread(format!("agent-wait-{pid}"), child, exit_tx, stop)?;
    Ok(Process { pid, input: Some(in_tx), master, events: ev_rx })
}

/// After the leader exits, its group must not live on: SIGTERM, then SIGKILL.
pub(crate) fn reap_group(pgid: i32) {
    if !signal_group(pgid, libc::SIGTERM) {
        return;
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if !signal_group(pgid, 0) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal_group(pgid, libc::SIGKILL);
}

pub(crate) fn write_input(mut out: Box<dyn Write + Send>, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(bytes) = rx.blocking_recv() {
        if out.write_all(&bytes).and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}

fn read_output(
    mut master: File,
    tx: mpsc::Sender<ProcEvent>,
    exit: std_mpsc::Receiver<ExitInfo>,
    stop: Arc<AtomicBool>,
    tee: Option<Tee>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut eof = false;
    while !eof {
        match sys::poll_readable(&master, 100) {
            // Stop only once nothing is left to read.
            Ok(false) if stop.load(Ordering::Relaxed) => break,
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => break,
        }
        // Gather what is already there into one batch (fewer wakeups downstream).
        let mut lines = Vec::new();
        let mut gathered = 0;
        loop {
            match master.read(&mut buf) {
                Ok(0) => eof = true,
                Ok(n) => {
                    gathered += n;
                    if let Some(tee) = &tee {
                        tee(&buf[..n]);
                    }
                    lines.extend(split_lines(&mut pending, &buf[..n]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock => {}
                // EIO: every holder of the slave side is gone.
                Err(_) => eof = true,
            }
            if eof || gathered >= MAX_BATCH_BYTES || !matches!(sys::poll_readable(&master, 0), Ok(true)) {
                break;
            }
        }
        if !lines.is_empty() && tx.blocking_send(ProcEvent::Lines(lines)).is_err() {
            return;
        }
    }
    if !pending.is_empty() {
        let last = String::from_utf8_lossy(&pending).into_owned();
        let _ = tx.blocking_send(ProcEvent::Lines(vec![last]));
    }
    let info = exit.recv().unwrap_or(ExitInfo { code: None, signal: None });
    let _ = tx.blocking_send(ProcEvent::Exited(info));
}

/// Appends `chunk` to `pending` and takes out every complete line.
fn split_lines(pending: &mut Vec<u8>, chunk: &[u8]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut rest = chunk;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        let (head, tail) = rest.split_at(pos);
        if pending.is_empty() {
            lines.push(to_line(head));
        } else {
            pending.extend_from_slice(head);
            lines.push(to_line(pending));
            pending.clear();
        }
        rest = &tail[1..];
    }
    pending.extend_from_slice(rest);
    while pending.len() > MAX_LINE {
        let tail = pending.split_off(MAX_LINE);
        lines.push(to_line(pending));
        *pending = tail;
    }
    lines
}

fn to_line(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Kills every process whose environment carries `TETHER_SESSION_ID=<id>`
/// for one of `session_ids` (leftovers of a server that died), in one pass
/// over `/proc` however many sessions there are. Answers how many processes
/// were signalled per session.
pub fn kill_tagged(session_ids: &std::collections::HashSet<&str>) -> std::collections::HashMap<String, usize> {
    kill_tagged_by(SESSION_ENV, session_ids)
}

/// [`kill_tagged`] for any tag: every process whose environment has
/// `var=<id>` with `id` in `ids`.
pub fn kill_tagged_by(
    var: &str,
    session_ids: &std::collections::HashSet<&str>,
) -> std::collections::HashMap<String, usize> {
    let mut killed = std::collections::HashMap::new();
    if session_ids.is_empty() {
        return killed;
    }
    let prefix = format!("{var}=");
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else { return killed };
    for entry in dir.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
        let tag = environ
            .split(|&b| b == 0)
            .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
            .and_then(|id| std::str::from_utf8(id).ok());
        if let Some(id) = tag.filter(|id| session_ids.contains(id)) {
            if signal_pid(pid, libc::SIGKILL) {
                *killed.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests;
