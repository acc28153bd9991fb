//! `cargo run --release -p tether-e2e --bin bench-boot [-- --sessions N --events N --runs N --json --keep]`:
//! how fast the real binary starts on a big data dir. It builds one through
//! the real server and the mock agent (1,000 sessions, 1M events by
//! default: each session a tool turn and a flood of streamed text), once
//! stopped cleanly and once crashed (`kill -9` while a tenth of the sessions
//! run a turn, so the next start recovers them), then starts the server on
//! a fresh copy of each, several times, and measures from spawn to: the
//! address line, the first answer of `/v1/health` (`starting` or `ok`),
//! health `ok`, and ready (the first page of sessions and of the newest
//! session's events served).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tether_e2e::benchkit::{copy_dir, dir_size, median, time_start, StartTimes};
use tether_e2e::events::collect_turns;
use tether_e2e::{ServerOptions, TestServer};
use tether_sdk::{Client, CreateSession, ListSessions};

/// Sessions whose agents run at once while the data dir is built (the
/// server restarts between waves, so agents do not pile up).
const WAVE: usize = 100;

struct Args {
    sessions: usize,
    events: usize,
    runs: usize,
    json: bool,
    /// Keep the data dirs (their path is printed on stderr) for a closer look.
    keep: bool,
}

fn args() -> Args {
    let mut a = Args { sessions: 1000, events: 1_000_000, runs: 5, json: false, keep: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--sessions" => a.sessions = num(),
            "--events" => a.events = num(),
            "--runs" => a.runs = num(),
            "--json" => a.json = true,
            "--keep" => a.keep = true,
            other => panic!("unknown argument {other:?}"),
        }
    }
    a
}

/// One session: a tool turn, then a flood of `deltas` (about `deltas` + 20 events).
async fn one_session(client: Client, deltas: usize) -> String {
    let req =
        CreateSession { agent: "mock".into(), prompt: Some("[mock:tool] look around".into()), ..Default::default() };
    let id = client.create_session(&req).await.unwrap().id;
    collect_turns(&client, &id, 0, 1, Duration::from_secs(120)).await;
    client.send_text(&id, format!("[mock:flood:{deltas}]")).await.unwrap();
    collect_turns(&client, &id, 0, 2, Duration::from_secs(300)).await;
    id
}

/// Builds the data dir; answers (clean copy, crashed copy, events stored).
async fn build(root: &Path, a: &Args) -> (PathBuf, PathBuf, u64) {
    let data = root.join("build");
    std::fs::create_dir_all(&data).unwrap();
    let mut server = TestServer::start_with(ServerOptions {
        data_dir: Some(data.clone()),
        env: vec![("TETHER_LOG".into(), "warn".into())],
        ..Default::default()
    })
    .await;
    // Two sessions calibrate events per delta and the events besides them.
    let small = one_session(server.client(), 100).await;
    let big = one_session(server.client(), 1000).await;
    let small = server.client().get_session(&small).await.unwrap().last_seq as f64;
    let big = server.client().get_session(&big).await.unwrap().last_seq as f64;
    let per_delta = (big - small) / 900.0;
    let overhead = small - 100.0 * per_delta;
    let per_session = (a.events as f64 - big - small) / (a.sessions - 2) as f64;
    let deltas = ((per_session - overhead) / per_delta).max(1.0) as usize;
    let t0 = Instant::now();
    let mut made = 2;
    while made < a.sessions {
        let n = WAVE.min(a.sessions - made);
        let client = server.client();
        let wave: Vec<_> = (0..n).map(|_| tokio::spawn(one_session(client.clone(), deltas))).collect();
        for w in wave {
            w.await.unwrap();
        }
        made += n;
        eprint!("\rbuilt {made}/{} sessions ({:.0} s)", a.sessions, t0.elapsed().as_secs_f64());
        // Stopping ends the agents (sessions stay idle): they do not pile up.
        server.restart().await;
    }
    eprintln!();
    let events = server.client().info().await.unwrap().last_gseq;
    let clean = root.join("clean");
    let (status, _) = server.sigterm().await;
    assert!(status.success());
    copy_dir(&data, &clean);

    // A crash while a tenth of the sessions run a turn.
    server.restart().await;
    let client = server.client();
    let list = client.list_sessions(&ListSessions { limit: Some(1000), ..Default::default() }).await.unwrap();
    let running: Vec<String> = list.sessions.iter().take(a.sessions / 10).map(|s| s.id.clone()).collect();
    for id in &running {
        client.send_text(id, "[mock:slow]").await.unwrap();
    }
    for id in &running {
        tether_e2e::events::wait_status(&client, id, tether_sdk::SessionStatus::Running, Duration::from_secs(60)).await;
    }
    server.kill9().await;
    let crashed = root.join("crashed");
    copy_dir(&data, &crashed);
    (clean, crashed, events)
}

/// Starts the server on a fresh copy of `template` and times it.
async fn measure(template: &Path, scratch: &Path) -> StartTimes {
    let _ = std::fs::remove_dir_all(scratch);
    copy_dir(template, scratch);
    let started = time_start(scratch, &reqwest::Client::new()).await;
    let times = started.times;
    started.kill();
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let mut root = tempfile::Builder::new().prefix("tether-bench-boot-").tempdir().unwrap();
    if a.keep {
        root.disable_cleanup(true);
        eprintln!("data dirs kept in {}", root.path().display());
    }
    let t0 = Instant::now();
    let (clean, crashed, events) = build(root.path(), &a).await;
    let built_s = t0.elapsed().as_secs_f64();
    let size = dir_size(&clean);
    let scratch = root.path().join("run");
    let mut rows = Vec::new();
    for (name, template) in [("clean stop", &clean), ("after kill -9", &crashed)] {
        let runs: Vec<StartTimes> = {
            let mut v = Vec::new();
            for _ in 0..a.runs {
                v.push(measure(template, &scratch).await);
            }
            v
        };
        rows.push((
            name,
            median(runs.iter().map(|r| r.bound_ms).collect()),
            median(runs.iter().map(|r| r.health_ms).collect()),
            median(runs.iter().map(|r| r.ok_ms).collect()),
            median(runs.iter().map(|r| r.ready_ms).collect()),
            runs.iter().map(|r| r.ready_ms).fold(0.0, f64::max),
        ));
    }
    if a.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"start": r.0, "address_ms": r.1, "health_ms": r.2, "ok_ms": r.3, "ready_ms": r.4, "ready_max_ms": r.5}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"sessions": a.sessions, "events": events, "db_bytes": size, "runs": a.runs, "starts": rows})
        );
        return;
    }
    println!(
        "data dir: {} sessions, {events} events, {:.0} MiB (built in {built_s:.0} s); median of {} starts each (warm page cache)",
        a.sessions,
        size as f64 / (1 << 20) as f64,
        a.runs
    );
    println!("| start | address line | first /v1/health answer | health ok | ready (sessions + first events page) |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!("| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms (max {:.1}) |", r.0, r.1, r.2, r.3, r.4, r.5);
    }
}
