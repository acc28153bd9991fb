//! [`Receiver`]: a webhook endpoint on 127.0.0.1 (hyper 1) for the webhook
//! tests. It checks every delivery — the `X-Tether-Signature` HMAC over
//! `"<t>.<body>"`, the id headers against the body — and records it; it can
//! answer 500 to its next N requests, and be taken down (its port refuses
//! connections, open connections are closed) and brought up again on the
//! same port. Waits are on a change counter with a deadline, never sleeps.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// One event of a delivery, as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub gseq: u64,
    pub session_id: String,
    pub seq: u64,
    pub event_type: String,
}

/// One request the receiver answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub at: Instant,
    pub webhook_id: String,
    /// `X-Tether-Event-Ids`, parsed.
    pub event_ids: Vec<u64>,
    pub events: Vec<Seen>,
    /// The W3C `traceparent` it came with.
    pub traceparent: Option<String>,
    /// What the receiver answered (0: held, never answered).
    pub status: u16,
}

impl Delivery {
    pub fn acknowledged(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Default)]
struct State {
    deliveries: Vec<Delivery>,
    /// Requests refused for a bad signature or inconsistent headers, with why.
    rejected: Vec<String>,
    fail_next: u32,
    /// Requests still acknowledged before the receiver holds every next one.
    ack_before_hold: Option<u32>,
}

/// A webhook endpoint; see the module doc.
pub struct Receiver {
    secret: Arc<Vec<u8>>,
    port: u16,
    state: Arc<Mutex<State>>,
    changes: watch::Sender<u64>,
    /// Flips to true to answer the held requests (503).
    release: watch::Sender<bool>,
    /// The accept loop and every connection: aborted when taken down.
    tasks: Option<JoinSet<()>>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }
}

impl Receiver {
    /// Listens on an OS-chosen port of 127.0.0.1; deliveries must be signed with `secret`.
    pub async fn start(secret: &str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the webhook receiver");
        let port = listener.local_addr().unwrap().port();
        let (changes, _) = watch::channel(0);
        let (release, _) = watch::channel(false);
        let mut receiver = Receiver {
            secret: Arc::new(secret.as_bytes().to_vec()),
            port,
            state: Arc::default(),
            changes,
            release,
            tasks: None,
        };
        receiver.serve(listener);
        receiver
    }

    /// `http://127.0.0.1:PORT/hook`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Answers 500 to the next `n` requests (still checked and recorded).
    pub fn fail_next(&self, n: u32) {
        self.state.lock().unwrap().fail_next = n;
    }

    /// Acknowledges `n` more requests, then holds every next one: recorded
    /// (status 0) but not answered until [`release`](Self::release).
    pub fn hold_after(&self, n: u32) {
        self.state.lock().unwrap().ack_before_hold = Some(n);
        self.release.send_replace(false);
    }

    /// Answers the held requests (503) and stops holding.
    pub fn release(&self) {
        self.state.lock().unwrap().ack_before_hold = None;
        self.release.send_replace(true);
    }

    /// Stops listening and closes every open connection: connections are refused until [`up`](Self::up).
    pub async fn down(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        assert!(self.tasks.is_none(), "the receiver is already up");
        let deadline = Instant::now() + Duration::from_secs(20);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot listen on port {} again: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let (secret, state, changes) = (self.secret.clone(), self.state.clone(), self.changes.clone());
        let release = self.release.clone();
        // Connections are tasks of the same set, so taking the receiver down closes them too.
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<tokio::net::TcpStream>();
        tasks.spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                if conn_tx.send(tcp).is_err() {
                    break;
                }
            }
        });
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Some(tcp) = conn_rx.recv().await {
                let (secret, state, changes, release) =
                    (secret.clone(), state.clone(), changes.clone(), release.clone());
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (secret, state, changes) = (secret.clone(), state.clone(), changes.clone());
                        let release = release.subscribe();
                        async move { Ok::<_, Infallible>(handle(req, &secret, &state, &changes, release).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), service).await;
                });
            }
            // Dropped with this task (aborted): every connection ends.
            conns.abort_all();
        });
        self.tasks = Some(tasks);
    }

    /// Every request answered so far, in arrival order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().unwrap().deliveries.clone()
    }

    /// Panics if any request had a bad signature or inconsistent headers.
    pub fn assert_all_signed(&self) {
        let rejected = self.state.lock().unwrap().rejected.clone();
        assert!(rejected.is_empty(), "the receiver refused deliveries: {rejected:#?}");
    }

    /// The acknowledged events per session, in the order they arrived (duplicates kept).
    pub fn acknowledged_by_session(&self) -> BTreeMap<String, Vec<Seen>> {
        let mut out: BTreeMap<String, Vec<Seen>> = BTreeMap::new();
        for d in self.deliveries().iter().filter(|d| d.acknowledged()) {
            for e in &d.events {
                out.entry(e.session_id.clone()).or_default().push(e.clone());
            }
        }
        out
    }

    /// Waits (up to `timeout`) until `pred` holds of the deliveries so far; returns them.
    pub async fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + timeout;
        let mut rx = self.changes.subscribe();
        loop {
            let now = self.deliveries();
            if pred(&now) {
                return now;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, rx.changed()).await.is_err() {
                let summary: Vec<String> = now
                    .iter()
                    .map(|d| format!("{} {} events {:?}..", d.status, d.events.len(), d.event_ids.first()))
                    .collect();
                panic!(
                    "the receiver did not see {what} within {timeout:?}; it got {} requests: {summary:?}",
                    now.len()
                );
            }
        }
    }
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Lowercase hex HMAC-SHA256(secret, "<t>.<body>").
pub fn expected_signature(secret: &[u8], t: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a delivery; `Err` says what is wrong with it.
fn check(method: &hyper::Method, headers: &hyper::HeaderMap, body: &[u8], secret: &[u8]) -> Result<Delivery, String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if method != hyper::Method::POST {
        return Err(format!("method {method}"));
    }
    if header("content-type").as_deref() != Some("application/json") {
        return Err(format!("content type {:?}", header("content-type")));
    }
    let sig = header("x-tether-signature").ok_or("no X-Tether-Signature")?;
    let (t, v1) = match sig.split_once(',') {
        Some((t, v1)) => (t.strip_prefix("t=").ok_or("no t=")?, v1.strip_prefix("v1=").ok_or("no v1=")?),
        None => return Err(format!("signature {sig:?} is not t=..,v1=..")),
    };
    let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let t_secs: u64 = t.parse().map_err(|_| format!("t={t} is not unix seconds"))?;
    if t_secs.abs_diff(unix) > 300 {
        return Err(format!("t={t} is more than 5 minutes from now ({unix})"));
    }
    let want = expected_signature(secret, t, body);
    if v1 != want {
        return Err(format!("signature mismatch: got v1={v1}, expected {want}"));
    }
    let json: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let webhook_id = json["webhook_id"].as_str().ok_or("no webhook_id in the body")?.to_string();
    if header("x-tether-webhook-id").as_deref() != Some(webhook_id.as_str()) {
        return Err(format!("X-Tether-Webhook-Id {:?} is not {webhook_id}", header("x-tether-webhook-id")));
    }
    let mut events = Vec::new();
    for e in json["events"].as_array().ok_or("no events array")? {
        if e.get("raw").is_some() {
            return Err("an event carries raw".into());
        }
        events.push(Seen {
            gseq: e["gseq"].as_u64().ok_or("an event without gseq")?,
            session_id: e["session_id"].as_str().ok_or("an event without session_id")?.to_string(),
            seq: e["seq"].as_u64().ok_or("an event without seq")?,
            event_type: e["type"].as_str().ok_or("an event without type")?.to_string(),
        });
    }
    if events.is_empty() || events.len() > 100 {
        return Err(format!("{} events in one delivery", events.len()));
    }
    let ids = header("x-tether-event-ids").ok_or("no X-Tether-Event-Ids")?;
    let event_ids: Vec<u64> = ids
        .split(',')
        .map(|s| s.parse::<u64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("X-Tether-Event-Ids {ids:?}: {e}"))?;
    if event_ids != events.iter().map(|e| e.gseq).collect::<Vec<_>>() {
        return Err(format!("X-Tether-Event-Ids {ids} is not the body's gseqs"));
    }
    if event_ids.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("gseqs out of order: {ids}"));
    }
    let traceparent = header("traceparent");
    Ok(Delivery { at: Instant::now(), webhook_id, event_ids, events, traceparent, status: 0 })
}

async fn handle(
    req: Request<Incoming>,
    secret: &[u8],
    state: &Mutex<State>,
    changes: &watch::Sender<u64>,
    mut release: watch::Receiver<bool>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400),
    };
    let checked = check(&parts.method, &parts.headers, &body, secret);
    let status = {
        let mut s = state.lock().unwrap();
        match checked {
            Ok(mut d) => {
                let hold = match &mut s.ack_before_hold {
                    Some(0) => true,
                    Some(n) => {
                        *n -= 1;
                        false
                    }
                    None => false,
                };
                d.status = if hold {
                    0
                } else if s.fail_next > 0 {
                    s.fail_next -= 1;
                    500
                } else {
                    200
                };
                let status = d.status;
                s.deliveries.push(d);
                status
            }
            Err(why) => {
                s.rejected.push(why);
                401
            }
        }
    };
    changes.send_modify(|n| *n += 1);
    if status == 0 {
        let _ = release.wait_for(|released| *released).await;
        return reply(503);
    }
    reply(status)
}

fn reply(status: u16) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(Bytes::new())).unwrap()
}
