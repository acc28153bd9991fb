//! [`TestServer`]: the real `tether` binary, started on an OS-chosen port of
//! 127.0.0.1 with its own temporary data dir and workspace.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tether_sdk::Client;

use crate::procs;

/// How long a server gets to print its address.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Set this environment variable to keep a failed test's data dir and workspace.
pub const KEEP_ENV: &str = "TETHER_E2E_KEEP";
/// Set to `1`: every [`TestServer::client`] talks HTTPS to a TLS terminator
/// in front of the server (`scripts/test` runs part of the suite so).
pub const TLS_ENV: &str = "TETHER_E2E_TLS";
/// How long a server gets to exit after SIGTERM/SIGKILL before a test gives up on it.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The `tether` executable: `$TETHER_BIN` if set, else built once per test
/// process with `$CARGO build -p tether --bin tether` (`--release` when this
/// code was built without debug assertions).
pub fn tether_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("TETHER_BIN") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(path.is_file(), "TETHER_BIN={} is not a file", path.display());
            path
        }
        _ => build_tether(),
    })
}

/// The repository the tests run from. `cargo test` says so at run time; the
/// path compiled in is only a fallback, because two checkouts sharing one
/// target dir share this crate's compiled library (cargo names it by the
/// path relative to the workspace), and the server must be built from the
/// checkout under test, not from whichever compiled the library last.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir.parent().map(Path::to_path_buf).unwrap_or(manifest_dir)
}

/// The target dir this test binary was built in (`<target>/<profile>/deps/<exe>`),
/// so the server is built next to it even under `cargo test --target-dir`.
pub(crate) fn own_target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.parent()?.to_path_buf())
}

fn build_tether() -> PathBuf {
    let cargo = std::env::var_os("CARGO").filter(|c| !c.is_empty()).unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "-p",
        "tether",
        "--bin",
        "tether",
        "--message-format=json-render-diagnostics",
    ]);
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    if let Some(dir) = own_target_dir() {
        cmd.arg("--target-dir").arg(dir);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cargo:?} build: {e}"));
    assert!(
        out.status.success(),
        "building the tether binary failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut exe = None;
    for line in out.stdout.split(|&b| b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "tether" {
            if let Some(path) = msg["executable"].as_str() {
                exe = Some(PathBuf::from(path));
            }
        }
    }
    let exe = exe.unwrap_or_else(|| {
        panic!("cargo build printed no executable for the tether binary:\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(exe.is_file(), "{} does not exist", exe.display());
    exe
}

/// Command-line options of a [`TestServer`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// `--token`; the server's [`TestServer::client`] sends it.
    pub token: Option<String>,
    /// `--max-body-bytes`.
    pub max_body_bytes: Option<usize>,
    /// `--keepalive-secs`.
    pub keepalive_secs: Option<u64>,
    /// Anything else, appended as is.
    pub extra_args: Vec<String>,
    /// Environment added to the server's (and so to its agents').
    pub env: Vec<(String, String)>,
    /// The binary to run instead of [`tether_bin`] (the release binary).
    pub bin: Option<PathBuf>,
    /// `--data-dir` instead of a temporary one (the server's logs stay in the
    /// temporary one); a relative one is relative to `cwd`.
    pub data_dir: Option<PathBuf>,
    /// The directory the server is started in (the test's own by default).
    pub cwd: Option<PathBuf>,
    /// The soft limit of open files the server starts with (its hard limit
    /// stays as it is), as a shell's `ulimit -Sn` would set it.
    pub soft_open_files: Option<u64>,
    /// `--ports-poll-ms`: port detection is off unless a test asks for it,
    /// since every test's server shares the machine's ports (and would
    /// announce the others' in its sandbox log).
    pub ports_poll_ms: Option<u64>,
}

impl ServerOptions {
    pub fn with_token(token: impl Into<String>) -> Self {
        ServerOptions { token: Some(token.into()), ..Default::default() }
    }

    pub fn with_max_body_bytes(limit: usize) -> Self {
        ServerOptions { max_body_bytes: Some(limit), ..Default::default() }
    }
}

/// The server could not bind the port it was told to (another process holds it).
#[derive(Debug)]
struct PortTaken;

/// A running `tether serve`. Dropping it SIGKILLs the server (its agents die
/// with it through their parent-death signal) and removes its directories.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`, as printed by the server (changes on
    /// [`restart`](Self::restart), kept by the `*_same_port` restarts).
    pub url: String,
    /// The server's pid (changes on restart).
    pub pid: u32,
    child: Option<Child>,
    /// What the server wrote on stdout after its first line.
    stdout_rest: Arc<Mutex<Vec<u8>>>,
    options: ServerOptions,
    starts: u32,
    stderr_log: PathBuf,
    workspace_path: PathBuf,
    /// With `TETHER_E2E_TLS=1`: an HTTPS terminator in front of the server,
    /// which [`client`](Self::client) goes through.
    tls: Option<(crate::remote::TestCa, crate::remote::TlsFront)>,
    // Dropped last: the server is gone before its directories are removed.
    data_dir: TempDir,
    workspace: TempDir,
}

impl TestServer {
    /// A server with default options.
    pub async fn start() -> TestServer {
        Self::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(options: ServerOptions) -> TestServer {
        let data_dir = tempdir("tether-e2e-data-");
        let workspace = tempdir("tether-e2e-ws-");
        let workspace_path = workspace.path().canonicalize().unwrap_or_else(|_| workspace.path().to_path_buf());
        let mut server = TestServer {
            url: String::new(),
            pid: 0,
            child: None,
            stdout_rest: Arc::default(),
            options,
            starts: 0,
            stderr_log: PathBuf::new(),
            workspace_path,
            tls: None,
            data_dir,
            workspace,
        };
        server.spawn(0).await.expect("port 0 is never taken");
        if std::env::var(TLS_ENV).is_ok_and(|v| v == "1") {
            let ca = crate::remote::TestCa::new();
            let front = crate::remote::TlsFront::start(&ca, &server.url, None).await;
            server.tls = Some((ca, front));
        }
        server
    }

    /// The data dir (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        match (&self.options.data_dir, &self.options.cwd) {
            (Some(d), Some(cwd)) => cwd.join(d),
            (Some(d), None) => d.clone(),
            (None, _) => self.data_dir.path().to_path_buf(),
        }
    }

    /// The workspace root (`--workspace`), canonical as the server reports it.
    pub fn workspace(&self) -> &Path {
        &self.workspace_path
    }

    /// The file the server's stderr (its log) goes to for its current run.
    pub fn stderr_log(&self) -> &Path {
        &self.stderr_log
    }

    /// The token the server requires (`--token`), if any.
    pub fn token(&self) -> Option<&str> {
        self.options.token.as_deref()
    }

    /// An SDK client of this server (with its token, if it has one).
    /// A client of the server: over HTTPS through a TLS terminator when
    /// `TETHER_E2E_TLS=1`, so the suite (or part of it) runs over TLS.
    pub fn client(&self) -> Client {
        let client = match &self.tls {
            Some((ca, front)) => Client::new(&front.url).with_http_client(ca.http_client()),
            None => Client::new(&self.url),
        };
        match &self.options.token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        }
    }

    /// `url + path`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Whatever the server printed on stdout after its address line, so far.
    pub fn stdout_rest(&self) -> String {
        String::from_utf8_lossy(&self.stdout_rest.lock().map(|b| b.clone()).unwrap_or_default()).into_owned()
    }

    /// The port the server listens on (kept by the `*_same_port` restarts).
    pub fn port(&self) -> u16 {
        self.url.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).expect("the url ends with the port")
    }

    /// Starts the server on `port` (0: one the OS chooses) and reads its url
    /// back; `Err` only when `port` is not 0 and the server could not bind
    /// it. Panics on any other failure to start.
    async fn spawn(&mut self, port: u16) -> Result<(), PortTaken> {
        assert!(self.child.is_none(), "the server is already running");
        self.starts += 1;
        self.stderr_log = self.data_dir.path().join(format!("server-{}.stderr.log", self.starts));
        let log = std::fs::File::create(&self.stderr_log).expect("create the server log file");
        let bin = self.options.bin.clone().unwrap_or_else(|| tether_bin().to_path_buf());
        let mut cmd = Command::new(&bin);
        cmd.arg("serve").args(["--port", &port.to_string(), "--host", "127.0.0.1"]);
        cmd.arg("--data-dir").arg(self.options.data_dir.as_deref().unwrap_or(self.data_dir.path()));
        cmd.arg("--workspace").arg(self.workspace.path());
        if let Some(token) = &self.options.token {
            cmd.args(["--token", token]);
        }
        if let Some(limit) = self.options.max_body_bytes {
            cmd.args(["--max-body-bytes", &limit.to_string()]);
        }
        if let Some(secs) = self.options.keepalive_secs {
            cmd.args(["--keepalive-secs", &secs.to_string()]);
        }
        cmd.args(["--ports-poll-ms", &self.options.ports_poll_ms.unwrap_or(0).to_string()]);
        cmd.args(&self.options.extra_args);
        if let Some(cwd) = &self.options.cwd {
            cmd.current_dir(cwd);
        }
        scrub_env(&mut cmd);
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        if let Some(soft) = self.options.soft_open_files {
            set_soft_open_files(&mut cmd, soft);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        self.pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);

        // The first line on a thread (a blocking read), the rest kept for `stdout_rest`.
        let (tx, rx) = tokio::sync::oneshot::channel::<std::io::Result<String>>();
        let rest = Arc::new(Mutex::new(Vec::new()));
        self.stdout_rest = rest.clone();
        std::thread::Builder::new()
            .name(format!("tether-stdout-{}", self.pid))
            .spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let first = reader.read_line(&mut line).map(|_| line);
                let _ = tx.send(first);
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut rest) = rest.lock() {
                        rest.extend_from_slice(&buf[..n]);
                    }
                }
            })
            .expect("spawn the stdout reader");

        let line = match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(Ok(line))) => line,
            Ok(Ok(Err(e))) => panic!("reading the server's stdout failed: {e}\n{}", self.log_tail(60)),
            Ok(Err(_)) => panic!("the stdout reader stopped\n{}", self.log_tail(60)),
            Err(_) => panic!("the server printed no address within {START_TIMEOUT:?}\n{}", self.log_tail(60)),
        };
        if line.is_empty() && port != 0 {
            // Its stdout closed without an address: it is exiting; find out why.
            let status = self.wait_exit(EXIT_TIMEOUT).await;
            let log = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
            if status.is_some() && log.contains("cannot listen on") {
                return Err(PortTaken);
            }
        }
        let url = line.trim().rsplit_once(" listening on ").map(|(_, url)| url.to_string()).unwrap_or_else(|| {
            panic!("unexpected first stdout line {line:?} (exit: {:?})\n{}", self.try_wait(), self.log_tail(60))
        });
        assert!(
            line.starts_with("tether ") && url.starts_with("http://127.0.0.1:"),
            "unexpected first stdout line {line:?}"
        );
        if let Some((_, front)) = &self.tls {
            front.set_backend(&url);
        }
        self.url = url;
        self.wait_ready().await;
        Ok(())
    }

    /// The address is printed as soon as the port is bound; the server is
    /// ready when `GET /v1/health` answers 200 (503 `starting` until then).
    /// Polls every 5 ms, up to [`START_TIMEOUT`].
    async fn wait_ready(&mut self) {
        let http = tether_sdk::reqwest::Client::new();
        let health = self.endpoint("/v1/health");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(resp) = http.get(&health).send().await {
                if resp.status().as_u16() == 200 {
                    return;
                }
            }
            if let Some(status) = self.try_wait() {
                panic!("the server exited ({status}) before it was ready\n{}", self.log_tail(60));
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready within {START_TIMEOUT:?}\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The exit status, if the server has exited (reaps it).
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the server to exit; its status, or `None`
    /// if it is still running. Polls every 5 ms.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                self.child = None;
                return Some(status);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends `sig` to the server process.
    pub fn signal(&self, sig: i32) -> bool {
        self.child.is_some() && procs::signal(self.pid as i32, sig)
    }

    /// SIGKILL, then waits for the exit.
    pub async fn kill9(&mut self) -> ExitStatus {
        assert!(self.signal(libc::SIGKILL), "the server is not running");
        self.wait_exit(EXIT_TIMEOUT).await.expect("the server survived SIGKILL")
    }

    /// Waits (polling every 5 ms, up to [`START_TIMEOUT`]) until the server
    /// catches SIGTERM (`SigCgt` of `/proc/<pid>/status`). It prints its
    /// address before its signal handler is installed (that happens when its
    /// serve loop's shutdown task first runs), so a SIGTERM sent right after
    /// the address can still kill it outright.
    pub async fn wait_catches_sigterm(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let bit = 1u64 << (libc::SIGTERM - 1);
        loop {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
            let caught = status
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
                .unwrap_or(0);
            if caught & bit != 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not install its SIGTERM handler within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM, then waits (up to [`EXIT_TIMEOUT`]) for the exit: its status and how long it took.
    pub async fn sigterm(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        assert!(self.signal(libc::SIGTERM), "the server is not running");
        let status = match self.wait_exit(EXIT_TIMEOUT).await {
            Some(status) => status,
            None => panic!("the server did not exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}", self.log_tail(60)),
        };
        (status, started.elapsed())
    }

    /// Starts the server again on the same data dir and workspace (stopping
    /// it with SIGTERM first if it still runs). The port, url and pid change.
    pub async fn restart(&mut self) {
        if self.try_wait().is_none() && self.child.is_some() {
            let (status, _) = self.sigterm().await;
            assert!(status.success(), "the server exited with {status} on SIGTERM");
        }
        self.child = None;
        self.spawn(0).await.expect("port 0 is never taken");
    }

    /// As [`restart`](Self::restart), with `args` on the server's command
    /// line from now on (before any session, a quick way to change a setting).
    pub async fn restart_with_args(&mut self, args: &[&str]) {
        self.options.extra_args.extend(args.iter().map(|a| a.to_string()));
        self.restart().await;
    }

    /// SIGKILL (a crash), then starts the server again on the same data dir,
    /// workspace **and port**: [`url`](Self::url) stays the same, so a
    /// browser page keeps its origin. The pid changes.
    pub async fn kill9_and_restart_same_port(&mut self) {
        let port = self.port();
        self.kill9().await;
        self.respawn_on(port).await;
    }

    /// Like [`restart`](Self::restart) (SIGTERM first if the server still
    /// runs, which must exit cleanly) but on the same port: [`url`](Self::url)
    /// stays the same. The pid changes.
    pub async fn restart_same_port(&mut self) {
        let port = self.port();
        if self.try_wait().is_none() && self.child.is_some() {
            self.wait_catches_sigterm().await;
            let (status, _) = self.sigterm().await;
            assert!(status.success(), "the server exited with {status} on SIGTERM");
        }
        self.child = None;
        self.respawn_on(port).await;
    }

    /// Starts the stopped server on `port` again. The old server's listening
    /// socket is gone once it has exited (and tokio binds with SO_REUSEADDR,
    /// so its connections in TIME_WAIT do not matter), but another process
    /// may have taken the port for an outgoing connection in between: that
    /// is retried every 50 ms for up to [`START_TIMEOUT`].
    async fn respawn_on(&mut self, port: u16) {
        let url = self.url.clone();
        let deadline = Instant::now() + START_TIMEOUT;
        while self.spawn(port).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "port {port} stayed taken for {START_TIMEOUT:?} after the server stopped\n{}",
                self.log_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(self.url, url, "the server restarted on port {port} but printed another url");
    }

    /// The server's resident memory (`VmRSS` of `/proc/<pid>/status`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS for the server (pid {})", self.pid))
    }

    /// The server's soft and hard limits of open files (`/proc/<pid>/limits`).
    pub fn open_files_limits(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid)).unwrap_or_default();
        let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("a Max open files line");
        let nums: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
        (nums[0], nums[1])
    }

    /// The last `n` lines of the current run's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr_log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(n)..].join("\n");
        format!("--- tail of {} ---\n{tail}\n--- end of log ---", self.stderr_log.display())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("server {} (pid {}):\n{}", self.url, self.pid, self.log_tail(80));
            if std::env::var_os(KEEP_ENV).is_some() {
                self.data_dir.disable_cleanup(true);
                self.workspace.disable_cleanup(true);
                eprintln!("kept {} and {}", self.data_dir.path().display(), self.workspace.path().display());
            }
        }
    }
}

/// The child starts with a soft limit of `soft` open files (the hard limit unchanged).
#[allow(unsafe_code)]
fn set_soft_open_files(cmd: &mut Command, soft: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure makes only getrlimit and
    // setrlimit calls (async-signal-safe) on plain data, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            lim.rlim_cur = soft.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn tempdir(prefix: &str) -> TempDir {
    tempfile::Builder::new().prefix(prefix).tempdir().expect("create a temporary directory")
}

/// The `TETHER_*` settings of the caller's environment that must not leak
/// into a server: all but the log filter.
fn leaking_vars() -> impl Iterator<Item = String> {
    std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|key| (key.starts_with("TETHER_") && key != "TETHER_LOG") || key.starts_with("OTEL_"))
}

/// No `TETHER_*` or `OTEL_*` setting of the caller's environment (a token, an agent path, a collector
/// override, a data dir) leaks into the server, except the log filter.
pub fn scrub_env(cmd: &mut Command) {
    for key in leaking_vars() {
        cmd.env_remove(key);
    }
}

/// [`scrub_env`] for a tokio command.
pub fn scrub_env_tokio(cmd: &mut tokio::process::Command) {
    for key in leaking_vars() {
        cmd.env_remove(key);
    }
}
