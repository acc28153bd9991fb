//! Processes run beside the agents (`/v1/processes`, tether's MCP tools):
//! a shell, a test watcher, a dev server. Each is started by the PTY host
//! (`process::spawn_terminal`: its own process group, parent-death signal),
//! its output kept as a byte log with offsets (`process::OutputLog`, the
//! last `--process-output-bytes` bytes, on disk beside its record) and, under
//! a terminal, fed to a terminal emulator so its screen can be read as text.
//!
//! Records live in `<data dir>/processes/<id>/process.json` and outlive the
//! server; the processes do not: at shutdown they are stopped, and a start
//! marks whatever an earlier run left running as ended by the server (and
//! kills any leftover member it still finds by its `TETHER_PROCESS_ID` tag).
//!
//! This room knows nothing of HTTP or MCP; it must not block the runtime
//! (spawning and file writes are brief; reads come from memory).

mod error;
mod screen;

pub use error::ExecError;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tether_protocol::{
    CreateProcess, OutputRange, Process, ProcessEnd, ProcessOutput, ProcessStatus, Screen, Signal, DEFAULT_COLS,
    DEFAULT_ROWS, MAX_INPUT_BYTES, MAX_TERMINAL_SIZE,
};
use tokio::sync::{mpsc, watch};

use crate::process::{self, ExitInfo, OutputLog, RawEvent, Terminal, TerminalSpec};

/// The environment variable that tags a process and its descendants.
pub const PROCESS_ENV: &str = "TETHER_PROCESS_ID";

/// Default of `--process-output-bytes`.
pub const DEFAULT_OUTPUT_BYTES: usize = 1024 * 1024;

/// Most bytes one output read answers.
pub const MAX_READ: usize = 1024 * 1024;

/// How long a stopped process gets after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Every process this store remembers.
pub struct Processes {
    dir: PathBuf,
    output_limit: usize,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

/// One process: its record, output, screen and (while it runs) its handle.
pub struct Entry {
    record: Mutex<Process>,
    pub output: Arc<OutputLog>,
    screen: Option<Mutex<screen::Emulator>>,
    running: Mutex<Option<Terminal>>,
    /// Flips to true once the exit is recorded.
    exited: watch::Sender<bool>,
    /// Set before a stop so the end is recorded as `stopped`.
    stopping: std::sync::atomic::AtomicBool,
    dir: PathBuf,
}

impl Processes {
    /// Loads the records under `<data_dir>/processes`; those an earlier run
    /// left running are recorded as ended with the server.
    pub fn open(data_dir: &Path, output_limit: usize) -> Processes {
        let dir = data_dir.join("processes");
        let mut entries = HashMap::new();
        let mut leftovers = Vec::new();
        if let Ok(read) = std::fs::read_dir(&dir) {
            for d in read.flatten() {
                let path = d.path();
                let Ok(text) = std::fs::read(path.join("process.json")) else { continue };
                let Ok(mut record) = serde_json::from_slice::<Process>(&text) else {
                    tracing::warn!(dir = %path.display(), "a process record cannot be read; skipped");
                    continue;
                };
                if record.status == ProcessStatus::Running {
                    leftovers.push(record.id.clone());
                    record.status = ProcessStatus::Exited;
                    record.ended = Some(ProcessEnd::ServerStopped);
                    record.ended_at = Some(crate::ids::now_rfc3339());
                }
                let output = match OutputLog::open(&path, output_limit, true) {
                    Ok(o) => Arc::new(o),
                    Err(e) => {
                        tracing::warn!(dir = %path.display(), error = %e, "a process's output cannot be read");
                        Arc::new(OutputLog::in_memory(output_limit))
                    }
                };
                let st = output.state();
                record.output = OutputRange { start: st.start, end: st.end };
                let screen = record.tty.then(|| {
                    let mut emu =
                        screen::Emulator::new(record.cols.unwrap_or(DEFAULT_COLS), record.rows.unwrap_or(DEFAULT_ROWS));
                    emu.feed(&output.read(0, usize::MAX).bytes, st.end);
                    Mutex::new(emu)
                });
                let (exited, _) = watch::channel(true);
                let entry = Entry {
                    record: Mutex::new(record.clone()),
                    output,
                    screen,
                    running: Mutex::new(None),
                    exited,
                    stopping: Default::default(),
                    dir: path,
                };
                entry.save(&record);
                entries.insert(record.id.clone(), Arc::new(entry));
            }
        }
        if !leftovers.is_empty() {
            let ids = leftovers.iter().map(String::as_str).collect();
            let killed = process::kill_tagged_by(PROCESS_ENV, &ids);
            if !killed.is_empty() {
                tracing::warn!(processes = killed.len(), "killed what an earlier run's processes left behind");
            }
        }
        Processes { dir, output_limit, entries: Mutex::new(entries) }
    }

    /// Starts a process in `cwd` (already resolved inside the workspace).
    pub fn start(self: &Arc<Self>, req: CreateProcess, cwd: PathBuf) -> Result<Process, ExecError> {
        check_size(req.cols, req.rows)?;
        if req.command.trim().is_empty() || req.command.contains('\0') {
            return Err(ExecError::Invalid("`command` must name a program".into()));
        }
        for (k, v) in &req.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(ExecError::Invalid(format!("`env` has an invalid variable {k:?}")));
            }
        }
        if req.args.iter().any(|a| a.contains('\0')) {
            return Err(ExecError::Invalid("`args` may not contain NUL bytes".into()));
        }
        let id = crate::ids::new_id("prc");
        let size = req.tty.then(|| (req.cols.unwrap_or(DEFAULT_COLS), req.rows.unwrap_or(DEFAULT_ROWS)));
        let spec = TerminalSpec {
            program: req.command.clone(),
            args: req.args.clone(),
            cwd: cwd.clone(),
            env: req.env.clone(),
            tty: size,
            tag: (PROCESS_ENV.to_string(), id.clone()),
        };
        let dir = self.dir.join(&id);
        let output = Arc::new(
            OutputLog::open(&dir, self.output_limit, false)
                .map_err(|e| ExecError::Internal(format!("cannot keep the output in {}: {e}", dir.display())))?,
        );
        let (terminal, events) = match process::spawn_terminal(&spec) {
            Ok(t) => t,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(ExecError::Spawn { command: req.command, reason: e.to_string() });
            }
        };
        let title = req.title.clone().unwrap_or_else(|| command_line(&req.command, &req.args));
        let record = Process {
            id: id.clone(),
            command: req.command,
            args: req.args,
            cwd: cwd.display().to_string(),
            tty: req.tty,
            cols: size.map(|s| s.0),
            rows: size.map(|s| s.1),
            title,
            pid: terminal.pid,
            status: ProcessStatus::Running,
            ended: None,
            exit_code: None,
            signal: None,
            session_id: req.session_id,
            started_at: crate::ids::now_rfc3339(),
            ended_at: None,
            output: OutputRange::default(),
        };
        let (exited, _) = watch::channel(false);
        let entry = Arc::new(Entry {
            record: Mutex::new(record.clone()),
            output,
            screen: size.map(|(c, r)| Mutex::new(screen::Emulator::new(c, r))),
            running: Mutex::new(Some(terminal)),
            exited,
            stopping: Default::default(),
            dir,
        });
        entry.save(&record);
        if let Ok(mut map) = self.entries.lock() {
            map.insert(id.clone(), entry.clone());
        }
        tokio::spawn(pump(entry, events));
        tracing::info!(process = %id, pid = record.pid, "process started");
        Ok(record)
    }

    pub fn get(&self, id: &str) -> Result<Arc<Entry>, ExecError> {
        self.entries.lock().ok().and_then(|m| m.get(id).cloned()).ok_or_else(|| ExecError::NotFound(id.to_string()))
    }

    /// Every process, newest first.
    pub fn list(&self) -> Vec<Process> {
        let entries: Vec<Arc<Entry>> = self.entries.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        let mut list: Vec<Process> = entries.iter().map(|e| e.record()).collect();
        list.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        list
    }

    /// The running process whose pid is `leader` (a session and group
    /// leader: every member of its group has it as its session id).
    pub fn owner_of(&self, leader: i32) -> Option<(String, Option<String>)> {
        let entries: Vec<Arc<Entry>> = self.entries.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        entries.iter().find_map(|e| {
            let r = e.record.lock().ok()?;
            (r.pid == leader && r.status == ProcessStatus::Running).then(|| (r.id.clone(), r.session_id.clone()))
        })
    }

    /// Stops every running process (the server is stopping); they are
    /// recorded as ended with the server.
    pub async fn shutdown(&self) {
        let entries: Vec<Arc<Entry>> = self.entries.lock().map(|m| m.values().cloned().collect()).unwrap_or_default();
        let stops = entries.into_iter().filter(|e| e.is_running()).map(|e| async move {
            e.stop(ProcessEnd::ServerStopped).await;
        });
        futures_util::future::join_all(stops).await;
    }
}

impl Entry {
    pub fn record(&self) -> Process {
        let mut r = match self.record.lock() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let st = self.output.state();
        r.output = OutputRange { start: st.start, end: st.end };
        r
    }

    pub fn is_running(&self) -> bool {
        !*self.exited.borrow()
    }

    fn save(&self, record: &Process) {
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = self.dir.join("process.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(record).unwrap_or_default())?;
            std::fs::rename(tmp, self.dir.join("process.json"))
        };
        if let Err(e) = write() {
            tracing::warn!(process = %record.id, error = %e, "cannot save a process's record");
        }
    }

    fn with_terminal<T>(&self, f: impl FnOnce(&Terminal) -> Result<T, ExecError>) -> Result<T, ExecError> {
        let guard = self.running.lock().map_err(|_| ExecError::Internal("process lock poisoned".into()))?;
        match guard.as_ref() {
            Some(t) if self.is_running() => f(t),
            _ => Err(ExecError::Ended(self.id())),
        }
    }

    pub fn id(&self) -> String {
        self.record.lock().map(|r| r.id.clone()).unwrap_or_default()
    }

    /// Queues bytes for its input.
    pub fn write(&self, bytes: Vec<u8>) -> Result<(), ExecError> {
        if bytes.len() > MAX_INPUT_BYTES {
            return Err(ExecError::InputTooLarge { len: bytes.len() });
        }
        self.with_terminal(|t| t.write(bytes).map_err(|_| ExecError::Ended(self.id())))
    }

    /// Decodes a `ProcessInput` (exactly one of text and base64).
    pub fn input_bytes(input: tether_protocol::ProcessInput) -> Result<Vec<u8>, ExecError> {
        match (input.text, input.base64) {
            (Some(t), None) => Ok(t.into_bytes()),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|e| ExecError::Invalid(format!("`base64` is not valid base64: {e}"))),
            _ => Err(ExecError::Invalid("give exactly one of `text` and `base64`".into())),
        }
    }

    pub fn resize(&self, cols: u16, rows: u16) -> Result<Process, ExecError> {
        check_size(Some(cols), Some(rows))?;
        if self.screen.is_none() {
            return Err(ExecError::NoTerminal(self.id()));
        }
        self.with_terminal(|t| t.resize(cols, rows).map_err(|e| ExecError::Internal(e.to_string())))?;
        if let Some(s) = &self.screen {
            if let Ok(mut s) = s.lock() {
                s.resize(cols, rows);
            }
        }
        let record = {
            let mut r = self.record.lock().map_err(|_| ExecError::Internal("process lock poisoned".into()))?;
            r.cols = Some(cols);
            r.rows = Some(rows);
            r.clone()
        };
        self.save(&record);
        Ok(self.record())
    }

    pub fn signal(&self, signal: Signal) -> Result<(), ExecError> {
        let sig = signal_number(signal);
        self.with_terminal(|t| if t.signal(sig) { Ok(()) } else { Err(ExecError::Ended(self.id())) })
    }

    /// Output from `after` (JSON form).
    pub fn output(&self, after: u64, limit: usize) -> ProcessOutput {
        let chunk = self.output.read(after, limit.min(MAX_READ));
        let st = self.output.state();
        ProcessOutput {
            start: chunk.start,
            end: chunk.end(),
            missed: chunk.missed,
            base64: base64::engine::general_purpose::STANDARD.encode(&chunk.bytes),
            text: String::from_utf8_lossy(&chunk.bytes).into_owned(),
            exited: st.ended && chunk.end() >= st.end,
        }
    }

    pub fn screen(&self) -> Result<Screen, ExecError> {
        match &self.screen {
            Some(s) => s.lock().map(|s| s.snapshot()).map_err(|_| ExecError::Internal("screen lock poisoned".into())),
            None => Err(ExecError::NoTerminal(self.id())),
        }
    }

    /// Waits until the exit is recorded.
    pub async fn wait(&self) {
        let mut rx = self.exited.subscribe();
        let _ = rx.wait_for(|e| *e).await;
    }

    /// SIGTERM to the group, SIGKILL after the grace; returns once the exit
    /// is recorded (the host reaps the whole group before reporting it).
    pub async fn stop(&self, why: ProcessEnd) -> Process {
        if self.is_running() {
            if why == ProcessEnd::Stopped || why == ProcessEnd::ServerStopped {
                if let Ok(mut r) = self.record.lock() {
                    r.ended = Some(why);
                }
                self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            let _ = self.with_terminal(|t| Ok(t.signal(libc::SIGTERM)));
            if tokio::time::timeout(STOP_GRACE, self.wait()).await.is_err() {
                let _ = self.with_terminal(|t| Ok(t.signal(libc::SIGKILL)));
                let _ = tokio::time::timeout(Duration::from_secs(2), self.wait()).await;
            }
        }
        self.record()
    }

    /// Whether this process runs under a terminal (its screen can be read, resized).
    pub fn has_terminal(&self) -> bool {
        self.screen.is_some()
    }
}

/// Carries the host's output into the log and the screen, then records the exit and ends the log.
async fn pump(entry: Arc<Entry>, mut events: mpsc::Receiver<RawEvent>) {
    let mut exit = ExitInfo { code: None, signal: None };
    while let Some(ev) = events.recv().await {
        match ev {
            RawEvent::Output(bytes) => {
                entry.output.append(&bytes);
                if let Some(s) = &entry.screen {
                    if let Ok(mut s) = s.lock() {
                        s.feed(&bytes, entry.output.state().end);
                    }
                }
            }
            RawEvent::Exited(info) => {
                exit = info;
                break;
            }
        }
    }
    // The exit is recorded before the log ends: a terminal client that sees
    // the end reads the exit code and signal from the record.
    let record = {
        let Ok(mut r) = entry.record.lock() else {
            entry.output.finish();
            return;
        };
        r.status = ProcessStatus::Exited;
        if !entry.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            r.ended = Some(ProcessEnd::Exited);
        }
        r.exit_code = exit.code;
        r.signal = exit.signal.map(signal_name);
        r.ended_at = Some(crate::ids::now_rfc3339());
        let st = entry.output.state();
        r.output = OutputRange { start: st.start, end: st.end };
        r.clone()
    };
    entry.output.finish();
    entry.save(&record);
    if let Ok(mut t) = entry.running.lock() {
        *t = None;
    }
    entry.exited.send_replace(true);
    tracing::info!(process = %record.id, code = ?record.exit_code, signal = ?record.signal, "process ended");
}

fn check_size(cols: Option<u16>, rows: Option<u16>) -> Result<(), ExecError> {
    for (name, v) in [("cols", cols), ("rows", rows)] {
        if let Some(v) = v {
            if v == 0 || v > MAX_TERMINAL_SIZE {
                return Err(ExecError::Invalid(format!("`{name}` must be between 1 and {MAX_TERMINAL_SIZE}, not {v}")));
            }
        }
    }
    Ok(())
}

fn command_line(command: &str, args: &[String]) -> String {
    let mut line = command.to_string();
    for a in args {
        line.push(' ');
        line.push_str(a);
    }
    line.chars().take(256).collect()
}

pub fn signal_number(s: Signal) -> i32 {
    match s {
        Signal::SIGHUP => libc::SIGHUP,
        Signal::SIGINT => libc::SIGINT,
        Signal::SIGQUIT => libc::SIGQUIT,
        Signal::SIGKILL => libc::SIGKILL,
        Signal::SIGUSR1 => libc::SIGUSR1,
        Signal::SIGUSR2 => libc::SIGUSR2,
        Signal::SIGTERM => libc::SIGTERM,
        Signal::SIGCONT => libc::SIGCONT,
        Signal::SIGSTOP => libc::SIGSTOP,
        Signal::SIGTSTP => libc::SIGTSTP,
        Signal::SIGWINCH => libc::SIGWINCH,
    }
}

/// `SIGTERM` for 15; `SIG<n>` for a signal without a name here.
pub fn signal_name(n: i32) -> String {
    let known = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
    ];
    known.iter().find(|(k, _)| *k == n).map(|(_, s)| s.to_string()).unwrap_or_else(|| format!("SIG{n}"))
}
