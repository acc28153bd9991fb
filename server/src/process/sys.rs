//! Thin unsafe wrappers over the libc calls the
//! PTY host needs (openpty, termios raw mode, session and controlling
//! terminal, parent-death signal, process-group signals, poll, winsize),
//! the clocks pause detection reads (`crate::pause`), and the process limits
//! the server sets at start (open files, malloc arenas) and after a burst of
//! clients (`malloc_trim`).
//! Each block is a direct FFI call whose arguments are valid for its duration.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Opens a PTY pair with the given size, the slave in raw mode (no echo, no
/// line discipline, no CR/LF rewriting). Returns (master, slave).
pub fn open_raw_pty(cols: u16, rows: u16) -> io::Result<(OwnedFd, OwnedFd)> {
    open_pty(cols, rows, true)
}

/// Opens a PTY pair with the given size; `raw` as [`open_raw_pty`], else the
/// line discipline a terminal has by default (echo, canonical input, signals
/// from ^C), as a shell expects.
pub fn open_pty(cols: u16, rows: u16, raw: bool) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut master: libc::c_int = -1;
    let mut slave: libc::c_int = -1;
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: out-pointers are valid c_ints; name and termios are null (allowed); ws is a valid winsize.
    let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded, so both are fresh fds we own.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    set_cloexec(master.as_raw_fd())?;
    set_cloexec(slave.as_raw_fd())?;
    if !raw {
        return Ok((master, slave));
    }
    // SAFETY: termios is plain data; tcgetattr fills it from a valid fd.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer.
    if unsafe { libc::tcgetattr(slave.as_raw_fd(), &mut tio) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: tio was initialised by tcgetattr.
    unsafe { libc::cfmakeraw(&mut tio) };
    // SAFETY: valid fd and termios.
    if unsafe { libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &tio) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((master, slave))
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a valid fd with integer arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Runs in the forked child before exec: new session (so its own process
/// group), the PTY on fd 1 as controlling terminal, and SIGKILL if the server
/// dies. Only async-signal-safe calls.
pub fn child_setup(expected_parent: libc::pid_t, controlling_tty: bool) -> io::Result<()> {
    // SAFETY: setsid, ioctl, prctl and getppid are async-signal-safe and take plain integers.
    unsafe {
        if libc::setsid() < 0 {
            return Err(io::Error::last_os_error());
        }
        if controlling_tty && libc::ioctl(1, libc::TIOCSCTTY as _, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
        // The server may have died between fork and prctl.
        if libc::getppid() != expected_parent {
            libc::_exit(1);
        }
    }
    Ok(())
}

pub fn current_pid() -> libc::pid_t {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// Sends `sig` to every process of the group `pgid`. Returns false if no process is left.
pub fn signal_group(pgid: i32, sig: i32) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill with a negative pid signals a process group; plain integers.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Sends `sig` to one process.
pub fn signal_pid(pid: i32, sig: i32) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: plain integers.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Waits up to `timeout_ms` for `fd` to be readable. Ok(true) when readable (or hung up).
pub fn poll_readable(fd: &impl AsRawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted { Ok(false) } else { Err(e) };
    }
    Ok(rc > 0)
}

/// Sets the terminal size of a PTY (through its master).
pub fn set_winsize(fd: &impl AsRawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: valid fd and winsize pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Spawns `cmd` in a new session whose controlling terminal is its stdout
/// (the PTY slave), with SIGKILL as parent-death signal. Must be called from
/// a thread that lives as long as the server (the death signal follows the
/// spawning thread). Without `controlling_tty` (output on pipes) the new
/// session has no terminal.
pub fn spawn_in_session(cmd: &mut std::process::Command, controlling_tty: bool) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let parent = current_pid();
    // Prepared before the fork: the child may not allocate.
    let user = super::user::agent_user().map(|u| (u.uid, u.gid, u.groups.clone()));
    // SAFETY: become_user and child_setup only make async-signal-safe calls and allocate nothing.
    // The user is changed first: a change of credentials clears the parent-death signal.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid, groups)) = &user {
                super::user::become_user(*uid, *gid, groups)?;
            }
            child_setup(parent, controlling_tty)
        });
    }
    cmd.spawn()
}

/// Caps glibc's malloc arenas: with one arena per thread, memory freed by the
/// many short-lived blocking threads is kept per arena and RSS creeps up.
/// `MALLOC_ARENA_MAX` in the environment, read by glibc itself, wins.
#[cfg(target_env = "gnu")]
pub fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt takes plain integers; called once at startup before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

#[cfg(not(target_env = "gnu"))]
pub fn limit_malloc_arenas() {}

/// Gives the pages malloc holds free back to the system (glibc keeps freed
/// memory in its arenas; after a burst of clients that is most of the heap).
/// Returns whether any memory was released.
#[cfg(target_env = "gnu")]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes a plain integer (the pad to keep) and is thread-safe.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    false
}

/// Raises the soft limit on open files to the hard one (clients, agents'
/// PTYs and pipes, the store all need descriptors; a soft limit of 256 or
/// 1024 is far below what the hard limit allows). Returns the soft limit
/// before and after.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid resource and a valid out-pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur == lim.rlim_max {
        return Ok((before, before));
    }
    let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
    // SAFETY: a valid resource and a pointer to an initialised rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((before, lim.rlim_max))
}

/// `CLOCK_MONOTONIC` and `CLOCK_BOOTTIME`, read one after the other: the
/// boot-time clock also counts the time the machine was suspended, the
/// monotonic one does not. `None` where there is no `CLOCK_BOOTTIME`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn monotonic_and_boot_clocks() -> Option<(std::time::Duration, std::time::Duration)> {
    fn read(clock: libc::clockid_t) -> Option<std::time::Duration> {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid clock id and a valid out-pointer to a timespec.
        if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
            return None;
        }
        Some(std::time::Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
    }
    Some((read(libc::CLOCK_MONOTONIC)?, read(libc::CLOCK_BOOTTIME)?))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn monotonic_and_boot_clocks() -> Option<(std::time::Duration, std::time::Duration)> {
    None
}

/// The size (columns, rows) of the terminal `fd` is on; `None` when it is
/// not a terminal or reports no size.
pub fn terminal_size(fd: &impl AsRawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: valid fd and a valid out-pointer to a winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// A terminal put in raw mode (no echo, no line editing, no signals from
/// keys, no output processing) for as long as this lives: dropping it puts
/// back the settings it found.
pub struct RawTerminal {
    fd: RawFd,
    saved: libc::termios,
}

impl RawTerminal {
    /// Puts the terminal `fd` is on in raw mode. `fd` must stay open while
    /// the guard lives (stdin, for the terminal client).
    pub fn enter(fd: &impl AsRawFd) -> io::Result<RawTerminal> {
        let fd = fd.as_raw_fd();
        // SAFETY: termios is plain data; tcgetattr fills it from a valid fd.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and pointer.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: raw was initialised by tcgetattr.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: valid fd and termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(RawTerminal { fd, saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        // SAFETY: the fd the settings were read from, and the termios tcgetattr filled.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}
