//! Pause detection. A paused Sprite (or a stopped process) wakes with the
//! same process and its agents, but every socket it had is dead: an agent's
//! model call in flight may have failed. Nothing tells the process; its
//! clocks do. A ticker wakes every `period`; when a tick comes far later than
//! the period by either clock (monotonic for a stopped process, wall clock
//! for a frozen VM whose clock is stepped on wake), the server was frozen,
//! and every session with a live agent gets `server.resumed {paused_ms}`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::session::Shared;

/// The ticker's period.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How much later than its period a tick must come to count as a pause.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_secs(5);

/// How long the server was frozen between two ticks `period` apart, if that
/// is at least `threshold`: the larger lateness of the two clocks.
pub fn pause_between(
    period: Duration,
    threshold: Duration,
    mono: Duration,
    wall: Option<Duration>,
) -> Option<Duration> {
    let late = mono.max(wall.unwrap_or_default()).saturating_sub(period);
    (late >= threshold).then_some(late)
}

/// Runs until the server stops, telling the sessions about every pause.
pub async fn watch(shared: Arc<Shared>, threshold: Duration) {
    let mut mono = Instant::now();
    let mut wall = SystemTime::now();
    loop {
        tokio::time::sleep(PERIOD).await;
        let (m, w) = (Instant::now(), SystemTime::now());
        if let Some(paused) = pause_between(PERIOD, threshold, m - mono, w.duration_since(wall).ok()) {
            let paused_ms = u64::try_from(paused.as_millis()).unwrap_or(u64::MAX);
            let sessions = shared.notify_resumed(paused_ms).await;
            tracing::warn!(paused_ms, sessions, "the server was paused and has resumed");
        }
        (mono, wall) = (m, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_late_tick_by_either_clock_is_a_pause_and_an_on_time_one_is_not() {
        assert_eq!(pause_between(S(1), S(5), S(1), Some(S(1))), None);
        assert_eq!(pause_between(S(1), S(5), S(3), Some(S(3))), None);
        // A stopped process: both clocks ran on.
        assert_eq!(pause_between(S(1), S(5), S(31), Some(S(31))), Some(S(30)));
        // A frozen VM: the monotonic clock stood still, the wall clock was stepped.
        assert_eq!(pause_between(S(1), S(5), S(1), Some(S(61))), Some(S(60)));
        // The wall clock set back (no `wall` delta) is not a pause by itself.
        assert_eq!(pause_between(S(1), S(5), S(1), None), None);
    }
}
