//! How OpenCode starts for a session: `opencode serve` on a free loopback
//! port with a password of its own, reached through the process host's HTTP
//! bridge (stdin is /dev/null, the PTY carries its logs), and what its
//! config gets through `OPENCODE_CONFIG_CONTENT` (the session's MCP servers
//! and skills; tether writes no file of OpenCode's). Also the permission
//! rules a session is created with.

use std::path::Path;

use serde_json::{json, Value};
use tether_protocol::{McpServer, PermissionMode};

use crate::agents::LaunchContext;
use crate::process::{HttpBridge, LaunchSpec, StdinMode};

/// An MCP server's name as OpenCode spells it in its tool names
/// (`<server>_<tool>`) and so in permission names: anything but ASCII
/// letters, digits, `_` and `-` becomes `_`.
pub fn tool_prefix(server: &str) -> String {
    server.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// A free port on 127.0.0.1 (the OS picks it; the small window before the agent binds it is accepted).
pub(super) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

pub(super) fn base64(bytes: &[u8]) -> String {
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
    let (edit, bash) = actions(mode);
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

/// The actions of OpenCode's `edit` and `bash` permissions (and the MCP
/// tools', as `bash`) for a permission mode.
fn actions(mode: PermissionMode) -> (&'static str, &'static str) {
    match mode {
        PermissionMode::Default => ("ask", "ask"),
        PermissionMode::AcceptEdits => ("allow", "ask"),
        PermissionMode::Bypass => ("allow", "allow"),
        PermissionMode::Plan => ("deny", "deny"),
    }
}

/// The session environment of `opencode acp` (ACP gives no way to set
/// OpenCode's permission rules or model): `OPENCODE_PERMISSION`, which
/// OpenCode merges over every config it reads, holds the rules of
/// [`rules`] in its config's shape (`{"edit": "ask", "tt_*": "ask"}`);
/// the session's model goes into `OPENCODE_CONFIG_CONTENT`, merged over
/// the user's own.
pub fn acp_env(ctx: &LaunchContext<'_>) -> Vec<(String, String)> {
    let (edit, bash) = actions(ctx.permission_mode);
    let mut permission = serde_json::Map::new();
    permission.insert("edit".into(), json!(edit));
    permission.insert("bash".into(), json!(bash));
    for server in ctx.mcp_servers.keys() {
        permission.insert(format!("{}_*", tool_prefix(server)), json!(bash));
    }
    let mut env = vec![("OPENCODE_PERMISSION".to_string(), Value::Object(permission).to_string())];
    if let Some(model) = ctx.model {
        const CONTENT: &str = "OPENCODE_CONFIG_CONTENT";
        let user = ctx.env.get(CONTENT).cloned().or_else(|| std::env::var(CONTENT).ok());
        let mut config = user.and_then(|u| serde_json::from_str::<Value>(&u).ok()).filter(Value::is_object);
        let config = config.get_or_insert_with(|| json!({}));
        config["model"] = json!(model);
        env.push((CONTENT.to_string(), config.to_string()));
    }
    env
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
