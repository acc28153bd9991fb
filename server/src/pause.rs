//! Pause detection. A paused Sprite (or a stopped process) wakes with the
//! same process and its agents, but every socket it had is dead: an agent's
//! model call in flight may have failed. Nothing tells the process; its
//! clocks do, each for one kind of pause. A ticker wakes every `period` and
//! compares three clocks over the tick:
//!
//! - the monotonic clock ran on much longer than the period: the process
//!   itself was stopped (SIGSTOP, a debugger) while the machine ran;
//! - the boot-time clock ran ahead of the monotonic one: the machine was
//!   suspended (`CLOCK_BOOTTIME` counts a suspension, `CLOCK_MONOTONIC` not);
//! - the wall clock ran ahead of the monotonic one: the clock was stepped
//!   forward, which is how a frozen VM's clock catches up. A Firecracker VM
//!   resumed from a memory snapshot keeps its old wall clock and its
//!   monotonic clock does not count the pause, until something steps the
//!   clock (SPRITES.md, "Warm wake"): the step may come long after the wake,
//!   and the pause is reported at the first tick after it.
//!
//! Each session with a live agent then gets `server.resumed {paused_ms,
//! detected_by}`. Not detected: a resume whose clock is never stepped (no
//! clock shows it), and any gap or step under the threshold (an NTP slew).
//! A forward step of the clock by hand or by NTP at or above the threshold
//! reads as a pause. This module only watches the clocks; what a pause does
//! to a session is the session's business.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tether_protocol::{PauseSignal, ServerResumed};

use crate::session::Sessions;

/// The ticker's period.
pub const PERIOD: Duration = Duration::from_secs(1);

/// How much later than its period a tick must come to count as a pause.
pub const DEFAULT_THRESHOLD: Duration = Duration::from_secs(5);

/// TEST ONLY: a file holding a number of milliseconds added to the wall
/// clock as this module reads it, re-read at every tick, so the e2e tests
/// can step the clock forward without touching the system's. Unset (always,
/// outside tests) or unreadable, nothing is added. Not documented for users.
const TEST_CLOCK_OFFSET_ENV: &str = "TETHER_TEST_CLOCK_OFFSET_FILE";

/// How far each clock moved between two ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The monotonic clock.
    pub mono: Duration,
    /// The wall clock; `None` when it went back.
    pub wall: Option<Duration>,
    /// The boot-time clock, and the monotonic clock read beside it (`None`
    /// without `CLOCK_BOOTTIME`).
    pub boot: Option<(Duration, Duration)>,
}

/// How long the server was frozen between two ticks `period` apart, and
/// the clock that shows it, if any of them shows at least `threshold`:
/// the monotonic clock's lateness, or how far the boot-time or wall clock
/// ran ahead of the monotonic one. The pause is the largest lateness of any
/// clock; when more than one shows it, the one that shows the most is
/// named (the boot-time clock before the others on a tie: it is the one
/// made to count a suspension).
pub fn pause_between(period: Duration, threshold: Duration, gap: Gap) -> Option<(Duration, PauseSignal)> {
    let wall = gap.wall.unwrap_or_default();
    let (boot_ahead, boot) = match gap.boot {
        Some((boot, mono)) => (boot.saturating_sub(mono), gap.mono + boot.saturating_sub(mono)),
        None => (Duration::ZERO, Duration::ZERO),
    };
    let signals = [
        (boot_ahead, PauseSignal::BootClock),
        (gap.mono.saturating_sub(period), PauseSignal::Monotonic),
        (wall.saturating_sub(gap.mono), PauseSignal::WallClock),
    ];
    let (shown, signal) =
        signals.into_iter().fold(
            (Duration::ZERO, None),
            |best, (by, signal)| {
                if by > best.0 {
                    (by, Some(signal))
                } else {
                    best
                }
            },
        );
    let signal = signal.filter(|_| shown >= threshold)?;
    Some((gap.mono.max(wall).max(boot).saturating_sub(period), signal))
}

/// The clocks at one tick.
struct Reading {
    mono: Instant,
    /// Milliseconds since the Unix epoch, plus the test offset.
    wall_ms: i128,
    /// (`CLOCK_MONOTONIC`, `CLOCK_BOOTTIME`).
    clocks: Option<(Duration, Duration)>,
}

impl Reading {
    fn now(offset_file: Option<&Path>) -> Reading {
        let wall = match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(since) => i128::try_from(since.as_millis()).unwrap_or(i128::MAX),
            Err(before) => -i128::try_from(before.duration().as_millis()).unwrap_or(i128::MAX),
        };
        Reading {
            mono: Instant::now(),
            wall_ms: wall + offset_file.map(test_offset_ms).unwrap_or(0),
            clocks: crate::process::monotonic_and_boot_clocks(),
        }
    }

    fn since(&self, before: &Reading) -> Gap {
        let wall = u64::try_from(self.wall_ms - before.wall_ms).ok().map(Duration::from_millis);
        let boot = match (self.clocks, before.clocks) {
            (Some((mono, boot)), Some((mono0, boot0))) => {
                Some((boot.saturating_sub(boot0), mono.saturating_sub(mono0)))
            }
            _ => None,
        };
        Gap { mono: self.mono - before.mono, wall, boot }
    }
}

/// The test offset in the file (see [`TEST_CLOCK_OFFSET_ENV`]); 0 when unreadable.
fn test_offset_ms(file: &Path) -> i128 {
    std::fs::read_to_string(file).ok().and_then(|s| s.trim().parse::<i64>().ok()).map_or(0, i128::from)
}

/// Runs until the server stops, telling the sessions about every pause.
pub async fn watch(shared: Arc<Sessions>, threshold: Duration) {
    let offset_file = std::env::var_os(TEST_CLOCK_OFFSET_ENV).map(PathBuf::from);
    let mut last = Reading::now(offset_file.as_deref());
    loop {
        tokio::time::sleep(PERIOD).await;
        let now = Reading::now(offset_file.as_deref());
        if let Some((paused, signal)) = pause_between(PERIOD, threshold, now.since(&last)) {
            let paused_ms = u64::try_from(paused.as_millis()).unwrap_or(u64::MAX);
            let resumed = ServerResumed { paused_ms, detected_by: Some(signal) };
            let sessions = shared.notify_resumed(resumed).await;
            tracing::warn!(paused_ms, detected_by = signal.as_str(), sessions, "the server was paused and has resumed");
        }
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn gap(mono: u64, wall: Option<u64>, boot: Option<u64>) -> Gap {
        Gap { mono: S(mono), wall: wall.map(S), boot: boot.map(|b| (S(b), S(mono))) }
    }

    #[test]
    fn an_on_time_tick_is_no_pause() {
        assert_eq!(pause_between(S(1), S(5), gap(1, Some(1), Some(1))), None);
        assert_eq!(pause_between(S(1), S(5), gap(3, Some(3), Some(3))), None);
        // A small step or slew under the threshold.
        assert_eq!(pause_between(S(1), S(5), gap(1, Some(5), Some(1))), None);
        // The wall clock set back is not a pause by itself.
        assert_eq!(pause_between(S(1), S(5), gap(1, None, Some(1))), None);
    }

    #[test]
    fn a_stopped_process_shows_on_the_monotonic_clock() {
        let got = pause_between(S(1), S(5), gap(31, Some(31), Some(31)));
        assert_eq!(got, Some((S(30), PauseSignal::Monotonic)));
        // Without a boot-time clock too.
        assert_eq!(pause_between(S(1), S(5), gap(31, Some(31), None)), Some((S(30), PauseSignal::Monotonic)));
    }

    #[test]
    fn a_frozen_vm_whose_clock_is_stepped_shows_on_the_wall_clock() {
        // The monotonic clock stood still, the wall clock was stepped (maybe long after the wake).
        assert_eq!(pause_between(S(1), S(5), gap(1, Some(61), Some(1))), Some((S(60), PauseSignal::WallClock)));
    }

    #[test]
    fn a_suspended_machine_shows_on_the_boot_clock() {
        assert_eq!(pause_between(S(1), S(5), gap(1, Some(1), Some(41))), Some((S(40), PauseSignal::BootClock)));
        // The wall clock stepped as well: the boot clock is named on a tie.
        assert_eq!(pause_between(S(1), S(5), gap(1, Some(41), Some(41))), Some((S(40), PauseSignal::BootClock)));
    }

    #[test]
    fn the_test_offset_file_is_read_leniently() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("offset");
        assert_eq!(test_offset_ms(&file), 0);
        std::fs::write(&file, "120000\n").unwrap();
        assert_eq!(test_offset_ms(&file), 120_000);
        std::fs::write(&file, "not a number").unwrap();
        assert_eq!(test_offset_ms(&file), 0);
    }
}
