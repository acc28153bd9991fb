//! `cargo run -p tether-e2e --bin bench-faults [-- --kills N --seed S --max-flood F]`:
//! the `kill -9` fault loop of `tether_e2e::faults` for N kills (200 by
//! default) of the real binary (`$TETHER_BIN`, or the one cargo built), at
//! random points of session create, delete, retention purges, webhook
//! delivery, skill install and flood turns (up to F deltas, 20,000 by
//! default), each followed by a restart and the loop's checks. Prints a
//! Markdown summary: kills by operation in flight, events and sessions
//! checked, recovery times, and the first violation with its seed (the
//! exit status is then 1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use tether_e2e::faults::{have_sqlite3, run, time_seed, Config};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut cfg = Config { kills: 200, seed: time_seed(), max_flood: 20_000 };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().expect("a value after the flag");
        match arg.as_str() {
            "--kills" => cfg.kills = value.parse().expect("kills"),
            "--seed" => cfg.seed = value.parse().expect("seed"),
            "--max-flood" => cfg.max_flood = value.parse().expect("max flood"),
            other => panic!("unknown argument {other:?}"),
        }
    }
    eprintln!("bench-faults: seed {} ({} kills)", cfg.seed, cfg.kills);
    if !have_sqlite3() {
        eprintln!("bench-faults: no sqlite3 CLI on the PATH: the store's integrity is not checked");
    }
    let report = run(cfg).await;
    println!("{}", report.markdown());
    if report.violation.is_some() {
        std::process::exit(1);
    }
}
