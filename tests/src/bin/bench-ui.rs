//! `cargo run --release -p tether-e2e --bin bench-ui [-- --events N] [--json]`:
//! the inspector in a real Chromium (Debian's, headless) on a session of N
//! events (200,000 by default: mock turns of streamed text with tool calls
//! between them). Reports the time from navigation to the first rendered
//! window and to the end of history, the page's JS heap once the history is
//! in, frame times while scrolling from the end to the start of the
//! conversation, and a live `[mock:flood]` of N more events followed at full
//! speed (time to catch up, longest frame).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether_e2e::events::{wait_for, wait_status};
use tether_e2e::{mock_session, Browser, ServerOptions, TestServer};
use tether_sdk::EventBody;

const TOKEN: &str = "bench-token";
const DEADLINE: Duration = Duration::from_secs(600);

/// Sends turns to `id` until its log holds at least `events` events, each
/// batch followed to its last `turn.completed`.
async fn fill_session(server: &TestServer, id: &str, events: u64) -> u64 {
    let client = server.client();
    let mut turn = 0u64;
    loop {
        let last = client.get_session(id).await.unwrap().last_seq;
        if last >= events {
            return last;
        }
        // About 175 events a turn on average: batches that undershoot, then top up.
        let batch = (events - last).div_ceil(200).max(1);
        let mut stream = client.session_events(id, Some(last));
        let mut last_turn = String::new();
        for _ in 0..batch {
            // Every tenth turn runs a tool, so the conversation has more than text.
            let text = if turn % 10 == 9 {
                format!("[mock:tool] turn {turn}")
            } else {
                format!("[mock:flood:180] turn {turn}")
            };
            last_turn = client.send_text(id, text).await.unwrap().turn_id;
            turn += 1;
        }
        wait_for(&mut stream, DEADLINE, |e| matches!(&e.body, EventBody::TurnCompleted(t) if t.turn_id == last_turn))
            .await;
    }
}

/// Waits for the turn `turn_id` to complete; the session's last seq then.
async fn wait_turn(server: &TestServer, id: &str, after: u64, turn_id: &str) -> u64 {
    let client = server.client();
    let mut stream = client.session_events(id, Some(after));
    wait_for(&mut stream, DEADLINE, |e| matches!(&e.body, EventBody::TurnCompleted(t) if t.turn_id == turn_id)).await;
    // The session's status change after the turn is the last event.
    wait_status(&client, id, tether_sdk::SessionStatus::Idle, DEADLINE).await;
    client.get_session(id).await.unwrap().last_seq
}

/// Milliseconds from navigation start to the page's mark `name`.
async fn mark(b: &Browser, name: &str) -> f64 {
    b.wait_until(&format!("performance.getEntriesByName('{name}').length > 0")).await;
    b.eval(&format!("return performance.getEntriesByName('{name}')[0].startTime"), vec![]).await
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let events: u64 = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let as_json = args.iter().any(|a| a == "--json");

    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let session = mock_session(&server.client()).await;
    let t0 = Instant::now();
    let total = fill_session(&server, &session.id, events).await;
    eprintln!("session {} has {total} events (made in {:.1} s)", session.id, t0.elapsed().as_secs_f64());

    let b = Browser::open().await;
    b.goto(&server.endpoint("/ui/")).await;
    let _: Value = b.eval(&format!("localStorage.setItem('tether.token', '{TOKEN}'); return null"), vec![]).await;
    b.goto("about:blank").await;
    b.goto(&server.endpoint(&format!("/ui/#/sessions/{}", session.id))).await;
    let first_render = mark(&b, "tether:first-render").await;
    b.wait_until(&format!("window.tether.sessions['{}']?.history_done === true", session.id)).await;
    let history = mark(&b, "tether:history-loaded").await;
    let received: u64 = b.eval(&format!("return window.tether.sessions['{}'].seqs.length", session.id), vec![]).await;
    assert_eq!(received, total, "the page did not receive the whole history");
    let rows: u64 = b.eval("return document.querySelectorAll('#conv .row').length", vec![]).await;
    let heap = b.js_heap_bytes().await;

    // Scroll from the end to the start, a screenful per frame, timing each frame.
    let _: Value = b
        .eval(
            "const s = document.querySelector('#conv'); window.benchScroll = null;
             (async () => {
               const frames = []; let last = performance.now(); let steps = 0;
               while (s.scrollTop > 0 && steps < 5000) {
                 s.scrollTop -= s.clientHeight;
                 await new Promise((r) => requestAnimationFrame(r));
                 const now = performance.now(); frames.push(now - last); last = now; steps++;
               }
               frames.sort((a, b) => a - b);
               window.benchScroll = { steps, p50: frames[Math.floor(frames.length * 0.5)] || 0,
                 p95: frames[Math.floor(frames.length * 0.95)] || 0, max: frames[frames.length - 1] || 0,
                 top_row: Number(document.querySelector('#conv .row')?.dataset.index ?? -1) };
             })();
             return null",
            vec![],
        )
        .await;
    b.wait_until("window.benchScroll !== null").await;
    let scroll: Value = b.eval("return window.benchScroll", vec![]).await;
    assert_eq!(scroll["top_row"], 0, "scrolling did not reach the start: {scroll}");

    // A live flood followed at full speed; the longest gap between frames meanwhile.
    let _: Value = b
        .eval(
            "document.querySelector('#jump')?.click();
             window.benchFrames = { max: 0, stop: false };
             (async () => { let last = performance.now();
               while (!window.benchFrames.stop) { await new Promise((r) => requestAnimationFrame(r));
                 const now = performance.now(); window.benchFrames.max = Math.max(window.benchFrames.max, now - last); last = now; } })();
             return null",
            vec![],
        )
        .await;
    let flood_started = Instant::now();
    let flood = server.client().send_text(&session.id, format!("[mock:flood:{events}]")).await.unwrap();
    let after_flood = wait_turn(&server, &session.id, total, &flood.turn_id).await;
    b.wait_until(&format!("window.tether.sessions['{}'].seqs.at(-1) === {after_flood}", session.id)).await;
    let caught_up = flood_started.elapsed().as_secs_f64();
    let longest_frame: f64 = b.eval("window.benchFrames.stop = true; return window.benchFrames.max", vec![]).await;
    let heap_after = b.js_heap_bytes().await;
    b.screenshot("bench_ui_200k").await;

    let report = json!({
        "events": total,
        "first_render_ms": first_render,
        "history_loaded_ms": history,
        "rows_in_dom": rows,
        "js_heap_mib": heap as f64 / 1048576.0,
        "scroll_frames": scroll,
        "flood_events": after_flood - total,
        "flood_caught_up_s": caught_up,
        "flood_longest_frame_ms": longest_frame,
        "js_heap_after_flood_mib": heap_after as f64 / 1048576.0,
    });
    if as_json {
        println!("{report:#}");
        return;
    }
    println!("| inspector, {total}-event session, headless Chromium | value |");
    println!("|---|---|");
    println!("| navigation → first rendered window | {first_render:.0} ms |");
    println!("| navigation → end of history (all {total} events folded) | {history:.0} ms |");
    println!("| rows in the DOM / page JS heap after the history | {rows} / {:.1} MiB |", heap as f64 / 1048576.0);
    println!(
        "| scrolling end → start, a screen per frame ({} frames) | p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms per frame |",
        scroll["steps"],
        scroll["p50"].as_f64().unwrap_or(0.0),
        scroll["p95"].as_f64().unwrap_or(0.0),
        scroll["max"].as_f64().unwrap_or(0.0)
    );
    println!(
        "| live `[mock:flood:{events}]` followed | caught up {caught_up:.1} s after the send, longest frame {longest_frame:.0} ms, heap {:.1} MiB |",
        heap_after as f64 / 1048576.0
    );
}
