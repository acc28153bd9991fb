//! The Codex adapter replayed against recorded `codex app-server` 0.169.0
//! transcripts (testdata/<case>.out.jsonl, what codex wrote; <case>.in.jsonl,
//! what the recording client sent). The adapter must send the same requests
//! in the same order and turn every line into the expected drafts.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use tether_protocol::{
    Decision, Delta, ItemKind, ItemStatus, Part, PermissionAction, PermissionMode, StopReason, ToolKind,
};

use crate::agents::codex::wire::{RequestKind, ServerRequest};
use crate::agents::codex::CodexAdapter;
use crate::agents::lenient::Lenient;
use crate::agents::{Adapter, Draft, LaunchContext, NativeRequest};

fn recording(case: &str) -> (&'static str, &'static str) {
    macro_rules! rec {
        ($($name:literal),*) => {
            match case {
                $($name => (
                    include_str!(concat!("../testdata/", $name, ".in.jsonl")),
                    include_str!(concat!("../testdata/", $name, ".out.jsonl")),
                ),)*
                other => panic!("no recording {other}"),
            }
        };
    }
    rec!(
        "text",
        "reasoning",
        "shell",
        "shell_output_deltas",
        "touch_approved",
        "touch_declined",
        "touch_interrupted",
        "patch_approved",
        "patch_declined",
        "patch_update",
        "slow_interrupt",
        "failed",
        "http_500",
        "http_401",
        "two_turns",
        "resume_first",
        "resume",
        "resume_full_history",
        "mcp_bypass",
        "mcp_approved",
        "mcp_declined",
        "mcp_failed"
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn every_recording_replays_to_its_snapshot() {
    for case in crate::agents::snapshots::cases("codex", ".out.jsonl") {
        crate::agents::snapshots::check("codex", &case, &replay(&case));
    }
}

/// Replays a case: returns every draft, and checks the adapter sent what the recording client sent.
fn replay(case: &str) -> Vec<Draft> {
    let (sent, wrote) = recording(case);
    let sent = lines(sent);
    let start = sent.iter().find(|l| matches!(l["method"].as_str(), Some("thread/start" | "thread/resume"))).unwrap();
    let mode = match start["params"]["approvalPolicy"].as_str() {
        Some("never") => PermissionMode::Bypass,
        _ => PermissionMode::Default,
    };
    let resume = start["params"]["threadId"].as_str().map(str::to_string);
    let mut prompts: Vec<String> = sent
        .iter()
        .filter(|l| l["method"] == "turn/start")
        .map(|l| l["params"]["input"][0]["text"].as_str().unwrap().to_string())
        .collect();
    prompts.reverse();
    let interrupt = sent.iter().any(|l| l["method"] == "turn/interrupt");
    let decisions: Vec<Decision> = sent
        .iter()
        .filter_map(|l| l["result"]["decision"].as_str().or(l["result"]["action"].as_str()))
        .map(|d| if d == "decline" { Decision::Deny } else { Decision::AllowOnce })
        .collect();

    let mut adapter = CodexAdapter::new("codex".into());
    let env = BTreeMap::new();
    let cwd = start["params"]["cwd"].as_str().unwrap().to_string();
    let mcp = BTreeMap::new();
    let ctx = LaunchContext {
        permission_mode: mode,
        resume: resume.as_deref(),
        ..LaunchContext::for_test(Path::new(&cwd), &env, &mcp)
    };
    let spec = adapter.launch(&ctx);
    assert_eq!(spec.args, vec!["app-server".to_string()]);
    adapter.started();
    adapter.user_message(&[Part::text(prompts.pop().unwrap())]);
    let mut out = adapter.take_output();
    let mut drafts = Vec::new();
    let mut decisions = decisions.into_iter();
    let mut interrupted = !interrupt;
    for line in wrote.lines().filter(|l| !l.trim().is_empty()) {
        let d = adapter.convert(line);
        for draft in &d {
            match draft {
                Draft::PermissionRequested { native, .. } if !interrupt => {
                    adapter.permission_reply(native, decisions.next().unwrap(), None);
                }
                Draft::TurnCompleted { .. } => {
                    if let Some(p) = prompts.pop() {
                        adapter.user_message(&[Part::text(p)]);
                    }
                }
                _ => {}
            }
        }
        let progressed = d.iter().any(|d| matches!(d, Draft::ItemDelta { .. } | Draft::PermissionRequested { .. }));
        drafts.extend(d);
        if !interrupted && progressed {
            interrupted = adapter.interrupt();
        }
        out.extend(adapter.take_output());
    }
    // Same requests and answers, in the same order, as the recording client.
    let ours: Vec<(Value, Value)> =
        lines(std::str::from_utf8(&out).unwrap()).iter().map(|l| (l["id"].clone(), l["method"].clone())).collect();
    let theirs: Vec<(Value, Value)> = sent.iter().map(|l| (l["id"].clone(), l["method"].clone())).collect();
    assert_eq!(ours, theirs, "{case}: the adapter's requests differ from the recording");
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

fn completed(d: &[Draft], kind: ItemKind) -> Vec<&Draft> {
    d.iter().filter(|d| matches!(d, Draft::ItemCompleted { kind: k, .. } if *k == kind)).collect()
}

fn native_thread(d: &[Draft]) -> Option<String> {
    d.iter().find_map(|d| match d {
        Draft::SessionStarted { native_session_id, .. } => native_session_id.clone(),
        _ => None,
    })
}

#[test]
fn text_streams_and_completes_with_usage() {
    let d = replay("text");
    assert!(native_thread(&d).is_some());
    let deltas: String = d
        .iter()
        .filter_map(|d| match d {
            Draft::ItemDelta { delta: Delta::Text(t), .. } => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, "Scripted reply: Hello from the recorder");
    let messages = completed(&d, ItemKind::Message);
    assert!(
        matches!(messages[0], Draft::ItemCompleted { content, .. } if content == &vec![Part::text(deltas.clone())])
    );
    assert_eq!(turn_ends(&d), vec![StopReason::EndTurn]);
    assert!(d.iter().any(|d| matches!(d, Draft::TurnCompleted { usage: Some(u), .. } if u.output_tokens > Some(0))));
    // codex's configWarning is kept as a log line.
    assert!(d.iter().any(|d| matches!(d, Draft::Log { .. })));
}

#[test]
fn reasoning_summary_is_a_reasoning_item() {
    let d = replay("reasoning");
    assert!(d.iter().any(|d| matches!(d, Draft::ItemDelta { delta: Delta::Reasoning(_), .. })));
    assert_eq!(completed(&d, ItemKind::Reasoning).len(), 1);
}

#[test]
fn commands_carry_their_whole_output_and_exit_code() {
    for (case, output, code, status) in [
        ("shell", "scripted-shell-output", 0, ItemStatus::Completed),
        ("shell_output_deltas", "tick-1\ntick-2\ntick-3", 3, ItemStatus::Failed),
    ] {
        let d = replay(case);
        let tool = d.iter().find_map(|d| match d {
            Draft::ItemCompleted { kind: ItemKind::ToolCall, tool: Some(t), status, .. } => Some((t.clone(), *status)),
            _ => None,
        });
        let (tool, got_status) = tool.expect(case);
        assert_eq!(tool.kind, ToolKind::Shell);
        assert!(tool.output.as_deref().unwrap_or("").contains(output), "{case}: {tool:?}");
        assert_eq!((tool.exit_code, got_status), (Some(code), status), "{case}");
    }
}

#[test]
fn approvals_become_permission_requests_and_decline_declines() {
    for (case, action, status) in [
        ("touch_approved", PermissionAction::Shell, ItemStatus::Completed),
        ("touch_declined", PermissionAction::Shell, ItemStatus::Declined),
        ("patch_approved", PermissionAction::FileEdit, ItemStatus::Completed),
        ("patch_declined", PermissionAction::FileEdit, ItemStatus::Declined),
    ] {
        let d = replay(case);
        let asked = d.iter().find_map(|d| match d {
            Draft::PermissionRequested { action, command, diff, native_item_id, .. } => {
                Some((*action, command.clone(), diff.clone(), native_item_id.clone()))
            }
            _ => None,
        });
        let (got, command, diff, item) = asked.expect(case);
        assert_eq!(got, action, "{case}");
        match action {
            PermissionAction::Shell => assert!(command.unwrap().contains("touch codex-touched.txt")),
            _ => assert!(diff.unwrap().contains("patched by codex"), "{case}"),
        }
        let final_status = d.iter().find_map(|d| match d {
            Draft::ItemCompleted { native_id, status, .. } if Some(native_id) == item.as_ref() => Some(*status),
            _ => None,
        });
        assert_eq!(final_status, Some(status), "{case}");
        assert_eq!(turn_ends(&d), vec![StopReason::EndTurn], "{case}");
    }
    let update = replay("patch_update");
    assert!(completed(&update, ItemKind::ToolCall).iter().any(|d| matches!(d,
        Draft::ItemCompleted { tool: Some(t), .. } if t.kind == ToolKind::FileEdit && t.diff.as_deref().unwrap_or("").contains("@@"))));
}

#[test]
fn interrupts_end_the_turn_and_withdraw_an_open_approval() {
    let d = replay("slow_interrupt");
    assert_eq!(turn_ends(&d), vec![StopReason::Interrupted]);
    // The half-streamed message never completes: the normalizer closes it.
    assert!(completed(&d, ItemKind::Message).is_empty());
    let p = replay("touch_interrupted");
    assert_eq!(turn_ends(&p), vec![StopReason::Interrupted]);
    let asked = p.iter().find_map(|d| match d {
        Draft::PermissionRequested { native, .. } => Some(native.request_id()),
        _ => None,
    });
    let withdrawn = p.iter().find_map(|d| match d {
        Draft::RequestCancelled { native_request_id } => Some(native_request_id.clone()),
        _ => None,
    });
    assert_eq!(asked, withdrawn);
}

#[test]
fn model_failures_are_errors_and_failed_turns() {
    for case in ["failed", "http_500", "http_401"] {
        let d = replay(case);
        assert!(d.iter().any(|d| matches!(d, Draft::Error { .. })), "{case}");
        assert_eq!(turn_ends(&d), vec![StopReason::Error], "{case}");
        assert!(d.iter().any(|d| matches!(d, Draft::TurnCompleted { error: Some(_), .. })), "{case}");
    }
}

#[test]
fn two_turns_and_a_resumed_thread() {
    assert_eq!(turn_ends(&replay("two_turns")), vec![StopReason::EndTurn, StopReason::EndTurn]);
    let first = replay("resume_first");
    let resumed = replay("resume");
    assert!(native_thread(&first).is_some());
    assert_eq!(native_thread(&first), native_thread(&resumed));
    assert_eq!(turn_ends(&resumed), vec![StopReason::EndTurn]);
}

fn mcp_items(d: &[Draft]) -> Vec<(tether_protocol::Tool, ItemStatus)> {
    d.iter()
        .filter_map(|d| match d {
            Draft::ItemCompleted { kind: ItemKind::ToolCall, tool: Some(t), status, .. } if t.kind == ToolKind::Mcp => {
                Some((t.clone(), *status))
            }
            _ => None,
        })
        .collect()
}

fn mcp_states(d: &[Draft]) -> Vec<(String, tether_protocol::McpServerState, Option<String>)> {
    d.iter()
        .filter_map(|d| match d {
            Draft::McpStatus { server, status, error } => Some((server.clone(), *status, error.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_mcp_call_is_one_mcp_tool_item_with_the_text_it_returned() {
    use tether_protocol::McpServerState::{Connected, Starting};
    for case in ["mcp_bypass", "mcp_approved"] {
        let d = replay(case);
        let items = mcp_items(&d);
        assert_eq!(items.len(), 1, "{case}: {d:?}");
        let (tool, status) = &items[0];
        assert_eq!((tool.name.as_str(), tool.server.as_deref(), *status), ("echo", Some("tt"), ItemStatus::Completed));
        assert_eq!(tool.input, serde_json::json!({"text": "hello mcp"}));
        assert_eq!(tool.output.as_deref(), Some("echo: hello mcp"), "{case}");
        assert_eq!(mcp_states(&d), vec![("tt".into(), Starting, None), ("tt".into(), Connected, None)], "{case}");
        let asked: Vec<_> = d.iter().filter(|d| matches!(d, Draft::PermissionRequested { .. })).collect();
        assert_eq!(asked.len(), usize::from(case == "mcp_approved"), "{case}");
    }
}

#[test]
fn an_mcp_approval_is_a_permission_on_its_call_and_a_decline_declines_it() {
    for (case, want) in [("mcp_approved", ItemStatus::Completed), ("mcp_declined", ItemStatus::Declined)] {
        let d = replay(case);
        let call_id = d
            .iter()
            .find_map(|d| match d {
                Draft::ItemStarted { native_id, tool: Some(t), .. } if t.kind == ToolKind::Mcp => {
                    Some(native_id.clone())
                }
                _ => None,
            })
            .unwrap();
        let Some(Draft::PermissionRequested { native_item_id, action, title, input, .. }) =
            d.iter().find(|d| matches!(d, Draft::PermissionRequested { .. }))
        else {
            panic!("{case}: no permission")
        };
        assert_eq!(*action, PermissionAction::Mcp);
        assert_eq!(title, "Call echo on the MCP server tt");
        assert_eq!(native_item_id.as_deref(), Some(call_id.as_str()), "{case}");
        assert_eq!(input.as_ref().unwrap()["text"], "hello mcp");
        assert_eq!(mcp_items(&d)[0].1, want, "{case}");
    }
}

#[test]
fn allow_always_on_an_mcp_approval_is_for_the_session_only() {
    let mut adapter = CodexAdapter::new("codex".into());
    let native = NativeRequest::Codex(ServerRequest {
        id: serde_json::json!(0),
        method: "mcpServer/elicitation/request".into(),
        kind: RequestKind::Elicitation {
            tool_call: true,
            item_id: None,
            persist: Lenient(Some(serde_json::json!(["session", "always"]))),
        },
    });
    adapter.permission_reply(&native, Decision::AllowAlways, None);
    adapter.permission_reply(&native, Decision::Deny, None);
    let sent = lines(std::str::from_utf8(&adapter.take_output()).unwrap());
    assert_eq!(
        sent[0]["result"],
        serde_json::json!({"action": "accept", "content": null, "_meta": {"persist": "session"}})
    );
    assert_eq!(sent[1]["result"], serde_json::json!({"action": "decline", "content": null}));
}

#[test]
fn a_server_that_fails_to_start_is_a_failed_status_with_codex_s_reason() {
    use tether_protocol::McpServerState::Failed;
    let d = replay("mcp_failed");
    let states = mcp_states(&d);
    let failed = states.iter().find(|(_, s, _)| *s == Failed).expect("a failed status");
    assert_eq!(failed.0, "tt");
    assert!(failed.2.as_deref().unwrap_or("").contains("failed to start"), "{failed:?}");
    assert_eq!(turn_ends(&d), vec![StopReason::EndTurn]);
}

/// The converter writes nothing: what codex must be answered at once comes
/// back as a typed reply (a file change under accept_edits, a request tether
/// does not handle), for the adapter to send.
#[test]
fn the_converter_returns_the_replies_due_at_once() {
    use crate::agents::codex::convert::CodexConverter;
    use crate::agents::codex::wire::Reply;
    let params = serde_json::json!({"itemId": "i1", "threadId": "t", "turnId": "u"});
    let mut c = CodexConverter::new();
    let asked = c.server_request(serde_json::json!(7), "item/fileChange/requestApproval", params.clone(), "{}");
    assert!(asked.reply.is_none());
    assert!(matches!(&asked.drafts[..], [Draft::PermissionRequested { .. }]));
    c.set_accept_edits(true);
    let accepted = c.server_request(serde_json::json!(8), "item/fileChange/requestApproval", params, "{}");
    assert!(accepted.drafts.is_empty());
    assert_eq!(accepted.reply, Some(Reply::Decision { id: serde_json::json!(8), decision: "accept" }));
    let unknown = c.server_request(serde_json::json!(9), "item/unknown", Value::Null, "{}");
    assert!(matches!(&unknown.drafts[..], [Draft::Unparsed { .. }]));
    let reply = unknown.reply.unwrap().to_json();
    assert_eq!(
        reply,
        serde_json::json!({"id": 9, "error": {"code": -32601, "message": "tether does not handle item/unknown"}})
    );
}

/// A subagent (Codex's multi-agent v2, as 0.169.0 sends it): the
/// `subAgentActivity` that starts it is a `task` item, open while the
/// subagent runs (Codex completes the activity at once) and completed by
/// its `completed` activity; the subagent's items (notifications of its own
/// thread) are nested under it from their start; its turn is not the session's.
#[test]
fn a_subagents_items_are_nested_under_the_activity_that_started_it() {
    use crate::agents::codex::convert::CodexConverter;
    use serde_json::json;
    let mut c = CodexConverter::new();
    c.set_thread(Some("main".into()));
    let mut drafts = vec![];
    let mut note = |c: &mut CodexConverter, method: &str, params: Value| {
        drafts.extend(c.notification(method, params.clone(), &params.to_string()));
    };
    let started = json!({"type": "subAgentActivity", "id": "call_spawn", "agentThreadId": "child",
        "agentPath": "/root/check_shell", "kind": "started"});
    note(&mut c, "item/started", json!({"threadId": "main", "turnId": "t1", "item": started}));
    note(&mut c, "item/completed", json!({"threadId": "main", "turnId": "t1", "item": started}));
    note(&mut c, "turn/started", json!({"threadId": "child", "turn": {"id": "t2", "status": "inProgress"}}));
    let shell = |status: &str| {
        json!({"type": "commandExecution", "id": "call_shell", "command": "echo hi", "aggregatedOutput": "hi\n",
            "exitCode": 0, "status": status})
    };
    note(&mut c, "item/started", json!({"threadId": "child", "turnId": "t2", "item": shell("inProgress")}));
    note(&mut c, "item/completed", json!({"threadId": "child", "turnId": "t2", "item": shell("completed")}));
    note(&mut c, "turn/completed", json!({"threadId": "child", "turn": {"id": "t2", "status": "completed"}}));
    let ended = json!({"type": "subAgentActivity", "id": "subagent-completed-1", "agentThreadId": "child",
        "agentPath": "/root/check_shell", "kind": "completed"});
    note(&mut c, "item/started", json!({"threadId": "main", "turnId": "t1", "item": ended}));
    note(&mut c, "item/completed", json!({"threadId": "main", "turnId": "t1", "item": ended}));
    let shape: Vec<String> = drafts
        .iter()
        .map(|d| match d {
            Draft::ItemStarted { native_id, tool, .. } => {
                format!("started {native_id} {:?}", tool.as_ref().map(|t| (t.name.as_str(), t.kind)))
            }
            Draft::ItemParent { native_id, parent_native_id } => format!("parent {native_id} {parent_native_id}"),
            Draft::ItemCompleted { native_id, status, .. } => format!("completed {native_id} {status:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        shape,
        [
            "started call_spawn Some((\"spawn_agent\", Task))",
            "parent call_shell call_spawn",
            "started call_shell Some((\"shell\", Shell))",
            "completed call_shell Completed",
            "completed call_spawn Completed",
        ]
    );
}
