//! The real Claude Code CLI (installed by scripts/install-agents) under tether,
//! against the scripted Anthropic server: what only Claude Code does (its
//! install route, allow-always suggestions, accept-edits, bypass as root and
//! plan modes, the session's model and env, the user's own `~/.claude.json`,
//! MCP servers that fail or hang). The scenarios every agent shares are in
//! the conformance table (`conformance.rs`).

use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::anthropic::{claude_env, ScriptedAnthropic, CLAUDE_VERSION};
use tether_e2e::events::*;
use tether_e2e::rig::tool_items;
use tether_e2e::*;
use tether_sdk::{
    CreateSession, Decision, Event, EventBody, ItemStatus, PermissionMode, PermissionReply, Session, StopReason,
};

type Rig = tether_e2e::rig::Rig<ScriptedAnthropic>;

async fn rig() -> Rig {
    Rig::start("claude", ScriptedAnthropic::start().await, claude_env).await
}

async fn claude_session(rig: &Rig, mode: PermissionMode) -> Session {
    rig.session(mode).await
}

async fn turn(rig: &Rig, session: &str, text: &str) -> Vec<Event> {
    rig.turn(session, text).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_report_the_installed_cli() {
    let rig = rig().await;
    let agent = rig.server.client().agent("claude").await.unwrap();
    assert!(agent.installed, "{agent:?}");
    assert_eq!(agent.version.as_deref(), Some(CLAUDE_VERSION));
    assert!(agent.capabilities.permissions && agent.capabilities.resume);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_route_streams_progress_and_installs_the_pinned_cli() {
    // No TETHER_CLAUDE_PATH and a PATH without claude: not installed yet.
    let env = vec![("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string())];
    let server = TestServer::start_with(ServerOptions { env, ..Default::default() }).await;
    let client = server.client();
    assert!(!client.agent("claude").await.unwrap().installed);
    let refused = client
        .create_session(&CreateSession { agent: "claude".into(), ..Default::default() })
        .await
        .expect_err("a session of an agent that is not installed");
    assert_eq!(refused.code(), Some("agent_not_installed"));
    assert!(refused.to_string().contains("tether agents install claude"), "{refused}");

    let resp = client
        .request(tether_sdk::reqwest::Method::POST, "/v1/agents/claude/install")
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body =
        tokio::time::timeout(Duration::from_secs(600), resp.text()).await.expect("install took too long").unwrap();
    let frames: Vec<(&str, serde_json::Value)> = body
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            let event = f.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or("");
            let data = f.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (event, serde_json::from_str(data).unwrap())
        })
        .collect();
    assert!(frames.iter().any(|(e, _)| *e == "progress"), "{body}");
    let (last, agent) = frames.last().unwrap();
    assert_eq!(*last, "done", "{body}");
    assert_eq!(agent["installed"], true);
    assert_eq!(agent["version"], CLAUDE_VERSION);
    let path = agent["path"].as_str().unwrap();
    assert!(path.starts_with(server.data_dir().to_str().unwrap()), "{path}");
    let now = client.agent("claude").await.unwrap();
    assert_eq!((now.installed, now.version.as_deref()), (true, Some(CLAUDE_VERSION)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_always_applies_the_cli_suggestion_for_the_rest_of_the_session() {
    let rig = rig().await;
    let client = rig.server.client();
    let s = claude_session(&rig, PermissionMode::Default).await;
    let target = PathBuf::from(&s.cwd).join("claude-written.txt");
    client.send_text(&s.id, "[claude:write] first").await.unwrap();
    let mut stream = client.session_events(&s.id, Some(0));
    let upto = wait_for(&mut stream, TURN_TIMEOUT, |e| e.event_type() == "permission.requested").await;
    let EventBody::PermissionRequested(p) = &upto.last().unwrap().body else { unreachable!() };
    let reply = PermissionReply { decision: Decision::AllowAlways, message: None };
    client.reply_permission(&s.id, &p.permission_id, &reply).await.unwrap();
    let first = collect_turn(&client, &s.id, 0).await;
    assert_eq!(the_turn_completed(&first).stop_reason, StopReason::EndTurn);
    assert!(target.exists());
    std::fs::remove_file(&target).unwrap();
    // The same kind of edit no longer asks.
    let second = turn(&rig, &s.id, "[claude:write] second").await;
    assert!(of_type(&second, "permission.requested").is_empty(), "{}", describe(&second));
    assert!(target.exists(), "{}", describe(&second));
    assert_eq!(the_turn_completed(&second).stop_reason, StopReason::EndTurn);
}

/// A `[claude:write]` turn in `mode`, answering nothing: returns the turn and whether the file exists.
async fn unattended_write(mode: PermissionMode) -> (Vec<Event>, bool, Rig) {
    let rig = rig().await;
    let s = claude_session(&rig, mode).await;
    let events = turn(&rig, &s.id, "[claude:write] unattended").await;
    let written = PathBuf::from(&s.cwd).join("claude-written.txt").exists();
    (events, written, rig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_edits_writes_without_asking() {
    let (events, written, _rig) = unattended_write(PermissionMode::AcceptEdits).await;
    assert!(of_type(&events, "permission.requested").is_empty(), "{}", describe(&events));
    assert!(written);
    assert_eq!(tool_items(&events)[0].status, ItemStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_never_asks_even_as_root() {
    let (events, written, _rig) = unattended_write(PermissionMode::Bypass).await;
    assert!(of_type(&events, "permission.requested").is_empty(), "{}", describe(&events));
    assert!(written, "{}", describe(&events));
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_mode_runs_the_cli_in_plan_mode_and_writes_nothing_unasked() {
    let rig = rig().await;
    let client = rig.server.client();
    let s = claude_session(&rig, PermissionMode::Plan).await;
    client.send_text(&s.id, "[claude:write] in plan mode").await.unwrap();
    let mut stream = client.session_events(&s.id, Some(0));
    let upto = wait_for(&mut stream, TURN_TIMEOUT, |e| e.event_type() == "permission.requested").await;
    // The CLI itself runs in plan mode (its own init line says so).
    let page = client.events_page(&s.id, 0, Some(1000), true).await.unwrap();
    let init = page.events.iter().find(|e| e.event_type() == "session.started").expect("session.started");
    assert_eq!(init.raw.as_ref().unwrap()["permissionMode"], "plan");
    let target = PathBuf::from(&s.cwd).join("claude-written.txt");
    assert!(!target.exists(), "written in plan mode without asking");
    let EventBody::PermissionRequested(p) = &upto.last().unwrap().body else { unreachable!() };
    let reply = PermissionReply { decision: Decision::Deny, message: Some("planning only".into()) };
    client.reply_permission(&s.id, &p.permission_id, &reply).await.unwrap();
    let events = collect_turn(&client, &s.id, 0).await;
    assert!(!target.exists());
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_and_the_session_env_reach_the_cli() {
    let rig = rig().await;
    let mut env = std::collections::BTreeMap::new();
    // The session's env is added to the server's: here it changes the API key the CLI sends.
    env.insert("ANTHROPIC_API_KEY".to_string(), "sk-ant-from-the-session".to_string());
    let create =
        CreateSession { agent: "claude".into(), model: Some("claude-sonnet-4-5".into()), env, ..Default::default() };
    let s = rig.server.client().create_session(&create).await.unwrap();
    let events = turn(&rig, &s.id, "[claude:text] which model").await;
    assert_eq!(final_text(&events), "Scripted reply: which model");
    let request = rig.model.requests().into_iter().rfind(|r| r.to_string().contains("which model")).unwrap();
    assert_eq!(request["model"], "claude-sonnet-4-5");
    let headers: Vec<String> = rig
        .model
        .all_requests()
        .iter()
        .filter(|r| r.uri.starts_with("/v1/messages"))
        .filter_map(|r| r.api_key.clone())
        .collect();
    assert!(headers.iter().any(|k| k == "sk-ant-from-the-session"), "{headers:?}");
}

#[test]
fn cli_installs_the_pinned_version_into_a_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(tether_bin())
        .args(["agents", "install", "claude", "--data-dir"])
        .arg(data.path())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bin = stdout.trim().strip_prefix("claude ").expect("prints the installed binary");
    assert!(bin.starts_with(data.path().to_str().unwrap()), "{bin}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("100% done"), "progress is shown");
    let list = std::process::Command::new(tether_bin())
        .args(["agents", "list", "--data-dir"])
        .arg(data.path())
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    let claude = list.lines().find(|l| l.starts_with("claude")).unwrap();
    assert!(claude.contains("installed") && claude.contains(CLAUDE_VERSION) && claude.contains(bin), "{claude}");
}

// ---- MCP servers and skills -------------------------------------------------

use std::collections::BTreeMap;
use tether_e2e::mcp::McpLog;
use tether_e2e::rig::{hash_tree, install_skill, mcp_statuses, skill_md, stdio_mcp_server, the_mcp_item};
use tether_sdk::{McpServer, McpServerState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_users_own_mcp_server_and_skill_work_beside_the_sessions_and_stay_untouched() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let user_log = McpLog::new(dir.path().join("user.jsonl"));
    let session_log = McpLog::new(dir.path().join("session.jsonl"));
    let home = rig.home().to_path_buf();
    let user_server = serde_json::to_value(stdio_mcp_server(user_log.path(), "user", "u")).unwrap();
    let claude_json = serde_json::json!({"mcpServers": {"mine": user_server}});
    std::fs::write(home.join(".claude.json"), serde_json::to_vec_pretty(&claude_json).unwrap()).unwrap();
    let skill_dir = home.join(".claude/skills/user-skill");
    std::fs::create_dir_all(&skill_dir).unwrap();
    std::fs::write(skill_dir.join("SKILL.md"), skill_md("user-skill", "The user's very own skill", "USER-BODY"))
        .unwrap();
    let before = (std::fs::read(home.join(".claude.json")).unwrap(), hash_tree(&home.join(".claude/skills")));

    install_skill(&rig.server.client(), "tester-skill", "A skill tether gives", "TETHER-BODY").await;
    let servers = BTreeMap::from([("tt".to_string(), stdio_mcp_server(session_log.path(), "session", "s"))]);
    let s = rig.session_with(PermissionMode::Bypass, servers, vec!["tester-skill".into()]).await;
    let (events, _) = rig.turn_answering(&s.id, "[claude:mcp:mine:echo] from the user", Decision::AllowOnce).await;
    the_mcp_item(&events, "mine", "echo");
    let (events, _) = rig.turn_answering(&s.id, "[claude:mcp:tt:echo] from the session", Decision::AllowOnce).await;
    the_mcp_item(&events, "tt", "echo");
    assert_eq!(user_log.calls_of("echo").len(), 1);
    assert_eq!(session_log.calls_of("echo").len(), 1);
    let last = rig.model.requests().last().unwrap().to_string();
    assert!(last.contains("The user's very own skill") && last.contains("A skill tether gives"), "both skills listed");
    let all = read_all(&rig.server.client(), &s.id).await;
    let statuses = mcp_statuses(&all);
    for name in ["mine", "tt"] {
        assert!(statuses.iter().any(|(n, st, _)| n == name && *st == McpServerState::Connected), "{statuses:?}");
    }
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    let after = (std::fs::read(home.join(".claude.json")).unwrap(), hash_tree(&home.join(".claude/skills")));
    assert_eq!(before.1, after.1, "the user's skills changed");
    // Claude Code adds its own bookkeeping keys to ~/.claude.json (firstStartTime,
    // machineID, ...) whoever runs it; the user's MCP servers must be exactly as
    // they were, and nothing of tether's may be there.
    let before_json: serde_json::Value = serde_json::from_slice(&before.0).unwrap();
    let after_json: serde_json::Value = serde_json::from_slice(&after.0).unwrap();
    assert_eq!(before_json["mcpServers"], after_json["mcpServers"], "the user's MCP servers changed");
    let text = String::from_utf8_lossy(&after.0);
    assert!(!text.contains("session.jsonl") && !text.contains("tester-skill"), "tether wrote into ~/.claude.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_mcp_server_is_reported_failed_and_leaves_nothing_running() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let mut dead = stdio_mcp_server(&dir.path().join("dead.jsonl"), "dead", "x");
    if let McpServer::Stdio { args, .. } = &mut dead {
        args.push("--exit-at-once".into());
    }
    let servers = BTreeMap::from([("dead".to_string(), dead)]);
    let s = rig.session_with(PermissionMode::Bypass, servers, vec![]).await;
    let (events, _) = rig.turn_answering(&s.id, "[claude:text] still answers", Decision::AllowOnce).await;
    assert_eq!(final_text(&events), "Scripted reply: still answers");
    let all = read_all(&rig.server.client(), &s.id).await;
    assert!(
        mcp_statuses(&all).iter().any(|(n, st, _)| n == "dead" && *st == McpServerState::Failed),
        "{}",
        describe(&all)
    );
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_mcp_server_does_not_hang_the_turn_and_dies_with_the_session() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let mut hang = stdio_mcp_server(&dir.path().join("hang.jsonl"), "hang", "x");
    if let McpServer::Stdio { args, .. } = &mut hang {
        args.push("--hang".into());
    }
    // Claude Code gives up on a server after MCP_TIMEOUT ms (30 s by default).
    let create = CreateSession {
        agent: "claude".into(),
        permission_mode: PermissionMode::Bypass,
        mcp_servers: BTreeMap::from([("slow".to_string(), hang)]),
        env: BTreeMap::from([("MCP_TIMEOUT".to_string(), "2000".to_string())]),
        ..Default::default()
    };
    let s = rig.server.client().create_session(&create).await.unwrap();
    // The turn does not wait for it. Claude reports its servers at the start of
    // each turn (`starting` until MCP_TIMEOUT has passed, then `failed`): a
    // later turn says it failed (bounded: turns within 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (events, _) = rig.turn_answering(&s.id, "[claude:text] despite it", Decision::AllowOnce).await;
        assert_eq!(final_text(&events), "Scripted reply: despite it");
        let statuses = mcp_statuses(&events);
        assert!(statuses.iter().all(|(n, _, _)| n == "slow"), "{statuses:?}");
        if statuses.iter().any(|(_, st, _)| *st == McpServerState::Failed) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never reported failed:\n{}", describe(&events));
    }
    let hung = processes_of_session(&s.id);
    assert!(!hung.is_empty(), "the agent and its MCP server run while the session lives");
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_claude_starts_in_a_tool_call_is_announced_on_its_session() {
    let options = ServerOptions { ports_poll_ms: Some(100), ..Default::default() };
    let rig = Rig::start_with("claude", ScriptedAnthropic::start().await, claude_env, options).await;
    let s = claude_session(&rig, PermissionMode::Bypass).await;
    let port = tether_e2e::ports::free_port();
    let command = format!("nohup python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &");
    let events = turn(&rig, &s.id, &format!("[claude:sh] {command}")).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn, "{}", describe(&events));
    let opened = rig.until(&s.id, "port.opened").await;
    let EventBody::PortOpened(p) = &opened.body else { unreachable!() };
    assert_eq!(p.port, port);
    assert_eq!(p.session_id.as_deref(), Some(s.id.as_str()), "{opened:?}");
    assert_eq!(opened.session_id, s.id, "announced on the session's own stream");
    let pid = p.pid.expect("the listening pid");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(String::from_utf8_lossy(&cmdline).contains("http.server"), "pid {pid} is the server");
    // The preview reaches it through tether.
    let resp = rig
        .server
        .client()
        .request(tether_sdk::reqwest::Method::GET, &format!("/v1/ports/{port}/proxy/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // Claude Code's Bash tool detached it from the agent's group; ending the session still ends it.
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
    {
        assert!(std::time::Instant::now() < deadline, "the server the agent started outlived its session");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
