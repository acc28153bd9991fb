//! The `kill -9` fault loop (`tether_e2e::faults`), bounded: about twenty
//! kills of the real server at random points of session create, delete
//! (purged or not), retention purges, webhook delivery, skill install and
//! flood turns, each followed by a restart and every check of the loop.
//! The seed is printed; `TETHER_FAULTS_SEED=<seed>` replays it.

use tether_e2e::faults::{run, time_seed, Config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_points_loses_nothing_and_leaves_every_stream_well_formed() {
    let seed = std::env::var("TETHER_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(time_seed);
    eprintln!("faults: seed {seed} (TETHER_FAULTS_SEED={seed} replays it)");
    let report = run(Config { kills: 20, seed, max_flood: 4000 }).await;
    eprintln!("{}", report.markdown());
    assert!(report.violation.is_none(), "seed {seed}: {}", report.violation.as_deref().unwrap_or_default());
    assert_eq!(report.kills, 20);
    assert!(report.sessions_checked > 0 && report.events_checked > 0, "{report:?}");
}
