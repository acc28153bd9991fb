//! [`EventStream`]: a self-reconnecting SSE stream of [`Event`]s.
//!
//! A small state machine: connect, read and parse the body, and when the
//! connection ends or fails, wait a backoff (50 ms doubling up to 2 s) and
//! reconnect with `Last-Event-ID` (and `?after=`) set to the last delivered
//! cursor. A 4xx answer, or a redirect (3xx, never followed: see
//! [`Error::Api`]), ends the stream after yielding it as an error. Events
//! at or before the last delivered cursor are skipped, so the stream never
//! yields a duplicate, and since the server replays everything after the
//! cursor it never has a gap.
//!
//! Frames named `stream.*` are not events: `stream.reset` (the cursor is
//! beyond the server's store) is yielded as [`Error::CursorAhead`] and moves
//! the cursor back to the store's last one; `stream.idle` (the server ends a
//! stream idle past `--stream-idle-secs`) makes the end of that connection a
//! reconnection at once, without backoff; `stream.ended` (a session's stream
//! after its last event) ends the stream for good; unknown ones are skipped.
//! A session's stream also ends, without reconnecting, right after it yields
//! `session.ended`, the last event a session has.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::{ACCEPT, CACHE_CONTROL};
use reqwest::{Method, Response};
use tether_protocol::{Event, EventBody, StreamQuery, StreamReset};
use tokio::time::{Instant, Sleep};

use crate::error::{self, Error, Result};
use crate::sse::{SseFrame, SseParser};
use crate::Client;

const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The server sends a keepalive comment every 15 s; a connection silent for
/// this long is presumed dead and replaced.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Which number of an event is the cursor of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CursorKind {
    /// `seq`, for `/v1/sessions/{id}/events/stream`.
    Seq,
    /// `gseq`, for `/v1/events/stream`.
    Gseq,
}

enum State {
    /// Not connected; connects on the next poll.
    Idle,
    Connecting(BoxFuture<Result<Response>>),
    Reading {
        body: ByteStream,
        parser: SseParser,
        idle: Option<Pin<Box<Sleep>>>,
        last_activity: Instant,
    },
    /// Reading the body of an error answer; `fatal` ends the stream after
    /// yielding it, otherwise it is retried.
    Failing {
        error: BoxFuture<Error>,
        fatal: bool,
    },
    Backoff(Pin<Box<Sleep>>),
    Done,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Connecting(_) => "connecting",
            State::Reading { .. } => "reading",
            State::Failing { .. } => "failing",
            State::Backoff(_) => "backoff",
            State::Done => "done",
        }
    }
}

/// The bookkeeping of a stream, apart from its connection state.
struct Inner {
    client: Client,
    path: String,
    kind: CursorKind,
    after: Option<u64>,
    cursor: Option<u64>,
    include_raw: bool,
    max_reconnects: Option<u32>,
    idle_timeout: Option<Duration>,
    reconnect_on_idle: bool,
    /// The connection said `stream.idle`: its end is not a failure.
    idle_ended: bool,
    /// The session is over (`session.ended` was yielded, or `stream.ended`
    /// came): the stream ends, never reconnects.
    finished: bool,
    reconnects: u32,
    backoff: Duration,
}

/// A stream of events from `GET /v1/sessions/{id}/events/stream`
/// ([`Client::session_events`]) or `GET /v1/events/stream`
/// ([`Client::all_events`]).
///
/// Lazily connected on the first poll. It reconnects by itself when the
/// connection ends or fails (EOF, network error, 5xx, or no byte for the idle
/// timeout), forever unless [`with_max_reconnects`](Self::with_max_reconnects)
/// says otherwise, and resumes after the last delivered event. A 4xx answer
/// (unknown session, bad token) or a redirect (`sprites_token_refused`,
/// `redirected`) is yielded as [`Error::Api`] and ends the stream. An event whose JSON cannot be decoded (for example a type newer
/// than this SDK) is yielded as [`Error::Decode`] and the stream goes on.
/// A cursor beyond the server's store (it was restored from an older copy)
/// is yielded as [`Error::CursorAhead`], never waited on: the stream goes
/// on with the events after the store's last cursor, which becomes its own.
pub struct EventStream {
    state: State,
    inner: Inner,
}

impl EventStream {
    pub(crate) fn new(client: Client, path: String, kind: CursorKind, after: Option<u64>) -> Self {
        EventStream {
            state: State::Idle,
            inner: Inner {
                client,
                path,
                kind,
                after,
                cursor: None,
                include_raw: false,
                max_reconnects: None,
                idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
                reconnect_on_idle: true,
                idle_ended: false,
                finished: false,
                reconnects: 0,
                backoff: INITIAL_BACKOFF,
            },
        }
    }

    /// Ask for each event's `raw` native message (`include_raw=true`).
    pub fn with_include_raw(mut self, include_raw: bool) -> Self {
        self.inner.include_raw = include_raw;
        self
    }

    /// How many times the stream may reconnect over its whole life (`None`,
    /// the default: forever). Once they are used up, the end of the
    /// connection ends the stream, after yielding the error that ended it,
    /// if any. `Some(0)` makes a stream that ends with its first connection.
    pub fn with_max_reconnects(mut self, max_reconnects: Option<u32>) -> Self {
        self.inner.max_reconnects = max_reconnects;
        self
    }

    /// A connection that receives no byte (not even a keepalive comment) for
    /// this long is dropped and replaced. Default 60 s; `None` disables it.
    pub fn with_idle_timeout(mut self, idle_timeout: Option<Duration>) -> Self {
        self.inner.idle_timeout = idle_timeout;
        self
    }

    /// What to do when the server ends the stream for idleness
    /// (`stream.idle`, `--stream-idle-secs`): reconnect at once (`true`, the
    /// default: the stream never notices), or end the stream (`false`: the
    /// caller decides when to follow again, e.g. to let a Sprite sleep;
    /// [`cursor`](Self::cursor) says where to resume).
    pub fn with_reconnect_on_idle(mut self, reconnect: bool) -> Self {
        self.inner.reconnect_on_idle = reconnect;
        self
    }

    /// The cursor to resume after: the `seq` (session stream) or `gseq`
    /// (global stream) of the last delivered event, or the `after` the stream
    /// was created with while nothing has been delivered.
    pub fn cursor(&self) -> Option<u64> {
        self.inner.floor()
    }

    /// The next event; `None` once the stream has ended.
    pub async fn next_event(&mut self) -> Option<Result<Event>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Schedules a reconnection after the current backoff. When reconnections
    /// are used up, ends the stream and returns what to yield: the error
    /// that ended the connection, or the end of the stream.
    fn retry(&mut self, error: Option<Error>) -> Option<Poll<Option<Result<Event>>>> {
        let inner = &mut self.inner;
        if inner.max_reconnects.is_some_and(|max| inner.reconnects >= max) {
            self.state = State::Done;
            return Some(Poll::Ready(error.map(Err)));
        }
        inner.reconnects = inner.reconnects.saturating_add(1);
        let delay = inner.backoff;
        inner.backoff = (delay * 2).min(MAX_BACKOFF);
        self.state = State::Backoff(Box::pin(tokio::time::sleep(delay)));
        None
    }
}

impl Inner {
    /// Events at or before this cursor are not delivered.
    fn floor(&self) -> Option<u64> {
        self.cursor.or(self.after)
    }

    fn connect(&self) -> BoxFuture<Result<Response>> {
        let mut request = self
            .client
            .request(Method::GET, &self.path)
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        request = request.query(&StreamQuery { include_raw: self.include_raw, ..StreamQuery::default() });
        // The cursor goes last, with `Last-Event-ID`: it changes at each reconnect.
        if let Some(floor) = self.floor() {
            request = request.query(&[("after", floor)]).header("Last-Event-ID", floor.to_string());
        }
        Box::pin(crate::execute(request))
    }

    fn idle_timer(&self) -> Option<Pin<Box<Sleep>>> {
        self.idle_timeout.map(|d| Box::pin(tokio::time::sleep(d)))
    }

    /// What a frame yields, if anything.
    fn on_frame(&mut self, frame: SseFrame) -> Option<Result<Event>> {
        if let Some(name) = frame.event().filter(|name| name.starts_with("stream.")) {
            return self.on_control(name, frame.data());
        }
        let data = frame.data();
        if data.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        match serde_json::from_slice::<Event>(data) {
            Ok(event) => {
                let cursor = match self.kind {
                    CursorKind::Seq => event.seq,
                    CursorKind::Gseq => event.gseq,
                };
                if self.floor().is_some_and(|floor| cursor <= floor) {
                    return None;
                }
                self.cursor = Some(cursor);
                self.backoff = INITIAL_BACKOFF;
                if self.kind == CursorKind::Seq && matches!(event.body, EventBody::SessionEnded(_)) {
                    self.finished = true;
                }
                Some(Ok(event))
            }
            Err(e) => {
                // Fall back on the SSE id to keep the cursor, and dedup, right.
                if let Some(id) = frame.id().and_then(|id| id.trim().parse::<u64>().ok()) {
                    if self.floor().is_some_and(|floor| id <= floor) {
                        return None;
                    }
                    self.cursor = Some(id);
                }
                Some(Err(Error::Decode(format!(
                    "event id {} (type {}) on {}: {e}",
                    frame.id().unwrap_or("?"),
                    frame.event().unwrap_or("?"),
                    self.path
                ))))
            }
        }
    }
}

impl Inner {
    /// A frame that is not an event.
    fn on_control(&mut self, name: &str, data: &[u8]) -> Option<Result<Event>> {
        match name {
            "stream.reset" => match serde_json::from_slice::<StreamReset>(data) {
                Ok(reset) => {
                    // The server goes on after its real last cursor; so does the dedup floor.
                    self.cursor = Some(reset.last_seq);
                    self.backoff = INITIAL_BACKOFF;
                    Some(Err(Error::CursorAhead(reset)))
                }
                Err(e) => Some(Err(Error::Decode(format!("stream.reset on {}: {e}", self.path)))),
            },
            "stream.idle" => {
                self.idle_ended = true;
                None
            }
            "stream.ended" => {
                self.finished = true;
                None
            }
            // A control frame newer than this SDK.
            _ => None,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.inner.finished {
                this.state = State::Done;
            }
            match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Idle => this.state = State::Connecting(this.inner.connect()),
                State::Backoff(sleep) => {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    this.state = State::Idle;
                }
                State::Connecting(fut) => {
                    let result = match fut.as_mut().poll(cx) {
                        Poll::Ready(result) => result,
                        Poll::Pending => return Poll::Pending,
                    };
                    match result {
                        Ok(resp) if resp.status().is_success() => {
                            this.inner.idle_ended = false;
                            this.state = State::Reading {
                                body: Box::pin(resp.bytes_stream()),
                                parser: SseParser::new(),
                                idle: this.inner.idle_timer(),
                                last_activity: Instant::now(),
                            };
                        }
                        Ok(resp) => {
                            let fatal = resp.status().is_client_error() || resp.status().is_redirection();
                            this.state = State::Failing { error: Box::pin(error::from_response(resp)), fatal };
                        }
                        Err(e @ Error::Http(_)) => {
                            if let Some(poll) = this.retry(Some(e)) {
                                return poll;
                            }
                        }
                        // An answer from elsewhere (the HTTP client followed a redirect).
                        Err(e) => {
                            this.state = State::Done;
                            return Poll::Ready(Some(Err(e)));
                        }
                    }
                }
                State::Failing { error, fatal } => {
                    let error = match error.as_mut().poll(cx) {
                        Poll::Ready(error) => error,
                        Poll::Pending => return Poll::Pending,
                    };
                    if *fatal {
                        this.state = State::Done;
                        return Poll::Ready(Some(Err(error)));
                    }
                    if let Some(poll) = this.retry(Some(error)) {
                        return poll;
                    }
                }
                State::Reading { body, parser, idle, last_activity } => {
                    if let Some(frame) = parser.next_frame() {
                        match this.inner.on_frame(frame) {
                            Some(item) => return Poll::Ready(Some(item)),
                            None => continue,
                        }
                    }
                    match body.as_mut().poll_next(cx) {
                        Poll::Ready(Some(Ok(chunk))) => {
                            parser.feed(&chunk);
                            if idle.is_some() {
                                *last_activity = Instant::now();
                            }
                        }
                        Poll::Ready(Some(Err(e))) => {
                            if let Some(poll) = this.retry(Some(Error::Http(e))) {
                                return poll;
                            }
                        }
                        Poll::Ready(None) if std::mem::take(&mut this.inner.idle_ended) => {
                            let inner = &mut this.inner;
                            if !inner.reconnect_on_idle
                                || inner.max_reconnects.is_some_and(|max| inner.reconnects >= max)
                            {
                                this.state = State::Done;
                                return Poll::Ready(None);
                            }
                            // Not a failure: no backoff.
                            inner.reconnects = inner.reconnects.saturating_add(1);
                            this.state = State::Idle;
                        }
                        Poll::Ready(None) => {
                            if let Some(poll) = this.retry(None) {
                                return poll;
                            }
                        }
                        Poll::Pending => {
                            let (Some(timer), Some(timeout)) = (idle, this.inner.idle_timeout) else {
                                return Poll::Pending;
                            };
                            // The timer is only moved when it fires, not per chunk.
                            if timer.as_mut().poll(cx).is_pending() {
                                return Poll::Pending;
                            }
                            let deadline = *last_activity + timeout;
                            if deadline > Instant::now() {
                                timer.as_mut().reset(deadline);
                                continue;
                            }
                            if let Some(poll) = this.retry(None) {
                                return poll;
                            }
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("path", &self.inner.path)
            .field("state", &self.state.name())
            .field("cursor", &self.inner.floor())
            .field("reconnects", &self.inner.reconnects)
            .finish()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    /// What the test server answers to one connection.
    pub(crate) struct Answer {
        pub(crate) bytes: Vec<u8>,
        /// Keep the connection open after writing (until the client closes).
        pub(crate) keep_open: bool,
    }

    fn sse_head() -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"
            .to_owned()
    }

    fn event_json(seq: u64, gseq: u64) -> String {
        format!(
            r#"{{"seq":{seq},"gseq":{gseq},"session_id":"ses_1","time":"2026-01-01T00:00:00.000Z","source":"server","type":"session.status","data":{{"status":"idle"}}}}"#
        )
    }

    fn frame(id: u64, json: &str) -> String {
        format!("id: {id}\nevent: session.status\ndata: {json}\n\n")
    }

    fn problem(status: u16, reason: &str, code: &str) -> Vec<u8> {
        let body =
            format!(r#"{{"type":"urn:tether:error:{code}","title":"{reason}","status":{status},"detail":"{code}"}}"#);
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// A one-request-per-connection HTTP server: `answer(n, request_head)`
    /// answers the n-th connection. Request heads are sent on the channel.
    pub(crate) async fn serve<F>(answer: F) -> (String, mpsc::UnboundedReceiver<String>)
    where
        F: Fn(usize, &str) -> Answer + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for n in 0.. {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => head.extend_from_slice(&buf[..k]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let reply = answer(n, &head);
                let _ = tx.send(head);
                let _ = sock.write_all(&reply.bytes).await;
                if reply.keep_open {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 64];
                        while let Ok(k) = sock.read(&mut buf).await {
                            if k == 0 {
                                break;
                            }
                        }
                    });
                } else {
                    let _ = sock.shutdown().await;
                }
            }
        });
        (base, rx)
    }

    pub(crate) fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
        head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    async fn next(stream: &mut EventStream) -> Option<Result<Event>> {
        tokio::time::timeout(Duration::from_secs(10), stream.next_event()).await.unwrap()
    }

    fn assert_send_unpin<T: Send + Unpin + 'static>(_: &T) {}

    #[tokio::test]
    async fn reconnects_with_last_event_id_without_duplicate_or_gap() {
        let (base, mut heads) = serve(|n, head| match n {
            // Three frames, a comment, then half a frame, then EOF.
            0 => Answer {
                bytes: format!(
                    "{}: hello\n\n{}{}{}id: 4\ndata: {{\"seq\":4,",
                    sse_head(),
                    frame(1, &event_json(1, 101)),
                    frame(2, &event_json(2, 102)),
                    frame(3, &event_json(3, 103)),
                )
                .into_bytes(),
                keep_open: false,
            },
            // A transient server error.
            1 => Answer { bytes: problem(503, "Service Unavailable", "internal"), keep_open: false },
            // Replays from before the cursor (duplicates must be skipped).
            _ => {
                assert_eq!(header(head, "last-event-id"), Some("3"));
                let mut body = sse_head();
                for seq in 2..=6 {
                    body.push_str(&frame(seq, &event_json(seq, 100 + seq)));
                }
                Answer { bytes: body.into_bytes(), keep_open: true }
            }
        })
        .await;

        let client = Client::new(base).with_token("t0k");
        let mut stream = client.session_events("ses_1", None);
        assert_send_unpin(&stream);
        assert_eq!(stream.cursor(), None);
        let mut seqs = Vec::new();
        while seqs.len() < 6 {
            let event = next(&mut stream).await.unwrap().unwrap();
            seqs.push(event.seq);
            assert_eq!(stream.cursor(), Some(event.seq));
        }
        assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);

        let first = heads.recv().await.unwrap();
        assert!(first.starts_with("GET /v1/sessions/ses_1/events/stream HTTP/1.1"), "{first}");
        assert_eq!(header(&first, "last-event-id"), None);
        assert_eq!(header(&first, "authorization"), Some("Bearer t0k"));
        assert_eq!(header(&first, "accept"), Some("text/event-stream"));
        for _ in 0..2 {
            let head = heads.recv().await.unwrap();
            assert!(head.starts_with("GET /v1/sessions/ses_1/events/stream?after=3 HTTP/1.1"), "{head}");
            assert_eq!(header(&head, "last-event-id"), Some("3"));
        }
    }

    #[tokio::test]
    async fn global_stream_uses_gseq_and_after() {
        let (base, mut heads) = serve(|_, _| {
            let mut body = sse_head();
            for (seq, gseq) in [(1, 9), (2, 10), (1, 11), (3, 12)] {
                body.push_str(&frame(gseq, &event_json(seq, gseq)));
            }
            Answer { bytes: body.into_bytes(), keep_open: false }
        })
        .await;
        let stream =
            Client::new(format!("{base}/")).all_events(Some(10)).with_include_raw(true).with_max_reconnects(Some(0));
        assert_eq!(stream.cursor(), Some(10));
        let events: Vec<_> = stream.map(|e| e.unwrap().gseq).collect().await;
        assert_eq!(events, vec![11, 12]);
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /v1/events/stream?include_raw=true&after=10 HTTP/1.1"), "{head}");
        assert_eq!(header(&head, "last-event-id"), Some("10"));
    }

    #[tokio::test]
    async fn client_error_ends_the_stream() {
        let (base, mut heads) =
            serve(|_, _| Answer { bytes: problem(404, "Not Found", "session_not_found"), keep_open: false }).await;
        let mut stream = Client::new(base).session_events("ses/x y", Some(3));
        let err = next(&mut stream).await.unwrap().unwrap_err();
        assert_eq!(err.code(), Some("session_not_found"));
        assert_eq!(err.status(), Some(404));
        assert!(next(&mut stream).await.is_none());
        assert!(next(&mut stream).await.is_none());
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /v1/sessions/ses%2Fx%20y/events/stream?after=3 "), "{head}");
        assert!(heads.try_recv().is_err(), "no reconnection after a 4xx");
    }

    #[tokio::test]
    async fn undecodable_event_is_an_error_and_the_stream_goes_on() {
        let (base, _heads) = serve(|_, _| {
            let body = format!(
                "{}{}id: 2\nevent: future.type\ndata: {{\"seq\":2,\"type\":\"future.type\"}}\n\n{}",
                sse_head(),
                frame(1, &event_json(1, 1)),
                frame(3, &event_json(3, 3)),
            );
            Answer { bytes: body.into_bytes(), keep_open: false }
        })
        .await;
        let mut stream = Client::new(base).session_events("ses_1", None).with_max_reconnects(Some(0));
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 1);
        assert!(matches!(next(&mut stream).await.unwrap(), Err(Error::Decode(_))));
        assert_eq!(stream.cursor(), Some(2));
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 3);
        assert!(next(&mut stream).await.is_none());
    }

    #[tokio::test]
    async fn gives_up_after_max_reconnects_with_the_last_error() {
        let (base, mut heads) =
            serve(|_, _| Answer { bytes: problem(500, "Internal Server Error", "internal"), keep_open: false }).await;
        let mut stream = Client::new(base).session_events("ses_1", None).with_max_reconnects(Some(2));
        let err = next(&mut stream).await.unwrap().unwrap_err();
        assert_eq!(err.status(), Some(500));
        assert!(next(&mut stream).await.is_none());
        for _ in 0..3 {
            heads.recv().await.unwrap();
        }
        assert!(heads.try_recv().is_err());
    }

    #[tokio::test]
    async fn reset_is_yielded_and_the_stream_goes_on_from_its_cursor() {
        let (base, mut heads) = serve(|n, _| {
            let mut body = sse_head();
            if n == 0 {
                body.push_str(
                    "id: 2\nevent: stream.reset\ndata: {\"last_seq\":2,\"store_id\":\"sto_a\",\"after\":10}\n\n",
                );
                body.push_str(&frame(3, &event_json(3, 3)));
                // A control frame this SDK does not know is skipped.
                body.push_str("event: stream.future\ndata: {}\n\n");
            } else {
                body.push_str(&frame(4, &event_json(4, 4)));
            }
            Answer { bytes: body.into_bytes(), keep_open: n > 0 }
        })
        .await;
        let mut stream = Client::new(base).session_events("ses_1", Some(10));
        match next(&mut stream).await.unwrap() {
            Err(Error::CursorAhead(reset)) => {
                assert_eq!(reset, StreamReset { last_seq: 2, store_id: "sto_a".into(), after: Some(10) })
            }
            other => panic!("expected the reset, got {other:?}"),
        }
        assert_eq!(stream.cursor(), Some(2));
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 3);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 4);
        assert_eq!(header(&heads.recv().await.unwrap(), "last-event-id"), Some("10"));
        assert_eq!(header(&heads.recv().await.unwrap(), "last-event-id"), Some("3"));
    }

    #[tokio::test]
    async fn idle_end_reconnects_at_once_or_ends_when_asked() {
        let answer = |n: usize, _: &str| {
            let seq = n as u64 + 1;
            let mut body = sse_head();
            body.push_str(&frame(seq, &event_json(seq, seq)));
            body.push_str("event: stream.idle\ndata: {\"idle_secs\":1}\n\n");
            Answer { bytes: body.into_bytes(), keep_open: false }
        };
        let (base, mut heads) = serve(answer).await;
        let mut stream = Client::new(base.clone()).session_events("ses_1", None);
        let started = Instant::now();
        for seq in 1..=4 {
            assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, seq);
        }
        // Three reconnections, none after a backoff (50 ms, 100 ms, 200 ms would add up to 350 ms).
        assert!(started.elapsed() < Duration::from_millis(300), "{:?}", started.elapsed());
        heads.recv().await.unwrap();
        for cursor in 1..=3 {
            assert_eq!(header(&heads.recv().await.unwrap(), "last-event-id"), Some(cursor.to_string().as_str()));
        }

        let (base, mut heads) = serve(answer).await;
        let mut stream = Client::new(base).session_events("ses_1", None).with_reconnect_on_idle(false);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 1);
        assert!(next(&mut stream).await.is_none());
        assert_eq!(stream.cursor(), Some(1));
        heads.recv().await.unwrap();
        assert!(heads.try_recv().is_err(), "no reconnection");
    }

    fn ended_json(seq: u64) -> String {
        format!(
            r#"{{"seq":{seq},"gseq":{seq},"session_id":"ses_1","time":"2026-01-01T00:00:00.000Z","source":"server","type":"session.ended","data":{{"reason":"terminated"}}}}"#
        )
    }

    #[tokio::test]
    async fn a_session_stream_ends_after_session_ended_or_stream_ended_and_never_reconnects() {
        // The connection stays open after `session.ended`: the stream ends anyway.
        let (base, mut heads) = serve(|_, _| {
            let mut body = sse_head();
            body.push_str(&frame(1, &event_json(1, 1)));
            body.push_str(&format!("id: 2\nevent: session.ended\ndata: {}\n\n", ended_json(2)));
            Answer { bytes: body.into_bytes(), keep_open: true }
        })
        .await;
        let mut stream = Client::new(base).session_events("ses_1", None);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 1);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().event_type(), "session.ended");
        assert!(next(&mut stream).await.is_none());
        assert!(next(&mut stream).await.is_none(), "an ended stream stays ended");
        heads.recv().await.unwrap();
        assert!(heads.try_recv().is_err(), "no reconnection after session.ended");

        // Resuming after the last event: only `stream.ended`, then the end.
        let (base, mut heads) = serve(|_, _| {
            let mut body = sse_head();
            body.push_str("event: stream.ended\ndata: {\"last_seq\":2}\n\n");
            Answer { bytes: body.into_bytes(), keep_open: false }
        })
        .await;
        let mut stream = Client::new(base).session_events("ses_1", Some(2));
        assert!(next(&mut stream).await.is_none());
        heads.recv().await.unwrap();
        assert!(heads.try_recv().is_err(), "no reconnection after stream.ended");

        // The global stream goes on past one session's end.
        let (base, _heads) = serve(|n, _| {
            let mut body = sse_head();
            if n == 0 {
                body.push_str(&format!("id: 1\nevent: session.ended\ndata: {}\n\n", ended_json(1)));
            } else {
                body.push_str(&frame(2, &event_json(2, 2)));
            }
            Answer { bytes: body.into_bytes(), keep_open: n > 0 }
        })
        .await;
        let mut stream = Client::new(base).all_events(None);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().gseq, 1);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().gseq, 2);
    }

    #[tokio::test]
    async fn idle_connection_is_replaced() {
        let (base, mut heads) = serve(|n, _| {
            let mut body = sse_head();
            body.push_str(&frame(n as u64 + 1, &event_json(n as u64 + 1, 1)));
            Answer { bytes: body.into_bytes(), keep_open: true }
        })
        .await;
        let mut stream =
            Client::new(base).session_events("ses_1", None).with_idle_timeout(Some(Duration::from_millis(200)));
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 1);
        assert_eq!(next(&mut stream).await.unwrap().unwrap().seq, 2);
        heads.recv().await.unwrap();
        let second = heads.recv().await.unwrap();
        assert_eq!(header(&second, "last-event-id"), Some("1"));
    }
}
