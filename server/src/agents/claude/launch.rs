//! How Claude Code starts for a session: `claude -p` in headless
//! stream-json mode (stdin a pipe: it refuses a terminal there), its flags
//! and environment, and the files it is given in the session's folder
//! (`claude-mcp.json` for `--mcp-config`, a `.claude-plugin` carrying the
//! session's skills for `--plugin-dir`).

use std::path::Path;

use serde_json::{json, Value};
use tether_protocol::{McpServer, PermissionMode};

use crate::agents::LaunchContext;
use crate::process::{LaunchSpec, StdinMode};

/// Claude's name of a permission mode.
pub fn permission_mode_flag(mode: PermissionMode) -> &'static str {
    match mode {
        PermissionMode::Default => "default",
        PermissionMode::AcceptEdits => "acceptEdits",
        PermissionMode::Bypass => "bypassPermissions",
        PermissionMode::Plan => "plan",
    }
}

pub(crate) fn running_as_root() -> bool {
    // The effective uid of this process, read without unsafe code.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// The real Claude Code CLI in headless stream-json mode.
pub fn launch(program: &Path, ctx: &LaunchContext<'_>) -> LaunchSpec {
    let mut args: Vec<String> = [
        "-p",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
        "--permission-mode",
        permission_mode_flag(ctx.permission_mode),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(model) = ctx.model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(resume) = ctx.resume {
        args.extend(["--resume".into(), resume.into()]);
    }
    args.extend(session_config_args(ctx));
    let mut env = vec![
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC".into(), "1".into()),
        ("DISABLE_AUTOUPDATER".into(), "1".into()),
    ];
    if ctx.permission_mode == PermissionMode::Bypass && running_as_root() {
        env.push(("IS_SANDBOX".into(), "1".into()));
    }
    LaunchSpec { program: program.to_path_buf(), args, env, stdin: StdinMode::Pipe }
}

/// The environment of Claude Code's ACP adapter (`claude-acp`) for one
/// session. It runs the `claude` of the `claude` agent (`TETHER_CLAUDE_PATH`
/// or its install), never the one its SDK package ships, through
/// `CLAUDE_CODE_EXECUTABLE`; the session's model as `ANTHROPIC_MODEL` (the
/// adapter takes no flags). `IS_SANDBOX` is `1` for bypass as root, as for
/// the native agent, and empty otherwise: the adapter offers bypass (and
/// asks the CLI to allow it) for any non-empty value, which the CLI refuses
/// as root for anything but `1`.
pub fn acp_env(ctx: &LaunchContext<'_>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(claude) = crate::agents::find("claude").and_then(|def| crate::agents::locate(def, ctx.data_dir)) {
        env.push(("CLAUDE_CODE_EXECUTABLE".to_string(), claude.display().to_string()));
    }
    if let Some(model) = ctx.model {
        env.push(("ANTHROPIC_MODEL".to_string(), model.to_string()));
    }
    let sandbox = if ctx.permission_mode == PermissionMode::Bypass && running_as_root() { "1" } else { "" };
    env.push(("IS_SANDBOX".to_string(), sandbox.to_string()));
    env
}

/// Claude's `--mcp-config` JSON for the session's MCP servers. A stdio
/// server with a `cwd` runs through tether's `__exec-in` (Claude's config has
/// no working directory).
pub fn mcp_config(ctx: &LaunchContext<'_>) -> Value {
    let servers: serde_json::Map<String, Value> = ctx
        .mcp_servers
        .iter()
        .map(|(name, server)| {
            let v = match server {
                McpServer::Stdio { command, args, env, cwd } => {
                    let (command, args) = ctx.mcp_command_in(command, args, cwd.as_deref());
                    json!({"type": "stdio", "command": command, "args": args, "env": env})
                }
                McpServer::Http { url, headers } => json!({"type": "http", "url": url, "headers": headers}),
            };
            (name.clone(), v)
        })
        .collect();
    json!({ "mcpServers": servers })
}

/// The name of the plugin that carries a session's skills (they appear as `tether:<skill>`).
pub const SKILLS_PLUGIN: &str = "tether";

/// `--mcp-config FILE` and `--plugin-dir DIR` for the session's MCP servers
/// and skills, generated in the session's own folder. Claude merges them with
/// the user's own configuration (`~/.claude.json`, `.mcp.json`, plugins) and
/// writes into none of those.
pub fn session_config_args(ctx: &LaunchContext<'_>) -> Vec<String> {
    let mut args = Vec::new();
    if !ctx.mcp_servers.is_empty() {
        let path = ctx.session_dir.join("claude-mcp.json");
        match write_private(&path, mcp_config(ctx).to_string().as_bytes()) {
            Ok(()) => args.extend(["--mcp-config".into(), path.display().to_string()]),
            Err(e) => tracing::error!(session = ctx.session_id, error = %e, "could not write the MCP config"),
        }
    }
    if ctx.skills_dir.is_some() {
        // The session folder is the plugin: `.claude-plugin/plugin.json` beside `skills/`.
        let manifest = ctx.session_dir.join(".claude-plugin");
        let written = std::fs::create_dir_all(&manifest).and_then(|()| {
            let plugin = json!({"name": SKILLS_PLUGIN, "description": "Skills given to this session by tether"});
            write_private(&manifest.join("plugin.json"), plugin.to_string().as_bytes())
        });
        match written {
            Ok(()) => args.extend(["--plugin-dir".into(), ctx.session_dir.display().to_string()]),
            Err(e) => tracing::error!(session = ctx.session_id, error = %e, "could not write the skills plugin"),
        }
    }
    args
}

/// Writes `bytes` to `path`, readable by this user only (it may hold secrets).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)
}
