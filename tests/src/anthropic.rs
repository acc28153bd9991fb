//! The real Claude Code CLI against a scripted model: only the model is fake.
//!
//! - [`claude_bin`]: the pinned CLI ([`CLAUDE_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_CLAUDE_PATH`);
//! - [`ScriptedAnthropic`]: an Anthropic Messages API server on 127.0.0.1 whose
//!   replies are chosen by a `[claude:TAG]` tag (or `[claude-acp:TAG]`, the
//!   same CLI run by its ACP adapter) in the latest user prompt;
//! - [`claude_env`]: the environment that runs the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest user *prompt* (the last text block of a user message that is not a
//! `<system-reminder>` nor an interrupt marker) picks the script by its first
//! `[claude:TAG]` tag, and the number of `tool_result` blocks after that prompt
//! picks the step of the script.
//!
//! | tag | first call | after the tool result |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `thinking` | a thinking block (with a signature), then text | |
//! | `bash` | tool_use `Bash` `echo scripted-bash-output` | text `The command printed: <result>` |
//! | `sh` | tool_use `Bash` running the prompt's text after the tag | text `The command printed: <result>` |
//! | `touch` | tool_use `Bash` `touch claude-touched.txt` (a command that asks first) | text `Touch result: <result, 60 chars>` |
//! | `write` | tool_use `Write` `<cwd>/claude-written.txt` | text `Write result: <result, 60 chars>` |
//! | `question` | tool_use `AskUserQuestion` (Red / Blue) | text `Answer seen: <result, 80 chars>` |
//! | `todo` | tool_use `TodoWrite` (two todos) | text `Todos result: <result, 60 chars>` |
//! | `agent` | tool_use `Agent` (`Task` if `Agent` is not offered) running a `general-purpose` subagent in the foreground, whose prompt is `[claude:bash] <the text after the tag>` (so the subagent runs the `bash` script) | text `Subagent said: <result, 80 chars>` |
//! | `task` | tool_use `TaskCreate` (`Write the file`) | text `Task result: <result, 60 chars>` |
//! | `slow` | text in 100 deltas `tick N `, 100 ms apart (~10 s) | |
//! | `401` / `500` / `overloaded` | HTTP 401 / 500 / 529 with Anthropic's error JSON | |
//! | `mcp:SERVER:TOOL` | `ToolSearch` `select:mcp__SERVER__TOOL` while the tool is deferred, then tool_use `mcp__SERVER__TOOL` (`echo` gets `{"text": <prompt>}`) | text `MCP said: <result>` |
//! | `mcp-seq:SERVER` | the steps after the tag, `TOOL {json} ;; TOOL {json} ...`, called in order as `mcp__SERVER__TOOL`, after one `ToolSearch` `select:<every deferred tool of the script>,...`; a string `"$NAME"` in a step's arguments is the field NAME of the previous result (JSON) | after each result the next step; after the last, text `MCP said: <result, 4000 chars>` |
//! | `skill:NAME` | tool_use `Skill` naming `tether:NAME` | text `Skill said: <result>` |
//!
//! The working directory for `write` comes from the request: Claude Code 2.1.330
//! puts an environment section in a `role:"system"` message of `messages`
//! (` - Primary working directory: /abs/path`); older versions put
//! `Working directory: /abs/path` in the `system` field. [`working_directory`]
//! takes the absolute path after `working directory:` (any case) on a line of
//! a `system` message, else of the `system` field, else of a user text (the
//! last such line of the first of these that has one); `/tmp` if none has.
//!
//! Notes on Claude Code 2.1.330: `TodoWrite` no longer exists (the model gets
//! "No such tool available"); its successors `TaskCreate`/`TaskUpdate`/... are
//! enabled only with `CLAUDE_CODE_ENABLE_TODO_TOOLS=1` (or an older `--model`).
//! Bash `echo` is auto-allowed; `Write` asks through `can_use_tool`.
//!
//! Requests without `stream: true` (the CLI's side requests: titles, summaries)
//! get a plain JSON message with a short text; `/v1/messages/count_tokens` gets
//! `{"input_tokens":10}`; any other path `200 {}`; `CONNECT` (the CLI using the
//! proxy trap of [`claude_env`]) `403`. Everything is recorded.

use crate::scripted::{find_tag, first_chars, first_tag, mcp_script, pieces, McpNext, McpProgress, McpScript};

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

pub use crate::scripted::Recorded;
use crate::scripted::{Dialect, Frames, InjectedError, Recorder, ScriptedServer};

pub(crate) mod sse;
use sse::Sse;

/// The Claude Code version the tests run (`scripts/install-agents` installs it).
pub const CLAUDE_VERSION: &str = "2.1.330";

pub use crate::pinned_tools::agents_dir;

/// The Claude Code CLI: `$TETHER_CLAUDE_PATH` if set, else the pinned install
/// `<agents_dir>/claude-<CLAUDE_VERSION>/node_modules/.bin/claude`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn claude_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Claude Code", "claude", CLAUDE_VERSION, "TETHER_CLAUDE_PATH")
}

/// The environment a tether server (and so the Claude CLI it spawns) needs to
/// run Claude offline against `model`, with `home` as `$HOME` (sessions are
/// stored under `$HOME/.claude`: reuse it across a restart, never across tests).
pub fn claude_env(model: &ScriptedAnthropic, home: &Path) -> Vec<(String, String)> {
    let pairs = [
        ("ANTHROPIC_BASE_URL", model.url()),
        ("ANTHROPIC_API_KEY", "sk-ant-scripted".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("DISABLE_ERROR_REPORTING", "1".to_owned()),
        ("CLAUDE_CODE_MAX_RETRIES", "0".to_owned()),
        ("HOME", home.display().to_string()),
        ("TETHER_CLAUDE_PATH", claude_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// The version of Claude Code's ACP adapter the tests run (`claude-acp`;
/// `scripts/install-agents` installs it).
pub const CLAUDE_ACP_VERSION: &str = "0.101.0";

/// Claude Code's ACP adapter: `$TETHER_CLAUDE_ACP_PATH` if set, else the
/// pinned install
/// `<agents_dir>/claude-acp-<CLAUDE_ACP_VERSION>/node_modules/.bin/claude-agent-acp`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn claude_acp_bin() -> PathBuf {
    let path = match std::env::var_os("TETHER_CLAUDE_ACP_PATH").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => {
            agents_dir().join(format!("claude-acp-{CLAUDE_ACP_VERSION}")).join("node_modules/.bin/claude-agent-acp")
        }
    };
    assert!(
        path.is_file(),
        "Claude Code's ACP adapter {CLAUDE_ACP_VERSION} is not installed at {}: run scripts/install-agents \
         (or set TETHER_CLAUDE_ACP_PATH)",
        path.display()
    );
    path
}

/// [`claude_env`] for Claude Code's ACP adapter (`claude-acp`): the same
/// pinned `claude` (which tether gives the adapter), and the adapter itself.
pub fn claude_acp_env(model: &ScriptedAnthropic, home: &Path) -> Vec<(String, String)> {
    let mut env = claude_env(model, home);
    env.push(("TETHER_CLAUDE_ACP_PATH".to_owned(), claude_acp_bin().display().to_string()));
    env
}

/// The file `[claude:touch]` creates (in the working directory).
pub const TOUCHED_FILE: &str = "claude-touched.txt";

/// A scripted Anthropic Messages API on `127.0.0.1:<OS-chosen port>`; see the
/// module docs for the tags. Stops when dropped.
pub struct ScriptedAnthropic(ScriptedServer);

crate::scripted_model!(ScriptedAnthropic);

impl ScriptedAnthropic {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "Anthropic",
                model_path: |path| path == "/v1/messages",
                request_id_header: "request-id",
                error_body: |kind, _code, message| error_json(kind, message),
                errors: ERRORS,
                sse_content_type: "text/event-stream; charset=utf-8",
                reply: messages_reply,
                other: |_, path, _| {
                    if path == "/v1/messages/count_tokens" {
                        json!({"input_tokens": 10})
                    } else {
                        json!({})
                    }
                },
            })
            .await,
        )
    }
}

fn error_json(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

/// What `[claude:401]`, `[claude:500]` and `[claude:overloaded]` answer.
const ERRORS: &[InjectedError] = &[
    InjectedError { tag: "401", status: 401, kind: "authentication_error", code: "", message: "invalid x-api-key" },
    InjectedError { tag: "500", status: 500, kind: "api_error", code: "", message: "scripted upstream failure" },
    InjectedError { tag: "overloaded", status: 529, kind: "overloaded_error", code: "", message: "Overloaded" },
];

fn messages_reply(shared: &Recorder, _path: &str, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("claude-scripted").to_owned();
    let input_tokens = (request.to_string().len() / 4).max(1);
    let message_id = shared.next_id("msg");
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        let message = json!({
            "id": message_id, "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "Scripted side reply."}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 4},
        });
        return shared.json_response(StatusCode::OK, request_id, &message);
    }
    let prompt = latest_prompt(request);
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    let mut sse = Sse::new(&message_id, &model, input_tokens);
    match prompt.tag.as_str() {
        "thinking" => {
            sse.thinking(&["Let me think ", "about this ", "scripted request."]);
            sse.text(&pieces(&format!("Thought about it: {}", prompt.echo())));
            sse.finish("end_turn");
        }
        "slow" => {
            let ticks: Vec<String> = (1..=100).map(|n| format!("tick {n} ")).collect();
            sse.text_paced(&ticks, Duration::from_millis(100));
            sse.finish("end_turn");
        }
        "agent" => {
            if prompt.tool_results == 0 {
                // Claude Code offers its subagent tool as `Agent` (formerly `Task`).
                let name = if offered_tools(request).iter().any(|t| t == "Agent") { "Agent" } else { "Task" };
                let input = json!({
                    "description": "Run a command",
                    "prompt": format!("[claude:bash] {}", prompt.after_tag()),
                    "subagent_type": "general-purpose",
                    "run_in_background": false,
                });
                sse.tool_use(&shared.next_id("toolu"), name, &input);
                sse.finish("tool_use");
            } else {
                sse.text(&pieces(&format!("Subagent said: {}", first_chars(&prompt.last_result, 80))));
                sse.finish("end_turn");
            }
        }
        "bash" | "sh" | "touch" | "write" | "question" | "todo" | "task" => {
            let (name, input, after) = match prompt.tag.as_str() {
                "bash" => (
                    "Bash",
                    json!({"command": "echo scripted-bash-output", "description": "Print a line"}),
                    format!("The command printed: {}", prompt.last_result.trim()),
                ),
                "sh" => (
                    "Bash",
                    json!({"command": prompt.after_tag(), "description": "Run the given command"}),
                    format!("The command printed: {}", prompt.last_result.trim()),
                ),
                "touch" => (
                    "Bash",
                    json!({"command": format!("touch {TOUCHED_FILE}"), "description": "Create an empty file"}),
                    format!("Touch result: {}", first_chars(&prompt.last_result, 60)),
                ),
                "write" => (
                    "Write",
                    json!({
                        "file_path": format!("{}/claude-written.txt", working_directory(request).trim_end_matches('/')),
                        "content": "written by claude\n",
                    }),
                    format!("Write result: {}", first_chars(&prompt.last_result, 60)),
                ),
                "question" => (
                    "AskUserQuestion",
                    json!({"questions": [{
                        "question": "Which colour?",
                        "header": "Colour",
                        "options": [
                            {"label": "Red", "description": "warm"},
                            {"label": "Blue", "description": "cool"},
                        ],
                        "multiSelect": false,
                    }]}),
                    format!("Answer seen: {}", first_chars(&prompt.last_result, 80)),
                ),
                "task" => (
                    "TaskCreate",
                    json!({"subject": "Write the file", "description": "Write claude-written.txt"}),
                    format!("Task result: {}", first_chars(&prompt.last_result, 60)),
                ),
                _ => (
                    "TodoWrite",
                    json!({"todos": [
                        {"content": "read", "status": "completed", "activeForm": "Reading"},
                        {"content": "write", "status": "in_progress", "activeForm": "Writing"},
                    ]}),
                    format!("Todos result: {}", first_chars(&prompt.last_result, 60)),
                ),
            };
            if prompt.tool_results == 0 {
                let id = shared.next_id("toolu");
                sse.tool_use(&id, name, &input);
                sse.finish("tool_use");
            } else {
                sse.text(&pieces(&after));
                sse.finish("end_turn");
            }
        }
        tag if tag.starts_with("mcp:") || tag.starts_with("mcp-seq:") || tag.starts_with("skill:") => {
            let step = match mcp_script(prompt.open, tag, &prompt.text, &prompt.echo()) {
                Some(Ok(script)) => mcp_step(request, &prompt, &script),
                Some(Err(e)) => Step::Text(e),
                None => match tag.strip_prefix("skill:") {
                    Some(name) if !name.is_empty() => skill_step(request, &prompt, name),
                    _ => Step::Text(format!("Malformed tag {tag}")),
                },
            };
            match step {
                Step::Tool(name, input) => {
                    sse.tool_use(&shared.next_id("toolu"), &name, &input);
                    sse.finish("tool_use");
                }
                Step::Text(text) => {
                    sse.text(&pieces(&text));
                    sse.finish("end_turn");
                }
            }
        }
        _ => {
            sse.text(&pieces(&format!("Scripted reply: {}", prompt.echo())));
            sse.finish("end_turn");
        }
    }
    shared.sse_response(sse.frames, request_id)
}

/// The latest user prompt of a request and what follows it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Prompt {
    /// The text of the prompt's block.
    pub(crate) text: String,
    /// The first `[claude:TAG]` tag of the prompt, lowercase; `text` when none.
    pub(crate) tag: String,
    /// How its tag opens (`[claude:` when it has none).
    pub(crate) open: &'static str,
    /// How many `tool_result` blocks follow the prompt.
    pub(crate) tool_results: usize,
    /// The text content of the last of them.
    pub(crate) last_result: String,
    /// The tools the model called after the prompt, in order.
    pub(crate) calls: Vec<ToolUse>,
}

/// A `tool_use` block of the model and its result.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ToolUse {
    id: String,
    pub(crate) name: String,
    input: Value,
    /// The text of its `tool_result`, once there is one.
    pub(crate) result: Option<String>,
}

impl Prompt {
    fn used(&self, name: &str) -> bool {
        self.calls.iter().any(|c| c.name == name)
    }
}

impl Prompt {
    /// Up to 40 characters of the prompt without its tag, trimmed.
    /// The prompt's text after its tag, trimmed.
    fn after_tag(&self) -> String {
        match find_tag(self.open, &self.text) {
            Some((_, end, _)) => self.text[end..].trim().to_owned(),
            None => self.text.trim().to_owned(),
        }
    }

    pub(crate) fn echo(&self) -> String {
        crate::scripted::echo(self.open, &self.text)
    }
}

/// How a tag opens: `[claude:TAG]`, or `[claude-acp:TAG]` for the same CLI
/// run by its ACP adapter.
const TAG_OPENS: [&str; 2] = ["[claude:", "[claude-acp:"];

/// `text` without its `<system-reminder>...</system-reminder>` sections.
fn strip_reminders(text: &str) -> String {
    const OPEN: &str = "<system-reminder>";
    const CLOSE: &str = "</system-reminder>";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        match rest[start..].find(CLOSE) {
            Some(end) => rest = &rest[start + end + CLOSE.len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The content blocks of a message (a string content is one text block).
fn blocks(message: &Value) -> Vec<Value> {
    match message.get("content") {
        Some(Value::String(text)) => vec![json!({"type": "text", "text": text})],
        Some(Value::Array(blocks)) => blocks.clone(),
        _ => Vec::new(),
    }
}

/// The text of a tool_result's content (a string, or blocks whose texts are joined).
fn tool_result_text(block: &Value) -> String {
    match block.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

/// Finds the latest user prompt of `request`: the last text block of a user
/// message that still has text once its system reminders are removed and is
/// no interrupt marker (`[Request interrupted by user...]`), and counts the
/// tool results after it.
fn latest_prompt(request: &Value) -> Prompt {
    latest_prompt_of(request, &TAG_OPENS)
}

/// [`latest_prompt`] with another dialect's tag openings (Amp's `[amp:`,
/// whose CLI speaks the same Messages API).
pub(crate) fn latest_prompt_of(request: &Value, opens: &[&'static str]) -> Prompt {
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut prompt = Prompt { tag: "text".into(), open: opens[0], ..Prompt::default() };
    for message in &messages {
        let role = message.get("role").and_then(Value::as_str);
        if role == Some("assistant") {
            for block in blocks(message) {
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let text = |key: &str| block.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
                    let input = block.get("input").cloned().unwrap_or(Value::Null);
                    prompt.calls.push(ToolUse { id: text("id"), name: text("name"), input, result: None });
                }
            }
            continue;
        }
        if role != Some("user") {
            continue;
        }
        let blocks = blocks(message);
        // Text beside a tool result is the CLI's note on it ("Tool loaded."), not a prompt.
        let has_result = blocks.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"));
        for block in blocks {
            match block.get("type").and_then(Value::as_str) {
                Some("text") if has_result => {}
                Some("text") => {
                    let text = strip_reminders(block.get("text").and_then(Value::as_str).unwrap_or(""));
                    let text = text.trim();
                    if text.is_empty() || text.starts_with("[Request interrupted") {
                        continue;
                    }
                    let (open, tag) = first_tag(opens, text).unwrap_or((opens[0], "text".into()));
                    prompt = Prompt { text: text.to_owned(), tag, open, ..Prompt::default() };
                }
                Some("tool_result") => {
                    prompt.tool_results += 1;
                    prompt.last_result = tool_result_text(&block);
                    let id = block.get("tool_use_id").and_then(Value::as_str).unwrap_or("");
                    if let Some(call) = prompt.calls.iter_mut().rfind(|c| c.id == id) {
                        call.result = Some(prompt.last_result.clone());
                    }
                }
                _ => {}
            }
        }
    }
    prompt
}

/// The names of the tools a request offers the model.
fn offered_tools(request: &Value) -> Vec<String> {
    let tools = request.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
    tools.iter().filter_map(|t| t.get("name").and_then(Value::as_str)).map(str::to_owned).collect()
}

/// The next step of an MCP script (`[claude:mcp:SERVER:TOOL]`, one call, or
/// `[claude:mcp-seq:SERVER] ...`, see [`McpScript`]): a tool is called by its
/// qualified name `mcp__SERVER__TOOL` once it is among the offered tools;
/// while it is deferred (Claude Code lists MCP tools by name only), the model
/// first calls `ToolSearch` with `select:<name>,<name>...` (every deferred
/// tool the script still needs), as a real model does. The script's results
/// are those of the `mcp__SERVER__*` calls after the prompt. After the last:
/// text `MCP said: <result>`.
fn mcp_step(request: &Value, prompt: &Prompt, script: &McpScript) -> Step {
    let prefix = format!("mcp__{}__", script.server);
    let offered = offered_tools(request);
    let searches: Vec<&ToolUse> = prompt.calls.iter().filter(|c| c.name == "ToolSearch").collect();
    let available = |tool: &str| offered.contains(&format!("{prefix}{tool}"));
    let searched = |tool: &str| {
        let name = format!("{prefix}{tool}");
        searches.iter().any(|c| {
            let query = c.input.get("query").and_then(Value::as_str).unwrap_or("");
            query.strip_prefix("select:").unwrap_or(query).split(',').any(|n| n.trim() == name)
        })
    };
    let results =
        prompt.calls.iter().filter(|c| c.name.starts_with(&prefix)).filter_map(|c| c.result.clone()).collect();
    match script.next(&McpProgress { results, available: &available, searched: &searched }) {
        McpNext::Call(call) => Step::Tool(format!("{prefix}{}", call.tool), call.arguments),
        McpNext::Search(tools) => {
            let names: Vec<String> = tools.iter().map(|t| format!("{prefix}{t}")).collect();
            Step::Tool(
                "ToolSearch".into(),
                json!({"query": format!("select:{}", names.join(",")), "max_results": names.len()}),
            )
        }
        McpNext::Missing(tool) => {
            let said = searches.last().and_then(|c| c.result.as_deref()).unwrap_or("");
            Step::Text(format!("No tool {prefix}{tool} after ToolSearch: {}", first_chars(said, 200)))
        }
        McpNext::Text(text) => Step::Text(text),
    }
}

/// `[claude:skill:NAME]`: calls the `Skill` tool with the skill's name as the
/// plugin lists it (`tether:NAME`), then answers `Skill said: <result>`.
fn skill_step(request: &Value, prompt: &Prompt, name: &str) -> Step {
    if prompt.used("Skill") {
        return Step::Text(format!("Skill said: {}", first_chars(prompt.last_result.trim(), 200)));
    }
    // The Skill tool's first required argument names the skill.
    let tools = request.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
    let arg = tools
        .iter()
        .find(|t| t.get("name").and_then(Value::as_str) == Some("Skill"))
        .and_then(|t| t.pointer("/input_schema/required/0").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "skill".to_owned());
    Step::Tool("Skill".into(), json!({ arg: format!("tether:{name}") }))
}

/// What the scripted model does next.
#[derive(Debug, PartialEq)]
enum Step {
    Tool(String, Value),
    Text(String),
}

/// The texts of a request where the prompt tells the environment, least
/// trusted first: user texts, the `system` field, `system` messages.
fn system_texts(request: &Value) -> Vec<String> {
    let texts_of = |content: Option<&Value>| -> Vec<String> {
        match content {
            Some(Value::String(text)) => vec![text.clone()],
            Some(Value::Array(blocks)) => {
                blocks.iter().filter_map(|b| b.get("text").and_then(Value::as_str)).map(str::to_owned).collect()
            }
            _ => Vec::new(),
        }
    };
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let by_role = |role: &str| -> Vec<String> {
        messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some(role))
            .flat_map(|m| texts_of(m.get("content")))
            .collect()
    };
    let mut texts = by_role("user");
    texts.extend(texts_of(request.get("system")));
    texts.extend(by_role("system"));
    texts
}

/// The working directory the CLI runs in, as its prompt tells the model: the
/// absolute path after `working directory:` (any case: Claude Code 2.1.330
/// writes ` - Primary working directory: /path` in a `system` message; older
/// versions `Working directory: /path` in the `system` field), the last found
/// in `system` messages, the `system` field, then user texts; `/tmp` if none.
pub fn working_directory(request: &Value) -> String {
    const KEY: &str = "working directory:";
    let mut found = None;
    for text in system_texts(request) {
        for line in text.lines() {
            let lower = line.to_ascii_lowercase();
            let Some(at) = lower.find(KEY) else { continue };
            let path = line[at + KEY.len()..].trim();
            if path.starts_with('/') {
                found = Some(path.to_owned());
            }
        }
    }
    found.unwrap_or_else(|| "/tmp".to_owned())
}

#[cfg(test)]
mod tests;
