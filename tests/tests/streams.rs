//! SSE streams: resuming after a cursor, slow and fast consumers, the global stream.

use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::http::{events_json, expect_problem, send, RawFrame, RawSse};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::{Event, EventBody, StopReason};
use tokio::sync::watch;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_last_event_id_gets_exactly_the_missing_events() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    let path = format!("/v1/sessions/{id}/events/stream");
    client.send_text(id, "[mock:flood:40000]").await.unwrap();

    // Read part of the stream, drop the connection.
    let mut first = client.session_events(id, None);
    let part1 = wait_for(&mut first, TURN_TIMEOUT, |e| e.seq >= 3000).await;
    assert_eq!(first.cursor(), Some(3000));
    drop(first);
    assert_contiguous(&part1, 1);

    // Resume through the SDK after that cursor, read some more, drop again.
    let mut second = client.session_events(id, Some(3000));
    let part2 = wait_for(&mut second, TURN_TIMEOUT, |e| e.seq >= 6000).await;
    drop(second);
    assert_contiguous(&part2, 3001);

    // Resume with a raw request that only sets Last-Event-ID, to the end of the turn.
    let mut raw = RawSse::connect(client.request(Method::GET, &path).header("Last-Event-ID", "6000")).await;
    let part3 = raw.read_until(Duration::from_secs(60), RawFrame::seq, |f| f.event_type() == "turn.completed").await;
    drop(raw);
    assert_eq!(part3[0].seq(), 6001, "the raw stream did not resume after Last-Event-ID");

    // Together: exactly the stored history, each event as stored.
    let stored = events_json(&client, id, 0).await;
    let last = part3.last().unwrap().seq();
    assert!(stored.len() as u64 >= last);
    for e in part1.iter().chain(&part2) {
        let want: Event = serde_json::from_value(stored[e.seq as usize - 1].clone()).unwrap();
        assert_eq!(e, &want, "event {} differs from the stored one", e.seq);
    }
    for (i, f) in part3.iter().enumerate() {
        assert_eq!(f.seq(), 6001 + i as u64, "raw stream gap or duplicate");
        assert_eq!(&f.data, &stored[f.seq() as usize - 1], "event {} differs from the stored one", f.seq());
    }
    let typed = read_all(&client, id).await;
    assert_well_formed(&typed);
    assert_eq!(of_type(&typed, "item.delta").len(), 40_000);

    // Last-Event-ID wins over ?after=, and ?after= alone works too.
    let mut raw =
        RawSse::connect(client.request(Method::GET, &format!("{path}?after=5")).header("Last-Event-ID", "10")).await;
    assert_eq!(raw.next_frame(Duration::from_secs(10)).await.unwrap().seq(), 11);
    let mut raw = RawSse::connect(client.request(Method::GET, &format!("{path}?after=5"))).await;
    assert_eq!(raw.next_frame(Duration::from_secs(10)).await.unwrap().seq(), 6);
    // A cursor at the end gives nothing old: the next event is a new one.
    let end = typed.last().unwrap().seq;
    let mut tail = client.session_events(id, Some(end));
    client.send_text(id, "[mock:text] more").await.unwrap();
    let more = wait_for_type(&mut tail, TURN_TIMEOUT, "turn.completed").await;
    assert_contiguous(&more, end + 1);
    // The global stream resumes the same way, over gseq.
    let g = typed[100].gseq;
    let mut global =
        RawSse::connect(client.request(Method::GET, "/v1/events/stream").header("Last-Event-ID", g.to_string())).await;
    let frame = global.next_frame(Duration::from_secs(10)).await.unwrap();
    assert_eq!((frame.gseq(), frame.id.as_deref()), (typed[101].gseq, Some(typed[101].gseq.to_string().as_str())));
    // A cursor that is not a number is refused.
    let resp = send(client.request(Method::GET, &path).header("Last-Event-ID", "nope")).await;
    expect_problem(resp, 400, "invalid_request", &["last-event-id"]).await;
}

/// Tallies one consumer's view of a session's events.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    last_seq: u64,
    deltas: u64,
    problems: Vec<String>,
}

impl Tally {
    fn see(&mut self, seq: u64, event_type: &str) {
        self.count += 1;
        if seq != self.last_seq + 1 && self.problems.len() < 10 {
            self.problems.push(format!("seq {seq} after {}", self.last_seq));
        }
        self.last_seq = seq;
        if event_type == "item.delta" {
            self.deltas += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_during_a_flood_gets_every_event_in_order() {
    const N: u64 = 200_000;
    const TIMEOUT: Duration = Duration::from_secs(120);
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    let path = format!("/v1/sessions/{id}/events/stream");
    // The fast consumer publishes the seq of turn.completed when it has it.
    let (done_tx, mut done_rx) = watch::channel(None::<u64>);

    // Fast: the SDK stream, read as fast as it comes.
    let fast = {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut stream = client.session_events(&id, None);
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            loop {
                let event = tokio::time::timeout_at(deadline, stream.next_event())
                    .await
                    .expect("fast consumer timed out")
                    .expect("fast stream ended")
                    .expect("fast stream failed");
                tally.see(event.seq, event.event_type());
                if let EventBody::TurnCompleted(t) = &event.body {
                    assert_eq!(t.stop_reason, StopReason::EndTurn);
                    let _ = done_tx.send(Some(event.seq));
                    return tally;
                }
            }
        })
    };

    // Slow: one raw connection (no reconnection, no dedup), small pauses every
    // 5,000 events, and after 10,000 events it stops reading until the fast
    // consumer has seen the whole turn: by then it is far behind the live bus.
    let slow_request = client.request(Method::GET, &path);
    let slow = tokio::spawn(async move {
        let mut tally = Tally::default();
        let mut sse = RawSse::connect(slow_request).await;
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = sse.next_frame(left).await.expect("the slow consumer's stream ended");
            let seq = frame.seq();
            assert_eq!(frame.id.as_deref(), Some(seq.to_string().as_str()));
            tally.see(seq, frame.event_type());
            if tally.count % 5_000 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if tally.count == 10_000 {
                tokio::time::timeout_at(deadline, done_rx.wait_for(Option::is_some))
                    .await
                    .expect("the fast consumer never finished while the slow one lagged")
                    .expect("fast consumer gone");
            }
            if frame.event_type() == "turn.completed" {
                return tally;
            }
        }
    });

    // Global: every session's events over gseq.
    let global = {
        let client = client.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut last_gseq = 0;
            let mut stream = client.all_events(None);
            let deadline = tokio::time::Instant::now() + TIMEOUT;
            loop {
                let event = tokio::time::timeout_at(deadline, stream.next_event())
                    .await
                    .expect("global consumer timed out")
                    .expect("global stream ended")
                    .expect("global stream failed");
                assert!(event.gseq > last_gseq, "gseq {} after {last_gseq}", event.gseq);
                last_gseq = event.gseq;
                if event.session_id != id {
                    continue;
                }
                tally.see(event.seq, event.event_type());
                if event.event_type() == "turn.completed" {
                    return tally;
                }
            }
        })
    };

    client.send_text(&id, format!("[mock:flood:{N}]")).await.unwrap();
    let fast = fast.await.unwrap();
    let slow = slow.await.unwrap();
    let global = global.await.unwrap();

    let last = fast.last_seq;
    for (name, tally) in [("fast", &fast), ("slow", &slow), ("global", &global)] {
        assert!(tally.problems.is_empty(), "{name} consumer: {:?}", tally.problems);
        assert_eq!((tally.count, tally.last_seq), (last, last), "{name} consumer: {tally:?}");
        assert_eq!(tally.deltas, N, "{name} consumer: {tally:?}");
    }
    let stored = read_all(&client, &id).await;
    assert_well_formed(&stored);
    assert_eq!(stored.iter().position(|e| e.event_type() == "turn.completed").map(|i| i as u64 + 1), Some(last));
}

#[tokio::test]
async fn idle_streams_carry_keepalive_comments() {
    let server = TestServer::start_with(ServerOptions { keepalive_secs: Some(1), ..Default::default() }).await;
    let client = server.client();
    let session = mock_session(&client).await;
    for path in [format!("/v1/sessions/{}/events/stream", session.id), "/v1/events/stream".to_string()] {
        let mut resp = client.request(Method::GET, &path).send().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut body = Vec::new();
        while !String::from_utf8_lossy(&body).contains("\n: keepalive\n\n") {
            let chunk = tokio::time::timeout_at(deadline, resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no keepalive on {path} within 10 s: {:?}", String::from_utf8_lossy(&body)))
                .unwrap()
                .expect("the stream ended");
            body.extend_from_slice(&chunk);
        }
        // The events came first, whole, and the comment did not split a frame.
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("event: session.status\n"), "{text}");
    }
}
