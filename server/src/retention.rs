//! Retention (`--retain`): ended sessions past an age or beyond a count are
//! purged in the background, their events deleted in small steps through the
//! store's one writer (appends go on in between: a flood is not held up),
//! then the freed pages are given back to the file system (incremental
//! vacuum). A session is never purged while a webhook has yet to deliver
//! its events; a running or idle session is never a candidate. `DELETE
//! /v1/sessions/{id}?purge=true` stays immediate.

use std::sync::Arc;
use std::time::Duration;

use tether_protocol::event_type;

use crate::store::follow::{Follower, Live, Scope};
use crate::store::{reader, Store, StoreError};
use crate::webhooks::Webhooks;

/// Which ended sessions are kept: those younger than `max_age` and among
/// the newest `max_count` (either, or both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Retain {
    pub max_age: Option<Duration>,
    pub max_count: Option<u64>,
}

/// Events deleted per step: small enough that an append waits at most a few
/// milliseconds behind one.
const STEP: u64 = 2000;
/// Pages given back per vacuum step (4 MiB of 4 KiB pages).
const VACUUM_STEP: u32 = 1024;
/// The longest wait between two passes (sessions age while nothing happens).
const MAX_TICK: Duration = Duration::from_secs(60);

impl Retain {
    /// Parses `7d`, `12h`, `30m`, `45s` (an age), `500` (a count), or both
    /// separated by a comma (`7d,500`).
    pub fn parse(text: &str) -> Result<Retain, String> {
        let mut retain = Retain::default();
        for part in text.split(',').map(str::trim) {
            let unit = part.chars().last().filter(|c| c.is_ascii_alphabetic());
            let digits = unit.map_or(part, |_| &part[..part.len() - 1]);
            let n: u64 = digits.parse().map_err(|_| {
                format!("`{part}` is neither an age (like 7d, 12h, 30m, 45s) nor a count of sessions (like 500)")
            })?;
            let seconds = match unit {
                None => {
                    if retain.max_count.replace(n).is_some() {
                        return Err("give one count of sessions".into());
                    }
                    continue;
                }
                Some('s') => n,
                Some('m') => n.saturating_mul(60),
                Some('h') => n.saturating_mul(3600),
                Some('d') => n.saturating_mul(86_400),
                Some(u) => return Err(format!("`{part}`: unknown unit `{u}` (use s, m, h or d)")),
            };
            if seconds == 0 {
                return Err(format!("`{part}`: an age must be at least 1 s"));
            }
            if retain.max_age.replace(Duration::from_secs(seconds)).is_some() {
                return Err("give one age".into());
            }
        }
        Ok(retain)
    }

    /// How often sessions are looked at besides when one ends.
    fn tick(&self) -> Duration {
        self.max_age.map_or(MAX_TICK, |a| (a / 4).clamp(Duration::from_millis(100), MAX_TICK))
    }
}

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    pub sessions: u64,
    pub events: u64,
    /// Sessions kept because a webhook has not delivered their events yet.
    pub held: u64,
}

/// Runs passes until the store closes: at start, whenever a session ends or
/// a webhook's delivery moves, and at least every [`Retain::tick`].
pub async fn run(store: Store, webhooks: Arc<Webhooks>, retain: Retain) {
    let mut follower = Follower::subscribe(&store, Scope::Global);
    let mut moved = webhooks.watch();
    let tick = retain.tick();
    loop {
        match pass(&store, &webhooks, retain).await {
            Ok(p) if p.sessions > 0 => {
                tracing::info!(
                    sessions = p.sessions,
                    events = p.events,
                    held = p.held,
                    "retention purged ended sessions"
                )
            }
            Ok(_) => {}
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "retention could not purge; it tries again later"),
        }
        let deadline = tokio::time::Instant::now() + tick;
        loop {
            tokio::select! {
                live = follower.recv() => match live {
                    Live::Event(e) if e.etype == event_type::SESSION_ENDED => break,
                    Live::Event(_) => {}
                    Live::Behind => break,
                    Live::Closed => return,
                },
                r = moved.changed() => {
                    if r.is_err() {
                        return;
                    }
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
}

/// One pass: purges what the rule says, then gives the space back.
pub async fn pass(store: &Store, webhooks: &Webhooks, retain: Retain) -> Result<Pass, StoreError> {
    let ended_before = retain.max_age.map(|a| crate::ids::now_ms() - i64::try_from(a.as_millis()).unwrap_or(i64::MAX));
    let keep = retain.max_count;
    let candidates = store.read(move |c| reader::retention_candidates(c, ended_before, keep)).await?;
    let mut done = Pass::default();
    // Events a webhook has not passed yet are not the store's to drop.
    let delivered = webhooks.lowest_cursor().unwrap_or(u64::MAX);
    for (id, last_gseq) in candidates {
        if last_gseq > delivered {
            done.held += 1;
            continue;
        }
        loop {
            let (deleted, gone) = store.purge_some(&id, STEP).await?;
            done.events += deleted;
            if gone {
                break;
            }
        }
        done.sessions += 1;
    }
    if done.sessions > 0 {
        // At most as many steps as there were free pages: never a loop without end.
        let mut free = store.read(reader::freelist_count).await?;
        while free > 0 {
            store.vacuum(VACUUM_STEP).await?;
            let now = store.read(reader::freelist_count).await?;
            if now >= free {
                break;
            }
            free = now;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_an_age_a_count_or_both() {
        let day = Duration::from_secs(86_400);
        assert_eq!(Retain::parse("7d").unwrap(), Retain { max_age: Some(7 * day), max_count: None });
        assert_eq!(Retain::parse("500").unwrap(), Retain { max_age: None, max_count: Some(500) });
        assert_eq!(
            Retain::parse("12h, 3").unwrap(),
            Retain { max_age: Some(Duration::from_secs(12 * 3600)), max_count: Some(3) }
        );
        assert_eq!(Retain::parse("30m").unwrap().max_age, Some(Duration::from_secs(1800)));
        assert_eq!(Retain::parse("0").unwrap().max_count, Some(0));
        for bad in ["", "7w", "d", "0s", "1d,2d", "1,2", "-3"] {
            let e = Retain::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(Retain::parse("7w").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn passes_come_often_enough_for_the_age() {
        assert_eq!(Retain { max_age: None, max_count: Some(3) }.tick(), MAX_TICK);
        assert_eq!(
            Retain { max_age: Some(Duration::from_secs(2)), max_count: None }.tick(),
            Duration::from_millis(500)
        );
        assert_eq!(Retain { max_age: Some(Duration::from_secs(86_400)), max_count: None }.tick(), MAX_TICK);
    }
}
