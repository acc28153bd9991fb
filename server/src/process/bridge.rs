//! The HTTP bridge, for agents whose protocol is an HTTP server of their own
//! (`opencode serve`): the process still runs under the PTY (its logs), but
//! its protocol goes through this bridge. Adapters stay pure and line-based:
//! - what an adapter writes is one JSON request per line,
//!   `{"id":N,"method":"POST","path":"/session","body":{..}}`, answered by a
//!   line `{"bridge":"response","id":N,"status":200,"body":..}`;
//! - every `data:` payload of the agent's event stream arrives as a line of
//!   its own (the payload, verbatim).
//!
//! Requests wait until the agent answers its readiness route, and are made
//! one at a time in the order written, while the event stream keeps flowing;
//! a request with `"background":true` (a slow read, e.g. OpenCode's `GET /mcp`,
//! which waits for every MCP server to connect) runs beside them and is
//! answered whenever it is done. `"timeout_ms"` overrides the default
//! 30 s a request may take.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::ProcEvent;

/// Where an agent's HTTP protocol lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpBridge {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// The `Authorization` header value, if the agent's server needs one.
    pub authorization: Option<String>,
    /// Polled (each try with a short timeout) until it answers 2xx.
    pub ready_path: String,
    /// The server-sent events of the agent.
    pub events_path: String,
}

/// How long an agent gets to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct Request {
    id: u64,
    method: String,
    path: String,
    #[serde(default)]
    body: Option<Value>,
    /// Made beside the others instead of in turn.
    #[serde(default)]
    background: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// How long a request may take unless it says otherwise.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn line(v: Value) -> ProcEvent {
    ProcEvent::Lines(vec![v.to_string()])
}

/// Runs the bridge until the process is gone (its event channel closes) or the input closes.
pub async fn run(bridge: HttpBridge, mut input: mpsc::UnboundedReceiver<Vec<u8>>, out: mpsc::Sender<ProcEvent>) {
    let http = match tether_sdk::http_client(|| reqwest::Client::builder().no_proxy()) {
        Ok(c) => c,
        Err(e) => {
            let _ = out.send(line(json!({"bridge": "error", "message": e.to_string()}))).await;
            return;
        }
    };
    let auth = |rb: reqwest::RequestBuilder| match &bridge.authorization {
        Some(a) => rb.header(reqwest::header::AUTHORIZATION, a),
        None => rb,
    };
    // Ready?
    let started = Instant::now();
    loop {
        let probe = auth(http.get(format!("{}{}", bridge.base_url, bridge.ready_path)))
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        if probe.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if started.elapsed() > READY_TIMEOUT || out.is_closed() {
            let msg = format!("the agent's server did not become ready at {}", bridge.base_url);
            let _ = out.send(line(json!({"bridge": "error", "message": msg}))).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Events first, so nothing a request causes is missed.
    let events = auth(http.get(format!("{}{}", bridge.base_url, bridge.events_path)))
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await;
    let mut events = match events {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let msg = format!("the agent's event stream answered {}", r.status());
            let _ = out.send(line(json!({"bridge": "error", "message": msg}))).await;
            return;
        }
        Err(e) => {
            let _ = out.send(line(json!({"bridge": "error", "message": e.to_string()}))).await;
            return;
        }
    };
    let _ = out.send(line(json!({"bridge": "ready"}))).await;
    // Requests in turn, in a task of their own so that a slow answer never
    // holds up the event stream; background ones each in their own task.
    let (calls_tx, mut calls_rx) = mpsc::unbounded_channel::<Request>();
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<Value>();
    let in_turn = {
        let (http, bridge, answers_tx) = (http.clone(), bridge.clone(), answers_tx.clone());
        tokio::spawn(async move {
            while let Some(r) = calls_rx.recv().await {
                if answers_tx.send(call(&http, &bridge, r).await).is_err() {
                    return;
                }
            }
        })
    };
    let _stop_calls = AbortOnDrop(in_turn);
    let mut pending = Vec::new();
    let mut data = String::new();
    loop {
        tokio::select! {
            chunk = events.chunk() => match chunk {
                Ok(Some(bytes)) => {
                    pending.extend_from_slice(&bytes);
                    let mut lines = Vec::new();
                    while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
                        let raw: Vec<u8> = pending.drain(..=pos).collect();
                        let text = String::from_utf8_lossy(&raw);
                        let text = text.trim_end_matches(['\n', '\r']);
                        if text.is_empty() {
                            if !data.is_empty() {
                                lines.push(std::mem::take(&mut data));
                            }
                        } else if let Some(d) = text.strip_prefix("data:") {
                            if !data.is_empty() {
                                data.push('\n');
                            }
                            data.push_str(d.strip_prefix(' ').unwrap_or(d));
                        }
                    }
                    if !lines.is_empty() && out.send(ProcEvent::Lines(lines)).await.is_err() {
                        return;
                    }
                }
                _ => {
                    let _ = out.send(line(json!({"bridge": "closed"}))).await;
                    return;
                }
            },
            req = input.recv() => {
                let Some(bytes) = req else { return };
                for text in String::from_utf8_lossy(&bytes).lines().filter(|l| !l.trim().is_empty()) {
                    match serde_json::from_str::<Request>(text) {
                        Ok(r) if r.background => {
                            let (http, bridge, answers_tx) = (http.clone(), bridge.clone(), answers_tx.clone());
                            tokio::spawn(async move {
                                let _ = answers_tx.send(call(&http, &bridge, r).await);
                            });
                        }
                        Ok(r) => {
                            let _ = calls_tx.send(r);
                        }
                        Err(e) => {
                            let msg = format!("bad bridge request: {e}");
                            if out.send(line(json!({"bridge": "error", "message": msg}))).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            Some(answer) = answers.recv() => {
                if out.send(line(answer)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Aborts the task when the bridge ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn call(http: &reqwest::Client, bridge: &HttpBridge, r: Request) -> Value {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let timeout = r.timeout_ms.map_or(CALL_TIMEOUT, Duration::from_millis);
    let mut rb = http.request(method, format!("{}{}", bridge.base_url, r.path)).timeout(timeout);
    if let Some(a) = &bridge.authorization {
        rb = rb.header(reqwest::header::AUTHORIZATION, a);
    }
    if let Some(body) = &r.body {
        rb = rb.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
    }
    match rb.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            json!({"bridge": "response", "id": r.id, "status": status, "body": body})
        }
        Err(e) => json!({"bridge": "response", "id": r.id, "status": 0, "body": e.to_string()}),
    }
}

#[cfg(test)]
mod tests {

    use std::sync::Arc;
    use std::time::Duration;

    use axum::routing::get;
    use serde_json::{json, Value};
    use tokio::sync::{mpsc, Notify};

    use super::{HttpBridge, ProcEvent};

    async fn next(out: &mut mpsc::Receiver<ProcEvent>) -> Value {
        let event = tokio::time::timeout(Duration::from_secs(10), out.recv()).await.expect("a line in time");
        let Some(ProcEvent::Lines(lines)) = event else { panic!("{event:?}") };
        serde_json::from_str::<Value>(&lines[0]).unwrap()
    }

    /// A slow background read does not hold up the requests after it, nor
    /// events; requests in turn are answered in order.
    #[tokio::test]
    async fn background_requests_run_beside_the_others() {
        let release = Arc::new(Notify::new());
        let slow = {
            let release = release.clone();
            move || async move {
                release.notified().await;
                "slow"
            }
        };
        let events = || async {
            let stream = futures_util::stream::once(async { Ok::<_, std::io::Error>("data: {\"e\":1}\n\n") })
                .chain(futures_util::stream::pending());
            axum::body::Body::from_stream(stream)
        };
        use futures_util::StreamExt;
        let app = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/event", get(events))
            .route("/slow", get(slow))
            .route("/fast", axum::routing::post(|| async { "fast" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let bridge = HttpBridge {
            base_url: format!("http://{addr}"),
            authorization: None,
            ready_path: "/health".into(),
            events_path: "/event".into(),
        };
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let (out_tx, mut out) = mpsc::channel(16);
        tokio::spawn(super::run(bridge, in_rx, out_tx));
        assert_eq!(next(&mut out).await, json!({"bridge": "ready"}));
        let requests = [
            json!({"id": 1, "method": "GET", "path": "/slow", "background": true, "timeout_ms": 10_000}),
            json!({"id": 2, "method": "POST", "path": "/fast"}),
            json!({"id": 3, "method": "POST", "path": "/fast"}),
        ];
        let text: String = requests.iter().map(|r| format!("{r}\n")).collect();
        in_tx.send(text.into_bytes()).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 3 || !seen.iter().any(|s| s == r#"{"e":1}"#) {
            let line = next(&mut out).await;
            seen.push(line["id"].as_u64().map_or_else(|| line.to_string(), |id| id.to_string()));
        }
        // The event comes whenever it comes; the answers in turn, and without the slow one.
        seen.retain(|s| s != r#"{"e":1}"#);
        assert_eq!(seen, vec!["2", "3"], "the slow request held the others up");
        release.notify_one();
        let slow = next(&mut out).await;
        assert_eq!((slow["id"].as_u64(), slow["body"].as_str()), (Some(1), Some("slow")));
    }
}
