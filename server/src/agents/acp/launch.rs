//! How an ACP agent starts for a session: its command line from its
//! declaration ([`AcpAgent`]), stdin a pipe (its protocol), stdout and stderr
//! on the PTY; and what its session is opened with: the session's MCP
//! servers as ACP declares them, and its prompt as ACP content blocks.

use std::path::Path;

use serde_json::{json, Value};
use tether_protocol::{McpServer, Part};

use crate::agents::LaunchContext;
use crate::process::{LaunchSpec, StdinMode, SESSION_ENV};

/// An agent that speaks ACP over stdio, declared as data: what runs it.
/// Built-ins are constants; a user's declarations are read once at start.
#[derive(Debug, Clone, Copy)]
pub struct AcpAgent {
    pub id: &'static str,
    /// The arguments that make it speak ACP (`--acp`).
    pub args: &'static [&'static str],
    /// Set for it (over the session's environment).
    pub env: &'static [(&'static str, &'static str)],
    /// The flag that takes the session's `model`, if it has one.
    pub model_flag: Option<&'static str>,
    /// More environment for one session, from its context (after `env`):
    /// how an agent without ACP modes for them takes the session's
    /// permission mode and model (OpenCode reads them from its config).
    pub session_env: Option<SessionEnv>,
    /// How the text opens with which the agent reports a failed turn instead
    /// of an error (Copilot: `Error: …` as its last message chunk, then
    /// `end_turn` with no usage): such a turn ends as a model error.
    pub error_text: Option<&'static str>,
    /// The agent reports a failed turn as a message chunk with no
    /// `messageId` (its replies' chunks have one), then `end_turn` with no
    /// usage (Codex's adapter): such a turn ends as a model error.
    pub error_unnamed: bool,
}

/// Environment variables for one session, from its launch context.
pub type SessionEnv = fn(&LaunchContext<'_>) -> Vec<(String, String)>;

pub fn launch(program: &Path, agent: &AcpAgent, ctx: &LaunchContext<'_>) -> LaunchSpec {
    let mut args: Vec<String> = agent.args.iter().map(|a| a.to_string()).collect();
    if let (Some(flag), Some(model)) = (agent.model_flag, ctx.model) {
        args.push(flag.to_string());
        args.push(model.to_string());
    }
    let mut env: Vec<(String, String)> = agent.env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if let Some(more) = agent.session_env {
        env.extend(more(ctx));
    }
    LaunchSpec {
        program: program.to_path_buf(),
        args,
        env,
        // Its protocol on a pipe: a terminal on stdin makes some CLIs interactive.
        stdin: StdinMode::Pipe,
    }
}

/// The session's MCP servers as `session/new` takes them. A stdio server's
/// working directory goes through `tether __exec-in` (ACP has no `cwd`), and
/// it is tagged as the session's, so it is found and ended with it.
pub fn mcp_servers(ctx: &LaunchContext<'_>) -> Vec<Value> {
    let pairs = |map: &std::collections::BTreeMap<String, String>| -> Vec<Value> {
        map.iter().map(|(name, value)| json!({"name": name, "value": value})).collect()
    };
    ctx.mcp_servers
        .iter()
        .map(|(name, server)| match server {
            McpServer::Stdio { command, args, env, cwd } => {
                let (command, args) = ctx.mcp_command_in(command, args, cwd.as_deref());
                let mut env = env.clone();
                env.insert(SESSION_ENV.to_string(), ctx.session_id.to_string());
                json!({"name": name, "command": command, "args": args, "env": pairs(&env)})
            }
            McpServer::Http { url, headers } => {
                json!({"type": "http", "name": name, "url": url, "headers": pairs(headers)})
            }
        })
        .collect()
}

/// A user message as ACP content blocks: images inline or as links, files as links.
pub fn prompt(parts: &[Part], cwd: &Path) -> Vec<Value> {
    let link = |path: &str| {
        let abs = cwd.join(path);
        let name = abs.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.to_string());
        json!({"type": "resource_link", "uri": format!("file://{}", abs.display()), "name": name})
    };
    parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::Image { mime, data: Some(data), .. } => json!({"type": "image", "mimeType": mime, "data": data}),
            Part::Image { path, .. } => link(path.as_deref().unwrap_or("")),
            Part::File { path } => link(path),
        })
        .collect()
}
