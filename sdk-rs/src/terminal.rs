//! A process's terminal (or a session's agent PTY) over a WebSocket:
//! `GET /v1/processes/{id}/terminal` and `GET /v1/sessions/{id}/terminal`.
//!
//! The WebSocket is an HTTP/1.1 upgrade made by the client's own HTTP stack,
//! so it goes wherever the client's requests go: plain `http://`,
//! `https://` (rustls, the same roots), and the Sprites TCP proxy (its
//! local relay tunnels the upgraded connection like any other). Binary
//! messages are terminal bytes both ways; text messages are JSON
//! [`TerminalControl`].
//!
//! [`Terminal`] counts the output's byte offsets as frames arrive, so a
//! client that loses the connection reattaches with
//! `TerminalQuery { after: Some(terminal.offset()), .. }` and gets exactly
//! the bytes it did not see (or a [`TerminalFrame::Missed`] for those no
//! longer kept). It must not retry by itself: what to show on a reattach
//! is the caller's choice.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use reqwest::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE};
use reqwest::{Method, StatusCode};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::processes::process_path;
use crate::{error, execute, http_client, session_path, Client, Error, Result};
use crate::{TerminalControl, TerminalQuery, MAX_INPUT_BYTES, MAX_TERMINAL_SIZE};

/// What a [`Terminal`] receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalFrame {
    /// The output that follows starts at `offset`; the `missed` bytes before
    /// it that were asked for are no longer kept. The first frame of every
    /// attach, and the answer to [`Terminal::replay`].
    Attached { offset: u64, missed: u64, read_only: bool },
    /// Terminal bytes: those at `offset .. offset + bytes.len()`.
    Output { offset: u64, bytes: Bytes },
    /// This client fell too far behind: the bytes `from .. to` were skipped
    /// (no longer kept); the output goes on at `to`.
    Missed { from: u64, to: u64 },
    /// The process ended at output offset `end`; nothing follows.
    Exit { exit_code: Option<i32>, signal: Option<String>, end: u64 },
}

/// An attached terminal. Reading ([`next_frame`](Self::next_frame)) and
/// writing may be interleaved in one `tokio::select!` loop:
/// `next_frame` is cancel-safe.
pub struct Terminal {
    ws: WebSocketStream<reqwest::Upgraded>,
    /// The offset of the next output byte.
    offset: u64,
    /// An `exit` was received.
    exited: bool,
    /// The server's close: `Some(None)` a normal one, `Some(Some(why))` another.
    closed: Option<Option<String>>,
    /// The stream has ended (None returned once).
    done: bool,
}

impl std::fmt::Debug for Terminal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminal").field("offset", &self.offset).field("exited", &self.exited).finish()
    }
}

impl Client {
    /// `GET /v1/processes/{id}/terminal`: attaches to a process's terminal.
    /// The output from `query.after` (by default all that is kept, so the
    /// history shows) comes first, then live. An unknown process, a refused
    /// token, … are [`Error::Api`] as for any route.
    pub async fn attach_terminal(&self, process_id: impl AsRef<str>, query: &TerminalQuery) -> Result<Terminal> {
        self.open_terminal(&process_path(process_id.as_ref(), &["terminal"]), query).await
    }

    /// `GET /v1/sessions/{id}/terminal`: attaches read-only to the PTY of a
    /// live session's agent, framed as [`attach_terminal`](Self::attach_terminal).
    pub async fn session_terminal(&self, session_id: impl AsRef<str>, query: &TerminalQuery) -> Result<Terminal> {
        self.open_terminal(&session_path(session_id.as_ref(), &["terminal"]), query).await
    }

    async fn open_terminal(&self, path: &str, query: &TerminalQuery) -> Result<Terminal> {
        let http = self.upgrade_client()?;
        let key = generate_key();
        let request = self
            .request_on(&http, Method::GET, path)
            .query(query)
            .header(CONNECTION, "upgrade")
            .header(UPGRADE, "websocket")
            .header(SEC_WEBSOCKET_VERSION, "13")
            .header(SEC_WEBSOCKET_KEY, &key);
        let response = execute(request).await?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            if status.is_success() {
                return Err(Error::Decode(format!("{path}: the server answered {status} instead of a WebSocket")));
            }
            return Err(error::from_response(response).await);
        }
        let accept = response.headers().get(SEC_WEBSOCKET_ACCEPT).and_then(|v| v.to_str().ok());
        if accept != Some(derive_accept_key(key.as_bytes()).as_str()) {
            return Err(Error::WebSocket(format!("{path}: the WebSocket handshake's Sec-WebSocket-Accept is wrong")));
        }
        let upgraded = response.upgrade().await?;
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
        let ws = WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await;
        Ok(Terminal { ws, offset: query.after.unwrap_or(0), exited: false, closed: None, done: false })
    }

    /// The client the upgrade goes through: an HTTP/1.1-only twin of
    /// `http` when the SDK built it, `http` itself when the caller gave it.
    fn upgrade_client(&self) -> Result<reqwest::Client> {
        let Some(recipe) = &self.recipe else { return Ok(self.http.clone()) };
        if let Some(http) = self.upgrade_http.get() {
            return Ok(http.clone());
        }
        let http = http_client(|| recipe().http1_only())?;
        Ok(self.upgrade_http.get_or_init(|| http).clone())
    }
}

impl Terminal {
    /// The offset of the next output byte: reattach with `after` set to it
    /// to get exactly what this client has not seen.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame; `None` once the process's `exit` was received and
    /// the server closed, or the connection closed normally. A connection
    /// lost before the exit is an [`Error::WebSocket`] (reattach from
    /// [`offset`](Self::offset)); a control message this SDK does not know
    /// is an [`Error::Decode`] and the terminal goes on.
    pub async fn next_frame(&mut self) -> Option<Result<TerminalFrame>> {
        while !self.done {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                // The end of the stream: after a close (ours answered), or a lost connection.
                end => {
                    self.done = true;
                    let why = match (end, self.closed.take()) {
                        (_, Some(None)) => return None,
                        (_, Some(Some(why))) => why,
                        (Some(Err(e)), None) => e.to_string(),
                        (_, None) => "the connection closed".to_owned(),
                    };
                    return (!self.exited).then(|| Err(Error::WebSocket(why)));
                }
            };
            match decode(&mut self.offset, message) {
                Decoded::Frame(frame) => {
                    self.exited |= matches!(frame, TerminalFrame::Exit { .. });
                    return Some(Ok(frame));
                }
                Decoded::Skip => {}
                Decoded::Bad(why) => return Some(Err(Error::Decode(why))),
                // Read on: the next read sends the answer to the close and ends the stream.
                Decoded::Closed(why) => self.closed = Some(why),
            }
        }
        None
    }

    /// Sends bytes to the terminal's input (as typed), in messages of at
    /// most 64 KiB. A read-only attach has them refused (the server closes).
    pub async fn send_input(&mut self, bytes: &[u8]) -> Result<()> {
        for chunk in bytes.chunks(MAX_INPUT_BYTES) {
            self.ws.send(Message::binary(Bytes::copy_from_slice(chunk))).await.map_err(ws_error)?;
        }
        Ok(())
    }

    /// Changes the terminal's size (1 to 1000 each way).
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<()> {
        let cols = cols.clamp(1, MAX_TERMINAL_SIZE);
        let rows = rows.clamp(1, MAX_TERMINAL_SIZE);
        self.control(&TerminalControl::Resize { cols, rows }).await
    }

    /// Asks for the output again from `after`: an
    /// [`Attached`](TerminalFrame::Attached) frame answers, then the output
    /// from there (frames already on their way come first).
    pub async fn replay(&mut self, after: u64) -> Result<()> {
        self.control(&TerminalControl::Replay { after }).await
    }

    /// Closes the connection (the process goes on); no frame follows.
    pub async fn close(&mut self) -> Result<()> {
        self.done = true;
        self.ws.close(None).await.map_err(ws_error)
    }

    async fn control(&mut self, control: &TerminalControl) -> Result<()> {
        let text = serde_json::to_string(control).map_err(|e| Error::Decode(e.to_string()))?;
        self.ws.send(Message::text(text)).await.map_err(ws_error)
    }
}

fn ws_error(e: tokio_tungstenite::tungstenite::Error) -> Error {
    Error::WebSocket(e.to_string())
}

/// What one WebSocket message is to a [`Terminal`].
#[derive(Debug, PartialEq)]
enum Decoded {
    Frame(TerminalFrame),
    /// Pings, pongs, and control messages only a server takes.
    Skip,
    /// A control message that is not JSON this SDK knows.
    Bad(String),
    /// The server closed: normally (`None`), or with a reason.
    Closed(Option<String>),
}

/// Turns one message into a frame, moving the running `offset` along.
fn decode(offset: &mut u64, message: Message) -> Decoded {
    match message {
        Message::Binary(bytes) => {
            let at = *offset;
            *offset += bytes.len() as u64;
            Decoded::Frame(TerminalFrame::Output { offset: at, bytes })
        }
        Message::Text(text) => match serde_json::from_str::<TerminalControl>(text.as_str()) {
            Ok(TerminalControl::Attached { offset: at, missed, read_only }) => {
                *offset = at;
                Decoded::Frame(TerminalFrame::Attached { offset: at, missed, read_only })
            }
            Ok(TerminalControl::Missed { from, to }) => {
                *offset = to;
                Decoded::Frame(TerminalFrame::Missed { from, to })
            }
            Ok(TerminalControl::Exit { exit_code, signal, end }) => {
                *offset = end;
                Decoded::Frame(TerminalFrame::Exit { exit_code, signal, end })
            }
            Ok(TerminalControl::Resize { .. } | TerminalControl::Replay { .. }) => Decoded::Skip,
            Err(e) => {
                let shown: String = text.as_str().chars().take(200).collect();
                Decoded::Bad(format!("terminal control message {shown:?}: {e}"))
            }
        },
        Message::Close(frame) => match frame {
            None => Decoded::Closed(None),
            Some(f) if f.code == CloseCode::Normal => Decoded::Closed(None),
            Some(f) => Decoded::Closed(Some(format!("the server closed the terminal ({}): {}", f.code, f.reason))),
        },
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Decoded::Skip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    #[test]
    fn frames_carry_the_running_offset() {
        let mut offset = 0;
        let attached = Message::text(r#"{"type":"attached","offset":10,"missed":4,"read_only":false}"#);
        assert_eq!(
            decode(&mut offset, attached),
            Decoded::Frame(TerminalFrame::Attached { offset: 10, missed: 4, read_only: false })
        );
        assert_eq!(
            decode(&mut offset, Message::binary(Bytes::from_static(b"abc"))),
            Decoded::Frame(TerminalFrame::Output { offset: 10, bytes: Bytes::from_static(b"abc") })
        );
        assert_eq!(offset, 13);
        let missed = Message::text(r#"{"type":"missed","from":13,"to":20}"#);
        assert_eq!(decode(&mut offset, missed), Decoded::Frame(TerminalFrame::Missed { from: 13, to: 20 }));
        assert_eq!(
            decode(&mut offset, Message::binary(Bytes::from_static(b"d"))),
            Decoded::Frame(TerminalFrame::Output { offset: 20, bytes: Bytes::from_static(b"d") })
        );
        let exit = Message::text(r#"{"type":"exit","exit_code":3,"end":21}"#);
        assert_eq!(
            decode(&mut offset, exit),
            Decoded::Frame(TerminalFrame::Exit { exit_code: Some(3), signal: None, end: 21 })
        );
        assert_eq!(offset, 21);
        assert!(matches!(decode(&mut offset, Message::text("{\"type\":\"later\"}")), Decoded::Bad(_)));
        assert_eq!(decode(&mut offset, Message::Close(None)), Decoded::Closed(None));
        let policy = CloseFrame { code: CloseCode::Policy, reason: "read-only".into() };
        assert!(matches!(decode(&mut offset, Message::Close(Some(policy))), Decoded::Closed(Some(_))));
        assert_eq!(offset, 21);
    }

    /// A one-connection terminal server: checks the upgrade request, sends
    /// an attach, echoes what it gets as output, answers a resize with the
    /// exit.
    #[tokio::test]
    #[allow(clippy::result_large_err)] // tungstenite's header callback returns its error response by value.
    async fn attach_sends_input_and_controls_and_reads_frames() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut seen = String::new();
            let check = |request: &Request, response: Response| {
                seen = format!(
                    "{} {}",
                    request.uri(),
                    request.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("")
                );
                Ok(response)
            };
            let mut ws = tokio_tungstenite::accept_hdr_async(tcp, check).await.unwrap();
            ws.send(Message::text(r#"{"type":"attached","offset":7,"missed":0,"read_only":false}"#)).await.unwrap();
            ws.send(Message::binary(Bytes::from_static(b"$ "))).await.unwrap();
            while let Some(Ok(message)) = ws.next().await {
                match message {
                    Message::Binary(bytes) => ws.send(Message::Binary(bytes)).await.unwrap(),
                    Message::Text(text) if text.contains("resize") => {
                        ws.send(Message::text(r#"{"type":"exit","exit_code":0,"end":12}"#)).await.unwrap();
                        ws.close(None).await.unwrap();
                    }
                    _ => {}
                }
            }
            seen
        });
        let client = Client::new(base).with_token("tok");
        let query = TerminalQuery { after: Some(3), read_only: None };
        let mut terminal = client.attach_terminal("prc_1", &query).await.unwrap();
        assert_eq!(terminal.offset(), 3);
        let first = terminal.next_frame().await.unwrap().unwrap();
        assert_eq!(first, TerminalFrame::Attached { offset: 7, missed: 0, read_only: false });
        let prompt = terminal.next_frame().await.unwrap().unwrap();
        assert_eq!(prompt, TerminalFrame::Output { offset: 7, bytes: Bytes::from_static(b"$ ") });
        terminal.send_input(b"ls\r").await.unwrap();
        let echo = terminal.next_frame().await.unwrap().unwrap();
        assert_eq!(echo, TerminalFrame::Output { offset: 9, bytes: Bytes::from_static(b"ls\r") });
        terminal.resize(100, 30).await.unwrap();
        let exit = terminal.next_frame().await.unwrap().unwrap();
        assert_eq!(exit, TerminalFrame::Exit { exit_code: Some(0), signal: None, end: 12 });
        assert!(terminal.next_frame().await.is_none());
        assert_eq!(terminal.offset(), 12);
        assert_eq!(server.await.unwrap(), "/v1/processes/prc_1/terminal?after=3 Bearer tok");
    }

    /// A refusal before the upgrade is the route's problem, as for any request.
    #[tokio::test]
    async fn a_refused_attach_is_a_problem() {
        let (base, _heads) = crate::stream::tests::serve(|_, _| {
            let body = r#"{"type":"urn:tether:error:process_not_found","title":"Not Found","status":404,"detail":"no"}"#;
            crate::stream::tests::Answer {
                bytes: format!(
                    "HTTP/1.1 404 Not Found\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes(),
                keep_open: false,
            }
        })
        .await;
        let err = Client::new(base).attach_terminal("prc_x", &TerminalQuery::default()).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(404), Some("process_not_found")));
    }
}
