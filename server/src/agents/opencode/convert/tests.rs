//! The OpenCode converter on recorded `opencode serve` 1.18.33 event streams
//! (testdata/<case>.events.jsonl; the calls that drove them in <case>.calls.jsonl).

use serde_json::Value;
use tether_protocol::{Delta, ItemKind, ItemStatus, PermissionAction, StopReason, ToolKind};

use super::OpencodeConverter;
use crate::agents::Draft;

fn recording(case: &str) -> (&'static str, &'static str) {
    macro_rules! rec {
        ($($name:literal),*) => {
            match case {
                $($name => (
                    include_str!(concat!("../testdata/", $name, ".calls.jsonl")),
                    include_str!(concat!("../testdata/", $name, ".events.jsonl")),
                ),)*
                other => panic!("no recording {other}"),
            }
        };
    }
    rec!(
        "text",
        "reasoning",
        "bash",
        "write_allowed",
        "write_denied",
        "question",
        "slow_abort",
        "error_401",
        "error_500",
        "two_turns",
        "resume_first",
        "resume",
        "mcp"
    )
}

#[test]
fn every_recording_replays_to_its_snapshot() {
    for case in crate::agents::snapshots::cases("opencode", ".events.jsonl") {
        crate::agents::snapshots::check("opencode", &case, &replay(&case));
    }
}

/// Replays the events of a case; each prompt the recorder sent starts a turn.
fn replay(case: &str) -> Vec<Draft> {
    replay_with(case, &[])
}

/// [`replay`] for a session with the MCP servers `mcp`.
fn replay_with(case: &str, mcp: &[&str]) -> Vec<Draft> {
    let (calls, events) = recording(case);
    let calls: Vec<Value> =
        calls.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    let session = calls
        .iter()
        .find_map(|c| {
            c["path"]
                .as_str()
                .and_then(|p| p.strip_prefix("/session/"))
                .map(|p| p.split('/').next().unwrap().to_string())
        })
        .expect("a call naming the session");
    let prompts = calls.iter().filter(|c| c["path"].as_str().unwrap_or("").ends_with("/prompt_async")).count();
    let mut c = OpencodeConverter::default();
    c.set_session(Some(session));
    c.set_mcp_servers(mcp.iter().map(|s| s.to_string()).collect());
    c.turn_started();
    let mut turns = 1;
    let mut drafts = Vec::new();
    for line in events.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let d = c.event(&v, line);
        let ended = d.iter().any(|d| matches!(d, Draft::TurnCompleted { .. }));
        drafts.extend(d);
        if ended && turns < prompts {
            c.turn_started();
            turns += 1;
        }
    }
    let unparsed: Vec<_> = drafts.iter().filter(|d| matches!(d, Draft::Unparsed { .. })).collect();
    assert!(unparsed.is_empty(), "{case}: {unparsed:?}");
    drafts
}

fn turn_ends(d: &[Draft]) -> Vec<StopReason> {
    d.iter()
        .filter_map(|d| match d {
            Draft::TurnCompleted { stop_reason, .. } => Some(*stop_reason),
            _ => None,
        })
        .collect()
}

fn text_deltas(d: &[Draft]) -> String {
    d.iter()
        .filter_map(|d| match d {
            Draft::ItemDelta { delta: Delta::Text(t), .. } => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn text_streams_and_the_idle_session_ends_the_turn() {
    let d = replay("text");
    assert_eq!(text_deltas(&d), "Scripted reply: Hello from the recorder");
    assert!(d.iter().any(|d| matches!(d, Draft::ItemCompleted { kind: ItemKind::Message, .. })));
    assert_eq!(turn_ends(&d), vec![StopReason::EndTurn]);
    // The user's own message is not an assistant item: one message item only.
    let messages = d.iter().filter(|d| matches!(d, Draft::ItemStarted { kind: ItemKind::Message, .. })).count();
    assert_eq!(messages, 1);
    assert!(d.iter().any(|d| matches!(d, Draft::Usage(_))));
}

#[test]
fn reasoning_deltas_are_told_apart_by_their_part() {
    let d = replay("reasoning");
    assert!(d.iter().any(|d| matches!(d, Draft::ItemDelta { delta: Delta::Reasoning(_), .. })));
    assert!(d.iter().any(|d| matches!(d, Draft::ItemCompleted { kind: ItemKind::Reasoning, .. })));
}

#[test]
fn bash_asks_and_completes_with_output_and_exit_code() {
    let d = replay("bash");
    let asked = d.iter().find_map(|d| match d {
        Draft::PermissionRequested { action, command, native_item_id, .. } => {
            Some((*action, command.clone(), native_item_id.clone()))
        }
        _ => None,
    });
    let (action, command, item) = asked.expect("a permission request");
    assert_eq!(action, PermissionAction::Shell);
    assert!(command.unwrap().contains("scripted-bash-output"));
    let done = d.iter().find_map(|d| match d {
        Draft::ItemCompleted { native_id, tool: Some(t), status, .. } if Some(native_id) == item.as_ref() => {
            Some((t.clone(), *status))
        }
        _ => None,
    });
    let (tool, status) = done.expect("the permission names the tool item");
    assert_eq!((tool.kind, tool.exit_code, status), (ToolKind::Shell, Some(0), ItemStatus::Completed));
    assert!(tool.output.unwrap().contains("scripted-bash-output"));
    assert_eq!(turn_ends(&d), vec![StopReason::EndTurn]);
}

#[test]
fn writes_ask_with_a_diff_and_a_rejection_fails_the_tool() {
    for (case, status) in [("write_allowed", ItemStatus::Completed), ("write_denied", ItemStatus::Failed)] {
        let d = replay(case);
        let diff = d.iter().find_map(|d| match d {
            Draft::PermissionRequested { action: PermissionAction::FileEdit, diff, .. } => diff.clone(),
            _ => None,
        });
        assert!(diff.expect(case).contains("written by opencode"), "{case}");
        let tool_status = d.iter().find_map(|d| match d {
            Draft::ItemCompleted { kind: ItemKind::ToolCall, status, .. } => Some(*status),
            _ => None,
        });
        assert_eq!(tool_status, Some(status), "{case}");
        assert_eq!(turn_ends(&d).len(), 1, "{case}");
    }
}

#[test]
fn question_tool_asks() {
    let d = replay("question");
    let q = d.iter().find_map(|d| match d {
        Draft::QuestionRequested { questions, .. } => Some(questions.clone()),
        _ => None,
    });
    assert_eq!(q.expect("a question")[0].prompt, "Which colour?");
    assert_eq!(turn_ends(&d), vec![StopReason::EndTurn]);
}

#[test]
fn abort_and_errors_end_the_turn() {
    assert_eq!(turn_ends(&replay("slow_abort")), vec![StopReason::Interrupted]);
    let e = replay("error_401");
    assert!(e.iter().any(|d| matches!(d, Draft::Error { code, .. } if code == "APIError")));
    assert_eq!(turn_ends(&e), vec![StopReason::Error]);
}

#[test]
fn two_turns_and_a_resumed_session() {
    assert_eq!(turn_ends(&replay("two_turns")), vec![StopReason::EndTurn, StopReason::EndTurn]);
    assert_eq!(turn_ends(&replay("resume")), vec![StopReason::EndTurn]);
}

/// `mcp`: a stdio server `tt` whose tools ask (`tt_*`), `tt_echo` called
/// after the permission, then the `skill` tool loading a skill.
#[test]
fn an_mcp_tool_is_an_mcp_item_named_by_its_server_and_the_skill_tool_is_a_tool() {
    let d = replay_with("mcp", &["tt"]);
    let asked = d.iter().find_map(|d| match d {
        Draft::PermissionRequested { action, title, native_item_id, .. } => {
            Some((*action, title.clone(), native_item_id.clone()))
        }
        _ => None,
    });
    let (action, title, item) = asked.expect("a permission request");
    assert_eq!((action, title.as_str()), (PermissionAction::Mcp, "Call echo on the MCP server tt"));
    let tools: Vec<_> = d
        .iter()
        .filter_map(|d| match d {
            Draft::ItemCompleted { native_id, tool: Some(t), status, .. } => Some((native_id, t, *status)),
            _ => None,
        })
        .collect();
    assert_eq!(tools.len(), 2, "{tools:?}");
    let (id, echo, status) = &tools[0];
    assert_eq!(Some(*id), item.as_ref(), "the permission names the tool item");
    assert_eq!((echo.kind, echo.server.as_deref(), echo.name.as_str()), (ToolKind::Mcp, Some("tt"), "echo"));
    assert_eq!((echo.output.as_deref(), *status), (Some("echo: hello mcp"), ItemStatus::Completed));
    let (_, skill, status) = &tools[1];
    assert_eq!((skill.name.as_str(), skill.server.as_deref(), *status), ("skill", None, ItemStatus::Completed));
    assert!(skill.output.as_deref().unwrap_or("").contains("REC-SKILL-BODY"), "{skill:?}");
    assert_eq!(turn_ends(&d), vec![StopReason::EndTurn, StopReason::EndTurn]);
}
