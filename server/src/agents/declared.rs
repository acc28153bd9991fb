//! Agents a user declares, with no code change: any agent that speaks ACP
//! over stdio, listed in a JSON file (`--agents-file`, by default
//! `<data dir>/agents.json` when it exists):
//!
//! ```json
//! {"agents": [{"id": "my-agent", "name": "My agent", "command": "my-agent",
//!              "args": ["--acp"], "env": {"MY_AGENT_QUIET": "1"},
//!              "model_flag": "--model", "install": "npm install -g my-agent"}]}
//! ```
//!
//! `command` is a path, or a name looked up on PATH (`TETHER_<ID>_PATH`
//! overrides it, as for every agent). Read once at start: a file that does
//! not parse, or declares an id tether already has, stops the start with a
//! sentence saying what to fix. The declarations live as long as the
//! process (they are leaked once, like the built-in registry's constants).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use tether_protocol::Capabilities;

use super::acp::AcpAgent;
use super::{Accepts, AgentDef, Driver, AGENTS};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    agents: Vec<Declared>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Declared {
    id: String,
    #[serde(default)]
    name: Option<String>,
    command: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    model_flag: Option<String>,
    /// How a person installs it (shown when it is not installed).
    #[serde(default)]
    install: Option<String>,
}

/// The data dir's declarations, read when `--agents-file` names none.
pub const FILE_NAME: &str = "agents.json";

static DECLARED: OnceLock<Vec<AgentDef>> = OnceLock::new();

/// The declared agents (none until [`load`] succeeded).
pub fn declared() -> &'static [AgentDef] {
    DECLARED.get().map_or(&[], Vec::as_slice)
}

/// What a declared ACP agent claims before it has run: what every ACP agent
/// does (streamed text, tool calls, permissions, cancel, MCP servers in
/// `session/new`). Resume, images and usage depend on the agent.
fn declared_caps() -> Capabilities {
    Capabilities {
        streaming_text: true,
        tool_calls: true,
        permissions: true,
        interrupt: true,
        mcp: true,
        reasoning: true,
        ..Capabilities::default()
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// Reads the declarations of `path` (a missing file declares nothing) and
/// makes them the registry's declared agents. Only the first call counts.
pub fn load(path: &Path, required: bool) -> Result<usize, String> {
    let shown = path.display();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => return Ok(0),
        Err(e) => return Err(format!("cannot read the agents file {shown}: {e}")),
    };
    let file: File = serde_json::from_str(&text).map_err(|e| {
        format!(
            "the agents file {shown} is not a valid declaration ({e}); it is {{\"agents\": [{{\"id\": …, \"command\": \
             …, \"args\": […]}}]}}"
        )
    })?;
    let mut defs: Vec<AgentDef> = Vec::new();
    for d in file.agents {
        let id_ok = !d.id.is_empty()
            && d.id.len() <= 32
            && d.id.starts_with(|c: char| c.is_ascii_lowercase())
            && d.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !id_ok {
            return Err(format!(
                "the agents file {shown} declares the id {:?}: an id is 1-32 lowercase letters, digits and `-`, \
                 starting with a letter",
                d.id
            ));
        }
        if AGENTS.iter().any(|a| a.id == d.id) || defs.iter().any(|a| a.id == d.id) {
            return Err(format!(
                "the agents file {shown} declares {:?} twice or over a built-in agent; rename it",
                d.id
            ));
        }
        if d.command.trim().is_empty() || d.command.contains('\0') {
            return Err(format!("the agents file {shown}: agent {:?} needs a `command`", d.id));
        }
        let args: Vec<&'static str> = d.args.into_iter().map(leak).collect();
        let env: Vec<(&'static str, &'static str)> = d.env.into_iter().map(|(k, v)| (leak(k), leak(v))).collect();
        let id = leak(d.id);
        let acp: &'static AcpAgent = Box::leak(Box::new(AcpAgent {
            id,
            args: Box::leak(args.into_boxed_slice()),
            env: Box::leak(env.into_boxed_slice()),
            model_flag: d.model_flag.map(leak),
            session_env: None,
            error_text: None,
            error_unnamed: false,
        }));
        defs.push(AgentDef {
            id,
            provider: "_OTHER",
            name: leak(d.name.unwrap_or_else(|| id.to_string())),
            command: leak(d.command),
            capabilities: declared_caps,
            pinned: None,
            install_hint: d.install.map(leak),
            accepts: Accepts { mcp_stdio: true, mcp_http: true, skills: false },
            driver: Driver::Acp(acp),
        });
    }
    let n = defs.len();
    let _ = DECLARED.set(defs);
    Ok(n)
}
