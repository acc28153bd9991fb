//! Keep-awake: a Sprite pauses when no client is connected, even while an
//! agent tether started is mid-turn (the agent and its model stream do not
//! count as activity). While any session is busy (a turn running, or a
//! permission or question open), tether holds a Sprite Task; it refreshes it
//! well before it expires and deletes it when the last busy session settles.
//!
//! Busy-ness is read from the event bus (`session.status` events), and from
//! the store whenever the bus lagged, so no status change is missed. The task
//! has one name per tether instance (`tether-<port>`): a task left by a
//! previous run that was killed is deleted when the next one starts.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::api::SpriteApi;
use crate::session::Shared;
use crate::store::{reader, Committed};

/// How a keeper holds its task.
#[derive(Debug, Clone)]
pub struct KeepAwakeConfig {
    /// The task's name.
    pub task: String,
    /// The expiry asked for at every refresh.
    pub expire: Duration,
    /// How often a held task is refreshed (well under `expire`).
    pub refresh: Duration,
}

impl KeepAwakeConfig {
    pub fn for_port(port: u16) -> KeepAwakeConfig {
        KeepAwakeConfig {
            task: format!("tether-{port}"),
            expire: Duration::from_secs(300),
            refresh: Duration::from_secs(60),
        }
    }
}

/// After a failed call, the next try comes this soon.
const RETRY: Duration = Duration::from_secs(5);

/// A running keeper; [`Keeper::stop`] releases the task.
pub struct Keeper {
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Starts following the sessions; first deletes a stale task of a previous run.
    pub fn start(api: SpriteApi, config: KeepAwakeConfig, shared: Arc<Shared>) -> Keeper {
        // Subscribe before reading the store, so no change falls between the two.
        let bus = shared.store.subscribe();
        let (stop, stop_rx) = watch::channel(false);
        let done = tokio::spawn(run(api, config, shared, bus, stop_rx));
        Keeper { stop, done }
    }

    /// Stops following and deletes the task if it is held (waits at most a few seconds).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(3), self.done).await;
    }
}

#[derive(Deserialize)]
struct StatusEvent {
    data: StatusData,
}

#[derive(Deserialize)]
struct StatusData {
    status: tether_protocol::SessionStatus,
}

fn is_busy(status: tether_protocol::SessionStatus) -> bool {
    use tether_protocol::SessionStatus::{Running, Waiting};
    matches!(status, Running | Waiting)
}

async fn busy_from_store(shared: &Shared) -> Option<HashSet<Arc<str>>> {
    match shared.store.read(reader::busy_sessions).await {
        Ok(ids) => Some(ids.into_iter().map(Arc::from).collect()),
        Err(e) => {
            tracing::warn!(error = %e, "keep-awake could not read the sessions");
            None
        }
    }
}

/// Applies one committed event to the busy set.
fn apply(busy: &mut HashSet<Arc<str>>, e: &Committed) {
    match e.etype {
        "session.status" => match serde_json::from_str::<StatusEvent>(&e.json) {
            Ok(ev) if is_busy(ev.data.status) => {
                busy.insert(e.session_id.clone());
            }
            Ok(_) => {
                busy.remove(&e.session_id);
            }
            Err(_) => {}
        },
        "session.ended" => {
            busy.remove(&e.session_id);
        }
        _ => {}
    }
}

async fn run(
    api: SpriteApi,
    config: KeepAwakeConfig,
    shared: Arc<Shared>,
    mut bus: broadcast::Receiver<Arc<Committed>>,
    mut stop: watch::Receiver<bool>,
) {
    match api.delete_task(&config.task).await {
        Ok(true) => tracing::info!(task = %config.task, "deleted the keep-awake task a previous run left"),
        Ok(false) => {}
        Err(e) => tracing::warn!(task = %config.task, error = %e, "could not delete a stale keep-awake task"),
    }
    let mut busy = busy_from_store(&shared).await.unwrap_or_default();
    let mut held = false;
    // The next refresh of a held task, and the earliest retry after a failed call.
    let mut refresh_at: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    loop {
        let want = !busy.is_empty();
        let now = Instant::now();
        let needed = want != held || refresh_at.is_some_and(|d| d <= now);
        if needed && retry_at.is_none_or(|r| r <= now) {
            let r = if want {
                api.put_task(&config.task, config.expire).await
            } else {
                api.delete_task(&config.task).await.map(|_| ())
            };
            match r {
                Ok(()) => {
                    if want != held {
                        let what = if want { "created" } else { "deleted" };
                        tracing::info!(task = %config.task, busy = busy.len(), "keep-awake task {what}");
                    }
                    held = want;
                    refresh_at = want.then(|| Instant::now() + config.refresh);
                    retry_at = None;
                }
                Err(e) => {
                    tracing::warn!(task = %config.task, error = %e, "keep-awake call failed; retrying");
                    retry_at = Some(Instant::now() + RETRY);
                }
            }
        }
        let wake_at = match (refresh_at, retry_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            r = bus.recv() => match r {
                Ok(e) => apply(&mut busy, &e),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Some(b) = busy_from_store(&shared).await {
                        busy = b;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = sleep_until(wake_at) => {}
            _ = stop.changed() => break,
        }
    }
    if held {
        match api.delete_task(&config.task).await {
            Ok(_) => tracing::info!(task = %config.task, "keep-awake task deleted at shutdown"),
            Err(e) => tracing::warn!(task = %config.task, error = %e, "could not delete the keep-awake task"),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ev(sid: &str, etype: &'static str, json: &str) -> Committed {
        Committed { session_id: Arc::from(sid), seq: 1, gseq: 1, etype, json: json.into(), raw: None }
    }

    #[test]
    fn running_and_waiting_sessions_are_busy_until_they_settle_or_end() {
        let mut busy = HashSet::new();
        apply(&mut busy, &ev("a", "session.status", r#"{"data":{"status":"running"}}"#));
        apply(&mut busy, &ev("b", "session.status", r#"{"data":{"status":"waiting"}}"#));
        apply(&mut busy, &ev("b", "item.delta", r#"{"data":{}}"#));
        assert_eq!(busy.len(), 2);
        apply(&mut busy, &ev("a", "session.status", r#"{"data":{"status":"idle"}}"#));
        assert_eq!(busy.iter().map(|s| &**s).collect::<Vec<_>>(), vec!["b"]);
        apply(&mut busy, &ev("b", "session.ended", r#"{"data":{"reason":"terminated"}}"#));
        assert!(busy.is_empty());
    }
}
