//! An agent a user declares, with no code change: `acp-test-agent` (a tiny
//! agent written with the ACP crate's agent side) in the data dir's
//! `agents.json`, driven by tether's one ACP adapter — listed, documented,
//! a text turn, a permission allowed and denied, a file written through
//! the client `fs` methods, and writes and reads outside the workspace
//! refused. A file that does not declare well stops the start with a sentence.

use std::path::{Path, PathBuf};

use tether_e2e::events::*;
use tether_e2e::rig::{tool_items, Rig};
use tether_e2e::*;
use tether_sdk::{Decision, EventBody, ItemStatus, PermissionAction, PermissionMode, StopReason, ToolKind};

/// What `[acp:write PATH]` writes (acp-test-agent's `WRITTEN`).
const WRITTEN: &str = "written by the acp test agent\n";

/// The `acp-test-agent` binary beside the test executable (a `[[bin]]` of tether-e2e).
fn acp_test_agent_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    let dir = if dir.ends_with("deps") { dir.parent().unwrap() } else { dir };
    let bin = dir.join("acp-test-agent");
    assert!(bin.is_file(), "{} is missing: `cargo test -p tether-e2e` builds it", bin.display());
    bin
}

/// A server whose data dir declares `tiny-acp` (the test agent) and
/// `ghost-acp` (a command that is not there, with how to install it).
async fn rig() -> (Rig<()>, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let declared = serde_json::json!({"agents": [
        {"id": "tiny-acp", "name": "Tiny ACP agent", "command": acp_test_agent_bin(), "args": [],
         "env": {"ACP_TEST_AGENT": "1"}},
        {"id": "ghost-acp", "command": "/nonexistent/ghost-acp", "install": "install it with `pip install ghost-acp`"},
    ]});
    std::fs::write(data.path().join("agents.json"), declared.to_string()).unwrap();
    let options = ServerOptions { data_dir: Some(data.path().to_path_buf()), ..Default::default() };
    (Rig::start_with("tiny-acp", (), |_, _| Vec::new(), options).await, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_acp_agent_is_listed_documented_and_runs_a_turn() {
    let (rig, _data) = rig().await;
    let client = rig.server.client();
    let agent = client.agent("tiny-acp").await.unwrap();
    assert!(agent.installed, "{agent:?}");
    assert_eq!(agent.name, "Tiny ACP agent");
    assert!(agent.capabilities.permissions && agent.capabilities.mcp && !agent.capabilities.skills, "{agent:?}");
    // The served document takes it as a session's agent.
    let doc: serde_json::Value =
        reqwest::get(rig.server.endpoint("/v1/openapi.json")).await.unwrap().json().await.unwrap();
    let agents = &doc["components"]["schemas"]["CreateSession"]["properties"]["agent"]["enum"];
    assert!(agents.as_array().unwrap().iter().any(|a| a == "tiny-acp"), "{agents}");
    let s = rig.session(PermissionMode::Default).await;
    let events = rig.turn(&s.id, "hello tiny").await;
    assert_eq!(final_text(&events), "Echo: hello tiny");
    let messages = assistant_messages(&events);
    assert_eq!(delta_text(&events, &messages[0].item_id), "Echo: hello tiny");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    let native = client.get_session(&s.id).await.unwrap().native_session_id.unwrap();
    assert!(native.starts_with("acp-test-"), "{native}");
    // A second turn in the same session.
    assert_eq!(final_text(&rig.turn(&s.id, "again").await), "Echo: again");
    // What it announced in `initialize` is what GET /v1/agents says now: no
    // resume (no `loadSession`), no images, and its version.
    let announced = client.agent("tiny-acp").await.unwrap();
    assert!(!announced.capabilities.resume && !announced.capabilities.images, "{announced:?}");
    assert_eq!(announced.version.as_deref(), Some("0.1.0"), "{announced:?}");
    // Declared but not where it says: 422, saying how to install it.
    let create = tether_sdk::CreateSession { agent: "ghost-acp".into(), ..Default::default() };
    let err = client.create_session(&create).await.unwrap_err().to_string();
    assert!(err.contains("agent_not_installed") || err.contains("422"), "{err}");
    assert!(err.contains("pip install ghost-acp"), "{err}");
}

/// `[acp:write PATH]` answered with `decision`: the request, then the turn.
async fn write_turn(rig: &Rig<()>, session: &str, path: &Path, decision: Decision) -> Vec<tether_sdk::Event> {
    let client = rig.server.client();
    let after = client.get_session(session).await.unwrap().last_seq;
    client.send_text(session, &format!("[acp:write {}]", path.display())).await.unwrap();
    let mut stream = client.session_events(session, Some(after));
    let got = wait_for_type(&mut stream, rig.turn_timeout, "permission.requested").await;
    let EventBody::PermissionRequested(p) = &got.last().unwrap().body else { unreachable!() };
    assert_eq!(p.action, PermissionAction::FileWrite, "{p:?}");
    assert!(p.diff.as_deref().unwrap_or("").contains("+written by the acp test agent"), "{p:?}");
    assert_eq!(p.path.as_deref(), Some(&*path.display().to_string()));
    assert!(p.item_id.is_some(), "{p:?}");
    assert!(!path.exists(), "written before the permission was answered");
    let reply = tether_sdk::PermissionReply { decision, message: None };
    client.reply_permission(session, &p.permission_id, &reply).await.unwrap();
    let events = rig.until_turn_ends(session, after).await;
    assert_well_formed(&read_all(&client, session).await);
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_agent_asks_and_writes_through_the_client_inside_the_workspace_only() {
    let (rig, _data) = rig().await;
    let s = rig.session(PermissionMode::Default).await;
    let cwd = PathBuf::from(&s.cwd);
    // Allowed: written through tether's fs/write_text_file.
    let target = cwd.join("made-by-acp.txt");
    let events = write_turn(&rig, &s.id, &target, Decision::AllowOnce).await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), WRITTEN);
    assert_eq!(final_text(&events), "Write result: ok");
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!((tools[0].status, tools[0].tool.as_ref().unwrap().kind), (ItemStatus::Completed, ToolKind::FileEdit));
    // Denied: nothing written, the call declined.
    let denied = cwd.join("denied.txt");
    let events = write_turn(&rig, &s.id, &denied, Decision::Deny).await;
    assert!(!denied.exists());
    assert_eq!(final_text(&events), "Write result: denied");
    assert_eq!(tool_items(&events)[0].status, ItemStatus::Declined, "{}", describe(&events));
    // Allowed, but outside the workspace: tether refuses the write, the agent hears why.
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("escaped.txt");
    let events = write_turn(&rig, &s.id, &escape, Decision::AllowOnce).await;
    assert!(!escape.exists(), "a write outside the workspace went through");
    let text = final_text(&events);
    assert!(text.starts_with("Write result: error:") && text.contains("outside the workspace"), "{text}");
    // Reads: inside, the file; outside, refused.
    let read = rig.turn(&s.id, &format!("[acp:read {}]", target.display())).await;
    assert_eq!(final_text(&read), format!("Read: {WRITTEN}"));
    std::fs::write(outside.path().join("secret.txt"), "not for agents").unwrap();
    let read = rig.turn(&s.id, &format!("[acp:read {}]", outside.path().join("secret.txt").display())).await;
    let text = final_text(&read);
    assert!(text.starts_with("Read error:") && !text.contains("not for agents"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_file_that_does_not_declare_well_stops_the_start_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    for (file, says) in [
        (r#"{"agents": [{"id": "Bad Id", "command": "x"}]}"#, "an id is 1-32 lowercase letters"),
        (r#"{"agents": [{"id": "claude", "command": "x"}]}"#, "over a built-in agent"),
        (r#"{"agents": [{"id": "x", "comand": "x"}]}"#, "is not a valid declaration"),
    ] {
        let path = dir.path().join("agents.json");
        std::fs::write(&path, file).unwrap();
        let out = std::process::Command::new(tether_bin())
            .args(["serve", "--port", "0", "--agents-file"])
            .arg(&path)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--workspace")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: started anyway");
        assert!(stderr.contains(says), "{file}: {stderr}");
    }
}
