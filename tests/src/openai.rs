//! The real Codex CLI against a scripted model: only the model is fake.
//!
//! - [`codex_bin`]: the pinned CLI ([`CODEX_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_CODEX_PATH`);
//! - [`ScriptedOpenAI`]: an OpenAI Responses API server on 127.0.0.1 whose
//!   replies are chosen by a `[codex:TAG]` tag in the latest user prompt;
//! - [`codex_env`]: the `$CODEX_HOME/config.toml` and the environment that run
//!   the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest user *prompt* of the request's `input` (the last `role:"user"`
//! message whose text is not one Codex injects, like `<environment_context>`)
//! picks the script by its first `[codex:TAG]` tag, and the number of
//! `function_call_output` / `custom_tool_call_output` items after that prompt
//! picks the step of the script.
//!
//! | tag | first call | after the tool output |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `reasoning` | a reasoning item (summary deltas), then text | |
//! | `shell` | shell call `echo scripted-shell-output` | text `The command printed: <output>` |
//! | `ticks` | shell call printing `tick-1`..`tick-3` 300 ms apart, exiting 3 | text `The command printed: <output>` |
//! | `touch` | shell call `touch codex-touched.txt` (asks when untrusted) | text `Touch result: <output, 60 chars>` |
//! | `patch` | `apply_patch` adding `codex-patched.txt` (`patched by codex\n`) | text `Patch result: <output, 60 chars>` |
//! | `edit` | `apply_patch` updating `codex-patched.txt` to `edited by codex\n` | text `Edit result: <output, 60 chars>` |
//! | `slow` | text in 100 deltas `tick N `, 100 ms apart (~10 s) | |
//! | `mcp:SERVER:TOOL` | `tool_search_call` `SERVER TOOL` while the tool is deferred, then the function `TOOL` in the namespace `mcp__SERVER` (`echo` gets `{"text": <prompt>}`) | text `MCP said: <output>` |
//! | `mcp-seq:SERVER` | the steps after the tag, `TOOL {json} ;; TOOL {json} ...`, called in order as functions of the namespace `mcp__SERVER`, each after a `tool_search_call` `SERVER TOOL` while it is deferred; a string `"$NAME"` in a step's arguments is the field NAME of the previous output (JSON) | after each output the next step; after the last, text `MCP said: <output, 4000 chars>` |
//! | `failed` | `response.failed` (`server_error`, `scripted failure`) | |
//! | `401` / `500` | HTTP 401 / 500 with OpenAI's error JSON | |
//!
//! The shape of the calls follows the request's `tools`: Codex 0.169.0 with a
//! GPT-5 model offers the shell as the function `exec_command` (`{"cmd": ..}`,
//! "unified exec") and `apply_patch` as a *custom* (freeform) tool whose input
//! is the patch text. Older shapes are answered too: a `shell` function
//! (`{"command": ["bash", "-lc", ..]}`), `shell_command` (`{"command": ..}`)
//! and a function `apply_patch` (`{"input": ..}`). `<output>` of `shell` is
//! the text after the last `Output:` line of the tool output (unified exec
//! prefixes the command's output with a header), trimmed.
//!
//! Requests to `/v1/responses` without `stream: true` get a plain JSON
//! response with a short text; `GET /v1/models` a one-model list; any other
//! path `200 {}`; `CONNECT` (the CLI using the proxy trap of [`codex_env`])
//! `403`. Everything is recorded.

use crate::scripted::{content_text, find_tag, first_chars, mcp_script, pieces, McpNext, McpProgress, McpScript};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::anthropic::agents_dir;
use crate::scripted::{self, Dialect, Recorded, Recorder, ScriptedServer};

/// The Codex version the tests run (`scripts/install-agents` installs it).
pub const CODEX_VERSION: &str = "0.169.0";

/// The model [`codex_env`] configures: a model of Codex's bundled catalog, so
/// that Codex knows its tools (`apply_patch`, unified exec) and context window.
pub const CODEX_MODEL: &str = "gpt-5.5";

/// The Codex CLI: `$TETHER_CODEX_PATH` if set, else the pinned install
/// `<agents_dir>/codex-<CODEX_VERSION>/node_modules/.bin/codex`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn codex_bin() -> PathBuf {
    let path = match std::env::var_os("TETHER_CODEX_PATH").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => agents_dir().join(format!("codex-{CODEX_VERSION}")).join("node_modules").join(".bin").join("codex"),
    };
    assert!(
        path.is_file(),
        "the Codex CLI {CODEX_VERSION} is not installed at {}: run scripts/install-agents \
         (or set TETHER_CODEX_PATH)",
        path.display()
    );
    path
}

/// `$CODEX_HOME/config.toml` for `model`: the scripted server as the only
/// model provider, no retries, no plugins (they call github.com), no
/// analytics, no update check.
pub fn codex_config(model: &ScriptedOpenAI) -> String {
    format!(
        r#"model = "{CODEX_MODEL}"
model_provider = "mock"
check_for_update_on_startup = false

[model_providers.mock]
name = "Mock"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "MOCK_API_KEY"
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false

[analytics]
enabled = false
"#,
        url = model.url()
    )
}

/// The environment a tether server (and so the Codex CLI it spawns) needs to
/// run Codex offline against `model`, with `home` as `$HOME` and
/// `<home>/.codex` as `$CODEX_HOME`, where it writes [`codex_config`] (threads
/// are stored there too: reuse `home` across a restart, never across tests).
///
/// # Panics
/// When the config cannot be written.
pub fn codex_env(model: &ScriptedOpenAI, home: &Path) -> Vec<(String, String)> {
    let codex_home = home.join(".codex");
    std::fs::create_dir_all(&codex_home).expect("create $CODEX_HOME");
    std::fs::write(codex_home.join("config.toml"), codex_config(model)).expect("write $CODEX_HOME/config.toml");
    let url = model.url();
    let pairs = [
        ("CODEX_HOME", codex_home.display().to_string()),
        ("MOCK_API_KEY", "scripted".to_owned()),
        ("HOME", home.display().to_string()),
        ("NO_COLOR", "1".to_owned()),
        ("RUST_LOG", "error".to_owned()),
        ("HTTPS_PROXY", url.clone()),
        ("HTTP_PROXY", url),
        ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ("TETHER_CODEX_PATH", codex_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A scripted OpenAI Responses API on `127.0.0.1:<OS-chosen port>`; see the
/// module docs for the tags. Stops when dropped.
pub struct ScriptedOpenAI(ScriptedServer);

impl ScriptedOpenAI {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "OpenAI",
                model_path: "/v1/responses",
                request_id_header: "x-request-id",
                error_body: error_json,
                reply: responses_reply,
                other: other_reply,
            })
            .await,
        )
    }

    /// `http://127.0.0.1:PORT` (the provider's `base_url` is this plus `/v1`).
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Every `POST /v1/responses` body received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.0.requests()
    }

    /// Every request received so far, any method and path (`CONNECT` included).
    pub fn all_requests(&self) -> Vec<Recorded> {
        self.0.all_requests()
    }
}

/// `GET /v1/models`: a one-model list; anything else `{}`.
fn other_reply(method: &Method, path: &str) -> Value {
    if method == Method::GET && path == "/v1/models" {
        json!({"object": "list", "data": [
            {"id": CODEX_MODEL, "object": "model", "created": 0, "owned_by": "scripted"},
        ]})
    } else {
        json!({})
    }
}

/// OpenAI's error body.
fn error_json(kind: &str, code: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn json_response(status: StatusCode, request_id: &str, body: &Value) -> Response {
    scripted::json_response(status, "x-request-id", request_id, body)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// How the request's `tools` offer the shell and `apply_patch`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ShellTool {
    /// `exec_command {"cmd": ..}` (unified exec).
    ExecCommand,
    /// `shell {"command": ["bash", "-lc", ..]}`.
    Shell,
    /// `shell_command {"command": ..}`.
    ShellCommand,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PatchTool {
    /// A custom (freeform) tool: the input is the patch text.
    Custom,
    /// A function tool `{"input": patch}`.
    Function,
}

fn tool_names(request: &Value) -> Vec<(String, String)> {
    request
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| {
                    let kind = t.get("type").and_then(Value::as_str)?;
                    let name = t.get("name").and_then(Value::as_str).unwrap_or(kind);
                    Some((kind.to_owned(), name.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn shell_tool(request: &Value) -> ShellTool {
    let names = tool_names(request);
    let has = |n: &str| names.iter().any(|(_, name)| name == n);
    if has("exec_command") {
        ShellTool::ExecCommand
    } else if has("shell_command") {
        ShellTool::ShellCommand
    } else if has("shell") {
        ShellTool::Shell
    } else {
        ShellTool::ExecCommand
    }
}

fn patch_tool(request: &Value) -> PatchTool {
    let names = tool_names(request);
    if names.iter().any(|(kind, name)| kind == "function" && name == "apply_patch") {
        PatchTool::Function
    } else {
        PatchTool::Custom
    }
}

/// The patch of `[codex:edit]` (after `[codex:patch]`).
pub const SCRIPTED_EDIT: &str =
    "*** Begin Patch\n*** Update File: codex-patched.txt\n@@\n-patched by codex\n+edited by codex\n*** End Patch";

/// The command of `[codex:ticks]`: output over about a second, then exit code 3.
pub const TICKS_COMMAND: &str = "for i in 1 2 3; do echo tick-$i; sleep 0.3; done; exit 3";

/// The patch of `[codex:patch]`.
pub const SCRIPTED_PATCH: &str = "*** Begin Patch\n*** Add File: codex-patched.txt\n+patched by codex\n*** End Patch";

fn responses_reply(shared: &Recorder, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or(CODEX_MODEL).to_owned();
    let input_tokens = (request.to_string().len() / 4).max(1);
    let response_id = shared.next_id("resp");
    let prompt = latest_prompt(request);
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        let message = json!({
            "type": "message", "id": shared.next_id("msg"), "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Scripted side reply.", "annotations": []}],
        });
        let response = json!({
            "id": response_id, "object": "response", "created_at": now_secs(), "status": "completed",
            "model": model, "output": [message],
            "usage": usage(input_tokens, 4, 0),
        });
        return json_response(StatusCode::OK, request_id, &response);
    }
    let mut sse = Sse::new(shared, &response_id, &model, input_tokens);
    match prompt.tag.as_str() {
        "401" => {
            return json_response(
                StatusCode::UNAUTHORIZED,
                request_id,
                &error_json("invalid_request_error", "invalid_api_key", "Incorrect API key provided: scripted."),
            )
        }
        "500" => {
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                request_id,
                &error_json("server_error", "server_error", "scripted upstream failure"),
            )
        }
        "failed" => {
            sse.failed("server_error", "scripted failure");
        }
        "reasoning" => {
            sse.reasoning(&["Let me think ", "about this ", "scripted request."]);
            sse.text(&pieces(&format!("Thought about it: {}", prompt.echo())));
            sse.completed();
        }
        "slow" => {
            let ticks: Vec<String> = (1..=100).map(|n| format!("tick {n} ")).collect();
            sse.text_paced(&ticks, Duration::from_millis(100));
            sse.completed();
        }
        "shell" | "ticks" | "touch" => {
            let printed = format!("The command printed: {}", command_output(&prompt.last_output));
            let (command, after) = match prompt.tag.as_str() {
                "shell" => ("echo scripted-shell-output", printed),
                "ticks" => (TICKS_COMMAND, printed),
                _ => ("touch codex-touched.txt", format!("Touch result: {}", first_chars(&prompt.last_output, 60))),
            };
            if prompt.tool_outputs == 0 {
                let (name, arguments) = match shell_tool(request) {
                    ShellTool::ExecCommand => ("exec_command", json!({"cmd": command})),
                    ShellTool::ShellCommand => ("shell_command", json!({"command": command})),
                    ShellTool::Shell => ("shell", json!({"command": ["bash", "-lc", command]})),
                };
                sse.function_call(name, &arguments.to_string());
            } else {
                sse.text(&pieces(&after));
            }
            sse.completed();
        }
        "patch" | "edit" => {
            let (patch, label) =
                if prompt.tag == "patch" { (SCRIPTED_PATCH, "Patch") } else { (SCRIPTED_EDIT, "Edit") };
            if prompt.tool_outputs == 0 {
                match patch_tool(request) {
                    PatchTool::Custom => sse.custom_tool_call("apply_patch", patch),
                    PatchTool::Function => {
                        sse.function_call("apply_patch", &json!({"input": patch}).to_string());
                    }
                }
            } else {
                sse.text(&pieces(&format!("{label} result: {}", first_chars(&prompt.last_output, 60))));
            }
            sse.completed();
        }
        tag if tag.starts_with("mcp:") || tag.starts_with("mcp-seq:") => {
            match mcp_script(TAG_OPEN, tag, &prompt.text, &prompt.echo()) {
                Some(Ok(script)) => match mcp_step(request, &prompt, &script) {
                    McpStep::Search(query) => sse.tool_search_call(&json!({"query": query, "limit": 8})),
                    McpStep::Call { namespace, name, arguments } => {
                        sse.namespaced_function_call(namespace.as_deref(), &name, &arguments.to_string());
                    }
                    McpStep::Text(text) => sse.text(&pieces(&text)),
                },
                Some(Err(e)) => sse.text(&pieces(&e)),
                None => sse.text(&pieces(&format!("Malformed tag {tag}"))),
            }
            sse.completed();
        }
        _ => {
            sse.text(&pieces(&format!("Scripted reply: {}", prompt.echo())));
            sse.completed();
        }
    }
    sse.into_response(shared.shutdown(), request_id)
}

/// What an MCP script (`[codex:mcp:SERVER:TOOL]`, `[codex:mcp-seq:SERVER]`) does next.
#[derive(Debug, PartialEq)]
enum McpStep {
    /// A `tool_search_call` with this query.
    Search(String),
    /// A function call of the MCP tool.
    Call {
        namespace: Option<String>,
        name: String,
        arguments: Value,
    },
    Text(String),
}

/// Whether `tools` (a request's `tools`, or the `tools` of a
/// `tool_search_output`) hold the function `name` in the namespace `namespace`.
fn namespace_has(tools: Option<&Value>, namespace: &str, name: &str) -> bool {
    tools.and_then(Value::as_array).is_some_and(|tools| {
        tools.iter().any(|t| {
            t["type"] == "namespace"
                && t["name"] == namespace
                && t["tools"].as_array().is_some_and(|fs| fs.iter().any(|f| f["name"] == name))
        })
    })
}

/// The next step of an MCP script (`[codex:mcp:SERVER:TOOL]`, one call, or
/// `[codex:mcp-seq:SERVER] ...`, see [`McpScript`]), as a real model takes
/// it: Codex 0.169 defers MCP tools (the developer message lists the
/// namespace `mcp__SERVER` by name only), so before a step whose tool it has
/// not seen, the model calls the hosted-style `tool_search` tool (a
/// `tool_search_call` item, run by Codex: `execution: "client"`) with the
/// query `SERVER TOOL`; Codex answers with a `tool_search_output` whose
/// `tools` hold the namespace and its functions; the model then calls the
/// function `TOOL` with `namespace: "mcp__SERVER"`. The script's results are
/// the outputs of the calls in that namespace after the prompt (unified
/// exec's `Wall time: ...\nOutput:` header removed). After the last: text
/// `MCP said: <output>`.
fn mcp_step(request: &Value, prompt: &Prompt, script: &McpScript) -> McpStep {
    let server = script.server.as_str();
    let namespace = format!("mcp__{server}");
    let outputs: Vec<&Value> = prompt.following.iter().filter(|i| i["type"] == "tool_search_output").collect();
    let available = |tool: &str| {
        namespace_has(request.get("tools"), &namespace, tool)
            || outputs.iter().any(|o| namespace_has(o.get("tools"), &namespace, tool))
    };
    let searched = |tool: &str| {
        let query = format!("{server} {tool}");
        prompt.following.iter().any(|i| {
            let arguments = match &i["arguments"] {
                Value::String(text) => serde_json::from_str(text).unwrap_or(Value::Null),
                other => other.clone(),
            };
            i["type"] == "tool_search_call" && arguments["query"] == query.as_str()
        })
    };
    let results = prompt
        .following
        .iter()
        .filter(|i| i["type"] == "function_call" && i["namespace"] == namespace.as_str())
        .filter_map(|call| {
            let output = prompt
                .following
                .iter()
                .find(|o| o["type"] == "function_call_output" && o["call_id"] == call["call_id"])?;
            Some(command_output(&content_text(output.get("output"))))
        })
        .collect();
    match script.next(&McpProgress { results, available: &available, searched: &searched }) {
        McpNext::Search(tools) => McpStep::Search(format!("{server} {}", tools.first().map_or("", String::as_str))),
        McpNext::Call(call) => McpStep::Call { namespace: Some(namespace), name: call.tool, arguments: call.arguments },
        McpNext::Missing(tool) => McpStep::Text(format!(
            "No tool {namespace}.{tool} after tool_search: {}",
            first_chars(&outputs.last().map(|o| o["tools"].to_string()).unwrap_or_default(), 200)
        )),
        McpNext::Text(text) => McpStep::Text(text),
    }
}

fn usage(input_tokens: usize, output_tokens: usize, reasoning_tokens: usize) -> Value {
    json!({
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens},
        "total_tokens": input_tokens + output_tokens,
    })
}

/// The latest user prompt of a request and what follows it.
#[derive(Debug, Default, PartialEq)]
struct Prompt {
    /// The text of the prompt's message.
    text: String,
    /// The first `[codex:TAG]` tag of the prompt, lowercase; `text` when none.
    tag: String,
    /// How many `function_call_output` / `custom_tool_call_output` items follow the prompt.
    tool_outputs: usize,
    /// The text of the last of them.
    last_output: String,
    /// Every input item after the prompt, in order.
    following: Vec<Value>,
}

impl Prompt {
    /// Up to 40 characters of the prompt without its tag, trimmed.
    fn echo(&self) -> String {
        let without = match find_tag(TAG_OPEN, &self.text) {
            Some((start, end, _)) => format!("{}{}", &self.text[..start], &self.text[end..]),
            None => self.text.clone(),
        };
        first_chars(without.trim(), 40).trim().to_owned()
    }
}

const TAG_OPEN: &str = "[codex:";

/// Whether a user message is one Codex writes itself: its environment
/// context, AGENTS.md instructions, turn-aborted markers, ... (a text that is
/// one `<tag>...</tag>` element, or the AGENTS.md header).
fn injected(text: &str) -> bool {
    let text = text.trim();
    (text.starts_with('<') && text.ends_with('>')) || text.starts_with("# AGENTS.md instructions")
}

/// Finds the latest user prompt of a Responses request (the last user
/// message of `input` with a text of its own), and counts the tool outputs
/// after it.
fn latest_prompt(request: &Value) -> Prompt {
    let input = match request.get("input") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::String(text)) => vec![json!({"type": "message", "role": "user", "content": text})],
        _ => Vec::new(),
    };
    let mut prompt = Prompt { tag: "text".into(), ..Prompt::default() };
    for item in &input {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" if item.get("role").and_then(Value::as_str) == Some("user") => {
                let text = content_text(item.get("content"));
                let text = text.trim();
                if text.is_empty() || injected(text) {
                    continue;
                }
                let tag = find_tag(TAG_OPEN, text).map(|(_, _, tag)| tag).unwrap_or_else(|| "text".into());
                prompt = Prompt { text: text.to_owned(), tag, ..Prompt::default() };
                continue;
            }
            "function_call_output" | "custom_tool_call_output" => {
                prompt.tool_outputs += 1;
                prompt.last_output = content_text(item.get("output"));
            }
            _ => {}
        }
        prompt.following.push(item.clone());
    }
    prompt
}

/// What a command printed, from a shell tool output: the text after the last
/// `Output:` line (unified exec and the `shell` tool put a header before it),
/// else the whole output; trimmed.
fn command_output(output: &str) -> String {
    let body = match output.rfind("Output:\n") {
        Some(at) => &output[at + "Output:\n".len()..],
        None => output,
    };
    body.trim().to_owned()
}

/// A Responses SSE reply being built: events with the pause before each.
struct Sse<'a> {
    shared: &'a Recorder,
    events: Vec<(Duration, String)>,
    response: Value,
    output: Vec<Value>,
    sequence: u64,
    input_tokens: usize,
    output_tokens: usize,
    reasoning_tokens: usize,
}

impl<'a> Sse<'a> {
    fn new(shared: &'a Recorder, id: &str, model: &str, input_tokens: usize) -> Self {
        let response = json!({
            "id": id, "object": "response", "created_at": now_secs(), "status": "in_progress",
            "model": model, "output": [], "usage": null, "error": null,
        });
        let mut sse = Self {
            shared,
            events: Vec::new(),
            response: response.clone(),
            output: Vec::new(),
            sequence: 0,
            input_tokens,
            output_tokens: 1,
            reasoning_tokens: 0,
        };
        sse.event("response.created", json!({"response": response.clone()}));
        sse.event("response.in_progress", json!({"response": response}));
        sse
    }

    fn event(&mut self, name: &str, data: Value) {
        self.event_after(Duration::ZERO, name, data);
    }

    fn event_after(&mut self, pause: Duration, name: &str, mut data: Value) {
        if let Value::Object(map) = &mut data {
            map.insert("type".into(), json!(name));
            map.insert("sequence_number".into(), json!(self.sequence));
        }
        self.sequence += 1;
        self.events.push((pause, format!("event: {name}\ndata: {data}\n\n")));
    }

    /// Adds `item` (as it is when done) to the output: `output_item.added`
    /// with `added`, the events of `body(self, item_id, output_index)`, then
    /// `output_item.done`.
    fn item(&mut self, added: Value, done: Value, body: impl FnOnce(&mut Self, &str, usize)) {
        let index = self.output.len();
        let id = added.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.event("response.output_item.added", json!({"output_index": index, "item": added}));
        body(self, &id, index);
        self.event("response.output_item.done", json!({"output_index": index, "item": done.clone()}));
        self.output.push(done);
    }

    fn text(&mut self, pieces: &[String]) {
        self.text_paced(pieces, Duration::ZERO);
    }

    fn text_paced(&mut self, pieces: &[String], pause: Duration) {
        let id = self.shared.next_id("msg");
        let full: String = pieces.concat();
        let added = json!({"type": "message", "id": id, "role": "assistant", "status": "in_progress", "content": []});
        let part = json!({"type": "output_text", "text": full, "annotations": []});
        let done =
            json!({"type": "message", "id": id, "role": "assistant", "status": "completed", "content": [part.clone()]});
        self.item(added, done, |sse, id, index| {
            let at = |extra: Value| {
                let mut v = json!({"item_id": id, "output_index": index, "content_index": 0});
                if let (Value::Object(map), Value::Object(extra)) = (&mut v, extra) {
                    map.extend(extra);
                }
                v
            };
            sse.event(
                "response.content_part.added",
                at(json!({"part": {"type": "output_text", "text": "", "annotations": []}})),
            );
            for piece in pieces {
                sse.output_tokens += 1;
                sse.event_after(pause, "response.output_text.delta", at(json!({"delta": piece})));
            }
            sse.event("response.output_text.done", at(json!({"text": full})));
            sse.event("response.content_part.done", at(json!({"part": part})));
        });
    }

    fn reasoning(&mut self, pieces: &[&str]) {
        let id = self.shared.next_id("rs");
        let full: String = pieces.concat();
        let added = json!({"type": "reasoning", "id": id, "summary": []});
        let done = json!({
            "type": "reasoning", "id": id,
            "summary": [{"type": "summary_text", "text": full}],
            "encrypted_content": "c2NyaXB0ZWQtcmVhc29uaW5n",
        });
        self.item(added, done, |sse, id, index| {
            let at = |extra: Value| {
                let mut v = json!({"item_id": id, "output_index": index, "summary_index": 0});
                if let (Value::Object(map), Value::Object(extra)) = (&mut v, extra) {
                    map.extend(extra);
                }
                v
            };
            sse.event(
                "response.reasoning_summary_part.added",
                at(json!({"part": {"type": "summary_text", "text": ""}})),
            );
            for piece in pieces {
                sse.reasoning_tokens += 1;
                sse.event("response.reasoning_summary_text.delta", at(json!({"delta": piece})));
            }
            sse.event("response.reasoning_summary_text.done", at(json!({"text": full})));
            sse.event(
                "response.reasoning_summary_part.done",
                at(json!({"part": {"type": "summary_text", "text": full}})),
            );
        });
    }

    fn function_call(&mut self, name: &str, arguments: &str) {
        let id = self.shared.next_id("fc");
        let call_id = self.shared.next_id("call");
        let added = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": "",
            "status": "in_progress",
        });
        let done = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": "completed",
        });
        self.item(added, done, |sse, id, index| {
            for piece in pieces(arguments) {
                sse.output_tokens += 1;
                sse.event(
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": index, "delta": piece}),
                );
            }
            sse.event(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": index, "arguments": arguments}),
            );
        });
    }

    /// A `tool_search_call` (Codex runs the search: `execution: "client"`).
    fn tool_search_call(&mut self, arguments: &Value) {
        let id = self.shared.next_id("tsc");
        let call_id = self.shared.next_id("call");
        let item = |status: &str| {
            json!({
                "type": "tool_search_call", "id": id, "call_id": call_id, "execution": "client",
                "arguments": arguments, "status": status,
            })
        };
        self.item(item("in_progress"), item("completed"), |_, _, _| {});
    }

    /// A function call, in `namespace` when given (how deferred tools are called).
    fn namespaced_function_call(&mut self, namespace: Option<&str>, name: &str, arguments: &str) {
        let id = self.shared.next_id("fc");
        let call_id = self.shared.next_id("call");
        let mut added = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": "",
            "status": "in_progress",
        });
        let mut done = json!({
            "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": "completed",
        });
        if let Some(ns) = namespace {
            added["namespace"] = json!(ns);
            done["namespace"] = json!(ns);
        }
        self.item(added, done, |sse, id, index| {
            sse.event(
                "response.function_call_arguments.done",
                json!({"item_id": id, "output_index": index, "arguments": arguments}),
            );
        });
    }

    fn custom_tool_call(&mut self, name: &str, input: &str) {
        let id = self.shared.next_id("ctc");
        let call_id = self.shared.next_id("call");
        let added = json!({
            "type": "custom_tool_call", "id": id, "call_id": call_id, "name": name, "input": "",
            "status": "in_progress",
        });
        let done = json!({
            "type": "custom_tool_call", "id": id, "call_id": call_id, "name": name, "input": input,
            "status": "completed",
        });
        self.item(added, done, |sse, id, index| {
            for piece in pieces(input) {
                sse.output_tokens += 1;
                sse.event(
                    "response.custom_tool_call_input.delta",
                    json!({"item_id": id, "output_index": index, "delta": piece}),
                );
            }
            sse.event(
                "response.custom_tool_call_input.done",
                json!({"item_id": id, "output_index": index, "input": input}),
            );
        });
    }

    fn completed(&mut self) {
        let mut response = self.response.clone();
        response["status"] = json!("completed");
        response["output"] = Value::Array(self.output.clone());
        response["usage"] = usage(self.input_tokens, self.output_tokens + self.reasoning_tokens, self.reasoning_tokens);
        self.event("response.completed", json!({"response": response}));
    }

    fn failed(&mut self, code: &str, message: &str) {
        let mut response = self.response.clone();
        response["status"] = json!("failed");
        response["output"] = Value::Array(self.output.clone());
        response["error"] = json!({"code": code, "message": message});
        self.event("response.failed", json!({"response": response}));
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
            headers.insert("x-request-id", id);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(input: Value) -> Value {
        json!({"model": "m", "stream": true, "input": input})
    }

    fn user(text: &str) -> Value {
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
    }

    #[test]
    fn tags_and_steps() {
        let p = latest_prompt(&request(json!([user("[codex:shell] hi")])));
        assert_eq!((p.tag.as_str(), p.tool_outputs), ("shell", 0));
        let r = request(json!([
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "[codex:401]"}]},
            user("<environment_context>\n  <cwd>/x</cwd>\n</environment_context>"),
            user("[codex:patch] hi"),
            {"type": "custom_tool_call", "call_id": "c", "name": "apply_patch", "input": "x"},
            {"type": "custom_tool_call_output", "call_id": "c", "output": "Success."},
            {"type": "function_call", "call_id": "d", "name": "exec_command", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "d", "output": "Exit code: 0\nOutput:\nout\n"},
        ]));
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.tool_outputs), ("patch", 2));
        assert_eq!(command_output(&p.last_output), "out");
        // A later untagged prompt wins over an earlier tagged one (resumed threads).
        let r = request(json!([
            user("[codex:shell] hi"),
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "x"}]},
            {"role": "user", "content": "  plain words  "},
            user("<turn_aborted>\nx\n</turn_aborted>"),
        ]));
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
        let p = latest_prompt(&request(json!([user("[codex:TEXT]  a very long prompt that goes on and on and on")])));
        assert_eq!(p.tag, "text");
        assert_eq!(p.echo(), "a very long prompt that goes on and on a");
        assert_eq!(latest_prompt(&json!({"input": "[codex:slow] go"})).tag, "slow");
        assert_eq!(command_output("plain\n"), "plain");
    }

    /// The next step of `[codex:mcp:tt:TOOL]` in `r`.
    fn single_step(r: &Value, tool: &str) -> McpStep {
        let prompt = latest_prompt(r);
        mcp_step(r, &prompt, &McpScript::single("tt", tool, &prompt.echo()))
    }

    #[test]
    fn mcp_tools_are_searched_then_called_in_their_namespace() {
        let prompt = user("[codex:mcp:tt:echo] hi there");
        let r = request(json!([prompt]));
        assert_eq!(single_step(&r, "echo"), McpStep::Search("tt echo".into()));
        let found = json!({"type": "tool_search_output", "call_id": "s", "execution": "client", "tools": [
            {"type": "namespace", "name": "mcp__tt", "tools": [{"type": "function", "name": "echo"}]},
        ]});
        let search = json!({"type": "tool_search_call", "call_id": "s", "arguments": {"query": "tt echo"}});
        let r = request(json!([prompt, search, found]));
        let call = McpStep::Call {
            namespace: Some("mcp__tt".into()),
            name: "echo".into(),
            arguments: json!({"text": "hi there"}),
        };
        assert_eq!(single_step(&r, "echo"), call);
        let r = request(json!([prompt, search, found,
            {"type": "function_call", "call_id": "c", "name": "echo", "namespace": "mcp__tt", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": [
                {"type": "input_text", "text": "Wall time: 0.01 seconds\nOutput:"},
                {"type": "input_text", "text": "echo: hi there"},
            ]},
        ]));
        assert_eq!(single_step(&r, "echo"), McpStep::Text("MCP said: echo: hi there".into()));
        // Searched, but the namespace lacks the tool: say so rather than loop.
        let search = json!({"type": "tool_search_call", "call_id": "s", "arguments": {"query": "tt nope"}});
        let r = request(json!([prompt, search, found]));
        assert!(matches!(single_step(&r, "nope"), McpStep::Text(t) if t.starts_with("No tool")));
    }

    #[test]
    fn mcp_sequences_search_each_deferred_tool_then_call_in_order() {
        let step = |items: &[Value]| {
            let r = request(json!(items));
            let prompt = latest_prompt(&r);
            let script = mcp_script(TAG_OPEN, &prompt.tag, &prompt.text, &prompt.echo()).unwrap().unwrap();
            mcp_step(&r, &prompt, &script)
        };
        let search = |id: &str, query: &str| {
            let arguments = json!({"query": query, "limit": 8}).to_string();
            json!({"type": "tool_search_call", "call_id": id, "execution": "client", "arguments": arguments})
        };
        let found = |id: &str, tools: &[&str]| {
            let functions: Vec<Value> = tools.iter().map(|t| json!({"type": "function", "name": t})).collect();
            json!({"type": "tool_search_output", "call_id": id, "execution": "client", "tools": [
                {"type": "namespace", "name": "mcp__tt", "tools": functions}]})
        };
        let called = |id: &str, name: &str, output: &str| {
            [
                json!({"type": "function_call", "call_id": id, "name": name, "namespace": "mcp__tt", "arguments": "{}"}),
                json!({"type": "function_call_output", "call_id": id, "output": [
                    {"type": "input_text", "text": "Wall time: 0.01 seconds\nOutput:"},
                    {"type": "input_text", "text": output},
                ]}),
            ]
        };
        let call = |name: &str, arguments: Value| McpStep::Call {
            namespace: Some("mcp__tt".into()),
            name: name.into(),
            arguments,
        };
        let mut items = vec![user(r#"[codex:mcp-seq:tt] mint ;; echo {"text": "$token"}"#)];
        assert_eq!(step(&items), McpStep::Search("tt mint".into()));
        items.extend([search("s1", "tt mint"), found("s1", &["mint"])]);
        assert_eq!(step(&items), call("mint", json!({})));
        items.extend(called("c1", "mint", r#"{"token":"tok-1"}"#));
        // echo was not in the first search's output: searched for before its step.
        assert_eq!(step(&items), McpStep::Search("tt echo".into()));
        items.extend([search("s2", "tt echo"), found("s2", &["echo"])]);
        assert_eq!(step(&items), call("echo", json!({"text": "tok-1"})));
        items.extend(called("c2", "echo", "echo: tok-1"));
        assert_eq!(step(&items), McpStep::Text("MCP said: echo: tok-1".into()));
        // A first result without the field: say so, call nothing.
        let mut items =
            vec![user(r#"[codex:mcp-seq:tt] mint ;; echo {"text": "$nope"}"#), found("s", &["mint", "echo"])];
        items.extend(called("c1", "mint", r#"{"token":"tok-1"}"#));
        let McpStep::Text(text) = step(&items) else { panic!("a text expected") };
        assert!(
            text.starts_with("MCP sequence stopped at step 2 (echo): the result of mint has no field nope"),
            "{text}"
        );
    }

    #[test]
    fn tool_shapes_follow_the_request() {
        let tools = |t: Value| json!({"tools": t});
        let exec =
            tools(json!([{"type": "function", "name": "exec_command"}, {"type": "custom", "name": "apply_patch"}]));
        assert_eq!((shell_tool(&exec), patch_tool(&exec)), (ShellTool::ExecCommand, PatchTool::Custom));
        let old = tools(json!([{"type": "function", "name": "shell"}, {"type": "function", "name": "apply_patch"}]));
        assert_eq!((shell_tool(&old), patch_tool(&old)), (ShellTool::Shell, PatchTool::Function));
        assert_eq!(shell_tool(&tools(json!([{"type": "function", "name": "shell_command"}]))), ShellTool::ShellCommand);
    }

    /// The `data:` objects of an SSE body.
    fn events(text: &str) -> Vec<Value> {
        text.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| serde_json::from_str(d).unwrap()).collect()
    }

    async fn post(url: &str, body: &str) -> (u16, String, String) {
        let response = reqwest::Client::new()
            .post(format!("{url}/v1/responses"))
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
        let server = ScriptedOpenAI::start().await;
        let url = server.url();
        let tools = json!([{"type": "function", "name": "exec_command"}, {"type": "custom", "name": "apply_patch"}]);
        let with_tools =
            |input: Value| json!({"model": "m", "stream": true, "tools": tools, "input": input}).to_string();

        let (status, kind, text) = post(&url, &with_tools(json!([user("[codex:text] Hello there")]))).await;
        assert_eq!((status, kind.as_str()), (200, "text/event-stream; charset=utf-8"));
        assert!(text.starts_with("event: response.created\ndata: {"), "{text}");
        let evs = events(&text);
        let deltas: String = evs
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "Scripted reply: Hello there");
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "response.completed");
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Scripted reply: Hello there");
        assert!(last["response"]["usage"]["input_tokens_details"]["cached_tokens"].is_number());
        let seq: Vec<u64> = evs.iter().map(|e| e["sequence_number"].as_u64().unwrap()).collect();
        assert_eq!(seq, (0..evs.len() as u64).collect::<Vec<_>>());

        let (_, _, text) = post(&url, &with_tools(json!([user("[codex:shell] go")]))).await;
        let evs = events(&text);
        let done = evs.iter().find(|e| e["type"] == "response.output_item.done").unwrap();
        assert_eq!(done["item"]["name"], "exec_command");
        let args: Value = serde_json::from_str(done["item"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["cmd"], "echo scripted-shell-output");
        let (_, _, text) = post(
            &url,
            &with_tools(json!([
                user("[codex:shell] go"),
                {"type": "function_call", "call_id": "c", "name": "exec_command", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "Wall time: 0 s\nOutput:\nscripted-shell-output\n"},
            ])),
        )
        .await;
        let last = events(&text).pop().unwrap();
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "The command printed: scripted-shell-output");

        let (_, _, text) = post(&url, &with_tools(json!([user("[codex:patch] go")]))).await;
        let evs = events(&text);
        let input: String = evs
            .iter()
            .filter(|e| e["type"] == "response.custom_tool_call_input.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert_eq!(input, SCRIPTED_PATCH);
        let done = evs.iter().find(|e| e["type"] == "response.output_item.done").unwrap();
        assert_eq!(
            (done["item"]["type"].as_str(), done["item"]["input"].as_str()),
            (Some("custom_tool_call"), Some(SCRIPTED_PATCH))
        );

        let (_, _, text) = post(&url, &with_tools(json!([user("[codex:edit] go")]))).await;
        let done = events(&text).into_iter().find(|e| e["type"] == "response.output_item.done").unwrap();
        assert_eq!(done["item"]["input"], SCRIPTED_EDIT);
        let old_tools = json!([{"type": "function", "name": "shell"}, {"type": "function", "name": "apply_patch"}]);
        let body = json!({"model": "m", "stream": true, "tools": old_tools, "input": [user("[codex:patch] go")]});
        let (_, _, text) = post(&url, &body.to_string()).await;
        let done = events(&text).into_iter().find(|e| e["type"] == "response.output_item.done").unwrap();
        assert_eq!(done["item"]["type"], "function_call");
        let args: Value = serde_json::from_str(done["item"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args["input"], SCRIPTED_PATCH);

        let (_, _, text) = post(&url, &with_tools(json!([user("[codex:reasoning] go")]))).await;
        let evs = events(&text);
        assert!(evs.iter().any(|e| e["type"] == "response.reasoning_summary_text.delta"));
        assert_eq!(evs.last().unwrap()["response"]["output"][0]["type"], "reasoning");

        let (_, _, text) = post(&url, &with_tools(json!([user("[codex:failed] go")]))).await;
        let last = events(&text).pop().unwrap();
        assert_eq!(
            (last["type"].as_str(), last["response"]["error"]["code"].as_str()),
            (Some("response.failed"), Some("server_error"))
        );

        let (status, _, text) = post(&url, &with_tools(json!([user("[codex:401]")]))).await;
        assert_eq!(status, 401);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "invalid_api_key");
        let (status, _, _) = post(&url, &with_tools(json!([user("[codex:500]")]))).await;
        assert_eq!(status, 500);
        let (status, kind, text) = post(&url, &json!({"model": "m", "input": "title?"}).to_string()).await;
        assert_eq!((status, kind.as_str()), (200, "application/json"));
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["object"], "response");
        let (status, _, _) = post(&url, "not json").await;
        assert_eq!(status, 400);
        assert_eq!(server.requests().len(), 11);
        let models = reqwest::get(format!("{url}/v1/models")).await.unwrap().json::<Value>().await.unwrap();
        assert_eq!(models["data"][0]["id"], CODEX_MODEL);
        assert_eq!(server.all_requests().len(), 13);
        drop(server);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
    }

    #[tokio::test]
    async fn refuses_connect() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = ScriptedOpenAI::start().await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        tcp.write_all(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = tcp.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
        let all = server.all_requests();
        assert_eq!((all[0].method.as_str(), all[0].uri.as_str()), ("CONNECT", "api.openai.com:443"));
    }

    #[tokio::test]
    async fn env_writes_the_config() {
        if std::env::var_os("TETHER_CODEX_PATH").is_none()
            && !agents_dir().join(format!("codex-{CODEX_VERSION}")).exists()
        {
            eprintln!("skipped: codex is not installed (scripts/install-agents)");
            return;
        }
        let server = ScriptedOpenAI::start().await;
        let home = tempfile::tempdir().unwrap();
        let env = codex_env(&server, home.path());
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("CODEX_HOME"), home.path().join(".codex").display().to_string());
        let config = std::fs::read_to_string(home.path().join(".codex/config.toml")).unwrap();
        assert!(config.contains(&format!("base_url = \"{}/v1\"", server.url())), "{config}");
        assert_eq!(get("NO_PROXY"), "127.0.0.1,localhost");
    }

    // ---- the recorder: the real `codex app-server` over stdio ----

    /// A running `codex app-server` and everything that crossed its stdio.
    struct AppServer {
        child: tokio::process::Child,
        stdin: Option<tokio::process::ChildStdin>,
        stdout: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
        stderr: tokio::task::JoinHandle<String>,
        /// Lines the client wrote, in order.
        sent: Vec<String>,
        /// Lines codex wrote on stdout, verbatim, in order.
        received: Vec<String>,
        next_id: u64,
        /// The answer to approval requests (`interrupt`: a `turn/interrupt` instead).
        decision: &'static str,
        /// Sends `turn/interrupt` after this many `item/agentMessage/delta`.
        interrupt_after: Option<usize>,
        deltas: usize,
        interrupted: bool,
        thread_id: String,
        turn_id: String,
    }

    impl AppServer {
        fn spawn(model: &ScriptedOpenAI, home: &Path, cwd: &Path) -> Self {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt};
            let mut child = tokio::process::Command::new(codex_bin())
                .arg("app-server")
                .current_dir(cwd)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .envs(codex_env(model, home))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let stdin = child.stdin.take();
            let stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
            let mut err = child.stderr.take().unwrap();
            let stderr = tokio::spawn(async move {
                let mut text = String::new();
                let _ = err.read_to_string(&mut text).await;
                text
            });
            Self {
                child,
                stdin,
                stdout,
                stderr,
                sent: Vec::new(),
                received: Vec::new(),
                next_id: 0,
                decision: "accept",
                interrupt_after: None,
                deltas: 0,
                interrupted: false,
                thread_id: String::new(),
                turn_id: String::new(),
            }
        }

        async fn send(&mut self, message: &Value) {
            use tokio::io::AsyncWriteExt;
            let line = message.to_string();
            self.sent.push(line.clone());
            let stdin = self.stdin.as_mut().expect("stdin still open");
            stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
            stdin.flush().await.unwrap();
        }

        /// Sends a request; returns its id.
        async fn send_request(&mut self, method: &str, params: Value) -> u64 {
            self.next_id += 1;
            let id = self.next_id;
            self.send(&json!({"id": id, "method": method, "params": params})).await;
            id
        }

        /// The next stdout line codex writes (parsed; `Null` when it is no
        /// JSON), after reacting to it: approvals answered, interrupts sent.
        async fn next(&mut self) -> Value {
            let Some(line) = self.stdout.next_line().await.unwrap() else {
                panic!("codex closed stdout; its output:\n{}", self.received.join("\n"));
            };
            self.received.push(line.clone());
            let Ok(message) = serde_json::from_str::<Value>(&line) else {
                eprintln!("codex wrote a non-JSON line: {line:?}");
                return Value::Null;
            };
            let method = message.get("method").and_then(Value::as_str).unwrap_or_default().to_owned();
            if let Some(id) = message.get("id").filter(|_| !method.is_empty()) {
                // A server request.
                let reply = if method.ends_with("requestApproval") && self.decision == "interrupt" {
                    // Leaves the request unanswered and interrupts the turn instead.
                    let params = json!({"threadId": self.thread_id, "turnId": self.turn_id});
                    self.send_request("turn/interrupt", params).await;
                    return message;
                } else if method.ends_with("requestApproval") {
                    json!({"id": id, "result": {"decision": self.decision}})
                } else if method == "mcpServer/elicitation/request" {
                    json!({"id": id, "result": {"action": self.decision, "content": null}})
                } else {
                    json!({"id": id, "error": {"code": -32601, "message": format!("the recorder does not answer {method}")}})
                };
                self.send(&reply).await;
            }
            match method.as_str() {
                "turn/started" => {
                    self.turn_id = message["params"]["turn"]["id"].as_str().unwrap_or_default().to_owned();
                }
                "item/agentMessage/delta" => {
                    self.deltas += 1;
                    if !self.interrupted && self.interrupt_after.is_some_and(|n| self.deltas >= n) {
                        self.interrupted = true;
                        let params = json!({"threadId": self.thread_id, "turnId": self.turn_id});
                        self.send_request("turn/interrupt", params).await;
                    }
                }
                _ => {}
            }
            message
        }

        /// Sends a request and reads until its response; returns the response.
        async fn request(&mut self, method: &str, params: Value) -> Value {
            let id = self.send_request(method, params).await;
            loop {
                let message = self.next().await;
                if message.get("method").is_none() && message.get("id") == Some(&json!(id)) {
                    return message;
                }
            }
        }

        async fn initialize(&mut self) {
            let reply = self.request("initialize", json!({"clientInfo": {"name": "tether", "version": "0.1.0"}})).await;
            assert!(reply.get("result").is_some(), "initialize: {reply}");
            self.send(&json!({"method": "initialized"})).await;
        }

        async fn start_thread(&mut self, cwd: &Path, approval: &str, sandbox: &str) -> String {
            self.start_thread_with(cwd, approval, sandbox, None).await
        }

        /// `thread/start` with `config` (layered over config.toml) when given.
        async fn start_thread_with(
            &mut self,
            cwd: &Path,
            approval: &str,
            sandbox: &str,
            config: Option<Value>,
        ) -> String {
            let mut params = json!({"cwd": cwd.display().to_string(), "approvalPolicy": approval, "sandbox": sandbox});
            if let Some(config) = config {
                params["config"] = config;
            }
            let reply = self.request("thread/start", params).await;
            self.thread_id = reply["result"]["thread"]["id"].as_str().expect("thread/start: a thread id").to_owned();
            self.thread_id.clone()
        }

        /// Runs one turn to its `turn/completed`; returns that notification's params.
        async fn turn(&mut self, text: &str) -> Value {
            self.deltas = 0;
            self.interrupted = false;
            let params = json!({"threadId": self.thread_id, "input": [{"type": "text", "text": text}]});
            let reply = self.request("turn/start", params).await;
            assert!(reply.get("result").is_some(), "turn/start: {reply}");
            loop {
                let message = self.next().await;
                if message["method"] == "turn/completed" {
                    return message["params"].clone();
                }
            }
        }

        /// Closes stdin, waits for the exit; returns (stdin lines, stdout lines, stderr).
        async fn finish(mut self) -> (Vec<String>, Vec<String>, String) {
            drop(self.stdin.take());
            // Whatever codex still writes after stdin closes belongs to the recording.
            let drain = async {
                while let Ok(Some(line)) = self.stdout.next_line().await {
                    self.received.push(line);
                }
            };
            if tokio::time::timeout(Duration::from_secs(15), drain).await.is_err() {
                eprintln!("codex app-server did not close stdout 15 s after stdin closed; killing it");
                let _ = self.child.kill().await;
            }
            let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
            eprintln!("codex app-server exited: {status:?}");
            let stderr = tokio::time::timeout(Duration::from_secs(5), self.stderr).await.ok().and_then(Result::ok);
            (self.sent, self.received, stderr.unwrap_or_default())
        }
    }

    struct Case {
        name: &'static str,
        approval: &'static str,
        sandbox: &'static str,
        prompts: &'static [&'static str],
        decision: &'static str,
        interrupt_after: Option<usize>,
        /// Extra arguments of a test MCP server `tt` given in `config.mcp_servers` (none: no server).
        mcp: Option<&'static [&'static str]>,
    }

    const fn case(name: &'static str, prompts: &'static [&'static str]) -> Case {
        Case {
            name,
            approval: "never",
            sandbox: "danger-full-access",
            prompts,
            decision: "accept",
            interrupt_after: None,
            mcp: None,
        }
    }

    const fn untrusted(name: &'static str, prompt: &'static [&'static str], decision: &'static str) -> Case {
        Case {
            name,
            approval: "untrusted",
            sandbox: "workspace-write",
            prompts: prompt,
            decision,
            interrupt_after: None,
            mcp: None,
        }
    }

    /// The text of the last completed agentMessage item of `lines`.
    fn last_agent_text(lines: &[String]) -> String {
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["method"] == "item/completed" && v["params"]["item"]["type"] == "agentMessage")
            .filter_map(|v| v["params"]["item"]["text"].as_str().map(str::to_owned))
            .next_back()
            .unwrap_or_default()
    }

    /// Records the real `codex app-server` for each case into
    /// `server/src/agents/codex/testdata/<name>.out.jsonl` (its stdout lines,
    /// verbatim) and `<name>.in.jsonl` (the lines the client sent), the model
    /// requests and codex's stderr into `$TMPDIR/tether-codex-recordings/`, and
    /// the app-server's JSON schema into `testdata/schema/`. Re-run after a
    /// version bump: `cargo test -p tether-e2e --lib record_codex -- --ignored --nocapture`
    /// (`TETHER_RECORD_ONLY=text,shell` records only those cases).
    #[tokio::test]
    #[ignore = "needs scripts/install-agents; rewrites the recordings"]
    async fn record_codex_transcripts() {
        let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/agents/codex/testdata");
        let side_dir = std::env::temp_dir().join("tether-codex-recordings");
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::create_dir_all(&side_dir).unwrap();
        let only = std::env::var("TETHER_RECORD_ONLY").ok();
        let wanted = |name: &str| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == name));
        let save = |name: &str, recording: &(Vec<String>, Vec<String>, String), model: &ScriptedOpenAI| {
            let (sent, received, stderr) = recording;
            let lines = |l: &[String]| l.iter().map(|l| format!("{l}\n")).collect::<String>();
            std::fs::write(out_dir.join(format!("{name}.out.jsonl")), lines(received)).unwrap();
            std::fs::write(out_dir.join(format!("{name}.in.jsonl")), lines(sent)).unwrap();
            let all: Vec<Value> = model
                .all_requests()
                .into_iter()
                .map(|r| json!({"method": r.method, "uri": r.uri, "body": r.body}))
                .collect();
            std::fs::write(side_dir.join(format!("{name}.requests.json")), serde_json::to_string_pretty(&all).unwrap())
                .unwrap();
            std::fs::write(side_dir.join(format!("{name}.stderr.txt")), stderr).unwrap();
            eprintln!("recorded {name}: {} lines out, {} in", received.len(), sent.len());
        };

        if wanted("schema") {
            save_schema(&out_dir.join("schema")).await;
        }

        let cases = [
            case("text", &["[codex:text] Hello from the recorder"]),
            case("reasoning", &["[codex:reasoning] Think first"]),
            case("shell", &["[codex:shell] Run a command"]),
            case("shell_output_deltas", &["[codex:ticks] Run a slow command"]),
            untrusted("touch_approved", &["[codex:touch] Touch a file"], "accept"),
            untrusted("touch_declined", &["[codex:touch] Touch a file"], "decline"),
            untrusted("patch_approved", &["[codex:patch] Patch a file"], "accept"),
            untrusted("patch_declined", &["[codex:patch] Patch a file"], "decline"),
            case("patch_update", &["[codex:patch] Create a file", "[codex:edit] Edit it"]),
            untrusted("touch_interrupted", &["[codex:touch] Touch a file"], "interrupt"),
            Case { interrupt_after: Some(5), ..case("slow_interrupt", &["[codex:slow] Take your time"]) },
            case("failed", &["[codex:failed] Fail the stream"]),
            case("http_500", &["[codex:500] Fail upstream"]),
            case("http_401", &["[codex:401] Fail auth"]),
            case("two_turns", &["[codex:text] First turn", "[codex:shell] Second turn"]),
            Case { mcp: Some(&[]), ..case("mcp_bypass", &["[codex:mcp:tt:echo] hello mcp"]) },
            Case { mcp: Some(&[]), ..untrusted("mcp_approved", &["[codex:mcp:tt:echo] hello mcp"], "accept") },
            Case { mcp: Some(&[]), ..untrusted("mcp_declined", &["[codex:mcp:tt:echo] hello mcp"], "decline") },
            Case { mcp: Some(&["--exit-at-once"]), ..case("mcp_failed", &["[codex:text] no server"]) },
        ];
        for c in &cases {
            if !wanted(c.name) {
                continue;
            }
            let model = ScriptedOpenAI::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let run = async {
                let mut app = AppServer::spawn(&model, home.path(), cwd.path());
                app.decision = c.decision;
                app.interrupt_after = c.interrupt_after;
                app.initialize().await;
                let config = c.mcp.map(|extra| {
                    let mut args = vec!["--log".to_owned(), cwd.path().join("mcp-calls.jsonl").display().to_string()];
                    args.extend(extra.iter().map(|a| (*a).to_owned()));
                    let mut server =
                        json!({"command": crate::mcp::mcp_test_server_bin().display().to_string(), "args": args});
                    if c.approval == "never" {
                        server["default_tools_approval_mode"] = json!("approve");
                    }
                    json!({"mcp_servers": {"tt": server}})
                });
                app.start_thread_with(cwd.path(), c.approval, c.sandbox, config).await;
                let mut statuses = Vec::new();
                for prompt in c.prompts {
                    let done = app.turn(prompt).await;
                    statuses.push(done["turn"]["status"].as_str().unwrap_or_default().to_owned());
                }
                (app.finish().await, statuses)
            };
            let (recording, statuses) = tokio::time::timeout(Duration::from_secs(180), run)
                .await
                .unwrap_or_else(|_| panic!("{}: codex did not finish in 180 s", c.name));
            save(c.name, &recording, &model);
            eprintln!("{}: turn statuses {statuses:?}; last text {:?}", c.name, last_agent_text(&recording.1));
            let touched = cwd.path().join("codex-touched.txt");
            let patched = cwd.path().join("codex-patched.txt");
            match c.name {
                "mcp_bypass" | "mcp_approved" => {
                    assert_eq!(last_agent_text(&recording.1), "MCP said: echo: hello mcp", "{}", c.name);
                }
                "shell" | "two_turns" => {
                    assert!(last_agent_text(&recording.1).contains("scripted-shell-output"), "{}", c.name);
                }
                "touch_approved" => assert!(touched.exists(), "touch_approved: no file"),
                "touch_declined" => assert!(!touched.exists(), "touch_declined: the file exists"),
                "shell_output_deltas" => {
                    assert!(last_agent_text(&recording.1).contains("tick-3"), "{}", c.name);
                }
                "patch_approved" => assert_eq!(std::fs::read_to_string(&patched).unwrap(), "patched by codex\n"),
                "patch_update" => assert_eq!(std::fs::read_to_string(&patched).unwrap(), "edited by codex\n"),
                "patch_declined" => assert!(!patched.exists(), "patch_declined: the file exists"),
                "slow_interrupt" => assert_eq!(statuses, ["interrupted"]),
                "touch_interrupted" => {
                    assert_eq!(statuses, ["interrupted"]);
                    assert!(!touched.exists(), "touch_interrupted: the file exists");
                }
                "failed" | "http_500" | "http_401" => assert_eq!(statuses, ["failed"], "{}", c.name),
                _ => assert!(statuses.iter().all(|s| s == "completed"), "{}: {statuses:?}", c.name),
            }
        }

        if wanted("resume") {
            // A second process resumes the first one's thread (same CODEX_HOME and cwd).
            let model = ScriptedOpenAI::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let mut first = AppServer::spawn(&model, home.path(), cwd.path());
            first.initialize().await;
            let thread_id = first.start_thread(cwd.path(), "never", "danger-full-access").await;
            first.turn("[codex:text] Remember the word pomegranate").await;
            let recording = first.finish().await;
            save("resume_first", &recording, &model);

            // `excludeTurns: true` is the recommended form; without it the reply
            // carries the whole history and codex adds a `deprecationNotice`.
            for (name, exclude_turns) in [("resume", true), ("resume_full_history", false)] {
                let mut second = AppServer::spawn(&model, home.path(), cwd.path());
                second.initialize().await;
                let mut params = json!({
                    "threadId": thread_id, "cwd": cwd.path().display().to_string(),
                    "approvalPolicy": "never", "sandbox": "danger-full-access",
                });
                if exclude_turns {
                    params["excludeTurns"] = json!(true);
                }
                let reply = second.request("thread/resume", params).await;
                assert_eq!(reply["result"]["thread"]["id"], json!(thread_id), "thread/resume: {reply}");
                second.thread_id.clone_from(&thread_id);
                let done = second.turn("[codex:text] What was the word?").await;
                assert_eq!(done["turn"]["status"], "completed");
                let recording = second.finish().await;
                save(name, &recording, &model);
                let last = model.requests().into_iter().rfind(|r| r["stream"] == true).unwrap();
                assert!(last["input"].to_string().contains("Remember the word pomegranate"), "resumed request: {last}");
            }
        }
    }

    /// Writes the part of `codex app-server generate-json-schema` that
    /// describes threads, turns, items, approvals and token usage into `dir`.
    async fn save_schema(dir: &Path) {
        let full = tempfile::tempdir().unwrap();
        let status = tokio::process::Command::new(codex_bin())
            .args(["app-server", "generate-json-schema", "--out"])
            .arg(full.path())
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "generate-json-schema: {status}");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("v1")).unwrap();
        std::fs::create_dir_all(dir.join("v2")).unwrap();
        let top = [
            "ClientRequest",
            "ClientNotification",
            "ServerNotification",
            "ServerRequest",
            "CommandExecutionRequestApprovalParams",
            "CommandExecutionRequestApprovalResponse",
            "FileChangeRequestApprovalParams",
            "FileChangeRequestApprovalResponse",
            "JSONRPCMessage",
            "JSONRPCError",
            "JSONRPCErrorError",
            "RequestId",
        ];
        for name in top {
            let file = format!("{name}.json");
            std::fs::copy(full.path().join(&file), dir.join(&file)).unwrap();
        }
        for name in ["InitializeParams", "InitializeResponse"] {
            let file = format!("v1/{name}.json");
            std::fs::copy(full.path().join(&file), dir.join(&file)).unwrap();
        }
        let v2 = [
            "Thread(Start|Resume)(Params|Response)",
            "Thread(Started|StatusChanged|TokenUsageUpdated|Closed)Notification",
            "Turn(Start|Interrupt)(Params|Response)",
            "Turn(Started|Completed|DiffUpdated|PlanUpdated)Notification",
            "Item(Started|Completed)Notification",
            "AgentMessageDeltaNotification",
            "Reasoning(SummaryTextDelta|SummaryPartAdded|TextDelta)Notification",
            "CommandExecutionOutputDeltaNotification",
            "FileChange(OutputDelta|PatchUpdated)Notification",
            "(Error|Warning|ConfigWarning|DeprecationNotice|ServerRequestResolved)Notification",
        ];
        let matches = |file: &str| {
            let Some(stem) = file.strip_suffix(".json") else { return false };
            v2.iter().any(|pattern| alternatives(pattern).iter().any(|a| a == stem))
        };
        for entry in std::fs::read_dir(full.path().join("v2")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if matches(&name) {
                std::fs::copy(full.path().join("v2").join(&name), dir.join("v2").join(&name)).unwrap();
            }
        }
        std::fs::write(
            dir.join("README.md"),
            format!(
                "Part of `codex app-server generate-json-schema --out DIR` (codex-cli {CODEX_VERSION}):\n\
                 the requests, notifications and server requests, and the v2 types of threads,\n\
                 turns, items, approvals and token usage. Written by `record_codex_transcripts`\n\
                 (tests/src/openai.rs).\n"
            ),
        )
        .unwrap();
    }

    /// The words a pattern like `A(B|C)D(E|F)` stands for: ABDE, ABDF, ACDE, ACDF.
    fn alternatives(pattern: &str) -> Vec<String> {
        let mut words = vec![String::new()];
        let mut rest = pattern;
        while !rest.is_empty() {
            if let Some(group) = rest.strip_prefix('(') {
                let close = group.find(')').unwrap();
                let options: Vec<&str> = group[..close].split('|').collect();
                words = words.iter().flat_map(|w| options.iter().map(move |o| format!("{w}{o}"))).collect();
                rest = &group[close + 1..];
            } else {
                let end = rest.find('(').unwrap_or(rest.len());
                for w in &mut words {
                    w.push_str(&rest[..end]);
                }
                rest = &rest[end..];
            }
        }
        words
    }

    #[test]
    fn alternatives_expand() {
        assert_eq!(alternatives("A(B|C)D(E|F)"), ["ABDE", "ABDF", "ACDE", "ACDF"]);
        assert_eq!(alternatives("Plain"), ["Plain"]);
    }
}
