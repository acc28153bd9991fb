//! Qwen Code over ACP beyond the conformance table: tether's permission
//! modes as Qwen's own modes (`accept_edits` → `auto-edit`, `plan` → `plan`).

use tether_e2e::events::*;
use tether_e2e::qwen::{TOUCHED_FILE, WRITTEN_CONTENT, WRITTEN_FILE};
use tether_e2e::rig::{tool_items, Rig};
use tether_e2e::*;
use tether_sdk::{Decision, ItemStatus, PermissionAction, PermissionMode, StopReason, ToolKind};

/// `accept_edits` opens Qwen's session in its mode `auto-edit`: a file
/// write runs without asking, a mutating command still asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen_in_accept_edits_writes_without_asking_and_asks_before_a_command() {
    let rig = Rig::start("qwen", ScriptedQwen::start().await, qwen_env).await;
    let s = rig.session(PermissionMode::AcceptEdits).await;
    let cwd = std::path::PathBuf::from(&s.cwd);

    let (events, asked) = rig.turn_answering(&s.id, "[qwen:write] make it", Decision::Deny).await;
    assert!(asked.is_empty(), "a write asked in accept_edits: {asked:?}");
    assert_eq!(std::fs::read_to_string(cwd.join(WRITTEN_FILE)).unwrap(), WRITTEN_CONTENT, "{}", describe(&events));
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!((tools[0].status, tools[0].tool.as_ref().unwrap().kind), (ItemStatus::Completed, ToolKind::FileEdit));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);

    let (events, asked) = rig.turn_answering(&s.id, "[qwen:touch] now this", Decision::AllowOnce).await;
    let actions: Vec<PermissionAction> = asked.iter().map(|p| p.action).collect();
    assert_eq!(actions, [PermissionAction::Shell], "{}", describe(&events));
    assert!(cwd.join(TOUCHED_FILE).exists(), "{}", describe(&events));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

/// `plan` opens Qwen's session in its mode `plan`: Qwen refuses a file
/// write itself (nothing asked, nothing written) and tells its model why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qwen_in_plan_mode_refuses_a_write_without_asking() {
    let rig = Rig::start("qwen", ScriptedQwen::start().await, qwen_env).await;
    let s = rig.session(PermissionMode::Plan).await;
    let cwd = std::path::PathBuf::from(&s.cwd);
    let (events, asked) = rig.turn_answering(&s.id, "[qwen:write] make it", Decision::AllowOnce).await;
    assert!(asked.is_empty(), "plan mode asked: {asked:?}");
    assert!(!cwd.join(WRITTEN_FILE).exists(), "{}", describe(&events));
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!(tools[0].status, ItemStatus::Failed, "{:?}", tools[0]);
    let text = final_text(&events);
    assert!(text.starts_with("Write result: Plan mode is active"), "{text}");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}
