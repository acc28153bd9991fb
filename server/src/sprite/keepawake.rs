//! Keep-awake: a Sprite pauses when no client is connected, even while an
//! agent tether started is mid-turn (the agent and its model stream do not
//! count as activity). While any session is busy (a turn running, or a
//! permission or question open), tether holds a Sprite Task; it refreshes it
//! well before it expires and deletes it when the last busy session settles.
//!
//! Waiting for a person is not work: once no turn has run for `wait_limit`
//! and sessions only wait for an answer, the Task is released (each waiting
//! session gets `server.keep_awake {held: false}`) so a forgotten permission
//! does not keep the Sprite billing for hours; a paused Sprite does not hurt
//! an agent blocked on its stdin. When a turn runs again the Task is taken
//! again (`server.keep_awake {held: true}` to the sessions told before).
//!
//! Webhooks are work too: once no session is busy, events committed but not
//! yet delivered to a subscription (its receiver slow or failing) keep the
//! Task held, so a turn's last events reach the receiver before the Sprite
//! sleeps — for at most `webhook_limit` of retries, after which the Task is
//! released and the subscriptions still behind are marked failing (delivery
//! goes on whenever the Sprite is awake).
//!
//! Busy-ness is read from the live log through the store's follower
//! (`session.status` events, [`crate::store::follow`]), and from the store's
//! sessions whenever the follower fell behind, so no status change is missed. The task
//! has one name per tether instance (`tether-<port>`): a task left by a
//! previous run that was killed is deleted when the next one starts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::time::Instant;

use tether_protocol::{event_type, SessionStatus};

use super::api::SpriteApi;
use crate::session::Sessions;
use crate::store::follow::{Follower, Live, Scope};
use crate::store::{reader, Committed};
use crate::webhooks::Webhooks;

/// How a keeper holds its task.
#[derive(Debug, Clone)]
pub struct KeepAwakeConfig {
    /// The task's name.
    pub task: String,
    /// The expiry asked for at every refresh.
    pub expire: Duration,
    /// How often a held task is refreshed (well under `expire`).
    pub refresh: Duration,
    /// How long sessions that only wait for a person keep the Sprite awake.
    pub wait_limit: Duration,
    /// How long undelivered webhook events keep it awake once nothing else does.
    pub webhook_limit: Duration,
}

/// Default of [`KeepAwakeConfig::wait_limit`].
pub const DEFAULT_WAIT_LIMIT: Duration = Duration::from_secs(15 * 60);

/// Default of [`KeepAwakeConfig::webhook_limit`].
pub const DEFAULT_WEBHOOK_LIMIT: Duration = Duration::from_secs(10 * 60);

impl KeepAwakeConfig {
    pub fn for_port(port: u16) -> KeepAwakeConfig {
        KeepAwakeConfig {
            task: format!("tether-{port}"),
            expire: Duration::from_secs(300),
            refresh: Duration::from_secs(60),
            wait_limit: DEFAULT_WAIT_LIMIT,
            webhook_limit: DEFAULT_WEBHOOK_LIMIT,
        }
    }
}

/// How long undelivered webhook events wait before the Task is taken for them.
const WEBHOOK_GRACE: Duration = Duration::from_secs(2);

/// After a failed call, the next try comes this soon.
const RETRY: Duration = Duration::from_secs(5);

/// A running keeper; [`Keeper::stop`] releases the task.
pub struct Keeper {
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<()>,
}

impl Keeper {
    /// Starts following the sessions; first deletes a stale task of a previous run.
    pub fn start(api: SpriteApi, config: KeepAwakeConfig, shared: Arc<Sessions>, webhooks: Arc<Webhooks>) -> Keeper {
        // Subscribe before reading the store, so no change falls between the two.
        let follower = Follower::subscribe(&shared.store, Scope::Global);
        let (stop, stop_rx) = watch::channel(false);
        let done = tokio::spawn(run(api, config, shared, webhooks, follower, stop_rx));
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
    status: SessionStatus,
}

type Busy = HashMap<Arc<str>, SessionStatus>;

fn is_busy(status: SessionStatus) -> bool {
    matches!(status, SessionStatus::Running | SessionStatus::Waiting)
}

async fn busy_from_store(shared: &Sessions) -> Option<Busy> {
    match shared.store.read(reader::busy_sessions).await {
        Ok(rows) => Some(
            rows.into_iter()
                .map(|(id, status)| {
                    let status = if status == "waiting" { SessionStatus::Waiting } else { SessionStatus::Running };
                    (Arc::from(id), status)
                })
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "keep-awake could not read the sessions");
            None
        }
    }
}

/// Applies one committed event to the busy sessions.
fn apply(busy: &mut Busy, e: &Committed) {
    match e.etype {
        event_type::SESSION_STATUS => match serde_json::from_str::<StatusEvent>(&e.json) {
            Ok(ev) if is_busy(ev.data.status) => {
                busy.insert(e.session_id.clone(), ev.data.status);
            }
            Ok(_) => {
                busy.remove(&e.session_id);
            }
            Err(_) => {}
        },
        event_type::SESSION_ENDED => {
            busy.remove(&e.session_id);
        }
        _ => {}
    }
}

/// When sessions only wait for a person (none running), since when.
fn only_waiting(busy: &Busy, since: Option<Instant>, now: Instant) -> Option<Instant> {
    let running = busy.values().any(|s| *s == SessionStatus::Running);
    (!running && !busy.is_empty()).then(|| since.unwrap_or(now))
}

/// The last gseq of the store (0 if it cannot be read: nothing is waited for).
async fn last_gseq(shared: &Sessions) -> u64 {
    shared.store.read(reader::last_gseq).await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "keep-awake could not read the store's last gseq");
        0
    })
}

/// Whether undelivered webhook events hold the task: `since` is when the
/// subscriptions fell behind `last` (kept while they stay behind), and the
/// hold ends `limit` after it.
fn webhooks_hold(behind: bool, since: Option<Instant>, now: Instant, limit: Duration) -> (Option<Instant>, bool) {
    if !behind {
        return (None, false);
    }
    let since = since.unwrap_or(now);
    (Some(since), now < since + limit)
}

async fn tell(shared: &Sessions, ids: impl IntoIterator<Item = Arc<str>>, data: &tether_protocol::ServerKeepAwake) {
    for id in ids {
        shared.notify_keep_awake(&id, data.clone()).await;
    }
}

async fn run(
    api: SpriteApi,
    config: KeepAwakeConfig,
    shared: Arc<Sessions>,
    webhooks: Arc<Webhooks>,
    mut follower: Follower,
    mut stop: watch::Receiver<bool>,
) {
    let mut hooks_moved = webhooks.watch();
    let mut hooks_open = true;
    match api.delete_task(&config.task).await {
        Ok(true) => tracing::info!(task = %config.task, "deleted the keep-awake task a previous run left"),
        Ok(false) => {}
        Err(e) => tracing::warn!(task = %config.task, error = %e, "could not delete a stale keep-awake task"),
    }
    let mut busy = busy_from_store(&shared).await.unwrap_or_default();
    // The last event committed, and since when webhooks have been behind it.
    let mut last = last_gseq(&shared).await;
    let mut hooks_since: Option<Instant> = None;
    let mut gave_up = false;
    let mut held = false;
    // The next refresh of a held task, and the earliest retry after a failed call.
    let mut refresh_at: Option<Instant> = None;
    let mut retry_at: Option<Instant> = None;
    // Since when sessions have only waited for a person, and who was told the task was released.
    let mut waiting_since: Option<Instant> = None;
    let mut released_to: HashSet<Arc<str>> = HashSet::new();
    loop {
        let now = Instant::now();
        waiting_since = only_waiting(&busy, waiting_since, now);
        let release_at = waiting_since.map(|t| t + config.wait_limit);
        let released = release_at.is_some_and(|r| r <= now);
        let behind = webhooks.lowest_cursor().is_some_and(|c| c < last);
        let (since, hold_hooks) = webhooks_hold(behind, hooks_since, now, config.webhook_limit);
        hooks_since = since;
        if !behind {
            gave_up = false;
        } else if !hold_hooks && !gave_up {
            gave_up = true;
            let ids = webhooks.gave_up_on(last, config.webhook_limit);
            tracing::warn!(task = %config.task, webhooks = ids.len(), "keep-awake stopped waiting for webhook deliveries");
        }
        // Events committed while nothing is busy are usually delivered at
        // once: the Task is taken for them only if they stay undelivered a
        // moment (a Sprite pauses ~30 s after its last activity); a held one
        // is kept.
        let take_at = hooks_since.map(|s| s + WEBHOOK_GRACE);
        let hold_hooks = hold_hooks && !gave_up && (held || take_at.is_some_and(|t| t <= now));
        let want = (!busy.is_empty() && !released) || hold_hooks;
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
                        tracing::info!(task = %config.task, busy = busy.len(), released, webhooks = hold_hooks,
                            "keep-awake task {what}");
                    }
                    if want && !released_to.is_empty() {
                        let data = tether_protocol::ServerKeepAwake {
                            held: true,
                            reason: "work_resumed".into(),
                            waited_ms: None,
                        };
                        tell(&shared, std::mem::take(&mut released_to), &data).await;
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
        if released && !held {
            let new: Vec<Arc<str>> = busy.keys().filter(|id| !released_to.contains(*id)).cloned().collect();
            if !new.is_empty() {
                let waited = waiting_since.map(|t| now.saturating_duration_since(t)).unwrap_or_default();
                let data = tether_protocol::ServerKeepAwake {
                    held: false,
                    reason: "waiting_for_person".into(),
                    waited_ms: Some(u64::try_from(waited.as_millis()).unwrap_or(u64::MAX)),
                };
                released_to.extend(new.iter().cloned());
                tell(&shared, new, &data).await;
            }
        }
        // Sessions that ended or settled are not told the task is back.
        released_to.retain(|id| busy.contains_key(id));
        let hooks_limit = hooks_since.filter(|_| hold_hooks).map(|s| s + config.webhook_limit);
        let hooks_take = take_at.filter(|_| behind && !gave_up && !held && !hold_hooks);
        let wake_at = [refresh_at, retry_at, release_at.filter(|_| !released), hooks_limit, hooks_take]
            .into_iter()
            .flatten()
            .min();
        let wake_at = match retry_at {
            Some(r) => wake_at.map(|w| w.max(r)),
            None => wake_at,
        };
        tokio::select! {
            live = follower.recv() => match live {
                Live::Event(e) => {
                    last = last.max(e.gseq);
                    apply(&mut busy, &e);
                }
                // Statuses were missed: the sessions' stored status says where they stand.
                Live::Behind => {
                    if let Some(b) = busy_from_store(&shared).await {
                        busy = b;
                    }
                    last = last.max(last_gseq(&shared).await);
                }
                Live::Closed => break,
            },
            _ = sleep_until(wake_at) => {}
            moved = hooks_moved.changed(), if hooks_open => hooks_open = moved.is_ok(),
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
    use super::*;

    fn ev(sid: &str, etype: &'static str, json: &str) -> Committed {
        Committed { session_id: Arc::from(sid), seq: 1, gseq: 1, etype, json: json.into(), raw: None }
    }

    #[test]
    fn running_and_waiting_sessions_are_busy_until_they_settle_or_end() {
        let mut busy = Busy::new();
        apply(&mut busy, &ev("a", event_type::SESSION_STATUS, r#"{"data":{"status":"running"}}"#));
        apply(&mut busy, &ev("b", event_type::SESSION_STATUS, r#"{"data":{"status":"waiting"}}"#));
        apply(&mut busy, &ev("b", event_type::ITEM_DELTA, r#"{"data":{}}"#));
        assert_eq!(busy.len(), 2);
        apply(&mut busy, &ev("a", event_type::SESSION_STATUS, r#"{"data":{"status":"idle"}}"#));
        assert_eq!(busy.keys().map(|s| &**s).collect::<Vec<_>>(), vec!["b"]);
        apply(&mut busy, &ev("b", event_type::SESSION_ENDED, r#"{"data":{"reason":"terminated"}}"#));
        assert!(busy.is_empty());
    }

    #[test]
    fn webhooks_behind_hold_the_task_for_the_limit_from_when_they_fell_behind() {
        let limit = Duration::from_secs(600);
        let now = Instant::now();
        assert_eq!(webhooks_hold(false, Some(now), now, limit), (None, false), "caught up: no hold, clock reset");
        assert_eq!(webhooks_hold(true, None, now, limit), (Some(now), true), "behind: the clock starts");
        let earlier = now - Duration::from_secs(599);
        assert_eq!(webhooks_hold(true, Some(earlier), now, limit), (Some(earlier), true), "the clock keeps its start");
        let long_ago = now - Duration::from_secs(600);
        assert_eq!(webhooks_hold(true, Some(long_ago), now, limit), (Some(long_ago), false), "past the limit");
    }

    #[test]
    fn only_sessions_that_all_wait_for_a_person_start_the_wait_clock() {
        let now = Instant::now();
        let mut busy = Busy::new();
        assert_eq!(only_waiting(&busy, None, now), None, "nothing busy");
        busy.insert(Arc::from("a"), SessionStatus::Waiting);
        assert_eq!(only_waiting(&busy, None, now), Some(now));
        let earlier = now - Duration::from_secs(5);
        assert_eq!(only_waiting(&busy, Some(earlier), now), Some(earlier), "the clock keeps its start");
        busy.insert(Arc::from("b"), SessionStatus::Running);
        assert_eq!(only_waiting(&busy, Some(earlier), now), None, "a running turn is work");
    }
}
