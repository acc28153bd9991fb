//! The HTTP bridge, for agents whose protocol is an HTTP server of their own
//! (`opencode serve`): the process still runs under the PTY (its logs), but
//! its protocol goes through this bridge. Adapters stay pure and line-based:
//! - what an adapter writes is one JSON request per line,
//!   `{"id":N,"method":"POST","path":"/session","body":{..}}`, answered by a
//!   line `{"bridge":"response","id":N,"status":200,"body":..}`;
//! - every `data:` payload of the agent's event stream arrives as a line of
//!   its own (the payload, verbatim).
//!
//! Requests wait until the agent answers its readiness route.

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
}

fn line(v: Value) -> ProcEvent {
    ProcEvent::Lines(vec![v.to_string()])
}

/// Runs the bridge until the process is gone (its event channel closes) or the input closes.
pub async fn run(bridge: HttpBridge, mut input: mpsc::UnboundedReceiver<Vec<u8>>, out: mpsc::Sender<ProcEvent>) {
    let http = match reqwest::Client::builder().no_proxy().build() {
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
                    let answer = match serde_json::from_str::<Request>(text) {
                        Ok(r) => call(&http, &bridge, r).await,
                        Err(e) => json!({"bridge": "error", "message": format!("bad bridge request: {e}")}),
                    };
                    if out.send(line(answer)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn call(http: &reqwest::Client, bridge: &HttpBridge, r: Request) -> Value {
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut rb = http.request(method, format!("{}{}", bridge.base_url, r.path)).timeout(Duration::from_secs(30));
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
