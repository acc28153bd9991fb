//! [`Browser`]: a real, headless Chromium (Debian's `chromium`) driven through
//! WebDriver (`chromedriver`, with the fantoccini client), for the end-to-end
//! tests of the inspector UI. Install both with `scripts/install-browser`.
//!
//! - One `chromedriver` per test process, started on first use with
//!   `--port=0`: it binds a port the OS chooses and prints it ("ChromeDriver
//!   was started successfully on port N."), which is read back, so there is
//!   no pick-a-port race. It listens on loopback only, its default; giving
//!   `--allowed-ips` would make it listen on every interface, and
//!   `--allowed-origins` only matters to requests that carry an `Origin`
//!   (web pages, which should be refused), so neither is given. It dies with
//!   the test process: a parent-death signal (SIGKILL), set from a thread
//!   that lives as long as it does (the signal follows the *thread* that
//!   forked), and an `atexit` hook that kills it.
//! - Chromium outlives a killed chromedriver, so chromedriver starts it
//!   through a two-line wrapper, `setpriv --pdeathsig KILL`, and the whole
//!   browser goes when chromedriver goes.
//! - At most [`MAX_BROWSERS`] browsers are open at once in a test process
//!   (the machine has two cores); [`Browser::open`] waits for a free one.
//! - Every wait has a deadline ([`UI_TIMEOUT`], or [`Browser::set_timeout`])
//!   and polls every [`POLL_INTERVAL`]; one that times out panics with what
//!   it waited for, what it last saw, the page's url and the start of its
//!   text, and saves a screenshot into [`artifacts_dir`]. No sleep is ever a
//!   synchronization.
//! - chromedriver and so Chromium run with `HOME` in a temporary directory
//!   (removed at exit): Chromium's crash handler (crashpad) keeps its
//!   database in `~/.config/chromium` whatever the flags say, and NSS its
//!   own in `~/.pki`. `--disable-crashpad-for-testing` is no way out: with
//!   it, navigation silently does nothing (the page stays
//!   `chrome://new-tab-page/`) or never completes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::{OnceCell, Semaphore, SemaphorePermit};

/// How long every wait of a [`Browser`] lasts before it panics (see [`Browser::set_timeout`]).
pub const UI_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a wait looks again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many browsers a test process runs at once.
pub const MAX_BROWSERS: usize = 2;
/// The Chromium executable, if not `/usr/bin/chromium`.
pub const CHROMIUM_ENV: &str = "TETHER_CHROMIUM";
/// The chromedriver executable, if not `/usr/bin/chromedriver`.
pub const CHROMEDRIVER_ENV: &str = "TETHER_CHROMEDRIVER";
/// Where screenshots (and `chromedriver.log`) go, if not `<target>/ui-artifacts`.
pub const ARTIFACTS_ENV: &str = "TETHER_UI_ARTIFACTS";

/// How long chromedriver gets to print its port.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long Chromium gets to start (a new session).
const SESSION_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Browser::open`] waits for one of the [`MAX_BROWSERS`] slots.
const SLOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The flags every Chromium gets (besides `--user-data-dir`).
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    // Root in a container: Chromium's sandbox cannot start.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    // Unquantized `performance.memory` (js_heap_bytes) and `gc()` (Browser::gc).
    "--enable-precise-memory-info",
    "--js-flags=--expose-gc",
    "--window-size=1280,900",
];

/// `isVisible(e)`: what a user would call displayed (rendered, not
/// `visibility: hidden`, not transparent, with a box).
const JS_IS_VISIBLE: &str = "const isVisible = (e) => e.getClientRects().length > 0 && e.checkVisibility({ \
     opacityProperty: true, visibilityProperty: true, checkOpacity: true, checkVisibilityCSS: true });";

/// What keeps the page from fitting the viewport's width (see
/// [`Browser::assert_fits_viewport`]): one line per offender, none if it fits.
const JS_FIT_PROBLEMS: &str = r#"
const isVisible = (e) => e.getClientRects().length > 0 && e.checkVisibility({
  opacityProperty: true, visibilityProperty: true, checkOpacity: true, checkVisibilityCSS: true });
const vw = window.innerWidth;
const name = (e) => {
  let n = e.tagName.toLowerCase() + (e.id ? `#${e.id}` : "");
  if (typeof e.className === "string" && e.className.trim()) n += "." + e.className.trim().split(/\s+/).join(".");
  const text = (e.innerText || e.value || e.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ").slice(0, 40);
  return text ? `${n} "${text}"` : n;
};
const box = (r) => `[${Math.round(r.left)}, ${Math.round(r.right)}]`;
const problems = [];
const doc = document.documentElement;
if (doc.scrollWidth > vw) problems.push(`the document scrolls sideways: scrollWidth ${doc.scrollWidth} > innerWidth ${vw}`);
const main = document.querySelector("main");
const pageLevel = new Set([doc, document.body, main]);
if (main && main.scrollWidth > main.clientWidth + 1) problems.push(`<main> scrolls sideways: scrollWidth ${main.scrollWidth} > clientWidth ${main.clientWidth}`);
const outside = (r) => r.left < -0.5 || r.right > vw + 0.5;
const scrollers = new Set();
for (const e of document.querySelectorAll("button, a[href], input:not([type=hidden]), select, textarea, summary")) {
  if (!isVisible(e)) continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  if (!outside(r)) continue;
  let scroller = null;
  for (let a = e.parentElement; a && !pageLevel.has(a); a = a.parentElement) {
    const o = getComputedStyle(a).overflowX;
    if (o === "auto" || o === "scroll") { scroller = a; break; }
  }
  if (scroller) { scrollers.add(scroller); continue; }
  problems.push(`${name(e)} at ${box(r)} is outside the viewport [0, ${vw}]`);
}
for (const s of scrollers) {
  const r = s.getBoundingClientRect();
  if (outside(r)) problems.push(`the scrolling box ${name(s)} at ${box(r)} is outside the viewport [0, ${vw}]`);
}
return problems;
"#;

/// The directory screenshots and `chromedriver.log` go to: `$TETHER_UI_ARTIFACTS`
/// if set, else `ui-artifacts` in the target dir this test binary was built in
/// (`$CARGO_TARGET_DIR` or the workspace's `target`). Created on first use, and
/// printed to stderr once per test process.
pub fn artifacts_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = match std::env::var_os(ARTIFACTS_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => crate::server::own_target_dir()
                .or_else(|| std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()).map(PathBuf::from))
                .unwrap_or_else(|| crate::server::workspace_root().join("target"))
                .join("ui-artifacts"),
        };
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let dir = dir.canonicalize().unwrap_or(dir);
        eprintln!("tether-e2e: UI test artifacts (screenshots, chromedriver.log) in {}", dir.display());
        dir
    })
}

fn executable(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).filter(|p| !p.is_empty()).map(PathBuf::from).unwrap_or_else(|| default.into());
    assert!(
        path.is_file(),
        "{} does not exist: run scripts/install-browser (Debian packages chromium, chromium-driver) or set {env}",
        path.display()
    );
    path
}

/// The test process's chromedriver.
struct Driver {
    /// `http://127.0.0.1:PORT`.
    url: String,
    addr: SocketAddr,
    /// [`DRIVER_DIR`]; the browsers' profiles go in it.
    dir: PathBuf,
    /// What chromedriver starts as Chromium: the parent-death wrapper, or Chromium itself.
    chromium: PathBuf,
}

/// chromedriver's pid, for the `atexit` hook (0: none).
static DRIVER_PID: AtomicI32 = AtomicI32::new(0);
/// Set by the `atexit` hook: chromedriver's end is no news.
static EXITING: AtomicBool = AtomicBool::new(false);
/// chromedriver's directory (the Chromium wrapper, its `HOME`, the
/// browsers' profiles), removed by the `atexit` hook.
static DRIVER_DIR: OnceLock<PathBuf> = OnceLock::new();
/// `<tmp>/tether-chromedriver-<test pid>-XXXXXX`: [`DRIVER_DIR`].
const DIR_PREFIX: &str = "tether-chromedriver-";

/// Removes the chromedriver directories of test processes that are gone
/// (killed before their `atexit` hook could run).
fn remove_stale_dirs() {
    let tmp = std::env::temp_dir();
    let Ok(entries) = std::fs::read_dir(&tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)).and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        if pid.0.parse::<u32>().is_ok() && !Path::new("/proc").join(pid.0).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

async fn driver() -> &'static Driver {
    static DRIVER: OnceCell<Driver> = OnceCell::const_new();
    DRIVER.get_or_init(start_driver).await
}

async fn start_driver() -> Driver {
    let chromedriver = executable(CHROMEDRIVER_ENV, "/usr/bin/chromedriver");
    let chromium = executable(CHROMIUM_ENV, "/usr/bin/chromium");
    remove_stale_dirs();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{DIR_PREFIX}{}-", std::process::id()))
        .tempdir()
        .expect("create a temporary dir")
        .keep();
    let _ = DRIVER_DIR.set(dir.clone());
    let home = dir.join("home");
    std::fs::create_dir(&home).expect("create chromedriver's HOME");
    let chromium = chromium_launcher(&dir, chromium);
    let log_path = artifacts_dir().join("chromedriver.log");
    let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    let mut cmd = Command::new(&chromedriver);
    cmd.arg("--port=0").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log));
    crate::server::scrub_env(&mut cmd);
    cmd.env("HOME", &home).env_remove("XDG_CONFIG_HOME").env_remove("XDG_CACHE_HOME").env_remove("XDG_DATA_HOME");
    die_with_parent(&mut cmd);

    // Spawned from, and waited for by, a thread of its own: the parent-death
    // signal fires when the forking thread ends, and a test's thread ends with the test.
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<u16, String>>();
    std::thread::Builder::new()
        .name("chromedriver".into())
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot start {}: {e}", chromedriver.display())));
                    return;
                }
            };
            DRIVER_PID.store(child.id() as i32, Ordering::SeqCst);
            register_atexit();
            let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
            let mut printed = String::new();
            let mut tx = Some(tx);
            let mut line = String::new();
            while tx.is_some() && matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                let port = line.trim().strip_prefix("ChromeDriver was started successfully on port ");
                if let Some(port) = port.and_then(|p| p.trim_end_matches('.').parse::<u16>().ok()) {
                    let _ = tx.take().map(|tx| tx.send(Ok(port)));
                }
                printed.push_str(&line);
                line.clear();
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(format!("chromedriver printed no port:\n{printed}")));
            }
            // Drain stdout until chromedriver exits.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
            DRIVER_PID.store(0, Ordering::SeqCst);
            let status = child.wait();
            if !EXITING.load(Ordering::SeqCst) {
                eprintln!("tether-e2e: chromedriver exited ({status:?}); see {}", log_path.display());
            }
        })
        .expect("spawn the chromedriver thread");

    let port = match tokio::time::timeout(DRIVER_START_TIMEOUT, rx).await {
        Ok(Ok(Ok(port))) => port,
        Ok(Ok(Err(e))) => panic!("{e}"),
        Ok(Err(_)) => panic!("the chromedriver thread ended"),
        Err(_) => panic!("chromedriver printed no port within {DRIVER_START_TIMEOUT:?}"),
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    Driver { url: format!("http://{addr}"), addr, dir, chromium }
}

/// The executable chromedriver starts as Chromium: a wrapper in `dir` that
/// gives `chromium` a parent-death signal (`chromium` itself where
/// `setpriv`, from util-linux, is missing).
fn chromium_launcher(dir: &Path, chromium: PathBuf) -> PathBuf {
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"].into_iter().map(Path::new).find(|p| p.is_file()) else {
        eprintln!("tether-e2e: no setpriv; Chromium will outlive a killed test process");
        return chromium;
    };
    let wrapper = dir.join("chromium");
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let script = format!("#!/bin/sh\nexec {} --pdeathsig KILL -- {} \"$@\"\n", quote(setpriv), quote(&chromium));
    std::fs::write(&wrapper, script).expect("write the Chromium wrapper");
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
        .expect("make the Chromium wrapper executable");
    wrapper
}

/// SIGKILL when the forking thread ends, and no start at all if the test
/// process is already gone.
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and calls
    // only async-signal-safe functions (prctl, getppid), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[allow(unsafe_code)]
fn register_atexit() {
    extern "C" fn kill_driver() {
        EXITING.store(true, Ordering::SeqCst);
        let pid = DRIVER_PID.swap(0, Ordering::SeqCst);
        if pid > 0 {
            // SAFETY: kill(2) on a pid this process started and has not reaped
            // (the chromedriver thread resets DRIVER_PID before reaping).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(dir) = DRIVER_DIR.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: registers a plain `extern "C" fn()` that never unwinds.
    ONCE.call_once(|| unsafe {
        libc::atexit(kill_driver);
    });
}

/// The slots of [`MAX_BROWSERS`].
static SLOTS: Semaphore = Semaphore::const_new(MAX_BROWSERS);

/// A headless Chromium with a fresh profile, in a WebDriver session of the
/// test process's chromedriver. Dropping it ends the session (Chromium
/// quits) and removes the profile; [`close`](Self::close) does so awaited.
pub struct Browser {
    client: Client,
    session_id: String,
    driver: &'static Driver,
    closed: bool,
    timeout: Duration,
    profile: Option<TempDir>,
    _slot: SemaphorePermit<'static>,
}

/// A short description of a WebDriver error (its message, no stack trace).
fn describe(e: &CmdError) -> String {
    match e {
        CmdError::Standard(w) => format!("{}: {}", w.error, w.message.lines().next().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// Errors no retry mends: a bad selector or script, a lost browser.
fn is_permanent(e: &CmdError) -> bool {
    match e {
        CmdError::Standard(w) => {
            e.is_invalid_selector()
                || e.is_invalid_session_id()
                || e.is_no_such_window()
                || w.message.contains("SyntaxError")
                || w.message.contains("is not a valid selector")
                || w.message.contains("crashed")
        }
        CmdError::Lost(_) | CmdError::Failed(_) | CmdError::FailedC(_) => true,
        _ => false,
    }
}

/// What the wait loop does with an attempt's error.
enum Miss {
    /// Not yet: try again (what was seen, for the timeout's message).
    Retry(String),
    /// Never: fail now.
    Fatal(String),
}

impl From<CmdError> for Miss {
    fn from(e: CmdError) -> Self {
        if is_permanent(&e) {
            Miss::Fatal(describe(&e))
        } else {
            Miss::Retry(describe(&e))
        }
    }
}

/// Evaluates `$attempt` (a future of `Result<Option<T>, Miss>`, built anew
/// each time: an async block) every [`POLL_INTERVAL`] until it gives a value;
/// see [`Wait::check`]. A macro, not a function taking an async closure, so
/// the helpers' futures stay `Send` (they can be `tokio::spawn`ed).
macro_rules! poll {
    ($browser:expr, $what:expr, $attempt:expr) => {{
        let mut wait = Wait::new($browser, $what);
        loop {
            if let Some(value) = wait.check($attempt.await).await {
                break value;
            }
        }
    }};
}

/// One wait of a [`Browser`]: what it waits for, its deadline, what it last saw.
struct Wait<'a> {
    browser: &'a Browser,
    what: String,
    deadline: Instant,
    last: Option<String>,
}

impl<'a> Wait<'a> {
    fn new(browser: &'a Browser, what: String) -> Self {
        Wait { browser, what, deadline: Instant::now() + browser.timeout, last: None }
    }

    /// The value of a successful attempt; else `None` after [`POLL_INTERVAL`].
    /// Panics after the browser's timeout (or at once on a [`Miss::Fatal`]) saying
    /// what was awaited, what was last seen, the page's url, the start of its
    /// text and where its screenshot is.
    async fn check<T>(&mut self, attempt: Result<Option<T>, Miss>) -> Option<T> {
        match attempt {
            Ok(Some(value)) => return Some(value),
            Ok(None) => {}
            Err(Miss::Retry(e)) => self.last = Some(e),
            Err(Miss::Fatal(e)) => {
                let context = self.browser.context().await;
                panic!("waiting for {}: {e}\n{context}", self.what);
            }
        }
        if Instant::now() >= self.deadline {
            let context = self.browser.context().await;
            let last = self.last.as_ref().map(|e| format!("\nlast seen: {e}")).unwrap_or_default();
            panic!("timed out after {:?} waiting for {}{last}\n{context}", self.browser.timeout, self.what);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        None
    }
}

impl Browser {
    /// A browser on the inspector (`/ui/`) of `server`, signed in with
    /// `token` through the page's own sign-in form.
    pub async fn signed_in(server: &crate::TestServer, token: &str) -> Browser {
        let b = Browser::open().await;
        b.goto(&server.endpoint("/ui/")).await;
        b.wait_for("#login #token").await;
        b.fill("#token", token).await;
        b.click("#login button[type=submit]").await;
        b.wait_for("#sessions").await;
        b
    }

    /// Starts a Chromium (waiting for a free slot of [`MAX_BROWSERS`]) on `about:blank`.
    pub async fn open() -> Browser {
        let driver = driver().await;
        let slot = match tokio::time::timeout(SLOT_TIMEOUT, SLOTS.acquire()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => unreachable!("the browser semaphore is never closed"),
            Err(_) => panic!(
                "no browser slot free within {SLOT_TIMEOUT:?}: at most {MAX_BROWSERS} browsers run at once \
                 (does a test hold more?)"
            ),
        };
        let profile =
            tempfile::Builder::new().prefix("profile-").tempdir_in(&driver.dir).expect("create a profile dir");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let ms = UI_TIMEOUT.as_millis() as u64;
        let capabilities = json!({
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            "timeouts": { "pageLoad": ms, "script": ms, "implicit": 0 },
            "goog:chromeOptions": { "binary": driver.chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object") };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = match tokio::time::timeout(SESSION_TIMEOUT, builder.connect(&driver.url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!("cannot start Chromium through chromedriver at {}: {e}", driver.url),
            Err(_) => panic!("Chromium did not start within {SESSION_TIMEOUT:?}"),
        };
        // Ended by Drop or close, not by the client's background task (which
        // may never run again once the test's runtime is gone).
        client.persist().await.expect("persist the session");
        let session_id = client.session_id().await.ok().flatten().expect("the session has an id");
        Browser { client, session_id, driver, closed: false, timeout: UI_TIMEOUT, profile: Some(profile), _slot: slot }
    }

    /// How long each wait lasts from now on ([`UI_TIMEOUT`] at first).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Chromium's `--user-data-dir`: fresh and empty at [`open`](Self::open), removed on drop.
    pub fn profile_dir(&self) -> &Path {
        self.profile.as_ref().map(TempDir::path).expect("the profile lives as long as the browser")
    }

    /// The fantoccini client, for whatever the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ends the session (Chromium quits) and removes the profile, awaited.
    pub async fn close(mut self) {
        match self.client.clone().close().await {
            Ok(()) => self.closed = true,
            Err(e) => eprintln!("tether-e2e: closing the browser session failed ({}); retrying on drop", describe(&e)),
        }
    }

    /// Navigates to `url` and waits for its load event.
    pub async fn goto(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            let context = self.context().await;
            panic!("loading {url} failed: {}\n{context}", describe(&e));
        }
    }

    /// The page's url.
    pub async fn current_url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => panic!("cannot read the current url: {}", describe(&e)),
        }
    }

    /// Waits for an element matching `css` that is displayed; returns the first.
    pub async fn wait_for(&self, css: &str) -> Element {
        poll!(self, format!("a displayed element matching `{css}`"), self.displayed(css))
    }

    /// Waits until no element matching `css` is displayed (none in the
    /// document, or all of them hidden).
    pub async fn wait_gone(&self, css: &str) {
        let script = format!(
            "{JS_IS_VISIBLE} return Array.from(document.querySelectorAll(arguments[0])).filter(isVisible).length;"
        );
        poll!(self, format!("no displayed element matching `{css}`"), async {
            let shown: usize = self.try_eval(&script, vec![json!(css)]).await?;
            if shown == 0 {
                Ok(Some(()))
            } else {
                Err(Miss::Retry(format!("{shown} still displayed")))
            }
        })
    }

    /// Waits for a displayed element matching `css` whose text (`innerText`)
    /// contains `needle`; returns that text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> String {
        let script = format!(
            "{JS_IS_VISIBLE} return Array.from(document.querySelectorAll(arguments[0])).filter(isVisible)\
             .map((e) => e.innerText);"
        );
        poll!(self, format!("a displayed element matching `{css}` with text containing {needle:?}"), async {
            let texts: Vec<String> = self.try_eval(&script, vec![json!(css)]).await?;
            if let Some(text) = texts.iter().find(|t| t.contains(needle)) {
                return Ok(Some(text.clone()));
            }
            Err(Miss::Retry(format!("{} displayed, texts {:?}", texts.len(), snippets(&texts))))
        })
    }

    /// Waits until the JavaScript expression `js_expr` (an expression, not
    /// statements: `document.title === "x"`) is truthy. Exceptions count as
    /// not yet (the page may not be there yet), except syntax errors.
    pub async fn wait_until(&self, js_expr: &str) {
        let script = format!("return !!({});", js_expr.trim().trim_end_matches(';'));
        poll!(self, format!("`{js_expr}` to hold"), async {
            let holds: bool = self.try_eval(&script, Vec::new()).await?;
            Ok(holds.then_some(()))
        })
    }

    /// Runs `js` (a function body: `return` its result; `arguments[i]` are
    /// `args`) in the page and decodes what it returns.
    pub async fn eval<T: DeserializeOwned>(&self, js: &str, args: Vec<Value>) -> T {
        match self.try_eval(js, args).await {
            Ok(value) => value,
            Err(Miss::Retry(e) | Miss::Fatal(e)) => {
                let context = self.context().await;
                panic!("script failed: {e}\n--- script ---\n{js}\n{context}")
            }
        }
    }

    /// Waits for a displayed element matching `css` and clicks it (retrying
    /// while the click is intercepted or the element is replaced).
    pub async fn click(&self, css: &str) {
        poll!(self, format!("a click on a displayed element matching `{css}`"), async {
            let Some(element) = self.displayed(css).await? else { return Ok(None) };
            element.click().await?;
            Ok(Some(()))
        })
    }

    /// Waits for a displayed `<input>` or `<textarea>` matching `css`, clears
    /// it and types `text`, until its value is `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        poll!(self, format!("`{css}` to hold {text:?}"), async {
            let Some(element) = self.displayed(css).await? else { return Ok(None) };
            element.clear().await?;
            if !element.prop("value").await?.unwrap_or_default().is_empty() {
                // A framework put the value back: delete it as a user would.
                element.send_keys(&format!("{}a{}{}", Key::Control, Key::Null, Key::Backspace)).await?;
            }
            element.send_keys(text).await?;
            let value = element.prop("value").await?.unwrap_or_default();
            if value == text {
                Ok(Some(()))
            } else {
                Err(Miss::Retry(format!("its value is {value:?}")))
            }
        })
    }

    /// Waits for a displayed `<select>` matching `css` and picks its option
    /// whose value is `value`.
    pub async fn select(&self, css: &str, value: &str) {
        poll!(self, format!("`{css}` to select the option of value {value:?}"), async {
            let Some(element) = self.displayed(css).await? else { return Ok(None) };
            element.select_by_value(value).await?;
            let selected = element.prop("value").await?.unwrap_or_default();
            if selected == value {
                Ok(Some(()))
            } else {
                Err(Miss::Retry(format!("its value is {selected:?}")))
            }
        })
    }

    /// Waits for a displayed element matching `css` and types `keys` into it
    /// (WebDriver keys: `fantoccini::key::Key` for Enter, Tab, arrows).
    pub async fn send_keys(&self, css: &str, keys: &str) {
        poll!(self, format!("typing {keys:?} into a displayed element matching `{css}`"), async {
            let Some(element) = self.displayed(css).await? else { return Ok(None) };
            element.send_keys(keys).await?;
            Ok(Some(()))
        })
    }

    /// [`send_keys`](Self::send_keys) of Enter.
    pub async fn press_enter(&self, css: &str) {
        self.send_keys(css, &Key::Enter.to_string()).await
    }

    /// How many elements match `css` now (displayed or not).
    pub async fn count(&self, css: &str) -> usize {
        self.eval("return document.querySelectorAll(arguments[0]).length;", vec![json!(css)]).await
    }

    /// The `innerText` of every element matching `css` now, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        self.eval(
            "return Array.from(document.querySelectorAll(arguments[0])).map((e) => e.innerText);",
            vec![json!(css)],
        )
        .await
    }

    /// Waits for an `<input type=file>` matching `css` (displayed or not: such
    /// inputs are often hidden behind a label) and gives it the file `path`.
    pub async fn upload_file(&self, css: &str, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let path = path.canonicalize().unwrap_or_else(|e| panic!("cannot upload {}: {e}", path.display()));
        let path = path.to_str().unwrap_or_else(|| panic!("{} is not UTF-8", path.display()));
        poll!(self, format!("`{css}` (an <input type=file>) to take {path}"), async {
            let Some(element) = self.client.find_all(Locator::Css(css)).await?.into_iter().next() else {
                return Ok(None);
            };
            element.send_keys(path).await?;
            Ok(Some(()))
        })
    }

    /// Saves a PNG of the viewport as `<artifacts_dir>/<name>.png`; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        match self.try_screenshot(name).await {
            Ok(path) => path,
            Err(e) => panic!("screenshot {name:?} failed: {e}"),
        }
    }

    /// A PNG of the viewport, as bytes (to save where the caller wants).
    pub async fn screenshot_png(&self) -> Vec<u8> {
        match self.client.screenshot().await {
            Ok(png) => png,
            Err(e) => panic!("screenshot failed: {}", describe(&e)),
        }
    }

    /// Sizes the window so the page's viewport is `width` CSS pixels wide
    /// (`window.innerWidth`) and about `height` high, and waits until the page
    /// sees that width.
    pub async fn set_window(&self, width: u32, height: u32) {
        if let Err(e) = self.client.set_window_size(width, height).await {
            panic!("cannot size the window to {width}x{height}: {}", describe(&e));
        }
        // Headless Chromium's window is its viewport, but make sure: grow the
        // window by whatever chrome it has.
        let inner: u32 = self.eval("return window.innerWidth;", Vec::new()).await;
        if inner != width {
            let outer = width + width.saturating_sub(inner);
            if let Err(e) = self.client.set_window_size(outer, height).await {
                panic!("cannot size the window to {outer}x{height}: {}", describe(&e));
            }
        }
        self.wait_until(&format!("window.innerWidth === {width}")).await;
    }

    /// Runs the Chrome DevTools Protocol command `method` with `params` in
    /// the current page (through chromedriver's `goog/cdp/execute`); its result.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        let (addr, session) = (self.driver.addr, self.session_id.clone());
        let body = json!({ "cmd": method, "params": params }).to_string();
        let path = format!("/session/{session}/goog/cdp/execute");
        let answer = tokio::task::spawn_blocking(move || driver_request(addr, "POST", &path, &body))
            .await
            .expect("the chromedriver request's thread");
        match answer {
            Ok((200, body)) => body.get("value").cloned().unwrap_or(Value::Null),
            Ok((status, body)) => panic!("CDP {method} failed: chromedriver answered {status}: {body}"),
            Err(e) => panic!("CDP {method} failed: {e}"),
        }
    }

    /// Makes the page see `prefers-color-scheme: dark` (or `light`), as an OS
    /// setting would (CDP `Emulation.setEmulatedMedia`; it lasts across
    /// navigations of this browser's tab), and waits until the page's media
    /// query says so.
    pub async fn set_color_scheme(&self, dark: bool) {
        let scheme = if dark { "dark" } else { "light" };
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "media": "", "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        )
        .await;
        self.wait_until(&format!("matchMedia('(prefers-color-scheme: {scheme})').matches")).await;
    }

    /// What keeps the page from fitting the viewport's width now (see
    /// [`assert_fits_viewport`](Self::assert_fits_viewport)): one line per
    /// offender, empty when it fits.
    pub async fn fit_problems(&self) -> Vec<String> {
        self.eval(JS_FIT_PROBLEMS, Vec::new()).await
    }

    /// Waits until the page fits the viewport's width: the document does not
    /// scroll sideways (`scrollWidth <= innerWidth`), nor does `<main>`, and
    /// every displayed button, link, input, select, textarea and summary has
    /// its box inside the viewport horizontally, unless it sits in an element
    /// that scrolls sideways on its own, which must then be inside the
    /// viewport itself. Panics (after the browser's timeout) naming each
    /// offender and its box; `what` names the page in that message.
    pub async fn assert_fits_viewport(&self, what: &str) {
        poll!(self, format!("{what} to fit the viewport's width"), async {
            let problems: Vec<String> = self.try_eval(JS_FIT_PROBLEMS, Vec::new()).await?;
            if problems.is_empty() {
                Ok(Some(()))
            } else {
                Err(Miss::Retry(problems.join("; ")))
            }
        })
    }

    /// `performance.memory.usedJSHeapSize`: bytes of the page's JavaScript heap in use.
    pub async fn js_heap_bytes(&self) -> u64 {
        self.eval("return performance.memory.usedJSHeapSize;", Vec::new()).await
    }

    /// Runs a full garbage collection in the page (before [`js_heap_bytes`](Self::js_heap_bytes)).
    pub async fn gc(&self) {
        self.eval::<Value>("gc(); return null;", Vec::new()).await;
    }

    /// The first displayed element matching `css`, if any.
    async fn displayed(&self, css: &str) -> Result<Option<Element>, Miss> {
        for element in self.client.find_all(Locator::Css(css)).await? {
            if element.is_displayed().await? {
                return Ok(Some(element));
            }
        }
        Ok(None)
    }

    async fn try_eval<T: DeserializeOwned>(&self, js: &str, args: Vec<Value>) -> Result<T, Miss> {
        let value = self.client.execute(js, args).await?;
        serde_json::from_value(value.clone()).map_err(|e| {
            Miss::Fatal(format!("the script returned {value}, expected a {}: {e}", std::any::type_name::<T>()))
        })
    }

    async fn try_screenshot(&self, name: &str) -> Result<PathBuf, String> {
        let png = self.client.screenshot().await.map_err(|e| describe(&e))?;
        let name: String = name
            .trim_end_matches(".png")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' })
            .collect();
        let path = artifacts_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// The page's url, the start of its text and a fresh screenshot, for a panic message.
    async fn context(&self) -> String {
        static FAILURES: AtomicU32 = AtomicU32::new(0);
        let url = match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("? ({})", describe(&e)),
        };
        let text = match self.client.execute("return document.body ? document.body.innerText : '';", Vec::new()).await {
            Ok(Value::String(text)) => snippet(&text, 800),
            Ok(other) => other.to_string(),
            Err(e) => format!("? ({})", describe(&e)),
        };
        let thread = std::thread::current();
        let name = format!(
            "failure-{}-{}",
            thread.name().unwrap_or("test").replace("::", "-"),
            FAILURES.fetch_add(1, Ordering::SeqCst)
        );
        let shot = match self.try_screenshot(&name).await {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("none ({e})"),
        };
        format!("url: {url}\npage text: {text}\nscreenshot: {shot}")
    }
}

/// `text` cut to `max` characters (marked), newlines shown as `⏎`.
fn snippet(text: &str, max: usize) -> String {
    let flat = text.trim().replace('\n', " ⏎ ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… ({} chars)", &flat[..cut], text.chars().count()),
        None => flat,
    }
}

fn snippets(texts: &[String]) -> Vec<String> {
    texts.iter().take(10).map(|t| snippet(t, 80)).collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.closed {
            // A plain blocking request: Drop cannot await, and the client's
            // task may never run again once the test's runtime winds down.
            if let Err(e) = delete_session(self.driver.addr, &self.session_id) {
                eprintln!("tether-e2e: ending browser session {} failed: {e}", self.session_id);
            }
        }
        if let Some(profile) = self.profile.take() {
            // Chromium has quit, but its last writes may still land: retry briefly.
            let path = profile.keep();
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir_all(&path).is_err() && path.exists() && Instant::now() < deadline {
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }
}

/// `DELETE /session/<id>` (chromedriver quits that Chromium and answers when it has).
fn delete_session(addr: SocketAddr, session_id: &str) -> std::io::Result<()> {
    match driver_request(addr, "DELETE", &format!("/session/{session_id}"), "")? {
        (200, _) => Ok(()),
        (status, body) => Err(std::io::Error::other(format!("chromedriver answered {status}: {body}"))),
    }
}

/// A plain blocking request to chromedriver: its status and JSON body
/// (`Null` when the body is not JSON).
fn driver_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut answer = vec![0; length];
    reader.read_exact(&mut answer)?;
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((code, serde_json::from_slice(&answer).unwrap_or(Value::Null)))
}
