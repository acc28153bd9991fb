//! The one follower of the live log: everything that reads events as they
//! are committed (the event streams, turn waits, keep-awake, the webhooks)
//! does it through a [`Follower`], so the rules that make it lossless are
//! written once:
//!
//! - Subscribe first ([`Follower::subscribe`]), then read the store: an
//!   event committed between the two is on the bus, and one committed
//!   before is in the store, so none falls between them.
//! - Catch up from the store after the cursor ([`Follower::page`]) until a
//!   page is not full, then take live events ([`Follower::recv`]), skipping
//!   any at or below the cursor (already read from the store) and any of
//!   another session.
//! - When the bus laps the follower (a slow reader: the bus keeps a fixed
//!   window, [`super::BUS_CAPACITY`]), or a session's next event is not the
//!   one after the cursor, [`Live::Behind`] says so: the caller reads the
//!   store again from its cursor. Nothing is dropped; a slow follower costs
//!   only its own reads and never blocks the writer or other followers.
//!
//! A follower that needs no events, only to know that something was
//! committed (the webhooks read the store themselves), uses
//! [`Follower::drain`] and [`Follower::changed`].
//!
//! It must not hold a store connection across an `.await` (reads go through
//! [`Store::read`]), and it never writes.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::{reader, Committed, Store, StoreError};

/// Which events a follower takes and which cursor it counts in.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One session's events, by `seq` (gap-free: a skipped `seq` is noticed).
    Session(Arc<str>),
    /// Every session's events, by `gseq`.
    Global,
}

impl Scope {
    /// The cursor of `e` in this scope.
    pub fn cursor(&self, e: &Committed) -> u64 {
        match self {
            Scope::Session(_) => e.seq,
            Scope::Global => e.gseq,
        }
    }

    /// Whether `e` belongs to this scope.
    pub fn wants(&self, e: &Committed) -> bool {
        match self {
            Scope::Session(id) => *e.session_id == **id,
            Scope::Global => true,
        }
    }

    fn session(&self) -> Option<Arc<str>> {
        match self {
            Scope::Session(id) => Some(id.clone()),
            Scope::Global => None,
        }
    }
}

/// How much one catch-up read takes.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// Most events per read.
    pub rows: u32,
    /// Most bytes of events per read (a page may pass it by one event).
    pub bytes: usize,
    /// Read each event's `raw` too.
    pub include_raw: bool,
}

impl Page {
    /// Up to `rows` events, whatever their size, without `raw`.
    pub fn rows(rows: u32) -> Page {
        Page { rows, bytes: usize::MAX, include_raw: false }
    }
}

/// What the live bus gave.
#[derive(Debug)]
pub enum Live {
    /// The next event of the scope after the cursor (the cursor is now its own).
    Event(Arc<Committed>),
    /// Events were missed (the bus lapped the follower, or a session's next
    /// `seq` was skipped): read the store from the cursor ([`Follower::page`]).
    Behind,
    /// The bus is closed: the store is gone (the server is stopping).
    Closed,
}

/// A reader of the live log after a cursor; see the module doc.
pub struct Follower {
    store: Store,
    scope: Scope,
    cursor: u64,
    /// The `gseq` of the event at the cursor, when known: where the ring of
    /// newest events ([`super::tail`]) can find a session's next one.
    last_gseq: Option<u64>,
    bus: broadcast::Receiver<Arc<Committed>>,
}

impl Follower {
    /// Subscribes to the bus now, with the cursor at 0 (see [`Follower::at`]):
    /// call it before the store reads that the cursor comes from.
    pub fn subscribe(store: &Store, scope: Scope) -> Follower {
        Follower { bus: store.bus.subscribe(), store: store.clone(), scope, cursor: 0, last_gseq: None }
    }

    /// Moves the cursor: events after it are the ones still to come.
    pub fn at(mut self, cursor: u64) -> Follower {
        self.cursor = cursor;
        self.last_gseq = None;
        self
    }

    /// The cursor of the last event taken (from the store or the bus).
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Reads the events after the cursor, in order, up to the page's limits
    /// — from the newest events kept in memory when they hold the very next
    /// one, else from the store — and moves the cursor to the last one.
    /// `true` when the page stopped at a limit (more may follow).
    pub async fn page(&mut self, page: Page) -> Result<(Vec<Arc<Committed>>, bool), StoreError> {
        let read = match self.store.tail.page(&self.scope, self.cursor, self.last_gseq, page) {
            Some(read) => read,
            None => {
                let (session, after) = (self.scope.session(), self.cursor);
                self.store
                    .read(move |c| {
                        reader::stream_page(c, session.as_ref(), after, page.rows, page.bytes, page.include_raw)
                    })
                    .await?
            }
        };
        if let Some(last) = read.0.last() {
            self.cursor = self.scope.cursor(last);
            self.last_gseq = Some(last.gseq);
        }
        Ok(read)
    }

    /// Waits for the next live event of the scope after the cursor. Cancel
    /// safe: a dropped call loses only events it skipped.
    pub async fn recv(&mut self) -> Live {
        loop {
            let r = self.bus.recv().await;
            if let Some(live) = self.take(r) {
                return live;
            }
        }
    }

    /// [`Follower::recv`] without waiting: `None` when no event of the scope
    /// is waiting (or the bus is closed: the next `recv` says so).
    pub fn try_recv(&mut self) -> Option<Live> {
        loop {
            let r = match self.bus.try_recv() {
                Ok(e) => Ok(e),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Empty | TryRecvError::Closed) => return None,
            };
            if let Some(live) = self.take(r) {
                return Some(live);
            }
        }
    }

    /// What one message of the bus means for this follower (`None`: not for it).
    fn take(&mut self, r: Result<Arc<Committed>, RecvError>) -> Option<Live> {
        match r {
            Ok(e) if self.scope.wants(&e) && self.scope.cursor(&e) > self.cursor => {
                let at = self.scope.cursor(&e);
                // A session's seq has no gaps: a skipped one was committed
                // before the catch-up ended and is read from the store.
                if matches!(self.scope, Scope::Session(_)) && at != self.cursor + 1 {
                    return Some(Live::Behind);
                }
                self.cursor = at;
                self.last_gseq = Some(e.gseq);
                Some(Live::Event(e))
            }
            Ok(_) => None,
            Err(RecvError::Lagged(_)) => Some(Live::Behind),
            Err(RecvError::Closed) => Some(Live::Closed),
        }
    }

    /// Empties the notifications already received (the caller reads the
    /// store next, so they are covered); `false` when the bus is closed.
    pub fn drain(&mut self) -> bool {
        loop {
            match self.bus.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Closed) => return false,
            }
        }
    }

    /// Waits until anything is committed (or the bus lapped this follower);
    /// `false` when the bus is closed. Cancel safe.
    pub async fn changed(&mut self) -> bool {
        !matches!(self.bus.recv().await, Err(RecvError::Closed))
    }
}
