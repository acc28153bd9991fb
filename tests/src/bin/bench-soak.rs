//! `cargo run --release -p tether-e2e --bin bench-soak [-- --minutes M --workers N --sample-secs S]`:
//! a soak of the real binary (`$TETHER_BIN`, or the one cargo built). N
//! workers create a mock session, run a turn (a tool call, or a flood of
//! 2,000 streamed deltas every fourth time) and delete it, over and over
//! for M minutes, with retention on (`--retain 200`: the store holds only
//! the newest ended sessions) and a short idle limit; every S seconds it
//! samples the server's RSS, open file descriptors, threads, live agent
//! processes and the store's size on disk (database and WAL). Prints a
//! Markdown table of the samples and a verdict line: whether RSS, fds and
//! threads stayed flat (the last quarter's maximum within 25% — and 16 MiB
//! for RSS, 16 fds, 4 threads — of the first quarter's after warm-up).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tether_e2e::benchkit::status_kib;
use tether_e2e::events::wait_for_type;
use tether_e2e::{ServerOptions, TestServer, TURN_TIMEOUT};
use tether_sdk::{Client, CreateSession};

struct Args {
    minutes: f64,
    workers: usize,
    sample: Duration,
}

fn args() -> Args {
    let mut a = Args { minutes: 5.0, workers: 4, sample: Duration::from_secs(15) };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().expect("a value after the flag");
        match arg.as_str() {
            "--minutes" => a.minutes = value.parse().expect("minutes"),
            "--workers" => a.workers = value.parse().expect("workers"),
            "--sample-secs" => a.sample = Duration::from_secs_f64(value.parse().expect("seconds")),
            other => panic!("unknown argument {other:?}"),
        }
    }
    a
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Duration,
    turns: u64,
    rss_kib: u64,
    fds: u64,
    threads: u64,
    agents: u64,
    store_kib: u64,
}

/// Processes whose parent is `pid` (the agents tether runs).
fn children(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else { return 0 };
    dir.flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // The parent pid is the second field after the command's closing parenthesis.
            stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|p| p.parse().ok())
                == Some(pid)
        })
        .count() as u64
}

fn sample(server: &TestServer, started: Instant, turns: u64) -> Sample {
    let pid = server.pid;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    let db = server.data_dir().join("tether.db");
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let store = size(db.clone()) + size(db.with_extension("db-wal"));
    Sample {
        at: started.elapsed(),
        turns,
        rss_kib: status_kib(pid, "VmRSS:"),
        fds,
        threads: status_kib(pid, "Threads:"),
        agents: children(pid),
        store_kib: store / 1024,
    }
}

/// One worker's loop: create, run a turn, delete, until `until`.
async fn worker(client: Client, n: usize, until: Instant, turns: Arc<AtomicU64>) {
    let mut i = 0u64;
    while Instant::now() < until {
        let prompt = if (i + n as u64) % 4 == 0 { "[mock:flood:2000]" } else { "[mock:tool] soak" };
        let create = CreateSession { agent: "mock".into(), prompt: Some(prompt.into()), ..Default::default() };
        let session = client.create_session(&create).await.expect("create a session");
        let mut stream = client.session_events(&session.id, Some(0));
        wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
        drop(stream);
        client.delete_session(&session.id, false).await.expect("delete the session");
        turns.fetch_add(1, Ordering::Relaxed);
        i += 1;
    }
}

/// Within 25% and `slack` of `base`.
fn flat(base: u64, last: u64, slack: u64) -> bool {
    last <= base + (base / 4).max(slack)
}

#[tokio::main]
async fn main() {
    let a = args();
    let server = TestServer::start_with(ServerOptions {
        extra_args: ["--retain", "200", "--agent-idle-secs", "5"].map(String::from).to_vec(),
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(a.minutes * 60.0);
    let turns = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> =
        (0..a.workers).map(|n| tokio::spawn(worker(server.client(), n, until, turns.clone()))).collect();
    let mut samples = vec![sample(&server, started, 0)];
    while Instant::now() < until {
        tokio::time::sleep(a.sample.min(until.saturating_duration_since(Instant::now()))).await;
        samples.push(sample(&server, started, turns.load(Ordering::Relaxed)));
    }
    for t in tasks {
        t.await.unwrap();
    }
    samples.push(sample(&server, started, turns.load(Ordering::Relaxed)));

    println!("| time | turns | RSS | open fds | threads | agent processes | store on disk |");
    println!("|---|---|---|---|---|---|---|");
    for s in &samples {
        println!(
            "| {:.0} s | {} | {:.1} MiB | {} | {} | {} | {:.1} MiB |",
            s.at.as_secs_f64(),
            s.turns,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.threads,
            s.agents,
            s.store_kib as f64 / 1024.0
        );
    }
    // After warm-up (the first sample is an idle server): the first quarter against the last.
    let busy = &samples[1..samples.len() - 1];
    if busy.len() < 4 {
        println!("\ntoo few samples for a verdict: run longer or sample more often");
        return;
    }
    let quarter = (busy.len() / 4).max(1);
    let max = |xs: &[Sample], f: fn(&Sample) -> u64| xs.iter().map(f).max().unwrap_or(0);
    let (first, last) = (&busy[..quarter], &busy[busy.len() - quarter..]);
    let checks = [
        ("RSS", flat(max(first, |s| s.rss_kib), max(last, |s| s.rss_kib), 16 * 1024)),
        ("fds", flat(max(first, |s| s.fds), max(last, |s| s.fds), 16)),
        ("threads", flat(max(first, |s| s.threads), max(last, |s| s.threads), 4)),
    ];
    let total = turns.load(Ordering::Relaxed);
    let verdict: Vec<String> =
        checks.iter().map(|(what, ok)| format!("{what} {}", if *ok { "flat" } else { "GREW" })).collect();
    println!(
        "\n{total} sessions created, run and deleted by {} workers in {:.1} min ({:.1}/s); {}",
        a.workers,
        started.elapsed().as_secs_f64() / 60.0,
        total as f64 / started.elapsed().as_secs_f64(),
        verdict.join(", ")
    );
}
