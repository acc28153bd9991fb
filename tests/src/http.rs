//! Raw HTTP: problem+json assertions and an SSE reader that shows exactly
//! what the server sent on one connection (no reconnection, no dedup).

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use tether_sdk::sse::SseParser;
use tether_sdk::{Client, Event, Problem};
use tokio::time::Instant;

/// Asserts that `resp` is an RFC 7807 problem: `status`, an
/// `application/problem+json` content type, `type` = `urn:tether:error:<code>`,
/// a matching `status` member, a title, and a `detail` that mentions every
/// one of `mentions` (case-insensitive). Returns the problem.
pub async fn expect_problem(resp: Response, status: u16, code: &str, mentions: &[&str]) -> Problem {
    let got_status = resp.status().as_u16();
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let url = resp.url().to_string();
    let body = resp.text().await.expect("read the problem body");
    assert_eq!(got_status, status, "{url}: status {got_status} (wanted {status}), body {body}");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{url}: content type {content_type:?} is not application/problem+json (body {body})"
    );
    let problem: Problem = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not a problem ({e}): {body}"));
    assert_eq!(problem.type_, format!("urn:tether:error:{code}"), "{url}: {body}");
    assert_eq!(problem.status, status, "{url}: {body}");
    assert!(!problem.title.is_empty(), "{url}: empty title: {body}");
    let detail = problem.detail.to_lowercase();
    for m in mentions {
        assert!(detail.contains(&m.to_lowercase()), "{url}: detail {:?} does not mention {m:?}", problem.detail);
    }
    problem
}

/// The stored events of a session with `seq > after`, as the JSON the
/// events page API answers (pages of 10,000).
pub async fn events_json(client: &Client, session_id: &str, after: u64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = after;
    for _ in 0..10_000 {
        let path = format!("/v1/sessions/{session_id}/events?after={cursor}&limit=10000");
        let resp = send(client.request(Method::GET, &path)).await;
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        let page: Value = resp.json().await.expect("an events page");
        out.extend(page["events"].as_array().expect("events").iter().cloned());
        if page["has_more"] != true {
            return out;
        }
        cursor = page["next_after"].as_u64().expect("next_after");
    }
    panic!("more than 10,000 pages of events");
}

/// Sends a request; panics on a transport error.
pub async fn send(request: RequestBuilder) -> Response {
    request.send().await.expect("send the request")
}

/// One SSE frame as sent: its `id:`, `event:`, and `data:` as JSON.
#[derive(Debug, Clone)]
pub struct RawFrame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Value,
}

impl RawFrame {
    pub fn seq(&self) -> u64 {
        self.data["seq"].as_u64().unwrap_or_else(|| panic!("frame without seq: {}", self.data))
    }

    pub fn gseq(&self) -> u64 {
        self.data["gseq"].as_u64().unwrap_or_else(|| panic!("frame without gseq: {}", self.data))
    }

    pub fn event_type(&self) -> &str {
        self.data["type"].as_str().unwrap_or("")
    }

    /// The frame's data as a typed event.
    pub fn to_event(&self) -> Event {
        serde_json::from_value(self.data.clone()).unwrap_or_else(|e| panic!("undecodable event ({e}): {}", self.data))
    }
}

/// One SSE connection, read frame by frame.
pub struct RawSse {
    resp: Response,
    parser: SseParser,
    ended: bool,
}

impl RawSse {
    /// Sends `request` and checks it is answered 200 with `text/event-stream`,
    /// `Cache-Control: no-cache` and `X-Accel-Buffering: no`.
    pub async fn connect(request: RequestBuilder) -> RawSse {
        let resp = request.header("accept", "text/event-stream").send().await.expect("open the SSE stream");
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            panic!("SSE request answered {status}: {body}");
        }
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(header("content-type").starts_with("text/event-stream"), "content type {:?}", header("content-type"));
        assert_eq!(header("cache-control"), "no-cache");
        assert_eq!(header("x-accel-buffering"), "no");
        RawSse { resp, parser: SseParser::new(), ended: false }
    }

    /// The next frame with data; `None` at the end of the body. Panics after `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<RawFrame> {
        self.frame(timeout, false).await
    }

    /// [`next_frame`](Self::next_frame), where a connection the server cut
    /// (a body that fails mid-way) is the end too: `None`.
    pub async fn next_frame_or_cut(&mut self, timeout: Duration) -> Option<RawFrame> {
        self.frame(timeout, true).await
    }

    async fn frame(&mut self, timeout: Duration, cut_is_end: bool) -> Option<RawFrame> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(frame) = self.parser.next_frame() {
                let data = serde_json::from_slice(frame.data())
                    .unwrap_or_else(|e| panic!("SSE data is not JSON ({e}): {:?}", frame.data_str()));
                return Some(RawFrame {
                    id: frame.id().map(str::to_string),
                    event: frame.event().map(str::to_string),
                    data,
                });
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Ok(Ok(Some(chunk))) => self.parser.feed(&chunk),
                Ok(Ok(None)) => self.ended = true,
                Ok(Err(_)) if cut_is_end => self.ended = true,
                Ok(Err(e)) => panic!("SSE body failed: {e}"),
                Err(_) => panic!("no SSE frame within {timeout:?}"),
            }
        }
    }

    /// Reads frames until `pred` matches one (inclusive); panics if the
    /// stream ends first or `timeout` passes. Checks that every frame's `id`
    /// is `cursor(frame)` and its `event` the data's `type`.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        cursor: impl Fn(&RawFrame) -> u64,
        mut pred: impl FnMut(&RawFrame) -> bool,
    ) -> Vec<RawFrame> {
        let deadline = Instant::now() + timeout;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(frame) = self.next_frame(left).await else {
                panic!(
                    "SSE stream ended after {} frames, last {:?}",
                    frames.len(),
                    frames.last().map(|f: &RawFrame| &f.data)
                );
            };
            assert_eq!(frame.id.as_deref(), Some(cursor(&frame).to_string().as_str()), "SSE id of {}", frame.data);
            assert_eq!(frame.event.as_deref(), Some(frame.event_type()), "SSE event of {}", frame.data);
            assert!(frames.len() < crate::events::MAX_EVENTS, "no matching frame in {} frames", frames.len());
            let done = pred(&frame);
            frames.push(frame);
            if done {
                return frames;
            }
        }
    }
}
