//! Pause detection (server/src/wake.rs) from outside: a server frozen by
//! SIGSTOP (the monotonic clock shows it), and a frozen VM whose wall clock
//! catches up later (stepped while the server runs, through the test-only
//! clock offset file). Either way the session with a running agent gets
//! `server.resumed` naming the clock that showed it, and the turn finishes.

use std::path::Path;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{EventBody, PauseSignal, ServerResumed, StopReason};

/// The `server.resumed` of these events (the last one).
fn the_resumed(events: &[tether_sdk::Event]) -> ServerResumed {
    match events.iter().rev().map(|e| &e.body).find(|b| matches!(b, EventBody::ServerResumed(_))) {
        Some(EventBody::ServerResumed(r)) => r.clone(),
        _ => panic!("no server.resumed in {}", describe_tail(events, 5)),
    }
}

/// Writes the wall-clock offset (ms) the server reads at every tick, whole (renamed into place).
fn set_clock_offset(file: &Path, ms: i64) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{ms}\n")).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// A mock session of `server` with a slow turn under way, and its stream.
async fn slow_turn_running(server: &TestServer) -> (tether_sdk::Client, String, tether_sdk::EventStream) {
    let client = server.client();
    let busy = mock_session(&client).await;
    let mut stream = client.session_events(&busy.id, Some(0));
    client.send_text(&busy.id, "[mock:slow]").await.unwrap();
    let before = wait_for_count(&mut stream, TURN_TIMEOUT, "item.delta", 2).await;
    assert!(of_type(&before, "server.resumed").is_empty(), "{}", describe_tail(&before, 5));
    (client, busy.id, stream)
}

/// Waits for `server.resumed`, checks how long and by which clock, then that
/// the turn still ends well and the session was told once.
async fn resumed_once_and_the_turn_finishes(
    client: &tether_sdk::Client,
    id: &str,
    stream: &mut tether_sdk::EventStream,
    paused_ms: std::ops::RangeInclusive<u64>,
    by: PauseSignal,
) {
    let got = wait_for_type(stream, Duration::from_secs(20), "server.resumed").await;
    let resumed = the_resumed(&got);
    assert!(paused_ms.contains(&resumed.paused_ms), "paused_ms {} not in {paused_ms:?}", resumed.paused_ms);
    assert_eq!(resumed.detected_by, Some(by));
    let rest = wait_for_type(stream, TURN_TIMEOUT, "turn.completed").await;
    assert_eq!(the_turn_completed(&rest).stop_reason, StopReason::EndTurn, "the agent kept running");
    let all = read_all(client, id).await;
    assert_well_formed(&all);
    assert_eq!(of_type(&all, "server.resumed").len(), 1, "one pause, one event");
}

#[tokio::test]
async fn a_stopped_server_is_detected_by_the_monotonic_clock_and_every_live_agent_is_told() {
    let server = TestServer::start_with(ServerOptions {
        extra_args: vec!["--pause-threshold-ms".into(), "1500".into()],
        ..Default::default()
    })
    .await;
    let (client, busy, mut stream) = slow_turn_running(&server).await;
    let idle = mock_session(&client).await;

    assert!(server.signal(libc::SIGSTOP));
    // The pause itself is the stimulus: the server is frozen for this long.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert!(server.signal(libc::SIGCONT));

    resumed_once_and_the_turn_finishes(&client, &busy, &mut stream, 1500..=60_000, PauseSignal::Monotonic).await;
    // The idle session's agent is live too: it is told as well.
    let idle_events = read_all(&client, &idle.id).await;
    assert_eq!(of_type(&idle_events, "server.resumed").len(), 1, "{}", describe_tail(&idle_events, 5));
}

#[tokio::test]
async fn a_frozen_clock_that_catches_up_later_is_detected_by_the_wall_clock() {
    let dir = tempfile::tempdir().unwrap();
    let offset = dir.path().join("clock-offset-ms");
    set_clock_offset(&offset, 0);
    let server = TestServer::start_with(ServerOptions {
        env: vec![("TETHER_TEST_CLOCK_OFFSET_FILE".into(), offset.display().to_string())],
        ..Default::default()
    })
    .await;
    let (client, busy, mut stream) = slow_turn_running(&server).await;

    // The server never stopped; its wall clock is stepped 120 s ahead, as a
    // VM's is when something steps it after a snapshot resume. The offset
    // staying where it is afterwards shows nothing more.
    set_clock_offset(&offset, 120_000);

    resumed_once_and_the_turn_finishes(&client, &busy, &mut stream, 119_000..=125_000, PauseSignal::WallClock).await;
}
