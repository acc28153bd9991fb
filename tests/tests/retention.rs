//! Retention (`--retain`): ended sessions past the count or the age are
//! purged in the background with their events — and nothing else: not a
//! session that runs (a flood goes on through the purges and keeps every
//! event), not an idle one, not one whose events a webhook has yet to deliver.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{Client, CreateSession, ListSessions, SessionStatus};

/// Deltas of the flood that runs through the purges.
const FLOOD: usize = 100_000;

/// How long the purges may take to show.
const WAIT: Duration = Duration::from_secs(30);

async fn server(retain: &str) -> TestServer {
    TestServer::start_with(ServerOptions {
        extra_args: vec!["--retain".into(), retain.into(), "--webhook-retry-min-ms".into(), "50".into()],
        ..Default::default()
    })
    .await
}

/// A mock session that ran one turn.
async fn ran_a_turn(client: &Client, text: &str) -> String {
    let create =
        CreateSession { agent: "mock".into(), prompt: Some(format!("[mock:text] {text}")), ..Default::default() };
    let s = client.create_session(&create).await.unwrap();
    let mut stream = client.session_events(&s.id, Some(0));
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    s.id
}

/// A mock session that ran one turn and was ended (not purged).
async fn ended_session(client: &Client, text: &str) -> String {
    let id = ran_a_turn(client, text).await;
    client.delete_session(&id, false).await.unwrap();
    id
}

async fn session_ids(client: &Client) -> BTreeSet<String> {
    let list = client.list_sessions(&ListSessions { limit: Some(1000), ..Default::default() }).await.unwrap();
    list.sessions.into_iter().map(|s| s.id).collect()
}

/// Polls the session list (every 50 ms, up to [`WAIT`]) until it is `want`.
async fn wait_sessions(client: &Client, want: &BTreeSet<String>) {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = session_ids(client).await;
        if &now == want {
            return;
        }
        assert!(Instant::now() < deadline, "the sessions stayed {now:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn assert_purged(client: &Client, id: &str) {
    let err = client.get_session(id).await.expect_err("purged");
    assert_eq!(err.status(), Some(404), "{err}");
}

#[tokio::test]
async fn past_the_count_ended_sessions_are_purged_while_a_flood_runs_and_loses_nothing() {
    let server = server("2").await;
    let client = server.client();
    let idle = client.create_session(&CreateSession { agent: "mock".into(), ..Default::default() }).await.unwrap();
    let mut ended = Vec::new();
    for i in 0..5 {
        ended.push(ran_a_turn(&client, &format!("s{i}")).await);
    }
    // The sessions end (and are purged) while a flood is being written.
    let prompt = Some(format!("[mock:flood:{FLOOD}]"));
    let flood =
        client.create_session(&CreateSession { agent: "mock".into(), prompt, ..Default::default() }).await.unwrap();
    let mut stream = client.session_events(&flood.id, Some(0));
    wait_for(&mut stream, TURN_TIMEOUT, |e| e.event_type() == "item.delta").await;
    for id in &ended {
        client.delete_session(id, false).await.unwrap();
    }
    assert_eq!(client.get_session(&flood.id).await.unwrap().status, SessionStatus::Running, "the flood ended too soon");
    let want: BTreeSet<String> =
        [flood.id.clone(), idle.id.clone(), ended[3].clone(), ended[4].clone()].into_iter().collect();
    wait_sessions(&client, &want).await;
    for id in &ended[..3] {
        assert_purged(&client, id).await;
    }
    for id in &ended[3..] {
        let events = read_all(&client, id).await;
        assert_well_formed(&events);
        assert_eq!(events.last().unwrap().event_type(), "session.ended");
    }
    assert_eq!(client.get_session(&idle.id).await.unwrap().status, SessionStatus::Idle);

    // The flood ran through the purges and kept every event, gap-free.
    wait_for_type(&mut stream, Duration::from_secs(120), "turn.completed").await;
    let events = read_all(&client, &flood.id).await;
    assert_well_formed(&events);
    assert_eq!(of_type(&events, "item.delta").len(), FLOOD);
}

#[tokio::test]
async fn past_the_age_ended_sessions_are_purged_and_idle_ones_kept() {
    let server = server("2s").await;
    let client = server.client();
    let idle = client.create_session(&CreateSession { agent: "mock".into(), ..Default::default() }).await.unwrap();
    let old = ended_session(&client, "old").await;
    let want: BTreeSet<String> = [idle.id.clone()].into_iter().collect();
    wait_sessions(&client, &want).await;
    assert_purged(&client, &old).await;
    assert_eq!(client.get_session(&idle.id).await.unwrap().status, SessionStatus::Idle);
}

#[tokio::test]
async fn a_session_a_webhook_has_not_delivered_is_kept_until_it_is() {
    let server = server("0").await;
    let client = server.client();
    let receiver = tether_e2e::webhook_receiver::Receiver::start("whsec-retention-0a1b2c3d4e5f").await;
    receiver.fail_next(u32::MAX);
    let body = serde_json::json!({"url": receiver.url(), "secret": "whsec-retention-0a1b2c3d4e5f"});
    let resp = tether_e2e::http::send(client.request(reqwest::Method::POST, "/v1/webhooks").json(&body)).await;
    assert_eq!(resp.status().as_u16(), 201);
    let kept = ended_session(&client, "kept").await;
    receiver.wait_until(WAIT, "a failed delivery", |d| d.iter().any(|d| !d.acknowledged())).await;
    // Retention ran on the session's end, and keeps it: its events are not delivered.
    assert!(session_ids(&client).await.contains(&kept));
    receiver.fail_next(0);
    wait_sessions(&client, &BTreeSet::new()).await;
    assert_purged(&client, &kept).await;
    let delivered: Vec<u64> = receiver
        .deliveries()
        .iter()
        .filter(|d| d.acknowledged())
        .flat_map(|d| d.events.iter().map(|e| e.seq))
        .collect();
    let last = *delivered.iter().max().unwrap();
    assert_eq!(
        delivered.iter().copied().collect::<BTreeSet<_>>(),
        (1..=last).collect(),
        "every event delivered once purged"
    );
}
