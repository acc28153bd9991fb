//! The agents tether can run: one folder per agent holding its whole story,
//! every folder the same shape:
//!
//! - `launch.rs`: how it starts for a session: command, flags, environment,
//!   and any file it is given (MCP config, skills), as a
//!   [`LaunchSpec`](crate::process::LaunchSpec) for the process host.
//! - `wire.rs`: what it says, as serde types: its native messages, the
//!   token of a request it makes ([`NativeRequest`]) and the replies tether
//!   sends. Fields a model or a loose protocol may fill with anything are
//!   [`lenient::Lenient`]; serde `Value` is kept only for opaque payloads
//!   (a tool's input) that are passed on, never dug into.
//! - `convert.rs`: how that becomes events. Pure: a wire message in, event
//!   [`Draft`]s (and for request/response protocols, typed replies) out; no
//!   I/O, no clock, no writing to the agent. Anything it cannot place
//!   becomes [`Draft::Unparsed`] (`agent.unparsed`), never dropped.
//!   Replayed against the recordings in `testdata/` by the converter kit
//!   (`snapshots.rs`).
//! - `mod.rs`: the [`Adapter`]: the only part with effects: it queues input
//!   and replies for the agent, tracks handshake state (threads, sessions,
//!   our own requests) and answers permissions and questions from the
//!   [`NativeRequest`] its converter made.
//!
//! The built-in `mock/` is the exception that proves the shape: a real
//! process speaking Claude's dialect, so its server side is only `launch.rs`
//! (Claude's adapter with the mock's launcher).
//!
//! This module holds what they share: the [`Adapter`] trait, the [`Draft`]s
//! adapters produce, the [`NativeRequest`] token and the registry
//! [`AGENTS`]. It must not know any agent's protocol beyond that token.
//!
//! # Adding an agent
//!
//! 1. A folder `agents/<id>/` with `launch.rs`, `wire.rs`, `convert.rs`
//!    and the adapter in `mod.rs`, as above (Claude's is the model); record
//!    real sessions into `testdata/` and add its replay test.
//! 2. One entry in [`AGENTS`]: id, name, command, capabilities, pinned npm
//!    package, what it accepts (MCP, skills), and `driver: Driver::Native(<id>::adapter)`.
//!    An agent that speaks ACP needs no folder: an [`acp::AcpAgent`] and
//!    `driver: Driver::Acp(..)`.
//! 3. If it asks permissions or questions, a variant of [`NativeRequest`]
//!    holding its `wire` type of such a request.
//! 4. Its id in `tether_protocol::SESSION_AGENTS` (the API's enum; a test
//!    keeps it equal to the registry's agents with an adapter).

pub mod acp;
pub mod amp;
pub mod asked;
pub mod claude;
pub mod codex;
pub mod declared;
pub mod install;
pub mod lenient;
pub mod mock;
pub mod opencode;
pub mod pi;
#[cfg(test)]
pub(crate) mod snapshots;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::process::LaunchSpec;
use serde_json::Value;
use tether_protocol::{
    Agent, Capabilities, Decision, Delta, ItemKind, ItemStatus, LogStream, McpServer, McpServerState, Part,
    PermissionAction, PermissionMode, PlanEntry, Question, Role, StopReason, Tool, Usage,
};

/// What an adapter needs to know to start its agent for a session.
pub struct LaunchContext<'a> {
    pub session_id: &'a str,
    pub cwd: &'a Path,
    /// The workspace root (what an agent's file requests are confined to).
    pub workspace: &'a Path,
    pub model: Option<&'a str>,
    pub permission_mode: PermissionMode,
    /// The agent's own id of the conversation to continue, if any.
    pub resume: Option<&'a str>,
    /// The session's environment (added to the server's); the adapter's own
    /// `LaunchSpec::env` is applied over it.
    pub env: &'a BTreeMap<String, String>,
    pub data_dir: &'a Path,
    /// A folder tether owns for this session (`<data_dir>/sessions/<id>`), for
    /// generated configuration; it exists when `launch` is called.
    pub session_dir: &'a Path,
    /// The MCP servers for this session: the global ones with the session's own merged over them.
    pub mcp_servers: &'a BTreeMap<String, McpServer>,
    /// The session's chosen skills, as `<skills_dir>/<name>/SKILL.md` (`<session_dir>/skills`);
    /// None when it has none.
    pub skills_dir: Option<&'a Path>,
}

impl<'a> LaunchContext<'a> {
    /// A session in `dir` (its cwd, workspace, data and session folders) in
    /// the default mode, with `env` and `mcp_servers`: what adapter tests
    /// start from, changing the fields they exercise.
    #[cfg(test)]
    pub fn for_test(
        dir: &'a Path,
        env: &'a BTreeMap<String, String>,
        mcp_servers: &'a BTreeMap<String, McpServer>,
    ) -> Self {
        LaunchContext {
            session_id: "ses_test",
            cwd: dir,
            workspace: dir,
            model: None,
            permission_mode: PermissionMode::Default,
            resume: None,
            env,
            data_dir: dir,
            session_dir: dir,
            mcp_servers,
            skills_dir: None,
        }
    }

    /// The working directory of a stdio MCP server: its `cwd` resolved against
    /// the session's cwd, or the session's cwd.
    pub fn mcp_cwd(&self, cwd: Option<&str>) -> PathBuf {
        match cwd {
            Some(c) => self.cwd.join(c),
            None => self.cwd.to_path_buf(),
        }
    }

    /// The command line that runs a stdio MCP server in `cwd` for agents whose
    /// MCP config has no working directory: this binary's hidden `__exec-in`
    /// subcommand changes directory, then execs the command.
    pub fn mcp_command_in(&self, command: &str, args: &[String], cwd: Option<&str>) -> (String, Vec<String>) {
        match (cwd, std::env::current_exe()) {
            (Some(c), Ok(exe)) => {
                let mut all = vec![EXEC_IN.to_string(), self.mcp_cwd(Some(c)).display().to_string(), "--".into()];
                all.push(command.to_string());
                all.extend(args.iter().cloned());
                (exe.display().to_string(), all)
            }
            _ => (command.to_string(), args.to_vec()),
        }
    }
}

/// The hidden subcommand `tether __exec-in DIR -- CMD ARGS..`: chdir, then exec.
pub const EXEC_IN: &str = "__exec-in";

/// What kinds of MCP servers, and whether skills, an agent can be given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepts {
    pub mcp_stdio: bool,
    pub mcp_http: bool,
    pub skills: bool,
}

impl Accepts {
    const ALL: Accepts = Accepts { mcp_stdio: true, mcp_http: true, skills: true };
}

/// An event as an adapter sees it: native ids, no seq, no time, no tether ids.
/// The session layer stamps those and fills in missing lifecycle events.
#[derive(Debug, Clone, PartialEq)]
pub enum Draft {
    SessionStarted {
        native_session_id: Option<String>,
        model: Option<String>,
    },
    ItemStarted {
        native_id: String,
        kind: ItemKind,
        role: Option<Role>,
        tool: Option<Tool>,
    },
    /// The item `native_id`, when it starts, belongs to the open item
    /// `parent_native_id` (a subagent's work under the tool call that started
    /// it). Written before the item's first draft; ignored once it is open.
    ItemParent {
        native_id: String,
        parent_native_id: String,
    },
    /// More is known about an item (e.g. a tool's whole input); starts it if it is not open.
    ItemUpdated {
        native_id: String,
        kind: ItemKind,
        role: Option<Role>,
        tool: Option<Tool>,
    },
    ItemDelta {
        native_id: String,
        delta: Delta,
    },
    ItemCompleted {
        native_id: String,
        kind: ItemKind,
        role: Option<Role>,
        status: ItemStatus,
        content: Vec<Part>,
        tool: Option<Tool>,
        plan: Option<Vec<PlanEntry>>,
    },
    /// The result of a tool call started earlier: completes its item.
    ToolResult {
        native_id: String,
        output: String,
        is_error: bool,
        exit_code: Option<i32>,
    },
    TurnCompleted {
        stop_reason: StopReason,
        usage: Option<Usage>,
        error: Option<(String, String)>,
    },
    PermissionRequested {
        /// What the adapter needs to answer (the agent's request id, ...).
        native: NativeRequest,
        /// The tool call this permission is about.
        native_item_id: Option<String>,
        action: PermissionAction,
        title: String,
        command: Option<String>,
        path: Option<String>,
        diff: Option<String>,
        input: Option<Value>,
    },
    QuestionRequested {
        native: NativeRequest,
        native_item_id: Option<String>,
        questions: Vec<Question>,
    },
    /// The agent withdrew a permission request or question it made
    /// (its [`NativeRequest::request_id`]).
    RequestCancelled {
        native_request_id: String,
    },
    Usage(Usage),
    Error {
        code: String,
        message: String,
        retryable: bool,
    },
    Log {
        stream: LogStream,
        text: String,
    },
    Unparsed {
        line: String,
        error: String,
    },
    /// How an MCP server given to the session stands (written only when it changes).
    McpStatus {
        server: String,
        status: McpServerState,
        error: Option<String>,
    },
}

/// A permission request or question as its agent made it: the agent's own id
/// of the request (which its cancellations name) and what the adapter's reply
/// needs, typed per agent. The session keeps it with the open request and
/// hands it back to the adapter that made it; it reads nothing but the id.
#[derive(Clone, PartialEq)]
pub enum NativeRequest {
    /// Claude Code and the mock: a `can_use_tool` control request.
    Claude(claude::wire::ToolRequest),
    /// A JSON-RPC request of Codex's app-server.
    Codex(codex::wire::ServerRequest),
    /// A permission or question of OpenCode's HTTP API.
    Opencode(opencode::wire::AskedRequest),
    /// A `session/request_permission` of an ACP agent.
    Acp(acp::wire::PermissionAsk),
}

impl NativeRequest {
    /// The agent's id of the request, as its cancellations name it.
    pub fn request_id(&self) -> String {
        match self {
            NativeRequest::Claude(r) => r.request_id.clone(),
            NativeRequest::Codex(r) => r.request_id(),
            NativeRequest::Opencode(r) => r.id().to_string(),
            NativeRequest::Acp(r) => r.request_id(),
        }
    }

    /// The request as JSON (what tether showed of it before it was typed):
    /// its Debug form, and so the converter snapshots'.
    pub fn to_json(&self) -> Value {
        match self {
            NativeRequest::Claude(r) => r.to_json(),
            NativeRequest::Codex(r) => r.to_json(),
            NativeRequest::Opencode(r) => r.to_json(),
            NativeRequest::Acp(r) => r.to_json(),
        }
    }
}

impl std::fmt::Debug for NativeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.to_json(), f)
    }
}

/// One agent's protocol: how to start it, encode input for it and convert its
/// output. Input is queued: every method may append bytes, and the session
/// writes whatever `take_output` returns after each step, in order.
pub trait Adapter: Send {
    /// The command line for this session (called before every spawn).
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec;
    /// The process is up: queue any handshake its protocol needs.
    fn started(&mut self) {}
    /// Queue a user message.
    fn user_message(&mut self, parts: &[Part]);
    /// Queue a request to stop the running turn; false if the protocol has none.
    fn interrupt(&mut self) -> bool;
    /// Queue the answer to a permission request this adapter's agent made.
    fn permission_reply(&mut self, native: &NativeRequest, decision: Decision, message: Option<&str>);
    /// Queue the answer to a question; `answers` is None when it was rejected.
    fn question_reply(&mut self, native: &NativeRequest, answers: Option<&[Vec<String>]>);
    /// Converts one line of protocol output (a JSON object) into drafts.
    fn convert(&mut self, line: &str) -> Vec<Draft>;
    /// The bytes queued for the agent's input since the last call.
    fn take_output(&mut self) -> Vec<u8>;
    /// The process said its run is over and is exiting (Amp, after an error
    /// or an interrupt): the next turn waits for the exit and a new process.
    fn ending(&self) -> bool {
        false
    }
}

/// Makes a session's adapter, given the agent's binary.
pub type NewAdapter = fn(PathBuf) -> Box<dyn Adapter>;

/// A known agent: how to find it, what it can do and how to drive it. One
/// entry of [`AGENTS`] per agent.
pub struct AgentDef {
    pub id: &'static str,
    /// Who serves the model it talks to, as OpenTelemetry's GenAI conventions
    /// name it (`gen_ai.provider.name`); `_OTHER` when it is not one maker's
    /// (an agent that takes any provider's models).
    pub provider: &'static str,
    pub name: &'static str,
    /// The command name looked up on PATH.
    pub command: &'static str,
    pub capabilities: fn() -> Capabilities,
    /// The npm package installed by `tether agents install <id>`.
    pub pinned: Option<install::Pinned>,
    /// How a person installs it, when tether cannot (a declared agent's `install`).
    pub install_hint: Option<&'static str>,
    /// The MCP servers and skills its sessions can be given.
    pub accepts: Accepts,
    /// What drives its sessions.
    pub driver: Driver,
}

/// What drives an agent's sessions.
#[derive(Clone, Copy)]
pub enum Driver {
    /// Known (listed, installable) but not driven yet: sessions of it cannot start.
    None,
    /// An adapter of its own protocol.
    Native(NewAdapter),
    /// The ACP adapter, with how this agent starts.
    Acp(&'static acp::AcpAgent),
}

impl AgentDef {
    /// A new adapter for a session of this agent, given its binary.
    pub fn new_adapter(&self, program: PathBuf) -> Option<Box<dyn Adapter>> {
        match self.driver {
            Driver::None => None,
            Driver::Native(new) => Some(new(program)),
            Driver::Acp(agent) => Some(Box::new(acp::AcpAdapter::new(program, agent))),
        }
    }

    /// Whether sessions of it can run in this build.
    pub fn is_driven(&self) -> bool {
        !matches!(self.driver, Driver::None)
    }
}

/// What the real agents tether drives (Claude Code, Codex, OpenCode) can do.
fn real_agent_caps() -> Capabilities {
    Capabilities {
        streaming_text: true,
        tool_calls: true,
        permissions: true,
        questions: true,
        interrupt: true,
        resume: true,
        mcp: true,
        skills: true,
        models: true,
        reasoning: true,
        usage: true,
        images: true,
        terminal: false,
    }
}

/// Gemini CLI over ACP, as it announces itself (`loadSession`, images, MCP
/// over stdio and HTTP) and as it behaves: no questions, no skills, no
/// terminal; usage from its answer's `_meta.quota`.
fn gemini_caps() -> Capabilities {
    Capabilities { questions: false, skills: false, ..real_agent_caps() }
}

/// OpenCode over ACP: as Gemini, but for what it announces (`loadSession`,
/// images); its `question` tool does not reach ACP clients.
fn opencode_acp_caps() -> Capabilities {
    Capabilities { questions: false, skills: false, ..real_agent_caps() }
}

/// Qwen Code over ACP, as it announces itself (`loadSession`, images, MCP
/// over stdio and HTTP): its `ask_user_question` tool does not reach ACP
/// clients, and ACP has no skills.
fn qwen_caps() -> Capabilities {
    Capabilities { questions: false, skills: false, ..real_agent_caps() }
}

/// Pi in RPC mode: streamed text and thinking, its tools, abort, resume
/// from its session file, `--provider`/`--model`, usage, images, skills
/// (`--skill`). It has no permission system (its tools run without asking),
/// asks no questions and takes no MCP servers.
fn pi_caps() -> Capabilities {
    Capabilities { permissions: false, questions: false, mcp: false, ..real_agent_caps() }
}

/// Claude Code through its ACP adapter: as the native agent, but no
/// questions (the adapter disallows `AskUserQuestion`) and no skills (ACP
/// has none).
fn claude_acp_caps() -> Capabilities {
    Capabilities { questions: false, skills: false, ..real_agent_caps() }
}

/// Codex through its ACP adapter: as the native agent, but no questions
/// (its `request_user_input` does not reach ACP clients) and no skills (ACP
/// has none).
fn codex_acp_caps() -> Capabilities {
    Capabilities { questions: false, skills: false, ..real_agent_caps() }
}

/// GitHub Copilot CLI over ACP, as it announces itself (`loadSession`,
/// images, MCP over HTTP and SSE only): no questions (its `ask_user` tool
/// does not reach ACP clients), no skills (ACP has none).
fn copilot_caps() -> Capabilities {
    Capabilities { questions: false, skills: false, ..real_agent_caps() }
}

/// Amp 0.0.1767830505-ga62310 in execute mode with stream-json: whole
/// messages (no text deltas, no thinking), its tools with their results,
/// SIGINT to interrupt, its threads to resume, usage, MCP servers (whose
/// tools it runs without asking). Over stream-json it cannot ask a
/// permission or a question, takes text only, and runs its `smart` mode
/// only (no model choice); skills are not wired.
fn amp_caps() -> Capabilities {
    Capabilities {
        streaming_text: false,
        permissions: false,
        questions: false,
        skills: false,
        models: false,
        reasoning: false,
        images: false,
        ..real_agent_caps()
    }
}

const fn pinned(package: &'static str, version: &'static str) -> Option<install::Pinned> {
    Some(install::Pinned { package, version })
}

/// The registry: every agent tether knows. Adding an agent is a folder under
/// `agents/` and one entry here.
pub const AGENTS: &[AgentDef] = &[
    AgentDef {
        id: "mock",
        provider: "tether.mock",
        name: "Mock agent (built in)",
        command: "",
        capabilities: mock::launch::capabilities,
        pinned: None,
        install_hint: None,
        accepts: Accepts::ALL,
        driver: Driver::Native(mock::launch::adapter),
    },
    AgentDef {
        id: "claude",
        provider: "anthropic",
        name: "Claude Code",
        command: "claude",
        capabilities: real_agent_caps,
        pinned: pinned("@anthropic-ai/claude-code", "2.1.330"),
        install_hint: None,
        accepts: Accepts::ALL,
        driver: Driver::Native(claude::adapter),
    },
    AgentDef {
        id: "codex",
        provider: "openai",
        name: "Codex",
        command: "codex",
        capabilities: real_agent_caps,
        pinned: pinned("@openai/codex", "0.169.0"),
        install_hint: None,
        accepts: Accepts::ALL,
        driver: Driver::Native(codex::adapter),
    },
    AgentDef {
        id: "opencode",
        provider: "_OTHER",
        name: "OpenCode",
        command: "opencode",
        capabilities: real_agent_caps,
        pinned: pinned("opencode-ai", "1.18.33"),
        install_hint: None,
        accepts: Accepts::ALL,
        driver: Driver::Native(opencode::adapter),
    },
    AgentDef {
        id: "gemini",
        provider: "gcp.gemini",
        name: "Gemini CLI",
        command: "gemini",
        capabilities: gemini_caps,
        pinned: pinned("@google/gemini-cli", "0.61.0"),
        install_hint: None,
        // Over ACP: MCP servers of both kinds in `session/new`; ACP has no skills.
        accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
        driver: Driver::Acp(&acp::GEMINI),
    },
    AgentDef {
        id: "opencode-acp",
        provider: "_OTHER",
        name: "OpenCode (ACP)",
        command: "opencode",
        capabilities: opencode_acp_caps,
        pinned: pinned("opencode-ai", "1.18.33"),
        install_hint: None,
        // Over ACP: MCP servers of both kinds in `session/new`; ACP has no skills.
        accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
        driver: Driver::Acp(&acp::OPENCODE),
    },
    AgentDef {
        id: "claude-acp",
        provider: "anthropic",
        name: "Claude (ACP adapter)",
        command: "claude-agent-acp",
        capabilities: claude_acp_caps,
        pinned: pinned("@agentclientprotocol/claude-agent-acp", "0.101.0"),
        install_hint: None,
        // Over ACP: MCP servers of both kinds in `session/new`; ACP has no skills.
        accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
        driver: Driver::Acp(&acp::CLAUDE),
    },
    AgentDef {
        id: "codex-acp",
        provider: "openai",
        name: "Codex (ACP adapter)",
        command: "codex-acp",
        capabilities: codex_acp_caps,
        pinned: pinned("@agentclientprotocol/codex-acp", "2.6.0"),
        install_hint: None,
        // Over ACP: MCP servers of both kinds in `session/new`; ACP has no skills.
        accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
        driver: Driver::Acp(&acp::CODEX),
    },
    AgentDef {
        id: "qwen",
        provider: "_OTHER",
        name: "Qwen Code",
        command: "qwen",
        capabilities: qwen_caps,
        pinned: pinned("@qwen-code/qwen-code", "0.24.4"),
        install_hint: None,
        // Over ACP: MCP servers of both kinds in `session/new`; ACP has no skills.
        accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
        driver: Driver::Acp(&acp::QWEN),
    },
    AgentDef {
        id: "copilot",
        provider: "_OTHER",
        name: "GitHub Copilot CLI",
        command: "copilot",
        capabilities: copilot_caps,
        pinned: pinned("@github/copilot", "1.0.102"),
        install_hint: None,
        // Over ACP: Copilot takes only remote MCP servers (HTTP, SSE) in `session/new`
        // and drops a stdio one; ACP has no skills.
        accepts: Accepts { mcp_stdio: false, mcp_http: true, skills: false },
        driver: Driver::Acp(&acp::COPILOT),
    },
    AgentDef {
        id: "amp",
        provider: "_OTHER",
        name: "Amp",
        command: "amp",
        capabilities: amp_caps,
        pinned: pinned("@sourcegraph/amp", "0.0.1767830505-ga62310"),
        install_hint: None,
        // MCP servers of both kinds through `--mcp-config`; skills are not wired.
        accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
        driver: Driver::Native(amp::adapter),
    },
    AgentDef {
        id: "pi",
        provider: "_OTHER",
        name: "Pi",
        command: "pi",
        capabilities: pi_caps,
        pinned: pinned("@mariozechner/pi-coding-agent", "0.73.1"),
        install_hint: None,
        // Skills through `--skill`; Pi takes no MCP servers.
        accepts: Accepts { mcp_stdio: false, mcp_http: false, skills: true },
        driver: Driver::Native(pi::adapter),
    },
];

pub fn find(id: &str) -> Option<&'static AgentDef> {
    all().find(|a| a.id == id)
}

/// Every agent: the built-in ones, then those the user declared.
pub fn all() -> impl Iterator<Item = &'static AgentDef> {
    AGENTS.iter().chain(declared::declared())
}

/// Whether sessions of this agent can run in this build (it has an adapter).
pub fn is_supported(id: &str) -> bool {
    find(id).is_some_and(AgentDef::is_driven)
}

/// The agent and the built-in agents that run the same binary of the same
/// package (OpenCode and its ACP mode), itself first.
fn same_binary(def: &AgentDef) -> impl Iterator<Item = &AgentDef> {
    let package = def.pinned.map(|p| p.package);
    let others = AGENTS.iter().filter(move |a| {
        a.id != def.id && package.is_some() && a.command == def.command && a.pinned.map(|p| p.package) == package
    });
    std::iter::once(def).chain(others)
}

/// Where the agent's binary is: `TETHER_<AGENT>_PATH`, the data dir's install,
/// or PATH; an agent that runs another's binary (OpenCode's ACP mode) takes
/// that agent's variable and install too.
pub fn locate(def: &AgentDef, data_dir: &Path) -> Option<PathBuf> {
    for each in same_binary(def) {
        let var = format!("TETHER_{}_PATH", each.id.to_ascii_uppercase().replace('-', "_"));
        if let Some(p) = std::env::var_os(&var) {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
    }
    if def.id == "mock" {
        // The mock agent is this binary, run with a hidden subcommand.
        return std::env::current_exe().ok();
    }
    if def.command.contains('/') {
        // A declared agent's own path.
        let p = PathBuf::from(def.command);
        return p.is_file().then_some(p);
    }
    if let Some(installed) = same_binary(def).map(|a| install::installed_bin(a, data_dir)).find(|p| p.is_file()) {
        return Some(installed);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(def.command)).find(|p| p.is_file())
}

/// The API view of an agent (runs `--version` once per binary).
/// Every known agent, described.
pub async fn list(data_dir: &Path) -> tether_protocol::AgentList {
    let agents = futures_util::future::join_all(all().map(|d| describe(d, data_dir))).await;
    tether_protocol::AgentList { agents }
}

pub async fn describe(def: &AgentDef, data_dir: &Path) -> Agent {
    let path = locate(def, data_dir);
    let version = match (&path, def.id) {
        (_, "mock") => Some(env!("CARGO_PKG_VERSION").to_string()),
        (Some(p), _) => install::version_of(p).await,
        (None, _) => None,
    };
    let mut capabilities = (def.capabilities)();
    let mut version = version;
    // An ACP agent says in `initialize` whether it can load a session and
    // take images: what it said the last time it started counts.
    if let Driver::Acp(_) = def.driver {
        if let Some(said) = acp::announced(data_dir, def.id) {
            capabilities.resume = said.load_session();
            capabilities.images = said.images();
            version = version.or_else(|| said.version());
        }
    }
    Agent {
        id: def.id.to_string(),
        name: def.name.to_string(),
        installed: path.is_some(),
        version,
        path: path.map(|p| p.display().to_string()),
        capabilities,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The protocol crate's list of session agents (the API's enum) is the
    /// registry's agents that have an adapter, in order.
    #[test]
    fn the_session_agents_are_the_registered_adapters() {
        let driven: Vec<&str> = AGENTS.iter().filter(|a| a.is_driven()).map(|a| a.id).collect();
        assert_eq!(driven, tether_protocol::SESSION_AGENTS);
        let mut ids: Vec<&str> = AGENTS.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), AGENTS.len(), "agent ids are unique");
    }
}
