//! The real Codex CLI against a scripted model: only the model is fake.
//!
//! - [`codex_bin`]: the pinned CLI ([`CODEX_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_CODEX_PATH`);
//! - [`ScriptedOpenAI`]: an OpenAI Responses API server on 127.0.0.1 whose
//!   replies are chosen by a `[codex:TAG]` tag (or `[copilot:TAG]`, the
//!   Copilot CLI's rig, [`crate::copilot`]; or `[codex-acp:TAG]`, the same
//!   CLI run by its ACP adapter, [`codex_acp_bin`]) in the latest user prompt;
//! - [`codex_env`]: the `$CODEX_HOME/config.toml` and the environment that run
//!   the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest user *prompt* of the request's `input` (the last `role:"user"`
//! message whose text is not one Codex injects, like `<environment_context>`)
//! picks the script by its first `[codex:TAG]` tag (a subagent's prompt is
//! the task its parent sent it: an `agent_message` item addressed to it),
//! and the number of
//! `function_call_output` / `custom_tool_call_output` items after that prompt
//! picks the step of the script. The tags below are `[codex:…]`;
//! `[copilot:…]` picks the same scripts.
//!
//! | tag | first call | after the tool output |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `reasoning` | a reasoning item (summary deltas), then text | |
//! | `shell` | shell call `echo scripted-shell-output` | text `The command printed: <output>` |
//! | `ticks` | shell call printing `tick-1`..`tick-3` 300 ms apart, exiting 3 | text `The command printed: <output>` |
//! | `touch` | shell call `touch codex-touched.txt` (asks when untrusted) | text `Touch result: <output, 60 chars>` |
//! | `touch-escalated` | the same, asking to leave the sandbox (`sandbox_permissions: "require_escalated"`: asks when on-request) | text `Touch result: <output, 60 chars>` |
//! | `patch` | `apply_patch` adding `codex-patched.txt` (`patched by codex\n`) | text `Patch result: <output, 60 chars>` |
//! | `edit` | `apply_patch` updating `codex-patched.txt` to `edited by codex\n` | text `Edit result: <output, 60 chars>` |
//! | `slow` | text in 100 deltas `tick N `, 100 ms apart (~10 s) | |
//! | `mcp:SERVER:TOOL` | `tool_search_call` `SERVER TOOL` while the tool is deferred, then the function `TOOL` in the namespace `mcp__SERVER` (`echo` gets `{"text": <prompt>}`); where the request offers the function `SERVER-TOOL` (Copilot), that function | text `MCP said: <output>` |
//! | `mcp-seq:SERVER` | the steps after the tag, `TOOL {json} ;; TOOL {json} ...`, called in order as functions of the namespace `mcp__SERVER`, each after a `tool_search_call` `SERVER TOOL` while it is deferred; a string `"$NAME"` in a step's arguments is the field NAME of the previous output (JSON) | after each output the next step; after the last, text `MCP said: <output, 4000 chars>` |
//! | `agent` | `spawn_agent` (namespace `collaboration`, Codex's `multi_agent_v2`) of a subagent `check_shell` whose task is `[codex:shell] run it` (no parent history); after its output, `wait_agent` | text `Subagent said: <output, 80 chars>` |
//! | `failed` | `response.failed` (`server_error`, `scripted failure`) | |
//! | `401` / `500` | HTTP 401 / 500 with OpenAI's error JSON | |
//!
//! The shape of the calls follows the request's `tools`: Codex 0.169.0 with a
//! GPT-5 model offers the shell as the function `exec_command` (`{"cmd": ..}`,
//! "unified exec") and `apply_patch` as a *custom* (freeform) tool whose input
//! is the patch text. Older shapes are answered too: a `shell` function
//! (`{"command": ["bash", "-lc", ..]}`), `shell_command` (`{"command": ..}`)
//! and a function `apply_patch` (`{"input": ..}`); Copilot's shell is the
//! function `bash` (`{"command": .., "description": ..}`). `<output>` of `shell` is
//! the text after the last `Output:` line of the tool output (unified exec
//! prefixes the command's output with a header), trimmed.
//!
//! A request whose prompt is the Codex ACP adapter's title request
//! ([`TITLE_PROMPT`], followed by the user's first message) gets the text
//! `{"title": "Scripted conversation title"}`, whatever tag it quotes; the
//! model's `agent_requests` leave it out.
//!
//! Requests to `/v1/responses` without `stream: true` get a plain JSON
//! response with a short text; `GET /v1/models` a one-model list; any other
//! path `200 {}`; `CONNECT` (the CLI using the proxy trap of [`codex_env`])
//! `403`. Everything is recorded.

use crate::scripted::{content_text, first_chars, first_tag, mcp_script, pieces, McpNext, McpProgress, McpScript};

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::scripted::{self, Dialect, Frames, Recorder, ScriptedServer};

mod sse;
use sse::Sse;

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
    crate::pinned_tools::agent_cli("Codex", "codex", CODEX_VERSION, "TETHER_CODEX_PATH")
}

/// The version of Codex's ACP adapter the tests run (`codex-acp`;
/// `scripts/install-agents` installs it).
pub const CODEX_ACP_VERSION: &str = "2.6.0";

/// Codex's ACP adapter: `$TETHER_CODEX_ACP_PATH` if set, else the pinned
/// install `<agents_dir>/codex-acp-<CODEX_ACP_VERSION>/node_modules/.bin/codex-acp`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn codex_acp_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Codex ACP adapter", "codex-acp", CODEX_ACP_VERSION, "TETHER_CODEX_ACP_PATH")
}

/// [`codex_env`] for Codex's ACP adapter (`codex-acp`): the same pinned
/// `codex` (which tether gives the adapter as `CODEX_PATH`) and config, and
/// the adapter itself.
pub fn codex_acp_env(model: &ScriptedOpenAI, home: &Path) -> Vec<(String, String)> {
    let mut env = codex_env(model, home);
    env.push(("TETHER_CODEX_ACP_PATH".to_owned(), codex_acp_bin().display().to_string()));
    env
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
    let pairs = [
        ("CODEX_HOME", codex_home.display().to_string()),
        ("MOCK_API_KEY", "scripted".to_owned()),
        ("HOME", home.display().to_string()),
        ("NO_COLOR", "1".to_owned()),
        ("RUST_LOG", "error".to_owned()),
        ("TETHER_CODEX_PATH", codex_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// A scripted OpenAI Responses API on `127.0.0.1:<OS-chosen port>`; see the
/// module docs for the tags. Stops when dropped.
pub struct ScriptedOpenAI(ScriptedServer);

crate::scripted_model!(ScriptedOpenAI, agent_requests = |r| !is_title_request(r));

/// How the Codex ACP adapter's title request opens: after a session's first
/// turn it runs a turn of its own (model `gpt-5.6-luna`, in an ephemeral
/// thread) whose prompt is this, then the user's first message (tag and all).
pub const TITLE_PROMPT: &str = "Your task is to generate a very short title for a conversation";

/// The title the scripted model gives a [`TITLE_PROMPT`] request.
pub const SCRIPTED_TITLE: &str = "Scripted conversation title";

/// Whether `request` is the Codex ACP adapter's title request (not a turn of the session).
pub fn is_title_request(request: &Value) -> bool {
    latest_prompt(request).text.starts_with(TITLE_PROMPT)
}

impl ScriptedOpenAI {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "OpenAI",
                model_path: |path| path == "/v1/responses",
                request_id_header: "x-request-id",
                error_body: scripted::openai_error,
                errors: scripted::OPENAI_ERRORS,
                sse_content_type: "text/event-stream; charset=utf-8",
                reply: responses_reply,
                other: |method, path, _| scripted::openai_other(CODEX_MODEL, method, path),
            })
            .await,
        )
    }
}

/// Whether a `tool_search_output` offering the namespace `mcp__SERVER`
/// reached the model in any of `requests` (Codex searched the server's deferred tools).
pub fn searched_mcp_namespace(requests: &[Value], server: &str) -> bool {
    let namespace = format!("mcp__{server}");
    requests.iter().any(|r| {
        r["input"].as_array().is_some_and(|items| {
            items.iter().any(|i| {
                i["type"] == "tool_search_output"
                    && i["tools"].as_array().is_some_and(|t| t.iter().any(|n| n["name"] == namespace.as_str()))
            })
        })
    })
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
    /// `bash {"command": .., "description": ..}` (Copilot).
    Bash,
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
    } else if has("bash") {
        ShellTool::Bash
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

/// The task `[codex:agent]` gives its subagent.
pub const SUBAGENT_TASK: &str = "[codex:shell] run it";

/// The patch of `[codex:patch]`.
pub const SCRIPTED_PATCH: &str = "*** Begin Patch\n*** Add File: codex-patched.txt\n+patched by codex\n*** End Patch";

fn responses_reply(shared: &Recorder, _path: &str, request: &Value, request_id: &str) -> Response {
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
            "id": response_id, "object": "response", "created_at": scripted::now_secs(), "status": "completed",
            "model": model, "output": [message],
            "usage": usage(input_tokens, 4, 0),
        });
        return shared.json_response(StatusCode::OK, request_id, &response);
    }
    let mut sse = Sse::new(shared, &response_id, &model, input_tokens);
    if prompt.text.starts_with(TITLE_PROMPT) {
        // The adapter's title request quotes the user's prompt: its tag is not for it.
        sse.text(&pieces(&json!({ "title": SCRIPTED_TITLE }).to_string()));
        sse.completed();
        return shared.sse_response(sse.frames, request_id);
    }
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    match prompt.tag.as_str() {
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
        "shell" | "ticks" | "touch" | "touch-escalated" => {
            let printed = format!("The command printed: {}", command_output(&prompt.last_output));
            let (command, after) = match prompt.tag.as_str() {
                "shell" => ("echo scripted-shell-output", printed),
                "ticks" => (TICKS_COMMAND, printed),
                _ => ("touch codex-touched.txt", format!("Touch result: {}", first_chars(&prompt.last_output, 60))),
            };
            if prompt.tool_outputs == 0 {
                let (name, mut arguments) = match shell_tool(request) {
                    ShellTool::ExecCommand => ("exec_command", json!({"cmd": command})),
                    ShellTool::ShellCommand => ("shell_command", json!({"command": command})),
                    ShellTool::Shell => ("shell", json!({"command": ["bash", "-lc", command]})),
                    ShellTool::Bash => ("bash", json!({"command": command, "description": "Run the scripted command"})),
                };
                if prompt.tag == "touch-escalated" {
                    arguments["sandbox_permissions"] = json!("require_escalated");
                    arguments["justification"] = json!("Create the file the user asked for?");
                }
                sse.function_call(name, &arguments.to_string());
            } else {
                sse.text(&pieces(&after));
            }
            sse.completed();
        }
        "agent" => {
            match prompt.tool_outputs {
                0 => {
                    let arguments = json!({"task_name": "check_shell", "message": SUBAGENT_TASK, "fork_turns": "none"});
                    sse.namespaced_function_call(Some("collaboration"), "spawn_agent", &arguments.to_string());
                }
                1 => {
                    let arguments = json!({"timeout_ms": 30000});
                    sse.namespaced_function_call(Some("collaboration"), "wait_agent", &arguments.to_string());
                }
                _ => sse.text(&pieces(&format!("Subagent said: {}", first_chars(&prompt.last_output, 80)))),
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
            match mcp_script(prompt.open, tag, &prompt.text, &prompt.echo()) {
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
    shared.sse_response(sse.frames, request_id)
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
    let flat = format!("{server}-");
    if tool_names(request).iter().any(|(kind, name)| kind == "function" && name.starts_with(&flat)) {
        return flat_mcp_step(request, prompt, script);
    }
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

/// The next step of an MCP script where the request offers the server's
/// tools as plain functions `SERVER-TOOL` (Copilot): the function is called
/// directly; the script's results are the outputs of the calls of
/// `SERVER-*` functions after the prompt.
fn flat_mcp_step(request: &Value, prompt: &Prompt, script: &McpScript) -> McpStep {
    let server = script.server.as_str();
    let function = |tool: &str| format!("{server}-{tool}");
    let names = tool_names(request);
    let available = |tool: &str| names.iter().any(|(kind, name)| kind == "function" && *name == function(tool));
    let results = prompt
        .following
        .iter()
        .filter(|i| i["type"] == "function_call" && i["name"].as_str().is_some_and(|n| n.starts_with(&function(""))))
        .filter_map(|call| {
            let output = prompt
                .following
                .iter()
                .find(|o| o["type"] == "function_call_output" && o["call_id"] == call["call_id"])?;
            Some(content_text(output.get("output")))
        })
        .collect();
    match script.next(&McpProgress { results, available: &available, searched: &|_| true }) {
        McpNext::Call(call) => McpStep::Call { namespace: None, name: function(&call.tool), arguments: call.arguments },
        McpNext::Search(tools) => McpStep::Text(format!("No function {}", function(tools.first().map_or("", |t| t)))),
        McpNext::Missing(tool) => McpStep::Text(format!("No function {}", function(&tool))),
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
    /// The first `[codex:TAG]` (or `[copilot:TAG]`) tag of the prompt, lowercase; `text` when none.
    tag: String,
    /// How its tag opens (`[codex:` when it has none).
    open: &'static str,
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
        crate::scripted::echo(self.open, &self.text)
    }
}

/// How a tag opens: `[codex:TAG]`, `[copilot:TAG]` for the Copilot CLI, or
/// `[codex-acp:TAG]` for the same Codex run by its ACP adapter.
const TAG_OPENS: [&str; 3] = ["[codex:", "[copilot:", "[codex-acp:"];

/// Whether a user message is one Codex writes itself: its environment
/// context, AGENTS.md instructions, turn-aborted markers, ... (a text that is
/// one `<tag>...</tag>` element, or the AGENTS.md header).
fn injected(text: &str) -> bool {
    let text = text.trim();
    (text.starts_with('<') && text.ends_with('>')) || text.starts_with("# AGENTS.md instructions")
}

/// A user message without the `<tag>...</tag>` elements an agent puts
/// before or after the user's text in the same message (Copilot's
/// `<current_datetime>`, `<reminder>`, ...).
fn without_context(text: &str) -> String {
    let mut rest = text.trim();
    loop {
        let element = |s: &str| -> Option<usize> {
            let name = s.strip_prefix('<')?.split('>').next()?;
            let simple = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            let close = format!("</{name}>");
            simple.then(|| s.find(&close).map(|at| at + close.len()))?
        };
        if let Some(end) = element(rest) {
            rest = rest[end..].trim_start();
            continue;
        }
        // One at the end: the last `<name>` whose `</name>` closes the text.
        let trailing = rest.strip_suffix('>').and_then(|r| {
            let open = r.rfind("</")?;
            let name = &r[open + 2..];
            let start = rest[..open].rfind(&format!("<{name}>"))?;
            Some(start)
        });
        match trailing {
            Some(start) if start > 0 => rest = rest[..start].trim_end(),
            _ => return rest.to_owned(),
        }
    }
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
    let mut prompt = Prompt { tag: "text".into(), open: TAG_OPENS[0], ..Prompt::default() };
    for item in &input {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" if item.get("role").and_then(Value::as_str) == Some("user") => {
                let text = without_context(&content_text(item.get("content")));
                let text = text.trim();
                if text.is_empty() || injected(text) {
                    continue;
                }
                let (open, tag) = first_tag(&TAG_OPENS, text).unwrap_or((TAG_OPENS[0], "text".into()));
                prompt = Prompt { text: text.to_owned(), tag, open, ..Prompt::default() };
                continue;
            }
            // A task a parent agent sent to this (sub)agent: its prompt. (A subagent's report
            // to its parent, addressed to `/root`, is not.)
            "agent_message" if item.get("recipient").and_then(Value::as_str).is_some_and(|r| r != "/root") => {
                let parts = item.get("content").and_then(Value::as_array).cloned().unwrap_or_default();
                let text: String = parts
                    .iter()
                    .filter_map(|p| p.get("text").or_else(|| p.get("encrypted_content")).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n");
                let (open, tag) = first_tag(&TAG_OPENS, &text).unwrap_or((TAG_OPENS[0], "text".into()));
                prompt = Prompt { text: text.trim().to_owned(), tag, open, ..Prompt::default() };
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

#[cfg(test)]
mod tests;
