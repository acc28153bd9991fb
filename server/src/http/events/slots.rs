//! The per-client cap on open event streams (`--max-streams-per-client`):
//! one address cannot hold every connection the server takes with streams
//! that each cost memory and a pump. Counted by the peer's IP address (a
//! proxy in front of tether is one client; so are all loopback clients).
//!
//! Streams that close also hand their memory back to the system: malloc
//! keeps what it freed, so after a burst of clients leaves, RSS would stay
//! at the burst's height. A closed stream wakes a task that, a moment later
//! (so one burst is one pass), asks malloc to give its free pages back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// How long after a stream closes the free memory is given back (closes in between join the same pass).
const TRIM_AFTER: Duration = Duration::from_secs(1);

/// Open streams per client address.
pub struct StreamSlots {
    per_client: usize,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    open: Mutex<HashMap<IpAddr, usize>>,
    closed: Arc<Notify>,
}

/// One open stream of one client; the slot is free again when it drops.
pub struct StreamSlot {
    ip: IpAddr,
    shared: Arc<Shared>,
}

impl StreamSlots {
    /// Slots for `per_client` streams per address; starts the task that gives memory back (call within the runtime).
    pub fn new(per_client: usize) -> StreamSlots {
        let shared = Arc::new(Shared::default());
        let closed = shared.closed.clone();
        // Lives as long as the runtime (one per server).
        tokio::spawn(async move {
            loop {
                closed.notified().await;
                tokio::time::sleep(TRIM_AFTER).await;
                let _ = tokio::task::spawn_blocking(crate::process::release_free_memory).await;
            }
        });
        StreamSlots { per_client, shared }
    }

    /// Most streams one client address may hold open.
    pub fn per_client(&self) -> usize {
        self.per_client
    }

    /// A slot for `ip`, or `None` when it already holds `per_client` streams.
    pub fn take(&self, ip: IpAddr) -> Option<StreamSlot> {
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= self.per_client {
            return None;
        }
        *n += 1;
        Some(StreamSlot { ip, shared: self.shared.clone() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.shared.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
        drop(open);
        self.shared.closed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_client_past_its_cap_is_refused_until_a_slot_frees() {
        let slots = StreamSlots::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "a third stream of one client");
        assert!(slots.take(b).is_some(), "another client is not counted with the first");
        drop(first);
        assert!(slots.take(a).is_some(), "a freed slot is taken again");
    }
}
