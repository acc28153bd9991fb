//! Cursors from the future: after the data dir is restored from an older
//! copy (a checkpoint restore), a client resuming with a cursor it saw
//! before gets an explicit answer — `stream.reset` on SSE and WebSocket,
//! `409 cursor_ahead` on the page route, `Error::CursorAhead` in the SDK —
//! and never a silent wait. Also the idle lifetime of streams
//! (`--stream-idle-secs`).

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tether_e2e::events::*;
use tether_e2e::http::{events_json, expect_problem, send, RawFrame, RawSse};
use tether_e2e::ws::{seq, RawWs, WsItem};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::{Error, StreamReset};

const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// Copies the tree at `from` into `to` (created), files and folders only.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Empties `dir` and copies `snapshot` into it: a restore of the data dir.
fn restore(dir: &Path, snapshot: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    copy_tree(snapshot, dir);
}

/// Stops the server (SIGTERM, a clean exit).
async fn stop(server: &mut TestServer) {
    server.wait_catches_sigterm().await;
    let (status, _) = server.sigterm().await;
    assert!(status.success(), "the server exited with {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_store_answers_cursors_beyond_it_with_a_reset() {
    let mut server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    client.send_text(&id, "[mock:text] one").await.unwrap();
    collect_turn(&client, &id, 0).await;

    // The checkpoint: a copy of the stopped server's data dir.
    stop(&mut server).await;
    let snapshot = tempfile::tempdir().unwrap();
    copy_tree(&server.data_dir(), snapshot.path());
    server.restart_same_port().await;

    // More turns after the checkpoint; a client sees them and keeps its cursors.
    let client = server.client();
    let before = client.get_session(&id).await.unwrap().last_seq;
    client.send_text(&id, "[mock:text] two").await.unwrap();
    client.send_text(&id, "[mock:text] three").await.unwrap();
    collect_turns(&client, &id, before, 2, TURN_TIMEOUT).await;
    let seen_seq = client.get_session(&id).await.unwrap().last_seq;
    let seen_gseq = client.info().await.unwrap().last_gseq;

    // The restore, then a start on it.
    stop(&mut server).await;
    restore(&server.data_dir(), snapshot.path());
    server.restart_same_port().await;
    let client = server.client();
    let info = client.info().await.unwrap();
    let last = client.get_session(&id).await.unwrap().last_seq;
    assert!(last < seen_seq, "the restored store should be behind: {last} vs {seen_seq}");
    assert!(info.last_gseq < seen_gseq, "{} vs {seen_gseq}", info.last_gseq);
    let reset = json!({"last_seq": last, "store_id": info.store_id, "after": seen_seq});

    // SSE with Last-Event-ID from before the restore: stream.reset with id = the real last seq.
    let path = format!("/v1/sessions/{id}/events/stream");
    let mut raw =
        RawSse::connect(client.request(Method::GET, &path).header("Last-Event-ID", seen_seq.to_string())).await;
    let frame = raw.next_frame(FRAME_TIMEOUT).await.expect("a first frame, not the end");
    assert_eq!(frame.event.as_deref(), Some("stream.reset"));
    assert_eq!(frame.id, Some(last.to_string()));
    assert_eq!(frame.data, reset);
    // ?after= the same way.
    let mut by_after = RawSse::connect(client.request(Method::GET, &format!("{path}?after={seen_seq}"))).await;
    assert_eq!(by_after.next_frame(FRAME_TIMEOUT).await.unwrap().data, reset);

    // The page route: 409 cursor_ahead naming the real last seq and the store.
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{id}/events?after={seen_seq}"))).await;
    let problem = expect_problem(resp, 409, "cursor_ahead", &[&format!("after={seen_seq}"), "restored"]).await;
    assert_eq!((problem.last_seq, problem.store_id.as_deref()), (Some(last), Some(info.store_id.as_str())));
    match client.events_page(&id, seen_seq, None, false).await {
        Err(Error::CursorAhead(r)) => {
            assert_eq!(r, StreamReset { last_seq: last, store_id: info.store_id.clone(), after: Some(seen_seq) })
        }
        other => panic!("expected CursorAhead, got {other:?}"),
    }
    // At the store's end it is an ordinary empty page.
    assert!(client.events_page(&id, last, None, false).await.unwrap().events.is_empty());

    // The SDK: the reset comes as an error item within a deadline, then the stream goes on after it.
    let mut sdk = client.session_events(&id, Some(seen_seq));
    match tokio::time::timeout(FRAME_TIMEOUT, sdk.next_event()).await.expect("the SDK stream did not hang") {
        Some(Err(Error::CursorAhead(r))) => assert_eq!((r.last_seq, r.after), (last, Some(seen_seq))),
        other => panic!("expected CursorAhead, got {other:?}"),
    }
    assert_eq!(sdk.cursor(), Some(last));

    // The global stream, over gseq; and the WebSocket, as a text frame.
    let mut global =
        RawSse::connect(client.request(Method::GET, &format!("/v1/events/stream?after={seen_gseq}"))).await;
    let frame = global.next_frame(FRAME_TIMEOUT).await.unwrap();
    assert_eq!((frame.event.as_deref(), frame.id.clone()), (Some("stream.reset"), Some(info.last_gseq.to_string())));
    assert_eq!(frame.data, json!({"last_seq": info.last_gseq, "store_id": info.store_id, "after": seen_gseq}));
    let mut sdk_global = client.all_events(Some(seen_gseq));
    match tokio::time::timeout(FRAME_TIMEOUT, sdk_global.next_event()).await.unwrap() {
        Some(Err(Error::CursorAhead(r))) => assert_eq!(r.last_seq, info.last_gseq),
        other => panic!("expected CursorAhead, got {other:?}"),
    }
    let mut ws = RawWs::connect(&server, &format!("/v1/sessions/{id}/events/ws?after={seen_seq}")).await;
    assert_eq!(ws.next(FRAME_TIMEOUT).await, WsItem::Control(json!({"type": "stream.reset", "data": reset})));

    // Every one of them goes on with the new events after the real last seq: no gap, no duplicate.
    client.send_text(&id, "[mock:text] after the restore").await.unwrap();
    let fresh = raw.read_until(TURN_TIMEOUT, RawFrame::seq, |f| f.event_type() == "turn.completed").await;
    let stored = events_json(&client, &id, last).await;
    assert_eq!(fresh.iter().map(|f| f.data.clone()).collect::<Vec<_>>(), stored[..fresh.len()].to_vec());
    assert_eq!(fresh[0].seq(), last + 1);
    let from_sdk = wait_for_type(&mut sdk, TURN_TIMEOUT, "turn.completed").await;
    assert_contiguous(&from_sdk, last + 1);
    assert_eq!(from_sdk.len(), fresh.len());
    let from_ws = ws.read_until(TURN_TIMEOUT, |e| e["type"] == "turn.completed").await;
    assert_eq!(from_ws, stored[..fresh.len()].to_vec());
    let g = wait_for_type(&mut sdk_global, TURN_TIMEOUT, "turn.completed").await;
    assert_eq!(g[0].gseq, info.last_gseq + 1);
    assert_eq!(g.len(), fresh.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_streams_end_cleanly_and_the_sdk_follows_on() {
    let server = TestServer::start_with(ServerOptions {
        keepalive_secs: Some(1),
        extra_args: vec!["--stream-idle-secs".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    let mut sdk = client.session_events(&id, None);
    wait_for_type(&mut sdk, TURN_TIMEOUT, "session.status").await;

    // Events keep a stream open past the idle time: a 10 s turn of a delta every 100 ms.
    let path = format!("/v1/sessions/{id}/events/stream");
    let mut sse = RawSse::connect(client.request(Method::GET, &path)).await;
    let mut ws = RawWs::connect(&server, &format!("/v1/sessions/{id}/events/ws")).await;
    client.send_text(&id, "[mock:slow]").await.unwrap();
    let turn = sse.read_until(TURN_TIMEOUT, RawFrame::seq, |f| f.event_type() == "turn.completed").await;
    let started = std::time::Instant::now();
    let ws_turn = ws.read_until(TURN_TIMEOUT, |e| e["type"] == "turn.completed").await;
    assert_eq!(ws_turn.len(), turn.len());

    // Then, with nothing to send (keepalives every second do not count), each ends saying why.
    let last = loop {
        let Some(frame) = sse.next_frame(TURN_TIMEOUT).await else {
            panic!("the SSE stream ended without stream.idle")
        };
        if frame.event.as_deref() == Some("stream.idle") {
            assert_eq!(frame.data, json!({"idle_secs": 2}));
            assert_eq!(frame.id, None, "stream.idle must not move the client's cursor");
            break frame;
        }
        // Events written after the turn (its idle status) come first.
        assert_eq!(frame.event.as_deref(), Some(frame.event_type()));
    };
    assert!(sse.next_frame(FRAME_TIMEOUT).await.is_none(), "the body ends after stream.idle: {last:?}");
    let mut pings = 0;
    loop {
        match ws.next(TURN_TIMEOUT).await {
            WsItem::Ping => pings += 1,
            WsItem::Event(e) => assert!(seq(&e) > seq(ws_turn.last().unwrap())),
            WsItem::Close(code, reason) => {
                assert_eq!(code, 1000);
                assert!(reason.contains("idle"), "{reason}");
                break;
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    assert!(pings >= 1, "keepalive pings while idle");
    assert!(started.elapsed() >= Duration::from_secs(1), "ended before the idle time: {:?}", started.elapsed());

    // The SDK's stream was ended the same way, more than once by now, and reconnected by itself.
    let deadline = tokio::time::Instant::now() + TURN_TIMEOUT;
    let mut followed = wait_for_type(&mut sdk, TURN_TIMEOUT, "turn.completed").await;
    while !format!("{sdk:?}").contains("reconnects: 2") {
        assert!(tokio::time::Instant::now() < deadline, "the SDK stream was not ended by idleness: {sdk:?}");
        if let Ok(item) = tokio::time::timeout(Duration::from_millis(200), sdk.next_event()).await {
            followed.push(item.expect("the stream goes on").expect("an event"));
        }
    }
    client.send_text(&id, "[mock:text] later").await.unwrap();
    followed.extend(wait_for_type(&mut sdk, TURN_TIMEOUT, "turn.completed").await);
    let all = read_all(&client, &id).await;
    let start = followed[0].seq;
    assert_contiguous(&followed, start);
    assert_eq!(followed[..], all[start as usize - 1..start as usize - 1 + followed.len()]);
    assert_eq!(followed.last().unwrap().event_type(), "turn.completed");
}
