//! What the benches share: data dirs on disk, percentiles, the server's
//! memory, timed starts of the real binary on a data dir, light SSE readers
//! that keep only each frame's seq and type (no JSON decoding, so a bench's
//! own reading costs little next to the server it measures), and the check
//! that a session's stored events are gap-free.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tether_sdk::reqwest::Method;
use tether_sdk::sse::SseParser;
use tether_sdk::Client;
use tokio::sync::mpsc;

use crate::server::scrub_env;
use crate::tether_bin;

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// Bytes of every file under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| if e.file_type().unwrap().is_dir() { dir_size(&e.path()) } else { e.metadata().unwrap().len() })
        .sum()
}

/// The middle value (upper middle of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p` (0..=1) percentile of sorted values, nearest rank; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// p50 and p99 of unsorted values.
pub fn p50_p99(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

/// A numeric field of `/proc/<pid>/status` (`VmRSS:` and `VmHWM:` in KiB,
/// `Threads:`); 0 if absent.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Where a command that draws into docs/ writes: `--out DIR`, else the repo's `docs/`.
pub fn out_dir() -> std::path::PathBuf {
    let args: Vec<String> = std::env::args().collect();
    let given = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1));
    given.map(std::path::PathBuf::from).unwrap_or_else(|| crate::workspace_root().join("docs"))
}

/// A process's peak RSS while something runs, sampled every 20 ms.
pub struct PeakRss {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<u64>,
}

impl PeakRss {
    pub fn start(pid: u32) -> PeakRss {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !*stopped.borrow_and_update() {
                peak = peak.max(status_kib(pid, "VmRSS:"));
                let _ = tokio::time::timeout(Duration::from_millis(20), stopped.changed()).await;
            }
            peak.max(status_kib(pid, "VmRSS:"))
        });
        PeakRss { stop, task }
    }

    /// The highest RSS seen, in KiB.
    pub async fn stop(self) -> u64 {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or(0)
    }
}

/// How long a start took, from spawn, in ms.
#[derive(Debug, Clone, Copy)]
pub struct StartTimes {
    /// The address line printed.
    pub bound_ms: f64,
    /// The first answer of `/v1/health` (`starting` or `ok`).
    pub health_ms: f64,
    /// `/v1/health` answered 200.
    pub ok_ms: f64,
    /// The first page of sessions and the newest session's first page of events served.
    pub ready_ms: f64,
}

/// A server started by [`time_start`], still running.
pub struct Started {
    pub times: StartTimes,
    pub url: String,
    pub child: Child,
    /// Its workspace, removed once it is dropped (after the server stopped).
    _workspace: tempfile::TempDir,
}

impl Started {
    /// SIGTERM, then waits (up to 60 s) for a clean exit; SIGKILL past that.
    pub async fn stop(mut self) -> bool {
        crate::procs::signal(self.child.id() as i32, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }

    /// SIGKILL (nothing of the data dir is kept).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Started {
    /// A server still running (a bench that panicked) is killed, not left behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the real binary on `data_dir` (a fresh temporary workspace) and
/// times it from spawn to the address line, the first answer of
/// `/v1/health`, health `ok`, and ready (the first page of sessions and of
/// the newest session's events served).
pub async fn time_start(data_dir: &Path, http: &tether_sdk::reqwest::Client) -> Started {
    let ws = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(tether_bin());
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"]).arg(data_dir);
    cmd.arg("--workspace").arg(ws.path());
    scrub_env(&mut cmd);
    cmd.env("TETHER_LOG", "warn").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let t0 = Instant::now();
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let bound = t0.elapsed();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut health = None;
    let ok = loop {
        if let Ok(r) = http.get(format!("{url}/v1/health")).send().await {
            health.get_or_insert(t0.elapsed());
            if r.status().is_success() {
                break t0.elapsed();
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "not ready in 120 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let page: serde_json::Value =
        http.get(format!("{url}/v1/sessions?limit=50")).send().await.unwrap().json().await.unwrap();
    let newest = page["sessions"][0]["id"].as_str().expect("a session").to_string();
    let events = http.get(format!("{url}/v1/sessions/{newest}/events?limit=100")).send().await.unwrap();
    assert!(events.status().is_success());
    let _ = events.bytes().await.unwrap();
    let ready = t0.elapsed();
    Started {
        times: StartTimes { bound_ms: ms(bound), health_ms: ms(health.unwrap()), ok_ms: ms(ok), ready_ms: ms(ready) },
        url,
        child,
        _workspace: ws,
    }
}

/// One frame of a session's SSE stream, as [`SeqStream`] keeps it.
#[derive(Debug, Clone, Copy)]
pub struct SeqFrame {
    pub seq: u64,
    /// It was a `turn.completed`.
    pub turn_completed: bool,
    /// When the bench read it.
    pub at: Instant,
}

/// A task reading one session's SSE stream from `after`, sending every
/// event's seq (and when it arrived) on a channel; it stops when the
/// receiver is dropped, or at the end of the stream.
pub struct SeqStream {
    pub rx: mpsc::UnboundedReceiver<Result<SeqFrame, String>>,
    task: tokio::task::JoinHandle<()>,
}

impl SeqStream {
    pub fn open(client: &Client, session_id: &str, after: u64) -> SeqStream {
        let (tx, rx) = mpsc::unbounded_channel();
        let request = client
            .request(Method::GET, &format!("/v1/sessions/{session_id}/events/stream?after={after}"))
            .header("accept", "text/event-stream");
        let task = tokio::spawn(async move {
            let resp = match request.send().await {
                Ok(r) if r.status().is_success() => r,
                Ok(r) => return drop(tx.send(Err(format!("the stream answered {}", r.status())))),
                Err(e) => return drop(tx.send(Err(format!("the stream failed: {e}")))),
            };
            let mut body = resp.bytes_stream();
            let mut parser = SseParser::new();
            while let Some(chunk) = body.next().await {
                let chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => return drop(tx.send(Err(format!("the stream failed: {e}")))),
                };
                let at = Instant::now();
                parser.feed(&chunk);
                while let Some(frame) = parser.next_frame() {
                    // Control frames (keepalives, stalls) carry no seq id.
                    let Some(seq) = frame.id().and_then(|id| id.parse::<u64>().ok()) else { continue };
                    let turn_completed = frame.event() == Some("turn.completed");
                    if tx.send(Ok(SeqFrame { seq, turn_completed, at })).is_err() {
                        return;
                    }
                }
            }
            let _ = tx.send(Err("the stream ended".into()));
        });
        SeqStream { rx, task }
    }

    /// The next frame, within `timeout`; panics (naming `what`) on a
    /// failed or ended stream or when nothing came in time.
    pub async fn next(&mut self, timeout: Duration, what: &str) -> SeqFrame {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Ok(Some(Ok(frame))) => frame,
            Ok(Some(Err(e))) => panic!("{what}: {e}"),
            Ok(None) => panic!("{what}: the stream reader stopped"),
            Err(_) => panic!("{what}: no event within {timeout:?}"),
        }
    }
}

impl Drop for SeqStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

#[derive(serde::Deserialize)]
struct SeqPage {
    events: Vec<SeqOnly>,
    has_more: bool,
    next_after: u64,
}

/// Reads every stored event's seq through the events pages and checks they
/// are 1, 2, 3, ...; answers the last.
pub async fn stored_seqs(client: &Client, id: &str) -> u64 {
    let mut last = 0;
    for _ in 0..10_000 {
        let page: SeqPage = client
            .request(Method::GET, &format!("/v1/sessions/{id}/events?after={last}&limit=10000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in &page.events {
            assert_eq!(e.seq, last + 1, "session {id}: stored seq {} after {last}", e.seq);
            last = e.seq;
        }
        if !page.has_more {
            return last;
        }
        assert_eq!(page.next_after, last);
    }
    panic!("session {id}: more than 10,000 pages");
}

/// Reads a session's SSE stream after `after` until `turn.completed`, the
/// way a lean client does (frames split, ids read, no event decoded), and
/// checks that its ids are exactly `after + 1, after + 2, ...`: nothing lost,
/// nothing twice. Returns (the last id, when `turn.completed` arrived).
pub async fn read_turn(server_url: String, session: String, after: u64) -> (u64, Instant) {
    const DEADLINE: Duration = Duration::from_secs(300);
    let url = format!("{server_url}/v1/sessions/{session}/events/stream?after={after}");
    let mut body = tether_sdk::reqwest::get(&url).await.unwrap().error_for_status().unwrap().bytes_stream();
    let (mut parser, mut expect) = (SseParser::new(), after + 1);
    while let Some(chunk) = tokio::time::timeout(DEADLINE, body.next()).await.expect("the stream stalled") {
        parser.feed(&chunk.unwrap());
        while let Some(frame) = parser.next_frame() {
            // Control frames (stalls, resets) carry no event id.
            let Some(id) = frame.id().and_then(|id| id.parse::<u64>().ok()) else { continue };
            assert_eq!(id, expect, "a client got seq {id} where {expect} was next");
            expect += 1;
            if frame.event() == Some("turn.completed") {
                return (id, Instant::now());
            }
        }
    }
    panic!("the stream ended before turn.completed");
}
