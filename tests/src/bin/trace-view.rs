//! Draws one turn's trace as tether exports it over OTLP, the way a trace
//! viewer shows it (docs/otel-trace.svg), and prints its spans as a
//! Markdown table: a mock turn that writes a file after asking first,
//! answered by a person 300 ms later, sent by an orchestrator whose own
//! span is the trace's root. The spans are the ones the test collector
//! (tests/src/otlp.rs) decoded from the export.
//!
//! `cargo run -p tether-e2e --bin trace-view` (`--out DIR`: elsewhere than docs/).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Duration;

use tether_e2e::charts::{waterfall, Bar};
use tether_e2e::events::wait_for_type;
use tether_e2e::otlp::{Collector, SpanSeen};
use tether_e2e::{mock_session, ServerOptions, TestServer, TURN_TIMEOUT};
use tether_sdk::{Decision, EventBody, PermissionReply};

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[tokio::main]
async fn main() {
    let out = tether_e2e::benchkit::out_dir();
    let collector = Collector::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), collector.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "0".to_string()),
    ];
    let server = TestServer::start_with(ServerOptions { env, ..Default::default() }).await;
    let client = server.client().with_traceparent(CALLER);
    let session = mock_session(&client).await.id;
    let mut stream = client.session_events(&session, Some(0));
    client.send_text(&session, "[mock:permission] write the file").await.unwrap();
    let asked = wait_for_type(&mut stream, TURN_TIMEOUT, "permission.requested").await;
    let Some(EventBody::PermissionRequested(p)) = asked.last().map(|e| e.body.clone()) else { unreachable!() };
    // A person reads the request before answering.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = PermissionReply { decision: Decision::AllowOnce, message: None };
    client.reply_permission(&session, &p.permission_id, &reply).await.unwrap();
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    collector
        .wait_for("the turn's span", Duration::from_secs(30), |s, _| {
            s.iter().any(|s| s.name.starts_with("invoke_agent"))
        })
        .await;

    let spans = collector.spans();
    let start = spans.iter().map(|s| s.start_ns).min().unwrap();
    let mut rows = Vec::new();
    let roots: Vec<&SpanSeen> = spans.iter().filter(|s| !spans.iter().any(|p| p.span_id == s.parent_span_id)).collect();
    for root in roots {
        walk(&spans, root, 0, &mut rows);
    }
    let bars: Vec<Bar> = rows
        .iter()
        .map(|(depth, s)| Bar {
            depth: *depth,
            label: s.name.clone(),
            start_ms: (s.start_ns - start) as f64 / 1e6,
            end_ms: (s.end_ns - start) as f64 / 1e6,
            error: s.status_code == 2,
        })
        .collect();
    let path = out.join("otel-trace.svg");
    waterfall(&path, "One turn's trace, as exported over OTLP (a person answers the permission after 300 ms)", &bars)
        .unwrap();
    eprintln!("wrote {}", path.display());
    println!("| span | parent | ms | attributes |");
    println!("|---|---|---|---|");
    for (depth, s) in &rows {
        let parent = spans
            .iter()
            .find(|p| p.span_id == s.parent_span_id)
            .map(|p| p.name.as_str())
            .unwrap_or("the caller's span");
        let keys = s
            .attributes
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("tether.item") && *k != "gen_ai.conversation.id" && *k != "tether.session.id"
            })
            .map(|(k, v)| format!("`{k}`={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let indent = "&nbsp;&nbsp;".repeat(*depth);
        let ms = (s.end_ns - s.start_ns) as f64 / 1e6;
        println!("| {indent}`{}` | {parent} | {ms:.1} | {keys} |", s.name);
    }
}

/// The spans under `span`, depth first, each child in start order.
fn walk<'a>(spans: &'a [SpanSeen], span: &'a SpanSeen, depth: usize, out: &mut Vec<(usize, &'a SpanSeen)>) {
    out.push((depth, span));
    let mut children: Vec<&SpanSeen> = spans.iter().filter(|c| c.parent_span_id == span.span_id).collect();
    children.sort_by_key(|c| c.start_ns);
    for c in children {
        walk(spans, c, depth + 1, out);
    }
}
