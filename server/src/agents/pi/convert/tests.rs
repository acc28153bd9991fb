//! The Pi converter on recorded `pi --mode rpc` 0.73.1 output
//! (`testdata/<case>.jsonl`: every line Pi wrote, recorded by
//! `tether_e2e::pi`'s `record_pi_transcripts` against the scripted model).
//! A replay starts a turn where the recorder sent a prompt: at Pi's
//! response to it, which comes before the prompt's events.

use tether_protocol::{Delta, ItemKind, ItemStatus, StopReason, ToolKind};

use super::*;

fn replay(case: &str) -> Vec<Draft> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("src/agents/pi/testdata/{case}.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut c = PiConverter::new();
    let mut drafts = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains(r#""type":"response","command":"prompt""#) {
            c.turn_started();
        }
        drafts.extend(c.convert(line).drafts);
    }
    drafts
}

#[test]
fn every_recording_replays_to_its_snapshot() {
    for case in crate::agents::snapshots::cases("pi", ".jsonl") {
        crate::agents::snapshots::check("pi", &case, &replay(&case));
    }
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

fn completed(drafts: &[Draft], kind: ItemKind) -> Vec<(String, ItemStatus, Vec<Part>, Option<Tool>)> {
    drafts
        .iter()
        .filter_map(|d| match d {
            Draft::ItemCompleted { native_id, kind: k, status, content, tool, .. } if *k == kind => {
                Some((native_id.clone(), *status, content.clone(), tool.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_text_turn_streams_its_reply_and_counts_its_usage() {
    let drafts = replay("text");
    let started = drafts.iter().find_map(|d| match d {
        Draft::SessionStarted { native_session_id, model } => Some((native_session_id.clone(), model.clone())),
        _ => None,
    });
    let (native, model) = started.expect("session started from get_state");
    assert!(native.is_some_and(|f| f.ends_with(".jsonl")), "the session file is the native id");
    assert_eq!(model.as_deref(), Some("mock/mock-model"));
    let messages = completed(&drafts, ItemKind::Message);
    assert_eq!(messages.len(), 1, "{drafts:#?}");
    let deltas: String = drafts
        .iter()
        .filter_map(|d| match d {
            Draft::ItemDelta { native_id, delta: Delta::Text(t) } if *native_id == messages[0].0 => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(messages[0].2, vec![Part::text(deltas.clone())]);
    assert!(deltas.starts_with("Scripted reply:"), "{deltas}");
    assert!(
        matches!(drafts.last(), Some(Draft::TurnCompleted { stop_reason: StopReason::EndTurn, usage: Some(u), error: None }) if u.output_tokens.unwrap_or(0) > 0)
    );
}

#[test]
fn thinking_is_a_reasoning_item() {
    let drafts = replay("thinking");
    let reasoning = completed(&drafts, ItemKind::Reasoning);
    assert_eq!(reasoning.len(), 1, "{drafts:#?}");
    assert!(drafts.iter().any(|d| matches!(d, Draft::ItemDelta { delta: Delta::Reasoning(_), .. })));
    assert_eq!(completed(&drafts, ItemKind::Message).len(), 1);
}

#[test]
fn bash_and_edit_are_tool_items_with_output_exit_code_and_diff() {
    let drafts = replay("bash");
    let tools = completed(&drafts, ItemKind::ToolCall);
    assert_eq!(tools.len(), 1, "{drafts:#?}");
    let tool = tools[0].3.clone().unwrap();
    assert_eq!((tool.kind, tool.exit_code), (ToolKind::Shell, Some(0)));
    assert!(tool.output.unwrap_or_default().contains("scripted-bash-output"));
    // A write, then an edit of the file: both file edits, only the edit with a diff.
    let drafts = replay("edit");
    let tools: Vec<Tool> = completed(&drafts, ItemKind::ToolCall).into_iter().filter_map(|t| t.3).collect();
    assert_eq!(tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["write", "edit"], "{drafts:#?}");
    assert!(tools.iter().all(|t| t.kind == ToolKind::FileEdit && t.paths == ["pi-written.txt"]), "{tools:?}");
    assert_eq!(tools[0].diff, None);
    let diff = tools[1].diff.as_deref().unwrap_or_default();
    assert!(diff.contains("-1 written by pi") && diff.contains("+1 edited by pi"), "{diff}");
}

#[test]
fn an_abort_cancels_the_message_and_interrupts_the_turn() {
    let drafts = replay("abort");
    let messages = completed(&drafts, ItemKind::Message);
    assert!(!messages.is_empty() && messages[0].1 == ItemStatus::Cancelled, "{drafts:#?}");
    assert_eq!(turn_ends(&drafts)[0].0, StopReason::Interrupted);
    assert_eq!(turn_ends(&drafts).last().unwrap().0, StopReason::EndTurn, "the next turn runs");
}

#[test]
fn a_model_error_ends_the_turn_with_it() {
    let drafts = replay("error_401");
    assert!(drafts.iter().any(|d| matches!(d, Draft::Error { code, .. } if code == "model_error")));
    let ends = turn_ends(&drafts);
    assert_eq!(ends[0].0, StopReason::Error);
    assert!(ends[0].1.as_ref().is_some_and(|(_, m)| m.contains("401")), "{ends:?}");
    assert_eq!(ends.last().unwrap().0, StopReason::EndTurn, "the next turn runs");
}

#[test]
fn a_refused_prompt_ends_its_turn() {
    let mut c = PiConverter::new();
    c.turn_started();
    let out = c.convert(r#"{"id":"tether-2","type":"response","command":"prompt","success":false,"error":"Agent is already processing."}"#);
    assert_eq!(
        turn_ends(&out.drafts),
        [(
            StopReason::Error,
            Some(("turn_rejected".into(), "Pi refused the prompt command: Agent is already processing.".into()))
        )]
    );
}

#[test]
fn an_extension_dialog_is_dismissed_at_once() {
    let mut c = PiConverter::new();
    let out = c.convert(r#"{"type":"extension_ui_request","id":"uuid-1","method":"confirm","title":"Clear session?","message":"All lost."}"#);
    assert_eq!(out.reply, Some(Outgoing::Ui(UiResponse::cancelled("uuid-1".into()))));
    assert_eq!(out.reply.unwrap().to_line(), r#"{"type":"extension_ui_response","id":"uuid-1","cancelled":true}"#);
    let out = c.convert(r#"{"type":"extension_ui_request","id":"uuid-2","method":"setStatus","statusKey":"k"}"#);
    assert_eq!(out, Converted::default());
}

#[test]
fn unknown_lines_are_unparsed() {
    let mut c = PiConverter::new();
    let out = c.convert(r#"{"type":"brand_new_event"}"#);
    assert!(matches!(&out.drafts[..], [Draft::Unparsed { .. }]));
    let out = c.convert("{not json");
    assert!(matches!(&out.drafts[..], [Draft::Unparsed { .. }]));
}

#[test]
fn bash_exit_codes_come_from_the_tool_result() {
    assert_eq!(bash_exit_code(false, "hi\n"), Some(0));
    assert_eq!(bash_exit_code(true, "oops\n\nCommand exited with code 3"), Some(3));
    assert_eq!(bash_exit_code(true, "Command aborted"), None);
}

#[test]
fn commands_are_pi_rpc_lines() {
    let prompt = Outgoing::Command(Command::Prompt { id: "tether-1".into(), message: "hi".into(), images: vec![] });
    assert_eq!(prompt.to_line(), r#"{"type":"prompt","id":"tether-1","message":"hi"}"#);
    assert_eq!(
        Outgoing::Command(Command::Abort { id: "tether-2".into() }).to_line(),
        r#"{"type":"abort","id":"tether-2"}"#
    );
    assert_eq!(
        Outgoing::Command(Command::GetState { id: "tether-3".into() }).to_line(),
        r#"{"type":"get_state","id":"tether-3"}"#
    );
}
