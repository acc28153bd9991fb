//! The real OpenCode CLI (`opencode serve`, installed by scripts/install-agents)
//! under tether, against the scripted Chat Completions server: every turn
//! asserted on the universal events.

use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::opencode::{opencode_env, ScriptedChat, OPENCODE_VERSION, WRITTEN_CONTENT, WRITTEN_FILE};
use tether_e2e::rig::tool_items;
use tether_e2e::*;
use tether_sdk::{
    Decision, Event, EventBody, ItemStatus, PermissionAction, PermissionMode, PermissionReply, QuestionReply, Session,
    SessionStatus, StopReason, ToolKind,
};

type Rig = tether_e2e::rig::Rig<ScriptedChat>;

async fn rig() -> Rig {
    Rig::start("opencode", ScriptedChat::start().await, opencode_env).await.with_turn_timeout(OPENCODE_TURN)
}

async fn session(rig: &Rig, mode: PermissionMode) -> Session {
    rig.session(mode).await
}

async fn turn(rig: &Rig, session: &str, text: &str) -> Vec<Event> {
    rig.turn(session, text).await
}

/// OpenCode takes a few seconds to start; a turn gets more time than the default.
const OPENCODE_TURN: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_text_turn_streams_deltas() {
    let rig = rig().await;
    let agent = rig.server.client().agent("opencode").await.unwrap();
    assert_eq!((agent.installed, agent.version.as_deref()), (true, Some(OPENCODE_VERSION)));
    let s = session(&rig, PermissionMode::Default).await;
    let events = turn(&rig, &s.id, "[opencode:text] hello opencode").await;
    assert_eq!(of_type(&events, "session.started").len(), 1, "{}", describe(&events));
    let messages = assistant_messages(&events);
    assert_eq!(messages.len(), 1, "{}", describe(&events));
    assert_eq!(item_text(messages[0]), "Scripted reply: hello opencode");
    assert_eq!(delta_text(&events, &messages[0].item_id), "Scripted reply: hello opencode");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    assert!(rig.server.client().get_session(&s.id).await.unwrap().native_session_id.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_bash_asks_then_runs_with_output() {
    let rig = rig().await;
    let client = rig.server.client();
    let s = session(&rig, PermissionMode::Default).await;
    client.send_text(&s.id, "[opencode:bash] run").await.unwrap();
    let asked = rig.until(&s.id, "permission.requested").await;
    let EventBody::PermissionRequested(p) = &asked.body else { unreachable!() };
    assert_eq!(p.action, PermissionAction::Shell);
    assert!(p.command.as_deref().unwrap_or("").contains("echo scripted-bash-output"), "{p:?}");
    assert_eq!(client.get_session(&s.id).await.unwrap().status, SessionStatus::Waiting);
    let reply = PermissionReply { decision: Decision::AllowOnce, message: None };
    client.reply_permission(&s.id, &p.permission_id, &reply).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_well_formed(&events);
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    let tool = tools[0].tool.as_ref().unwrap();
    assert_eq!(tool.kind, ToolKind::Shell);
    assert!(tool.output.as_deref().unwrap_or("").contains("scripted-bash-output"), "{tool:?}");
    assert_eq!(tool.exit_code, Some(0));
    assert!(final_text(&events).contains("scripted-bash-output"));
}

async fn write_turn(decision: Decision) -> (Vec<Event>, PathBuf, Rig) {
    let rig = rig().await;
    let client = rig.server.client();
    let s = session(&rig, PermissionMode::Default).await;
    client.send_text(&s.id, "[opencode:write] write it").await.unwrap();
    let asked = rig.until(&s.id, "permission.requested").await;
    let EventBody::PermissionRequested(p) = &asked.body else { unreachable!() };
    assert_eq!(p.action, PermissionAction::FileEdit);
    assert!(p.diff.as_deref().unwrap_or("").contains("written by opencode"), "{p:?}");
    let target = PathBuf::from(&s.cwd).join(WRITTEN_FILE);
    assert!(!target.exists());
    client.reply_permission(&s.id, &p.permission_id, &PermissionReply { decision, message: None }).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_well_formed(&events);
    (events, target, rig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_write_allowed_creates_the_file() {
    let (events, target, _rig) = write_turn(Decision::AllowOnce).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), WRITTEN_CONTENT);
    assert_eq!(tool_items(&events)[0].status, ItemStatus::Completed);
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_write_denied_declines_it() {
    let (events, target, _rig) = write_turn(Decision::Deny).await;
    assert!(!target.exists());
    assert_eq!(tool_items(&events)[0].status, ItemStatus::Declined, "{}", describe(&events));
    assert!(matches!(the_turn_completed(&events).stop_reason, StopReason::EndTurn | StopReason::Error));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_question_answered() {
    let rig = rig().await;
    let client = rig.server.client();
    let s = session(&rig, PermissionMode::Default).await;
    client.send_text(&s.id, "[opencode:question] pick").await.unwrap();
    let asked = rig.until(&s.id, "question.requested").await;
    let EventBody::QuestionRequested(q) = &asked.body else { unreachable!() };
    assert_eq!(q.questions[0].prompt, "Which colour?");
    let reply = QuestionReply { answers: Some(vec![vec!["Blue".into()]]), reject: false };
    client.reply_question(&s.id, &q.question_id, &reply).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert!(final_text(&events).contains("Blue"), "{}", final_text(&events));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_interrupt_during_slow_streaming() {
    let rig = rig().await;
    let client = rig.server.client();
    let s = session(&rig, PermissionMode::Default).await;
    client.send_text(&s.id, "[opencode:slow] go").await.unwrap();
    let mut stream = client.session_events(&s.id, Some(0));
    wait_for_count(&mut stream, OPENCODE_TURN, "item.delta", 3).await;
    client.interrupt(&s.id).await.unwrap();
    let events = rig.until_turn_ends(&s.id, 0).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::Interrupted, "{}", describe(&events));
    assert_well_formed(&events);
    let next = turn(&rig, &s.id, "[opencode:text] after").await;
    assert_eq!(final_text(&next), "Scripted reply: after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_model_error_ends_the_turn() {
    let rig = rig().await;
    let s = session(&rig, PermissionMode::Default).await;
    let events = turn(&rig, &s.id, "[opencode:401] fail").await;
    assert!(!of_type(&events, "error").is_empty(), "{}", describe(&events));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::Error);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_two_turns_then_a_restart_continues_the_conversation() {
    let mut rig = rig().await;
    let s = session(&rig, PermissionMode::Default).await;
    assert_eq!(final_text(&turn(&rig, &s.id, "[opencode:text] first turn").await), "Scripted reply: first turn");
    assert_eq!(final_text(&turn(&rig, &s.id, "[opencode:text] second turn").await), "Scripted reply: second turn");
    let native = rig.server.client().get_session(&s.id).await.unwrap().native_session_id.unwrap();
    rig.server.kill9().await;
    wait_no_processes(&s.id, Duration::from_secs(5)).await;
    rig.server.restart().await;
    let third = turn(&rig, &s.id, "[opencode:text] third turn").await;
    assert_eq!(final_text(&third), "Scripted reply: third turn");
    assert_eq!(rig.server.client().get_session(&s.id).await.unwrap().native_session_id.as_deref(), Some(&*native));
    let last = rig.model.requests().into_iter().rfind(|r| r.to_string().contains("third turn")).unwrap();
    let body = last.to_string();
    assert!(body.contains("first turn") && body.contains("second turn"), "the conversation lost its history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_bypass_runs_without_asking() {
    let rig = rig().await;
    let s = session(&rig, PermissionMode::Bypass).await;
    let events = turn(&rig, &s.id, "[opencode:bash] unattended").await;
    assert!(of_type(&events, "permission.requested").is_empty(), "{}", describe(&events));
    let tools = tool_items(&events);
    assert!(tools.iter().any(|t| t
        .tool
        .as_ref()
        .unwrap()
        .output
        .as_deref()
        .unwrap_or("")
        .contains("scripted-bash-output")));
}
