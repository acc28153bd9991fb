//! Reading event streams with deadlines, and assertions on event sequences.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tether_sdk::{
    Client, Delta, Event, EventBody, EventStream, Item, ItemKind, ItemStatus, PermissionResolved, QuestionResolved,
    Role, SessionStatus, TurnCompleted,
};
use tokio::time::Instant;

/// Default deadline of one mock turn.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most events one read of a stream takes before it gives up.
pub const MAX_EVENTS: usize = 5_000_000;

/// One line per event: `seq type data` (data cut to 160 characters).
pub fn describe(events: &[Event]) -> String {
    events.iter().map(describe_one).collect::<Vec<_>>().join("\n")
}

pub fn describe_one(e: &Event) -> String {
    let data = serde_json::to_value(&e.body).ok().map(|v| v["data"].to_string()).unwrap_or_default();
    let data: String = data.chars().take(160).collect();
    format!("{:>7} {:<22} {data}", e.seq, e.event_type())
}

/// The last `n` events, described.
pub fn describe_tail(events: &[Event], n: usize) -> String {
    describe(&events[events.len().saturating_sub(n)..])
}

/// Reads `stream` until `pred` matches an event (or `timeout` passes, or the
/// stream ends or fails: then it panics, describing what it got). Returns
/// every event read, the matching one last.
pub async fn wait_for(stream: &mut EventStream, timeout: Duration, mut pred: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next_event()).await {
            Ok(Some(Ok(event))) => {
                assert!(got.len() < MAX_EVENTS, "no matching event in {MAX_EVENTS} events");
                let done = pred(&event);
                got.push(event);
                if done {
                    return got;
                }
            }
            Ok(Some(Err(e))) => panic!("event stream failed: {e}\nafter:\n{}", describe_tail(&got, 40)),
            Ok(None) => panic!("event stream ended\nafter:\n{}", describe_tail(&got, 40)),
            Err(_) => panic!(
                "no matching event within {timeout:?} ({} events read)\nlast events:\n{}",
                got.len(),
                describe_tail(&got, 40)
            ),
        }
    }
}

/// Reads `stream` until an event of type `event_type`.
pub async fn wait_for_type(stream: &mut EventStream, timeout: Duration, event_type: &str) -> Vec<Event> {
    wait_for(stream, timeout, |e| e.event_type() == event_type).await
}

/// Reads `stream` until `n` events of type `event_type` have been read.
pub async fn wait_for_count(stream: &mut EventStream, timeout: Duration, event_type: &str, n: usize) -> Vec<Event> {
    let mut seen = 0;
    wait_for(stream, timeout, |e| {
        if e.event_type() == event_type {
            seen += 1;
        }
        seen >= n
    })
    .await
}

/// The events of a session after `after`, up to and including the next
/// `turn.completed` (deadline [`TURN_TIMEOUT`]).
pub async fn collect_turn(client: &Client, session_id: &str, after: u64) -> Vec<Event> {
    collect_turns(client, session_id, after, 1, TURN_TIMEOUT).await
}

/// The events of a session after `after`, up to and including the `n`-th `turn.completed`.
pub async fn collect_turns(client: &Client, session_id: &str, after: u64, n: usize, timeout: Duration) -> Vec<Event> {
    let mut stream = client.session_events(session_id, Some(after));
    wait_for_count(&mut stream, timeout, "turn.completed", n).await
}

/// Every stored event of a session, through the events page API.
pub async fn read_all(client: &Client, session_id: &str) -> Vec<Event> {
    read_after(client, session_id, 0).await
}

/// Every stored event of a session with `seq > after`, through the events page API.
pub async fn read_after(client: &Client, session_id: &str, after: u64) -> Vec<Event> {
    let mut events = Vec::new();
    let mut cursor = after;
    for _ in 0..10_000 {
        let page = client.events_page(session_id, cursor, Some(10_000), false).await.expect("events page");
        events.extend(page.events);
        if !page.has_more {
            return events;
        }
        assert!(page.next_after > cursor, "next_after did not advance past {cursor}");
        cursor = page.next_after;
    }
    panic!("more than 10,000 pages of events");
}

/// Polls `GET /v1/sessions/{id}` (every 20 ms, up to `timeout`) until the session has `status`.
pub async fn wait_status(client: &Client, session_id: &str, status: SessionStatus, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let session = client.get_session(session_id).await.expect("get session");
        if session.status == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "session {session_id} is {:?}, not {status:?}, after {timeout:?}",
            session.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- accessors -------------------------------------------------------------

/// The events of one type.
pub fn of_type<'a>(events: &'a [Event], event_type: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.event_type() == event_type).collect()
}

/// The event types, in order.
pub fn types(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::event_type).collect()
}

/// Position of the first event matching `pred`.
pub fn position(events: &[Event], pred: impl Fn(&Event) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

/// Every `turn.completed`, in order.
/// Every `permission.resolved`, in order.
pub fn permissions_resolved(events: &[Event]) -> Vec<&PermissionResolved> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::PermissionResolved(r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Every `question.resolved`, in order.
pub fn questions_resolved(events: &[Event]) -> Vec<&QuestionResolved> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::QuestionResolved(r) => Some(r),
            _ => None,
        })
        .collect()
}

pub fn turns_completed(events: &[Event]) -> Vec<&TurnCompleted> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::TurnCompleted(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The one `turn.completed` of these events.
pub fn the_turn_completed(events: &[Event]) -> &TurnCompleted {
    let turns = turns_completed(events);
    assert_eq!(turns.len(), 1, "expected one turn.completed in:\n{}", describe(events));
    turns[0]
}

/// Every item as completed (`item.completed`), in order.
pub fn completed_items(events: &[Event]) -> Vec<&Item> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ItemCompleted(i) => Some(&i.item),
            _ => None,
        })
        .collect()
}

/// Every item as started (`item.started`), in order.
pub fn started_items(events: &[Event]) -> Vec<&Item> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ItemStarted(i) => Some(&i.item),
            _ => None,
        })
        .collect()
}

/// The text parts of an item, joined.
pub fn item_text(item: &Item) -> String {
    item.text()
}

/// The completed assistant message items.
pub fn assistant_messages(events: &[Event]) -> Vec<&Item> {
    completed_items(events)
        .into_iter()
        .filter(|i| i.kind == ItemKind::Message && i.role == Some(Role::Assistant))
        .collect()
}

/// The texts of the completed assistant messages.
pub fn assistant_texts(events: &[Event]) -> Vec<String> {
    assistant_messages(events).into_iter().map(item_text).collect()
}

/// The text of the last completed assistant message.
pub fn final_text(events: &[Event]) -> String {
    assistant_texts(events).pop().unwrap_or_else(|| panic!("no assistant message in:\n{}", describe(events)))
}

/// The `text` deltas of one item, joined.
pub fn delta_text(events: &[Event], item_id: &str) -> String {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ItemDelta(d) if d.item_id == item_id => match &d.delta {
                Delta::Text(t) => Some(t.as_str()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// The `session.status` values, in order.
pub fn statuses(events: &[Event]) -> Vec<SessionStatus> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::SessionStatus(s) => Some(s.status),
            _ => None,
        })
        .collect()
}

// ---- assertions ------------------------------------------------------------

/// `events` have the seqs `first, first+1, ..` (no gap, no duplicate, in order).
pub fn assert_contiguous(events: &[Event], first: u64) {
    for (i, e) in events.iter().enumerate() {
        let want = first + i as u64;
        assert_eq!(e.seq, want, "event #{i} has seq {} instead of {want}\n{}", e.seq, describe_around(events, i));
    }
}

fn describe_around(events: &[Event], i: usize) -> String {
    describe(&events[i.saturating_sub(5)..(i + 5).min(events.len())])
}

/// The whole history of one session is well formed:
/// - one session id, `seq` gap-free from 1, `gseq` strictly increasing;
/// - every `item.started` precedes the item's deltas and its one `item.completed`,
///   and every started item completes (with a final status);
/// - every `turn.started` has exactly one `turn.completed` after it, turns
///   do not overlap, and items start only inside the turn they name;
/// - `session.ended`, if present, is the last event and appears once.
///
/// Open items or turns at the end are allowed only with `allow_open_tail`
/// (a history read while a turn runs).
pub fn assert_well_formed(events: &[Event]) {
    check_well_formed(events, false);
}

/// [`assert_well_formed`] for a history that may end inside a running turn.
pub fn assert_well_formed_prefix(events: &[Event]) {
    check_well_formed(events, true);
}

fn check_well_formed(events: &[Event], allow_open_tail: bool) {
    assert!(!events.is_empty(), "no events");
    let session = &events[0].session_id;
    assert_contiguous(events, 1);
    let mut last_gseq = 0;
    let mut open_items: HashMap<String, String> = HashMap::new(); // item id -> turn id
    let mut done_items: HashSet<String> = HashSet::new();
    let mut open_turn: Option<String> = None;
    let mut done_turns: HashSet<String> = HashSet::new();
    let fail = |i: usize, what: String| -> ! {
        panic!("history not well formed at seq {}: {what}\n{}", events[i].seq, describe_around(events, i))
    };
    for (i, e) in events.iter().enumerate() {
        if &e.session_id != session {
            fail(i, format!("session id {} instead of {session}", e.session_id));
        }
        if e.gseq <= last_gseq {
            fail(i, format!("gseq {} after {last_gseq}", e.gseq));
        }
        last_gseq = e.gseq;
        match &e.body {
            EventBody::TurnStarted(t) => {
                if let Some(open) = &open_turn {
                    fail(i, format!("turn {} starts while turn {open} is open", t.turn_id));
                }
                if done_turns.contains(&t.turn_id) {
                    fail(i, format!("turn {} started twice", t.turn_id));
                }
                open_turn = Some(t.turn_id.clone());
            }
            EventBody::TurnCompleted(t) => {
                if open_turn.as_deref() != Some(t.turn_id.as_str()) {
                    fail(i, format!("turn.completed for {} but the open turn is {open_turn:?}", t.turn_id));
                }
                if let Some((item, _)) = open_items.iter().find(|(_, turn)| **turn == t.turn_id) {
                    fail(i, format!("turn {} completed with item {item} still open", t.turn_id));
                }
                done_turns.insert(t.turn_id.clone());
                open_turn = None;
            }
            EventBody::ItemStarted(it) => {
                let item = &it.item;
                if open_items.contains_key(&item.item_id) || done_items.contains(&item.item_id) {
                    fail(i, format!("item {} started twice", item.item_id));
                }
                if item.status != ItemStatus::InProgress {
                    fail(i, format!("item {} started with status {:?}", item.item_id, item.status));
                }
                if open_turn.as_deref() != Some(item.turn_id.as_str()) {
                    fail(
                        i,
                        format!(
                            "item {} of turn {} starts while the open turn is {open_turn:?}",
                            item.item_id, item.turn_id
                        ),
                    );
                }
                open_items.insert(item.item_id.clone(), item.turn_id.clone());
            }
            EventBody::ItemDelta(d) if !open_items.contains_key(&d.item_id) => {
                fail(i, format!("delta of item {} that is not open", d.item_id));
            }
            EventBody::ItemCompleted(it) => {
                let item = &it.item;
                if open_items.remove(&item.item_id).is_none() {
                    fail(i, format!("item {} completed but not open", item.item_id));
                }
                if item.status == ItemStatus::InProgress {
                    fail(i, format!("item {} completed with status in_progress", item.item_id));
                }
                done_items.insert(item.item_id.clone());
            }
            EventBody::SessionEnded(_) if i + 1 != events.len() => {
                fail(i, "session.ended is not the last event".into());
            }
            _ => {}
        }
    }
    if !allow_open_tail {
        if let Some(turn) = open_turn {
            panic!("turn {turn} never completed\n{}", describe_tail(events, 20));
        }
        if !open_items.is_empty() {
            panic!("items never completed: {:?}\n{}", open_items.keys().collect::<Vec<_>>(), describe_tail(events, 20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(seq: u64, etype: &str, data: serde_json::Value) -> Event {
        serde_json::from_value(json!({
            "seq": seq, "gseq": seq + 100, "session_id": "ses_1", "time": "2026-01-01T00:00:00.000Z",
            "source": "server", "type": etype, "data": data,
        }))
        .unwrap()
    }

    fn item(status: &str) -> serde_json::Value {
        json!({"item": {"item_id": "itm_1", "turn_id": "trn_1", "kind": "message", "role": "assistant",
                        "status": status}})
    }

    fn turn() -> Vec<Event> {
        vec![
            event(1, "turn.started", json!({"turn_id": "trn_1", "input": []})),
            event(2, "item.started", item("in_progress")),
            event(3, "item.delta", json!({"item_id": "itm_1", "delta": {"text": "hi"}})),
            event(4, "item.completed", item("completed")),
            event(5, "turn.completed", json!({"turn_id": "trn_1", "stop_reason": "end_turn"})),
        ]
    }

    fn fails(events: &[Event]) -> bool {
        let events = events.to_vec();
        std::panic::catch_unwind(move || assert_well_formed(&events)).is_err()
    }

    #[test]
    fn a_whole_turn_is_well_formed() {
        assert_well_formed(&turn());
        assert_well_formed_prefix(&turn()[..3]);
        let mut ended = turn();
        ended.push(event(6, "session.ended", json!({"reason": "terminated"})));
        assert_well_formed(&ended);
    }

    /// Numbers the events 1.. (seq) and 101.. (gseq) in their new order.
    fn renumber(mut events: Vec<Event>) -> Vec<Event> {
        for (i, e) in events.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
            e.gseq = i as u64 + 101;
        }
        events
    }

    #[test]
    fn broken_histories_are_caught() {
        let mut gap = turn();
        gap.remove(2);
        assert!(fails(&gap), "a seq gap");
        let mut gseq = turn();
        gseq[3].gseq = gseq[2].gseq;
        assert!(fails(&gseq), "gseq not increasing");
        assert!(fails(&turn()[..4]), "an open turn");
        let mut open_item = turn();
        open_item.remove(3);
        assert!(fails(&renumber(open_item)), "an item never completed");
        let mut late = turn();
        late.swap(1, 2);
        assert!(fails(&renumber(late)), "a delta before its item.started");
        let mut after_end = turn();
        after_end.insert(4, event(0, "session.ended", json!({"reason": "terminated"})));
        assert!(fails(&renumber(after_end)), "session.ended not last");
        let mut twice = turn();
        twice.push(event(0, "turn.completed", json!({"turn_id": "trn_1", "stop_reason": "end_turn"})));
        assert!(fails(&renumber(twice)), "a turn completed twice");
    }
}
