//! Codex: one `codex app-server` per session, stdin, stdout and stderr all on
//! the PTY, driven over JSON-RPC: `initialize` → `initialized` →
//! `thread/start` (or `thread/resume` with the stored thread id) →
//! `turn/start` per message, `turn/interrupt` to stop a turn. Approval
//! requests from the server become permission events; the client's decision
//! is the JSON-RPC answer.
//!
//! `launch` starts it and holds the thread config, `wire` types the JSON-RPC
//! messages and tether's replies, `convert` turns notifications and requests
//! into drafts and the replies due at once (pure); this adapter alone writes
//! to codex: the handshake, our requests and their answers, turns,
//! interrupts, and the replies the converter or the client decide.

pub mod convert;
pub mod launch;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tether_protocol::{Decision, Part, PermissionMode, StopReason};

use super::{lenient, Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::LaunchSpec;
use convert::CodexConverter;
use launch::trust_config;
pub use launch::{launch, mcp_config, policy};
use wire::{Envelope, Reply, RequestKind, ThreadOpened, TurnRef};

/// The registry's constructor.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(CodexAdapter::new(program))
}

pub struct CodexAdapter {
    program: PathBuf,
    converter: CodexConverter,
    out: Vec<u8>,
    next_id: u64,
    /// Our requests awaiting an answer: id → method.
    requests: HashMap<u64, &'static str>,
    /// Set at launch: how to open the thread.
    cwd: String,
    model: Option<String>,
    mode: PermissionMode,
    resume: Option<String>,
    /// `config.mcp_servers` for thread/start and thread/resume (Codex does not keep it with the thread).
    mcp_config: Option<Value>,
    /// The session's skills folder, given as an extra skills root.
    skills_dir: Option<String>,
    thread_id: Option<String>,
    /// The codex turn running now (for `turn/interrupt`).
    turn_id: Option<String>,
    interrupt_wanted: bool,
    /// Messages that arrived before the thread was open.
    waiting: VecDeque<Vec<Part>>,
}

impl CodexAdapter {
    pub fn new(program: PathBuf) -> Self {
        CodexAdapter {
            program,
            converter: CodexConverter::new(),
            out: Vec::new(),
            next_id: 0,
            requests: HashMap::new(),
            cwd: String::new(),
            model: None,
            mode: PermissionMode::Default,
            resume: None,
            mcp_config: None,
            skills_dir: None,
            thread_id: None,
            turn_id: None,
            interrupt_wanted: false,
            waiting: VecDeque::new(),
        }
    }

    fn send(&mut self, v: Value) {
        if let Ok(mut bytes) = serde_json::to_vec(&v) {
            bytes.push(b'\n');
            self.out.extend(bytes);
        }
    }

    fn request(&mut self, method: &'static str, params: Value) {
        self.next_id += 1;
        self.requests.insert(self.next_id, method);
        self.send(json!({"id": self.next_id, "method": method, "params": params}));
    }

    fn open_thread(&mut self) {
        let (approval, sandbox) = policy(self.mode);
        let mut params = json!({"cwd": self.cwd, "approvalPolicy": approval, "sandbox": sandbox});
        if let Some(model) = &self.model {
            params["model"] = json!(model);
        }
        let mut config = self.mcp_config.clone().unwrap_or_else(|| json!({}));
        if let Some(Value::Object(trust)) = trust_config(Path::new(&self.cwd), sandbox) {
            config.as_object_mut().into_iter().for_each(|c| c.extend(trust.clone()));
        }
        if config.as_object().is_some_and(|c| !c.is_empty()) {
            params["config"] = config;
        }
        match self.resume.clone() {
            Some(thread_id) => {
                params["threadId"] = json!(thread_id);
                // The history stays with codex; asking for it is deprecated.
                params["excludeTurns"] = json!(true);
                self.request("thread/resume", params);
            }
            None => self.request("thread/start", params),
        }
    }

    fn start_turn(&mut self, parts: Vec<Part>) {
        let Some(thread_id) = self.thread_id.clone() else {
            self.waiting.push_back(parts);
            return;
        };
        let input: Vec<Value> = parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => json!({"type": "text", "text": text}),
                Part::Image { path: Some(path), .. } => json!({"type": "localImage", "path": path}),
                Part::Image { mime, data, .. } => {
                    json!({"type": "image", "url": format!("data:{mime};base64,{}", data.as_deref().unwrap_or(""))})
                }
                Part::File { path } => json!({"type": "text", "text": format!("@{path}")}),
            })
            .collect();
        self.request("turn/start", json!({"threadId": thread_id, "input": input}));
    }

    fn send_interrupt(&mut self) {
        if let (Some(thread_id), Some(turn_id)) = (self.thread_id.clone(), self.turn_id.clone()) {
            self.interrupt_wanted = false;
            self.request("turn/interrupt", json!({"threadId": thread_id, "turnId": turn_id}));
        }
    }

    /// The answer to one of our requests.
    fn response(&mut self, method: &'static str, result: Option<Value>, error: Option<wire::RpcError>) -> Vec<Draft> {
        if let Some(e) = error {
            let mut drafts = vec![Draft::Error {
                code: "agent_protocol".into(),
                message: format!("codex refused {method}: {}", e.message),
                retryable: false,
            }];
            match method {
                // The stored thread is gone: start a fresh one rather than fail every turn.
                "thread/resume" => {
                    self.resume = None;
                    self.open_thread();
                }
                "turn/start" => drafts.push(Draft::TurnCompleted {
                    stop_reason: StopReason::Error,
                    usage: None,
                    error: Some(("turn_rejected".into(), e.message)),
                }),
                _ => {}
            }
            return drafts;
        }
        let result = result.unwrap_or(Value::Null);
        match method {
            "thread/start" | "thread/resume" => {
                let opened: ThreadOpened = lenient::decode(&result);
                let thread_id = opened.thread.into_inner().map(|t| t.id);
                let model = opened.model.into_inner();
                self.thread_id = thread_id.clone();
                self.converter.set_thread(thread_id.clone());
                while let Some(parts) = self.waiting.pop_front() {
                    self.start_turn(parts);
                }
                vec![Draft::SessionStarted { native_session_id: thread_id, model }]
            }
            "turn/start" => {
                self.turn_id = lenient::decode::<TurnRef>(&result).turn.into_inner().map(|t| t.id);
                if self.interrupt_wanted {
                    self.send_interrupt();
                }
                vec![]
            }
            _ => vec![],
        }
    }
}

impl Adapter for CodexAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        self.cwd = ctx.cwd.display().to_string();
        self.model = ctx.model.map(str::to_string);
        self.mode = ctx.permission_mode;
        self.converter.set_accept_edits(self.mode == PermissionMode::AcceptEdits);
        self.resume = ctx.resume.map(str::to_string);
        self.mcp_config = mcp_config(ctx);
        self.skills_dir = ctx.skills_dir.map(|d| d.display().to_string());
        self.thread_id = None;
        self.turn_id = None;
        self.requests.clear();
        launch(&self.program, ctx)
    }

    fn started(&mut self) {
        self.request(
            "initialize",
            json!({"clientInfo": {"name": "tether", "title": "tether", "version": env!("CARGO_PKG_VERSION")}}),
        );
        self.send(json!({"method": "initialized"}));
        if let Some(dir) = self.skills_dir.clone() {
            // For the whole process, before the thread opens (so its first turn lists them).
            self.request("skills/extraRoots/set", json!({"extraRoots": [dir]}));
        }
        self.open_thread();
    }

    fn user_message(&mut self, parts: &[Part]) {
        self.start_turn(parts.to_vec());
    }

    fn interrupt(&mut self) -> bool {
        // Before codex has named the turn, the interrupt goes out with its id.
        self.interrupt_wanted = true;
        self.send_interrupt();
        true
    }

    fn permission_reply(&mut self, native: &NativeRequest, decision: Decision, _message: Option<&str>) {
        let NativeRequest::Codex(req) = native else { return };
        let id = req.id.clone();
        let reply = match &req.kind {
            RequestKind::Elicitation { item_id, .. } => {
                // "Always" for tether is this session: codex's own "always" would write the user's config.toml.
                let session_wide = req.may_persist_for_session();
                if let (Decision::Deny, Some(item_id)) = (decision, item_id) {
                    self.converter.mcp_call_declined(item_id);
                }
                Reply::Elicitation {
                    id,
                    accept: decision != Decision::Deny,
                    session: decision == Decision::AllowAlways && session_wide,
                }
            }
            _ => {
                let decision = match (decision, req.is_legacy()) {
                    (Decision::AllowOnce, false) => "accept",
                    (Decision::AllowAlways, false) => "acceptForSession",
                    (Decision::Deny, false) => "decline",
                    (Decision::AllowOnce, true) => "approved",
                    (Decision::AllowAlways, true) => "approved_for_session",
                    (Decision::Deny, true) => "denied",
                };
                Reply::Decision { id, decision }
            }
        };
        self.send(reply.to_json());
    }

    fn question_reply(&mut self, native: &NativeRequest, answers: Option<&[Vec<String>]>) {
        let NativeRequest::Codex(req) = native else { return };
        let ids = match &req.kind {
            RequestKind::UserInput { question_ids } => question_ids.as_slice(),
            _ => &[],
        };
        let answers = ids
            .iter()
            .enumerate()
            .map(|(i, q)| (q.clone(), answers.and_then(|a| a.get(i)).cloned().unwrap_or_default()))
            .collect();
        self.send(Reply::Answers { id: req.id.clone(), answers }.to_json());
    }

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        let env: Envelope = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => return vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }],
        };
        match (env.id, env.method) {
            // A request from codex.
            (Some(id), Some(method)) => {
                let params = env.params.unwrap_or(Value::Null);
                let converted = self.converter.server_request(id, &method, params, line);
                if let Some(reply) = converted.reply {
                    self.send(reply.to_json());
                }
                converted.drafts
            }
            // A notification.
            (None, Some(method)) => {
                if method == "turn/started" {
                    let started: Option<TurnRef> = env.params.as_ref().map(lenient::decode);
                    if let Some(turn) = started.and_then(|t| t.turn.into_inner()) {
                        self.turn_id = Some(turn.id);
                        if self.interrupt_wanted {
                            self.send_interrupt();
                        }
                    }
                }
                if method == "turn/completed" {
                    self.turn_id = None;
                    self.interrupt_wanted = false;
                }
                self.converter.notification(&method, env.params.unwrap_or(Value::Null), line)
            }
            // An answer to one of our requests.
            (Some(id), None) => {
                let Some(method) = id.as_u64().and_then(|n| self.requests.remove(&n)) else {
                    return vec![Draft::Unparsed {
                        line: line.to_string(),
                        error: "answer to an unknown request".into(),
                    }];
                };
                self.response(method, env.result, env.error)
            }
            (None, None) => {
                vec![Draft::Unparsed { line: line.to_string(), error: "neither a request nor a notification".into() }]
            }
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}
