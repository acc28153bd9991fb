//! Event streams over WebSocket: resume from a cursor with no gap and no
//! duplicate (also across a clean restart and a crash of the server), slow
//! readers caught up from the store, the global stream, raw events, pings,
//! the close at shutdown, auth, and refusals as problem+json.

use std::time::Duration;

use serde_json::Value;
use tether_e2e::events::*;
use tether_e2e::http::{events_json, expect_problem, send};
use tether_e2e::ws::{gseq, seq, RawWs, WsItem};
use tether_e2e::*;
use tether_sdk::reqwest::Method;

const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// The headers of a WebSocket upgrade, on a plain HTTP request (to read a refusal's body whole).
fn upgrade(request: tether_sdk::reqwest::RequestBuilder) -> tether_sdk::reqwest::RequestBuilder {
    request
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
}

fn assert_seqs_from(events: &[Value], first: u64) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(seq(e), first + i as u64, "gap or duplicate at #{i}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_streams_resume_without_gap_or_duplicate_across_restarts() {
    let mut server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    let path = |after: u64| format!("/v1/sessions/{id}/events/ws?after={after}");

    // A reader that does not read during a flood bigger than the live bus: it is caught up from the store.
    let mut slow = RawWs::connect(&server, &format!("/v1/sessions/{id}/events/ws")).await;
    client.send_text(&id, "[mock:flood:20000]").await.unwrap();
    let turn = collect_turn(&client, &id, 0).await;
    let end = turn.last().unwrap().seq;
    let got = slow.read_until(TURN_TIMEOUT, |e| seq(e) == end).await;
    assert_seqs_from(&got, 1);
    let stored = events_json(&client, &id, 0).await;
    assert_eq!(got[..], stored[..got.len()], "WebSocket events are the stored JSON");
    slow.close().await;

    // Part of it, dropped, then resumed after the cursor.
    let mut first = RawWs::connect(&server, &path(0)).await;
    let part1 = first.read_until(FRAME_TIMEOUT, |e| seq(e) == 5000).await;
    drop(first);
    let mut second = RawWs::connect(&server, &path(5000)).await;
    let part2 = second.read_until(FRAME_TIMEOUT, |e| seq(e) == end).await;
    assert_seqs_from(&part1, 1);
    assert_seqs_from(&part2, 5001);

    // A clean restart: the open stream gets a close frame (1001), then resumes on the new server.
    server.restart_same_port().await;
    let mut closed = Vec::new();
    loop {
        match second.next(FRAME_TIMEOUT).await {
            WsItem::Event(e) => closed.push(e),
            WsItem::Ping => {}
            WsItem::Close(code, reason) => {
                assert_eq!(code, 1001, "{reason}");
                assert!(reason.contains("shutting down"), "{reason}");
                break;
            }
            other => panic!("expected a close frame at shutdown, got {other:?}"),
        }
    }
    // What the shutdown wrote may arrive before the close.
    assert_seqs_from(&closed, end + 1);
    let cursor = closed.last().map(seq).unwrap_or(end);
    let mut third = RawWs::connect(&server, &path(cursor)).await;
    client.send_text(&id, "[mock:text] after a restart").await.unwrap();
    let part3 = third.read_until(TURN_TIMEOUT, |e| e["type"] == "turn.completed").await;
    assert_seqs_from(&part3, cursor + 1);

    // A crash: the stream just ends; resuming after its last event misses nothing.
    let mut fourth = RawWs::connect(&server, &path(seq(part3.last().unwrap()))).await;
    client.send_text(&id, "[mock:slow]").await.unwrap();
    let before_crash = fourth.read_until(TURN_TIMEOUT, |e| e["type"] == "item.delta").await;
    server.kill9_and_restart_same_port().await;
    let mut rest = before_crash;
    loop {
        match fourth.next(FRAME_TIMEOUT).await {
            WsItem::Event(e) => rest.push(e),
            WsItem::Ping => {}
            WsItem::End => break,
            other => panic!("expected the end of a killed server's stream, got {other:?}"),
        }
    }
    let cursor = seq(rest.last().unwrap());
    let mut fifth = RawWs::connect(&server, &path(cursor)).await;
    // The recovery closed the turn the crash left open; one more turn to read to its end.
    client.send_text(&id, "[mock:text] after a crash").await.unwrap();
    let mut after = Vec::new();
    loop {
        after.extend(fifth.read_until(TURN_TIMEOUT, |e| e["type"] == "turn.completed").await);
        if after
            .iter()
            .any(|e| e["type"] == "turn.started" && e["data"]["input"][0]["text"] == "[mock:text] after a crash")
        {
            break;
        }
    }
    assert_seqs_from(&after, cursor + 1);

    // Everything read across the five connections after the flood is the stored history.
    let stored = events_json(&client, &id, 0).await;
    let read: Vec<Value> = closed.into_iter().chain(part3).chain(rest).chain(after).collect();
    assert_seqs_from(&read, end + 1);
    assert_eq!(read[..], stored[end as usize..end as usize + read.len()]);
    assert_well_formed_prefix(&read_all(&client, &id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_websocket_raw_events_pings_auth_and_refusals() {
    let server = TestServer::start_with(ServerOptions {
        token: Some("ws-t0ken".into()),
        keepalive_secs: Some(1),
        ..Default::default()
    })
    .await;
    let client = server.client();
    let a = mock_session(&client).await;
    let b = mock_session(&client).await;
    let g = client.info().await.unwrap().last_gseq;

    // The global stream resumes after a gseq and carries every session; include_raw adds `raw`.
    let mut global = RawWs::connect(&server, &format!("/v1/events/ws?after={g}&include_raw=true")).await;
    let mut plain = RawWs::connect(&server, &format!("/v1/sessions/{}/events/ws?after=0", a.id)).await;
    client.send_text(&a.id, "[mock:text] a").await.unwrap();
    collect_turn(&client, &a.id, 0).await;
    client.send_text(&b.id, "[mock:text] b").await.unwrap();
    let done_b = collect_turn(&client, &b.id, 0).await;
    let last_b = done_b.last().unwrap().gseq;
    let events = global.read_until(TURN_TIMEOUT, |e| gseq(e) == last_b).await;
    let gseqs: Vec<u64> = events.iter().map(gseq).collect();
    assert_eq!(gseqs[0], g + 1);
    assert!(gseqs.windows(2).all(|w| w[0] < w[1]), "gseq not increasing: {gseqs:?}");
    assert!(
        events.iter().any(|e| e["session_id"] == a.id.as_str())
            && events.iter().any(|e| e["session_id"] == b.id.as_str())
    );
    assert!(events.iter().any(|e| e.get("raw").is_some()), "include_raw=true gives agent events their raw line");
    let own = plain.read_until(TURN_TIMEOUT, |e| e["type"] == "turn.completed").await;
    assert_seqs_from(&own, 1);
    assert!(own.iter().all(|e| e.get("raw").is_none() && e["session_id"] == a.id.as_str()));

    // An idle stream gets pings (keepalive every second here).
    loop {
        match plain.next(FRAME_TIMEOUT).await {
            WsItem::Ping => break,
            WsItem::Event(_) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
    }

    // Auth is the same as every route's: X-Tether-Token or Authorization: Bearer.
    let ws_path = format!("/v1/sessions/{}/events/ws", a.id);
    let bearer = [("authorization", "Bearer ws-t0ken".to_string())];
    RawWs::connect_with(&server, &ws_path, &bearer).await.expect("a bearer token is accepted").close().await;
    let refused = RawWs::connect_with(&server, &ws_path, &[]).await.expect_err("no token is refused");
    assert_eq!(refused.status, 401);
    let resp = send(upgrade(server.client().request(Method::GET, &ws_path)).header("x-tether-token", "nope")).await;
    expect_problem(resp, 401, "unauthorized", &["x-tether-token"]).await;

    // Refusals come before the upgrade, as problem+json.
    let resp = send(upgrade(client.request(Method::GET, "/v1/sessions/ses_nope/events/ws"))).await;
    expect_problem(resp, 404, "session_not_found", &["ses_nope"]).await;
    let resp = send(upgrade(client.request(Method::GET, "/v1/events/ws?colour=red"))).await;
    expect_problem(resp, 400, "invalid_request", &["colour"]).await;
    let resp = send(upgrade(client.request(Method::GET, "/v1/events/ws?after=-1"))).await;
    expect_problem(resp, 400, "invalid_request", &["after"]).await;
    let resp = send(upgrade(client.request(Method::GET, &ws_path)).header("Last-Event-ID", "x")).await;
    expect_problem(resp, 400, "invalid_request", &["last-event-id"]).await;
    let refused =
        RawWs::connect_with(&server, "/v1/sessions/ses_nope/events/ws", &[("x-tether-token", "ws-t0ken".into())])
            .await
            .err()
            .unwrap();
    assert_eq!(refused.status, 404);
    // A request that is not an upgrade: 426 saying what to send.
    let resp = send(client.request(Method::GET, &ws_path)).await;
    assert_eq!(resp.headers().get("upgrade").and_then(|v| v.to_str().ok()), Some("websocket"));
    expect_problem(resp, 426, "upgrade_required", &["websocket"]).await;
    let resp = send(client.request(Method::POST, &ws_path)).await;
    expect_problem(resp, 405, "method_not_allowed", &["POST"]).await;
}
