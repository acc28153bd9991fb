//! A raw WebSocket client of the event-stream routes (`/v1/.../events/ws`):
//! every message as sent, pings and the close frame included, with deadlines.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::TestServer;

/// One message of an event stream.
#[derive(Debug, Clone, PartialEq)]
pub enum WsItem {
    /// A text message that is an event (it has a `seq`).
    Event(Value),
    /// A text message that is a control frame (`{"type":"stream.…","data":..}`).
    Control(Value),
    Ping,
    /// The server's close frame: code and reason.
    Close(u16, String),
    /// The connection ended without a close frame (or after it).
    End,
}

/// One WebSocket connection to an event stream.
pub struct RawWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl std::fmt::Debug for RawWs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawWs(an open WebSocket)")
    }
}

/// A refused handshake: the HTTP status and body the server answered.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

impl RawWs {
    /// Connects to `path` (with query) on `server`, sending its token in
    /// `X-Tether-Token` when it has one; panics if the handshake fails.
    pub async fn connect(server: &TestServer, path: &str) -> RawWs {
        let headers: Vec<(&str, String)> =
            server.token().map(|t| vec![("x-tether-token", t.to_string())]).unwrap_or_default();
        match Self::connect_with(server, path, &headers).await {
            Ok(ws) => ws,
            Err(r) => panic!("WebSocket {path} refused: {} {}", r.status, r.body),
        }
    }

    /// Connects with exactly these extra headers; a non-101 answer is `Err`.
    pub async fn connect_with(server: &TestServer, path: &str, headers: &[(&str, String)]) -> Result<RawWs, Refused> {
        let url = format!("{}{path}", server.url.replacen("http://", "ws://", 1));
        let mut request = url.as_str().into_client_request().expect("a WebSocket request");
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            request.headers_mut().insert(name, HeaderValue::from_str(value).expect("a header value"));
        }
        let connect = tokio_tungstenite::connect_async(request);
        match tokio::time::timeout(Duration::from_secs(20), connect).await.expect("WebSocket handshake in time") {
            Ok((ws, resp)) => {
                assert_eq!(resp.status().as_u16(), 101);
                Ok(RawWs { ws })
            }
            Err(tungstenite::Error::Http(resp)) => Err(Refused {
                status: resp.status().as_u16(),
                body: String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
            }),
            Err(e) => panic!("WebSocket {path}: {e}"),
        }
    }

    /// The next message; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> WsItem {
        let deadline = Instant::now() + timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Ok(msg) => msg,
                Err(_) => panic!("no WebSocket message within {timeout:?}"),
            };
            return match msg {
                None | Some(Err(_)) => WsItem::End,
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("WebSocket text is not JSON ({e}): {text}"));
                    if v.get("seq").is_some() {
                        WsItem::Event(v)
                    } else {
                        WsItem::Control(v)
                    }
                }
                Some(Ok(Message::Ping(_))) => WsItem::Ping,
                Some(Ok(Message::Close(frame))) => frame
                    .map(|f| WsItem::Close(f.code.into(), f.reason.to_string()))
                    .unwrap_or(WsItem::Close(0, String::new())),
                Some(Ok(Message::Binary(b))) => panic!("unexpected binary message of {} bytes", b.len()),
                Some(Ok(Message::Pong(_) | Message::Frame(_))) => continue,
            };
        }
    }

    /// The next event, skipping pings; panics on anything else or after `timeout`.
    pub async fn next_event(&mut self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())).await {
                WsItem::Event(v) => return v,
                WsItem::Ping => continue,
                other => panic!("expected an event, got {other:?}"),
            }
        }
    }

    /// Events until `pred` matches one (inclusive), skipping pings.
    pub async fn read_until(&mut self, timeout: Duration, mut pred: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let event = self.next_event(deadline.saturating_duration_since(Instant::now())).await;
            let done = pred(&event);
            got.push(event);
            assert!(got.len() < crate::events::MAX_EVENTS, "no matching event");
            if done {
                return got;
            }
        }
    }

    /// Closes from the client's side (a close frame, then the server's answer).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async { while self.ws.next().await.is_some() {} }).await;
    }
}

/// The `seq` of an event's JSON.
pub fn seq(v: &Value) -> u64 {
    v["seq"].as_u64().unwrap_or_else(|| panic!("no seq in {v}"))
}

/// The `gseq` of an event's JSON.
pub fn gseq(v: &Value) -> u64 {
    v["gseq"].as_u64().unwrap_or_else(|| panic!("no gseq in {v}"))
}
