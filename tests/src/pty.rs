//! A command on a pseudo-terminal, driven like a person at a keyboard: the
//! terminal client's tests type answers and Ctrl-C into it and read what it
//! shows.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// What the terminal has shown so far, and a wake-up for each new read.
struct Screen {
    bytes: Mutex<Vec<u8>>,
    changed: Notify,
    closed: Mutex<bool>,
}

/// A child process whose stdin, stdout and stderr are one PTY, with the PTY
/// as its controlling terminal (so Ctrl-C typed into it is a SIGINT).
pub struct Pty {
    child: tokio::process::Child,
    master: std::fs::File,
    screen: Arc<Screen>,
}

impl Pty {
    /// Starts `cmd` (its stdio is replaced) on a fresh 120x40 terminal.
    pub fn spawn(mut cmd: tokio::process::Command) -> Pty {
        let (master, slave) = open_pty();
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup the pty")))
            .stdout(Stdio::from(slave.try_clone().expect("dup the pty")))
            .stderr(Stdio::from(slave))
            .kill_on_drop(true);
        make_controlling_terminal(&mut cmd);
        let child = cmd.spawn().expect("spawn on the pty");
        let master = std::fs::File::from(master);
        let screen =
            Arc::new(Screen { bytes: Mutex::new(Vec::new()), changed: Notify::new(), closed: Mutex::new(false) });
        let mut reader = master.try_clone().expect("dup the pty master");
        let shared = screen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    // EIO once the child side is closed.
                    Ok(0) | Err(_) => break,
                    Ok(n) => shared.bytes.lock().unwrap().extend_from_slice(&buf[..n]),
                }
                shared.changed.notify_waiters();
            }
            *shared.closed.lock().unwrap() = true;
            shared.changed.notify_waiters();
        });
        Pty { child, master, screen }
    }

    /// Everything shown so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.bytes.lock().unwrap()).into_owned()
    }

    /// Waits until `needle` has been shown (after byte offset `from`);
    /// returns the offset just past it. Panics with the screen at the deadline.
    pub async fn wait_for_from(&self, from: usize, needle: &str, timeout: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.screen.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let bytes = self.screen.bytes.lock().unwrap();
                let hay = &bytes[from.min(bytes.len())..];
                if let Some(at) = hay.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    return from + at + needle.len();
                }
                if *self.screen.closed.lock().unwrap() {
                    drop(bytes);
                    panic!("the terminal closed before showing {needle:?}; it showed:\n{}", self.text());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{needle:?} was not shown within {timeout:?}; the terminal showed:\n{}", self.text());
            }
        }
    }

    /// [`wait_for_from`](Self::wait_for_from) from the start.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) -> usize {
        self.wait_for_from(0, needle, timeout).await
    }

    /// Types `bytes` (a line ends with `\r`, Ctrl-C is `\x03`).
    pub fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to the pty");
        self.master.flush().expect("flush the pty");
    }

    /// Waits for the child to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for the child"),
            Err(_) => panic!("the command did not exit within {timeout:?}; the terminal showed:\n{}", self.text()),
        }
    }
}

#[allow(unsafe_code)]
fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize { ws_row: 40, ws_col: 120, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: the out-pointers are valid; the name pointer may be null.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty succeeded, so both are fresh descriptors owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// In the child: a new session whose controlling terminal is the PTY.
#[allow(unsafe_code)]
fn make_controlling_terminal(cmd: &mut tokio::process::Command) {
    // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // stdin is the slave by now (dup2 happens before pre_exec runs).
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
