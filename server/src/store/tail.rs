//! The newest committed events, kept in memory so that a follower that
//! fell behind the live bus (a slow client, a burst bigger than the bus's
//! window, a hundred clients of one busy session) catches up from here
//! instead of the database.
//!
//! It is a cache, never the source of truth: the writer pushes each
//! committed batch (after the commit, before the bus), the ring drops its
//! oldest events past [`MAX_BYTES`] or [`MAX_EVENTS`], and any read it
//! cannot answer exactly — a cursor older than the ring, a session's next
//! event not where it must be — is answered by the store. The ring is
//! contiguous in `gseq` (the writer gives them in order and pushes every
//! committed event); a purge empties it, so purged events are never served.
//! It is emptied too once nothing was committed for [`IDLE`], so an idle
//! server gives the memory back.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::follow::{Page, Scope};
use super::Committed;

/// Most bytes of events (their JSON and `raw`) the ring holds.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// Most events the ring holds.
pub const MAX_EVENTS: usize = 65_536;
/// What an event costs in the ring beyond its texts (the `Committed`, its `Arc`, the slot).
const OVERHEAD: usize = 96;
/// How long the ring is kept with nothing new committed.
pub const IDLE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Ring {
    events: VecDeque<Arc<Committed>>,
    bytes: usize,
    /// When the last batch came.
    pushed_at: Option<Instant>,
}

/// See the module doc.
#[derive(Default)]
pub struct Tail {
    ring: Mutex<Ring>,
}

/// What the ring counts for an event: the memory its texts take.
fn cost(e: &Committed) -> usize {
    e.json.capacity() + e.raw.as_ref().map_or(0, |r| r.len()) + OVERHEAD
}

impl Tail {
    /// Adds events just committed, in `gseq` order; drops the oldest past the bounds.
    pub(crate) fn push(&self, batch: &[Arc<Committed>]) {
        let Some(first) = batch.first() else { return };
        let Ok(mut ring) = self.ring.lock() else { return };
        // Not contiguous with what is held (a purge, a failed batch's gseqs
        // given again): start over from this batch.
        if ring.events.back().is_some_and(|b| b.gseq + 1 != first.gseq) {
            ring.events.clear();
            ring.bytes = 0;
        }
        for e in batch {
            ring.bytes += cost(e);
            ring.events.push_back(e.clone());
        }
        ring.pushed_at = Some(Instant::now());
        while ring.bytes > MAX_BYTES || ring.events.len() > MAX_EVENTS {
            let Some(old) = ring.events.pop_front() else { break };
            ring.bytes -= cost(&old);
        }
    }

    /// Empties the ring if nothing was committed for `idle`; `true` when it held events.
    pub(crate) fn drop_if_idle(&self, idle: Duration) -> bool {
        let Ok(mut ring) = self.ring.lock() else { return false };
        if ring.events.is_empty() || ring.pushed_at.is_some_and(|t| t.elapsed() < idle) {
            return false;
        }
        ring.events = VecDeque::new();
        ring.bytes = 0;
        true
    }

    /// Forgets everything (events were purged from the store).
    pub(crate) fn clear(&self) {
        if let Ok(mut ring) = self.ring.lock() {
            ring.events = VecDeque::new();
            ring.bytes = 0;
        }
    }

    /// The events of `scope` after `cursor`, up to the page's limits, when
    /// the ring holds them all from the very next one: `Some((events, full))`
    /// (`full`: stopped at a limit). `last_gseq` is the `gseq` of the event
    /// at the cursor, needed for a session's scope (where its next event
    /// may be). `None`: read the store.
    pub(crate) fn page(
        &self,
        scope: &Scope,
        cursor: u64,
        last_gseq: Option<u64>,
        page: Page,
    ) -> Option<(Vec<Arc<Committed>>, bool)> {
        let ring = self.ring.lock().ok()?;
        let front = ring.events.front()?.gseq;
        let back = ring.events.back()?.gseq;
        // The first gseq that can hold the scope's next event.
        let from = match scope {
            Scope::Global => cursor + 1,
            Scope::Session(_) => last_gseq? + 1,
        };
        if from < front || from > back + 1 {
            return None;
        }
        let (mut out, mut bytes, mut expect) = (Vec::new(), 0usize, cursor + 1);
        for e in ring.events.range((from - front) as usize..) {
            if !scope.wants(e) {
                continue;
            }
            if scope.cursor(e) != expect {
                // Not the very next one: only the store can say what lies between.
                return None;
            }
            expect += 1;
            bytes += e.json.len() + if page.include_raw { e.raw.as_ref().map_or(0, |r| r.len()) } else { 0 };
            out.push(e.clone());
            if out.len() >= page.rows as usize || bytes >= page.bytes {
                return Some((out, true));
            }
        }
        Some((out, false))
    }

    /// Events held and their bytes (tests, metrics).
    #[cfg(test)]
    pub(crate) fn len(&self) -> (usize, usize) {
        self.ring.lock().map(|r| (r.events.len(), r.bytes)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(sid: &str, seq: u64, gseq: u64) -> Arc<Committed> {
        Arc::new(Committed {
            session_id: Arc::from(sid),
            seq,
            gseq,
            etype: "item.delta",
            json: format!("{{\"seq\":{seq}}}"),
            raw: None,
        })
    }

    fn seqs(p: &(Vec<Arc<Committed>>, bool)) -> Vec<u64> {
        p.0.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_session_reads_its_own_next_events_and_the_store_answers_anything_else() {
        let tail = Tail::default();
        // Two sessions interleaved: a has seqs 1..=3 at gseqs 1,3,5; b has 1..=3 at 2,4,6.
        tail.push(&[ev("a", 1, 1), ev("b", 1, 2), ev("a", 2, 3), ev("b", 2, 4), ev("a", 3, 5), ev("b", 3, 6)]);
        let a = Scope::Session(Arc::from("a"));
        let all = Page::rows(100);
        assert_eq!(seqs(&tail.page(&a, 1, Some(1), all).unwrap()), vec![2, 3]);
        assert!(!tail.page(&a, 1, Some(1), all).unwrap().1);
        // A page limit: full.
        let first = tail.page(&a, 0, Some(0), Page::rows(1)).unwrap();
        assert_eq!((seqs(&first), first.1), (vec![1], true));
        let one = tail.page(&a, 1, Some(1), Page::rows(1)).unwrap();
        assert_eq!((seqs(&one), one.1), (vec![2], true));
        // Without the cursor's gseq, or with a wrong one that skips an event: the store.
        assert!(tail.page(&a, 1, None, all).is_none());
        assert!(tail.page(&a, 1, Some(3), all).is_none());
        // Global: by gseq.
        assert_eq!(seqs(&tail.page(&Scope::Global, 4, None, all).unwrap()), vec![3, 3]);
        // Caught up: nothing, not full.
        let none = tail.page(&Scope::Global, 6, None, all).unwrap();
        assert!(none.0.is_empty() && !none.1);
        // Ahead of the ring (committed, not pushed yet): the store.
        assert!(tail.page(&Scope::Global, 7, None, all).is_none());
    }

    #[test]
    fn the_ring_keeps_its_bounds_is_emptied_when_idle_and_a_purge_or_a_gap_starts_it_over() {
        let tail = Tail::default();
        let batch: Vec<_> = (1..=(MAX_EVENTS as u64 + 10)).map(|g| ev("a", g, g)).collect();
        tail.push(&batch);
        assert_eq!(tail.len().0, MAX_EVENTS);
        // The oldest are gone: a cursor before them goes to the store.
        assert!(tail.page(&Scope::Global, 5, None, Page::rows(10)).is_none());
        let last = MAX_EVENTS as u64 + 10;
        assert!(tail.page(&Scope::Global, last - 1, None, Page::rows(10)).is_some());
        // A batch that does not follow the newest event replaces the ring.
        tail.push(&[ev("a", 1, last + 5)]);
        assert_eq!(tail.len().0, 1);
        assert!(!tail.drop_if_idle(Duration::from_secs(60)), "emptied while new");
        assert!(tail.drop_if_idle(Duration::ZERO));
        assert_eq!(tail.len(), (0, 0));
        assert!(!tail.drop_if_idle(Duration::ZERO), "nothing to drop");
        tail.push(&[ev("a", 1, 1)]);
        tail.clear();
        assert_eq!(tail.len(), (0, 0));
        assert!(tail.page(&Scope::Global, last, None, Page::rows(10)).is_none());
    }
}
