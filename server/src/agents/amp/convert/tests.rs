//! The converter on stream-json lines recorded from Amp
//! 0.0.1767830505-ga62310 against a scripted model (`testdata/`).

use super::*;

/// Every line of a capture, the turn started before the first.
fn run(capture: &str) -> Vec<Draft> {
    let mut c = AmpConverter::new();
    c.turn_started();
    capture.lines().filter(|l| !l.trim().is_empty()).flat_map(|l| c.convert(l)).collect()
}

fn turn_ends(drafts: &[Draft]) -> Vec<(StopReason, Option<(String, String)>)> {
    drafts
        .iter()
        .filter_map(|d| match d {
            Draft::TurnCompleted { stop_reason, error, .. } => Some((*stop_reason, error.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn init_names_the_thread() {
    let drafts = run(include_str!("../testdata/two_turns.jsonl"));
    assert_eq!(
        drafts[0],
        Draft::SessionStarted { native_session_id: Some("T-01a24ee5-8d85-735d-bfb9-a824aec52ece".into()), model: None }
    );
}

#[test]
fn a_text_message_is_one_item_with_one_delta_and_ends_the_turn() {
    let drafts = run(include_str!("../testdata/two_turns.jsonl"));
    assert_eq!(
        drafts[1..5],
        [
            Draft::ItemStarted {
                native_id: "amp_1_0".into(),
                kind: ItemKind::Message,
                role: Some(Role::Assistant),
                tool: None
            },
            Draft::ItemDelta { native_id: "amp_1_0".into(), delta: Delta::Text("Hello from fake".into()) },
            Draft::ItemCompleted {
                native_id: "amp_1_0".into(),
                kind: ItemKind::Message,
                role: Some(Role::Assistant),
                status: ItemStatus::Completed,
                content: vec![Part::text("Hello from fake")],
                tool: None,
                plan: None
            },
            Draft::Usage(Usage { input_tokens: Some(10), output_tokens: Some(5), ..Default::default() }),
        ]
    );
    // The first turn ends with its message; the second was never started by
    // the session here, and the final `result` (stdin closed) ends nothing more.
    assert_eq!(turn_ends(&drafts), vec![(StopReason::EndTurn, None)]);
    assert!(!drafts.iter().any(|d| matches!(d, Draft::Unparsed { .. })), "{drafts:?}");
}

#[test]
fn a_bash_call_is_a_shell_item_with_its_output_and_exit_code() {
    let drafts = run(include_str!("../testdata/bash.jsonl"));
    let Some(Draft::ItemStarted { native_id, kind: ItemKind::ToolCall, tool: Some(tool), .. }) =
        drafts.iter().find(|d| matches!(d, Draft::ItemStarted { kind: ItemKind::ToolCall, .. }))
    else {
        panic!("no tool item: {drafts:?}")
    };
    assert_eq!(native_id, "toolu_1");
    assert_eq!((tool.name.as_str(), tool.kind), ("Bash", ToolKind::Shell));
    assert_eq!(tool.input["cmd"], "echo hi");
    assert!(drafts.contains(&Draft::ToolResult {
        native_id: "toolu_1".into(),
        output: "hi\n".into(),
        is_error: false,
        exit_code: Some(0)
    }));
    // The tool_use message (stop_reason tool_use) does not end the turn; the text after it does.
    assert_eq!(turn_ends(&drafts), vec![(StopReason::EndTurn, None)]);
}

#[test]
fn file_edits_carry_their_diffs() {
    let drafts = run(include_str!("../testdata/edit.jsonl"));
    let tools: Vec<&Tool> = drafts
        .iter()
        .filter_map(|d| match d {
            Draft::ItemStarted { tool: Some(t), .. } => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(tools.len(), 2);
    assert_eq!(tools[0].kind, ToolKind::FileEdit);
    assert_eq!(tools[0].paths, vec!["/tmp/amp-probe/work/amp-written.txt".to_string()]);
    assert_eq!(
        tools[0].diff.as_deref(),
        Some("--- /dev/null\n+++ /tmp/amp-probe/work/amp-written.txt\n+written by amp\n")
    );
    assert!(tools[1].diff.as_deref().unwrap_or("").contains("-written\n+edited\n"), "{:?}", tools[1]);
    let edited = drafts.iter().find_map(|d| match d {
        Draft::ToolResult { native_id, output, .. } if native_id == "toolu_2" => Some(output.clone()),
        _ => None,
    });
    let edited = edited.expect("the edit's result");
    assert!(edited.starts_with("Index: /tmp/amp-probe/work/amp-written.txt\n"), "{edited}");
    assert!(edited.contains("-written by amp\n+edited by amp\n") && !edited.contains("```"), "{edited}");
}

#[test]
fn a_model_error_ends_the_turn_with_its_text() {
    let drafts = run(include_str!("../testdata/error_401.jsonl"));
    assert_eq!(
        turn_ends(&drafts),
        vec![(StopReason::Error, Some(("agent_error".into(), "Unauthorized. Check your access token.".into())))]
    );
}

#[test]
fn sigint_ends_the_turn_interrupted() {
    let drafts = run(include_str!("../testdata/interrupt.jsonl"));
    assert_eq!(turn_ends(&drafts), vec![(StopReason::Interrupted, None)]);
}

#[test]
fn a_result_ends_the_run_until_a_new_process_starts() {
    let mut c = AmpConverter::new();
    c.turn_started();
    for line in include_str!("../testdata/error_401.jsonl").lines() {
        assert!(!c.run_ended());
        c.convert(line);
    }
    assert!(c.run_ended());
    c.process_started();
    assert!(!c.run_ended());
}

#[test]
fn a_result_after_the_turn_ended_adds_nothing_and_garbage_is_unparsed() {
    let mut c = AmpConverter::new();
    let ok = r#"{"type":"result","subtype":"success","duration_ms":1,"is_error":false,"num_turns":1,"result":"x","session_id":"T-1"}"#;
    assert_eq!(c.convert(ok), vec![]);
    assert!(matches!(c.convert(r#"{"type":"nope"}"#)[..], [Draft::Unparsed { .. }]));
    assert!(matches!(c.convert("{not json")[..], [Draft::Unparsed { .. }]));
}

#[test]
fn an_mcp_call_is_an_mcp_item_with_the_servers_text() {
    let drafts = run(include_str!("../testdata/mcp.jsonl"));
    assert!(drafts.contains(&Draft::McpStatus { server: "tt".into(), status: McpServerState::Connected, error: None }));
    let Some(Draft::ItemStarted { tool: Some(tool), .. }) =
        drafts.iter().find(|d| matches!(d, Draft::ItemStarted { kind: ItemKind::ToolCall, .. }))
    else {
        panic!("no tool item: {drafts:?}")
    };
    assert_eq!((tool.name.as_str(), tool.kind, tool.server.as_deref()), ("echo", ToolKind::Mcp, Some("tt")));
    assert!(drafts.contains(&Draft::ToolResult {
        native_id: "toolu_m".into(),
        output: "echo: hello mcp".into(),
        is_error: false,
        exit_code: None
    }));
}
