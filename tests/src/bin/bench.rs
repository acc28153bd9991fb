//! `cargo run --release -p tether-e2e --bin bench [-- --events N --replay-events N
//! --events-only --charts DIR|none --json]`: measures the
//! real binary end to end with the mock agent and prints a table (also as JSON
//! with `--json`). Figures: start-to-healthy time, idle RSS, events/s from the
//! agent to 1, 10, 25, 50 and 100 SSE clients of one session with
//! persistence (every client checked to receive every stored event; the
//! fan-out drawn in docs/bench-fan-out.svg), write-to-receipt latency, replay
//! rate of a finished 1M-event session, peak RSS, the server's RSS with 300
//! event-stream clients that never read during a flood, files, terminals and
//! ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::json;
use tether_e2e::benchkit::{percentile, read_turn, status_kib as rss_kib, stored_seqs, PeakRss};
use tether_e2e::charts::{line_chart, Chart};
use tether_e2e::{mock_session, tether_bin, TestServer};
use tether_sdk::{Delta, EventBody};

/// Every measurement must finish within this.
const DEADLINE: Duration = Duration::from_secs(300);

/// Spawn → `GET /v1/health` answers 200, on a fresh data dir; the median of
/// `runs`, and the idle server's RSS and the anonymous part of it (KiB).
async fn start_to_healthy(runs: usize) -> (f64, (u64, u64)) {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    let mut idle_rss = (0, 0);
    for _ in 0..runs {
        let data = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut child = Command::new(tether_bin())
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(data.path())
            .arg("--workspace")
            .arg(data.path())
            .env("TETHER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().rsplit(' ').next().unwrap().to_string();
        loop {
            if let Ok(r) = http.get(format!("{url}/v1/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(10), "server never became healthy");
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
        idle_rss = (rss_kib(child.id(), "VmRSS:"), rss_kib(child.id(), "RssAnon:"));
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), idle_rss)
}

/// A flood turn of `events` deltas read by `clients` SSE clients at once:
/// (events each client received, seconds to the last `turn.completed`, the
/// server's peak RSS meanwhile in KiB). Every client received every event
/// (checked by [`read_turn`]), and they are the stored ones.
async fn flood(server: &TestServer, events: usize, clients: usize) -> (u64, f64, u64) {
    let client = server.client();
    let session = mock_session(&client).await.id;
    let after = client.get_session(&session).await.unwrap().last_seq;
    let readers: Vec<_> =
        (0..clients).map(|_| tokio::spawn(read_turn(server.url.clone(), session.clone(), after))).collect();
    // Let every reader connect before the agent starts (they read from `after`, so none can miss events).
    tokio::time::sleep(Duration::from_millis(300 + 10 * clients as u64)).await;
    let sampler = PeakRss::start(server.pid);
    let t0 = Instant::now();
    client.send_text(&session, format!("[mock:flood:{events}]")).await.unwrap();
    let results: Vec<(u64, Instant)> =
        futures_util::future::join_all(readers).await.into_iter().map(|r| r.unwrap()).collect();
    let peak = sampler.stop().await;
    let last = results[0].0;
    assert!(results.iter().all(|r| r.0 == last), "clients stopped at different events");
    // What they received is what was stored: the same seqs, in the same order.
    assert!(stored_seqs(&client, &session).await >= last, "the clients received seqs past the stored ones");
    let secs = results.iter().map(|r| r.1.duration_since(t0).as_secs_f64()).fold(0.0, f64::max);
    (last - after, secs, peak)
}

/// The one-client flood (median of 3) on a server exporting to an OTLP
/// collector: none configured, one that works, one that is down (refuses
/// connections), one that answers each request after 5 s. Events per second.
async fn flood_with_export(events: usize) -> [f64; 4] {
    use tether_e2e::otlp::{refusing_url, Collector};
    let working = Collector::start().await;
    let slow = Collector::slow(Duration::from_secs(5)).await;
    let down = refusing_url().await;
    let mut out = [0.0; 4];
    for (i, url) in [None, Some(working.url.clone()), Some(down), Some(slow.url.clone())].into_iter().enumerate() {
        let env = url.map(|u| vec![("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), u)]).unwrap_or_default();
        let server = TestServer::start_with(tether_e2e::ServerOptions { env, ..Default::default() }).await;
        let mut rates = Vec::new();
        for _ in 0..3 {
            let (n, secs, _) = flood(&server, events, 1).await;
            rates.push(n as f64 / secs);
        }
        rates.sort_by(f64::total_cmp);
        out[i] = rates[1];
    }
    out
}

/// `[mock:timed:N]`: each delta carries the agent's clock at its write.
async fn latency(server: &TestServer, n: usize) -> (f64, f64, f64) {
    let client = server.client();
    let session = mock_session(&client).await.id;
    let after = client.get_session(&session).await.unwrap().last_seq;
    // Connect first: the stream starts one event back, so its first event proves it is live.
    let mut stream = client.session_events(&session, Some(after - 1));
    tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap();
    client.send_text(&session, format!("[mock:timed:{n}]")).await.unwrap();
    let mut lat = Vec::new();
    while let Some(ev) = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap() {
        let ev = ev.unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as f64;
        match ev.body {
            EventBody::ItemDelta(d) => {
                if let Delta::Text(t) = d.delta {
                    if let Some(us) = t.trim().strip_prefix('t').and_then(|s| s.parse::<f64>().ok()) {
                        lat.push((now - us) / 1000.0);
                    }
                }
            }
            EventBody::TurnCompleted(_) => break,
            _ => {}
        }
    }
    lat.sort_by(f64::total_cmp);
    (percentile(&lat, 0.5), percentile(&lat, 0.99), lat.len() as f64)
}

/// Replays a finished session of `events` deltas from seq 0 through one SSE client.
async fn replay(server: &TestServer, events: usize) -> (u64, f64) {
    let client = server.client();
    let session = mock_session(&client).await.id;
    let (n, _) = {
        let reader = tokio::spawn(read_turn(server.url.clone(), session.clone(), 0));
        client.send_text(&session, format!("[mock:flood:{events}]")).await.unwrap();
        reader.await.unwrap()
    };
    let t0 = Instant::now();
    let (got, _) = read_turn(server.url.clone(), session.clone(), 0).await;
    assert_eq!(got, n);
    (got, t0.elapsed().as_secs_f64())
}

/// A 1 GiB file streamed in and out through the fs API: (write MiB/s, read MiB/s, server peak RSS KiB).
async fn fs_large(server: &TestServer) -> (f64, f64, u64) {
    const SIZE: usize = 1 << 30;
    const CHUNK: usize = 1 << 20;
    let client = server.client();
    let chunks =
        futures_util::stream::iter((0..SIZE / CHUNK).map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK])));
    let t0 = Instant::now();
    client.fs_write_stream("big.bin", chunks).await.unwrap();
    let write = SIZE as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut stream = Box::pin(client.fs_read_stream("big.bin").await.unwrap());
    let mut got = 0usize;
    while let Some(chunk) = stream.next().await {
        got += chunk.unwrap().len();
    }
    assert_eq!(got, SIZE);
    let read = SIZE as f64 / (1 << 20) as f64 / t0.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(server.workspace().join("big.bin"));
    (write, read, rss_kib(server.pid, "VmHWM:"))
}

/// Server RSS (KiB) before, at the peak and after `clients` event-stream
/// clients that never read (SSE and WebSocket, 4 KiB receive buffers) sit
/// through a flood of `events`; a fresh server that drops a client taking
/// nothing for 3 s.
async fn stalled_clients(events: usize, clients: usize) -> (u64, u64, u64) {
    use tokio::io::AsyncWriteExt;
    tether_e2e::procs::raise_open_files_limit();
    let server = TestServer::start_with(tether_e2e::ServerOptions {
        extra_args: ["--max-streams-per-client", "1000", "--send-timeout-secs", "3"].map(String::from).to_vec(),
        ..Default::default()
    })
    .await;
    let client = server.client();
    let session = mock_session(&client).await.id;
    let before = rss_kib(server.pid, "VmRSS:");
    let addr: std::net::SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let mut idle = Vec::new();
    for i in 0..clients {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(addr).await.unwrap();
        let head = if i % 2 == 0 {
            format!("GET /v1/sessions/{session}/events/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n")
        } else {
            format!(
                "GET /v1/sessions/{session}/events/ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
            )
        };
        tcp.write_all(head.as_bytes()).await.unwrap();
        idle.push(tcp);
    }
    let sampler = PeakRss::start(server.pid);
    let after_seq = client.get_session(&session).await.unwrap().last_seq;
    let reader = tokio::spawn(read_turn(server.url.clone(), session.clone(), after_seq));
    client.send_text(&session, format!("[mock:flood:{events}]")).await.unwrap();
    reader.await.unwrap();
    // Past the send timeout every stalled client has been dropped.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let peak = sampler.stop().await;
    drop(idle);
    // Free memory is handed back about a second after the streams close.
    tokio::time::sleep(Duration::from_secs(3)).await;
    (before, peak, rss_kib(server.pid, "VmRSS:"))
}

/// A process writing `bytes` through its PTY to one attached terminal
/// client: (bytes received, bytes skipped as missed, seconds from attach to exit).
async fn terminal_throughput(server: &TestServer, bytes: u64) -> (u64, u64, f64) {
    use tether_e2e::term_ws::{TermItem, TermWs};
    use tether_protocol::TerminalControl;
    let client = server.client();
    // Started held (it waits for a line), so the client attaches before any output.
    let script = format!("read go; head -c {bytes} /dev/zero | tr '\\0' x");
    let p: serde_json::Value = client
        .request(tether_sdk::reqwest::Method::POST, "/v1/processes")
        .json(&json!({"command": "sh", "args": ["-c", script]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = p["id"].as_str().unwrap().to_string();
    let mut t = TermWs::connect(server, &format!("/v1/processes/{id}/terminal")).await;
    t.attached(DEADLINE).await;
    t.send_bytes(b"go\n").await;
    let start = Instant::now();
    let (mut got, mut missed) = (0u64, 0u64);
    loop {
        match t.next(DEADLINE).await {
            TermItem::Bytes(b) => got += b.len() as u64,
            TermItem::Control(TerminalControl::Missed { from, to }) => missed += to - from,
            TermItem::Control(TerminalControl::Exit { .. }) | TermItem::Close(_) | TermItem::End => break,
            TermItem::Control(_) => {}
        }
    }
    (got, missed, start.elapsed().as_secs_f64())
}

/// Attaching to a process with 1 MiB of history: the time to the `attached`
/// message and to the whole history, median and p99 of `n`.
async fn terminal_attach(server: &TestServer, n: usize) -> (f64, f64, f64) {
    use tether_e2e::term_ws::{TermItem, TermWs};
    let client = server.client();
    let p: serde_json::Value = client
        .request(tether_sdk::reqwest::Method::POST, "/v1/processes")
        .json(&json!({"command": "sh", "args": ["-c", "head -c 1048576 /dev/zero | tr '\\0' y; sleep 600"], "tty": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = p["id"].as_str().unwrap().to_string();
    let path = format!("/v1/processes/{id}/output?after=1048575");
    let deadline = Instant::now() + DEADLINE;
    while client
        .request(tether_sdk::reqwest::Method::GET, &path)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["end"]
        != 1048576
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut to_attached, mut to_history) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let begun = Instant::now();
        let mut t = TermWs::connect(server, &format!("/v1/processes/{id}/terminal")).await;
        t.attached(DEADLINE).await;
        to_attached.push(begun.elapsed().as_secs_f64() * 1000.0);
        let mut got = 0;
        while got < 1048576 {
            if let TermItem::Bytes(b) = t.next(DEADLINE).await {
                got += b.len();
            }
        }
        to_history.push(begun.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = client.request(tether_sdk::reqwest::Method::DELETE, &format!("/v1/processes/{id}")).send().await;
    to_attached.sort_by(f64::total_cmp);
    to_history.sort_by(f64::total_cmp);
    (percentile(&to_attached, 0.5), percentile(&to_history, 0.5), percentile(&to_history, 0.99))
}

/// A socket starts listening: the time until `port.opened` reaches a client
/// of the global stream (the server polls `/proc/net/tcp` every 250 ms, its
/// default). Each socket opens at a different point of the poll interval
/// (0, 13, 26, … ms after the last announcement), as real servers do.
/// Median and p99 of `n`.
async fn port_detection(n: usize) -> (f64, f64) {
    let server =
        TestServer::start_with(tether_e2e::ServerOptions { ports_poll_ms: Some(250), ..Default::default() }).await;
    let client = server.client();
    let mut stream = client.all_events(None);
    let mut took = Vec::new();
    for i in 0..n {
        tokio::time::sleep(Duration::from_millis((i as u64 * 13) % 250)).await;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let begun = Instant::now();
        loop {
            let e = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap();
            if matches!(&e.body, EventBody::PortOpened(p) if p.port == port) {
                break;
            }
        }
        took.push(begun.elapsed().as_secs_f64() * 1000.0);
        drop(listener);
        loop {
            let e = tokio::time::timeout(DEADLINE, stream.next()).await.unwrap().unwrap().unwrap();
            if matches!(&e.body, EventBody::PortClosed(p) if p.port == port) {
                break;
            }
        }
    }
    took.sort_by(f64::total_cmp);
    (percentile(&took, 0.5), percentile(&took, 0.99))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: usize = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let replay_events: usize = args
        .iter()
        .position(|a| a == "--replay-events")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let as_json = args.iter().any(|a| a == "--json");
    // Where the fan-out chart goes (`--charts none`: not drawn).
    let charts = match args.iter().position(|a| a == "--charts").and_then(|i| args.get(i + 1)) {
        Some(dir) if dir == "none" => None,
        Some(dir) => Some(std::path::PathBuf::from(dir)),
        None => Some(tether_e2e::workspace_root().join("docs")),
    };
    // Only the event rows (start, idle RSS, floods, latency, replay): for working on the event path.
    let events_only = args.iter().any(|a| a == "--events-only");
    eprintln!("building and measuring {} ...", tether_bin().display());

    let (healthy_ms, idle_rss) = start_to_healthy(15).await;
    let (fs_write, fs_read, fs_peak) = if events_only {
        (0.0, 0.0, 0)
    } else {
        let fresh = TestServer::start().await;
        fs_large(&fresh).await
    };
    let server = TestServer::start().await;

    let (n1, s1, _) = flood(&server, events, 1).await;
    let (n10, s10, _) = flood(&server, events, 10).await;
    // Fan-out: every client of one busy session receives every event.
    let mut fan_out = Vec::new();
    for clients in [25, 50, 100] {
        let (n, secs, peak) = flood(&server, events, clients).await;
        fan_out.push((clients, n, secs, peak));
    }
    let (n100, s100, peak100) = fan_out.last().map(|f| (f.1, f.2, f.3)).unwrap();
    if let Some(docs) = &charts {
        let mut points = vec![(1.0, n1 as f64 / s1), (10.0, 10.0 * n10 as f64 / s10)];
        points.extend(fan_out.iter().map(|f| (f.0 as f64, f.0 as f64 * f.1 as f64 / f.2)));
        let per_client: Vec<_> = points.iter().map(|&(c, d)| (c, d / c)).collect();
        let title = format!("[mock:flood:{events}] to N SSE clients of one session");
        line_chart(
            &docs.join("bench-fan-out.svg"),
            Chart::new(&title, "SSE clients", "events/s").log_x().log_y(),
            &[("deliveries/s, all clients", points), ("events/s, each client", per_client)],
        )
        .unwrap();
    }
    let (p50, p99, samples) = latency(&server, 2000).await;
    let (nr, sr) = replay(&server, replay_events).await;
    let peak = rss_kib(server.pid, "VmHWM:");
    let after = rss_kib(server.pid, "VmRSS:");
    let otel = flood_with_export(events).await;
    if !as_json || events_only {
        print_event_rows(
            events,
            healthy_ms,
            idle_rss,
            (n1, s1),
            (n10, s10),
            (n100, s100, peak100),
            (p50, p99),
            (nr, sr),
            (peak, after),
        );
        println!(
            "| `[mock:flood:{events}]` → 1 SSE client (median of 3) with OpenTelemetry export: none / to a collector / to one that is down / to one that takes 5 s per request | {:.0} / {:.0} / {:.0} / {:.0} events/s |",
            otel[0], otel[1], otel[2], otel[3]
        );
    }
    if events_only {
        return;
    }
    let (stalled_before, stalled_peak, stalled_after) = stalled_clients(events, 300).await;
    let (term_got, term_missed, term_s) = terminal_throughput(&server, 256 << 20).await;
    let (attach_ms, history_ms, history_p99) = terminal_attach(&server, 50).await;
    let (port_p50, port_p99) = port_detection(20).await;

    let report = json!({
        "events": events,
        "start_to_healthy_ms_median": healthy_ms,
        "idle_rss_mib": idle_rss.0 as f64 / 1024.0,
        "idle_rss_anon_mib": idle_rss.1 as f64 / 1024.0,
        "one_client_events_per_s": n1 as f64 / s1,
        "ten_clients_events_per_s_each": n10 as f64 / s10,
        "ten_clients_deliveries_per_s": 10.0 * n10 as f64 / s10,
        "hundred_clients_deliveries_per_s": 100.0 * n100 as f64 / s100,
        "hundred_clients_peak_rss_mib": peak100 as f64 / 1024.0,
        "fan_out": fan_out.iter().map(|f| json!({"clients": f.0, "deliveries_per_s": f.0 as f64 * f.1 as f64 / f.2, "peak_rss_mib": f.3 as f64 / 1024.0})).collect::<Vec<_>>(),
        "latency_ms_p50": p50,
        "latency_ms_p99": p99,
        "latency_samples": samples,
        "replay_events_per_s": nr as f64 / sr,
        "peak_rss_mib": peak as f64 / 1024.0,
        "rss_after_mib": after as f64 / 1024.0,
        "fs_1gib_write_mib_per_s": fs_write,
        "fs_1gib_read_mib_per_s": fs_read,
        "fs_1gib_peak_rss_mib": fs_peak as f64 / 1024.0,
        "terminal_mib_per_s": term_got as f64 / term_s / 1048576.0,
        "terminal_missed_bytes": term_missed,
        "terminal_attach_ms_p50": attach_ms,
        "terminal_attach_1mib_history_ms_p50": history_ms,
        "terminal_attach_1mib_history_ms_p99": history_p99,
        "port_detection_ms_p50": port_p50,
        "port_detection_ms_p99": port_p99,
        "flood_events_per_s_otel_none_working_down_slow": otel,
        "stalled_300_rss_mib": [stalled_before as f64 / 1024.0, stalled_peak as f64 / 1024.0, stalled_after as f64 / 1024.0],
    });
    if as_json {
        println!("{report:#}");
        return;
    }
    println!(
        "| 1 GiB file through `PUT` / `GET /v1/fs/file` (streamed) | write {fs_write:.0} MiB/s, read {fs_read:.0} MiB/s, server peak RSS {:.1} MiB |",
        fs_peak as f64 / 1024.0
    );
    println!(
        "| server RSS with 300 stream clients that never read, `[mock:flood:{events}]`: before / peak / after they leave | {:.1} / {:.1} / {:.1} MiB |",
        stalled_before as f64 / 1024.0,
        stalled_peak as f64 / 1024.0,
        stalled_after as f64 / 1024.0
    );
    println!(
        "| 256 MiB through a process's PTY to an attached terminal client | {:.0} MiB/s ({} bytes skipped as `missed`) |",
        term_got as f64 / term_s / 1048576.0,
        term_missed
    );
    println!(
        "| terminal attach to a process with 1 MiB of history: to `attached` / to the whole history (p50, p99 of 50) | {attach_ms:.2} ms / {history_ms:.1} ms, p99 {history_p99:.1} ms |"
    );
    println!(
        "| a socket starts listening → `port.opened` on the global stream (poll every 250 ms; p50, p99 of 20) | {port_p50:.0} ms, p99 {port_p99:.0} ms |"
    );
}

/// The table's head and its rows about events.
#[allow(clippy::too_many_arguments)]
fn print_event_rows(
    events: usize,
    healthy_ms: f64,
    idle_rss: (u64, u64),
    (n1, s1): (u64, f64),
    (n10, s10): (u64, f64),
    (n100, s100, peak100): (u64, f64, u64),
    (p50, p99): (f64, f64),
    (nr, sr): (u64, f64),
    (peak, after): (u64, u64),
) {
    println!("| measure | value |");
    println!("|---|---|");
    println!("| start to healthy /v1/health (median of 15, fresh data dir) | {healthy_ms:.1} ms |");
    println!(
        "| idle RSS (of it anonymous: the rest is the binary's code, file pages shared and reclaimable) | {:.1} MiB ({:.1} MiB) |",
        idle_rss.0 as f64 / 1024.0,
        idle_rss.1 as f64 / 1024.0
    );
    println!(
        "| `[mock:flood:{events}]` → 1 SSE client, persisted | {:.0} events/s ({n1} events in {s1:.2} s) |",
        n1 as f64 / s1
    );
    println!(
        "| `[mock:flood:{events}]` → 10 SSE clients | {:.0} events/s per client, {:.0} deliveries/s |",
        n10 as f64 / s10,
        10.0 * n10 as f64 / s10
    );
    println!(
        "| `[mock:flood:{events}]` → 100 SSE clients, each receiving every event | {:.0} deliveries/s ({:.0} events/s per client), server peak RSS {:.1} MiB |",
        100.0 * n100 as f64 / s100,
        n100 as f64 / s100,
        peak100 as f64 / 1024.0
    );
    println!("| agent write → client receipt, `[mock:timed:2000]` (1 ms apart) | p50 {p50:.2} ms, p99 {p99:.2} ms |");
    println!("| replay of a finished {nr}-event session | {:.0} events/s |", nr as f64 / sr);
    println!(
        "| server RSS: peak / after the runs | {:.1} MiB / {:.1} MiB |",
        peak as f64 / 1024.0,
        after as f64 / 1024.0
    );
}
