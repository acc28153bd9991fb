//! Ports: the TCP ports listening in the sandbox, who owns each, the events
//! that say one opened or closed, and the preview of each through tether's
//! own URL (signed links, the cookie they set, the proxy).
//!
//! - Detection ([`scan`], [`procnet`]): `/proc/net/tcp` and `tcp6` are read
//!   every `--ports-poll-ms` (250 ms by default; 0 turns detection off);
//!   each socket's inode is matched to the pid holding it through
//!   `/proc/<pid>/fd`, scanned only when the set of listening inodes
//!   changed. Where `/proc` hides other processes' fds (some sandboxes), a
//!   port is listed without a pid and [`PortList::attributed`] is false.
//!   A pid belongs to whoever [`Owners`] says owns its session id (tether
//!   starts every agent and process as a session leader) or, failing that,
//!   one of its ancestors. tether's own sockets (`/proc/self/fd`) and its
//!   bound port are left out, and never previewed.
//! - Events: after the first look (what listens when the server starts is
//!   listed by `GET /v1/ports`, not announced), each port that appears or
//!   goes away is one `port.opened` or `port.closed`, written once: into
//!   the owning session's log while that session lives (through its actor,
//!   so never after its `session.ended`), else into the log
//!   [`SANDBOX_LOG`], which has no session row. Both are on the global stream.
//! - Previews: [`link`] signs links and cookies; [`proxy`] forwards one
//!   request (HTTP streamed both ways, upgrades spliced) to
//!   `127.0.0.1:{port}`. The routes are `http::ports`'s business.
//!
//! Failures are a [`PortError`], whose code and status are beside it
//! (`crate::error::AsProblem`). Nothing here logs or answers the link key.

pub mod link;
pub mod procnet;
pub mod proxy;
mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_protocol::{CreatePreviewLink, EventBody, Port, PortList, PortOpened, PreviewLink, Source, SANDBOX_LOG};
use tokio::task::JoinHandle;

use crate::error::{AsProblem, ErrorCode};
use crate::session::Sessions;
use crate::store::NewEvent;
use link::LinkFault;

/// Default of `--ports-poll-ms`.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);
/// A preview link's life when the request gives none, and the longest.
pub const DEFAULT_LINK_TTL_SECS: u64 = 3600;
pub const MAX_LINK_TTL_SECS: u64 = 7 * 24 * 3600;
/// Longest path a preview link may open.
const MAX_LINK_PATH: usize = 2048;

/// Who a listening process works for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owner {
    /// The tether process (`prc_…`) whose group it is in.
    pub process_id: Option<String>,
    /// The session whose agent (or process) started it.
    pub session_id: Option<String>,
}

/// Who owns a process session: tether starts every agent and every process
/// as a session leader, so a session id is the pid of the agent or process
/// that leads it. Implemented over the application core (`crate::app`).
pub trait Owners: Send + Sync {
    /// The owner of the session (and process group) led by `sid`.
    fn owner(&self, sid: i32) -> Option<Owner>;
    /// The owner named by the tags a process inherited from what tether
    /// started (`TETHER_PROCESS_ID`, `TETHER_SESSION_ID`), when that is still running.
    fn tagged(&self, process_id: Option<&str>, session_id: Option<&str>) -> Option<Owner>;
}

/// Why a ports request cannot be carried out.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{given:?} is not a TCP port: give a number from 1 to 65535")]
    BadPort { given: String },
    /// A field of a link request; the message says which and why.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "nothing listens on port {port} in the sandbox: start the server first (GET /v1/ports lists what listens), \
         on 127.0.0.1 or on every address"
    )]
    NotListening { port: u16 },
    #[error("port {port} is tether's own: it is not previewed through itself")]
    OwnPort { port: u16 },
    #[error("{0}")]
    LinkInvalid(String),
    #[error("the app on port {port} {what}; check that it serves HTTP on that port and try again")]
    Failed { port: u16, what: String },
}

impl AsProblem for PortError {
    fn code(&self) -> ErrorCode {
        match self {
            PortError::BadPort { .. } | PortError::Invalid(_) => ErrorCode::InvalidRequest,
            PortError::NotListening { .. } => ErrorCode::PortNotListening,
            PortError::OwnPort { .. } => ErrorCode::PortNotAllowed,
            PortError::LinkInvalid(_) => ErrorCode::PreviewLinkInvalid,
            PortError::Failed { .. } => ErrorCode::PreviewFailed,
        }
    }
}

/// A port path segment: 1 to 65535.
pub fn parse_port(given: &str) -> Result<u16, PortError> {
    match given.parse::<u16>() {
        Ok(port) if port > 0 && given.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(PortError::BadPort { given: given.chars().take(32).collect() }),
    }
}

/// The ports listening now, and what the server knows of them.
pub struct Ports {
    listening: Mutex<Listening>,
    /// tether's own ports: the one it serves on, and any its sockets listen on.
    own: Mutex<BTreeSet<u16>>,
    key: link::Key,
    poll: Option<Duration>,
}

#[derive(Default)]
struct Listening {
    ports: BTreeMap<u16, Entry>,
    /// Whether a look has been taken (detection is on and has run).
    scanned: bool,
}

/// One listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Unspecified addresses first, then IPv4, then IPv6.
    addresses: Vec<IpAddr>,
    pid: Option<i32>,
    owner: Owner,
    program: Option<String>,
}

impl Entry {
    fn event(&self, port: u16) -> PortOpened {
        PortOpened {
            port,
            address: self.addresses.first().map(IpAddr::to_string).unwrap_or_default(),
            pid: self.pid,
            process_id: self.owner.process_id.clone(),
            session_id: self.owner.session_id.clone(),
        }
    }
}

impl Ports {
    /// `poll`: how often to look (`None`: detection off). Links are signed
    /// with a key derived from `token`, or a random one.
    pub fn new(token: Option<&str>, poll: Option<Duration>) -> Arc<Ports> {
        Arc::new(Ports {
            listening: Mutex::new(Listening::default()),
            own: Mutex::new(BTreeSet::new()),
            key: link::Key::new(token),
            poll,
        })
    }

    /// The port the server serves on: never listed, never previewed.
    pub fn set_own_port(&self, port: u16) {
        if let Ok(mut own) = self.own.lock() {
            own.insert(port);
        }
    }

    pub fn is_own(&self, port: u16) -> bool {
        self.own.lock().map(|own| own.contains(&port)).unwrap_or(false)
    }

    /// `GET /v1/ports`: sorted by port.
    pub fn list(&self) -> PortList {
        let Ok(l) = self.listening.lock() else { return PortList { ports: vec![], attributed: false } };
        let ports: Vec<Port> = l
            .ports
            .iter()
            .map(|(port, e)| Port {
                port: *port,
                addresses: e.addresses.iter().map(IpAddr::to_string).collect(),
                pid: e.pid,
                process_id: e.owner.process_id.clone(),
                session_id: e.owner.session_id.clone(),
                program: e.program.clone(),
                proxy_path: format!("/v1/ports/{port}/proxy/"),
            })
            .collect();
        let attributed = l.scanned && l.ports.values().all(|e| e.pid.is_some());
        PortList { ports, attributed }
    }

    /// Refuses tether's own port.
    pub fn check_previewable(&self, port: u16) -> Result<(), PortError> {
        if self.is_own(port) {
            return Err(PortError::OwnPort { port });
        }
        Ok(())
    }

    /// Whether something listens on `port`: in the last look, else (a
    /// server that started since, or detection off) whether it takes a connection.
    async fn check_listening(&self, port: u16) -> Result<(), PortError> {
        let seen = self.listening.lock().map(|l| l.ports.contains_key(&port)).unwrap_or(false);
        if seen {
            return Ok(());
        }
        proxy::connect(port, &[]).await.map(drop)
    }

    /// The addresses `port` listens on besides loopback and the wildcards
    /// (an app bound to one interface only), for the proxy to try.
    pub fn other_addresses(&self, port: u16) -> Vec<IpAddr> {
        let Ok(l) = self.listening.lock() else { return vec![] };
        let addresses = l.ports.get(&port).map(|e| e.addresses.as_slice()).unwrap_or_default();
        addresses.iter().copied().filter(|a| !a.is_unspecified() && !a.is_loopback()).collect()
    }

    /// `POST /v1/ports/{port}/links` at `now_ms` (unix milliseconds). The
    /// expiry is in whole seconds, rounded up: a link lives at least `ttl_secs`.
    pub async fn create_link(&self, port: u16, req: CreatePreviewLink, now_ms: u64) -> Result<PreviewLink, PortError> {
        let ttl = req.ttl_secs.unwrap_or(DEFAULT_LINK_TTL_SECS);
        if !(1..=MAX_LINK_TTL_SECS).contains(&ttl) {
            return Err(PortError::Invalid(format!(
                "`ttl_secs` must be from 1 to {MAX_LINK_TTL_SECS} (7 days), not {ttl}"
            )));
        }
        let path = req.path.unwrap_or_else(|| "/".to_string());
        check_link_path(&path)?;
        self.check_previewable(port)?;
        self.check_listening(port).await?;
        let exp = (now_ms + ttl * 1000).div_ceil(1000);
        let sig = self.key.link_sig(port, exp, req.style, &path);
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("exp", &exp.to_string())
            .append_pair("style", link::style_name(req.style))
            .append_pair("path", &path)
            .append_pair("sig", &sig)
            .finish();
        Ok(PreviewLink {
            port,
            url: format!("/v1/ports/{port}/open?{query}"),
            expires_at: crate::ids::rfc3339_ms(i64::try_from(exp.saturating_mul(1000)).unwrap_or(i64::MAX)),
        })
    }

    /// Opens a link at `now`: where to send the browser, and the cookie to set.
    pub fn open_link(&self, port: u16, link: &OpenLink, now: u64) -> Result<Opened, PortError> {
        self.key.check_link(port, link.exp, link.style, &link.path, &link.sig, now).map_err(|f| link_fault(port, f))?;
        self.check_previewable(port)?;
        Ok(Opened {
            location: format!("/v1/ports/{port}/{}{}", link::style_name(link.style), link.path),
            cookie_name: link::cookie_name(port),
            cookie_value: self.key.cookie_value(port, link.exp),
            max_age: link.exp - now,
        })
    }

    /// Whether a preview cookie lets a request into `port`'s preview at `now`.
    pub fn check_cookie(&self, port: u16, value: &str, now: u64) -> Result<(), PortError> {
        self.key.check_cookie(value, port, now).map_err(|f| link_fault(port, f))
    }

    /// Takes a look's result: answers what opened and what closed.
    fn apply(&self, now: BTreeMap<u16, Entry>, own: BTreeSet<u16>) -> Vec<(bool, PortOpened)> {
        if let Ok(mut mine) = self.own.lock() {
            mine.extend(own);
        }
        let Ok(mut l) = self.listening.lock() else { return vec![] };
        let first = !l.scanned;
        l.scanned = true;
        let before = std::mem::replace(&mut l.ports, now);
        if first {
            let tethers = l.ports.iter().filter(|(_, e)| e.owner.process_id.is_some() || e.owner.session_id.is_some());
            return tethers.map(|(port, e)| (true, e.event(*port))).collect();
        }
        let mut changes = Vec::new();
        for (port, old) in &before {
            match l.ports.get(port) {
                None => changes.push((false, old.event(*port))),
                // Another process on the same port (not a pid that became unknown).
                Some(new) if new.pid.is_some() && old.pid.is_some() && new.pid != old.pid => {
                    changes.push((false, old.event(*port)));
                    changes.push((true, new.event(*port)));
                }
                Some(_) => {}
            }
        }
        for (port, new) in &l.ports {
            if !before.contains_key(port) {
                changes.push((true, new.event(*port)));
            }
        }
        changes
    }

    fn known(&self) -> BTreeMap<u16, Entry> {
        self.listening.lock().map(|l| l.ports.clone()).unwrap_or_default()
    }
}

/// The query of a preview link.
pub use tether_protocol::OpenPreviewQuery as OpenLink;

/// An opened link: the redirect and the cookie.
#[derive(Debug, Clone)]
pub struct Opened {
    pub location: String,
    pub cookie_name: String,
    pub cookie_value: String,
    pub max_age: u64,
}

fn link_fault(port: u16, fault: LinkFault) -> PortError {
    PortError::LinkInvalid(match fault {
        LinkFault::Forged => format!(
            "this preview link or cookie was not made by this server for port {port} (changed, forged, made for \
             another port, or by an earlier start of a server without a token); ask for a new link with \
             POST /v1/ports/{port}/links"
        ),
        LinkFault::OtherPort { signed_for } => format!(
            "this preview cookie is for port {signed_for}, not {port}; ask for a link to port {port} with \
             POST /v1/ports/{port}/links"
        ),
        LinkFault::Expired => {
            format!("this preview link has expired; ask for a new one with POST /v1/ports/{port}/links")
        }
    })
}

/// A link's path: `/…`, no control characters (the document's pattern), at
/// most [`MAX_LINK_PATH`] characters (its `maxLength`).
fn check_link_path(path: &str) -> Result<(), PortError> {
    if !path.starts_with('/') || path.chars().count() > MAX_LINK_PATH || path.chars().any(char::is_control) {
        return Err(PortError::Invalid(format!(
            "`path` must start with `/`, hold no control characters and be at most {MAX_LINK_PATH} characters"
        )));
    }
    Ok(())
}

/// The ports of one look, grouped, with their owners (`known`'s owner kept
/// for a port whose pid did not change), and tether's own ports.
fn look(
    scanner: &mut scan::Scanner,
    owners: &dyn Owners,
    known: &BTreeMap<u16, Entry>,
) -> (BTreeMap<u16, Entry>, BTreeSet<u16>) {
    let mut ports: BTreeMap<u16, Entry> = BTreeMap::new();
    let mut own = BTreeSet::new();
    for seen in scanner.scan() {
        if seen.own {
            own.insert(seen.port);
            continue;
        }
        let e = ports.entry(seen.port).or_insert_with(|| Entry {
            addresses: vec![],
            pid: None,
            owner: Owner::default(),
            program: None,
        });
        if !e.addresses.contains(&seen.address) {
            e.addresses.push(seen.address);
        }
        e.pid = match (e.pid, seen.pid) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    ports.retain(|port, _| !own.contains(port));
    for (port, e) in ports.iter_mut() {
        e.addresses.sort_by_key(|a| (!a.is_unspecified(), a.is_ipv6(), *a));
        match known.get(port).filter(|k| k.pid == e.pid) {
            Some(k) => {
                e.owner = k.owner.clone();
                e.program = k.program.clone();
            }
            None => {
                if let Some(pid) = e.pid {
                    e.owner = owner_of(scanner.proc(), pid, owners).unwrap_or_default();
                    e.program = scan::program(scanner.proc(), pid);
                }
            }
        }
    }
    (ports, own)
}

/// The owner of `pid`: the one its inherited tags name (they survive a
/// `setsid` and a parent that exited: Claude Code's Bash tool detaches what
/// it starts), else the owner of its session, else of the nearest ancestor
/// that is (or leads) an owned session.
fn owner_of(proc: &std::path::Path, pid: i32, owners: &dyn Owners) -> Option<Owner> {
    let (process_id, session_id) = scan::tags(proc, pid);
    if let Some(o) = owners.tagged(process_id.as_deref(), session_id.as_deref()) {
        return Some(o);
    }
    let mut p = pid;
    for _ in 0..64 {
        let (ppid, sid) = scan::parent_and_session(proc, p)?;
        if let Some(o) = owners.owner(sid).or_else(|| owners.owner(p)) {
            return Some(o);
        }
        if ppid <= 1 {
            return None;
        }
        p = ppid;
    }
    None
}

/// Looks at the ports every poll interval, the first time at once (in the
/// background: start-up never waits for `/proc/net/tcp`, which is slow to
/// read on a machine with many sockets), announcing each change, until
/// aborted. What the first look finds was there before (not announced),
/// except what tether's own processes and sessions opened: they all start
/// after the server, so their ports are new. `None` when detection is off.
pub async fn watch(ports: Arc<Ports>, owners: Arc<dyn Owners>, sessions: Arc<Sessions>) -> Option<JoinHandle<()>> {
    let every = ports.poll?;
    let mut scanner = scan::Scanner::new("/proc");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (owners2, known) = (owners.clone(), ports.known());
            let looked = tokio::task::spawn_blocking(move || {
                let r = look(&mut scanner, &*owners2, &known);
                (scanner, r)
            })
            .await;
            let Ok((back, (found, own))) = looked else { return };
            scanner = back;
            for (opened, data) in ports.apply(found, own) {
                announce(&sessions, opened, data).await;
            }
        }
    }))
}

/// Writes one `port.opened` or `port.closed`: into its session's log while
/// that session lives, else into the sandbox log.
async fn announce(sessions: &Sessions, opened: bool, data: PortOpened) {
    let body = if opened { EventBody::PortOpened(data.clone()) } else { EventBody::PortClosed(data.clone()) };
    if let Some(id) = &data.session_id {
        if sessions.notify_port(id, body.clone()).await {
            return;
        }
    }
    let event = NewEvent::new(Source::Server, Arc::from(crate::ids::now_rfc3339()), &body, None, vec![]);
    if let Err(e) = sessions.store.append(Arc::from(SANDBOX_LOG), vec![event]).await {
        tracing::warn!(port = data.port, error = %e, "could not write a port event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(pid: Option<i32>, session: Option<&str>) -> Entry {
        Entry {
            addresses: vec!["0.0.0.0".parse().unwrap()],
            pid,
            owner: Owner { process_id: None, session_id: session.map(str::to_string) },
            program: None,
        }
    }

    #[test]
    fn the_first_look_is_silent_then_changes_are_announced() {
        let ports = Ports::new(None, Some(DEFAULT_POLL));
        assert!(!ports.list().attributed, "nothing looked yet");
        let first = BTreeMap::from([(22, entry(Some(10), None))]);
        assert_eq!(ports.apply(first, BTreeSet::from([7419])), vec![]);
        assert!(ports.is_own(7419) && ports.list().attributed);
        let next = BTreeMap::from([(22, entry(Some(10), None)), (8000, entry(Some(20), Some("ses_a")))]);
        let changes = ports.apply(next, BTreeSet::new());
        assert_eq!(changes.len(), 1);
        assert!(changes[0].0);
        assert_eq!(changes[0].1.port, 8000);
        assert_eq!(changes[0].1.session_id.as_deref(), Some("ses_a"));
        // Another process on the same port: closed, then opened.
        let moved = BTreeMap::from([(22, entry(Some(10), None)), (8000, entry(Some(21), None))]);
        let changes: Vec<(bool, Option<i32>)> =
            ports.apply(moved, BTreeSet::new()).into_iter().map(|(o, d)| (o, d.pid)).collect();
        assert_eq!(changes, vec![(false, Some(20)), (true, Some(21))]);
        let gone = BTreeMap::from([(22, entry(None, None))]);
        let changes = ports.apply(gone, BTreeSet::new());
        assert_eq!(changes.len(), 1, "8000 closed; 22 losing its pid is no change: {changes:?}");
        assert!(!changes[0].0);
        assert!(!ports.list().attributed, "a port without a pid");
        assert_eq!(ports.list().ports[0].proxy_path, "/v1/ports/22/proxy/");
    }

    #[test]
    fn ports_are_numbers_from_1_to_65535() {
        assert_eq!(parse_port("8080").unwrap(), 8080);
        for bad in ["0", "70000", "-1", "+80", "http", "", " 80"] {
            assert!(matches!(parse_port(bad), Err(PortError::BadPort { .. })), "{bad}");
        }
    }

    #[test]
    fn link_paths_are_checked() {
        for good in ["/", "/index.html?x=1", "/a b"] {
            assert!(check_link_path(good).is_ok(), "{good}");
        }
        for bad in ["", "index.html", "/a\r\nSet-Cookie: x", &format!("/{}", "a".repeat(MAX_LINK_PATH))] {
            assert!(check_link_path(bad).is_err(), "{bad:?}");
        }
    }
}
