//! How Codex starts for a session: `codex app-server` with stdin, stdout
//! and stderr on the PTY, and what its threads are opened with (approval
//! policy and sandbox per permission mode, the session's MCP servers and the
//! project trust as thread config: tether writes no file of Codex's).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tether_protocol::{McpServer, PermissionMode};

use crate::agents::LaunchContext;
use crate::process::{LaunchSpec, StdinMode, SESSION_ENV};

/// (approvalPolicy, sandbox) for a permission mode.
pub fn policy(mode: PermissionMode) -> (&'static str, &'static str) {
    match mode {
        // Ask for commands and patches.
        PermissionMode::Default => ("untrusted", "workspace-write"),
        // Patches are accepted by the adapter; commands still ask.
        PermissionMode::AcceptEdits => ("untrusted", "workspace-write"),
        PermissionMode::Bypass => ("never", "danger-full-access"),
        PermissionMode::Plan => ("never", "read-only"),
    }
}

/// Codex's `mcp_servers` config for the session's MCP servers, layered over
/// the user's `config.toml` by Codex itself (tether writes no file). Tools are
/// pre-approved where the permission mode never asks (`bypass`); otherwise
/// Codex asks through an elicitation, which becomes a permission.
pub fn mcp_config(ctx: &LaunchContext<'_>) -> Option<Value> {
    if ctx.mcp_servers.is_empty() {
        return None;
    }
    let approve = ctx.permission_mode == PermissionMode::Bypass;
    let servers: serde_json::Map<String, Value> = ctx
        .mcp_servers
        .iter()
        .map(|(name, server)| {
            let mut v = match server {
                McpServer::Stdio { command, args, env, cwd } => {
                    // Codex starts MCP servers with an environment of its own making (not
                    // its own): tag them as the session's, so they are found and ended with it.
                    let mut env = env.clone();
                    env.insert(SESSION_ENV.to_string(), ctx.session_id.to_string());
                    json!({
                        "command": command, "args": args, "env": env,
                        "cwd": ctx.mcp_cwd(cwd.as_deref()).display().to_string(),
                    })
                }
                McpServer::Http { url, headers } => json!({"url": url, "http_headers": headers}),
            };
            if approve {
                v["default_tools_approval_mode"] = json!("approve");
            }
            (name.clone(), v)
        })
        .collect();
    Some(json!({ "mcp_servers": servers }))
}

/// The git repository `cwd` is in (its nearest ancestor holding `.git`), as
/// Codex keys project trust by it.
fn git_root(cwd: &Path) -> Option<PathBuf> {
    cwd.ancestors().find(|dir| dir.join(".git").exists()).map(Path::to_path_buf)
}

/// `config.projects` marking the session's git repository trusted for this
/// thread. `thread/start` with a sandbox that can write, on a cwd in a git
/// repository that config.toml does not list yet, makes Codex trust the
/// project *and write that into the user's config.toml*
/// (`[projects."<root>"] trust_level = "trusted"`); trusting it in the
/// thread's own config layer gives the same trust and leaves the file alone.
pub(super) fn trust_config(cwd: &Path, sandbox: &str) -> Option<Value> {
    if sandbox == "read-only" {
        return None;
    }
    let root = git_root(cwd)?;
    let root = root.canonicalize().unwrap_or(root);
    let mut projects = serde_json::Map::new();
    projects.insert(root.display().to_string(), json!({"trust_level": "trusted"}));
    Some(json!({ "projects": projects }))
}

pub fn launch(program: &Path, _ctx: &LaunchContext<'_>) -> LaunchSpec {
    LaunchSpec {
        program: program.to_path_buf(),
        args: vec!["app-server".into()],
        // Its tracing goes to the same terminal as the protocol: no colours.
        env: vec![("NO_COLOR".into(), "1".into())],
        stdin: StdinMode::Pty,
    }
}

/// The environment of Codex's ACP adapter (`codex-acp`) for one session: it
/// runs `codex app-server` of the `codex` agent (`TETHER_CODEX_PATH` or its
/// install) through `CODEX_PATH`, never the `@openai/codex` it brings; the
/// session's model as the thread config it merges (`CODEX_CONFIG`). Its
/// permission modes are ACP modes (`session/set_mode`); Codex's own config
/// (`CODEX_HOME`, model providers) is the user's.
pub fn acp_env(ctx: &LaunchContext<'_>) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(codex) = crate::agents::find("codex").and_then(|def| crate::agents::locate(def, ctx.data_dir)) {
        env.push(("CODEX_PATH".to_string(), codex.display().to_string()));
    }
    if let Some(model) = ctx.model {
        env.push(("CODEX_CONFIG".to_string(), json!({ "model": model }).to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_git_repository_is_trusted_in_the_thread_config_unless_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert_eq!(trust_config(&root, "workspace-write"), None, "not a repository");
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("sub/dir")).unwrap();
        let want = json!({"projects": {root.display().to_string(): {"trust_level": "trusted"}}});
        assert_eq!(trust_config(&root.join("sub/dir"), "workspace-write"), Some(want.clone()));
        assert_eq!(trust_config(&root, "danger-full-access"), Some(want));
        assert_eq!(trust_config(&root, "read-only"), None);
    }
}
