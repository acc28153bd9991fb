//! Processes people and agents run beside the agent (`/v1/processes`): the
//! same host as the agents (own session and process group, parent-death
//! signal, the group ended with the leader), but the output is handed on as
//! the bytes a terminal would receive rather than split into lines, and the
//! terminal has the line discipline a shell expects (echo, ^C). Without a
//! terminal, stdout and stderr are one pipe, interleaved as written.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{command, signal_group, spawner, sys, wait_in_thread, write_input, ExitInfo};

/// What to run.
#[derive(Debug, Clone)]
pub struct TerminalSpec {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Added to the server's environment less tether's own settings.
    pub env: BTreeMap<String, String>,
    /// `Some((cols, rows))`: under a PTY of that size; `None`: pipes.
    pub tty: Option<(u16, u16)>,
    /// `(name, value)` tagging the process and its descendants, so a
    /// restarted server can find leftovers.
    pub tag: (String, String),
}

/// What the host reports, in order.
#[derive(Debug)]
pub enum RawEvent {
    Output(Bytes),
    /// Every byte it wrote came before this.
    Exited(ExitInfo),
}

/// A running process.
pub struct Terminal {
    pub pid: i32,
    input: mpsc::UnboundedSender<Vec<u8>>,
    master: Option<Arc<OwnedFd>>,
}

impl Terminal {
    /// Queues bytes for its input; written in order by a thread of its own.
    pub fn write(&self, bytes: Vec<u8>) -> io::Result<()> {
        self.input.send(bytes).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the process's input is closed"))
    }

    pub fn resize(&self, cols: u16, rows: u16) -> io::Result<()> {
        match &self.master {
            Some(m) => sys::set_winsize(&**m, cols, rows),
            None => Err(io::Error::new(io::ErrorKind::Unsupported, "the process has no terminal")),
        }
    }

    /// Sends `sig` to the whole group; false when no member is left.
    pub fn signal(&self, sig: i32) -> bool {
        signal_group(self.pid, sig)
    }
}

/// Starts `spec`; its output and exit arrive on the receiver. Blocking (briefly).
pub fn spawn_terminal(spec: &TerminalSpec) -> io::Result<(Terminal, mpsc::Receiver<RawEvent>)> {
    let mut cmd = command(&spec.program, &spec.args, &spec.cwd);
    cmd.envs(&spec.env);
    cmd.env(&spec.tag.0, &spec.tag.1);
    let (reader, master, out): (File, Option<Arc<OwnedFd>>, OwnedFd) = match spec.tty {
        Some((cols, rows)) => {
            let (master, slave) = sys::open_pty(cols, rows, false)?;
            if !spec.env.contains_key("TERM") {
                cmd.env("TERM", "xterm-256color");
            }
            cmd.stdin(Stdio::from(slave.try_clone()?));
            let master = Arc::new(master);
            (File::from(master.try_clone()?), Some(master), slave)
        }
        None => {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
            cmd.stdin(Stdio::piped());
            (File::from(read), None, write)
        }
    };
    cmd.stdout(Stdio::from(out.try_clone()?));
    cmd.stderr(Stdio::from(out));
    let controlling_tty = spec.tty.is_some();
    let (tx, rx) = std_mpsc::channel();
    spawner()?
        .send(Box::new(move || {
            let _ = tx.send(sys::spawn_in_session(&mut cmd, controlling_tty).map(|c| (c, cmd)));
        }))
        .map_err(|_| io::Error::other("spawner stopped"))?;
    let (mut child, cmd) = rx.recv().map_err(|_| io::Error::other("spawner stopped"))??;
    // Our copies of the write ends go, so the reader sees EOF when the group is gone.
    drop(cmd);
    let pid = child.id() as i32;

    let (in_tx, in_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let input: Box<dyn Write + Send> = match (&master, child.stdin.take()) {
        (Some(m), _) => Box::new(File::from(m.try_clone()?)),
        (None, Some(stdin)) => Box::new(stdin),
        (None, None) => Box::new(io::sink()),
    };
    std::thread::Builder::new().name(format!("proc-in-{pid}")).spawn(move || write_input(input, in_rx))?;

    // A few chunks in flight: the process is slowed (its PTY or pipe fills)
    // only if the server itself cannot keep up, never by a client.
    let (ev_tx, ev_rx) = mpsc::channel(16);
    let (exit_tx, exit_rx) = std_mpsc::channel::<ExitInfo>();
    let stop = Arc::new(AtomicBool::new(false));
    let reader_stop = stop.clone();
    std::thread::Builder::new()
        .name(format!("proc-out-{pid}"))
        .spawn(move || read_raw(reader, ev_tx, exit_rx, reader_stop))?;
    wait_in_thread(format!("proc-wait-{pid}"), child, exit_tx, stop)?;
    Ok((Terminal { pid, input: in_tx, master }, ev_rx))
}

fn read_raw(mut from: File, tx: mpsc::Sender<RawEvent>, exit: std_mpsc::Receiver<ExitInfo>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match sys::poll_readable(&from, 100) {
            Ok(false) if stop.load(Ordering::Relaxed) => break,
            Ok(false) => continue,
            Ok(true) => {}
            Err(_) => break,
        }
        match from.read(&mut buf) {
            // EOF on a pipe; EIO on a PTY once every holder of the slave is gone.
            Ok(0) => break,
            Ok(n) => {
                if tx.blocking_send(RawEvent::Output(Bytes::copy_from_slice(&buf[..n]))).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break,
        }
    }
    let info = exit.recv().unwrap_or(ExitInfo { code: None, signal: None });
    let _ = tx.blocking_send(RawEvent::Exited(info));
}
