//! Live file changes under the workspace root: one recursive `notify`
//! watcher per root, its events debounced and coalesced per path, ignore
//! rules applied, then numbered and kept in a bounded replay window that
//! every `GET /v1/fs/watch` stream reads from.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use tether_protocol::{WatchEvent, WatchKind};
use tokio::sync::{mpsc, watch};

use super::FsError;

/// Events of a burst within this long of each other are delivered together.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// How many recent events a reconnect can replay (`TETHER_WATCH_WINDOW`).
pub const DEFAULT_WINDOW: usize = 65_536;
/// Ignored by default (`TETHER_WATCH_IGNORE`, comma-separated, replaces it):
/// a rule matches a path containing it as whole segments.
pub const DEFAULT_IGNORE: &[&str] = &[".git/objects", "node_modules", "target"];

/// What a stream is given when it asks for events after `cursor`.
pub enum Since {
    Events(Vec<(u64, WatchEvent)>),
    /// The window no longer holds everything after the cursor: re-list.
    Overflow {
        head: u64,
    },
}

struct Ring {
    events: VecDeque<(u64, WatchEvent)>,
    /// The id of the last event ever appended (0 before any).
    head: u64,
}

/// The watcher of one workspace root.
pub struct Hub {
    ring: Mutex<Ring>,
    window: usize,
    head_tx: watch::Sender<u64>,
    _watcher: Mutex<notify::RecommendedWatcher>,
}

impl Hub {
    /// The id of the last event so far.
    pub fn head(&self) -> u64 {
        self.ring.lock().map(|r| r.head).unwrap_or(0)
    }

    /// Wakes when events are appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.head_tx.subscribe()
    }

    /// Every event after `cursor`, or an overflow when some of them have
    /// left the window (or the cursor is from another run of the server).
    pub fn since(&self, cursor: u64) -> Since {
        let Ok(ring) = self.ring.lock() else { return Since::Overflow { head: 0 } };
        let oldest = ring.events.front().map(|(id, _)| *id).unwrap_or(ring.head + 1);
        if cursor > ring.head || cursor + 1 < oldest {
            return Since::Overflow { head: ring.head };
        }
        let skip = (cursor + 1 - oldest) as usize;
        Since::Events(ring.events.iter().skip(skip).cloned().collect())
    }

    fn append(&self, batch: Vec<WatchEvent>) {
        if batch.is_empty() {
            return;
        }
        let head = {
            let Ok(mut ring) = self.ring.lock() else { return };
            for event in batch {
                ring.head += 1;
                let id = ring.head;
                ring.events.push_back((id, event));
                if ring.events.len() > self.window {
                    ring.events.pop_front();
                }
            }
            ring.head
        };
        self.head_tx.send_replace(head);
    }

    /// Everything before now is gone from the window: a stream behind must re-list.
    fn overflow(&self) {
        let head = {
            let Ok(mut ring) = self.ring.lock() else { return };
            ring.events.clear();
            // Bump the head so every cursor is behind the (empty) window.
            ring.head += 1;
            ring.head
        };
        self.head_tx.send_replace(head);
    }
}

/// The hub of `root`, started on first use.
pub fn hub(root: &Path) -> Result<Arc<Hub>, FsError> {
    static HUBS: OnceLock<Mutex<HashMap<PathBuf, Arc<Hub>>>> = OnceLock::new();
    let hubs = HUBS.get_or_init(Default::default);
    let mut hubs = hubs.lock().map_err(|_| FsError::Watch { what: "watch registry poisoned".into() })?;
    if let Some(hub) = hubs.get(root) {
        return Ok(hub.clone());
    }
    let hub = start(root)?;
    hubs.insert(root.to_path_buf(), hub.clone());
    Ok(hub)
}

fn env_window() -> usize {
    std::env::var("TETHER_WATCH_WINDOW")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_WINDOW)
}

fn env_ignore() -> Vec<String> {
    match std::env::var("TETHER_WATCH_IGNORE") {
        Ok(v) => v.split(',').map(|s| s.trim().trim_matches('/').to_string()).filter(|s| !s.is_empty()).collect(),
        Err(_) => DEFAULT_IGNORE.iter().map(|s| s.to_string()).collect(),
    }
}

fn start(root: &Path) -> Result<Arc<Hub>, FsError> {
    let (tx, rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
    let mut watcher = notify::recommended_watcher(move |res| {
        let _ = tx.send(res);
    })
    .map_err(|e| FsError::Watch { what: format!("cannot start the file watcher: {e}") })?;
    watcher
        .watch(root, RecursiveMode::Recursive)
        .map_err(|e| FsError::Watch { what: format!("cannot watch {}: {e}", root.display()) })?;
    let (head_tx, _) = watch::channel(0);
    let hub = Arc::new(Hub {
        ring: Mutex::new(Ring { events: VecDeque::new(), head: 0 }),
        window: env_window(),
        head_tx,
        _watcher: Mutex::new(watcher),
    });
    tokio::spawn(debounce(Arc::downgrade(&hub), root.to_path_buf(), env_ignore(), rx));
    Ok(hub)
}

/// Is `rel` (`/`-separated) ignored by one of `rules`?
pub fn ignored(rel: &str, rules: &[String]) -> bool {
    let padded = format!("/{rel}/");
    rules.iter().any(|r| padded.contains(&format!("/{r}/")))
}

/// Our own temporary files of atomic writes (`.tether_<id>.tmp`).
fn is_temp(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with(".tether_") && name.ends_with(".tmp")
}

async fn debounce(
    hub: std::sync::Weak<Hub>,
    root: PathBuf,
    rules: Vec<String>,
    mut rx: mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
) {
    while let Some(first) = rx.recv().await {
        let mut raw = vec![first];
        tokio::time::sleep(DEBOUNCE).await;
        while let Ok(more) = rx.try_recv() {
            raw.push(more);
        }
        let Some(hub) = hub.upgrade() else { return };
        match coalesce(&root, &rules, raw) {
            Some(batch) => hub.append(batch),
            None => hub.overflow(),
        }
    }
}

fn put(out: &mut Vec<Option<WatchEvent>>, index: &mut HashMap<String, usize>, kind: WatchKind, path: String) {
    if is_temp(&path) {
        return;
    }
    if let Some(&i) = index.get(&path) {
        if let Some(prev) = out[i].as_ref().map(|e| e.kind) {
            let merged = match (prev, kind) {
                (WatchKind::Created, WatchKind::Modified) => Some(WatchKind::Created),
                (WatchKind::Created, WatchKind::Removed) => None,
                (WatchKind::Removed, WatchKind::Created) => Some(WatchKind::Modified),
                (_, k) => Some(k),
            };
            out[i] = merged.map(|kind| WatchEvent { kind, path, from: None });
            return;
        }
    }
    index.insert(path.clone(), out.len());
    out.push(Some(WatchEvent { kind, path, from: None }));
}

/// One burst of raw events as the API reports it; `None` when the kernel
/// queue overflowed (the watcher lost events).
fn coalesce(root: &Path, rules: &[String], raw: Vec<notify::Result<notify::Event>>) -> Option<Vec<WatchEvent>> {
    let rel = |p: &Path| -> Option<String> {
        let r = p.strip_prefix(root).ok()?.to_string_lossy().into_owned();
        (!r.is_empty() && !ignored(&r, rules)).then_some(r)
    };
    let events: Vec<notify::Event> = raw.into_iter().filter_map(Result::ok).collect();
    if events.iter().any(|e| e.need_rescan()) {
        return None;
    }
    let paired: HashSet<usize> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Modify(ModifyKind::Name(RenameMode::Both))))
        .filter_map(|e| e.tracker())
        .collect();
    let mut out: Vec<Option<WatchEvent>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for e in events {
        match e.kind {
            EventKind::Create(_) => {
                e.paths.iter().filter_map(|p| rel(p)).for_each(|p| put(&mut out, &mut index, WatchKind::Created, p))
            }
            EventKind::Remove(_) => {
                e.paths.iter().filter_map(|p| rel(p)).for_each(|p| put(&mut out, &mut index, WatchKind::Removed, p))
            }
            EventKind::Modify(ModifyKind::Name(mode)) => match mode {
                RenameMode::Both if e.paths.len() == 2 => {
                    let (from, to) = (rel(&e.paths[0]), rel(&e.paths[1]));
                    match (from, to) {
                        // An atomic write landing: the target changed.
                        (Some(f), Some(t)) if is_temp(&f) => put(&mut out, &mut index, WatchKind::Modified, t),
                        (Some(f), Some(t)) => {
                            index.remove(&t);
                            out.push(Some(WatchEvent { kind: WatchKind::Renamed, path: t, from: Some(f) }));
                        }
                        (Some(f), None) => put(&mut out, &mut index, WatchKind::Removed, f),
                        (None, Some(t)) => put(&mut out, &mut index, WatchKind::Created, t),
                        (None, None) => {}
                    }
                }
                RenameMode::From if !e.tracker().is_some_and(|t| paired.contains(&t)) => {
                    e.paths.iter().filter_map(|p| rel(p)).for_each(|p| put(&mut out, &mut index, WatchKind::Removed, p))
                }
                RenameMode::To if !e.tracker().is_some_and(|t| paired.contains(&t)) => {
                    e.paths.iter().filter_map(|p| rel(p)).for_each(|p| put(&mut out, &mut index, WatchKind::Created, p))
                }
                _ => {}
            },
            EventKind::Modify(_) => {
                e.paths.iter().filter_map(|p| rel(p)).for_each(|p| put(&mut out, &mut index, WatchKind::Modified, p))
            }
            EventKind::Access(_) | EventKind::Any | EventKind::Other => {}
        }
    }
    Some(out.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules_match_whole_segments() {
        let rules: Vec<String> = DEFAULT_IGNORE.iter().map(|s| s.to_string()).collect();
        assert!(ignored("node_modules/x/y.js", &rules));
        assert!(ignored("a/node_modules", &rules));
        assert!(ignored(".git/objects/ab/cdef", &rules));
        assert!(ignored("crate/target/debug/x", &rules));
        assert!(!ignored(".git/HEAD", &rules));
        assert!(!ignored("targets/x", &rules));
        assert!(!ignored("src/main.rs", &rules));
    }
}
