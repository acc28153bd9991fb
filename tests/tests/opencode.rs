//! The real OpenCode CLI (`opencode serve`, installed by scripts/install-agents)
//! under tether, against the scripted Chat Completions server: what only
//! OpenCode does (the user's own `opencode.json` and `OPENCODE_CONFIG_CONTENT`
//! beside a session's, its MCP connection timeouts). The scenarios every
//! agent shares (text, tools, permissions, questions, interrupts, errors,
//! resume, MCP calls, skills) are in the conformance table (`conformance.rs`).

use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::opencode::{agent_requests, opencode_env, system_text, ScriptedChat};
use tether_e2e::*;
use tether_sdk::{Decision, PermissionMode, StopReason};

type Rig = tether_e2e::rig::Rig<ScriptedChat>;

async fn rig() -> Rig {
    Rig::start("opencode", ScriptedChat::start().await, opencode_env).await.with_turn_timeout(OPENCODE_TURN)
}

/// OpenCode takes a few seconds to start; a turn gets more time than the default.
const OPENCODE_TURN: Duration = Duration::from_secs(90);

// ---- MCP servers and skills -------------------------------------------------

use std::collections::BTreeMap;
use tether_e2e::mcp::McpLog;
use tether_e2e::rig::{hash_tree, install_skill, mcp_statuses, skill_md, stdio_mcp_server, the_mcp_item};
use tether_sdk::{CreateSession, McpServer, McpServerState};

/// The test MCP server over stdio with `extra` arguments (`--exit-at-once`, `--hang`).
fn broken_mcp_server(log: &std::path::Path, label: &str, extra: &str) -> McpServer {
    let mut server = stdio_mcp_server(log, label, "x");
    if let McpServer::Stdio { args, .. } = &mut server {
        args.push(extra.into());
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_users_own_mcp_servers_and_skill_work_beside_the_sessions_and_stay_untouched() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let user_log = McpLog::new(dir.path().join("user.jsonl"));
    let env_log = McpLog::new(dir.path().join("env.jsonl"));
    let session_log = McpLog::new(dir.path().join("session.jsonl"));
    let stdio_command = |log: &McpLog, label: &str| {
        let McpServer::Stdio { command, args, .. } = stdio_mcp_server(log.path(), label, "u") else { unreachable!() };
        let mut all = vec![command];
        all.extend(args);
        all
    };
    // The user's own config: the opencode.json $OPENCODE_CONFIG names, and a skill in $XDG_CONFIG_HOME/opencode/skills.
    let config_dir = rig.home().join("config");
    let config_file = config_dir.join("opencode.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_file).unwrap()).unwrap();
    config["mcp"] = serde_json::json!({"mine": {"type": "local", "command": stdio_command(&user_log, "user")}});
    std::fs::write(&config_file, format!("{config:#}\n")).unwrap();
    let skill_dir = config_dir.join("opencode/skills/user-skill");
    std::fs::create_dir_all(&skill_dir).unwrap();
    std::fs::write(skill_dir.join("SKILL.md"), skill_md("user-skill", "The user's very own skill", "USER-BODY"))
        .unwrap();
    let before = hash_tree(&config_dir);
    // And the user's own OPENCODE_CONFIG_CONTENT, in the session's env.
    let content = serde_json::json!({"mcp": {"envs": {"type": "local", "command": stdio_command(&env_log, "env")}}});
    let env = BTreeMap::from([("OPENCODE_CONFIG_CONTENT".to_string(), content.to_string())]);

    install_skill(&rig.server.client(), "tester-skill", "A skill tether gives", "TETHER-BODY").await;
    let servers = BTreeMap::from([("tt".to_string(), stdio_mcp_server(session_log.path(), "session", "s"))]);
    let create = CreateSession {
        agent: "opencode".into(),
        permission_mode: PermissionMode::Bypass,
        mcp_servers: servers,
        skills: vec!["tester-skill".into()],
        env,
        ..Default::default()
    };
    let s = rig.server.client().create_session(&create).await.unwrap();
    for (server, log) in [("mine", &user_log), ("envs", &env_log), ("tt", &session_log)] {
        let (events, _) =
            rig.turn_answering(&s.id, &format!("[opencode:mcp:{server}:echo] to {server}"), Decision::AllowOnce).await;
        let item = the_mcp_item(&events, server, "echo");
        assert_eq!(item.tool.as_ref().unwrap().output.as_deref(), Some(format!("echo: to {server}").as_str()));
        assert_eq!(log.calls_of("echo").len(), 1, "{server}");
    }
    let last = system_text(agent_requests(&rig.model).last().unwrap());
    assert!(
        last.contains("<name>user-skill</name>") && last.contains("<name>tester-skill</name>"),
        "both skills listed: {last}"
    );
    for name in ["mine", "envs", "tt"] {
        assert_eq!(rig.settled_mcp_status(&s.id, name).await, (McpServerState::Connected, None), "{name}");
    }
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
    // Every file of the user's is as it was; OpenCode itself adds a
    // .gitignore to its config dir whoever runs it, and nothing else is new.
    let mut after = hash_tree(&config_dir);
    after.remove("opencode/.gitignore");
    assert_eq!(before, after, "the user's OpenCode config changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_broken_mcp_servers_are_reported_failed_and_leave_nothing_running() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let servers = BTreeMap::from([
        ("dead".to_string(), broken_mcp_server(&dir.path().join("dead.jsonl"), "dead", "--exit-at-once")),
        ("stuck".to_string(), broken_mcp_server(&dir.path().join("stuck.jsonl"), "stuck", "--hang")),
    ]);
    // OpenCode's first turn waits for every server to connect, up to its
    // `timeout` (30 s by default): the session's own config content bounds it.
    let content = serde_json::json!({"mcp": {"stuck": {"timeout": 2000}}});
    let create = CreateSession {
        agent: "opencode".into(),
        permission_mode: PermissionMode::Default,
        mcp_servers: servers,
        env: BTreeMap::from([("OPENCODE_CONFIG_CONTENT".to_string(), content.to_string())]),
        ..Default::default()
    };
    let s = rig.server.client().create_session(&create).await.unwrap();
    let started = std::time::Instant::now();
    let (events, _) = rig.turn_answering(&s.id, "[opencode:text] still answers", Decision::AllowOnce).await;
    assert_eq!(final_text(&events), "Scripted reply: still answers");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    eprintln!("the turn took {:?}", started.elapsed());
    let (status, error) = rig.settled_mcp_status(&s.id, "dead").await;
    assert_eq!(status, McpServerState::Failed);
    assert!(error.as_deref().is_some_and(|e| e.contains("Connection closed")), "{error:?}");
    let (status, error) = rig.settled_mcp_status(&s.id, "stuck").await;
    assert_eq!(status, McpServerState::Failed);
    assert_eq!(error.as_deref(), Some("Operation timed out after 2000ms"), "the session's timeout was not used");
    let all = read_all(&rig.server.client(), &s.id).await;
    let told: Vec<_> = mcp_statuses(&all).into_iter().filter(|(n, _, _)| n == "dead").collect();
    assert_eq!(told.first().map(|t| t.1), Some(McpServerState::Starting), "{told:?}");
    assert!(!processes_of_session(&s.id).is_empty(), "the agent runs while the session lives");
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
}

// ---- OpenCode's ACP mode (`opencode acp`) -----------------------------------

/// `opencode acp` asks before it writes outside its directory (OpenCode's
/// `external_directory` permission, on the write's own item): denied, nothing
/// is written. It writes files itself: what it sends the client's
/// `fs/write_text_file` is the edit it proposes (before an `edit` permission
/// is answered, its errors ignored), so tether refusing that outside the
/// workspace does not stop the write once both permissions are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_acp_asks_before_writing_outside_its_directory_and_writes_files_itself() {
    use tether_e2e::opencode::WRITTEN_CONTENT;
    use tether_e2e::rig::tool_items;
    use tether_sdk::{ItemStatus, PermissionAction, ToolKind};
    let rig =
        Rig::start("opencode-acp", ScriptedChat::start().await, opencode_env).await.with_turn_timeout(OPENCODE_TURN);
    let s = rig.session(PermissionMode::Default).await;
    let outside = rig.home().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let target = outside.join("escaped.txt");
    let prompt = format!("[opencode-acp:write-to] {}", target.display());

    let (events, asked) = rig.turn_answering(&s.id, &prompt, Decision::Deny).await;
    assert!(!target.exists(), "written although denied: {}", describe(&events));
    assert_eq!(asked.len(), 1, "{}", describe(&events));
    assert_eq!((asked[0].action, asked[0].title.as_str()), (PermissionAction::Other, &*outside.display().to_string()));
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!(tools[0].status, ItemStatus::Declined, "{:?}", tools[0]);
    assert_eq!(asked[0].item_id.as_deref(), Some(tools[0].item_id.as_str()), "the request names the write");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);

    let (events, asked) = rig.turn_answering(&s.id, &prompt, Decision::AllowOnce).await;
    let actions: Vec<PermissionAction> = asked.iter().map(|p| p.action).collect();
    assert_eq!(actions, [PermissionAction::Other, PermissionAction::FileWrite], "{}", describe(&events));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), WRITTEN_CONTENT, "{}", describe(&events));
    let tools = tool_items(&events);
    assert_eq!(tools.len(), 1, "{}", describe(&events));
    assert_eq!((tools[0].status, tools[0].tool.as_ref().unwrap().kind), (ItemStatus::Completed, ToolKind::FileEdit));
}
