//! OpenTelemetry export: a collector (tests/src/otlp.rs, decoding with
//! `opentelemetry-proto`) receives one trace per turn — the turn, its tool
//! calls and the permission wait, with the GenAI conventions' attributes —
//! joined to the caller's trace when it sent a `traceparent`, and the usage
//! metrics; content only when asked for; a collector that is down or slow
//! costs spans, never events. The servers start as the README's command
//! does (`tether serve`, the collector given by `OTEL_EXPORTER_OTLP_ENDPOINT`).

use std::time::Duration;

use tether_e2e::anthropic::{claude_env, ScriptedAnthropic};
use tether_e2e::benchkit::{read_turn, stored_seqs};
use tether_e2e::events::*;
use tether_e2e::otlp::{refusing_url, Collector, SpanSeen};
use tether_e2e::webhook_receiver::Receiver;
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::{Decision, EventBody, PermissionMode, PermissionReply};

const WAIT: Duration = Duration::from_secs(30);
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A server exporting to `url` (spans sent at once, metrics every 200 ms), with `env` added.
async fn exporting_server(url: &str, env: &[(&str, &str)]) -> TestServer {
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), url.to_string()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "0".to_string()),
        ("OTEL_METRIC_EXPORT_INTERVAL".to_string(), "200".to_string()),
    ];
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TestServer::start_with(ServerOptions { env: all, ..Default::default() }).await
}

fn span<'a>(spans: &'a [SpanSeen], name: &str) -> &'a SpanSeen {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let names: Vec<_> = spans.iter().map(|s| &s.name).collect();
        panic!("no span {name:?} among {names:?}")
    })
}

/// `[mock:permission]` (a Write tool call that asks first) answered with allow.
async fn permission_turn(
    server: &TestServer,
    client: &tether_sdk::Client,
    text: &str,
) -> (String, Vec<tether_sdk::Event>) {
    let session = mock_session(client).await.id;
    let mut stream = client.session_events(&session, Some(0));
    client.send_text(&session, text).await.unwrap();
    let mut events = wait_for_type(&mut stream, TURN_TIMEOUT, "permission.requested").await;
    let EventBody::PermissionRequested(p) = &events.last().unwrap().body else { unreachable!() };
    let reply = PermissionReply { decision: Decision::AllowOnce, message: None };
    server.client().reply_permission(&session, &p.permission_id, &reply).await.unwrap();
    events.extend(wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await);
    (session, events)
}

#[tokio::test]
async fn a_turn_is_one_trace_joined_to_the_callers() {
    let collector = Collector::start().await;
    let server = exporting_server(&collector.url, &[("OTEL_SERVICE_NAME", "agents-under-test")]).await;
    let receiver = Receiver::start("telemetry-secret").await;
    let hook = serde_json::json!({"url": receiver.url(), "secret": "telemetry-secret", "events": ["turn.completed"]});
    let created = server.client().request(Method::POST, "/v1/webhooks").json(&hook).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let caller = server.client().with_traceparent(format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"));
    let (session, events) = permission_turn(&server, &caller, "[mock:permission] write the file").await;

    // turn.started records the trace the spans carry.
    let started = events.iter().find_map(|e| match &e.body {
        EventBody::TurnStarted(t) => Some(t.clone()),
        _ => None,
    });
    let trace = started.and_then(|t| t.trace).expect("turn.started records its trace");
    assert_eq!(trace.trace_id, CALLER_TRACE);
    assert_eq!(trace.parent_span_id.as_deref(), Some(CALLER_SPAN));
    // The webhook delivery of the turn's end names the turn's span.
    let deliveries = receiver.wait_until(WAIT, "turn.completed", |d| d.iter().any(|d| d.acknowledged())).await;
    let expected = format!("00-{CALLER_TRACE}-{}-01", trace.span_id);
    assert_eq!(deliveries[0].traceparent.as_deref(), Some(expected.as_str()));
    receiver.assert_all_signed();

    collector.wait_for("the turn's span", WAIT, |s, _| s.iter().any(|s| s.name == "invoke_agent mock")).await;
    let spans = collector.spans();
    assert!(spans.iter().all(|s| s.trace_id == CALLER_TRACE), "one trace, the caller's: {spans:#?}");
    let turn = span(&spans, "invoke_agent mock");
    assert_eq!(turn.span_id, trace.span_id, "the turn span is the one turn.started named");
    assert_eq!(turn.parent_span_id, CALLER_SPAN);
    assert_eq!(turn.attr("gen_ai.operation.name"), Some("invoke_agent"));
    assert_eq!(turn.attr("gen_ai.agent.name"), Some("mock"));
    assert_eq!(turn.attr("gen_ai.conversation.id"), Some(session.as_str()));
    assert!(turn.attr("gen_ai.system").is_some() && turn.attr("gen_ai.provider.name").is_some());
    assert_eq!(turn.attr("gen_ai.response.finish_reasons"), Some(r#"["end_turn"]"#));
    let input: u64 = turn.attr("gen_ai.usage.input_tokens").expect("input tokens").parse().unwrap();
    let output: u64 = turn.attr("gen_ai.usage.output_tokens").expect("output tokens").parse().unwrap();
    assert!(input > 0 && output > 0, "{turn:#?}");
    assert_eq!(turn.status_code, 0, "{turn:#?}");
    assert_eq!(turn.resource.get("service.name").map(String::as_str), Some("agents-under-test"));
    assert!(turn.resource.get("tether.store.id").is_some_and(|s| s.starts_with("sto_")), "{:?}", turn.resource);

    let tool = span(&spans, "execute_tool Write");
    assert_eq!(tool.parent_span_id, turn.span_id);
    assert_eq!(tool.attr("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(tool.attr("gen_ai.tool.name"), Some("Write"));
    assert!(tool.attr("gen_ai.tool.call.id").is_some_and(|id| !id.is_empty()));
    assert_eq!(tool.attr("tether.tool.kind"), Some("file_edit"));
    assert_eq!(tool.attr("tether.tool.status"), Some("completed"));
    assert!(tool.start_ns >= turn.start_ns && tool.end_ns <= turn.end_ns, "the tool call is inside the turn");

    let wait = span(&spans, "permission file_write");
    assert_eq!(wait.parent_span_id, tool.span_id, "the permission waits inside its tool call");
    assert_eq!(wait.attr("tether.permission.decision"), Some("allow_once"));
    assert_eq!(wait.attr("tether.permission.resolved_by"), Some("client"));
    assert!(wait.end_ns > wait.start_ns);

    // Content is not exported unless asked for.
    for s in &spans {
        for key in [
            "gen_ai.input.messages",
            "gen_ai.output.messages",
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
            "tether.permission.title",
        ] {
            assert!(s.attr(key).is_none(), "{key} on {} without content capture: {s:#?}", s.name);
        }
    }

    // The usage and durations as metrics.
    collector
        .wait_for("the token and duration metrics", WAIT, |_, p| {
            let has = |name: &str| p.iter().any(|p| p.metric == name);
            has("tether.tokens")
                && has("tether.turn.duration")
                && has("tether.tool.duration")
                && has("tether.permission.wait")
        })
        .await;
    let points = collector.points();
    let tokens = |kind: &str| {
        points
            .iter()
            .filter(|p| {
                p.metric == "tether.tokens" && p.attributes.get("gen_ai.token.type").map(String::as_str) == Some(kind)
            })
            .map(|p| p.value)
            .fold(0.0, f64::max)
    };
    assert_eq!(tokens("input") as u64, input);
    assert_eq!(tokens("output") as u64, output);
    assert!(points
        .iter()
        .any(|p| p.metric == "tether.tokens"
            && p.attributes.get("gen_ai.agent.name").map(String::as_str) == Some("mock")));
    assert!(collector.rejected().is_empty(), "{:?}", collector.rejected());

    // The same figures on /metrics.
    let text = server.client().metrics().await.unwrap();
    assert!(
        text.contains(&format!("tether_tokens_total{{agent=\"mock\",model=\"mock-model\",type=\"input\"}} {input}")),
        "{text}"
    );
    assert!(text.contains("tether_permission_wait_seconds_count{decision=\"allow_once\"} 1"), "{text}");
    assert!(
        text.contains("tether_tool_call_duration_seconds_count{kind=\"file_edit\",status=\"completed\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_turn_started_through_the_mcp_tools_joins_the_trace_in_meta() {
    use tether_e2e::tether_mcp::{call, call_meta, connect_with};
    let collector = Collector::start().await;
    let server = exporting_server(&collector.url, &[]).await;
    let mcp = connect_with(&server, None).await.unwrap();
    let created = call(&mcp, "create_session", serde_json::json!({"agent": "mock"})).await.unwrap();
    let session = created["session_id"].as_str().unwrap().to_string();
    let mut meta = rmcp::model::RequestMetaObject::new();
    meta.insert("traceparent".into(), format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01").into());
    let args = serde_json::json!({"session_id": session, "text": "[mock:tool]"});
    call_meta(&mcp, "send_message", args, meta).await.unwrap();
    collector.wait_for("the turn's span", WAIT, |s, _| s.iter().any(|s| s.name == "invoke_agent mock")).await;
    let spans = collector.spans();
    let turn = span(&spans, "invoke_agent mock");
    assert_eq!((turn.trace_id.as_str(), turn.parent_span_id.as_str()), (CALLER_TRACE, CALLER_SPAN));
    let events = read_all(&server.client(), &session).await;
    let trace = events.iter().find_map(|e| match &e.body {
        EventBody::TurnStarted(t) => t.trace.clone(),
        _ => None,
    });
    assert_eq!(trace.map(|t| t.trace_id).as_deref(), Some(CALLER_TRACE));
}

#[tokio::test]
async fn content_is_exported_only_when_enabled() {
    let collector = Collector::start().await;
    let server =
        exporting_server(&collector.url, &[("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")]).await;
    let client = server.client();
    let (_, events) = permission_turn(&server, &client, "[mock:permission] write the secret file").await;
    // Without a traceparent the turn starts a trace of its own.
    let trace = events.iter().find_map(|e| match &e.body {
        EventBody::TurnStarted(t) => t.trace.clone(),
        _ => None,
    });
    let trace = trace.expect("turn.started records its trace");
    assert_eq!(trace.parent_span_id, None);
    collector.wait_for("the turn's span", WAIT, |s, _| s.iter().any(|s| s.name == "invoke_agent mock")).await;
    let spans = collector.spans();
    let turn = span(&spans, "invoke_agent mock");
    assert_eq!(turn.trace_id, trace.trace_id);
    assert_eq!(turn.parent_span_id, "", "a root span");
    assert!(turn.attr("gen_ai.input.messages").is_some_and(|m| m.contains("write the secret file")), "{turn:#?}");
    assert!(turn.attr("gen_ai.output.messages").is_some_and(|m| m.contains("I wrote the file.")), "{turn:#?}");
    let tool = span(&spans, "execute_tool Write");
    assert!(tool.attr("gen_ai.tool.call.arguments").is_some_and(|a| a.contains("mock-permission.txt")), "{tool:#?}");
}

#[tokio::test]
async fn a_collector_that_is_down_costs_no_event() {
    let url = refusing_url().await;
    let server = exporting_server(&url, &[]).await;
    let client = server.client();
    let session = mock_session(&client).await.id;
    let after = client.get_session(&session).await.unwrap().last_seq;
    let reader = tokio::spawn(read_turn(server.url.clone(), session.clone(), after));
    client.send_text(&session, "[mock:flood:20000]").await.unwrap();
    let (last, _) = reader.await.unwrap();
    assert!(last >= after + 20_000, "the client stopped at {last}");
    assert!(stored_seqs(&client, &session).await >= last, "the client read past the stored events");
    // The failed exports are counted; the server keeps serving.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = client.metrics().await.unwrap();
        let failures = text.lines().find_map(|l| l.strip_prefix("tether_otel_export_failures_total ")).unwrap_or("0");
        if failures.trim() != "0" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed export counted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(client.health().await.is_ok());
}

#[tokio::test]
async fn a_slow_collector_drops_spans_not_events() {
    // One span fits in the queue, and the collector takes 5 s per request:
    // the spans of the next turns find the queue full.
    let collector = Collector::slow(Duration::from_secs(5)).await;
    let env = [("OTEL_BSP_MAX_QUEUE_SIZE", "1"), ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1")];
    let server = exporting_server(&collector.url, &env).await;
    let client = server.client();
    let session = mock_session(&client).await.id;
    for _ in 0..3 {
        let after = client.get_session(&session).await.unwrap().last_seq;
        let reader = tokio::spawn(read_turn(server.url.clone(), session.clone(), after));
        client.send_text(&session, "[mock:tool]").await.unwrap();
        tokio::time::timeout(Duration::from_secs(15), reader).await.expect("a turn waited on the collector").unwrap();
    }
    let text = client.metrics().await.unwrap();
    let dropped: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("tether_otel_spans_dropped_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(dropped > 0, "no span counted as dropped:\n{text}");
    let last = client.get_session(&session).await.unwrap().last_seq;
    assert_eq!(stored_seqs(&client, &session).await, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claude_turn_is_traced_with_its_model_and_usage() {
    let collector = Collector::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), collector.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "0".to_string()),
    ];
    let rig = tether_e2e::rig::Rig::start_with(
        "claude",
        ScriptedAnthropic::start().await,
        claude_env,
        ServerOptions { env, ..Default::default() },
    )
    .await;
    let session = rig.session(PermissionMode::Default).await;
    let (events, asked) = rig.turn_answering(&session.id, "[claude:write] write it", Decision::AllowOnce).await;
    assert_eq!(asked.len(), 1, "{}", describe(&events));
    collector.wait_for("the Claude turn", WAIT, |s, _| s.iter().any(|s| s.name == "invoke_agent claude")).await;
    let spans = collector.spans();
    let turn = span(&spans, "invoke_agent claude");
    assert_eq!(turn.attr("gen_ai.provider.name"), Some("anthropic"));
    assert!(turn.attr("gen_ai.usage.output_tokens").is_some_and(|n| n.parse::<u64>().unwrap() > 0), "{turn:#?}");
    let tool = span(&spans, "execute_tool Write");
    assert_eq!(tool.parent_span_id, turn.span_id);
    assert_eq!(tool.trace_id, turn.trace_id);
    let wait = spans.iter().find(|s| s.name.starts_with("permission ")).expect("the permission's span");
    assert_eq!(wait.parent_span_id, tool.span_id);
    assert!(spans.iter().any(|s| s.name.starts_with("chat ") && s.parent_span_id == turn.span_id), "{spans:#?}");
}

#[tokio::test]
async fn inside_a_sprite_the_resource_names_it() {
    let fake = tether_e2e::sprite::FakeSprite::start().await;
    let collector = Collector::start().await;
    let env = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT".to_string(), collector.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "0".to_string()),
    ];
    let extra_args = vec!["--sprite-socket".to_string(), fake.socket().to_str().unwrap().to_string()];
    let server = TestServer::start_with(ServerOptions { env, extra_args, ..Default::default() }).await;
    let client = server.client();
    let session = mock_session(&client).await.id;
    client.send_text(&session, "[mock:text] hello").await.unwrap();
    collector.wait_for("the turn's span", WAIT, |s, _| s.iter().any(|s| s.name == "invoke_agent mock")).await;
    let turn = span(&collector.spans(), "invoke_agent mock").clone();
    // The name the Sprite's own API answers (tests/src/sprite.rs: "fake-sprite").
    assert_eq!(turn.resource.get("tether.sprite.name").map(String::as_str), Some("fake-sprite"), "{:?}", turn.resource);
}

#[tokio::test]
async fn the_sdk_sends_the_callers_current_span() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await.id;
    let caller = SpanContext::new(
        TraceId::from_hex(CALLER_TRACE).unwrap(),
        SpanId::from_hex(CALLER_SPAN).unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    // The orchestrator's span is current (a current-thread runtime: the guard holds across the await).
    let accepted = {
        let _current = opentelemetry::Context::new().with_remote_span_context(caller).attach();
        client.send_text(&session, "[mock:text] traced").await.unwrap()
    };
    let mut stream = client.session_events(&session, Some(0));
    let events = wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    let trace = events.iter().find_map(|e| match &e.body {
        EventBody::TurnStarted(t) if t.turn_id == accepted.turn_id => t.trace.clone(),
        _ => None,
    });
    let trace = trace.expect("turn.started records its trace");
    assert_eq!((trace.trace_id.as_str(), trace.parent_span_id.as_deref()), (CALLER_TRACE, Some(CALLER_SPAN)));
    // Without a current span, a new trace.
    let second = client.send_text(&session, "[mock:text] untraced").await.unwrap();
    let events = wait_for(
        &mut stream,
        TURN_TIMEOUT,
        |e| matches!(&e.body, EventBody::TurnCompleted(c) if c.turn_id == second.turn_id),
    )
    .await;
    let trace = events.iter().find_map(|e| match &e.body {
        EventBody::TurnStarted(t) if t.turn_id == second.turn_id => t.trace.clone(),
        _ => None,
    });
    let trace = trace.expect("turn.started records its trace");
    assert_ne!(trace.trace_id, CALLER_TRACE);
    assert_eq!(trace.parent_span_id, None);
}
