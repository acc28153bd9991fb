//! Webhooks: every event of every session reaches a receiver that fails,
//! goes down and comes back, in order and with only whole, identical batches
//! re-sent; a `kill -9` in the middle of delivery loses nothing and resumes
//! from the stored cursor; filters deliver only what they name; bad bodies
//! are 400, unknown ids 404, the secret never comes back; DELETE stops
//! delivery at once.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{json, Value};
use tether_e2e::events::{collect_turn, wait_status};
use tether_e2e::http::{expect_problem, send};
use tether_e2e::webhook_receiver::{Delivery, Receiver};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::Client;
use tokio::time::Instant;

const SECRET: &str = "whsec-e2e-7f3a9c1d0b2e4f68";
/// How long any wait of these tests may take.
const WAIT: Duration = Duration::from_secs(60);

/// A server whose webhook retries are fast (20 ms doubling up to 200 ms).
async fn fast_retry_server() -> TestServer {
    TestServer::start_with(ServerOptions {
        extra_args: ["--webhook-retry-min-ms", "20", "--webhook-retry-max-ms", "200"].map(String::from).to_vec(),
        ..Default::default()
    })
    .await
}

/// `POST /v1/webhooks` with `body`; asserts 201 and that the secret is not in the answer.
async fn create_webhook(client: &Client, body: Value) -> Value {
    let resp = send(client.request(Method::POST, "/v1/webhooks").json(&body)).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "create webhook: {text}");
    assert!(!text.contains(SECRET), "the secret came back: {text}");
    let view: Value = serde_json::from_str(&text).unwrap();
    assert!(view["id"].as_str().unwrap().starts_with("whk_"), "{view}");
    assert!(view.get("secret").is_none());
    view
}

/// `GET path` as text; asserts 200 and that the secret is not in it.
async fn get_text(client: &Client, path: &str) -> String {
    let resp = send(client.request(Method::GET, path)).await;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {text}");
    assert!(!text.contains(SECRET), "the secret is in GET {path}: {text}");
    text
}

async fn view(client: &Client, id: &str) -> Value {
    serde_json::from_str(&get_text(client, &format!("/v1/webhooks/{id}")).await).unwrap()
}

/// Polls the webhook's view (every 20 ms, up to [`WAIT`]) until `pred` holds of it.
async fn wait_view(client: &Client, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = view(client, id).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "webhook {id} was not {what} within {WAIT:?}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The line of `/metrics` for `series` (name and labels), as its value.
async fn metric(client: &Client, series: &str) -> Option<String> {
    let text = get_text(client, "/metrics").await;
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(str::to_owned))
}

async fn last_seqs(client: &Client, ids: &[String]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for id in ids {
        out.insert(id.clone(), client.get_session(id).await.unwrap().last_seq);
    }
    out
}

/// Whether the acknowledged deliveries hold every event up to `last` of each session.
fn has_all(deliveries: &[Delivery], last: &BTreeMap<String, u64>) -> bool {
    let mut top: HashMap<&str, u64> = HashMap::new();
    for d in deliveries.iter().filter(|d| d.acknowledged()) {
        for e in &d.events {
            let t = top.entry(e.session_id.as_str()).or_default();
            *t = (*t).max(e.seq);
        }
    }
    last.iter().all(|(id, &n)| top.get(id.as_str()).copied().unwrap_or(0) >= n)
}

/// The delivery guarantees, checked on everything `receiver` got: every
/// signature valid; any two requests that share an event carry exactly the
/// same events (a re-sent batch is whole and identical by gseq); the
/// distinct acknowledged batches, in arrival order, are in strictly
/// increasing gseq order and hold, per session, exactly seq 1..=last.
fn assert_delivered_exactly(receiver: &Receiver, last: &BTreeMap<String, u64>) {
    receiver.assert_all_signed();
    let all = receiver.deliveries();
    let mut batch_of: HashMap<u64, &Vec<u64>> = HashMap::new();
    for d in &all {
        for g in &d.event_ids {
            if let Some(prev) = batch_of.insert(*g, &d.event_ids) {
                assert_eq!(prev, &d.event_ids, "gseq {g} came in two different batches");
            }
        }
    }
    let mut seen_batches = std::collections::HashSet::new();
    let mut last_gseq = 0;
    let mut per_session: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in all.iter().filter(|d| d.acknowledged()) {
        if !seen_batches.insert(d.event_ids.clone()) {
            continue;
        }
        for e in &d.events {
            assert!(e.gseq > last_gseq, "gseq {} after {last_gseq}: out of order", e.gseq);
            last_gseq = e.gseq;
            per_session.entry(e.session_id.clone()).or_default().push(e.seq);
        }
    }
    for (id, &n) in last {
        let got = per_session.remove(id).unwrap_or_default();
        let want: Vec<u64> = (1..=n).collect();
        if got != want {
            let first_bad = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            panic!(
                "session {id}: {} events delivered, {n} stored; first difference at index {first_bad}: {:?}",
                got.len(),
                &got[first_bad.saturating_sub(2)..(first_bad + 3).min(got.len())]
            );
        }
    }
    assert!(per_session.is_empty(), "events of other sessions: {:?}", per_session.keys());
}

async fn mock_sessions(client: &Client, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(mock_session(client).await.id);
    }
    ids
}

/// Sends `text` to every session, then waits for each turn to end.
async fn turn_everywhere(client: &Client, ids: &[String], text: &str) {
    let mut after = Vec::new();
    for id in ids {
        after.push(client.get_session(id).await.unwrap().last_seq);
        client.send_text(id, text).await.unwrap();
    }
    for (id, after) in ids.iter().zip(after) {
        collect_turn(client, id, after).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_every_event_through_failures_and_a_receiver_that_goes_down() {
    let server = fast_retry_server().await;
    let client = server.client();
    let mut receiver = Receiver::start(SECRET).await;
    receiver.fail_next(4);
    let hook = create_webhook(&client, json!({"url": receiver.url(), "secret": SECRET})).await;
    let id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["state"], "active");
    assert_eq!(hook["events"], Value::Null);
    assert_eq!(hook["sessions"], Value::Null);

    let sessions = mock_sessions(&client, 3).await;
    turn_everywhere(&client, &sessions, "hello").await;
    // The first four attempts were 500: each the same batch, then it was acknowledged.
    let got = receiver.wait_until(WAIT, "an acknowledged delivery", |d| d.iter().any(Delivery::acknowledged)).await;
    assert!(got.len() >= 5);
    assert!(got[..4].iter().all(|d| d.status == 500), "{:?}", got.iter().map(|d| d.status).collect::<Vec<_>>());
    assert!(got[..5].iter().all(|d| d.event_ids == got[0].event_ids), "a retry is the same batch");
    let v = wait_view(&client, &id, "caught up after the 500s", |v| v["pending"] == 0).await;
    assert_eq!(v["state"], "active");
    assert_eq!(v["consecutive_failures"], 0);
    assert!(v.get("last_error").is_none(), "{v}");
    assert!(v["last_success_at"].is_string());

    // Down while every session keeps producing events.
    receiver.down().await;
    turn_everywhere(&client, &sessions, "[mock:flood:1500]").await;
    turn_everywhere(&client, &sessions, "[mock:tool] while the receiver is down").await;
    let failing = wait_view(&client, &id, "failing on connect errors", |v| {
        v["state"] == "failing" && v["last_error"].as_str().is_some_and(|e| e.starts_with("connect error"))
    })
    .await;
    assert!(failing["consecutive_failures"].as_u64().unwrap() >= 3, "{failing}");
    assert!(failing["pending"].as_u64().unwrap() > 1000, "{failing}");
    let list: Value = serde_json::from_str(&get_text(&client, "/v1/webhooks").await).unwrap();
    let listed = &list["webhooks"][0];
    assert_eq!((listed["id"].as_str(), listed["state"].as_str()), (Some(id.as_str()), Some("failing")), "{list}");
    assert!(listed["last_error"].is_string());
    assert_eq!(metric(&client, &format!("tether_webhook_failing{{webhook=\"{id}\"}}")).await.as_deref(), Some("1"));
    assert_eq!(metric(&client, "tether_webhooks{state=\"failing\"}").await.as_deref(), Some("1"));
    assert_eq!(metric(&client, "tether_webhooks{state=\"active\"}").await.as_deref(), Some("0"));
    let pending: u64 =
        metric(&client, &format!("tether_webhook_pending_events{{webhook=\"{id}\"}}")).await.unwrap().parse().unwrap();
    assert!(pending > 1000);
    let errors: u64 =
        metric(&client, "tether_webhook_deliveries_total{result=\"error\"}").await.unwrap().parse().unwrap();
    assert!(errors >= 7, "4 HTTP 500s and at least 3 connect errors: {errors}");

    // Up again: everything arrives, and the webhook is active.
    receiver.up().await;
    let last = last_seqs(&client, &sessions).await;
    receiver.wait_until(WAIT, "every event of every session", |d| has_all(d, &last)).await;
    let v = wait_view(&client, &id, "active and caught up", |v| v["state"] == "active" && v["pending"] == 0).await;
    assert_eq!(v["consecutive_failures"], 0);
    assert!(v.get("last_error").is_none(), "{v}");
    assert_eq!(metric(&client, &format!("tether_webhook_failing{{webhook=\"{id}\"}}")).await.as_deref(), Some("0"));
    assert_eq!(metric(&client, "tether_webhooks{state=\"active\"}").await.as_deref(), Some("1"));
    // Nothing more was produced meanwhile: the stored sessions are what was delivered.
    assert_eq!(last_seqs(&client, &sessions).await, last);
    assert_delivered_exactly(&receiver, &last);
    let total: u64 = last.values().sum();
    assert_eq!(v["delivered_events"].as_u64().unwrap(), total, "no batch was acknowledged twice: {v}");
    assert_eq!(v["cursor"], client.info().await.unwrap().last_gseq, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_kill9_mid_delivery_loses_nothing_and_resumes_from_the_cursor() {
    let mut server = fast_retry_server().await;
    let client = server.client();
    let receiver = Receiver::start(SECRET).await;
    // Three batches acknowledged, then the fourth is held open: the crash comes mid-delivery.
    receiver.hold_after(3);
    let hook = create_webhook(&client, json!({"url": receiver.url(), "secret": SECRET, "from": "start"})).await;
    let id = hook["id"].as_str().unwrap().to_string();
    let sessions = mock_sessions(&client, 2).await;
    turn_everywhere(&client, &sessions, "[mock:flood:3000]").await;
    let got = receiver.wait_until(WAIT, "a held delivery", |d| d.iter().any(|d| d.status == 0)).await;
    assert_eq!(got.iter().filter(|d| d.acknowledged()).count(), 3);
    let held = got.iter().find(|d| d.status == 0).unwrap().event_ids.clone();
    let before = view(&client, &id).await;
    assert!(before["pending"].as_u64().unwrap() > 5000, "{before}");
    assert_eq!(before["cursor"].as_u64().unwrap(), got[2].event_ids.last().copied().unwrap(), "{before}");

    server.kill9().await;
    receiver.release();
    server.restart().await;

    // The subscription survived; its first request is the batch cut short, whole.
    let after_crash = receiver
        .wait_until(WAIT, "a delivery after the restart", |d| d.iter().filter(|d| d.acknowledged()).count() > 3)
        .await;
    let resumed = after_crash.iter().filter(|d| d.acknowledged()).nth(3).unwrap();
    assert_eq!(resumed.event_ids, held, "the batch in flight at the crash is sent again, identical");

    // A second crash while batches flow at full speed, wherever it lands.
    let acked = |d: &[Delivery]| d.iter().filter(|d| d.acknowledged()).count();
    receiver.wait_until(WAIT, "five more acknowledged batches", |d| acked(d) >= 9).await;
    server.kill9().await;
    let at_crash = receiver.deliveries();
    let total_now: u64 = distinct_acknowledged(&at_crash);
    assert!(total_now < 6000, "the crash came before everything was delivered ({total_now} events)");
    server.restart().await;
    let client = server.client();
    // Recovery may add events (restarted agents): wait for the sessions as they are now.
    for s in &sessions {
        wait_status(&client, s, tether_sdk::SessionStatus::Idle, WAIT).await;
    }
    let last = last_seqs(&client, &sessions).await;
    receiver.wait_until(WAIT, "every event of every session", |d| has_all(d, &last)).await;
    let v = wait_view(&client, &id, "caught up", |v| v["pending"] == 0).await;
    assert_eq!(v["state"], "active");
    assert_eq!(last_seqs(&client, &sessions).await, last);
    assert_delivered_exactly(&receiver, &last);
    // Counted across the crashes: at least every event once; no more than the receiver acknowledged
    // (a batch acknowledged just before a crash, whose cursor was not stored yet, is sent again).
    let total: u64 = last.values().sum();
    let acknowledged: u64 =
        receiver.deliveries().iter().filter(|d| d.acknowledged()).map(|d| d.events.len() as u64).sum();
    let counted = v["delivered_events"].as_u64().unwrap();
    assert!(total <= counted && counted <= acknowledged, "{total} <= {counted} <= {acknowledged}: {v}");
}

/// Distinct events acknowledged in `deliveries`.
fn distinct_acknowledged(deliveries: &[Delivery]) -> u64 {
    let mut gseqs = std::collections::HashSet::new();
    for d in deliveries.iter().filter(|d| d.acknowledged()) {
        gseqs.extend(d.event_ids.iter().copied());
    }
    gseqs.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_only_the_event_types_and_sessions_they_name() {
    let server = fast_retry_server().await;
    let client = server.client();
    let sessions = mock_sessions(&client, 2).await;
    let (a, b) = (sessions[0].clone(), sessions[1].clone());
    let turns = Receiver::start(SECRET).await;
    let only_a = Receiver::start(SECRET).await;
    let turns_hook = create_webhook(
        &client,
        json!({"url": turns.url(), "secret": SECRET, "events": ["turn.completed"], "from": "start"}),
    )
    .await;
    assert_eq!(turns_hook["events"], json!(["turn.completed"]));
    let a_hook =
        create_webhook(&client, json!({"url": only_a.url(), "secret": SECRET, "sessions": [a], "from": "start"})).await;
    assert_eq!(a_hook["sessions"], json!([a]));

    turn_everywhere(&client, &sessions, "one").await;
    turn_everywhere(&client, &sessions, "[mock:tool] two").await;
    let last = last_seqs(&client, &sessions).await;
    let end = client.info().await.unwrap().last_gseq;
    for hook in [&turns_hook, &a_hook] {
        let hid = hook["id"].as_str().unwrap();
        // Past every stored event: whatever it did not send, it never will.
        wait_view(&client, hid, "past the last event", |v| v["cursor"].as_u64() >= Some(end) && v["pending"] == 0)
            .await;
    }
    turns.assert_all_signed();
    only_a.assert_all_signed();

    let types: Vec<(String, String)> = turns
        .deliveries()
        .iter()
        .filter(|d| d.acknowledged())
        .flat_map(|d| d.events.iter().map(|e| (e.session_id.clone(), e.event_type.clone())))
        .collect();
    assert!(types.iter().all(|(_, t)| t == "turn.completed"), "{types:?}");
    for s in [&a, &b] {
        assert_eq!(types.iter().filter(|(id, _)| id == s).count(), 2, "two turns of {s}: {types:?}");
    }
    assert_delivered_exactly(&only_a, &BTreeMap::from([(a.clone(), last[&a])]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_deliver_over_https() {
    // The receiver behind a TLS terminator whose CA the server trusts through SSL_CERT_FILE.
    let ca = tether_e2e::remote::TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let server = TestServer::start_with(ServerOptions {
        env: vec![("SSL_CERT_FILE".into(), ca_file.display().to_string())],
        ..Default::default()
    })
    .await;
    let client = server.client();
    let receiver = Receiver::start(SECRET).await;
    let front = tether_e2e::remote::TlsFront::start(&ca, &receiver.url().replace("/hook", ""), None).await;
    let url = format!("{}/hook", front.url);
    assert!(url.starts_with("https://"));
    let hook = create_webhook(&client, json!({"url": url, "secret": SECRET})).await;
    let id = mock_session(&client).await.id;
    turn_everywhere(&client, std::slice::from_ref(&id), "[mock:tool] over TLS").await;
    let last = last_seqs(&client, std::slice::from_ref(&id)).await;
    let end = client.info().await.unwrap().last_gseq;
    let hid = hook["id"].as_str().unwrap();
    wait_view(&client, hid, "past the last event", |v| v["cursor"].as_u64() >= Some(end) && v["pending"] == 0).await;
    receiver.assert_all_signed();
    assert_delivered_exactly(&receiver, &BTreeMap::from([(id.clone(), last[&id])]));
    assert_eq!(view(&client, hid).await["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_refuse_bad_bodies_hide_the_secret_and_stop_at_delete() {
    let server = fast_retry_server().await;
    let client = server.client();
    let receiver = Receiver::start(SECRET).await;
    let url = receiver.url();
    let post = |body: Value| send(client.request(Method::POST, "/v1/webhooks").json(&body));

    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"url": "ftp://x", "secret": SECRET}), vec!["url", "http"]),
        (json!({"url": "not a url", "secret": SECRET}), vec!["url", "not an absolute url"]),
        (json!({"url": "http://", "secret": SECRET}), vec!["url"]),
        (json!({"secret": SECRET}), vec!["url"]),
        (json!({"url": url, "secret": "short-but-secret"[..12].to_string()}), vec!["secret", "16"]),
        (json!({"url": url, "secret": "s".repeat(1025)}), vec!["secret", "1024"]),
        (json!({"url": url}), vec!["secret"]),
        (
            json!({"url": url, "secret": SECRET, "events": ["turn.completed", "turn.exploded"]}),
            vec!["events[1]", "turn.exploded"],
        ),
        (json!({"url": url, "secret": SECRET, "colour": "blue"}), vec!["colour"]),
        (json!({"url": url, "secret": SECRET, "sessions": []}), vec!["sessions"]),
        (json!({"url": url, "secret": SECRET, "from": "yesterday"}), vec!["from"]),
    ];
    for (body, mentions) in cases {
        let resp = post(body.clone()).await;
        let problem = expect_problem(resp, 400, "invalid_request", &mentions).await;
        assert!(!problem.detail.contains(SECRET), "{body}: {}", problem.detail);
        assert!(!problem.detail.contains("short-but-se"), "{body}: {}", problem.detail);
    }
    let missing = post(json!({"url": url, "secret": SECRET, "sessions": ["ses_doesnotexist"]})).await;
    expect_problem(missing, 404, "session_not_found", &["sessions[0]", "ses_doesnotexist"]).await;
    let ahead = post(json!({"url": url, "secret": SECRET, "from": 1_000_000})).await;
    expect_problem(ahead, 409, "cursor_ahead", &["1000000"]).await;
    for (method, path) in [(Method::GET, "/v1/webhooks/whk_nope"), (Method::DELETE, "/v1/webhooks/whk_nope")] {
        expect_problem(send(client.request(method, path)).await, 404, "webhook_not_found", &["whk_nope"]).await;
    }
    assert_eq!(get_text(&client, "/v1/webhooks").await, r#"{"webhooks":[]}"#);

    // A webhook delivering while a flood runs is deleted: no event after the DELETE reaches it.
    let doomed = create_webhook(&client, json!({"url": url, "secret": SECRET})).await;
    let doomed_id = doomed["id"].as_str().unwrap().to_string();
    let witness = Receiver::start(SECRET).await;
    let witness_hook = create_webhook(&client, json!({"url": witness.url(), "secret": SECRET})).await;
    let session = mock_session(&client).await.id;
    client.send_text(&session, "[mock:flood:3000]").await.unwrap();
    receiver.wait_until(WAIT, "a delivery", |d| d.iter().any(Delivery::acknowledged)).await;
    let resp = send(client.request(Method::DELETE, &format!("/v1/webhooks/{doomed_id}"))).await;
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(SECRET), "{text}");
    let requests_at_delete = receiver.deliveries().len();
    let removed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(removed["id"], doomed_id.as_str());
    // Every event a request in flight at the DELETE could hold is committed by now.
    let cutoff = client.info().await.unwrap().last_gseq;
    expect_problem(
        send(client.request(Method::GET, &format!("/v1/webhooks/{doomed_id}"))).await,
        404,
        "webhook_not_found",
        &[],
    )
    .await;
    collect_turn(&client, &session, 0).await;
    turn_everywhere(&client, std::slice::from_ref(&session), "after the delete").await;
    let end = client.info().await.unwrap().last_gseq;
    assert!(end > cutoff);
    // The witness got everything up to the end, so the deleted one had every chance.
    let wid = witness_hook["id"].as_str().unwrap();
    wait_view(&client, wid, "past the last event", |v| v["cursor"].as_u64() >= Some(end)).await;
    let late: Vec<u64> =
        receiver.deliveries().iter().flat_map(|d| d.event_ids.clone()).filter(|g| *g > cutoff).collect();
    assert!(late.is_empty(), "events after the DELETE reached the deleted webhook: {:?}..", &late[..late.len().min(5)]);
    // At most the one request already on the wire arrived after the answer.
    assert!(receiver.deliveries().len() <= requests_at_delete + 1);
    receiver.assert_all_signed();
    let list = get_text(&client, "/v1/webhooks").await;
    assert!(!list.contains(&doomed_id), "{list}");

    // The secret is in no answer (checked on each above) and in no log line.
    get_text(&client, "/metrics").await;
    let log = std::fs::read_to_string(server.stderr_log()).unwrap();
    assert!(!log.contains(SECRET), "the secret is in the server log");
}
