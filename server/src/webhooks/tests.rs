//! The signature format, the back-off schedule, the filters, the create
//! rules and the delivery body — all pure.

use std::sync::Arc;
use std::time::Duration;

use tether_protocol::{CreateWebhook, WebhookFrom};

use super::delivery::{Batch, Retry};
use super::signature::{signature, verify};
use super::{check, Filters};
use crate::store::Committed;

#[test]
fn webhook_signature_is_t_and_lowercase_hex_hmac_sha256() {
    let sig = signature(b"0123456789abcdef", 1_700_000_000, b"{}");
    let hex = sig.strip_prefix("t=1700000000,v1=").unwrap_or_else(|| panic!("{sig}"));
    assert_eq!(hex.len(), 64);
    assert!(hex.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)), "lowercase hex: {hex}");
    assert_ne!(
        sig,
        signature(b"0123456789abcdef", 1_700_000_001, b"{}").replace("t=1700000001", "t=1700000000"),
        "t is signed"
    );
    assert_ne!(sig, signature(b"0123456789abcdeF", 1_700_000_000, b"{}"), "the secret keys it");
}

#[test]
fn webhook_signature_matches_rfc_4231_vectors() {
    use hmac::{KeyInit, Mac};
    // RFC 4231 test case 2, through the same primitive the signature uses.
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"Jefe").unwrap();
    m.update(b"what do ya want for nothing?");
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // And the header of a body whose "<t>.<body>" is a known string.
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
    m.update(b"42.{\"webhook_id\":\"whk_x\",\"events\":[]}");
    let want: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(signature(b"0123456789abcdef", 42, br#"{"webhook_id":"whk_x","events":[]}"#), format!("t=42,v1={want}"));
}

#[test]
fn webhook_signature_verifies_and_rejects_tampering() {
    let body = br#"{"webhook_id":"whk_1","events":[]}"#;
    let header = signature(b"a secret of 16+ bytes", 1234, body);
    assert_eq!(verify(b"a secret of 16+ bytes", &header, body), Some(1234));
    assert_eq!(verify(b"another secret, 16+", &header, body), None, "wrong secret");
    assert_eq!(verify(b"a secret of 16+ bytes", &header, b"{}"), None, "other body");
    let other_t = header.replace("t=1234", "t=1235");
    assert_eq!(verify(b"a secret of 16+ bytes", &other_t, body), None, "t is covered");
    assert_eq!(verify(b"a secret of 16+ bytes", "v1=00", body), None, "no t");
}

#[test]
fn webhook_backoff_doubles_from_min_to_max_with_at_most_a_quarter_of_jitter() {
    let r = Retry::default();
    assert_eq!((r.min, r.max), (Duration::from_secs(1), Duration::from_secs(60)));
    let top: Vec<u64> = (1..=9).map(|n| r.delay(n, 0.0).as_millis() as u64).collect();
    assert_eq!(top, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    // Jitter only lowers the wait, by up to a quarter.
    for n in 1..=12 {
        let high = r.delay(n, 0.0);
        let low = r.delay(n, 0.999_999);
        assert!(low <= high && low >= high.mul_f64(0.75) - Duration::from_micros(1), "{n}: {low:?} {high:?}");
        assert!(r.delay(n, 0.5) < high && r.delay(n, 0.5) > low);
    }
    // Far past the cap, and odd inputs, stay within bounds.
    assert_eq!(r.delay(10_000, 0.0), Duration::from_secs(60));
    assert_eq!(r.delay(u64::MAX, 0.0), Duration::from_secs(60));
    assert_eq!(r.delay(0, 0.0), Duration::from_secs(1), "0 counts as the first failure");
    assert_eq!(r.delay(1, f64::NAN), Duration::from_secs(1));
    assert_eq!(r.delay(1, 7.0), Duration::from_millis(750));
    // The test flags: 20 ms doubling up to 200 ms.
    let fast = Retry { min: Duration::from_millis(20), max: Duration::from_millis(200) };
    let fast_top: Vec<u64> = (1..=6).map(|n| fast.delay(n, 0.0).as_millis() as u64).collect();
    assert_eq!(fast_top, [20, 40, 80, 160, 200, 200]);
    // A max below min is min.
    let odd = Retry { min: Duration::from_millis(50), max: Duration::from_millis(10) };
    assert_eq!(odd.delay(5, 0.0), Duration::from_millis(50));
}

fn committed(session: &str, seq: u64, gseq: u64, etype: &'static str) -> Committed {
    Committed {
        session_id: Arc::from(session),
        seq,
        gseq,
        etype,
        json: format!(r#"{{"seq":{seq},"gseq":{gseq},"session_id":"{session}","type":"{etype}","data":{{}}}}"#),
        raw: None,
    }
}

#[test]
fn webhook_filters_select_types_and_sessions() {
    let all = Filters::default();
    let turns = Filters { events: Some(vec!["turn.completed".into()]), sessions: None };
    let one = Filters { events: None, sessions: Some(vec!["ses_a".into()]) };
    let both = Filters { events: Some(vec!["turn.completed".into()]), sessions: Some(vec!["ses_a".into()]) };
    let a_done = committed("ses_a", 5, 9, "turn.completed");
    let a_delta = committed("ses_a", 4, 8, "item.delta");
    let b_done = committed("ses_b", 5, 10, "turn.completed");
    assert!(all.matches(&a_done) && all.matches(&a_delta) && all.matches(&b_done));
    assert!(turns.matches(&a_done) && !turns.matches(&a_delta) && turns.matches(&b_done));
    assert!(one.matches(&a_done) && one.matches(&a_delta) && !one.matches(&b_done));
    assert!(both.matches(&a_done) && !both.matches(&a_delta) && !both.matches(&b_done));
}

fn req(url: &str, secret: &str) -> CreateWebhook {
    CreateWebhook { url: url.into(), secret: secret.into(), ..Default::default() }
}

const SECRET: &str = "0123456789abcdef";

#[test]
fn webhook_create_rules_name_what_is_wrong_and_never_the_secret() {
    let ok = check(req("http://127.0.0.1:9/hook", SECRET)).unwrap();
    assert_eq!(ok.url.as_str(), "http://127.0.0.1:9/hook");
    assert_eq!(ok.from, WebhookFrom::Now);
    assert_eq!(ok.filters, Filters::default());
    assert!(check(req("https://example.test", SECRET)).is_ok());

    let err = |r: CreateWebhook| check(r).err().unwrap();
    assert!(err(req("ftp://x", SECRET)).contains("http:// or https://, not ftp://"));
    assert!(err(req("not a url", SECRET)).contains("not an absolute URL"));
    assert!(err(req("", SECRET)).contains("not an absolute URL"));
    assert!(err(req("/relative/path", SECRET)).contains("not an absolute URL"));
    assert!(err(req("http://", SECRET)).contains("url"));
    let short = err(req("http://h", "short-secret"));
    assert!(
        short.contains("16 to 1024 characters") && short.contains("12") && !short.contains("short-secret"),
        "{short}"
    );
    let long = "x".repeat(1025);
    assert!(!err(req("http://h", &long)).contains(&long));
    assert!(check(req("http://h", &"y".repeat(1024))).is_ok());

    let bad_type =
        CreateWebhook { events: Some(vec!["turn.completed".into(), "turn.done".into()]), ..req("http://h", SECRET) };
    let e = err(bad_type);
    assert!(e.contains("`events[1]`") && e.contains("\"turn.done\""), "{e}");
    let empty_types = CreateWebhook { events: Some(vec![]), ..req("http://h", SECRET) };
    assert_eq!(check(empty_types).unwrap().filters.events, None, "empty = every type");
    let dup = CreateWebhook { events: Some(vec!["error".into(), "error".into()]), ..req("http://h", SECRET) };
    assert_eq!(check(dup).unwrap().filters.events, Some(vec!["error".into()]));

    let no_sessions = CreateWebhook { sessions: Some(vec![]), ..req("http://h", SECRET) };
    assert!(err(no_sessions).contains("`sessions` must not be empty"));
    let bad_id = CreateWebhook { sessions: Some(vec!["ses_ok1".into(), "prm_x".into()]), ..req("http://h", SECRET) };
    assert!(err(bad_id).contains("`sessions[1]`"));
}

#[test]
fn webhook_create_body_refuses_unknown_fields_and_odd_from() {
    let parse = |s: &str| serde_json::from_str::<CreateWebhook>(s);
    let ok = parse(r#"{"url":"http://h","secret":"0123456789abcdef","from":"start"}"#).unwrap();
    assert_eq!(ok.from, Some(WebhookFrom::Start));
    assert_eq!(
        parse(r#"{"url":"http://h","secret":"0123456789abcdef","from":17}"#).unwrap().from,
        Some(WebhookFrom::Gseq(17))
    );
    assert!(parse(r#"{"url":"http://h","secret":"0123456789abcdef","from":"later"}"#)
        .unwrap_err()
        .to_string()
        .contains("`from`"));
    assert!(parse(r#"{"url":"http://h","secret":"0123456789abcdef","from":-1}"#).is_err());
    assert!(parse(r#"{"url":"http://h","secret":"0123456789abcdef","colour":"red"}"#)
        .unwrap_err()
        .to_string()
        .contains("unknown field `colour`"));
    let e = parse(r#"{"url":"http://h","secret":1234567890123456789}"#).unwrap_err().to_string();
    assert!(e.contains("`secret` must be a string") && !e.contains("1234567890123456789"), "{e}");
    assert!(parse(r#"{"secret":"0123456789abcdef"}"#).unwrap_err().to_string().contains("missing field `url`"));
}

#[test]
fn webhook_delivery_body_is_the_stored_events_in_order_with_their_ids() {
    let batch = Batch { events: vec![(3, r#"{"gseq":3}"#.into()), (7, r#"{"gseq":7}"#.into())], scanned_to: 9 };
    let body = batch.body("whk_abc");
    assert_eq!(&body[..], br#"{"webhook_id":"whk_abc","events":[{"gseq":3},{"gseq":7}]}"#);
    assert_eq!(batch.ids(), "3,7");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["events"].as_array().unwrap().len(), 2);
}

fn session_row(id: &str) -> crate::store::SessionRow {
    crate::store::SessionRow {
        id: id.into(),
        agent: "mock".into(),
        status: tether_protocol::SessionStatus::Idle,
        cwd: "/w".into(),
        model: None,
        permission_mode: tether_protocol::PermissionMode::Default,
        title: None,
        native_session_id: None,
        created_at: 1,
        updated_at: 1,
        last_seq: 0,
        metadata: None,
        config: "{}".into(),
        agent_live: false,
        open_turn: None,
        summary: Default::default(),
    }
}

fn new_event(etype: &'static str) -> crate::store::NewEvent {
    crate::store::NewEvent {
        etype,
        source: tether_protocol::Source::Agent,
        time: "2026-11-23T12:00:00.000Z".into(),
        data_json: "{}".into(),
        raw: Some("{\"native\":1}".into()),
        effects: vec![],
    }
}

/// A store with 300 events: `ses_a` and `ses_b` alternating, every tenth a `turn.completed`.
async fn store_with_events(dir: &std::path::Path) -> crate::store::Store {
    let store = crate::store::Store::open(&dir.join("tether.db")).unwrap();
    store.create_session(session_row("ses_a")).await.unwrap();
    store.create_session(session_row("ses_b")).await.unwrap();
    for i in 0..300 {
        let sid: Arc<str> = Arc::from(if i % 2 == 0 { "ses_a" } else { "ses_b" });
        let etype = if i % 10 == 9 { "turn.completed" } else { "item.delta" };
        store.append(sid, vec![new_event(etype)]).await.unwrap();
    }
    store.flush().await.unwrap();
    store
}

#[tokio::test]
async fn webhook_batches_are_filtered_pages_in_gseq_order_and_rebuild_identically() {
    use super::delivery::scan;
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_events(dir.path()).await;
    let all = Filters::default();
    let only_a = Filters { events: None, sessions: Some(vec!["ses_a".into()]) };
    let turns_of_b = Filters { events: Some(vec!["turn.completed".into()]), sessions: Some(vec!["ses_b".into()]) };
    let nothing = Filters { events: Some(vec!["question.requested".into()]), sessions: None };
    let (first, a, b, none, rebuilt, tail) = store
        .read(move |c| {
            let first = scan(c, &all, 0, None)?;
            let a = scan(c, &only_a, 0, None)?;
            let b = scan(c, &turns_of_b, 0, None)?;
            let none = scan(c, &nothing, 0, None)?;
            // The batch cut short at `a.scanned_to`, rebuilt as it was.
            let rebuilt = scan(c, &only_a, 0, Some(a.scanned_to))?;
            let tail = scan(c, &all, 250, None)?;
            Ok((first, a, b, none, rebuilt, tail))
        })
        .await
        .unwrap();
    let gseqs = |b: &Batch| b.events.iter().map(|(g, _)| *g).collect::<Vec<_>>();
    assert_eq!(gseqs(&first), (1..=100).collect::<Vec<_>>());
    assert_eq!(first.scanned_to, 100);
    assert!(first.events.iter().all(|(_, json)| !json.contains("raw")), "no raw in deliveries");
    // ses_a's events are the odd gseqs: the 100th is 199.
    assert_eq!(gseqs(&a), (0..100).map(|i| 2 * i + 1).collect::<Vec<_>>());
    assert_eq!(a.scanned_to, 199);
    assert_eq!(rebuilt, a);
    // ses_b's turn.completed: every tenth event (gseq 10, 20, ..) is ses_b's.
    assert_eq!(gseqs(&b), (1..=30).map(|i| 10 * i).collect::<Vec<_>>());
    assert_eq!(b.scanned_to, 300, "read to the end of the log");
    assert!(none.events.is_empty());
    assert_eq!(none.scanned_to, 300, "the cursor moves past what the filters do not want");
    assert_eq!(gseqs(&tail), (251..=300).collect::<Vec<_>>());
}

#[tokio::test]
async fn webhook_rows_are_stored_updated_and_deleted_through_the_writer() {
    use crate::store::{reader, WebhookProgress, WebhookRow};
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(&dir.path().join("tether.db")).unwrap();
    let row = WebhookRow {
        id: "whk_1".into(),
        url: "http://127.0.0.1:9/".into(),
        secret: SECRET.into(),
        filters: serde_json::to_string(&Filters { events: Some(vec!["error".into()]), sessions: None }).unwrap(),
        created_at: 5,
        progress: WebhookProgress { id: "whk_1".into(), cursor: 7, state: "active", ..Default::default() },
    };
    assert!(!format!("{row:?}").contains(SECRET), "Debug hides the secret");
    store.create_webhook(row.clone()).await.unwrap();
    assert_eq!(store.read(reader::webhooks).await.unwrap(), vec![row.clone()]);
    let progress = WebhookProgress {
        id: "whk_1".into(),
        cursor: 42,
        inflight_to: Some(50),
        delivered_events: 30,
        consecutive_failures: 4,
        state: "failing",
        last_error: Some("HTTP 500".into()),
        last_attempt_at: Some(9),
        last_success_at: Some(8),
    };
    store.webhook_progress(progress.clone()).await.unwrap();
    let stored = store.read(reader::webhooks).await.unwrap();
    assert_eq!(stored[0].progress, progress);
    assert!(store.delete_webhook("whk_1").await.unwrap());
    assert!(!store.delete_webhook("whk_1").await.unwrap());
    // A late progress write for a deleted webhook changes nothing.
    store.webhook_progress(progress).await.unwrap();
    assert!(store.read(reader::webhooks).await.unwrap().is_empty());
}
