//! [`Rig`]: a tether server whose agent sessions talk to a scripted model
//! server, with a HOME of their own — what every real-agent test starts from,
//! and what the conformance table (`tests/conformance.rs`) runs each
//! scenario on. [`ScriptedModel`] is what a test reads back from any model
//! (the requests it received), so a scenario is written once for all agents.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;
use tether_sdk::{
    CreateSession, Decision, Event, EventBody, Item, ItemKind, ItemStatus, McpServer, McpServerState, PermissionMode,
    PermissionReply, PermissionRequested, Session, StopReason, ToolKind,
};

use crate::events::{
    assert_contiguous, assert_well_formed, completed_items, describe, final_text, of_type, read_all,
    the_turn_completed, wait_for,
};
use crate::{McpLog, ServerOptions, TestServer};

/// What a test reads back from any scripted model server.
pub trait ScriptedModel {
    /// Every model request body received so far, in order.
    fn requests(&self) -> Vec<serde_json::Value>;
    /// The requests of the agent's own loop (side requests, like OpenCode's
    /// title requests, left out); all of them unless the model says otherwise.
    fn agent_requests(&self) -> Vec<serde_json::Value> {
        self.requests()
    }
}

pub struct Rig<M> {
    pub model: M,
    pub server: TestServer,
    pub agent: &'static str,
    /// How long a turn may take (OpenCode starts slower than the others).
    pub turn_timeout: Duration,
    _home: TempDir,
}

impl<M> Rig<M> {
    /// Starts a server with the env `env(model, home)` gives for `agent`.
    pub async fn start(agent: &'static str, model: M, env: impl FnOnce(&M, &Path) -> Vec<(String, String)>) -> Rig<M> {
        Rig::start_with(agent, model, env, ServerOptions::default()).await
    }

    /// As [`Rig::start`], the server started with `options` (`env(model, home)` added to its env).
    pub async fn start_with(
        agent: &'static str,
        model: M,
        env: impl FnOnce(&M, &Path) -> Vec<(String, String)>,
        mut options: ServerOptions,
    ) -> Rig<M> {
        let home = tempfile::Builder::new().prefix(&format!("tether-{agent}-home-")).tempdir().unwrap();
        options.env.extend(env(&model, home.path()));
        let server = TestServer::start_with(options).await;
        Rig { model, server, agent, turn_timeout: crate::TURN_TIMEOUT, _home: home }
    }

    /// The agents' HOME (their own configuration lives under it).
    pub fn home(&self) -> &Path {
        self._home.path()
    }

    pub fn with_turn_timeout(mut self, timeout: Duration) -> Self {
        self.turn_timeout = timeout;
        self
    }

    /// A session of the rig's agent.
    pub async fn session(&self, mode: PermissionMode) -> Session {
        let create = CreateSession { agent: self.agent.into(), permission_mode: mode, ..Default::default() };
        self.server.client().create_session(&create).await.expect("create a session")
    }

    /// Events from `after` through the next `turn.completed`; none unparsed.
    pub async fn until_turn_ends(&self, session: &str, after: u64) -> Vec<Event> {
        let mut stream = self.server.client().session_events(session, Some(after));
        let events = wait_for(&mut stream, self.turn_timeout, |e| e.event_type() == "turn.completed").await;
        assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
        events
    }

    /// Sends `text` and returns its turn, checking the whole history stays well formed.
    pub async fn turn(&self, session: &str, text: &str) -> Vec<Event> {
        let client = self.server.client();
        let after = client.get_session(session).await.unwrap().last_seq;
        client.send_text(session, text).await.unwrap();
        let events = self.until_turn_ends(session, after).await;
        assert_contiguous(&events, after + 1);
        assert_well_formed(&read_all(&client, session).await);
        events
    }

    /// The first `mcp.status` of `server` in the session that is not
    /// `starting` (the agent tells it once the server connected or gave up),
    /// as (status, error).
    pub async fn settled_mcp_status(&self, session: &str, server: &str) -> (McpServerState, Option<String>) {
        let mut stream = self.server.client().session_events(session, Some(0));
        let events = wait_for(
            &mut stream,
            self.turn_timeout,
            |e| matches!(&e.body, EventBody::McpStatus(s) if s.server == server && s.status != McpServerState::Starting),
        )
        .await;
        let EventBody::McpStatus(s) = &events.last().expect("at least the awaited event").body else { unreachable!() };
        (s.status, s.error.clone())
    }

    /// The next event of `event_type` in a session, from its start.
    pub async fn until(&self, session: &str, event_type: &str) -> Event {
        let mut stream = self.server.client().session_events(session, Some(0));
        let events = wait_for(&mut stream, self.turn_timeout, |e| e.event_type() == event_type).await;
        events.last().cloned().expect("at least the awaited event")
    }
}

/// The tool-call items completed in `events`.
pub fn tool_items(events: &[Event]) -> Vec<&Item> {
    completed_items(events).into_iter().filter(|i| i.kind == ItemKind::ToolCall).collect()
}

impl<M> Rig<M> {
    /// A session of the rig's agent given `mcp_servers` and `skills`.
    pub async fn session_with(
        &self,
        mode: PermissionMode,
        mcp_servers: BTreeMap<String, McpServer>,
        skills: Vec<String>,
    ) -> Session {
        let create = CreateSession {
            agent: self.agent.into(),
            permission_mode: mode,
            mcp_servers,
            skills,
            ..Default::default()
        };
        self.server.client().create_session(&create).await.expect("create a session")
    }

    /// Sends `text` and answers every permission request of the turn with
    /// `decision` until it ends; returns the turn's events and the requests answered.
    pub async fn turn_answering(
        &self,
        session: &str,
        text: &str,
        decision: Decision,
    ) -> (Vec<Event>, Vec<PermissionRequested>) {
        let client = self.server.client();
        let after = client.get_session(session).await.unwrap().last_seq;
        client.send_text(session, text).await.unwrap();
        let mut stream = client.session_events(session, Some(after));
        let mut events = Vec::new();
        let mut asked = Vec::new();
        loop {
            let got = wait_for(&mut stream, self.turn_timeout, |e| {
                matches!(e.event_type(), "turn.completed" | "permission.requested")
            })
            .await;
            let last = got.last().cloned().expect("at least the awaited event");
            events.extend(got);
            match last.body {
                EventBody::PermissionRequested(p) => {
                    let reply = PermissionReply { decision, message: None };
                    client.reply_permission(session, &p.permission_id, &reply).await.unwrap();
                    asked.push(p);
                }
                _ => break,
            }
        }
        assert!(of_type(&events, "agent.unparsed").is_empty(), "{}", describe(&events));
        assert_contiguous(&events, after + 1);
        assert_well_formed(&read_all(&client, session).await);
        (events, asked)
    }
}

/// A stdio MCP server entry running the test MCP server (`tether_e2e::mcp`)
/// with `label`, logging its calls to `log`, with `MCP_TEST_SECRET=secret`.
pub fn stdio_mcp_server(log: &Path, label: &str, secret: &str) -> McpServer {
    McpServer::Stdio {
        command: crate::mcp::mcp_test_server_bin().display().to_string(),
        args: vec!["--log".into(), log.display().to_string(), "--label".into(), label.into()],
        env: BTreeMap::from([(crate::mcp::SECRET_ENV.to_string(), secret.to_string())]),
        cwd: None,
    }
}

/// The completed `mcp` tool items of `events`, in order.
pub fn mcp_items(events: &[Event]) -> Vec<&Item> {
    tool_items(events).into_iter().filter(|i| i.tool.as_ref().is_some_and(|t| t.kind == ToolKind::Mcp)).collect()
}

/// Checks a `mint ;; echo {"text": "$token"}` sequence on the MCP server `tt`
/// answered allow-once: both calls asked for and made in order, `echo` given
/// the token `mint` answered, two completed `mcp` items, the model's final
/// text, and an `end_turn`. Answers the token.
pub fn assert_minted_token_echoed(events: &[Event], asked: &[PermissionRequested], log: &McpLog) -> String {
    let titles: Vec<&str> = asked.iter().map(|p| p.title.as_str()).collect();
    assert_eq!(titles, ["Call mint on the MCP server tt", "Call echo on the MCP server tt"], "{}", describe(events));
    let calls = log.calls();
    let tools: Vec<&str> = calls.iter().map(|c| c["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["mint", "echo"], "{calls:?}");
    let minted: serde_json::Value = serde_json::from_str(calls[0]["result"].as_str().unwrap()).unwrap();
    let token = minted["token"].as_str().unwrap().to_string();
    assert_eq!(calls[1]["arguments"]["text"], token.as_str(), "echo got the token mint answered");
    let items = mcp_items(events);
    let names: Vec<&str> = items.iter().map(|i| i.tool.as_ref().unwrap().name.as_str()).collect();
    assert_eq!(names, ["mint", "echo"], "{}", describe(events));
    assert!(items.iter().all(|i| i.status == ItemStatus::Completed), "{}", describe(events));
    let output = items[0].tool.as_ref().unwrap().output.as_deref();
    assert!(output.is_some_and(|o| o.contains(&token)), "{:?}", items[0]);
    assert_eq!(items[1].tool.as_ref().unwrap().input["text"], token.as_str());
    assert_eq!(final_text(events), format!("MCP said: echo: {token}"));
    assert_eq!(the_turn_completed(events).stop_reason, StopReason::EndTurn);
    token
}

/// The one completed `mcp` tool item of `events`, checked to be `server`'s `tool`.
pub fn the_mcp_item<'a>(events: &'a [Event], server: &str, tool: &str) -> &'a Item {
    let mcp = mcp_items(events);
    assert_eq!(mcp.len(), 1, "one mcp tool item expected:\n{}", describe(events));
    let t = mcp[0].tool.as_ref().unwrap();
    assert_eq!((t.server.as_deref(), t.name.as_str()), (Some(server), tool), "{t:?}");
    mcp[0]
}

/// The `mcp.status` events of `events`, as (server, status, error).
pub fn mcp_statuses(events: &[Event]) -> Vec<(String, McpServerState, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::McpStatus(s) => Some((s.server.clone(), s.status, s.error.clone())),
            _ => None,
        })
        .collect()
}

/// A `SKILL.md` naming `name` with `description`, and `body` below its front matter.
pub fn skill_md(name: &str, description: &str, body: &str) -> String {
    format!("---\nname: {name}\ndescription: {description}\n---\n\n{body}\n")
}

/// Installs a one-file skill through the API.
pub async fn install_skill(client: &tether_sdk::Client, name: &str, description: &str, body: &str) {
    let files = BTreeMap::from([("SKILL.md".to_string(), skill_md(name, description, body))]);
    client.put_skill_files(name, &tether_sdk::SkillFiles { files }).await.expect("install a skill");
}

/// FNV-1a of every file under `dir` (relative path → hash), to show files are untouched.
pub fn hash_tree(dir: &Path) -> BTreeMap<String, u64> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, u64>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let rel = path.strip_prefix(root).unwrap_or(&path).display().to_string();
                out.insert(rel, crate::fnv1a64(&bytes));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The test MCP server over streamable HTTP in this runtime, labelled
/// `label`, refusing any request without `x-tether-test: let-me-in`, and the
/// session entry that sends that header (only `headers` reaching the agent lets a call through).
pub fn remote_mcp_server(log: &Path, label: &str) -> (crate::mcp::McpHttpServer, McpServer) {
    let http = crate::mcp::McpHttpServer::start_requiring(label, log, "x-tether-test", "let-me-in");
    let headers = BTreeMap::from([("x-tether-test".to_string(), "let-me-in".to_string())]);
    let entry = McpServer::Http { url: http.url(), headers };
    (http, entry)
}
