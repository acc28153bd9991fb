//! `cargo run --release -p tether-e2e --bin bench-scale [-- --events N --sessions S --agents A --floods F
//! --turns T --requests R --starts K --cache DIR --rebuild --no-store --no-live]`:
//! tether at scale, in two parts.
//!
//! **Store** (defaults: 10,000,000 events over 1,000 sessions). A data dir
//! grown through the real server and the mock agent (each session a tool
//! turn and a `[mock:flood:N]` turn; never written to SQLite directly) in
//! stages of 1k, 10k, 100k, 1M, ... events; each stage adds one session
//! holding a tenth of the stage's events (the largest) and spreads the rest
//! over new sessions so that the last stage has S sessions (every stage has
//! at least 50, a full first page of sessions: the smallest is about 1.6k
//! events, each session at least a tool turn). Several
//! sessions' turns run at once; the server restarts every 100 sessions so
//! the agents do not pile up. Each stage is kept (stopped cleanly) under
//! the cache dir (`~/.cache/tether-bench-scale/e<N>-s<S>/` by default) and
//! reused by later runs; `--rebuild` builds them again. At every stage: the
//! store's bytes on disk per event (database + WAL after a clean stop), K
//! timed starts (spawn → health ok → sessions page + first events page),
//! and p50/p99 (medians over 5 rounds of R requests) of the first page of sessions, the
//! first and the last page of events of the largest session, and its
//! status. Verdict: each p99 within 2× of the smallest store's.
//!
//! **Live agents** (default A = 100): A mock sessions in one fresh server,
//! each running T short turns (text and tool turns, a few deltas each) at
//! once: turn latency (POST message → `turn.completed` read on the
//! session's SSE stream) p50/p99, the server's RSS with A live sessions
//! minus its idle RSS, per session (the agents are their own processes);
//! the same at 1, 10 and 50 live sessions for a chart. Then F of the A
//! sessions run `[mock:flood:200000]` while the others run T short turns
//! again: the short turns' latency while the floods run against without.
//!
//! No loss: every SSE client must read exactly the session's stored seqs,
//! and every session's stored events are gap-free (1..=last_seq), checked
//! through the events pages. Prints Markdown tables between
//! `<!-- bench-scale -->` markers and draws docs/bench-scale-pages.svg,
//! docs/bench-scale-bytes.svg and docs/bench-scale-sessions.svg.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tether_e2e::benchkit::{copy_dir, median, p50_p99, status_kib, stored_seqs, time_start, SeqStream};
use tether_e2e::charts::{line_chart, Chart};
use tether_e2e::{workspace_root, ServerOptions, TestServer};
use tether_sdk::{Client, CreateSession};

/// Sessions built between two restarts of the server (their agents end with it).
const WAVE: usize = 100;
/// Sessions whose turns run at once while the store is built.
const BUILD_CONCURRENCY: usize = 8;
/// The sessions list's default page (`GET /v1/sessions`).
const SESSIONS_PAGE: usize = 50;
/// Deltas of each flood of the live part.
const FLOOD_DELTAS: usize = 200_000;
/// The longest any one turn may take.
const TURN_DEADLINE: Duration = Duration::from_secs(300);
/// Live-session counts of the chart (those up to A, and A).
const LIVE_STEPS: [usize; 3] = [1, 10, 50];

struct Args {
    events: usize,
    sessions: usize,
    agents: usize,
    floods: usize,
    turns: usize,
    requests: usize,
    starts: usize,
    cache: Option<PathBuf>,
    rebuild: bool,
    store: bool,
    live: bool,
    charts: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        events: 10_000_000,
        sessions: 1000,
        agents: 100,
        floods: 4,
        turns: 20,
        requests: 200,
        starts: 5,
        cache: None,
        rebuild: false,
        store: true,
        live: true,
        charts: Some(workspace_root().join("docs")),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        let mut num = || value().parse::<usize>().expect("a number after the flag");
        match arg.as_str() {
            "--events" => a.events = num(),
            "--sessions" => a.sessions = num(),
            "--agents" => a.agents = num(),
            "--floods" => a.floods = num(),
            "--turns" => a.turns = num(),
            "--requests" => a.requests = num(),
            "--starts" => a.starts = num(),
            "--cache" => a.cache = Some(PathBuf::from(value())),
            "--rebuild" => a.rebuild = true,
            "--no-store" => a.store = false,
            "--no-live" => a.live = false,
            // Where the charts go (`--charts none`: not drawn).
            "--charts" => a.charts = Some(value()).filter(|v| v != "none").map(PathBuf::from),
            other => panic!("unknown argument {other:?}"),
        }
    }
    assert!(a.events >= 100 && a.sessions >= 1 && a.agents >= 1 && a.turns >= 1, "arguments too small");
    a
}

// ---- the store ---------------------------------------------------------------

/// The store sizes measured: 1k, 10k, ... below `events`, then `events`.
fn stages(events: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut e = 1000;
    while e < events {
        v.push(e);
        e *= 10;
    }
    v.push(events);
    v
}

/// What a built stage holds (`stage.json` next to its data dir).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stage {
    events: u64,
    sessions: usize,
    /// The largest session and its last seq.
    largest: String,
    largest_seq: u64,
    /// Seconds this stage took to grow from the previous one.
    built_s: f64,
    /// The binary that built it.
    tether: String,
}

/// A session of a tool turn and a flood of `deltas` text deltas, read on
/// its SSE stream (every seq once, in order); answers its id and last seq.
async fn one_session(client: Client, deltas: usize) -> (String, u64) {
    let req =
        CreateSession { agent: "mock".into(), prompt: Some("[mock:tool] look around".into()), ..Default::default() };
    let id = client.create_session(&req).await.unwrap().id;
    let mut live = Live::open(&client, &id);
    live.wait_turn(Instant::now(), "the tool turn").await;
    live.turn(&client, &format!("[mock:flood:{deltas}]")).await;
    let last = client.get_session(&id).await.unwrap().last_seq;
    live.drain_to(last).await;
    (id, last)
}

/// Grows a copy of the previous stage's data dir (or a new one) to `target`
/// events over `sessions` sessions, through the real server.
async fn build_stage(dir: &Path, prev: Option<&(PathBuf, Stage)>, target: usize, sessions: usize) -> Stage {
    let _ = std::fs::remove_dir_all(dir);
    let data = dir.join("data");
    match prev {
        Some((prev_dir, _)) => copy_dir(&prev_dir.join("data"), &data),
        None => std::fs::create_dir_all(&data).unwrap(),
    }
    let t0 = Instant::now();
    let mut server = TestServer::start_with(ServerOptions {
        data_dir: Some(data.clone()),
        env: vec![("TETHER_LOG".into(), "warn".into())],
        ..Default::default()
    })
    .await;
    let have = server.client().info().await.unwrap().last_gseq as usize;
    let have_sessions = prev.map_or(0, |p| p.1.sessions);
    let deficit = target.saturating_sub(have);
    // Events besides the deltas: the tool turn and the flood turn's own (about 30).
    const OVERHEAD: usize = 30;
    let new_regular = sessions.saturating_sub(have_sessions + 1);
    let big = if new_regular == 0 { deficit } else { (target / 10).min(deficit) };
    let (largest, largest_seq) = one_session(server.client(), big.saturating_sub(OVERHEAD).max(1)).await;
    let mut made = 0;
    let have = server.client().info().await.unwrap().last_gseq as usize;
    if let Some(per) = target.saturating_sub(have).checked_div(new_regular) {
        let deltas = per.saturating_sub(OVERHEAD).max(1);
        while made < new_regular {
            let n = WAVE.min(new_regular - made);
            let client = server.client();
            let results: Vec<(String, u64)> = futures_util::stream::iter(0..n)
                .map(|_| one_session(client.clone(), deltas))
                .buffer_unordered(BUILD_CONCURRENCY)
                .collect()
                .await;
            made += results.len();
            let events = server.client().info().await.unwrap().last_gseq;
            eprint!(
                "\rstage {target}: {} sessions, {events} events ({:.0} s)",
                have_sessions + 1 + made,
                t0.elapsed().as_secs_f64()
            );
            // Stopping ends the agents (sessions stay idle): they do not pile up.
            server.restart().await;
        }
        eprintln!();
    }
    let events = server.client().info().await.unwrap().last_gseq;
    let (status, _) = server.sigterm().await;
    assert!(status.success(), "the build server exited with {status}");
    let stage = Stage {
        events,
        sessions: have_sessions + 1 + made,
        largest: largest.clone(),
        largest_seq: largest_seq.max(prev.map_or(0, |p| p.1.largest_seq)),
        built_s: t0.elapsed().as_secs_f64(),
        tether: tether_e2e::tether_bin().display().to_string(),
    };
    // The largest session is this stage's big one unless an earlier one is larger.
    let stage = match prev {
        Some((_, p)) if p.largest_seq > largest_seq => Stage { largest: p.largest.clone(), ..stage },
        _ => stage,
    };
    std::fs::write(dir.join("stage.json"), serde_json::to_vec_pretty(&stage).unwrap()).unwrap();
    stage
}

/// The stages, built or taken from the cache.
async fn stores(a: &Args) -> Vec<(PathBuf, Stage)> {
    let cache = a.cache.clone().unwrap_or_else(|| {
        let home = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
        // v2: every stage has a full first page of sessions; v3: the compact rows of migration 0006.
        home.join("tether-bench-scale").join(format!("e{}-s{}-v3", a.events, a.sessions))
    });
    if a.rebuild {
        let _ = std::fs::remove_dir_all(&cache);
    }
    let mut built: Vec<(PathBuf, Stage)> = Vec::new();
    for target in stages(a.events) {
        let dir = cache.join(target.to_string());
        let kept = std::fs::read(dir.join("stage.json")).ok().and_then(|b| serde_json::from_slice::<Stage>(&b).ok());
        let stage = match kept {
            Some(stage) => {
                eprintln!("stage {target}: kept in {} ({} events)", dir.display(), stage.events);
                stage
            }
            None => {
                // At least a full first page of sessions at every size, so the
                // sessions page is the same size from the smallest store on.
                let sessions = (a.sessions * target).div_ceil(a.events).max(a.sessions.min(SESSIONS_PAGE));
                let stage = build_stage(&dir, built.last(), target, sessions).await;
                eprintln!(
                    "stage {target}: built in {:.0} s ({} events, {} sessions) in {}",
                    stage.built_s,
                    stage.events,
                    stage.sessions,
                    dir.display()
                );
                stage
            }
        };
        built.push((dir, stage));
    }
    built
}

/// The database's bytes (database file + WAL) of a stopped data dir.
fn store_bytes(data: &Path) -> u64 {
    ["tether.db", "tether.db-wal"].iter().filter_map(|f| std::fs::metadata(data.join(f)).ok()).map(|m| m.len()).sum()
}

/// Rounds of [`timed_gets`] per request kind: a p99 is the median of the
/// rounds' p99s, so one burst of load from elsewhere on a shared machine
/// does not decide it.
const ROUNDS: usize = 5;

/// p50 and p99 (ms) of `n` GETs of `path` one after another (after a few
/// unmeasured), and the body's size.
async fn timed_gets(http: &tether_sdk::reqwest::Client, url: &str, n: usize) -> ((f64, f64), usize) {
    let mut times = Vec::with_capacity(n);
    let mut size = 0;
    for i in 0..n + 5 {
        let t0 = Instant::now();
        let resp = http.get(url).send().await.unwrap();
        assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
        let body = resp.bytes().await.unwrap();
        assert!(!body.is_empty());
        size = body.len();
        if i >= 5 {
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    (p50_p99(times), size)
}

struct StoreRow {
    events: u64,
    sessions: usize,
    largest_seq: u64,
    bytes_per_event: f64,
    /// (p50, p99) in ms of each of [`GETS`].
    gets: [(f64, f64); GETS.len()],
    /// Bytes of the largest session's last page of events.
    last_page_bytes: usize,
    ready_ms: f64,
    ready_max_ms: f64,
}

/// What is timed: the first page of sessions; the largest session's first page
/// of events, its last page, the 100 events before its last 5 (text deltas
/// only, a page of the same size at any depth: the last page holds the
/// final `item.completed`, which carries the whole text streamed), and its status.
const GETS: [&str; 5] =
    ["sessions page", "first events page", "last events page", "deltas page near the end", "session status"];

async fn measure_stage(dir: &Path, stage: &Stage, a: &Args) -> StoreRow {
    let data = dir.join("data");
    let bytes = store_bytes(&data);
    let http = tether_sdk::reqwest::Client::new();
    let mut ready = Vec::new();
    let mut last = None;
    for i in 0..a.starts.max(1) {
        let started = time_start(&data, &http).await;
        ready.push(started.times.ready_ms);
        if i + 1 == a.starts.max(1) {
            last = Some(started);
        } else {
            assert!(started.stop().await, "the server did not stop cleanly");
        }
    }
    let started = last.unwrap();
    let url = &started.url;
    let id = &stage.largest;
    let tail = stage.largest_seq.saturating_sub(100);
    let paths = [
        format!("{url}/v1/sessions"),
        format!("{url}/v1/sessions/{id}/events?after=0&limit=100"),
        format!("{url}/v1/sessions/{id}/events?after={tail}&limit=100"),
        format!("{url}/v1/sessions/{id}/events?after={}&limit=100", tail.saturating_sub(5)),
        format!("{url}/v1/sessions/{id}"),
    ];
    let mut gets = [(0.0, 0.0); GETS.len()];
    let mut last_page_bytes = 0;
    let mut rounds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); GETS.len()];
    for _ in 0..ROUNDS {
        for (i, path) in paths.iter().enumerate() {
            let (times, size) = timed_gets(&http, path, a.requests).await;
            rounds[i].push(times);
            if i == 2 {
                last_page_bytes = size;
            }
        }
    }
    for (g, r) in gets.iter_mut().zip(rounds) {
        *g = (median(r.iter().map(|t| t.0).collect()), median(r.iter().map(|t| t.1).collect()));
    }
    // The last page is the session's end.
    let page: serde_json::Value = http.get(&paths[2]).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().last().unwrap()["seq"].as_u64(), Some(stage.largest_seq));
    assert!(started.stop().await, "the server did not stop cleanly");
    StoreRow {
        events: stage.events,
        sessions: stage.sessions,
        largest_seq: stage.largest_seq,
        bytes_per_event: bytes as f64 / stage.events as f64,
        gets,
        last_page_bytes,
        ready_ms: median(ready.clone()),
        ready_max_ms: ready.iter().copied().fold(0.0, f64::max),
    }
}

// ---- live agents -------------------------------------------------------------

/// One session's SSE stream, read from seq 0 and checked as it goes: every
/// frame must carry the next seq.
struct Live {
    id: String,
    stream: SeqStream,
    last: u64,
}

impl Live {
    fn open(client: &Client, id: &str) -> Live {
        Live { id: id.to_string(), stream: SeqStream::open(client, id, 0), last: 0 }
    }

    async fn next(&mut self, what: &str) -> tether_e2e::benchkit::SeqFrame {
        let frame = self.stream.next(TURN_DEADLINE, &format!("{} {what}", self.id)).await;
        assert_eq!(
            frame.seq,
            self.last + 1,
            "session {}: seq {} after {} (a gap or a repeat)",
            self.id,
            frame.seq,
            self.last
        );
        self.last = frame.seq;
        frame
    }

    /// Reads up to the next `turn.completed`; answers ms from `t0` to its arrival.
    async fn wait_turn(&mut self, t0: Instant, what: &str) -> f64 {
        loop {
            let frame = self.next(what).await;
            if frame.turn_completed {
                return frame.at.duration_since(t0).as_secs_f64() * 1000.0;
            }
        }
    }

    /// Sends `text` and reads its turn: POST → `turn.completed`, in ms.
    async fn turn(&mut self, client: &Client, text: &str) -> f64 {
        let t0 = Instant::now();
        client.send_text(&self.id, text).await.unwrap();
        self.wait_turn(t0, text).await
    }

    /// Reads on until `last` (the session's stored last seq).
    async fn drain_to(&mut self, last: u64) {
        while self.last < last {
            self.next("draining").await;
        }
    }

    /// The session's stored seqs are 1..=last, and this stream read exactly those.
    async fn check(&mut self, client: &Client) -> u64 {
        let last = client.get_session(&self.id).await.unwrap().last_seq;
        self.drain_to(last).await;
        assert_eq!(stored_seqs(client, &self.id).await, last, "session {}: stored events are not 1..={last}", self.id);
        last
    }
}

/// A short turn: a few deltas of text, or a tool call and its result.
fn short_turn(i: usize) -> String {
    if i % 2 == 0 {
        format!("turn {i}: say something")
    } else {
        format!("[mock:tool] turn {i}")
    }
}

struct LiveRow {
    live: usize,
    turns: usize,
    /// Turns completed per second over all sessions.
    turns_per_s: f64,
    p50: f64,
    p99: f64,
    max: f64,
    idle_rss_kib: u64,
    /// With the first session live.
    one_rss_kib: u64,
    live_rss_kib: u64,
}

struct FloodRow {
    floods: usize,
    flood_events: u64,
    flood_s: f64,
    overlapped: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

/// `turns` short turns in each of `sessions` at once; the latencies (ms) and when each turn started.
async fn run_short(client: &Client, sessions: Vec<Live>, turns: usize) -> (Vec<Live>, Vec<(Instant, f64)>) {
    let tasks: Vec<_> = sessions
        .into_iter()
        .map(|mut s| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(turns);
                for i in 0..turns {
                    let t0 = Instant::now();
                    lat.push((t0, s.turn(&client, &short_turn(i)).await));
                }
                (s, lat)
            })
        })
        .collect();
    let mut back = Vec::new();
    let mut lat = Vec::new();
    for t in tasks {
        let (s, l) = t.await.unwrap();
        back.push(s);
        lat.extend(l);
    }
    (back, lat)
}

/// A fresh server with `live` mock sessions running `turns` short turns each at
/// once; then, with `floods` > 0, floods in that many while the others run
/// short turns again.
async fn live_run(live: usize, floods: usize, turns: usize) -> (LiveRow, Option<FloodRow>) {
    let server =
        TestServer::start_with(ServerOptions { env: vec![("TETHER_LOG".into(), "warn".into())], ..Default::default() })
            .await;
    let client = server.client();
    client.list_sessions(&Default::default()).await.unwrap();
    let idle_rss_kib = status_kib(server.pid, "VmRSS:");
    // Every session live: its agent started and its first turn done. The
    // first alone, so the memory of one live session is known too.
    let open = |client: Client| async move {
        let req = CreateSession { agent: "mock".into(), prompt: Some("hello".into()), ..Default::default() };
        let id = client.create_session(&req).await.unwrap().id;
        let mut s = Live::open(&client, &id);
        s.wait_turn(Instant::now(), "the first turn").await;
        s
    };
    let mut sessions = vec![open(client.clone()).await];
    let one_rss_kib = status_kib(server.pid, "VmRSS:");
    let rest: Vec<Live> =
        futures_util::stream::iter(1..live).map(|_| open(client.clone())).buffer_unordered(10).collect().await;
    sessions.extend(rest);
    let live_rss_kib = status_kib(server.pid, "VmRSS:");
    let t0 = Instant::now();
    let (mut sessions, lat) = run_short(&client, sessions, turns).await;
    let turns_per_s = lat.len() as f64 / t0.elapsed().as_secs_f64();
    let (p50, p99) = p50_p99(lat.iter().map(|l| l.1).collect());
    let max = lat.iter().map(|l| l.1).fold(0.0, f64::max);
    let row = LiveRow { live, turns: lat.len(), turns_per_s, p50, p99, max, idle_rss_kib, one_rss_kib, live_rss_kib };

    let mut flood_row = None;
    if floods > 0 && live > floods {
        let flooders: Vec<Live> = sessions.drain(..floods).collect();
        let t0 = Instant::now();
        let flood_tasks: Vec<_> = flooders
            .into_iter()
            .map(|mut s| {
                let client = client.clone();
                tokio::spawn(async move {
                    s.turn(&client, &format!("[mock:flood:{FLOOD_DELTAS}]")).await;
                    (s, Instant::now())
                })
            })
            .collect();
        let (rest, lat) = run_short(&client, sessions, turns).await;
        sessions = rest;
        let mut first_done = None::<Instant>;
        let mut last_done = t0;
        for t in flood_tasks {
            let (s, done) = t.await.unwrap();
            first_done = Some(first_done.map_or(done, |f| f.min(done)));
            last_done = last_done.max(done);
            sessions.push(s);
        }
        // The short turns that started while every flood still ran.
        let first_done = first_done.unwrap();
        let during: Vec<f64> = lat.iter().filter(|(start, _)| *start < first_done).map(|l| l.1).collect();
        let overlapped = during.len();
        let max = during.iter().copied().fold(0.0, f64::max);
        let (p50, p99) = p50_p99(during);
        flood_row = Some(FloodRow {
            floods,
            flood_events: 0,
            flood_s: last_done.duration_since(t0).as_secs_f64(),
            overlapped,
            p50,
            p99,
            max,
        });
    }
    // No loss: each stream read exactly its session's stored seqs.
    let mut total = 0;
    for s in &mut sessions {
        total += s.check(&client).await;
    }
    if let Some(f) = flood_row.as_mut() {
        f.flood_events = total;
    }
    (row, flood_row)
}

// ---- output ------------------------------------------------------------------

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn draw(path: &Path, chart: Chart, series: &[(&str, Vec<(f64, f64)>)]) {
    match line_chart(path, chart, series) {
        Ok(()) => eprintln!("chart: {}", path.display()),
        Err(e) => eprintln!("chart {} not drawn: {e}", path.display()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let mut store_rows = Vec::new();
    if a.store {
        let built = stores(&a).await;
        for (dir, stage) in &built {
            eprintln!("measuring the {}-event store", stage.events);
            store_rows.push(measure_stage(dir, stage, &a).await);
        }
    }
    let mut live_rows = Vec::new();
    let mut flood_row = None;
    if a.live {
        let mut steps: Vec<usize> = LIVE_STEPS.iter().copied().filter(|&n| n < a.agents).collect();
        steps.push(a.agents);
        for n in steps {
            eprintln!("{n} live sessions");
            let (row, flood) = live_run(n, if n == a.agents { a.floods } else { 0 }, a.turns).await;
            live_rows.push(row);
            if flood.is_some() {
                flood_row = flood;
            }
        }
    }

    println!("<!-- bench-scale -->");
    if let Some(base) = store_rows.first() {
        println!(
            "Store: built through the real server (mock agent); {ROUNDS} rounds of {} requests of each kind one after another, p50 / p99 in ms (medians over the rounds); ready = median of {} starts (spawn → health ok → sessions page + first events page); bytes per event = database + WAL after a clean stop.",
            a.requests, a.starts
        );
        println!();
        println!(
            "| events stored | sessions | largest session | bytes / event | {} | start to ready |",
            GETS.join(" | ")
        );
        println!("|---|---|---|---|{}---|", "---|".repeat(GETS.len()));
        for r in &store_rows {
            let gets: Vec<String> = r.gets.iter().map(|(p50, p99)| format!("{p50:.2} / {p99:.2}")).collect();
            println!(
                "| {} | {} | {} | {:.0} | {} | {:.1} ms (max {:.1}) |",
                thousands(r.events),
                thousands(r.sessions as u64),
                thousands(r.largest_seq),
                r.bytes_per_event,
                gets.join(" | "),
                r.ready_ms,
                r.ready_max_ms
            );
        }
        let last = store_rows.last().unwrap();
        let mut verdicts: Vec<String> = GETS
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let ratio = last.gets[i].1 / base.gets[i].1;
                let p50 = last.gets[i].0 / base.gets[i].0;
                format!("{name} {}{ratio:.2}× (p50 {p50:.2}×)", if ratio <= 2.0 { "flat: " } else { "NOT flat: " })
            })
            .collect();
        let ratio = last.ready_ms / base.ready_ms;
        verdicts
            .push(format!("start to ready (median) {}{ratio:.2}×", if ratio <= 2.0 { "flat: " } else { "NOT flat: " }));
        println!();
        println!(
            "The last page's size grows with the largest session (its final `item.completed` carries the whole text it streamed): {}.",
            store_rows
                .iter()
                .map(|r| format!("{:.0} KiB at {}", r.last_page_bytes as f64 / 1024.0, thousands(r.largest_seq)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!();
        println!(
            "Verdict, p99 at {} events against {} events (flat = within 2×): {}.",
            thousands(last.events),
            thousands(base.events),
            verdicts.join("; ")
        );
        println!();
    }
    if !live_rows.is_empty() {
        println!(
            "Live mock sessions in one server, each running {} short turns (text or a tool call) at once; turn latency = POST message → `turn.completed` on the session's SSE stream; tether's memory = server RSS with the sessions live minus idle, per session (agents are separate processes).",
            a.turns
        );
        println!();
        println!("| live sessions | turns | turns / s | turn latency p50 | p99 | server RSS idle → 1 live → all live | per live session | per session after the first |");
        println!("|---|---|---|---|---|---|---|---|");
        for r in &live_rows {
            let per = (r.live_rss_kib.saturating_sub(r.idle_rss_kib)) as f64 / r.live as f64;
            let after_first = if r.live > 1 {
                format!("{:.0} KiB", (r.live_rss_kib as f64 - r.one_rss_kib as f64) / (r.live - 1) as f64)
            } else {
                "–".into()
            };
            println!(
                "| {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} → {:.1} → {:.1} MiB | {:.0} KiB | {after_first} |",
                r.live,
                r.turns,
                r.turns_per_s,
                r.p50,
                r.p99,
                r.idle_rss_kib as f64 / 1024.0,
                r.one_rss_kib as f64 / 1024.0,
                r.live_rss_kib as f64 / 1024.0,
                per
            );
        }
        if let (Some(f), Some(quiet)) = (&flood_row, live_rows.last()) {
            println!();
            println!("| {} live sessions, short turns | turns | p50 | p99 | max |", quiet.live);
            println!("|---|---|---|---|---|");
            println!(
                "| no flood | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
                quiet.turns, quiet.p50, quiet.p99, quiet.max
            );
            println!(
                "| while {} sessions each stream `[mock:flood:{FLOOD_DELTAS}]` ({:.1} s) | {} | {:.1} ms | {:.1} ms | {:.1} ms |",
                f.floods, f.flood_s, f.overlapped, f.p50, f.p99, f.max
            );
            let ratio = f.p99 / quiet.p99;
            println!();
            println!(
                "Starvation: the short turns' p99 while the floods run is {ratio:.2}× the quiet one's ({}), the longest {:.0} ms.",
                if ratio <= 2.0 { "within 2×" } else { "over 2×" },
                f.max
            );
        }
        println!();
        let events: u64 = flood_row.as_ref().map_or(0, |f| f.flood_events);
        println!(
            "No loss: every SSE client read exactly its session's stored seqs, every session's stored events gap-free{}.",
            if events > 0 { format!(" ({} events in the last run)", thousands(events)) } else { String::new() }
        );
    }
    println!("<!-- /bench-scale -->");

    if let Some(docs) = &a.charts {
        if !store_rows.is_empty() {
            let mut series: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
            let names: Vec<String> = GETS.iter().map(|g| format!("{g} (p50)")).collect();
            for (i, name) in names.iter().enumerate() {
                series.push((name, store_rows.iter().map(|r| (r.events as f64, r.gets[i].0)).collect()));
            }
            series
                .push(("start to ready (median)", store_rows.iter().map(|r| (r.events as f64, r.ready_ms)).collect()));
            draw(
                &docs.join("bench-scale-pages.svg"),
                Chart::new("Request latency against events stored", "events stored", "ms").log_x().log_y(),
                &series,
            );
            draw(
                &docs.join("bench-scale-bytes.svg"),
                Chart::new("Store size against events stored", "events stored", "bytes on disk per event").log_x(),
                &[(
                    "database + WAL / events",
                    store_rows.iter().map(|r| (r.events as f64, r.bytes_per_event)).collect(),
                )],
            );
        }
        if !live_rows.is_empty() {
            draw(
                &docs.join("bench-scale-sessions.svg"),
                Chart::new("Turn latency against live sessions", "live sessions (each running turns)", "ms").log_x(),
                &[
                    ("p50", live_rows.iter().map(|r| (r.live as f64, r.p50)).collect()),
                    ("p99", live_rows.iter().map(|r| (r.live as f64, r.p99)).collect()),
                ],
            );
        }
    }
}
