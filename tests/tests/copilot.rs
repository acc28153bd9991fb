//! The GitHub Copilot CLI over ACP beyond the conformance table: tether's
//! `plan` as Copilot's own plan mode (`…/session-modes#plan`).

use tether_e2e::events::*;
use tether_e2e::rig::{tool_items, Rig};
use tether_e2e::*;
use tether_sdk::{Decision, ItemStatus, PermissionMode, StopReason, ToolKind};

/// `plan` opens Copilot's session in its plan mode (a mode id that is a
/// URL): Copilot blocks a patch itself (nothing asked, nothing written), and
/// its model is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copilot_in_plan_mode_blocks_a_patch_without_asking() {
    let rig = Rig::start("copilot", ScriptedOpenAI::start().await, copilot_env).await;
    let s = rig.session(PermissionMode::Plan).await;
    let (events, asked) = rig.turn_answering(&s.id, "[copilot:patch] make it", Decision::AllowOnce).await;
    assert!(asked.is_empty(), "plan mode asked: {asked:?}");
    assert!(!std::path::PathBuf::from(&s.cwd).join("codex-patched.txt").exists(), "{}", describe(&events));
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!((tools[0].status, tools[0].tool.as_ref().unwrap().kind), (ItemStatus::Failed, ToolKind::FileEdit));
    let text = final_text(&events);
    assert!(text.starts_with("Patch result:") && text.contains("Plan mode"), "{text}");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}
