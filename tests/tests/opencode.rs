//! The real OpenCode CLI (`opencode serve`, installed by scripts/install-agents)
//! under tether, against the scripted Chat Completions server: every turn
//! asserted on the universal events.

use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::opencode::{
    agent_requests, opencode_env, system_text, ScriptedChat, OPENCODE_VERSION, WRITTEN_CONTENT, WRITTEN_FILE,
};
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

// ---- MCP servers and skills -------------------------------------------------

use std::collections::BTreeMap;
use tether_e2e::mcp::McpLog;
use tether_e2e::rig::{
    hash_tree, install_skill, mcp_statuses, remote_mcp_server, skill_md, stdio_mcp_server, the_mcp_item,
};
use tether_sdk::{CreateSession, McpServer, McpServerState};

/// The first `mcp.status` of `server` in the session that is not `starting`
/// (OpenCode tells it once the server connected or gave up), as (status, error).
async fn settled_mcp_status(rig: &Rig, session: &str, server: &str) -> (McpServerState, Option<String>) {
    let mut stream = rig.server.client().session_events(session, Some(0));
    let events = wait_for(
        &mut stream,
        OPENCODE_TURN,
        |e| matches!(&e.body, EventBody::McpStatus(s) if s.server == server && s.status != McpServerState::Starting),
    )
    .await;
    let EventBody::McpStatus(s) = &events.last().unwrap().body else { unreachable!() };
    (s.status, s.error.clone())
}

/// The test MCP server over stdio with `extra` arguments (`--exit-at-once`, `--hang`).
fn broken_mcp_server(log: &std::path::Path, label: &str, extra: &str) -> McpServer {
    let mut server = stdio_mcp_server(log, label, "x");
    if let McpServer::Stdio { args, .. } = &mut server {
        args.push(extra.into());
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_session_mcp_server_asks_then_is_one_mcp_item() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let servers = BTreeMap::from([("tt".to_string(), stdio_mcp_server(log.path(), "stdio", "s3cret"))]);
    let s = rig.session_with(PermissionMode::Default, servers, vec![]).await;
    let (events, asked) = rig.turn_answering(&s.id, "[opencode:mcp:tt:echo] hello mcp", Decision::AllowOnce).await;
    assert_eq!(asked.len(), 1, "{}", describe(&events));
    assert_eq!(asked[0].action, PermissionAction::Mcp);
    assert_eq!(asked[0].title, "Call echo on the MCP server tt");
    let item = the_mcp_item(&events, "tt", "echo");
    assert_eq!(asked[0].item_id.as_deref(), Some(item.item_id.as_str()), "the permission names the tool item");
    let tool = item.tool.as_ref().unwrap();
    assert_eq!(tool.input["text"], "hello mcp");
    assert_eq!(tool.output.as_deref(), Some("echo: hello mcp"), "{tool:?}");
    assert_eq!(item.status, ItemStatus::Completed);
    assert_eq!(final_text(&events), "MCP said: echo: hello mcp");
    let calls = log.calls_of("echo");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0]["label"].as_str(), calls[0]["arguments"]["text"].as_str()),
        (Some("stdio"), Some("hello mcp"))
    );
    assert_eq!(settled_mcp_status(&rig, &s.id, "tt").await, (McpServerState::Connected, None));
    // The model was offered the server's tools by their OpenCode names.
    let request = agent_requests(&rig.model).into_iter().rfind(|r| r.to_string().contains("hello mcp")).unwrap();
    let offered = request["tools"].to_string();
    assert!(offered.contains("\"tt_echo\"") && offered.contains("\"tt_whoami\""), "{offered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_denied_mcp_call_never_reaches_the_server() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let servers = BTreeMap::from([("tt".to_string(), stdio_mcp_server(log.path(), "stdio", "s3cret"))]);
    let s = rig.session_with(PermissionMode::Default, servers, vec![]).await;
    let (events, asked) = rig.turn_answering(&s.id, "[opencode:mcp:tt:echo] not this", Decision::Deny).await;
    assert_eq!(asked.len(), 1, "{}", describe(&events));
    let mcp: Vec<_> = tool_items(&events)
        .into_iter()
        .filter(|i| i.tool.as_ref().is_some_and(|t| t.kind == ToolKind::Mcp && t.name == "echo"))
        .collect();
    assert_eq!(mcp.len(), 1, "{}", describe(&events));
    assert_eq!(mcp[0].status, ItemStatus::Declined, "{:?}", mcp[0]);
    assert!(log.calls().is_empty(), "the denied call reached the server: {:?}", log.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_remote_mcp_server_gets_its_headers_and_bypass_never_asks() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let (_http, entry) = remote_mcp_server(log.path(), "http");
    let servers = BTreeMap::from([("remote".to_string(), entry)]);
    let s = rig.session_with(PermissionMode::Bypass, servers, vec![]).await;
    let (events, asked) = rig.turn_answering(&s.id, "[opencode:mcp:remote:echo] over http", Decision::Deny).await;
    assert!(asked.is_empty(), "bypass asked: {asked:?}");
    let item = the_mcp_item(&events, "remote", "echo");
    assert_eq!(item.tool.as_ref().unwrap().output.as_deref(), Some("echo: over http"));
    let calls = log.calls_of("echo");
    assert_eq!((calls.len(), calls[0]["label"].as_str()), (1, Some("http")), "{calls:?}");
    assert_eq!(settled_mcp_status(&rig, &s.id, "remote").await, (McpServerState::Connected, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_skill_is_listed_to_the_model_and_the_skill_tool_loads_it() {
    assert!(tether_e2e::opencode::ripgrep().is_some(), "OpenCode's skill tool needs rg: run scripts/install-agents");
    let rig = rig().await;
    let client = rig.server.client();
    install_skill(&client, "tester-skill", "Checks the frobnicator before every release", "FROBNICATE-CAREFULLY-42")
        .await;
    let s = rig.session_with(PermissionMode::Default, BTreeMap::new(), vec!["tester-skill".into()]).await;
    let (events, _) = rig.turn_answering(&s.id, "[opencode:skill:tester-skill] go", Decision::AllowOnce).await;
    let first =
        agent_requests(&rig.model).into_iter().find(|r| r.to_string().contains("[opencode:skill:tester-skill]"));
    let system = system_text(&first.expect("a model request of the turn"));
    assert!(
        system.contains("<available_skills>")
            && system.contains("<name>tester-skill</name>")
            && system.contains("<description>Checks the frobnicator before every release</description>"),
        "the skill is not in <available_skills>: {system}"
    );
    let skill: Vec<_> =
        tool_items(&events).into_iter().filter(|i| i.tool.as_ref().is_some_and(|t| t.name == "skill")).collect();
    assert_eq!(skill.len(), 1, "{}", describe(&events));
    assert_eq!(skill[0].status, ItemStatus::Completed, "{:?}", skill[0]);
    let output = skill[0].tool.as_ref().unwrap().output.as_deref().unwrap_or("");
    assert!(output.contains("FROBNICATE-CAREFULLY-42"), "the skill tool's output lacks the body: {output}");
    assert!(final_text(&events).contains("FROBNICATE-CAREFULLY-42"), "{}", final_text(&events));
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
        assert_eq!(settled_mcp_status(&rig, &s.id, name).await, (McpServerState::Connected, None), "{name}");
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
    let (status, error) = settled_mcp_status(&rig, &s.id, "dead").await;
    assert_eq!(status, McpServerState::Failed);
    assert!(error.as_deref().is_some_and(|e| e.contains("Connection closed")), "{error:?}");
    let (status, error) = settled_mcp_status(&rig, &s.id, "stuck").await;
    assert_eq!(status, McpServerState::Failed);
    assert_eq!(error.as_deref(), Some("Operation timed out after 2000ms"), "the session's timeout was not used");
    let all = read_all(&rig.server.client(), &s.id).await;
    let told: Vec<_> = mcp_statuses(&all).into_iter().filter(|(n, _, _)| n == "dead").collect();
    assert_eq!(told.first().map(|t| t.1), Some(McpServerState::Starting), "{told:?}");
    assert!(!processes_of_session(&s.id).is_empty(), "the agent runs while the session lives");
    rig.server.client().delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_global_mcp_server_reaches_new_sessions_and_a_session_entry_wins_by_name() {
    let rig = rig().await;
    let client = rig.server.client();
    let dir = tempfile::tempdir().unwrap();
    let global_log = McpLog::new(dir.path().join("global.jsonl"));
    let own_log = McpLog::new(dir.path().join("own.jsonl"));
    client.put_mcp_server("shared", &stdio_mcp_server(global_log.path(), "global", "g")).await.unwrap();
    client.put_mcp_server("over", &stdio_mcp_server(global_log.path(), "global-over", "g")).await.unwrap();
    let own = BTreeMap::from([("over".to_string(), stdio_mcp_server(own_log.path(), "own-over", "o"))]);
    let s = rig.session_with(PermissionMode::Default, own, vec![]).await;
    let (events, asked) =
        rig.turn_answering(&s.id, "[opencode:mcp:shared:echo] via the global", Decision::AllowOnce).await;
    assert_eq!(asked.len(), 1, "a global server's tools ask too: {}", describe(&events));
    assert_eq!(asked[0].title, "Call echo on the MCP server shared");
    assert_eq!(
        the_mcp_item(&events, "shared", "echo").tool.as_ref().unwrap().output.as_deref(),
        Some("echo: via the global")
    );
    let (events, _) = rig.turn_answering(&s.id, "[opencode:mcp:over:echo] which one", Decision::AllowOnce).await;
    the_mcp_item(&events, "over", "echo");
    let labels = |log: &McpLog| {
        log.calls_of("echo").iter().map(|c| c["label"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    assert_eq!(labels(&global_log), vec!["global"]);
    assert_eq!(labels(&own_log), vec!["own-over"], "the session's own entry wins over the global one");
    assert_eq!(settled_mcp_status(&rig, &s.id, "shared").await, (McpServerState::Connected, None));
}
