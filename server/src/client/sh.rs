//! `tether sh`: a shell (or any command) run as a process in the sandbox,
//! on this terminal. Keys go to it as typed (the local terminal in raw
//! mode), its output comes back as it is written, a resize of the local
//! window resizes its terminal. The detach keys leave it running; `tether
//! sh --attach prc_…` comes back to it and shows what it wrote meanwhile.
//!
//! With stdin not a terminal (a pipe, a test), the local terminal settings
//! are not touched and no size is sent; input is forwarded until it ends,
//! the output shown until the process exits. This module must not retry a
//! lost connection by itself: it says how to reattach.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};

use tether_sdk::{Client, CreateProcess, Error as SdkError, Process, TerminalFrame, TerminalQuery};
use tokio::sync::mpsc;

use super::failure::Target;
use super::{colour_allowed, exit, report, CommandError, Style};
use crate::process::{terminal_size, RawTerminal};

/// The first of the two detach keys: Ctrl-\ (which, in raw mode, is a byte
/// like any other rather than SIGQUIT).
const ESCAPE: u8 = 0x1c;

#[derive(clap::Args)]
pub struct ShArgs {
    /// Working directory of the new process (relative to the workspace root, or absolute inside it).
    #[arg(long, conflicts_with = "attach")]
    cwd: Option<String>,
    /// A name for the new process [default: the command line].
    #[arg(long, conflicts_with = "attach")]
    title: Option<String>,
    /// Reattach to this process (`prc_…`, see `tether ps`) instead of starting one: the output it
    /// kept is shown first, then live.
    #[arg(long, value_name = "PROCESS")]
    attach: Option<String>,
    /// With --attach: show the output from this byte offset on [default: the oldest byte kept].
    #[arg(long, requires = "attach", value_name = "OFFSET")]
    after: Option<u64>,
    /// The command and its arguments [default: $SHELL, or /bin/bash when the server cannot start it].
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, conflicts_with = "attach", value_name = "COMMAND")]
    command: Vec<String>,
}

/// How an attached terminal ended.
enum End {
    Exited {
        code: Option<i32>,
        signal: Option<String>,
    },
    Detached,
    /// The connection went before the process did; reattach after this offset.
    Lost {
        why: SdkError,
        offset: u64,
    },
}

pub async fn sh(client: &Client, target: &Target, args: ShArgs) -> u8 {
    match shell(client, args).await {
        Ok(code) => code,
        Err(e) => report(&e, target),
    }
}

async fn shell(client: &Client, args: ShArgs) -> Result<u8, CommandError> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    let size = if tty { terminal_size(&stdin) } else { None };
    let (process, after) = match &args.attach {
        Some(id) => (client.get_process(id).await?, args.after),
        None => (start(client, &args, size).await?, None),
    };
    let query = TerminalQuery { after, read_only: None };
    let mut terminal = client.attach_terminal(&process.id, &query).await?;
    // A process started elsewhere (or at another size) takes this window's size.
    if let (Some((cols, rows)), true, Some(_)) = (size, process.tty, &args.attach) {
        if process.cols != Some(cols) || process.rows != Some(rows) {
            terminal.resize(cols, rows).await?;
        }
    }
    let raw = if tty {
        Some(RawTerminal::enter(&stdin).map_err(|e| CommandError::Usage(format!("cannot set up this terminal: {e}")))?)
    } else {
        None
    };
    let end = pump(&mut terminal, tty).await;
    drop(raw);
    let style = Style { color: std::io::stderr().is_terminal() && colour_allowed() };
    let mut err = std::io::stderr();
    let id = &process.id;
    Ok(match end? {
        End::Exited { code, signal } => {
            let how = match (&code, &signal) {
                (_, Some(signal)) => format!("was ended by {signal}"),
                (Some(code), None) => format!("exited with code {code}"),
                (None, None) => "ended".to_owned(),
            };
            writeln!(err, "{}", style.dim(&format!("[{id} {how}]")))?;
            exit_code(code, signal.as_deref())
        }
        End::Detached => {
            writeln!(err, "{}", style.dim(&format!("[detached from {id}, which goes on]")))?;
            writeln!(err, "reattach with: tether sh --attach {id}")?;
            exit::OK
        }
        End::Lost { why, offset } => {
            writeln!(err, "tether: lost the terminal of {id} ({why}); it goes on.")?;
            writeln!(err, "reattach with: tether sh --attach {id} --after {offset}")?;
            exit::UNREACHABLE
        }
    })
}

/// Starts the process: the command given, or the user's shell (`/bin/bash`
/// when the server cannot start that one: it may not exist in the sandbox).
async fn start(client: &Client, args: &ShArgs, size: Option<(u16, u16)>) -> Result<Process, CommandError> {
    let mut env = BTreeMap::new();
    if let Some(term) = std::env::var("TERM").ok().filter(|t| !t.is_empty()) {
        env.insert("TERM".to_owned(), term);
    }
    let mut body = CreateProcess {
        command: String::new(),
        args: Vec::new(),
        cwd: args.cwd.clone(),
        env,
        tty: true,
        cols: size.map(|s| s.0),
        rows: size.map(|s| s.1),
        title: args.title.clone(),
        session_id: None,
    };
    if let Some((command, rest)) = args.command.split_first() {
        body.command = command.clone();
        body.args = rest.to_vec();
        return Ok(client.create_process(&body).await?);
    }
    body.command = std::env::var("SHELL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| FALLBACK_SHELL.into());
    match client.create_process(&body).await {
        // A program that cannot be started is a 400 saying why.
        Err(e) if e.status() == Some(400) && body.command != FALLBACK_SHELL => {
            body.command = FALLBACK_SHELL.into();
            Ok(client.create_process(&body).await?)
        }
        other => Ok(other?),
    }
}

const FALLBACK_SHELL: &str = "/bin/bash";

/// Carries bytes both ways until the process exits, the person detaches or
/// the connection is lost.
async fn pump(terminal: &mut tether_sdk::Terminal, tty: bool) -> Result<End, CommandError> {
    let mut input = spawn_stdin_reader();
    let mut stdin_open = true;
    let mut keys = DetachKeys::default();
    let mut winch = if tty {
        Some(
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                .map_err(|e| CommandError::Usage(format!("cannot watch the window size: {e}")))?,
        )
    } else {
        None
    };
    // Killed or hung up: leave as on a detach, so the local terminal gets its settings back.
    let signal = |kind| {
        tokio::signal::unix::signal(kind).map_err(|e| CommandError::Usage(format!("cannot handle signals: {e}")))
    };
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut out = std::io::stdout();
    let mut exited = None;
    // In raw mode a line needs its own carriage return.
    let note = |text: &str| {
        let _ = write!(std::io::stderr(), "\r\n[{text}]\r\n");
    };
    loop {
        tokio::select! {
            frame = terminal.next_frame() => match frame {
                Some(Ok(TerminalFrame::Output { bytes, .. })) => {
                    out.write_all(&bytes)?;
                    out.flush()?;
                }
                Some(Ok(TerminalFrame::Attached { missed, .. })) => {
                    if missed > 0 {
                        note(&format!("{missed} bytes of older output are no longer kept"));
                    }
                }
                Some(Ok(TerminalFrame::Missed { from, to })) => {
                    note(&format!("{} bytes of output skipped: this terminal fell behind", to - from));
                }
                Some(Ok(TerminalFrame::Exit { exit_code, signal, .. })) => {
                    exited = Some(End::Exited { code: exit_code, signal });
                }
                // A control message newer than this client.
                Some(Err(SdkError::Decode(_))) => {}
                Some(Err(why)) => return Ok(End::Lost { why, offset: terminal.offset() }),
                None => {
                    return Ok(exited.unwrap_or_else(|| End::Lost {
                        why: SdkError::WebSocket("the server closed the terminal".into()),
                        offset: terminal.offset(),
                    }))
                }
            },
            bytes = input.recv(), if stdin_open && exited.is_none() => match bytes {
                Some(bytes) => {
                    let (forward, detach) = keys.feed(&bytes);
                    if !forward.is_empty() {
                        if let Err(why) = terminal.send_input(&forward).await {
                            return Ok(End::Lost { why, offset: terminal.offset() });
                        }
                    }
                    if detach {
                        let _ = terminal.close().await;
                        return Ok(End::Detached);
                    }
                }
                None => stdin_open = false,
            },
            _ = term.recv() => return Ok(End::Detached),
            _ = hangup.recv() => return Ok(End::Detached),
            Some(()) = async { winch.as_mut()?.recv().await }, if winch.is_some() => {
                if let Some((cols, rows)) = terminal_size(&std::io::stdin()) {
                    if let Err(why) = terminal.resize(cols, rows).await {
                        return Ok(End::Lost { why, offset: terminal.offset() });
                    }
                }
            }
        }
    }
}

/// Reads stdin on a thread of its own (the runtime is not held up by a
/// blocked read), chunk by chunk as the keys come; the channel closes at
/// the end of input.
fn spawn_stdin_reader() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    rx
}

/// Watches the typed bytes for the detach keys: Ctrl-\ then `d`. Ctrl-\
/// twice sends one Ctrl-\; Ctrl-\ then any other key sends both.
#[derive(Default)]
struct DetachKeys {
    escaped: bool,
}

impl DetachKeys {
    /// The bytes to forward, and whether the detach keys were typed (what
    /// follows them is dropped).
    fn feed(&mut self, bytes: &[u8]) -> (Vec<u8>, bool) {
        let mut forward = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if std::mem::take(&mut self.escaped) {
                match b {
                    b'd' => return (forward, true),
                    ESCAPE => forward.push(ESCAPE),
                    other => forward.extend_from_slice(&[ESCAPE, other]),
                }
            } else if b == ESCAPE {
                self.escaped = true;
            } else {
                forward.push(b);
            }
        }
        (forward, false)
    }
}

/// The client's exit code for the process's end: its own code, or 128 +
/// the number of the signal that ended it (as a shell says).
fn exit_code(code: Option<i32>, signal: Option<&str>) -> u8 {
    if let Some(code) = code {
        return u8::try_from(code.clamp(0, 255)).unwrap_or(1);
    }
    let number = match signal {
        Some("SIGHUP") => libc::SIGHUP,
        Some("SIGINT") => libc::SIGINT,
        Some("SIGQUIT") => libc::SIGQUIT,
        Some("SIGABRT") => libc::SIGABRT,
        Some("SIGKILL") => libc::SIGKILL,
        Some("SIGSEGV") => libc::SIGSEGV,
        Some("SIGPIPE") => libc::SIGPIPE,
        Some("SIGTERM") => libc::SIGTERM,
        Some("SIGUSR1") => libc::SIGUSR1,
        Some("SIGUSR2") => libc::SIGUSR2,
        _ => return 1,
    };
    u8::try_from(128 + number).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_are_ctrl_backslash_then_d() {
        let mut keys = DetachKeys::default();
        assert_eq!(keys.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(keys.feed(b"ab\x1cd\x1crest"), (b"ab".to_vec(), true));
        // Split across reads.
        let mut keys = DetachKeys::default();
        assert_eq!(keys.feed(b"x\x1c"), (b"x".to_vec(), false));
        assert_eq!(keys.feed(b"d"), (Vec::new(), true));
        // Twice sends one; anything else sends both.
        let mut keys = DetachKeys::default();
        assert_eq!(keys.feed(b"\x1c\x1c\x1cq"), (b"\x1c\x1cq".to_vec(), false));
        assert_eq!(keys.feed(b"D"), (b"D".to_vec(), false));
    }

    #[test]
    fn the_exit_code_is_the_process_s() {
        assert_eq!(exit_code(Some(0), None), 0);
        assert_eq!(exit_code(Some(3), None), 3);
        assert_eq!(exit_code(Some(300), None), 255);
        assert_eq!(exit_code(None, Some("SIGTERM")), 143);
        assert_eq!(exit_code(None, Some("SIGKILL")), 137);
        assert_eq!(exit_code(None, Some("SIGWHAT")), 1);
        assert_eq!(exit_code(None, None), 1);
    }
}
