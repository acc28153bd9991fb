//! Crash recovery: `kill -9` of the server in the middle of a flood.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::http::{events_json, RawSse};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::{Event, EventBody, ItemStatus, SessionStatus, StopReason};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_a_flood_then_restart_replays_and_recovers() {
    const KILL_AFTER: usize = 50_000;
    let mut server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();

    client.send_text(&id, "[mock:text] one").await.unwrap();
    let first = collect_turn(&client, &id, 0).await;
    assert_eq!(final_text(&first), "Mock reply to turn 1: one");
    let after = first.last().unwrap().seq;

    // Read the flood on one raw connection, keeping each event's JSON as sent.
    let path = format!("/v1/sessions/{id}/events/stream");
    let mut sse = RawSse::connect(client.request(Method::GET, &path).header("Last-Event-ID", after.to_string())).await;
    // Far more than the kill point: however far ahead of the stored events the
    // agent's output runs (pipe, PTY and queues), the flood is not over at the kill.
    let flood = client.send_text(&id, "[mock:flood:2000000]").await.unwrap();
    let mut received = Vec::with_capacity(KILL_AFTER);
    let mut deltas = 0;
    while deltas < KILL_AFTER {
        assert!(received.len() < 2 * KILL_AFTER, "mostly non-delta events:\n{:?}", received.last());
        let frame = sse.next_frame(Duration::from_secs(60)).await.expect("the stream ended before the kill");
        assert_ne!(frame.event_type(), "turn.completed", "the flood ended before the kill");
        if frame.event_type() == "item.delta" {
            deltas += 1;
        }
        received.push(frame);
    }
    let status = server.kill9().await;
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    drop(sse);
    let seen_last = received.last().unwrap().seq();
    for (i, f) in received.iter().enumerate() {
        assert_eq!(f.seq(), after + 1 + i as u64, "gap or duplicate before the kill");
    }
    // The agent does not outlive its server.
    wait_no_processes(&id, Duration::from_secs(5)).await;

    server.restart().await;
    let client = server.client();
    let stored = events_json(&client, &id, 0).await;
    // Gap-free from 1, and every event a client saw is there, unchanged.
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "replay gap at index {i}");
    }
    assert!(stored.len() as u64 > seen_last, "the replay ends before what the client saw");
    for f in &received {
        assert_eq!(&stored[f.seq() as usize - 1], &f.data, "event {} changed across the crash", f.seq());
    }

    // Recovery closed the flood: its item failed, an error, turn.completed
    // (error), then server.restarted and the session idle.
    let events: Vec<Event> = stored.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect();
    assert_well_formed(&events);
    let tail = &events[seen_last as usize..];
    let done = position(tail, |e| matches!(&e.body, EventBody::TurnCompleted(t) if t.turn_id == flood.turn_id))
        .unwrap_or_else(|| panic!("the flood turn never completed:\n{}", describe_tail(&events, 20)));
    let EventBody::TurnCompleted(t) = &tail[done].body else { unreachable!() };
    assert_eq!(t.stop_reason, StopReason::Error);
    let restarted = position(tail, |e| e.event_type() == "server.restarted").expect("no server.restarted");
    let idle = position(
        &tail[restarted..],
        |e| matches!(&e.body, EventBody::SessionStatus(s) if s.status == SessionStatus::Idle),
    )
    .expect("no session.status idle after server.restarted");
    assert!(done < restarted, "{}", describe_tail(&events, 20));
    assert_eq!(restarted + idle + 1, tail.len(), "events after recovery:\n{}", describe_tail(&events, 20));
    let error = position(tail, |e| e.event_type() == "error").expect("no error event for the closed turn");
    assert!(error < done);
    let flood_items: Vec<_> = completed_items(&events).into_iter().filter(|i| i.turn_id == flood.turn_id).collect();
    assert!(!flood_items.is_empty() && flood_items.iter().all(|i| i.status == ItemStatus::Failed), "{flood_items:?}");
    let now = client.get_session(&id).await.unwrap();
    assert_eq!(now.status, SessionStatus::Idle);
    assert_eq!(now.last_seq, stored.len() as u64);
    assert!(processes_of_session(&id).is_empty());

    // The conversation goes on: respawn + resume (the flood never completed,
    // so this is the conversation's 2nd completed turn).
    let before = now.last_seq;
    client.send_text(&id, "[mock:text] after the crash").await.unwrap();
    let next = collect_turn(&client, &id, before).await;
    assert_eq!(the_turn_completed(&next).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&next), "Mock reply to turn 2: after the crash");
    assert_well_formed(&read_all(&client, &id).await);
}
