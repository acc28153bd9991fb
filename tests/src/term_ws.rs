//! A raw client of the terminal WebSockets (`/v1/processes/{id}/terminal`,
//! `/v1/sessions/{id}/terminal`): binary messages are terminal bytes, text
//! messages JSON `TerminalControl`; every read has a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_protocol::TerminalControl;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::server::TestServer;

/// What a terminal client receives.
#[derive(Debug, Clone, PartialEq)]
pub enum TermItem {
    Bytes(Vec<u8>),
    Control(TerminalControl),
    /// The close frame's code.
    Close(u16),
    End,
}

pub struct TermWs {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TermWs {
    /// Connects to `path` (with its query), with the server's token.
    pub async fn connect(server: &TestServer, path: &str) -> TermWs {
        let url = format!("{}{path}", server.url.replacen("http://", "ws://", 1));
        let mut request = url.as_str().into_client_request().expect("a WebSocket request");
        if let Some(t) = server.token() {
            request.headers_mut().insert("x-tether-token", HeaderValue::from_str(t).expect("a header value"));
        }
        let connect = tokio_tungstenite::connect_async(request);
        let (ws, resp) = tokio::time::timeout(Duration::from_secs(20), connect)
            .await
            .expect("WebSocket handshake in time")
            .unwrap_or_else(|e| panic!("WebSocket {path}: {e}"));
        assert_eq!(resp.status().as_u16(), 101);
        TermWs { ws }
    }

    /// The next message (pings skipped); panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> TermItem {
        let deadline = Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no terminal message within {timeout:?}"));
            return match msg {
                None | Some(Err(_)) => TermItem::End,
                Some(Ok(Message::Binary(b))) => TermItem::Bytes(b.to_vec()),
                Some(Ok(Message::Text(t))) => TermItem::Control(
                    serde_json::from_str(&t).unwrap_or_else(|e| panic!("not a TerminalControl ({e}): {t}")),
                ),
                Some(Ok(Message::Close(f))) => TermItem::Close(f.map(|f| f.code.into()).unwrap_or(0)),
                Some(Ok(_)) => continue,
            };
        }
    }

    /// The `attached` message every attach starts with: (offset, missed).
    pub async fn attached(&mut self, timeout: Duration) -> (u64, u64) {
        match self.next(timeout).await {
            TermItem::Control(TerminalControl::Attached { offset, missed, .. }) => (offset, missed),
            other => panic!("expected `attached`, got {other:?}"),
        }
    }

    /// Bytes until `until` is among them (or the process exits); panics after `timeout`.
    pub async fn read_until(&mut self, timeout: Duration, until: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            match self.next(deadline.saturating_duration_since(Instant::now())).await {
                TermItem::Bytes(b) => got.extend(b),
                TermItem::Control(TerminalControl::Exit { .. }) => return got,
                other => panic!("expected terminal bytes, got {other:?} after {:?}", String::from_utf8_lossy(&got)),
            }
            if got.windows(until.len().max(1)).any(|w| w == until) {
                return got;
            }
        }
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.ws.send(Message::Binary(bytes.to_vec().into())).await.expect("send input");
    }

    pub async fn send_control(&mut self, control: &TerminalControl) {
        let text = serde_json::to_string(control).expect("control JSON");
        self.ws.send(Message::Text(text.into())).await.expect("send control");
    }
}
