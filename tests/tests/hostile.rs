//! Hostile clients (issue 23, finding 4): slowloris connections, clients
//! that open event streams and never read, and the caps that answer a
//! clear 503 past them.

use std::net::SocketAddr;
use std::time::Duration;

use tether_e2e::http::{expect_problem, RawSse};
use tether_e2e::procs::raise_open_files_limit;
use tether_e2e::ws::RawWs;
use tether_e2e::*;
use tether_sdk::reqwest::{self, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;

fn options(args: &[&str]) -> ServerOptions {
    ServerOptions { extra_args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() }
}

fn addr(server: &TestServer) -> SocketAddr {
    server.url.trim_start_matches("http://").parse().expect("the server's address")
}

/// A connection whose receive buffer is small (4 KiB asked), as a client
/// that does not read would leave it full.
async fn small_buffer_connection(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket.connect(addr).await.expect("connect")
}

/// `tether_sse_clients` of `/metrics`: the event streams the server has open.
async fn open_streams(server: &TestServer) -> u64 {
    let text = reqwest::get(server.endpoint("/metrics")).await.expect("GET /metrics").text().await.expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix("tether_sse_clients "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no tether_sse_clients in /metrics:\n{text}"))
}

/// Polls `open_streams` every 50 ms until `done` holds; panics after `timeout`.
async fn wait_open_streams(server: &TestServer, timeout: Duration, done: impl Fn(u64) -> bool) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        let n = open_streams(server).await;
        if done(n) {
            return n;
        }
        assert!(Instant::now() < deadline, "the server still has {n} event streams open after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_under_a_256_soft_fd_limit_do_not_stop_health() {
    const SLOW: usize = 300;
    const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
    raise_open_files_limit();
    let server = TestServer::start_with(ServerOptions {
        soft_open_files: Some(256),
        ..options(&["--header-read-timeout-secs", "2"])
    })
    .await;
    let (soft, hard) = server.open_files_limits();
    assert!(hard > SLOW as u64 + 100, "this test needs a hard limit of open files above {}: {hard}", SLOW + 100);
    assert_eq!(soft, hard, "the server did not raise its soft limit of open files (started at 256)");

    // 300 clients that send part of a request head and then trickle one
    // header line every 250 ms, never finishing it.
    let addr = addr(&server);
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n").await.expect("a partial head");
        slow.push((tcp, Instant::now()));
    }

    // Everyone else is still served, at once.
    let asked = Instant::now();
    let health = reqwest::Client::new().get(server.endpoint("/v1/health")).timeout(Duration::from_secs(5)).send();
    let resp = health.await.expect("health answered while 300 slowloris connections were open");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(asked.elapsed() < Duration::from_secs(2), "health took {:?}", asked.elapsed());

    // The header read timeout closes every slow connection, trickling or not.
    let deadline = Instant::now() + Duration::from_secs(20);
    let watchers: Vec<_> = slow
        .into_iter()
        .map(|(mut tcp, opened)| {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                loop {
                    tokio::select! {
                        n = tcp.read(&mut buf) => match n {
                            Ok(0) | Err(_) => return Some(opened.elapsed()),
                            Ok(_) => {}
                        },
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {
                            if tcp.write_all(b"X-Slow: 1\r\n").await.is_err() {
                                return Some(opened.elapsed());
                            }
                        }
                        _ = tokio::time::sleep_until(deadline) => return None,
                    }
                }
            })
        })
        .collect();
    for (i, w) in watchers.into_iter().enumerate() {
        let open_for = w.await.unwrap().unwrap_or_else(|| panic!("slow connection {i} was still open after 20 s"));
        assert!(
            open_for >= HEADER_TIMEOUT - Duration::from_millis(300),
            "slow connection {i} was closed after {open_for:?}, before the header timeout"
        );
    }
    let resp = reqwest::get(server.endpoint("/v1/health")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

/// A client that opens an event stream and never reads a byte of it: SSE
/// or WebSocket, of the session or of every session, by `i`.
async fn non_reader(addr: SocketAddr, session: &str, i: usize) -> TcpStream {
    let path = match i % 4 {
        0 => format!("/v1/sessions/{session}/events/stream"),
        1 => "/v1/events/stream".to_string(),
        2 => format!("/v1/sessions/{session}/events/ws"),
        _ => "/v1/events/ws".to_string(),
    };
    let upgrade = if path.ends_with("/ws") {
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    let mut tcp = small_buffer_connection(addr).await;
    let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}\r\n");
    tcp.write_all(head.as_bytes()).await.expect("send the request");
    tcp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_reading_stream_clients_during_a_flood_keep_memory_bounded() {
    const CLIENTS: usize = 300;
    const FLOOD: u64 = 100_000;
    // The bounds, over the server's RSS before the clients came: during the
    // flood (300 stalled clients at ~140 KiB each, plus what the flood
    // itself costs the server, ~20 MiB), and after they are gone.
    const DURING_MIB: u64 = 96;
    const AFTER_MIB: u64 = 32;
    raise_open_files_limit();
    let server =
        TestServer::start_with(options(&["--max-streams-per-client", "400", "--send-timeout-secs", "3"])).await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    let baseline = server.rss_kib();

    let addr = addr(&server);
    let mut idle = Vec::new();
    for i in 0..CLIENTS {
        idle.push(non_reader(addr, id, i).await);
    }
    // The reader that pauses: it reads the start of the flood, then nothing
    // until the server has dropped it.
    let path = format!("/v1/sessions/{id}/events/stream");
    let mut paused = RawSse::connect(client.request(Method::GET, &path)).await;
    wait_open_streams(&server, Duration::from_secs(20), |n| n > CLIENTS as u64).await;

    // Sample the server's RSS until the stalled clients are dropped.
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let pid = server.pid;
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        while !*stop_rx.borrow() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or("0 kB");
            peak = peak.max(rss.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap_or(0));
            let _ = tokio::time::timeout(Duration::from_millis(20), stop_rx.changed()).await;
        }
        peak
    });
    client.send_text(id, format!("[mock:flood:{FLOOD}]")).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 1000 {
        let frame = paused.next_frame(Duration::from_secs(30)).await.expect("the paused reader's stream ended");
        seen.push(frame.seq());
    }
    // Every stalled client, the paused reader among them, is dropped after
    // --send-timeout-secs of taking nothing.
    wait_open_streams(&server, Duration::from_secs(60), |n| n == 0).await;
    let _ = stop_tx.send(true);
    let peak = sampler.await.unwrap();
    eprintln!(
        "RSS: {} MiB before, {} MiB at the peak with {CLIENTS} stalled clients during a flood of {FLOOD} events",
        baseline / 1024,
        peak / 1024
    );
    assert!(
        peak < baseline + DURING_MIB * 1024,
        "RSS peaked at {} MiB with {CLIENTS} non-reading clients (before: {} MiB; bound: +{DURING_MIB} MiB)",
        peak / 1024,
        baseline / 1024
    );

    // The paused reader reads what reached it before the cut, then resumes
    // after its last event: no gap, no duplicate, to the end of the turn.
    while let Some(frame) = paused.next_frame_or_cut(Duration::from_secs(30)).await {
        seen.push(frame.seq());
    }
    let cut = *seen.last().unwrap();
    assert!(cut < FLOOD, "the paused reader was not dropped before the end of the flood (last seq {cut})");
    let mut resumed =
        RawSse::connect(client.request(Method::GET, &path).header("Last-Event-ID", cut.to_string())).await;
    let rest = resumed.read_until(Duration::from_secs(120), |f| f.seq(), |f| f.event_type() == "turn.completed").await;
    seen.extend(rest.iter().map(|f| f.seq()));
    for (i, seq) in seen.iter().enumerate() {
        assert_eq!(*seq, i as u64 + 1, "a gap or a duplicate across the drop (cut after {cut})");
    }
    drop(resumed);

    // Memory comes back once they are gone.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let rss = server.rss_kib();
        if rss < baseline + AFTER_MIB * 1024 || Instant::now() > deadline {
            break rss;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("RSS: {} MiB after the clients left", after / 1024);
    assert!(
        after < baseline + AFTER_MIB * 1024,
        "RSS stayed at {} MiB after the clients left (before: {} MiB; bound: +{AFTER_MIB} MiB)",
        after / 1024,
        baseline / 1024
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_and_stream_caps_clients_get_503_with_retry_after() {
    let server = TestServer::start_with(options(&["--max-connections", "3", "--max-streams-per-client", "2"])).await;
    let stream = |client: &reqwest::Client, path: &str| client.get(server.endpoint(path)).send();
    // Each client its own connection.
    let (a, b, c) = (reqwest::Client::new(), reqwest::Client::new(), reqwest::Client::new());
    let first = stream(&a, "/v1/events/stream").await.unwrap();
    let mut second = stream(&b, "/v1/events/stream").await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    assert!(second.chunk().await.unwrap().is_some(), "the second stream sent nothing");

    // A third stream of the same address: 503 too_many_streams, with Retry-After.
    let refused = stream(&c, "/v1/events/stream").await.unwrap();
    assert_eq!(refused.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("5"));
    expect_problem(refused, 503, "too_many_streams", &["--max-streams-per-client"]).await;

    // Three connections held (two streams, and `c` kept alive): a fourth is
    // answered 503 too_many_connections at once, with Retry-After; health
    // still answers past the cap.
    let fourth = reqwest::Client::new().get(server.endpoint("/v1/sessions")).timeout(Duration::from_secs(5));
    let refused = fourth.send().await.expect("a connection past the cap is answered");
    assert_eq!(refused.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("2"));
    expect_problem(refused, 503, "too_many_connections", &["--max-connections"]).await;
    let health = reqwest::Client::new().get(server.endpoint("/v1/health")).timeout(Duration::from_secs(5));
    assert_eq!(health.send().await.expect("health past the cap").status().as_u16(), 200);

    // A stream that ends frees its slot (and its connection): the same address opens one again.
    drop(first);
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    let _third = loop {
        let resp = stream(&c, "/v1/events/stream").await.unwrap();
        if resp.status().as_u16() == 200 {
            break resp;
        }
        assert_eq!(resp.status().as_u16(), 503);
        let _ = resp.text().await;
        assert!(Instant::now() < deadline, "the slot of a closed stream was not freed within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The cap counts WebSocket streams too (a connection is free again: `a`'s).
    let ws = RawWs::connect_with(&server, "/v1/events/ws", &[]).await.expect_err("a third stream was opened");
    assert_eq!(ws.status, 503, "{}", ws.body);
    assert!(ws.body.contains("urn:tether:error:too_many_streams"), "{}", ws.body);
}

/// Sends `head` and part of a body on a raw connection, then nothing; the
/// answer the server gives (read to the end of the connection).
async fn stalled_upload(addr: SocketAddr, head: &str, part: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(part).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), tcp.read_to_end(&mut answer))
        .await
        .expect("the server neither answered nor closed a stalled upload within 15 s")
        .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stalls_is_answered_408_and_the_connection_closed() {
    let server = TestServer::start_with(options(&["--body-read-timeout-secs", "1"])).await;
    let addr = addr(&server);
    let uploads = [
        ("PUT /v1/fs/file?path=stalled.txt", "application/octet-stream", &b"0123456789"[..]),
        ("POST /v1/sessions", "application/json", &br#"{"agent":"#[..]),
    ];
    for (request, content_type, part) in uploads {
        let head = format!(
            "{request} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: 100\r\n\r\n"
        );
        let started = Instant::now();
        let answer = stalled_upload(addr, &head, part).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{request}: {answer}");
        assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{request}: {answer}");
        assert!(answer.contains("urn:tether:error:request_timeout"), "{request}: {answer}");
        assert!(started.elapsed() >= Duration::from_millis(900), "{request}: answered before the body timeout");
    }
    let file = server.workspace().join("stalled.txt");
    assert!(!file.exists(), "the stalled upload left {}", file.display());
}
