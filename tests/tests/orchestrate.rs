//! Agents orchestrating agents: a real Claude Code or Codex session is given
//! tether's own MCP server — `/mcp` over streamable HTTP, or `tether mcp`
//! over stdio, a proxy to it — and its scripted model creates a child
//! session of the mock agent and waits for the child's turn, all through
//! MCP tool calls (`[claude:mcp-seq:tether]` / `[codex:mcp-seq:tether]`),
//! the child's id taken from the first call's result.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tether_e2e::anthropic::{claude_env, ScriptedAnthropic};
use tether_e2e::events::*;
use tether_e2e::openai::{codex_env, ScriptedOpenAI};
use tether_e2e::procs::{processes_with_arg, wait_no_processes_with_arg};
use tether_e2e::rig::{mcp_items, Rig};
use tether_e2e::*;
use tether_sdk::{Event, ListSessions, McpServer, PermissionMode, Session, StopReason};

const TOKEN: &str = "orchestrate-s3cret-token";

/// What the child is asked, and what the mock answers its first turn.
const CHILD_PROMPT: &str = "hello from the parent";
const CHILD_REPLY: &str = "Mock reply to turn 1: hello from the parent";

/// The steps after `[AGENT:mcp-seq:tether]`: create the child, then wait for its turn.
fn steps() -> String {
    format!(
        r#"create_session {{"agent":"mock","prompt":"{CHILD_PROMPT}"}} ;; wait_for_turn {{"session_id":"$session_id","timeout_s":60}}"#
    )
}

async fn rig<M>(agent: &'static str, model: M, env: fn(&M, &std::path::Path) -> Vec<(String, String)>) -> Rig<M> {
    Rig::start_with(agent, model, env, ServerOptions::with_token(TOKEN)).await
}

/// tether's `/mcp` as a remote MCP server, with the bearer token.
fn http_entry(server: &TestServer) -> McpServer {
    let token = server.token().expect("a server with a token");
    McpServer::Http {
        url: server.endpoint("/mcp"),
        headers: BTreeMap::from([("Authorization".to_string(), format!("Bearer {token}"))]),
    }
}

/// `tether mcp --url <base>` (the binary the server runs), the token in its env.
fn stdio_entry(server: &TestServer) -> McpServer {
    let token = server.token().expect("a server with a token");
    McpServer::Stdio {
        command: tether_bin().display().to_string(),
        args: vec!["mcp".into(), "--url".into(), server.url.clone()],
        env: BTreeMap::from([("TETHER_TOKEN".to_string(), token.to_string())]),
        cwd: None,
    }
}

/// A `bypass` session of the rig's agent with `entry` as its MCP server `tether`.
async fn parent<M>(rig: &Rig<M>, entry: McpServer) -> Session {
    rig.session_with(PermissionMode::Bypass, BTreeMap::from([("tether".to_string(), entry)]), vec![]).await
}

/// The parent's turn `[TAG:mcp-seq:tether] create_session ;; wait_for_turn`
/// made a mock child whose first turn answered, and got that answer back
/// through `wait_for_turn`. Returns the child.
async fn orchestrates<M>(rig: &Rig<M>, parent: &Session, tag: &str) -> Session {
    let events = rig.turn(&parent.id, &format!("[{tag}:mcp-seq:tether] {}", steps())).await;
    let client = rig.server.client();

    // The child: a mock session beside the parent, its turn completed with the mock's reply.
    let sessions = client.list_sessions(&ListSessions::default()).await.unwrap().sessions;
    let children: Vec<&Session> = sessions.iter().filter(|s| s.id != parent.id).collect();
    assert_eq!(children.len(), 1, "one child session expected: {sessions:#?}");
    let child = children[0].clone();
    assert_eq!(child.agent, "mock", "{child:?}");
    let child_events = read_all(&client, &child.id).await;
    assert_well_formed(&child_events);
    assert_eq!(final_text(&child_events), CHILD_REPLY, "{}", describe(&child_events));
    assert_eq!(the_turn_completed(&child_events).stop_reason, StopReason::EndTurn);

    // The parent: two completed mcp items on tether, the child's id and reply in their outputs.
    let items = mcp_items(&events);
    let calls: Vec<(Option<&str>, &str)> =
        items.iter().map(|i| i.tool.as_ref().unwrap()).map(|t| (t.server.as_deref(), t.name.as_str())).collect();
    assert_eq!(calls, [(Some("tether"), "create_session"), (Some("tether"), "wait_for_turn")], "{}", describe(&events));
    let created = output_json(&events, 0);
    assert_eq!(created["session_id"], child.id.as_str(), "{created}");
    let waited = items[1].tool.as_ref().unwrap();
    assert_eq!(waited.input["session_id"], child.id.as_str(), "the child's id came from create_session's result");
    let output = waited.output.as_deref().unwrap_or_default();
    assert!(output.contains(CHILD_REPLY) && output.contains(r#""done":true"#), "wait_for_turn answered: {output}");
    let report = output_json(&events, 1);
    assert_eq!((report["done"].as_bool(), report["text"].as_str()), (Some(true), Some(CHILD_REPLY)), "{report}");
    let said = final_text(&events);
    assert!(said.starts_with("MCP said: ") && said.contains(CHILD_REPLY), "{said}");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    child
}

/// The output of the `n`th completed mcp item of `events`, as JSON.
fn output_json(events: &[Event], n: usize) -> Value {
    let items = mcp_items(events);
    let output = items[n].tool.as_ref().unwrap().output.as_deref().unwrap_or_default();
    serde_json::from_str(output).unwrap_or_else(|e| panic!("the output of {:?} is not JSON ({e}): {output}", items[n]))
}

/// Deleting the parent ends its agent and the `tether mcp` it started (found
/// by the server's URL on its command line); the child lives on.
async fn delete_leaves_no_proxy<M>(rig: &Rig<M>, parent: &Session, child: &Session) {
    let url = rig.server.url.clone();
    assert!(!processes_with_arg(&url).is_empty(), "no `tether mcp --url {url}` ran");
    let client = rig.server.client();
    client.delete_session(&parent.id, false).await.unwrap();
    wait_no_processes(&parent.id, Duration::from_secs(10)).await;
    wait_no_processes_with_arg(&url, Duration::from_secs(10)).await;
    assert_eq!(client.get_session(&child.id).await.unwrap().id, child.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_orchestrates_a_mock_session_through_tethers_http_mcp() {
    let rig = rig("claude", ScriptedAnthropic::start().await, claude_env).await;
    let parent = parent(&rig, http_entry(&rig.server)).await;
    orchestrates(&rig, &parent, "claude").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_orchestrates_a_mock_session_through_tether_mcp_over_stdio() {
    let rig = rig("codex", ScriptedOpenAI::start().await, codex_env).await;
    let parent = parent(&rig, stdio_entry(&rig.server)).await;
    let child = orchestrates(&rig, &parent, "codex").await;
    delete_leaves_no_proxy(&rig, &parent, &child).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_claude_parent_leaves_no_tether_mcp_behind() {
    let rig = rig("claude", ScriptedAnthropic::start().await, claude_env).await;
    let parent = parent(&rig, stdio_entry(&rig.server)).await;
    let child = orchestrates(&rig, &parent, "claude").await;
    delete_leaves_no_proxy(&rig, &parent, &child).await;
}
