//! `cargo run --release -p tether-e2e --bin bench-cli [-- --sessions N --runs N]`:
//! how fast the terminal client answers. A real server (the binary under
//! test, `$TETHER_BIN` or built in release) holds N mock sessions; the client
//! binary is then run again and again, spawn to exit, for `tether --version`
//! (the process alone), `tether sessions` (one request, the table printed)
//! and `tether sessions` through a Sprites TCP proxy on loopback (the fake in
//! tests/src/remote.rs: WebSocket handshake, init, relayed HTTP). Prints a
//! Markdown table (the README's `bench-cli` block).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tether_e2e::remote::FakeSpritesProxy;
use tether_e2e::server::scrub_env;
use tether_e2e::{mock_session, tether_bin, ServerOptions, TestServer};

const TOKEN: &str = "bench-cli-token";

fn args() -> (usize, usize) {
    let (mut sessions, mut runs) = (100, 30);
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = || it.next().and_then(|v| v.parse().ok()).expect("a number after the flag");
        match arg.as_str() {
            "--sessions" => sessions = num(),
            "--runs" => runs = num(),
            other => panic!("unknown argument {other:?}"),
        }
    }
    (sessions, runs)
}

/// Spawn-to-exit times of `tether ARGS`, `runs` times (after one warm-up run).
fn time(runs: usize, args: &[&str], env: &[(&str, &str)]) -> Vec<Duration> {
    let once = || {
        let mut cmd = Command::new(tether_bin());
        scrub_env(&mut cmd);
        cmd.args(args).envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let took = started.elapsed();
        assert!(out.status.success(), "tether {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        took
    };
    once();
    let mut times: Vec<Duration> = (0..runs).map(|_| once()).collect();
    times.sort();
    times
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let (sessions, runs) = args();
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    for _ in 0..sessions {
        mock_session(&client).await;
    }
    let proxy = FakeSpritesProxy::start("bench", "sprites-token", None).await;
    let url = server.endpoint("");
    let port = server.port().to_string();
    let proxy_url = proxy.url.clone();
    let rows: Vec<(String, Vec<Duration>)> = tokio::task::spawn_blocking(move || {
        let direct = [("TETHER_URL", url.as_str()), ("TETHER_TOKEN", TOKEN)];
        let sprite = [("TETHER_TOKEN", TOKEN), ("SPRITES_TOKEN", "sprites-token")];
        let via = ["sessions", "--sprite", "bench", "--sprites-api", &proxy_url, "--sprite-port", &port];
        vec![
            ("`tether --version` (the process alone)".to_owned(), time(runs, &["--version"], &[])),
            (format!("`tether sessions` ({sessions} sessions, loopback)"), time(runs, &["sessions"], &direct)),
            ("`tether sessions --sprite` (fake Sprites proxy on loopback)".to_owned(), time(runs, &via, &sprite)),
        ]
    })
    .await
    .unwrap();
    println!("| command, spawn to exit ({runs} runs) | median | p90 | max |");
    println!("|---|---|---|---|");
    for (name, t) in rows {
        let at = |q: f64| t[((t.len() as f64 - 1.0) * q).round() as usize];
        println!("| {name} | {} | {} | {} |", ms(at(0.5)), ms(at(0.9)), ms(at(1.0)));
    }
}
