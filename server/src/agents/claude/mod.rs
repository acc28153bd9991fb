//! Claude Code: one long-lived `claude -p` process per session speaking
//! stream-json on a stdin pipe (it refuses a terminal there) with its output
//! on the PTY. The built-in mock agent speaks the same dialect and reuses
//! this adapter with its own launcher.

pub mod convert;
pub mod wire;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tether_protocol::{Decision, McpServer, Part, PermissionMode};

use super::{lenient, Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::{LaunchSpec, StdinMode};
use convert::ClaudeConverter;

/// Builds the command line for a session.
pub type Launcher = fn(&Path, &LaunchContext<'_>) -> LaunchSpec;

/// The registry's constructor: an adapter for the real Claude Code CLI.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(ClaudeAdapter::new(program))
}

pub struct ClaudeAdapter {
    program: PathBuf,
    launcher: Launcher,
    converter: ClaudeConverter,
    next_request: u64,
    out: Vec<u8>,
}

impl ClaudeAdapter {
    pub fn new(program: PathBuf) -> Self {
        Self::with_launcher(program, launch)
    }

    pub fn with_launcher(program: PathBuf, launcher: Launcher) -> Self {
        ClaudeAdapter { program, launcher, converter: ClaudeConverter::new(), next_request: 0, out: Vec::new() }
    }
}

/// Claude's name of a permission mode.
pub fn permission_mode_flag(mode: PermissionMode) -> &'static str {
    match mode {
        PermissionMode::Default => "default",
        PermissionMode::AcceptEdits => "acceptEdits",
        PermissionMode::Bypass => "bypassPermissions",
        PermissionMode::Plan => "plan",
    }
}

fn running_as_root() -> bool {
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

fn line(v: Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(&v).unwrap_or_default();
    out.push(b'\n');
    out
}

fn content_blocks(parts: &[Part]) -> Value {
    Value::Array(
        parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => json!({"type": "text", "text": text}),
                Part::Image { mime, data: Some(data), .. } => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}})
                }
                Part::Image { path, .. } => {
                    json!({"type": "text", "text": format!("@{}", path.as_deref().unwrap_or_default())})
                }
                Part::File { path } => json!({"type": "text", "text": format!("@{path}")}),
            })
            .collect(),
    )
}

fn control_response(request_id: &str, response: Value) -> Vec<u8> {
    line(json!({"type": "control_response",
                "response": {"subtype": "success", "request_id": request_id, "response": response}}))
}

impl Adapter for ClaudeAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        (self.launcher)(&self.program, ctx)
    }

    fn user_message(&mut self, parts: &[Part]) {
        self.out.extend(line(json!({"type": "user", "message": {"role": "user", "content": content_blocks(parts)},
                    "parent_tool_use_id": null, "session_id": ""})));
    }

    fn interrupt(&mut self) -> bool {
        self.next_request += 1;
        let id = format!("tether_interrupt_{}", self.next_request);
        self.out
            .extend(line(json!({"type": "control_request", "request_id": id, "request": {"subtype": "interrupt"}})));
        true
    }

    fn permission_reply(&mut self, native: &NativeRequest, decision: Decision, message: Option<&str>) {
        let NativeRequest::Claude(req) = native else { return };
        let response = match decision {
            Decision::Deny => json!({"behavior": "deny",
                                      "message": message.unwrap_or("The user denied this action.")}),
            Decision::AllowOnce => json!({"behavior": "allow", "updatedInput": req.input}),
            Decision::AllowAlways => {
                let mut r = json!({"behavior": "allow", "updatedInput": req.input});
                if let Some(s) = req.permission_suggestions.as_ref().filter(|s| !s.is_null()) {
                    r["updatedPermissions"] = s.clone();
                }
                r
            }
        };
        self.out.extend(control_response(&req.request_id, response));
    }

    fn question_reply(&mut self, native: &NativeRequest, answers: Option<&[Vec<String>]>) {
        let NativeRequest::Claude(req) = native else { return };
        let Some(answers) = answers else {
            let reply = json!({"behavior": "deny", "message": "The user declined to answer."});
            self.out.extend(control_response(&req.request_id, reply));
            return;
        };
        // The answers go into the input, keyed by each question's text.
        let asked: wire::ToolInput = lenient::decode(&req.input);
        let mut by_question = serde_json::Map::new();
        for (q, a) in asked.questions.into_inner().unwrap_or_default().into_iter().zip(answers) {
            if let Some(text) = q.into_inner().and_then(|q| q.question.into_inner()) {
                by_question.insert(text, Value::String(a.join(", ")));
            }
        }
        let mut updated = req.input.clone();
        if let Value::Object(m) = &mut updated {
            m.insert("answers".into(), Value::Object(by_question));
        }
        self.out.extend(control_response(&req.request_id, json!({"behavior": "allow", "updatedInput": updated})));
    }

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        self.converter.convert(line)
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}
