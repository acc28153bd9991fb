//! The real Claude Code CLI against a scripted model: only the model is fake.
//!
//! - [`claude_bin`]: the pinned CLI ([`CLAUDE_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_CLAUDE_PATH`);
//! - [`ScriptedAnthropic`]: an Anthropic Messages API server on 127.0.0.1 whose
//!   replies are chosen by a `[claude:TAG]` tag in the latest user prompt;
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
//! | `write` | tool_use `Write` `<cwd>/claude-written.txt` | text `Write result: <result, 60 chars>` |
//! | `question` | tool_use `AskUserQuestion` (Red / Blue) | text `Answer seen: <result, 80 chars>` |
//! | `todo` | tool_use `TodoWrite` (two todos) | text `Todos result: <result, 60 chars>` |
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

use crate::scripted::{find_tag, first_chars, mcp_script, pieces, McpNext, McpProgress, McpScript};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::watch;

pub use crate::scripted::Recorded;
use crate::scripted::{self, Dialect, Recorder, ScriptedServer};

/// The Claude Code version the tests run (`scripts/install-agents` installs it).
pub const CLAUDE_VERSION: &str = "2.1.330";

/// Where `scripts/install-agents` installs the agent CLIs:
/// `${TETHER_AGENTS_DIR:-$HOME/.cache/tether-agents}`.
pub fn agents_dir() -> PathBuf {
    crate::pinned_tools::cache_dir("TETHER_AGENTS_DIR", "tether-agents")
}

/// The Claude Code CLI: `$TETHER_CLAUDE_PATH` if set, else the pinned install
/// `<agents_dir>/claude-<CLAUDE_VERSION>/node_modules/.bin/claude`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn claude_bin() -> PathBuf {
    let path = match std::env::var_os("TETHER_CLAUDE_PATH").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => agents_dir().join(format!("claude-{CLAUDE_VERSION}")).join("node_modules").join(".bin").join("claude"),
    };
    assert!(
        path.is_file(),
        "the Claude Code CLI {CLAUDE_VERSION} is not installed at {}: run scripts/install-agents \
         (or set TETHER_CLAUDE_PATH)",
        path.display()
    );
    path
}

/// The environment a tether server (and so the Claude CLI it spawns) needs to
/// run Claude offline against `model`, with `home` as `$HOME` (sessions are
/// stored under `$HOME/.claude`: reuse it across a restart, never across tests).
pub fn claude_env(model: &ScriptedAnthropic, home: &Path) -> Vec<(String, String)> {
    let url = model.url();
    let pairs = [
        ("ANTHROPIC_BASE_URL", url.clone()),
        ("ANTHROPIC_API_KEY", "sk-ant-scripted".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("DISABLE_TELEMETRY", "1".to_owned()),
        ("DISABLE_ERROR_REPORTING", "1".to_owned()),
        ("CLAUDE_CODE_MAX_RETRIES", "0".to_owned()),
        ("HOME", home.display().to_string()),
        ("HTTPS_PROXY", url.clone()),
        ("HTTP_PROXY", url),
        ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ("TETHER_CLAUDE_PATH", claude_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A scripted Anthropic Messages API on `127.0.0.1:<OS-chosen port>`; see the
/// module docs for the tags. Stops when dropped.
pub struct ScriptedAnthropic(ScriptedServer);

impl ScriptedAnthropic {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "Anthropic",
                model_path: "/v1/messages",
                request_id_header: "request-id",
                error_body: |kind, _code, message| error_json(kind, message),
                reply: messages_reply,
                other: |_, path| {
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

    /// `http://127.0.0.1:PORT` (what `ANTHROPIC_BASE_URL` takes).
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Every `POST /v1/messages` body received so far, in order (side
    /// requests without `stream: true` included).
    pub fn requests(&self) -> Vec<Value> {
        self.0.requests()
    }

    /// Every request received so far, any method and path (`CONNECT` included).
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.0.all_requests()
    }
}

fn error_json(kind: &str, message: &str) -> Value {
    json!({"type": "error", "error": {"type": kind, "message": message}})
}

fn json_response(status: StatusCode, request_id: &str, body: &Value) -> Response {
    scripted::json_response(status, "request-id", request_id, body)
}

fn messages_reply(shared: &Recorder, request: &Value, request_id: &str) -> Response {
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
        return json_response(StatusCode::OK, request_id, &message);
    }
    let prompt = latest_prompt(request);
    let mut sse = Sse::new(&message_id, &model, input_tokens);
    match prompt.tag.as_str() {
        "401" => {
            return json_response(
                StatusCode::UNAUTHORIZED,
                request_id,
                &error_json("authentication_error", "invalid x-api-key"),
            )
        }
        "500" => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                &error_json("api_error", "scripted upstream failure"),
            )
        }
        "overloaded" => {
            let status = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return json_response(status, request_id, &error_json("overloaded_error", "Overloaded"));
        }
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
        "bash" | "sh" | "write" | "question" | "todo" | "task" => {
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
            let step = match mcp_script(TAG_OPEN, tag, &prompt.text, &prompt.echo()) {
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
    sse.into_response(shared.shutdown(), request_id)
}

/// The latest user prompt of a request and what follows it.
#[derive(Debug, Default, PartialEq)]
struct Prompt {
    /// The text of the prompt's block.
    text: String,
    /// The first `[claude:TAG]` tag of the prompt, lowercase; `text` when none.
    tag: String,
    /// How many `tool_result` blocks follow the prompt.
    tool_results: usize,
    /// The text content of the last of them.
    last_result: String,
    /// The tools the model called after the prompt, in order.
    calls: Vec<ToolUse>,
}

/// A `tool_use` block of the model and its result.
#[derive(Debug, Default, PartialEq)]
struct ToolUse {
    id: String,
    name: String,
    input: Value,
    /// The text of its `tool_result`, once there is one.
    result: Option<String>,
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
        match find_tag(TAG_OPEN, &self.text) {
            Some((_, end, _)) => self.text[end..].trim().to_owned(),
            None => self.text.trim().to_owned(),
        }
    }

    fn echo(&self) -> String {
        let without = match find_tag(TAG_OPEN, &self.text) {
            Some((start, end, _)) => format!("{}{}", &self.text[..start], &self.text[end..]),
            None => self.text.clone(),
        };
        first_chars(without.trim(), 40).trim().to_owned()
    }
}

const TAG_OPEN: &str = "[claude:";

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
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut prompt = Prompt { tag: "text".into(), ..Prompt::default() };
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
                    let tag = find_tag(TAG_OPEN, text).map(|(_, _, tag)| tag).unwrap_or_else(|| "text".into());
                    prompt = Prompt { text: text.to_owned(), tag, ..Prompt::default() };
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

/// An SSE reply being built: events with the pause before each.
struct Sse {
    events: Vec<(Duration, String)>,
    index: usize,
    output_tokens: usize,
}

impl Sse {
    fn new(id: &str, model: &str, input_tokens: usize) -> Self {
        let mut sse = Self { events: Vec::new(), index: 0, output_tokens: 1 };
        sse.event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            }}),
        );
        sse.event("ping", json!({"type": "ping"}));
        sse
    }

    fn event(&mut self, name: &str, data: Value) {
        self.event_after(Duration::ZERO, name, data);
    }

    fn event_after(&mut self, pause: Duration, name: &str, data: Value) {
        self.events.push((pause, format!("event: {name}\ndata: {data}\n\n")));
    }

    fn block(&mut self, start: Value, deltas: Vec<(Duration, Value)>) {
        let index = self.index;
        self.index += 1;
        self.event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for (pause, delta) in deltas {
            self.output_tokens += 1;
            self.event_after(
                pause,
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        self.event("content_block_stop", json!({"type": "content_block_stop", "index": index}));
    }

    fn text(&mut self, pieces: &[String]) {
        self.text_paced(pieces, Duration::ZERO);
    }

    fn text_paced(&mut self, pieces: &[String], pause: Duration) {
        let deltas = pieces.iter().map(|p| (pause, json!({"type": "text_delta", "text": p}))).collect();
        self.block(json!({"type": "text", "text": ""}), deltas);
    }

    fn thinking(&mut self, pieces: &[&str]) {
        let mut deltas: Vec<(Duration, Value)> =
            pieces.iter().map(|p| (Duration::ZERO, json!({"type": "thinking_delta", "thinking": p}))).collect();
        deltas.push((Duration::ZERO, json!({"type": "signature_delta", "signature": "c2NyaXB0ZWQtc2lnbmF0dXJl"})));
        self.block(json!({"type": "thinking", "thinking": "", "signature": ""}), deltas);
    }

    fn tool_use(&mut self, id: &str, name: &str, input: &Value) {
        let json_text = input.to_string();
        let mut deltas = vec![(Duration::ZERO, json!({"type": "input_json_delta", "partial_json": ""}))];
        for piece in pieces(&json_text) {
            deltas.push((Duration::ZERO, json!({"type": "input_json_delta", "partial_json": piece})));
        }
        self.block(json!({"type": "tool_use", "id": id, "name": name, "input": {}}), deltas);
    }

    fn finish(&mut self, stop_reason: &str) {
        let output_tokens = self.output_tokens;
        self.event(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                   "usage": {"output_tokens": output_tokens}}),
        );
        self.event("message_stop", json!({"type": "message_stop"}));
    }

    /// Streams the events, each as its own chunk, after its pause; cut short
    /// (the connection aborted) when the server stops.
    fn into_response(self, shutdown: watch::Receiver<bool>, request_id: &str) -> Response {
        let events = self.events.into_iter();
        let stream = futures_util::stream::unfold((events, shutdown), |(mut events, mut shutdown)| async move {
            let (pause, event) = events.next()?;
            if *shutdown.borrow() {
                return Some((Err(std::io::Error::other("scripted server stopped")), (events, shutdown)));
            }
            if !pause.is_zero() {
                let stopped = tokio::select! {
                    () = tokio::time::sleep(pause) => false,
                    _ = shutdown.wait_for(|s| *s) => true,
                };
                if stopped {
                    return Some((Err(std::io::Error::other("scripted server stopped")), (events, shutdown)));
                }
            }
            Some((Ok::<_, std::io::Error>(Bytes::from(event)), (events, shutdown)))
        });
        let mut response = Response::new(Body::from_stream(stream));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("request-id", id);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(messages: Value) -> Value {
        json!({"model": "m", "stream": true, "messages": messages})
    }

    #[test]
    fn tags_and_steps() {
        let r = request(json!([{"role": "user", "content": "[claude:bash] hi"}]));
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.tool_results), ("bash", 0));
        let r = request(json!([
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nx [claude:401]\n</system-reminder>\n"},
                {"type": "text", "text": "[claude:bash] hi"}]},
            {"role": "system", "content": [{"type": "text", "text": "env"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "out\n"}]},
                {"type": "text", "text": "<system-reminder>later</system-reminder>"}]},
        ]));
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.tool_results, p.last_result.as_str()), ("bash", 1, "out\n"));
        // A later untagged prompt wins over an earlier tagged one (resumed conversations).
        let r = request(json!([
            {"role": "user", "content": "[claude:bash] hi"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}, {"type": "text", "text": "  plain words  "}]},
        ]));
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
        let p = latest_prompt(&request(
            json!([{"role": "user", "content": "[claude:TEXT]  a very long prompt that goes on and on and on"}]),
        ));
        assert_eq!(p.tag, "text");
        assert_eq!(p.echo(), "a very long prompt that goes on and on a");
    }

    #[test]
    fn mcp_sequences_search_once_then_call_in_order() {
        let prompt = json!({"role": "user", "content": r#"[claude:mcp-seq:tt] mint ;; echo {"text": "$token"}"#});
        let use_ = |id: &str, name: &str, input: Value| json!({"role": "assistant", "content": [{"type": "tool_use", "id": id, "name": name, "input": input}]});
        let result = |id: &str, text: &str| {
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": id, "content": [{"type": "text", "text": text}]}]})
        };
        let step = |messages: Value, tools: &[&str]| {
            let mut r = request(messages);
            r["tools"] = tools.iter().map(|t| json!({"name": t})).collect();
            let prompt = latest_prompt(&r);
            let script = mcp_script(TAG_OPEN, &prompt.tag, &prompt.text, &prompt.echo()).unwrap().unwrap();
            mcp_step(&r, &prompt, &script)
        };
        let select = json!({"query": "select:mcp__tt__mint,mcp__tt__echo", "max_results": 2});
        assert_eq!(step(json!([prompt]), &["Bash"]), Step::Tool("ToolSearch".into(), select.clone()));
        let searched = [prompt.clone(), use_("s", "ToolSearch", select), result("s", "")];
        let loaded = ["Bash", "mcp__tt__mint", "mcp__tt__echo"];
        assert_eq!(step(json!(searched), &loaded), Step::Tool("mcp__tt__mint".into(), json!({})));
        let e = step(json!(searched), &["Bash"]);
        assert!(matches!(&e, Step::Text(t) if t.starts_with("No tool mcp__tt__mint after ToolSearch")), "{e:?}");
        let mut minted = searched.to_vec();
        minted.extend([use_("m", "mcp__tt__mint", json!({})), result("m", r#"{"token":"tok-1"}"#)]);
        assert_eq!(step(json!(minted), &loaded), Step::Tool("mcp__tt__echo".into(), json!({"text": "tok-1"})));
        let mut echoed = minted.clone();
        echoed.extend([use_("e", "mcp__tt__echo", json!({"text": "tok-1"})), result("e", "echo: tok-1")]);
        assert_eq!(step(json!(echoed), &loaded), Step::Text("MCP said: echo: tok-1".into()));
        // The single call of [claude:mcp:SERVER:TOOL] is a one-step script.
        let single = json!([{"role": "user", "content": "[claude:mcp:tt:echo] hi"}]);
        assert_eq!(step(single, &["mcp__tt__echo"]), Step::Tool("mcp__tt__echo".into(), json!({"text": "hi"})));
    }

    #[test]
    fn working_directory_from_the_prompt() {
        let r = json!({
            "system": [{"type": "text", "text": "Working directory: /old\nother"}],
            "messages": [{"role": "system", "content": [{"type": "text", "text": "# Environment\n - Primary working directory: /tmp/x y\n - Is a git repository: false"}]}],
        });
        assert_eq!(working_directory(&r), "/tmp/x y");
        assert_eq!(working_directory(&json!({"system": "Working directory: /w\n"})), "/w");
        assert_eq!(working_directory(&json!({})), "/tmp");
    }

    async fn post(url: &str, body: &str) -> (u16, String, String) {
        let response = reqwest::Client::new()
            .post(format!("{url}/v1/messages?beta=true"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        (status, kind, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn serves_scripts() {
        let server = ScriptedAnthropic::start().await;
        let url = server.url();
        let (status, kind, text) = post(
            &url,
            &json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "[claude:bash] go"}]})
                .to_string(),
        )
        .await;
        assert_eq!((status, kind.as_str()), (200, "text/event-stream; charset=utf-8"));
        assert!(text.starts_with("event: message_start\ndata: {"), "{text}");
        let json: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .filter_map(|v| v["delta"]["partial_json"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["command"], "echo scripted-bash-output");
        assert!(text.contains(r#""stop_reason":"tool_use""#));
        let (status, _, text) =
            post(&url, &request(json!([{"role": "user", "content": "[claude:401]"}])).to_string()).await;
        assert_eq!(status, 401);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["type"], "authentication_error");
        let (status, _, _) =
            post(&url, &request(json!([{"role": "user", "content": "[claude:overloaded]"}])).to_string()).await;
        assert_eq!(status, 529);
        let (status, kind, text) = post(&url, r#"{"model":"m","messages":[{"role":"user","content":"title?"}]}"#).await;
        assert_eq!((status, kind.as_str()), (200, "application/json"));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["type"], "message");
        let (status, _, _) = post(&url, "not json").await;
        assert_eq!(status, 400);
        assert_eq!(server.requests().len(), 4);
        let count =
            reqwest::Client::new().post(format!("{url}/v1/messages/count_tokens")).body("{}").send().await.unwrap();
        assert_eq!(count.json::<Value>().await.unwrap()["input_tokens"], 10);
        let head = reqwest::Client::new().head(format!("{url}/")).send().await.unwrap();
        assert_eq!(head.status().as_u16(), 200);
        assert_eq!(server.all_requests().len(), 7);
        drop(server);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
    }

    #[tokio::test]
    async fn refuses_connect() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = ScriptedAnthropic::start().await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        tcp.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = tcp.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let all = server.all_requests();
        assert_eq!((all[0].method.as_str(), all[0].uri.as_str()), ("CONNECT", "example.com:443"));
    }

    /// How the recorder answers `can_use_tool` requests.
    #[derive(Clone, Copy)]
    enum Answer {
        Allow,
        Deny,
        /// Allows with the answers of `[claude:question]` added to the input.
        ChooseBlue,
        /// Leaves the request unanswered and interrupts the turn instead.
        Interrupt,
    }

    struct Run<'a> {
        model: &'a ScriptedAnthropic,
        home: &'a Path,
        cwd: &'a Path,
        args: Vec<String>,
        prompts: Vec<&'a str>,
        answer: Answer,
        /// Sends an interrupt after this many text deltas.
        interrupt_after: Option<usize>,
        /// Added to [`claude_env`].
        env: Vec<(String, String)>,
    }

    fn user_line(text: &str) -> String {
        json!({"type": "user", "message": {"role": "user", "content": text}, "parent_tool_use_id": null, "session_id": ""})
            .to_string()
    }

    /// Runs the real CLI in stream-json mode through `run.prompts`, answering
    /// its control requests; returns its stdout lines.
    async fn run_claude(run: Run<'_>) -> Vec<String> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let mut cmd = tokio::process::Command::new(claude_bin());
        cmd.args([
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
            "default",
        ])
        .args(&run.args)
        .current_dir(run.cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(claude_env(run.model, run.home))
        .envs(run.env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut prompts = run.prompts.iter();
        let mut lines = Vec::new();
        let mut deltas = 0;
        let mut interrupted = false;
        async fn send(stdin: &mut Option<tokio::process::ChildStdin>, line: &str) {
            let stdin = stdin.as_mut().expect("stdin still open");
            stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
            stdin.flush().await.unwrap();
        }
        send(&mut stdin, &user_line(prompts.next().unwrap())).await;
        let read = async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                lines.push(line.clone());
                let Ok(v) = serde_json::from_str::<Value>(&line) else { continue };
                match v["type"].as_str() {
                    Some("control_request") if v["request"]["subtype"] == "can_use_tool" => {
                        let input = v["request"]["input"].clone();
                        if let Answer::Interrupt = run.answer {
                            let int = json!({"type": "control_request", "request_id": "int_1",
                                             "request": {"subtype": "interrupt"}});
                            send(&mut stdin, &int.to_string()).await;
                            continue;
                        }
                        let response = match run.answer {
                            Answer::Allow => json!({"behavior": "allow", "updatedInput": input}),
                            Answer::Deny | Answer::Interrupt => json!({"behavior": "deny", "message": "no"}),
                            Answer::ChooseBlue => {
                                let mut input = input;
                                input["answers"] = json!({"Which colour?": "Blue"});
                                json!({"behavior": "allow", "updatedInput": input})
                            }
                        };
                        let reply = json!({"type": "control_response", "response": {
                            "subtype": "success", "request_id": v["request_id"], "response": response}});
                        send(&mut stdin, &reply.to_string()).await;
                    }
                    Some("stream_event") if v["event"]["delta"]["type"] == "text_delta" => {
                        deltas += 1;
                        if !interrupted && run.interrupt_after.is_some_and(|n| deltas >= n) {
                            interrupted = true;
                            let int = json!({"type": "control_request", "request_id": "int_1",
                                             "request": {"subtype": "interrupt"}});
                            send(&mut stdin, &int.to_string()).await;
                        }
                    }
                    Some("result") => match prompts.next() {
                        Some(prompt) => send(&mut stdin, &user_line(prompt)).await,
                        None => drop(stdin.take()),
                    },
                    _ => {}
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(120), read).await.is_err() {
            let _ = child.kill().await;
            panic!("claude did not finish in 120 s; its output:\n{}", lines.join("\n"));
        }
        let status = child.wait().await.unwrap();
        eprintln!("claude {:?} exited with {status}", run.prompts);
        lines
    }

    fn session_id(lines: &[String]) -> String {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["type"] == "system" && v["subtype"] == "init")
            .and_then(|v| v["session_id"].as_str().map(str::to_owned))
            .expect("a system/init line")
    }

    fn has_result(lines: &[String]) -> bool {
        lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|v| v["type"] == "result")
    }

    /// Records the real CLI's stdout for each tag into
    /// `server/src/agents/claude/testdata/<name>.jsonl` (the converter's unit
    /// tests read them) and the requests it sent into
    /// `$TMPDIR/tether-claude-recordings/<name>.requests.json`. Re-run after a
    /// version bump: `cargo test -p tether-e2e --lib record_claude -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "needs scripts/install-agents; rewrites the recordings"]
    async fn record_claude_transcripts() {
        let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/agents/claude/testdata");
        let req_dir = std::env::temp_dir().join("tether-claude-recordings");
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::create_dir_all(&req_dir).unwrap();
        let only = std::env::var("TETHER_RECORD_ONLY").ok();
        let save = |name: &str, lines: &[String], model: &ScriptedAnthropic| {
            let mut text = lines.join("\n");
            text.push('\n');
            std::fs::write(out_dir.join(format!("{name}.jsonl")), text).unwrap();
            let all: Vec<Value> = model
                .all_requests()
                .into_iter()
                .map(|r| json!({"method": r.method, "uri": r.uri, "body": r.body}))
                .collect();
            std::fs::write(req_dir.join(format!("{name}.requests.json")), serde_json::to_string_pretty(&all).unwrap())
                .unwrap();
            assert!(has_result(lines), "{name}: no result line");
            eprintln!("recorded {name}: {} lines", lines.len());
        };
        type Case<'a> = (&'a str, &'a [&'a str], Answer, Option<usize>, &'a [(&'a str, &'a str)]);
        let cases: &[Case] = &[
            ("text", &["[claude:text] Hello from the recorder"], Answer::Allow, None, &[]),
            ("thinking", &["[claude:thinking] Think first"], Answer::Allow, None, &[]),
            ("bash", &["[claude:bash] Run a command"], Answer::Allow, None, &[]),
            ("write_allowed", &["[claude:write] Write a file"], Answer::Allow, None, &[]),
            ("write_denied", &["[claude:write] Write a file"], Answer::Deny, None, &[]),
            ("question", &["[claude:question] Ask me"], Answer::ChooseBlue, None, &[]),
            ("todo", &["[claude:todo] Plan it"], Answer::Allow, None, &[]),
            ("task", &["[claude:task] Plan it"], Answer::Allow, None, &[("CLAUDE_CODE_ENABLE_TODO_TOOLS", "1")]),
            ("task_disabled", &["[claude:task] Plan it"], Answer::Allow, None, &[]),
            ("error_401", &["[claude:401] Fail auth"], Answer::Allow, None, &[]),
            ("error_500", &["[claude:500] Fail upstream"], Answer::Allow, None, &[]),
            ("error_overloaded", &["[claude:overloaded] Overload"], Answer::Allow, None, &[]),
            (
                "error_500_retry",
                &["[claude:500] Fail upstream"],
                Answer::Allow,
                None,
                &[("CLAUDE_CODE_MAX_RETRIES", "1")],
            ),
            ("interrupt_during_permission", &["[claude:write] Write a file"], Answer::Interrupt, None, &[]),
            ("interrupt", &["[claude:slow] Take your time"], Answer::Allow, Some(5), &[]),
            (
                "interrupt_then_prompt",
                &["[claude:slow] Take your time", "[claude:text] After the interrupt"],
                Answer::Allow,
                Some(5),
                &[],
            ),
            ("two_turns", &["[claude:text] First turn", "[claude:bash] Second turn"], Answer::Allow, None, &[]),
        ];
        for &(name, prompts, answer, interrupt_after, env) in cases {
            if only.as_deref().is_some_and(|o| !o.split(',').any(|n| n == name)) {
                continue;
            }
            let model = ScriptedAnthropic::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let lines = run_claude(Run {
                model: &model,
                home: home.path(),
                cwd: cwd.path(),
                args: Vec::new(),
                prompts: prompts.to_vec(),
                answer,
                interrupt_after,
                env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            })
            .await;
            save(name, &lines, &model);
            if name == "write_allowed" {
                let written = std::fs::read_to_string(cwd.path().join("claude-written.txt")).unwrap();
                assert_eq!(written, "written by claude\n");
            }
            if name == "write_denied" {
                assert!(!cwd.path().join("claude-written.txt").exists());
            }
        }
        if only.as_deref().is_none_or(|o| o.split(',').any(|n| n == "resume")) {
            // A second process resumes the first one's session (same HOME and cwd).
            let model = ScriptedAnthropic::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let run = |args: Vec<String>, prompt| Run {
                model: &model,
                home: home.path(),
                cwd: cwd.path(),
                args,
                prompts: vec![prompt],
                answer: Answer::Allow,
                interrupt_after: None,
                env: Vec::new(),
            };
            let first = run_claude(run(Vec::new(), "[claude:text] Remember the word pomegranate")).await;
            save("resume_first", &first, &model);
            let id = session_id(&first);
            let second = run_claude(run(vec!["--resume".into(), id.clone()], "[claude:text] What was the word?")).await;
            save("resume", &second, &model);
            let last = model.requests().into_iter().rfind(|r| r["stream"] == true).unwrap();
            assert!(last["messages"].to_string().contains("Remember the word pomegranate"), "resumed request: {last}");
            assert_eq!(session_id(&second), id, "the resumed process keeps the session id");
        }
    }
}
