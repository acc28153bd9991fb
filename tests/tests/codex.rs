//! The real Codex CLI (`codex app-server`, installed by scripts/install-agents)
//! under tether, against the scripted OpenAI Responses server: what only
//! Codex does (patches unasked, deferred MCP namespaces found by
//! `tool_search`, skills listed in its developer message, the user's own
//! `config.toml`, its MCP start-up failures). The scenarios every agent
//! shares are in the conformance table (`conformance.rs`).

use std::path::PathBuf;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::openai::{codex_env, ScriptedOpenAI};
use tether_e2e::rig::tool_items;
use tether_e2e::*;
use tether_sdk::{Decision, Event, EventBody, ItemStatus, PermissionMode, Session, StopReason, ToolKind};

type Rig = tether_e2e::rig::Rig<ScriptedOpenAI>;

async fn rig() -> Rig {
    Rig::start("codex", ScriptedOpenAI::start().await, codex_env).await
}

async fn codex_session(rig: &Rig, mode: PermissionMode) -> Session {
    rig.session(mode).await
}

async fn turn(rig: &Rig, session: &str, text: &str) -> Vec<Event> {
    rig.turn(session, text).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_patch_writes_a_file() {
    let rig = rig().await;
    let s = codex_session(&rig, PermissionMode::Bypass).await;
    let events = turn(&rig, &s.id, "[codex:patch] add it").await;
    let target = PathBuf::from(&s.cwd).join("codex-patched.txt");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "patched by codex\n");
    let tools = tool_items(&events);
    let patch = tools.iter().find(|i| i.tool.as_ref().unwrap().kind == ToolKind::FileEdit).expect("a file_edit item");
    let tool = patch.tool.as_ref().unwrap();
    assert!(tool.paths.iter().any(|p| p.ends_with("codex-patched.txt")), "{tool:?}");
    assert!(tool.diff.as_deref().unwrap_or("").contains("patched by codex"), "{tool:?}");
    assert_eq!(patch.status, ItemStatus::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_accept_edits_applies_patches_without_asking() {
    let rig = rig().await;
    let s = codex_session(&rig, PermissionMode::AcceptEdits).await;
    let events = turn(&rig, &s.id, "[codex:patch] unattended").await;
    assert!(of_type(&events, "permission.requested").is_empty(), "{}", describe(&events));
    assert_eq!(std::fs::read_to_string(PathBuf::from(&s.cwd).join("codex-patched.txt")).unwrap(), "patched by codex\n");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
}

// ---- MCP servers and skills -------------------------------------------------

use std::collections::BTreeMap;
use tether_e2e::mcp::{McpHttpServer, McpLog};
use tether_e2e::procs::{cmdline, processes_with_arg, wait_no_processes_with_arg};
use tether_e2e::rig::{mcp_statuses, remote_mcp_server, stdio_mcp_server, the_mcp_item};
use tether_sdk::{McpServer, McpServerState, PermissionRequested};

/// Runs `[codex:mcp:SERVER:echo] hello mcp` in `s`, answering every
/// permission with allow-once, and checks what every MCP turn must show: the
/// model searched the deferred namespace `mcp__SERVER` (Codex's
/// `tool_search`) and called `echo` in it, the stream holds exactly one
/// completed `mcp` item with what the server returned, the model got it back,
/// and `mcp.status` shows the server connected.
async fn mcp_echo_turn(rig: &Rig, s: &Session, server: &str, text: &str) -> (Vec<Event>, Vec<PermissionRequested>) {
    let (events, asked) =
        rig.turn_answering(&s.id, &format!("[codex:mcp:{server}:echo] {text}"), Decision::AllowOnce).await;
    let item = the_mcp_item(&events, server, "echo");
    let tool = item.tool.as_ref().unwrap();
    assert_eq!(tool.input["text"], text, "{tool:?}");
    assert_eq!(tool.output.as_deref(), Some(&*format!("echo: {text}")), "{tool:?}");
    assert_eq!(item.status, ItemStatus::Completed);
    assert_eq!(final_text(&events), format!("MCP said: echo: {text}"), "{}", describe(&events));
    let searched = tether_e2e::openai::searched_mcp_namespace(&rig.model.requests(), server);
    assert!(searched, "no tool_search_output with the namespace mcp__{server} reached the model");
    let all = read_all(&rig.server.client(), &s.id).await;
    assert!(mcp_statuses(&all).contains(&(server.into(), McpServerState::Connected, None)), "{}", describe(&all));
    (events, asked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_bypass_calls_a_session_mcp_server_without_asking() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let servers = BTreeMap::from([("tt".to_string(), stdio_mcp_server(log.path(), "stdio", "s3cret"))]);
    let s = rig.session_with(PermissionMode::Bypass, servers, vec![]).await;
    let (events, asked) = mcp_echo_turn(&rig, &s, "tt", "no questions").await;
    assert!(asked.is_empty(), "{}", describe(&events));
    assert_eq!(log.calls_of("echo").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_calls_a_remote_mcp_server_with_its_headers() {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let (_remote, entry) = remote_mcp_server(log.path(), "http");
    let servers = BTreeMap::from([("remote".to_string(), entry)]);
    let s = rig.session_with(PermissionMode::Default, servers, vec![]).await;
    let (_events, asked) = mcp_echo_turn(&rig, &s, "remote", "over http").await;
    assert_eq!(asked.len(), 1);
    let calls = log.calls_of("echo");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["label"], "http");
}

/// The developer texts of the last request that holds `needle`.
fn developer_text_with(rig: &Rig, needle: &str) -> String {
    let requests = rig.model.requests();
    let texts = |r: &serde_json::Value| -> String {
        r["input"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|i| i["role"] == "developer")
            .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
            .filter_map(|c| c["text"].as_str().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("\n")
    };
    requests.iter().rev().map(texts).find(|t| t.contains(needle)).unwrap_or_default()
}

const TESTER_SKILL_DESCRIPTION: &str = "Checks that tether's skills reach Codex, for questions about the lilac harbour";

fn skill_md(name: &str, description: &str) -> String {
    format!("---\nname: {name}\ndescription: {description}\n---\n\n# {name}\n\nSay the word marmalade.\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_session_skill_is_listed_to_the_model() {
    let rig = rig().await;
    let files = BTreeMap::from([("SKILL.md".to_string(), skill_md("tester-skill", TESTER_SKILL_DESCRIPTION))]);
    rig.server.client().put_skill_files("tester-skill", &tether_sdk::SkillFiles { files }).await.unwrap();
    let s = rig.session_with(PermissionMode::Default, BTreeMap::new(), vec!["tester-skill".into()]).await;
    let events = turn(&rig, &s.id, "[codex:text] which skills").await;
    assert_eq!(final_text(&events), "Scripted reply: which skills");
    // `skills/extraRoots/set` adds the session's skills folder as a root of its own.
    let text = developer_text_with(&rig, "### Available skills");
    let line = format!("- tester-skill: {TESTER_SKILL_DESCRIPTION} (file: ");
    assert!(text.contains(&line), "the skill is not listed:\n{text}");
    let session_skills = rig.server.data_dir().join("sessions").join(&s.id).join("skills");
    assert!(text.contains(&format!("= `{}`", session_skills.display())), "no root for the session's skills:\n{text}");
    // A session without it does not list it.
    let other = rig.session(PermissionMode::Default).await;
    turn(&rig, &other.id, "[codex:text] no skills here").await;
    let last = rig.model.requests().into_iter().rfind(|r| r.to_string().contains("no skills here")).unwrap();
    assert!(!last.to_string().contains("tester-skill"), "a session without the skill lists it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_user_mcp_server_and_skill_work_beside_tether_s_and_stay_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let user_log = McpLog::new(dir.path().join("user-calls.jsonl"));
    let tether_log = McpLog::new(dir.path().join("tether-calls.jsonl"));
    let user_server = tether_e2e::mcp::mcp_test_server_bin();
    let mut codex_home = None;
    let rig = Rig::start("codex", ScriptedOpenAI::start().await, |model, home| {
        let env = codex_env(model, home);
        let codex = home.join(".codex");
        // The user's own MCP server and skill, where Codex reads them.
        let mut config = std::fs::read_to_string(codex.join("config.toml")).unwrap();
        config.push_str(&format!(
            "\n[mcp_servers.mine]\ncommand = {:?}\nargs = [\"--log\", {:?}, \"--label\", \"user\"]\n",
            user_server.display().to_string(),
            user_log.path().display().to_string(),
        ));
        std::fs::write(codex.join("config.toml"), config).unwrap();
        let skill = codex.join("skills").join("user-skill");
        std::fs::create_dir_all(&skill).unwrap();
        std::fs::write(
            skill.join("SKILL.md"),
            skill_md("user-skill", "The user's own skill, about the amber lighthouse"),
        )
        .unwrap();
        codex_home = Some(codex);
        env
    })
    .await;
    let codex_home = codex_home.unwrap();
    let config = codex_home.join("config.toml");
    let user_skill = codex_home.join("skills/user-skill/SKILL.md");
    let before = (std::fs::read(&config).unwrap(), std::fs::read(&user_skill).unwrap());

    let files = BTreeMap::from([("SKILL.md".to_string(), skill_md("tester-skill", TESTER_SKILL_DESCRIPTION))]);
    let client = rig.server.client();
    client.put_skill_files("tester-skill", &tether_sdk::SkillFiles { files }).await.unwrap();
    // A git repository as the cwd, with a workspace-write sandbox: Codex trusts such a project,
    // and must not write that into the user's config.toml.
    let repo = rig.server.workspace().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let git = std::process::Command::new("git").arg("init").arg("-q").arg(&repo).status().unwrap();
    assert!(git.success());
    let create = tether_sdk::CreateSession {
        agent: "codex".into(),
        cwd: Some("repo".into()),
        permission_mode: PermissionMode::Default,
        mcp_servers: BTreeMap::from([("tt".to_string(), stdio_mcp_server(tether_log.path(), "tether", "s3cret"))]),
        skills: vec!["tester-skill".into()],
        ..Default::default()
    };
    let s = client.create_session(&create).await.unwrap();

    mcp_echo_turn(&rig, &s, "mine", "from the user").await;
    mcp_echo_turn(&rig, &s, "tt", "from tether").await;
    assert_eq!(user_log.calls_of("echo").len(), 1, "{:?}", user_log.calls());
    assert_eq!(user_log.calls()[0]["label"], "user");
    assert_eq!(tether_log.calls_of("echo").len(), 1, "{:?}", tether_log.calls());
    let text = developer_text_with(&rig, "### Available skills");
    assert!(text.contains("- user-skill: The user's own skill, about the amber lighthouse"), "{text}");
    assert!(text.contains(&format!("- tester-skill: {TESTER_SKILL_DESCRIPTION}")), "{text}");
    let namespaces = developer_text_with(&rig, "Deferred tool namespaces");
    assert!(namespaces.contains("- mcp__mine") && namespaces.contains("- mcp__tt"), "{namespaces}");

    client.delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
    wait_no_processes_with_arg(&user_log.path().display().to_string(), Duration::from_secs(10)).await;
    wait_no_processes_with_arg(&tether_log.path().display().to_string(), Duration::from_secs(10)).await;
    let after = (std::fs::read(&config).unwrap(), std::fs::read(&user_skill).unwrap());
    assert!(before == after, "the user's files changed:\n{}", std::fs::read_to_string(&config).unwrap());
}

/// A session whose only MCP server is the test server started with `flag`
/// (a broken mode): the turn still ends, well, and in time; the server shows
/// failed with Codex's reason; nothing is left running once the session is deleted.
async fn broken_mcp_server(flag: &str) -> String {
    let rig = rig().await;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let mut server = stdio_mcp_server(log.path(), "broken", "s3cret");
    if let McpServer::Stdio { args, .. } = &mut server {
        args.push(flag.into());
    }
    let s = rig.session_with(PermissionMode::Default, BTreeMap::from([("broken".to_string(), server)]), vec![]).await;
    let events = turn(&rig, &s.id, "[codex:text] despite it").await;
    assert_eq!(final_text(&events), "Scripted reply: despite it");
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    let log_arg = log.path().display().to_string();
    if flag == "--hang" {
        // Still starting: the hung server runs, tagged as the session's, until the session ends.
        let running = processes_with_arg(&log_arg);
        assert_eq!(running.len(), 1, "the hanging MCP server is not running");
        let tagged = processes_of_session(&s.id);
        assert!(tagged.contains(&running[0]), "the MCP server {} is not tagged as the session's", cmdline(running[0]));
    }
    let client = rig.server.client();
    let mut stream = client.session_events(&s.id, Some(0));
    let upto = wait_for(
        &mut stream,
        TURN_TIMEOUT,
        |e| matches!(&e.body, EventBody::McpStatus(m) if m.server == "broken" && m.status == McpServerState::Failed),
    )
    .await;
    let EventBody::McpStatus(failed) = &upto.last().unwrap().body else { unreachable!() };
    let error = failed.error.clone().unwrap_or_default();
    assert!(error.contains("broken"), "{failed:?}");
    client.delete_session(&s.id, false).await.unwrap();
    wait_no_processes(&s.id, Duration::from_secs(10)).await;
    wait_no_processes_with_arg(&log_arg, Duration::from_secs(10)).await;
    error
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_mcp_server_that_exits_at_once_is_failed_and_the_turn_goes_on() {
    let error = broken_mcp_server("--exit-at-once").await;
    assert!(error.contains("failed to start"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_mcp_server_that_hangs_is_failed_and_the_turn_goes_on() {
    let error = broken_mcp_server("--hang").await;
    assert!(error.contains("timed out after 30 seconds"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_calls_global_mcp_servers_and_a_session_entry_wins() {
    let rig = rig().await;
    let client = rig.server.client();
    let dir = tempfile::tempdir().unwrap();
    let global_log = McpLog::new(dir.path().join("global.jsonl"));
    let own_log = McpLog::new(dir.path().join("own.jsonl"));
    let remote_log = McpLog::new(dir.path().join("remote.jsonl"));
    let remote = McpHttpServer::start_requiring("global-http", remote_log.path(), "x-tether-test", "gl0bal");
    let headers = BTreeMap::from([("x-tether-test".to_string(), "gl0bal".to_string())]);
    client.put_mcp_server("shared", &stdio_mcp_server(global_log.path(), "global", "g")).await.unwrap();
    client.put_mcp_server("over", &stdio_mcp_server(global_log.path(), "global-over", "g")).await.unwrap();
    client.put_mcp_server("gremote", &McpServer::Http { url: remote.url(), headers }).await.unwrap();
    let own = BTreeMap::from([("over".to_string(), stdio_mcp_server(own_log.path(), "own-over", "o"))]);
    let s = rig.session_with(PermissionMode::Default, own, vec![]).await;

    let (_, asked) = mcp_echo_turn(&rig, &s, "shared", "via the global").await;
    assert_eq!(asked.len(), 1, "a global server's tools ask too");
    assert_eq!(asked[0].title, "Call echo on the MCP server shared");
    mcp_echo_turn(&rig, &s, "gremote", "global over http").await;
    mcp_echo_turn(&rig, &s, "over", "which one").await;
    let labels =
        |log: &McpLog| log.calls().iter().map(|c| c["label"].as_str().unwrap_or("").to_owned()).collect::<Vec<_>>();
    assert_eq!(labels(&global_log), ["global"], "the session's `over` must win over the global one");
    assert_eq!(labels(&own_log), ["own-over"]);
    assert_eq!(labels(&remote_log), ["global-http"]);
}
