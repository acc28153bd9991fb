//! The accept loop in front of the API: how many connections the server
//! holds, how long a client may take to send its request, and what a client
//! that stops reading may cost.
//!
//! - A connection cap (`--max-connections`). Past it a connection is still
//!   accepted and answered at once with the API's `503 too_many_connections`
//!   and `Retry-After` (the answer is handed in to [`serve`], so this module
//!   builds no problem of its own; `GET /v1/health` is answered as usual, so a supervisor
//!   does not restart a busy server); past that small overflow too, it is
//!   closed at once. The accept loop never waits for a slot.
//! - A header read timeout (`--header-read-timeout-secs`): a client that has
//!   not sent a whole request head in that time (slowloris, or an idle
//!   keep-alive connection) is closed.
//! - A body read timeout (`--body-read-timeout-secs`): a request body that
//!   sends nothing for that long fails; the routes answer `408
//!   request_timeout` ([`crate::http::body_read_error`]) and the connection
//!   closes.
//! - A send timeout (`--send-timeout-secs`): a client that takes none of the
//!   bytes waiting for it for that long is disconnected. Together with the
//!   bounded buffers below (HTTP: [`WRITE_BUFFER`], kernel: [`UNSENT_LOWAT`])
//!   and the event pump's own ([`crate::http`] events), a client that does
//!   not read costs a small fixed amount and then nothing.
//!
//! Every request carries the client's address ([`ClientAddr`]), which the
//! per-client stream cap counts by. This module must not know routes beyond
//! the health check it keeps answering.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower::ServiceExt;

/// The most the HTTP layer buffers per connection, in each direction: the
/// request head must fit (as nginx's default, 32 KiB), and a response body
/// waits here for the socket (one more chunk may pass it).
pub const WRITE_BUFFER: usize = 32 * 1024;
/// Bytes the kernel keeps queued unsent per connection before the socket
/// stops taking more (`TCP_NOTSENT_LOWAT`; bytes in flight are not counted,
/// so a client that reads keeps its full speed).
pub const UNSENT_LOWAT: u32 = 16 * 1024;
/// Connections past the cap answered `503` at once (beyond them, closed).
const OVERFLOW: usize = 64;
/// How long a connection past the cap may take to send its request head.
const OVERFLOW_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Descriptors kept out of the default connection cap: the store, agents'
/// PTYs and pipes, MCP servers, file watches.
const RESERVED_FDS: u64 = 256;
/// The default cap's ceiling, however many descriptors the system allows.
const DEFAULT_MAX_CONNECTIONS: u64 = 4096;

/// What a connection may cost and how long it may stall.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once (`--max-connections`).
    pub max_connections: usize,
    /// Longest wait for a whole request head (`--header-read-timeout-secs`).
    pub header_read_timeout: Duration,
    /// Longest pause inside a request body (`--body-read-timeout-secs`).
    pub body_read_timeout: Duration,
    /// Longest a client may take none of the bytes waiting for it (`--send-timeout-secs`).
    pub send_timeout: Duration,
}

pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

impl Limits {
    /// The default connection cap for a soft limit of `open_files`
    /// descriptors: what is left after [`RESERVED_FDS`] (at most half of
    /// them), and no more than 4096.
    pub fn default_max_connections(open_files: u64) -> usize {
        let reserve = RESERVED_FDS.min(open_files / 2);
        open_files.saturating_sub(reserve).clamp(1, DEFAULT_MAX_CONNECTIONS) as usize
    }
}

/// The address of the client a request came from.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Accepts connections until `stop` flips, then lets the open ones finish
/// (answered requests end, idle connections close). A connection past the
/// cap is answered `refusal()` (the API's `503 too_many_connections`).
pub async fn serve(
    listener: TcpListener,
    front: Router,
    limits: Limits,
    refusal: fn() -> Response,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(OVERFLOW));
    let mut last_warning: Option<Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e, &mut last_warning).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        tune(&tcp);
        let (permit, refuse) = match slots.clone().try_acquire_owned() {
            Ok(permit) => (permit, false),
            Err(_) => match overflow.clone().try_acquire_owned() {
                Ok(permit) => (permit, true),
                Err(_) => {
                    tracing::debug!(%peer, "past the connection cap and its overflow: closed at once");
                    continue;
                }
            },
        };
        let refuse = refuse.then_some(refusal);
        tokio::spawn(connection(tcp, peer, front.clone(), limits, refuse, permit, stop.clone()));
    }
    // Every slot back means every connection is over.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// Resolves once `stop` flips (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Errors of `accept`: a connection the client gave up on is skipped; out of
/// descriptors (or memory), the loop pauses briefly rather than spinning,
/// and says so at most once a minute.
async fn accept_failed(e: io::Error, last_warning: &mut Option<Instant>) {
    use io::ErrorKind::*;
    if matches!(e.kind(), ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted) {
        return;
    }
    if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
        tracing::warn!(error = %e, "cannot accept connections (out of file descriptors?); retrying");
        *last_warning = Some(Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Socket options of an accepted connection: the kernel keeps little unsent.
fn tune(tcp: &TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(UNSENT_LOWAT) {
        tracing::debug!(error = %e, "cannot set TCP_NOTSENT_LOWAT");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = tcp;
}

/// Serves one connection (HTTP/1.1, upgrades to WebSocket allowed). A
/// connection past the cap (`refuse`) is answered with it (a 503) but for
/// the health check, then closed.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    front: Router,
    limits: Limits,
    refuse: Option<fn() -> Response>,
    permit: OwnedSemaphorePermit,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Guarded { tcp, send_timeout: limits.send_timeout, stalled: None, _slot: permit });
    let body_timeout = limits.body_read_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let front = front.clone();
        async move {
            let mut req: Request = req.map(|b| Body::new(tower_http::timeout::TimeoutBody::new(body_timeout, b)));
            req.extensions_mut().insert(ClientAddr(peer));
            if let Some(refusal) = refuse.filter(|_| req.uri().path() != "/v1/health") {
                let mut resp = refusal();
                resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                return Ok(resp);
            }
            front.oneshot(req).await
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(if refuse.is_some() {
            OVERFLOW_HEADER_TIMEOUT.min(limits.header_read_timeout)
        } else {
            limits.header_read_timeout
        })
        .max_buf_size(WRITE_BUFFER)
        .keep_alive(refuse.is_none());
    let conn = http.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);
    let stopping = tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            false
        }
        _ = stopped(&mut stop) => true,
    };
    if stopping {
        conn.as_mut().graceful_shutdown();
        let _ = conn.await;
    }
}

/// A connection's socket, holding its slot under the cap for as long as it
/// lives (upgraded WebSockets included), whose writes fail once the client
/// has taken nothing for `send_timeout` while bytes wait for it.
struct Guarded {
    tcp: TcpStream,
    send_timeout: Duration,
    /// Running while a write waits for the client.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
    _slot: OwnedSemaphorePermit,
}

impl Guarded {
    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match op(Pin::new(&mut self.tcp), cx) {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.send_timeout;
                let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match stalled.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client took nothing for {} s (--send-timeout-secs)", timeout.as_secs()),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |tcp, cx| tcp.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().guard(cx, |tcp, cx| tcp.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |tcp, cx| tcp.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().guard(cx, |tcp, cx| tcp.poll_shutdown(cx))
    }
}

/// The host part of a URL a client on this machine uses to reach a server
/// listening on `host` (loopback for the unspecified addresses).
pub fn local_host(host: std::net::IpAddr) -> String {
    use std::net::IpAddr;
    match host {
        IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(a) if a.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(a) => format!("[{a}]"),
        IpAddr::V4(a) => a.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cap_leaves_descriptors_for_the_rest() {
        assert_eq!(Limits::default_max_connections(1_048_576), 4096);
        assert_eq!(Limits::default_max_connections(1024), 768);
        assert_eq!(Limits::default_max_connections(256), 128);
        assert_eq!(Limits::default_max_connections(0), 1);
    }
}
