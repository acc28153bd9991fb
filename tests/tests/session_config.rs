//! MCP servers and skills given to a session, through the mock agent (which
//! reads the same generated files as Claude Code): what reaches the agent, on
//! every spawn, what is refused at create, and what is cleaned up.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use reqwest::Method;
use serde_json::json;
use tether_e2e::events::final_text;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::rig::{install_skill, mcp_statuses, the_mcp_item};
use tether_e2e::*;
use tether_sdk::{CreateSession, Event, McpServer, McpServerState, SessionStatus};

fn stdio(command: &str) -> McpServer {
    McpServer::Stdio { command: command.into(), args: vec![], env: BTreeMap::new(), cwd: None }
}

async fn turn(client: &tether_sdk::Client, id: &str, text: &str) -> Vec<Event> {
    let after = client.get_session(id).await.unwrap().last_seq;
    client.send_text(id, text).await.unwrap();
    collect_turn(client, id, after).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_gets_global_and_session_mcp_servers_and_skills_on_every_spawn() {
    let server = TestServer::start().await;
    let client = server.client();
    client.put_mcp_server("global-one", &stdio("/bin/true")).await.unwrap();
    install_skill(&client, "first-skill", "The first skill", "BODY").await;
    let create = CreateSession {
        agent: "mock".into(),
        mcp_servers: BTreeMap::from([("own".to_string(), stdio("/bin/true"))]),
        skills: vec!["first-skill".into(), "sandbox-dev-servers".into()],
        ..Default::default()
    };
    let s = client.create_session(&create).await.unwrap();
    let events = turn(&client, &s.id, "[mock:skills]").await;
    let want = "MCP servers: global-one, own; skills: first-skill, sandbox-dev-servers";
    assert_eq!(final_text(&events), want, "{}", tether_e2e::events::describe(&events));
    let statuses = mcp_statuses(&events);
    assert!(statuses.contains(&("own".into(), McpServerState::Connected, None)), "{statuses:?}");
    assert!(statuses.contains(&("global-one".into(), McpServerState::Connected, None)), "{statuses:?}");

    let events = turn(&client, &s.id, "[mock:mcp] ping").await;
    let item = the_mcp_item(&events, "global-one", "echo");
    assert_eq!(item.tool.as_ref().unwrap().output.as_deref(), Some("echo: ping"));

    // The generated config is private to this user.
    let dir = server.data_dir().join("sessions").join(&s.id);
    let mode = std::fs::metadata(dir.join("claude-mcp.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "claude-mcp.json is readable by others: {mode:o}");
    assert!(dir.join("skills/sandbox-dev-servers/SKILL.md").is_file(), "a bundled skill is written out too");

    // A server added later is not given to an existing session; a crash respawns with the same config.
    client.put_mcp_server("later", &stdio("/bin/true")).await.unwrap();
    let after = client.get_session(&s.id).await.unwrap().last_seq;
    client.send_text(&s.id, "[mock:crash]").await.unwrap();
    let mut stream = client.session_events(&s.id, Some(after));
    wait_for(&mut stream, TURN_TIMEOUT, |e| e.event_type() == "agent.exited").await;
    let events = turn(&client, &s.id, "[mock:skills]").await;
    assert_eq!(final_text(&events), want);

    client.delete_session(&s.id, false).await.unwrap();
    assert!(!dir.exists(), "the session's generated config outlived it");
    assert_well_formed(&read_all(&client, &s.id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_with_bad_mcp_servers_or_unknown_skills_is_refused_saying_why() {
    let server = TestServer::start().await;
    let client = server.client();
    let post = |body: serde_json::Value| client.request(Method::POST, "/v1/sessions").json(&body);
    let cases = [
        (json!({"agent": "mock", "mcp_servers": {"a__b": {"command": "x"}}}), vec!["mcp_servers.a__b", "__"]),
        (json!({"agent": "mock", "mcp_servers": {"ok": {"command": "x", "url": "http://h"}}}), vec!["not both"]),
        (json!({"agent": "mock", "mcp_servers": {"ok": {}}}), vec!["command", "url"]),
        (json!({"agent": "mock", "mcp_servers": {"ok": {"command": "x", "colour": 1}}}), vec!["colour"]),
        (json!({"agent": "mock", "mcp_servers": {"ok": {"url": "ftp://h"}}}), vec!["http"]),
        (json!({"agent": "mock", "mcp_servers": {"ok": {"command": "x", "env": {"A=B": "1"}}}}), vec!["env"]),
        (json!({"agent": "mock", "skills": ["sandbox-dev-servers", "sandbox-dev-servers"]}), vec!["twice"]),
    ];
    for (body, mentions) in cases {
        expect_problem(send(post(body.clone())).await, 400, "invalid_request", &mentions).await;
    }
    // A well-formed skill name that is not installed is missing, like any other missing thing.
    let unknown = post(json!({"agent": "mock", "skills": ["no-such-skill"]}));
    expect_problem(send(unknown).await, 404, "not_found", &["no-such-skill", "not installed"]).await;
    let sessions = client.list_sessions(&Default::default()).await.unwrap();
    assert!(sessions.sessions.is_empty(), "a refused create left a session: {:?}", sessions.sessions);
    // The server keeps serving.
    let s = mock_session(&client).await;
    assert_ne!(s.status, SessionStatus::Failed);
}
