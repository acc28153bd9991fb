//! How Amp starts for a session: execute mode with stream-json on both
//! sides, on the session's thread when it continues one, with the session's
//! MCP servers in `amp-mcp.json` (`--mcp-config`) in the session's folder.

use std::path::Path;

use serde_json::{json, Value};
use tether_protocol::{McpServer, PermissionMode};

use crate::agents::claude::launch::write_private;
use crate::agents::LaunchContext;
use crate::process::{LaunchSpec, StdinMode};

/// `amp [threads continue <thread>] --execute --stream-json --stream-json-input ...`.
/// The model URL and key come from the session's environment (`AMP_URL`,
/// `AMP_API_KEY`). Only Amp's `smart` mode may stream JSON, so no model is
/// chosen. In the bypass mode `--dangerously-allow-all`; otherwise Amp's own
/// rules decide, and a call they would ask about ends the run with an error.
pub fn launch(program: &Path, ctx: &LaunchContext<'_>) -> LaunchSpec {
    let mut args: Vec<String> = Vec::new();
    if let Some(thread) = ctx.resume {
        args.extend(["threads".into(), "continue".into(), thread.into()]);
    }
    args.extend(
        ["--execute", "--stream-json", "--stream-json-input", "--no-ide", "--no-jetbrains", "--no-notifications"]
            .iter()
            .map(|s| s.to_string()),
    );
    if ctx.permission_mode == PermissionMode::Bypass {
        args.push("--dangerously-allow-all".into());
    }
    if !ctx.mcp_servers.is_empty() {
        let path = ctx.session_dir.join("amp-mcp.json");
        match write_private(&path, mcp_config(ctx).to_string().as_bytes()) {
            Ok(()) => args.extend(["--mcp-config".into(), path.display().to_string()]),
            Err(e) => tracing::error!(session = ctx.session_id, error = %e, "could not write the MCP config"),
        }
    }
    let env = vec![("AMP_SKIP_UPDATE_CHECK".into(), "1".into())];
    LaunchSpec { program: program.to_path_buf(), args, env, stdin: StdinMode::Pipe }
}

/// Amp's `--mcp-config` JSON (its `amp.mcpServers` shape, merged with the
/// user's settings): `{"NAME": {"command", "args", "env"}}` or
/// `{"NAME": {"url", "headers"}}`. A stdio server with a `cwd` runs through
/// tether's `__exec-in` (Amp's config has no working directory).
pub fn mcp_config(ctx: &LaunchContext<'_>) -> Value {
    let servers: serde_json::Map<String, Value> = ctx
        .mcp_servers
        .iter()
        .map(|(name, server)| {
            let v = match server {
                McpServer::Stdio { command, args, env, cwd } => {
                    let (command, args) = ctx.mcp_command_in(command, args, cwd.as_deref());
                    json!({"command": command, "args": args, "env": env})
                }
                McpServer::Http { url, headers } => json!({"url": url, "headers": headers}),
            };
            (name.clone(), v)
        })
        .collect();
    Value::Object(servers)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_resumed_session_continues_its_thread_and_bypass_allows_all() {
        let dir = std::env::temp_dir();
        let (env, mcp) = (BTreeMap::new(), BTreeMap::new());
        let mut ctx = LaunchContext::for_test(&dir, &env, &mcp);
        let fresh = launch(Path::new("amp"), &ctx);
        assert_eq!(fresh.args[..3], ["--execute", "--stream-json", "--stream-json-input"]);
        assert!(!fresh.args.contains(&"--dangerously-allow-all".to_string()));
        assert_eq!(fresh.stdin, StdinMode::Pipe);
        ctx.resume = Some("T-1");
        ctx.permission_mode = PermissionMode::Bypass;
        let resumed = launch(Path::new("amp"), &ctx);
        assert_eq!(resumed.args[..4], ["threads", "continue", "T-1", "--execute"]);
        assert!(resumed.args.contains(&"--dangerously-allow-all".to_string()));
        assert!(!resumed.args.contains(&"--mcp-config".to_string()));
    }

    #[test]
    fn mcp_servers_go_in_a_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = BTreeMap::new();
        let mcp = BTreeMap::from([
            (
                "tt".to_string(),
                McpServer::Stdio {
                    command: "srv".into(),
                    args: vec!["-x".into()],
                    env: BTreeMap::from([("K".to_string(), "v".to_string())]),
                    cwd: None,
                },
            ),
            ("web".to_string(), McpServer::Http { url: "http://127.0.0.1:1/mcp".into(), headers: BTreeMap::new() }),
        ]);
        let ctx = LaunchContext::for_test(dir.path(), &env, &mcp);
        let spec = launch(Path::new("amp"), &ctx);
        let at = spec.args.iter().position(|a| a == "--mcp-config").expect("--mcp-config");
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&spec.args[at + 1]).unwrap()).unwrap();
        assert_eq!(written["tt"], json!({"command": "srv", "args": ["-x"], "env": {"K": "v"}}));
        assert_eq!(written["web"], json!({"url": "http://127.0.0.1:1/mcp", "headers": {}}));
    }
}
