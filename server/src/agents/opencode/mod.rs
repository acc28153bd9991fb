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

pub mod convert;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tether_protocol::{Decision, McpServer, McpServerState, Part, PermissionMode, StopReason};

use super::{Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::{HttpBridge, LaunchSpec, StdinMode};
use convert::OpencodeConverter;

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

/// An MCP server's name as OpenCode spells it in its tool names
/// (`<server>_<tool>`) and so in permission names: anything but ASCII
/// letters, digits, `_` and `-` becomes `_`.
pub fn tool_prefix(server: &str) -> String {
    server.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// A free port on 127.0.0.1 (the OS picks it; the small window before the agent binds it is accepted).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// OpenCode permission rules for a permission mode; the tools of the
/// session's MCP servers (`<server>_*`, matched by OpenCode like any
/// permission name) ask like `bash` does: ask in `default` and
/// `accept_edits`, allowed in `bypass`, denied in `plan`.
pub fn rules(mode: PermissionMode, mcp_servers: &[String]) -> Value {
    let (edit, bash) = match mode {
        PermissionMode::Default => ("ask", "ask"),
        PermissionMode::AcceptEdits => ("allow", "ask"),
        PermissionMode::Bypass => ("allow", "allow"),
        PermissionMode::Plan => ("deny", "deny"),
    };
    let mut rules = vec![
        json!({"permission": "edit", "pattern": "*", "action": edit}),
        json!({"permission": "bash", "pattern": "*", "action": bash}),
    ];
    rules.extend(
        mcp_servers
            .iter()
            .map(|s| json!({"permission": format!("{}_*", tool_prefix(s)), "pattern": "*", "action": bash})),
    );
    Value::Array(rules)
}

/// What OpenCode's config gets for the session: its MCP servers (`mcp`) and
/// its skills folder (`skills.paths`), merged over the user's own
/// `OPENCODE_CONFIG_CONTENT` if they set one (OpenCode itself merges the
/// result with the global and project config files, which stay untouched).
/// A session's server replaces the user's entry of the same name, but for
/// its `timeout` (ms; OpenCode waits that long for the server to connect,
/// 30 s by default, and for each of its tool calls), which is kept: that is
/// how a session bounds a slow server, e.g. `{"mcp":{"N":{"timeout":2000}}}`.
pub fn config_content(ctx: &LaunchContext<'_>, user: Option<&str>) -> Option<String> {
    if ctx.mcp_servers.is_empty() && ctx.skills_dir.is_none() {
        return None;
    }
    let mut config = user.and_then(|u| serde_json::from_str::<Value>(u).ok()).filter(Value::is_object);
    let config = config.get_or_insert_with(|| json!({}));
    for (name, server) in ctx.mcp_servers {
        let v = match server {
            McpServer::Stdio { command, args, env, cwd } => {
                let (command, args) = ctx.mcp_command_in(command, args, cwd.as_deref());
                let mut cmd = vec![command];
                cmd.extend(args);
                json!({"type": "local", "command": cmd, "environment": env, "enabled": true})
            }
            McpServer::Http { url, headers } => {
                json!({"type": "remote", "url": url, "headers": headers, "oauth": false, "enabled": true})
            }
        };
        if !config["mcp"].is_object() {
            config["mcp"] = json!({});
        }
        let mut v = v;
        if let Some(timeout) = config["mcp"][name].get("timeout").filter(|t| t.is_u64()) {
            v["timeout"] = timeout.clone();
        }
        config["mcp"][name] = v;
    }
    if let Some(dir) = ctx.skills_dir {
        if !config["skills"].is_object() {
            config["skills"] = json!({});
        }
        let paths = &mut config["skills"]["paths"];
        if !paths.is_array() {
            *paths = json!([]);
        }
        if let Value::Array(p) = paths {
            p.push(json!(dir.display().to_string()));
        }
    }
    Some(config.to_string())
}

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
    fn configured(&mut self, config: Option<&Value>) -> Vec<Draft> {
        self.configured = true;
        let mut drafts = Vec::new();
        if let Some(mcp) = config.and_then(|c| c["mcp"].as_object()) {
            for (name, server) in mcp {
                if !self.mcp_servers.contains(name) {
                    self.mcp_servers.push(name.clone());
                }
                let status =
                    if server["enabled"] == false { McpServerState::Disabled } else { McpServerState::Starting };
                drafts.extend(self.tell_mcp(name, status, None));
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

    fn bridge_line(&mut self, v: &Value) -> Vec<Draft> {
        match v["bridge"].as_str() {
            Some("ready") => {
                self.ready = true;
                // In turn: the answer comes before the session is created or used.
                self.call(Call::Config, "GET", "/config".into(), None);
                vec![]
            }
            Some("response") => {
                let id = v["id"].as_u64().unwrap_or(0);
                let status = v["status"].as_u64().unwrap_or(0);
                let call = self.calls.remove(&id).unwrap_or(Call::Other);
                let ok = (200..300).contains(&status);
                match (call, ok) {
                    (Call::Config, ok) => self.configured(ok.then_some(&v["body"])),
                    (Call::McpStatus, true) => mcp_statuses(&v["body"])
                        .into_iter()
                        .filter_map(|(server, status, error)| self.tell_mcp(&server, status, error))
                        .collect(),
                    (Call::McpStatus, false) => vec![Draft::Log {
                        stream: tether_protocol::LogStream::Stderr,
                        text: format!("opencode answered {status} to GET /mcp: {}", v["body"]),
                    }],
                    (Call::CreateSession, true) => {
                        self.session = v["body"]["id"].as_str().map(str::to_string);
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
                        let message = format!("opencode answered {status}: {}", v["body"]);
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
                message: v["message"].as_str().unwrap_or("the agent's server went away").to_string(),
                retryable: false,
            }],
            _ => vec![Draft::Unparsed { line: v.to_string(), error: "unknown bridge line".into() }],
        }
    }
}

/// The servers of `GET /mcp` (`{name: {status, error?}}`): every one the
/// merged config has, the user's own too, as (name, status, error).
fn mcp_statuses(body: &Value) -> Vec<(String, McpServerState, Option<String>)> {
    let Some(servers) = body.as_object() else { return vec![] };
    servers
        .iter()
        .map(|(name, s)| {
            let status = match s["status"].as_str() {
                Some("connected") => McpServerState::Connected,
                Some("disabled") => McpServerState::Disabled,
                Some("needs_auth") | Some("needs_client_registration") | Some("failed") => McpServerState::Failed,
                _ => McpServerState::Starting,
            };
            let error = s["error"].as_str().map(str::to_string).or_else(|| match s["status"].as_str() {
                Some("needs_auth") => Some("the server needs authentication".into()),
                Some("needs_client_registration") => Some("the server needs OAuth client registration".into()),
                _ => None,
            });
            (name.clone(), status, error)
        })
        .collect()
}

pub fn launch(program: &Path, ctx: &LaunchContext<'_>, port: u16, password: &str) -> LaunchSpec {
    let mut env: Vec<(String, String)> = vec![
        ("OPENCODE_SERVER_USERNAME".into(), "opencode".into()),
        ("OPENCODE_SERVER_PASSWORD".into(), password.into()),
        ("NO_COLOR".into(), "1".into()),
    ];
    const CONTENT: &str = "OPENCODE_CONFIG_CONTENT";
    let user = ctx.env.get(CONTENT).cloned().or_else(|| std::env::var(CONTENT).ok());
    if let Some(content) = config_content(ctx, user.as_deref()) {
        env.push((CONTENT.into(), content));
    }
    LaunchSpec {
        program: program.to_path_buf(),
        args: vec!["serve".into(), "--hostname".into(), "127.0.0.1".into(), "--port".into(), port.to_string()],
        env,
        stdin: StdinMode::Http(HttpBridge {
            base_url: format!("http://127.0.0.1:{port}"),
            authorization: Some(format!("Basic {}", base64(format!("opencode:{password}").as_bytes()))),
            ready_path: "/global/health".into(),
            events_path: "/event".into(),
        }),
    }
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
        let password = crate::util::new_id("pw");
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
        if v.get("bridge").is_some() {
            let drafts = self.bridge_line(&v);
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
        let ctx = LaunchContext {
            session_id: "ses_test",
            cwd: Path::new("/tmp"),
            model: None,
            permission_mode: PermissionMode::Default,
            resume: None,
            env: &env,
            data_dir: Path::new("/tmp"),
            session_dir: Path::new("/tmp"),
            mcp_servers: &servers,
            skills_dir: None,
        };
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
