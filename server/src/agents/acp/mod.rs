//! Any agent that speaks the Agent Client Protocol (ACP, JSON-RPC 2.0 over
//! stdio, protocol v1) — Gemini CLI, Qwen Code, OpenCode's ACP mode, the
//! Claude and Codex adapters, GitHub Copilot CLI, or one a user declares —
//! driven by one adapter:
//! `initialize` → `session/new` with the session's MCP servers (or
//! `session/load` with the stored session id, where the agent announced
//! `loadSession`) → `session/prompt` per message, `session/cancel` to stop a
//! turn. `session/request_permission` becomes a permission; the agent's calls
//! to the client's `fs/read_text_file` and `fs/write_text_file` are served
//! inside the workspace (anything outside is refused); `terminal/*` is not
//! offered. What an agent cannot do is answered, never left hanging: unknown
//! requests get "method not found".
//!
//! `launch` declares agents and starts them, `wire` holds the envelopes and
//! the protocol crate's types, `convert` turns updates and permission requests
//! into drafts (pure); this adapter alone writes to the agent.
//!
//! Agents differ (see `shared/agents/acp`): request ids may be 0 or strings;
//! Gemini asks permission with no `tool_call` before it and sends nothing for
//! a rejected call (the session closes it with the turn); Gemini answers a
//! read of a missing file only as a JSON-RPC error it then cannot tell from a
//! failure, so a missing file inside the workspace reads as empty text.
//! OpenCode sends the edit it proposes to `fs/write_text_file` but writes
//! the file itself whatever the answer, and names MCP tools
//! `<server>_<tool>`; its last update of a write replaces the diff it asked
//! with (the converter keeps it).
//! Claude's adapter starts in a mode that approves by itself (`auto`), sends
//! updates without a `status`, a model error as text and then a JSON-RPC
//! error with `data.errorKind`, and a subagent's calls on the session marked
//! `_meta.claudeCode.parentToolUseId`; it writes files itself.
//! Codex's adapter (the TypeScript `codex-acp`, running `codex app-server`)
//! starts in a mode whose approvals a model call judges (`agent`): tether's
//! default asks it for `read-only` (it asks before any edit, and before a
//! command leaves its sandbox). It ends a turn whose call was refused
//! `cancelled`, sends a command's output only in `_meta`
//! (`terminal_output_delta`, `terminal_exit`), names MCP calls
//! `mcp.SERVER.TOOL` with the arguments under `rawInput.arguments`, and a
//! model error only as the turn's text (a chunk with no `messageId`, then
//! `end_turn` with no usage: its `error_unnamed`).
//! Qwen Code's own default mode (`auto`) has a model classifier judge each
//! call: tether's default permission mode asks it for `default`. It names
//! MCP tools `mcp__<server>__<tool>`, defers them behind its `tool_call`
//! tool, and connects the servers in the background after `session/new`.
//! Copilot's mode ids are URLs (`…/session-modes#plan`: matched by their
//! fragment); it takes only HTTP and SSE MCP servers, names their tools
//! `<server>-<tool>` but the bare tool in its permission request (a call
//! once seen as MCP stays one), asks to write with a git diff in its input,
//! puts a command's exit code in `rawOutput.contents` (`shell_exit`), and
//! tells a failed model call only as a message `Error: …` before `end_turn`
//! with no usage (its `error_text`).

pub mod convert;
pub mod launch;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;

use serde_json::{json, Value};
use tether_protocol::{Decision, Part, PermissionMode, StopReason};

use super::{lenient, Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::LaunchSpec;
use convert::AcpConverter;
pub use launch::AcpAgent;
use wire::{Envelope, PermissionAsk, PermissionOptionKind, RpcError};

/// Gemini CLI (`gemini --acp`). `GEMINI_CLI_NO_RELAUNCH` keeps it one process
/// (its relaunching parent ignores SIGTERM).
pub const GEMINI: AcpAgent = AcpAgent {
    id: "gemini",
    args: &["--acp"],
    env: &[("GEMINI_CLI_NO_RELAUNCH", "true")],
    model_flag: Some("--model"),
    session_env: None,
    error_text: None,
    error_unnamed: false,
};

/// Qwen Code (`qwen --acp`). `QWEN_CODE_NO_RELAUNCH` keeps it one process
/// (its `.bin/qwen` wrapper otherwise spawns the real CLI again, which a
/// signal to the wrapper leaves running).
pub const QWEN: AcpAgent = AcpAgent {
    id: "qwen",
    args: &["--acp"],
    env: &[("QWEN_CODE_NO_RELAUNCH", "true")],
    model_flag: Some("--model"),
    session_env: None,
    error_text: None,
    error_unnamed: false,
};

/// OpenCode's ACP mode (`opencode acp`, the binary of the native agent):
/// it has no ACP mode for tether's permission modes, so the session's
/// permission rules (and model) reach it through its environment.
pub const OPENCODE: AcpAgent = AcpAgent {
    id: "opencode-acp",
    args: &["acp"],
    env: &[("NO_COLOR", "1")],
    model_flag: None,
    session_env: Some(super::opencode::launch::acp_env),
    error_text: None,
    error_unnamed: false,
};

/// Claude Code's ACP adapter (`claude-agent-acp`, no arguments), running
/// the `claude` of the `claude` agent, without prompt suggestions (an extra
/// model request after every turn). Its model retries are silent over ACP
/// (up to ~170 s before the error): `CLAUDE_CODE_MAX_RETRIES` bounds them.
pub const CLAUDE: AcpAgent = AcpAgent {
    id: "claude-acp",
    args: &[],
    env: &[
        ("CLAUDE_CODE_ENABLE_PROMPT_SUGGESTION", "false"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
    ],
    model_flag: None,
    session_env: Some(super::claude::launch::acp_env),
    error_text: None,
    error_unnamed: false,
};

/// GitHub Copilot CLI's ACP mode (`copilot --acp`), without its self-update
/// and its client telemetry. Its mode ids are URLs
/// (`…/session-modes#plan`); it has no mode that approves everything, so
/// `bypass` is its `COPILOT_ALLOW_ALL` (`on`: tools only, not "trust the
/// directory's hooks" as `true` would), and every other mode turns it off.
/// A model error is a message `Error: …` and `end_turn` (after its own
/// retries of a 5xx, each an `Info: … Retrying...` message).
pub const COPILOT: AcpAgent = AcpAgent {
    id: "copilot",
    args: &["--acp", "--no-auto-update", "--disable-client-telemetry"],
    env: &[("COPILOT_AUTO_UPDATE", "false"), ("NO_COLOR", "1")],
    model_flag: Some("--model"),
    session_env: Some(copilot_env),
    error_text: Some("Error: "),
    error_unnamed: false,
};

fn copilot_env(ctx: &LaunchContext<'_>) -> Vec<(String, String)> {
    let allow_all = if ctx.permission_mode == PermissionMode::Bypass { "on" } else { "off" };
    vec![("COPILOT_ALLOW_ALL".to_string(), allow_all.to_string())]
}

/// Codex's ACP adapter (`@agentclientprotocol/codex-acp`, no arguments),
/// running `codex app-server` of the `codex` agent (`CODEX_PATH`), with the
/// user's Codex config (`CODEX_HOME`); the session's model as its thread
/// config (`CODEX_CONFIG`).
pub const CODEX: AcpAgent = AcpAgent {
    id: "codex-acp",
    args: &[],
    env: &[("NO_COLOR", "1")],
    model_flag: None,
    session_env: Some(super::codex::launch::acp_env),
    error_text: None,
    error_unnamed: true,
};

/// Where the last `initialize` answer of an ACP agent is kept.
pub fn announced_path(data_dir: &std::path::Path, id: &str) -> PathBuf {
    data_dir.join("agents-announced").join(format!("{id}.json"))
}

/// What an ACP agent announced the last time it started, if it has.
pub fn announced(data_dir: &std::path::Path, id: &str) -> Option<wire::Initialized> {
    let bytes = std::fs::read(announced_path(data_dir, id)).ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    Some(lenient::decode(&value))
}

/// The ACP session modes that mean a tether permission mode, in the order tried.
fn mode_ids(mode: PermissionMode) -> &'static [&'static str] {
    match mode {
        // An agent whose own default approves by itself (the Claude adapter's `auto`, the
        // Codex adapter's `agent`, a model's review) is asked to ask: Codex's `read-only`
        // asks before an edit and before a command leaves the sandbox.
        PermissionMode::Default => &["default", "read-only"],
        // Codex's `workspace-write` edits the workspace without asking.
        PermissionMode::AcceptEdits => &["autoEdit", "auto-edit", "acceptEdits", "workspace-write"],
        PermissionMode::Bypass => &["yolo", "bypassPermissions", "agent-full-access", "full-access"],
        PermissionMode::Plan => &["plan", "read-only"],
    }
}

/// What one of our requests was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ours {
    Initialize,
    NewSession,
    LoadSession,
    SetMode,
    Prompt,
}

pub struct AcpAdapter {
    program: PathBuf,
    agent: &'static AcpAgent,
    converter: AcpConverter,
    out: Vec<u8>,
    next_id: u64,
    requests: HashMap<u64, Ours>,
    cwd: PathBuf,
    /// The root the client `fs` methods are confined to.
    workspace: PathBuf,
    data_dir: PathBuf,
    mode: PermissionMode,
    resume: Option<String>,
    mcp_servers: Vec<Value>,
    /// Announced by the agent in `initialize`.
    load_session: bool,
    session_id: Option<String>,
    /// The session is open and its mode set: prompts may go out.
    ready: bool,
    /// `initialize` was answered; a `session/new` or `session/load` is in flight.
    initialized: bool,
    opening: bool,
    /// `session/load` replays the history before it answers: tether has it already.
    loading: bool,
    /// The `session/prompt` running now, and whether we asked it to stop.
    prompt: Option<u64>,
    cancel_sent: bool,
    cancel_wanted: bool,
    /// Permission requests not answered yet (their ids).
    asks: Vec<Value>,
    /// Messages that arrived before the session was open.
    waiting: VecDeque<Vec<Part>>,
}

impl AcpAdapter {
    pub fn new(program: PathBuf, agent: &'static AcpAgent) -> Self {
        AcpAdapter {
            program,
            agent,
            converter: AcpConverter::default(),
            out: Vec::new(),
            next_id: 0,
            requests: HashMap::new(),
            cwd: PathBuf::new(),
            workspace: PathBuf::new(),
            data_dir: PathBuf::new(),
            mode: PermissionMode::Default,
            resume: None,
            mcp_servers: Vec::new(),
            load_session: false,
            session_id: None,
            ready: false,
            initialized: false,
            opening: false,
            loading: false,
            prompt: None,
            cancel_sent: false,
            cancel_wanted: false,
            asks: Vec::new(),
            waiting: VecDeque::new(),
        }
    }

    fn send(&mut self, v: Value) {
        if let Ok(mut bytes) = serde_json::to_vec(&v) {
            bytes.push(b'\n');
            self.out.extend(bytes);
        }
    }

    fn request(&mut self, ours: Ours, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        self.requests.insert(self.next_id, ours);
        self.send(wire::request(self.next_id, method, params));
        self.next_id
    }

    fn open_session(&mut self) {
        self.opening = true;
        let cwd = self.cwd.display().to_string();
        let servers = Value::Array(self.mcp_servers.clone());
        match self.resume.clone().filter(|_| self.load_session) {
            Some(id) => {
                self.loading = true;
                self.request(
                    Ours::LoadSession,
                    "session/load",
                    json!({"sessionId": id, "cwd": cwd, "mcpServers": servers}),
                );
            }
            None => {
                self.request(Ours::NewSession, "session/new", json!({"cwd": cwd, "mcpServers": servers}));
            }
        }
    }

    fn start_prompt(&mut self, parts: Vec<Part>) {
        let Some(session_id) = self.session_id.clone().filter(|_| self.ready) else {
            self.waiting.push_back(parts);
            // A session that could not be opened is tried again for a new message.
            if self.initialized && !self.opening && self.session_id.is_none() {
                self.open_session();
            }
            return;
        };
        let prompt = launch::prompt(&parts, &self.cwd);
        self.cancel_sent = false;
        let id = self.request(Ours::Prompt, "session/prompt", json!({"sessionId": session_id, "prompt": prompt}));
        self.prompt = Some(id);
        if self.cancel_wanted {
            self.send_cancel();
        }
    }

    fn send_cancel(&mut self) {
        let Some(session_id) = self.session_id.clone() else { return };
        self.cancel_wanted = false;
        self.cancel_sent = true;
        self.send(wire::notification("session/cancel", json!({"sessionId": session_id})));
        // Every agent ignores a late answer to a request open at a cancel: answer them now.
        for id in std::mem::take(&mut self.asks) {
            self.send(wire::result(&id, json!({"outcome": {"outcome": "cancelled"}})));
        }
    }

    /// The session is open and in its mode: the messages that waited go out.
    fn session_ready(&mut self) {
        self.ready = true;
        while let Some(parts) = self.waiting.pop_front() {
            self.start_prompt(parts);
        }
    }

    /// The agent could not start or open its session: an error, and the
    /// messages that waited for it fail with it.
    fn failed(&mut self, message: String) -> Vec<Draft> {
        let mut drafts =
            vec![Draft::Error { code: "agent_protocol".into(), message: message.clone(), retryable: false }];
        if !self.waiting.is_empty() {
            self.waiting.clear();
            drafts.push(Draft::TurnCompleted {
                stop_reason: StopReason::Error,
                usage: None,
                error: Some(("agent_failed".into(), message)),
            });
        }
        drafts
    }

    /// The answer to one of our requests.
    fn response(&mut self, ours: Ours, result: Option<Value>, error: Option<RpcError>) -> Vec<Draft> {
        let name = self.agent.id;
        if let Some(e) = error {
            let text = e.text();
            return match ours {
                Ours::Initialize => self.failed(format!("{name} did not start its ACP connection: {text}")),
                Ours::LoadSession => {
                    // The stored conversation is gone: a fresh one rather than failing every turn.
                    self.loading = false;
                    self.resume = None;
                    self.open_session();
                    vec![Draft::Error {
                        code: "resume_failed".into(),
                        message: format!("{name} could not resume its conversation ({text}); a new one was started"),
                        retryable: false,
                    }]
                }
                Ours::NewSession => {
                    self.opening = false;
                    self.failed(format!("{name} could not open a session: {text}"))
                }
                Ours::SetMode => {
                    let log = Draft::Log {
                        stream: tether_protocol::LogStream::Pty,
                        text: format!("{name} refused the session mode: {text}"),
                    };
                    self.session_ready();
                    vec![log]
                }
                Ours::Prompt => {
                    self.prompt = None;
                    self.converter.turn_ended();
                    // A model's HTTP status as the code (Gemini), its details (Qwen),
                    // an `APIError` (OpenCode), or the kind of API error (Claude's adapter).
                    let model = (400..=599).contains(&e.code)
                        || e.data.as_ref().is_some_and(|d| {
                            d.get("details").is_some()
                                || d.get("errorName").and_then(Value::as_str) == Some("APIError")
                                || d.get("errorKind").is_some()
                        });
                    let code = if model { "model_error" } else { "agent_error" };
                    vec![Draft::TurnCompleted {
                        stop_reason: StopReason::Error,
                        usage: None,
                        error: Some((code.into(), text)),
                    }]
                }
            };
        }
        let result = result.unwrap_or(Value::Null);
        match ours {
            Ours::Initialize => {
                let answer: wire::Initialized = lenient::decode(&result);
                self.initialized = true;
                self.load_session = answer.load_session();
                // Kept for `GET /v1/agents`: what it says it can do, and its version.
                let kept = announced_path(&self.data_dir, self.agent.id);
                let written = kept
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&kept, serde_json::to_vec(&result).unwrap_or_default()));
                if let Err(e) = written {
                    tracing::debug!(agent = self.agent.id, error = %e, "could not keep what the agent announced");
                }
                self.open_session();
                vec![]
            }
            Ours::NewSession | Ours::LoadSession => {
                self.loading = false;
                self.opening = false;
                let opened: wire::SessionOpened = lenient::decode(&result);
                let session_id = match ours {
                    Ours::NewSession => opened.session_id.get().cloned(),
                    _ => self.resume.clone(),
                };
                self.session_id = session_id.clone();
                let model = opened.models.get().and_then(|m| m.current_model_id.get().cloned());
                // The permission mode, where the agent has a mode for it.
                let modes = opened.modes.get();
                let available: Vec<&str> = modes
                    .map(|m| m.available_modes.iter().filter_map(|m| Some(m.get()?.id.as_str())).collect())
                    .unwrap_or_default();
                let current = modes.and_then(|m| m.current_mode_id.get().map(String::as_str));
                // A mode id may be a URL whose fragment names the mode (Copilot's `…#plan`).
                let named = |id: &str, m: &str| id == m || id.rsplit_once('#').is_some_and(|(_, f)| f == m);
                let wanted = mode_ids(self.mode).iter().find_map(|m| available.iter().find(|a| named(a, m))).copied();
                let set_mode = wanted.filter(|m| Some(*m) != current);
                if let (Some(mode), Some(sid)) = (set_mode, session_id.clone()) {
                    // Prompts wait for it: a turn runs in the mode asked for.
                    self.request(Ours::SetMode, "session/set_mode", json!({"sessionId": sid, "modeId": mode}));
                }
                let mut drafts = vec![Draft::SessionStarted { native_session_id: session_id, model }];
                if self.session_id.is_none() {
                    drafts.extend(self.failed(format!("{name} opened a session without an id")));
                    return drafts;
                }
                if set_mode.is_none() {
                    self.session_ready();
                }
                drafts
            }
            Ours::SetMode => {
                self.session_ready();
                vec![]
            }
            Ours::Prompt => {
                self.prompt = None;
                self.asks.clear();
                let answer: wire::PromptAnswer = lenient::decode(&result);
                let stop = answer.stop_reason.get().map_or("end_turn", String::as_str);
                let (stop_reason, error) = match stop {
                    "cancelled" if self.cancel_sent => (StopReason::Interrupted, None),
                    "max_turn_requests" => (StopReason::MaxTurns, None),
                    "refusal" => (StopReason::Refused, None),
                    "max_tokens" => (
                        StopReason::Error,
                        Some(("max_tokens".to_string(), "the model reached its output token limit".to_string())),
                    ),
                    _ => (StopReason::EndTurn, None),
                };
                // An agent that tells a failed turn only as text: its last chunk
                // opens with its error text, and no usage came with the answer.
                let failed = match (stop, self.agent.error_text, answer.usage()) {
                    ("end_turn", Some(open), None) => self.converter.last_chunk().and_then(|t| t.strip_prefix(open)),
                    ("end_turn", None, None) if self.agent.error_unnamed => self.converter.last_unnamed_chunk(),
                    _ => None,
                };
                let (stop_reason, error) = match failed {
                    Some(text) => (StopReason::Error, Some(("model_error".to_string(), text.trim().to_string()))),
                    None => (stop_reason, error),
                };
                let streamed = self.converter.turn_ended();
                let usage = answer.usage().or(streamed);
                vec![Draft::TurnCompleted { stop_reason, usage, error }]
            }
        }
    }

    /// A request the agent makes of us.
    fn agent_request(&mut self, id: Value, method: &str, params: Value, line: &str) -> Vec<Draft> {
        match method {
            "session/request_permission" => {
                let request: wire::RequestPermissionRequest = match serde_json::from_value(params) {
                    Ok(r) => r,
                    Err(e) => {
                        self.send(wire::error(&id, wire::INVALID_PARAMS, &e.to_string()));
                        return vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }];
                    }
                };
                let ask = PermissionAsk { id: id.clone(), options: request.options.clone() };
                if self.prompt.is_some() && self.cancel_sent {
                    // Asked after we cancelled: nobody will answer it.
                    self.send(wire::result(&id, json!({"outcome": {"outcome": "cancelled"}})));
                    return vec![];
                }
                self.asks.push(id);
                self.converter.permission(ask, request)
            }
            "fs/read_text_file" => {
                let reply = match serde_json::from_value::<wire::ReadTextFileRequest>(params) {
                    Ok(r) => self.read_file(&id, r),
                    Err(e) => wire::error(&id, wire::INVALID_PARAMS, &e.to_string()),
                };
                self.send(reply);
                vec![]
            }
            "fs/write_text_file" => {
                let reply = match serde_json::from_value::<wire::WriteTextFileRequest>(params) {
                    Ok(r) => match crate::fs::write_file(
                        &self.workspace,
                        &r.path.display().to_string(),
                        r.content.as_bytes(),
                    ) {
                        Ok(_) => wire::result(&id, json!({})),
                        Err(e) => wire::error(&id, wire::INVALID_PARAMS, &e.to_string()),
                    },
                    Err(e) => wire::error(&id, wire::INVALID_PARAMS, &e.to_string()),
                };
                self.send(reply);
                vec![]
            }
            _ => {
                let message = format!("tether does not offer `{method}`");
                self.send(wire::error(&id, wire::METHOD_NOT_FOUND, &message));
                vec![]
            }
        }
    }

    /// `fs/read_text_file` inside the workspace: the text, from `line` (1-based)
    /// for `limit` lines. A missing file inside the workspace is empty text
    /// (Gemini cannot create a file otherwise); outside it, refused.
    fn read_file(&self, id: &Value, request: wire::ReadTextFileRequest) -> Value {
        /// What one read may answer: an agent reading more pages.
        const MAX_READ: u64 = 8 << 20;
        let path = request.path.display().to_string();
        let text = match crate::fs::read_range(&self.workspace, &path, 0, MAX_READ) {
            Ok((bytes, _)) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(crate::fs::FsError::NoSuchFile { .. }) => String::new(),
            Err(e) => return wire::error(id, wire::RESOURCE_NOT_FOUND, &e.to_string()),
        };
        let text = match (request.line, request.limit) {
            (None, None) => text,
            (line, limit) => {
                let skip = line.map_or(0, |l| l.saturating_sub(1) as usize);
                let take = limit.map_or(usize::MAX, |l| l as usize);
                text.split_inclusive('\n').skip(skip).take(take).collect()
            }
        };
        wire::result(id, json!({"content": text}))
    }
}

impl Adapter for AcpAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        self.cwd = ctx.cwd.to_path_buf();
        self.workspace = ctx.workspace.to_path_buf();
        self.data_dir = ctx.data_dir.to_path_buf();
        self.mode = ctx.permission_mode;
        self.resume = ctx.resume.map(str::to_string);
        self.mcp_servers = launch::mcp_servers(ctx);
        self.converter = AcpConverter::new(ctx.mcp_servers.keys().cloned().collect());
        self.requests.clear();
        self.session_id = None;
        self.ready = false;
        self.initialized = false;
        self.opening = false;
        self.loading = false;
        self.prompt = None;
        self.cancel_sent = false;
        self.cancel_wanted = false;
        self.asks.clear();
        launch::launch(&self.program, self.agent, ctx)
    }

    fn started(&mut self) {
        self.request(
            Ours::Initialize,
            "initialize",
            json!({
                "protocolVersion": 1,
                "clientCapabilities": {"fs": {"readTextFile": true, "writeTextFile": true}, "terminal": false},
                "clientInfo": {"name": "tether", "title": "tether", "version": env!("CARGO_PKG_VERSION")},
            }),
        );
    }

    fn user_message(&mut self, parts: &[Part]) {
        self.start_prompt(parts.to_vec());
    }

    fn interrupt(&mut self) -> bool {
        if self.prompt.is_some() {
            self.send_cancel();
        } else if !self.waiting.is_empty() {
            // Before the session is open: it goes out with the prompt. (With
            // nothing waiting the turn has just ended: a later prompt is not
            // cancelled for it.)
            self.cancel_wanted = true;
        }
        true
    }

    fn permission_reply(&mut self, native: &NativeRequest, decision: Decision, _message: Option<&str>) {
        let NativeRequest::Acp(ask) = native else { return };
        if !self.asks.contains(&ask.id) {
            return; // answered already (cancelled)
        }
        self.asks.retain(|id| id != &ask.id);
        // "Always" in tether means this session: an option that says it would
        // write the project's or the user's settings is not taken for it.
        let lasting = |id: &str| id.contains("project") || id.contains("user");
        let find = |kind: PermissionOptionKind, allow_lasting: bool| {
            ask.options.iter().find(|o| o.kind == kind && (allow_lasting || !lasting(&o.option_id.0)))
        };
        let chosen =
            match decision {
                Decision::AllowOnce => find(PermissionOptionKind::AllowOnce, true)
                    .or_else(|| find(PermissionOptionKind::AllowAlways, false)),
                Decision::AllowAlways => find(PermissionOptionKind::AllowAlways, false)
                    .or_else(|| find(PermissionOptionKind::AllowOnce, true)),
                Decision::Deny => find(PermissionOptionKind::RejectOnce, true)
                    .or_else(|| find(PermissionOptionKind::RejectAlways, true)),
            };
        let outcome = match chosen {
            Some(o) => json!({"outcome": "selected", "optionId": o.option_id.0.to_string()}),
            None => json!({"outcome": "cancelled"}),
        };
        self.send(wire::result(&ask.id, json!({ "outcome": outcome })));
    }

    fn question_reply(&mut self, _native: &NativeRequest, _answers: Option<&[Vec<String>]>) {
        // ACP agents ask no questions of this kind.
    }

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        let env: Envelope = match serde_json::from_str(line) {
            Ok(e) => e,
            Err(e) => return vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }],
        };
        match (env.id, env.method) {
            (Some(id), Some(method)) => self.agent_request(id, &method, env.params.unwrap_or(Value::Null), line),
            (None, Some(method)) => match method.as_str() {
                "session/update" => {
                    if self.loading {
                        return vec![];
                    }
                    match serde_json::from_value::<wire::SessionNotification>(env.params.unwrap_or(Value::Null)) {
                        // Text outside a turn (Gemini's `[MODE_UPDATE] yolo` after a mode
                        // change) belongs to no conversation: the agent's log.
                        Ok(wire::SessionNotification {
                            update: wire::SessionUpdate::AgentMessageChunk(chunk), ..
                        }) if self.prompt.is_none() => match chunk.content {
                            wire::ContentBlock::Text(t) => {
                                vec![Draft::Log { stream: tether_protocol::LogStream::Pty, text: t.text }]
                            }
                            _ => vec![],
                        },
                        Ok(n) => self.converter.update(n.update),
                        Err(e) => vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }],
                    }
                }
                "$/cancel_request" => {
                    let params: wire::CancelRequest = lenient::decode(&env.params.unwrap_or(Value::Null));
                    let Some(id) = params.request_id.or(params.id) else { return vec![] };
                    self.asks.retain(|a| a != &id);
                    vec![Draft::RequestCancelled { native_request_id: wire::id_text(&id) }]
                }
                // Vendor notifications (`_…`, status updates): nothing to show.
                _ => vec![],
            },
            (Some(id), None) => {
                let Some(ours) = id.as_u64().and_then(|n| self.requests.remove(&n)) else {
                    return vec![Draft::Unparsed {
                        line: line.to_string(),
                        error: "answer to an unknown request".into(),
                    }];
                };
                self.response(ours, env.result, env.error)
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
