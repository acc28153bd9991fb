//! OpenCode: `opencode serve` on a free loopback port with a password of its
//! own (HTTP Basic), under the PTY host for its logs, driven over its HTTP
//! API through the process host's bridge: one OpenCode session per tether
//! session (its id is the native session id, so a restarted server reattaches
//! to the same conversation), `prompt_async` per message, `abort` to
//! interrupt, and its event stream mapped onto universal events.

pub mod convert;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tether_protocol::{Decision, McpServer, McpServerState, Part, PermissionMode, StopReason};

use super::{Adapter, Draft, LaunchContext, LaunchSpec, StdinMode};
use crate::process::HttpBridge;
use convert::OpencodeConverter;

/// What one of our HTTP calls was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    CreateSession,
    Prompt,
    McpStatus,
    Other,
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
    /// The session's MCP server names (for permission rules and status).
    mcp_servers: Vec<String>,
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
/// session's MCP servers (`<server>_*`) ask unless the mode never asks.
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
    rules.extend(mcp_servers.iter().map(|s| json!({"permission": format!("{s}_*"), "pattern": "*", "action": bash})));
    Value::Array(rules)
}

/// What OpenCode's config gets for the session: its MCP servers (`mcp`) and
/// its skills folder (`skills.paths`), merged over the user's own
/// `OPENCODE_CONFIG_CONTENT` if they set one (OpenCode itself merges the
/// result with the global and project config files, which stay untouched).
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
        }
    }

    fn call(&mut self, kind: Call, method: &str, path: String, body: Option<Value>) {
        self.next_id += 1;
        self.calls.insert(self.next_id, kind);
        let mut line = json!({"id": self.next_id, "method": method, "path": path});
        if let Some(body) = body {
            line["body"] = body;
        }
        self.out.extend(line.to_string().into_bytes());
        self.out.push(b'\n');
    }

    fn create_session(&mut self) {
        let rules = rules(self.mode, &self.mcp_servers);
        self.call(Call::CreateSession, "POST", "/session".into(), Some(json!({"permission": rules})));
    }

    fn prompt(&mut self, parts: Vec<Part>) {
        let Some(session) = self.session.clone().filter(|_| self.ready) else {
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
                if !self.mcp_servers.is_empty() {
                    self.call(Call::McpStatus, "GET", "/mcp".into(), None);
                }
                if self.session.is_some() {
                    // Reattach to the conversation the stored id names.
                    while let Some(p) = self.waiting.pop_front() {
                        self.prompt(p);
                    }
                } else {
                    self.create_session();
                }
                vec![]
            }
            Some("response") => {
                let id = v["id"].as_u64().unwrap_or(0);
                let status = v["status"].as_u64().unwrap_or(0);
                let call = self.calls.remove(&id).unwrap_or(Call::Other);
                let ok = (200..300).contains(&status);
                match (call, ok) {
                    (Call::McpStatus, true) => mcp_statuses(&v["body"], &self.mcp_servers),
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

/// `mcp.status` drafts from `GET /mcp` (`{name: {status, error?}}`) for the session's servers.
fn mcp_statuses(body: &Value, servers: &[String]) -> Vec<Draft> {
    servers
        .iter()
        .filter_map(|name| {
            let s = body.get(name)?;
            let status = match s["status"].as_str() {
                Some("connected") => McpServerState::Connected,
                Some("disabled") => McpServerState::Disabled,
                Some("needs_auth") | Some("needs_client_registration") | Some("failed") => McpServerState::Failed,
                _ => McpServerState::Starting,
            };
            let error = s["error"].as_str().map(str::to_string);
            Some(Draft::McpStatus { server: name.clone(), status, error })
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

    fn permission_reply(&mut self, native: &Value, decision: Decision, message: Option<&str>) {
        let reply = match decision {
            Decision::AllowOnce => "once",
            Decision::AllowAlways => "always",
            Decision::Deny => "reject",
        };
        let mut body = json!({"reply": reply});
        if let Some(m) = message {
            body["message"] = json!(m);
        }
        let id = native["request_id"].as_str().unwrap_or_default().to_string();
        self.call(Call::Other, "POST", format!("/permission/{id}/reply"), Some(body));
    }

    fn question_reply(&mut self, native: &Value, answers: Option<&[Vec<String>]>) {
        let id = native["request_id"].as_str().unwrap_or_default().to_string();
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
        if !self.mcp_servers.is_empty() && drafts.iter().any(|d| matches!(d, Draft::TurnCompleted { .. })) {
            // Servers connect on first use: how they stand after a turn is worth telling.
            self.call(Call::McpStatus, "GET", "/mcp".into(), None);
        }
        drafts
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_encodes_basic_credentials() {
        assert_eq!(super::base64(b"opencode:pw"), "b3BlbmNvZGU6cHc=");
        assert_eq!(super::base64(b"ab"), "YWI=");
        assert_eq!(super::base64(b"abc"), "YWJj");
    }
}
