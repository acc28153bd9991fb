//! OpenCode: `opencode serve` on a free loopback port with a password of its
//! own (HTTP Basic), under the PTY host for its logs, driven over its HTTP
//! API through the process host's bridge: one OpenCode session per tether
//! session (its id is the native session id, so a restarted server reattaches
//! to the same conversation), `prompt_async` per message, `abort` to
//! interrupt, and its event stream mapped onto universal events.
//!
//! MCP servers and skills reach it through `OPENCODE_CONFIG_CONTENT`
//! ([`config_content`]), merged by OpenCode with the user's own config files,
//! which stay untouched. Before the first request the adapter reads the merged
//! config (`GET /config`) to learn every MCP server the session has, the
//! user's own too: their tools are `<server>_<tool>`, governed by the
//! session's permission rules ([`rules`]) and shown as `mcp` tool items.
//! OpenCode connects its servers on first use (the first turn waits for them,
//! up to each server's `timeout`, 30 s by default); `GET /mcp` waits for
//! that too, so it runs in the bridge's background, once at start and after
//! every turn, and only changes become `mcp.status` events.
//!
//! `launch` starts it (port, password, config content, permission rules),
//! `wire` types its event stream, `convert` turns events into drafts (pure);
//! this adapter drives the HTTP calls through the bridge and reads their
//! answers (the bridge's own lines).

pub mod convert;
pub mod launch;
pub mod wire;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use serde_json::{json, Value};
use tether_protocol::{Decision, McpServerState, Part, PermissionMode, StopReason};

use super::lenient::{decode, Lenient};
use super::{Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::LaunchSpec;
use convert::OpencodeConverter;
#[cfg(test)]
use launch::base64;
use launch::free_port;
pub use launch::{config_content, launch, rules, tool_prefix};

/// What one of our HTTP calls was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    CreateSession,
    Prompt,
    Config,
    McpStatus,
    Other,
}

/// The registry's constructor.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(OpencodeAdapter::new(program))
}

pub struct OpencodeAdapter {
    program: PathBuf,
    converter: OpencodeConverter,
    out: Vec<u8>,
    next_id: u64,
    calls: HashMap<u64, Call>,
    mode: PermissionMode,
    model: Option<String>,
    session: Option<String>,
    resuming: bool,
    ready: bool,
    waiting: VecDeque<Vec<Part>>,
    /// The prompt sent last, to send again on a fresh session if the old one is gone.
    last_prompt: Option<Vec<Part>>,
    /// Every MCP server name of the session: tether's, then the user's own
    /// once the merged config is read (for permission rules and tool names).
    mcp_servers: Vec<String>,
    /// The merged config has been read: the session can be created or reattached.
    configured: bool,
    /// The last status told per MCP server, so only changes are told.
    mcp_told: HashMap<String, (McpServerState, Option<String>)>,
}

/// How long `GET /mcp` may take: it waits for every server to connect or time out.
const MCP_STATUS_TIMEOUT_MS: u64 = 120_000;

impl OpencodeAdapter {
    pub fn new(program: PathBuf) -> Self {
        OpencodeAdapter {
            program,
            converter: OpencodeConverter::default(),
            out: Vec::new(),
            next_id: 0,
            calls: HashMap::new(),
            mode: PermissionMode::Default,
            model: None,
            session: None,
            resuming: false,
            ready: false,
            waiting: VecDeque::new(),
            last_prompt: None,
            mcp_servers: Vec::new(),
            configured: false,
            mcp_told: HashMap::new(),
        }
    }

    fn call(&mut self, kind: Call, method: &str, path: String, body: Option<Value>) {
        self.next_id += 1;
        self.calls.insert(self.next_id, kind);
        let mut line = json!({"id": self.next_id, "method": method, "path": path});
        if let Some(body) = body {
            line["body"] = body;
        }
        if kind == Call::McpStatus {
            line["background"] = json!(true);
            line["timeout_ms"] = json!(MCP_STATUS_TIMEOUT_MS);
        }
        self.out.extend(line.to_string().into_bytes());
        self.out.push(b'\n');
    }

    fn ask_mcp_status(&mut self) {
        if !self.mcp_servers.is_empty() {
            self.call(Call::McpStatus, "GET", "/mcp".into(), None);
        }
    }

    /// The merged config is known (or could not be read): learn the user's
    /// MCP servers, tell them starting, then go on to the session.
    fn configured(&mut self, config: Option<wire::Config>) -> Vec<Draft> {
        self.configured = true;
        let mut drafts = Vec::new();
        if let Some(mcp) = config.and_then(|c| c.mcp.into_inner()) {
            for (name, server) in mcp {
                if !self.mcp_servers.contains(&name) {
                    self.mcp_servers.push(name.clone());
                }
                let disabled = server.get().and_then(|s| s.enabled.get()) == Some(&false);
                let status = if disabled { McpServerState::Disabled } else { McpServerState::Starting };
                drafts.extend(self.tell_mcp(&name, status, None));
            }
        }
        self.converter.set_mcp_servers(self.mcp_servers.clone());
        self.ask_mcp_status();
        if self.session.is_some() {
            // Reattach to the conversation the stored id names.
            while let Some(p) = self.waiting.pop_front() {
                self.prompt(p);
            }
        } else {
            self.create_session();
        }
        drafts
    }

    /// An `mcp.status` draft when it tells something new about `server`.
    fn tell_mcp(&mut self, server: &str, status: McpServerState, error: Option<String>) -> Option<Draft> {
        let now = (status, error);
        if self.mcp_told.get(server) == Some(&now) {
            return None;
        }
        self.mcp_told.insert(server.to_string(), now.clone());
        Some(Draft::McpStatus { server: server.to_string(), status: now.0, error: now.1 })
    }

    fn create_session(&mut self) {
        let rules = rules(self.mode, &self.mcp_servers);
        self.call(Call::CreateSession, "POST", "/session".into(), Some(json!({"permission": rules})));
    }

    fn prompt(&mut self, parts: Vec<Part>) {
        let Some(session) = self.session.clone().filter(|_| self.ready && self.configured) else {
            self.waiting.push_back(parts);
            return;
        };
        let body_parts: Vec<Value> = parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => json!({"type": "text", "text": text}),
                Part::File { path } | Part::Image { path: Some(path), .. } => {
                    json!({"type": "file", "url": format!("file://{path}"), "mime": "text/plain"})
                }
                Part::Image { mime, data, .. } => json!({"type": "file", "mime": mime,
                    "url": format!("data:{mime};base64,{}", data.as_deref().unwrap_or(""))}),
            })
            .collect();
        let mut body = json!({"parts": body_parts});
        if let Some((provider, model)) = self.model.as_deref().and_then(|m| m.split_once('/')) {
            body["model"] = json!({"providerID": provider, "modelID": model});
        }
        self.last_prompt = Some(parts);
        self.converter.turn_started();
        self.call(Call::Prompt, "POST", format!("/session/{session}/prompt_async"), Some(body));
    }

    fn bridge_line(&mut self, v: &Value, line: wire::BridgeLine) -> Vec<Draft> {
        match line.bridge.and_then(Lenient::into_inner).as_deref() {
            Some("ready") => {
                self.ready = true;
                // In turn: the answer comes before the session is created or used.
                self.call(Call::Config, "GET", "/config".into(), None);
                vec![]
            }
            Some("response") => {
                let id = line.id.into_inner().unwrap_or(0);
                let status = line.status.into_inner().unwrap_or(0);
                let body = line.body;
                let call = self.calls.remove(&id).unwrap_or(Call::Other);
                let ok = (200..300).contains(&status);
                match (call, ok) {
                    (Call::Config, ok) => self.configured(ok.then(|| decode(&body))),
                    (Call::McpStatus, true) => mcp_statuses(&body)
                        .into_iter()
                        .filter_map(|(server, status, error)| self.tell_mcp(&server, status, error))
                        .collect(),
                    (Call::McpStatus, false) => vec![Draft::Log {
                        stream: tether_protocol::LogStream::Stderr,
                        text: format!("opencode answered {status} to GET /mcp: {body}"),
                    }],
                    (Call::CreateSession, true) => {
                        self.session = decode::<wire::SessionCreated>(&body).id.into_inner();
                        self.resuming = false;
                        while let Some(p) = self.waiting.pop_front() {
                            self.prompt(p);
                        }
                        vec![Draft::SessionStarted {
                            native_session_id: self.session.clone(),
                            model: self.model.clone(),
                        }]
                    }
                    // The stored session is gone: start a new one and send the message again.
                    (Call::Prompt, false) if self.resuming && status == 404 => {
                        self.resuming = false;
                        self.session = None;
                        if let Some(p) = self.last_prompt.take() {
                            self.waiting.push_back(p);
                        }
                        self.create_session();
                        vec![]
                    }
                    (_, true) => vec![],
                    (call, false) => {
                        let message = format!("opencode answered {status}: {body}");
                        let mut d = vec![Draft::Error {
                            code: "agent_protocol".into(),
                            message: message.clone(),
                            retryable: false,
                        }];
                        if call == Call::Prompt {
                            d.extend(
                                self.converter.end_turn(StopReason::Error, Some(("prompt_rejected".into(), message))),
                            );
                        }
                        d
                    }
                }
            }
            Some("error") | Some("closed") => vec![Draft::Error {
                code: "agent_unavailable".into(),
                message: line.message.into_inner().unwrap_or_else(|| "the agent's server went away".into()),
                retryable: false,
            }],
            _ => vec![Draft::Unparsed { line: v.to_string(), error: "unknown bridge line".into() }],
        }
    }
}

/// The servers of `GET /mcp` (`{name: {status, error?}}`): every one the
/// merged config has, the user's own too, as (name, status, error).
fn mcp_statuses(body: &Value) -> Vec<(String, McpServerState, Option<String>)> {
    let servers: BTreeMap<String, Lenient<wire::McpState>> = decode(body);
    servers
        .into_iter()
        .map(|(name, s)| {
            let s = s.into_inner().unwrap_or_default();
            let said = s.status.get().map(String::as_str);
            let status = match said {
                Some("connected") => McpServerState::Connected,
                Some("disabled") => McpServerState::Disabled,
                Some("needs_auth") | Some("needs_client_registration") | Some("failed") => McpServerState::Failed,
                _ => McpServerState::Starting,
            };
            let error = s.error.get().cloned().or_else(|| match said {
                Some("needs_auth") => Some("the server needs authentication".into()),
                Some("needs_client_registration") => Some("the server needs OAuth client registration".into()),
                _ => None,
            });
            (name, status, error)
        })
        .collect()
}

impl Adapter for OpencodeAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        self.mode = ctx.permission_mode;
        self.model = ctx.model.map(str::to_string);
        self.session = ctx.resume.map(str::to_string);
        self.resuming = self.session.is_some();
        self.ready = false;
        self.configured = false;
        self.mcp_told.clear();
        self.calls.clear();
        self.converter = OpencodeConverter::default();
        self.converter.set_session(self.session.clone());
        self.mcp_servers = ctx.mcp_servers.keys().cloned().collect();
        self.converter.set_mcp_servers(self.mcp_servers.clone());
        // A password of its own: nothing else on the machine can drive this server.
        let password = crate::ids::new_id("pw");
        launch(&self.program, ctx, free_port(), &password)
    }

    fn user_message(&mut self, parts: &[Part]) {
        self.prompt(parts.to_vec());
    }

    fn interrupt(&mut self) -> bool {
        match self.session.clone() {
            Some(s) => self.call(Call::Other, "POST", format!("/session/{s}/abort"), None),
            // No prompt has reached OpenCode yet: drop what is waiting instead.
            None => self.waiting.clear(),
        }
        // Never a signal: that would stop the whole server, not the turn.
        true
    }

    fn permission_reply(&mut self, native: &NativeRequest, decision: Decision, message: Option<&str>) {
        let NativeRequest::Opencode(req) = native else { return };
        let reply = match decision {
            Decision::AllowOnce => "once",
            Decision::AllowAlways => "always",
            Decision::Deny => "reject",
        };
        let mut body = json!({"reply": reply});
        if let Some(m) = message {
            body["message"] = json!(m);
        }
        self.call(Call::Other, "POST", format!("/permission/{}/reply", req.id()), Some(body));
    }

    fn question_reply(&mut self, native: &NativeRequest, answers: Option<&[Vec<String>]>) {
        let NativeRequest::Opencode(req) = native else { return };
        let id = req.id();
        match answers {
            Some(a) => self.call(Call::Other, "POST", format!("/question/{id}/reply"), Some(json!({"answers": a}))),
            None => self.call(Call::Other, "POST", format!("/question/{id}/reject"), None),
        }
    }

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }],
        };
        let bridge: wire::BridgeLine = decode(&v);
        if bridge.bridge.is_some() {
            let drafts = self.bridge_line(&v, bridge);
            self.converter.set_session(self.session.clone());
            return drafts;
        }
        let drafts = self.converter.event(&v, line);
        if drafts.iter().any(|d| matches!(d, Draft::TurnCompleted { .. })) {
            // How the servers stand after a turn (one may have failed or gone away).
            self.ask_mcp_status();
        }
        drafts
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {

    use std::collections::BTreeMap;
    use std::path::Path;

    use serde_json::{json, Value};
    use tether_protocol::{McpServer, McpServerState, Part, PermissionMode};

    use super::{Adapter, Draft, LaunchContext, OpencodeAdapter};

    /// The bridge requests an adapter wrote, parsed.
    fn requests(adapter: &mut OpencodeAdapter) -> Vec<Value> {
        let out = adapter.take_output();
        String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn answer(adapter: &mut OpencodeAdapter, request: &Value, body: Value) -> Vec<Draft> {
        let line = json!({"bridge": "response", "id": request["id"], "status": 200, "body": body});
        adapter.convert(&line.to_string())
    }

    fn told(drafts: &[Draft]) -> Vec<(String, McpServerState, Option<String>)> {
        drafts
            .iter()
            .filter_map(|d| match d {
                Draft::McpStatus { server, status, error } => Some((server.clone(), *status, error.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn tool_prefixes_are_spelt_as_opencode_names_tools() {
        assert_eq!(super::tool_prefix("tt"), "tt");
        assert_eq!(super::tool_prefix("my-server_2"), "my-server_2");
        assert_eq!(super::tool_prefix("my.server ü"), "my_server__");
        let rules = super::rules(PermissionMode::Plan, &["a.b".into()]);
        assert_eq!(rules[2], json!({"permission": "a_b_*", "pattern": "*", "action": "deny"}));
        assert_eq!(super::rules(PermissionMode::Bypass, &["x".into()])[2]["action"], "allow");
        assert_eq!(super::rules(PermissionMode::Default, &["x".into()])[2]["action"], "ask");
    }

    /// `opencode acp`: the session's permission mode as OpenCode's rules in
    /// `OPENCODE_PERMISSION` (its MCP servers' tools with `bash`), and its
    /// model in `OPENCODE_CONFIG_CONTENT` over the user's own.
    #[test]
    fn the_acp_mode_takes_the_sessions_permission_rules_and_model_from_its_environment() {
        let servers = BTreeMap::from([(
            "a.b".to_string(),
            McpServer::Stdio { command: "srv".into(), args: vec![], env: BTreeMap::new(), cwd: None },
        )]);
        let env = BTreeMap::from([("OPENCODE_CONFIG_CONTENT".to_string(), r#"{"x":1,"model":"old/one"}"#.to_string())]);
        let mut ctx = LaunchContext::for_test(Path::new("/tmp"), &env, &servers);
        let launched = |ctx: &LaunchContext<'_>| {
            let spec =
                crate::agents::acp::launch::launch(Path::new("/bin/opencode"), &crate::agents::acp::OPENCODE, ctx);
            assert_eq!(spec.args, ["acp"]);
            spec.env.into_iter().collect::<BTreeMap<String, String>>()
        };
        let permission =
            |env: &BTreeMap<String, String>| -> Value { serde_json::from_str(&env["OPENCODE_PERMISSION"]).unwrap() };
        let env = launched(&ctx);
        assert_eq!(permission(&env), json!({"edit": "ask", "bash": "ask", "a_b_*": "ask"}));
        assert!(!env.contains_key("OPENCODE_CONFIG_CONTENT"), "no model, nothing over the user's config");
        for (mode, edit, bash) in [
            (PermissionMode::AcceptEdits, "allow", "ask"),
            (PermissionMode::Bypass, "allow", "allow"),
            (PermissionMode::Plan, "deny", "deny"),
        ] {
            ctx.permission_mode = mode;
            assert_eq!(permission(&launched(&ctx)), json!({"edit": edit, "bash": bash, "a_b_*": bash}), "{mode:?}");
        }
        ctx.model = Some("mock/other-model");
        let content: Value = serde_json::from_str(&launched(&ctx)["OPENCODE_CONFIG_CONTENT"]).unwrap();
        assert_eq!(content, json!({"x": 1, "model": "mock/other-model"}));
    }

    /// Ready → the merged config is read first; its MCP servers (the user's
    /// too) get permission rules and `starting`; `GET /mcp` runs in the
    /// background and only changes are told.
    #[test]
    fn the_merged_config_is_read_before_the_session_and_statuses_are_told_once() {
        let mut adapter = OpencodeAdapter::new("opencode".into());
        let env = BTreeMap::new();
        let servers = BTreeMap::from([(
            "tt".to_string(),
            McpServer::Stdio { command: "srv".into(), args: vec![], env: BTreeMap::new(), cwd: None },
        )]);
        let ctx = LaunchContext::for_test(Path::new("/tmp"), &env, &servers);
        let spec = adapter.launch(&ctx);
        let content = spec.env.iter().find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT").unwrap();
        let content: Value = serde_json::from_str(&content.1).unwrap();
        assert_eq!(content["mcp"]["tt"]["command"], json!(["srv"]));
        // Over the user's own content: theirs kept, a same-named entry replaced but for its timeout.
        let user = r#"{"mcp":{"tt":{"type":"remote","url":"u","timeout":2000},"own":{"type":"local"}},"x":1}"#;
        let merged: Value = serde_json::from_str(&super::config_content(&ctx, Some(user)).unwrap()).unwrap();
        assert_eq!(
            merged["mcp"]["tt"],
            json!({"type": "local", "command": ["srv"], "environment": {}, "enabled": true, "timeout": 2000})
        );
        assert_eq!((merged["mcp"]["own"]["type"].as_str(), merged["x"].as_i64()), (Some("local"), Some(1)));
        adapter.user_message(&[Part::text("hi")]);
        assert!(adapter.convert(r#"{"bridge":"ready"}"#).is_empty());
        let sent = requests(&mut adapter);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!((sent[0]["method"].as_str(), sent[0]["path"].as_str()), (Some("GET"), Some("/config")));

        let config = json!({"mcp": {"tt": {"type": "local"}, "mine": {"type": "local"}, "off": {"enabled": false}}});
        let drafts = answer(&mut adapter, &sent[0], config);
        let mut statuses = told(&drafts);
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            statuses,
            vec![
                ("mine".into(), McpServerState::Starting, None),
                ("off".into(), McpServerState::Disabled, None),
                ("tt".into(), McpServerState::Starting, None),
            ]
        );
        let sent = requests(&mut adapter);
        assert_eq!(sent[0]["path"], "/mcp");
        assert_eq!(sent[0]["background"], true);
        assert_eq!(sent[1]["path"], "/session");
        let rules: Vec<&str> =
            sent[1]["body"]["permission"].as_array().unwrap().iter().filter_map(|r| r["permission"].as_str()).collect();
        for name in ["tt_*", "mine_*", "off_*"] {
            assert!(rules.contains(&name), "{rules:?}");
        }

        let status = json!({"tt": {"status": "connected"}, "mine": {"status": "failed", "error": "boom"},
            "off": {"status": "disabled"}});
        let drafts = answer(&mut adapter, &sent[0], status.clone());
        let mut statuses = told(&drafts);
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            statuses,
            vec![
                ("mine".into(), McpServerState::Failed, Some("boom".into())),
                ("tt".into(), McpServerState::Connected, None),
            ]
        );
        // The prompt waited for the session.
        let drafts = answer(&mut adapter, &sent[1], json!({"id": "ses_1"}));
        assert!(matches!(drafts[0], Draft::SessionStarted { .. }));
        let sent = requests(&mut adapter);
        assert_eq!(sent[0]["path"], "/session/ses_1/prompt_async");
        // The same answer again tells nothing.
        adapter.ask_mcp_status();
        let asked = requests(&mut adapter);
        assert!(told(&answer(&mut adapter, &asked[0], status)).is_empty());
    }

    #[test]
    fn base64_encodes_basic_credentials() {
        assert_eq!(super::base64(b"opencode:pw"), "b3BlbmNvZGU6cHc=");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}
