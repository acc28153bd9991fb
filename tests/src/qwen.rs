//! The real Qwen Code CLI over ACP against a scripted model: only the model is fake.
//!
//! - [`qwen_bin`]: the pinned CLI ([`QWEN_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_QWEN_PATH`); it speaks ACP
//!   with `qwen --acp`;
//! - [`ScriptedQwen`]: an OpenAI Chat Completions server on 127.0.0.1 (the
//!   encoding of [`crate::opencode`]'s model) whose replies are chosen by a
//!   `[qwen:TAG]` tag in the latest user message;
//! - [`qwen_env`]: `~/.qwen/settings.json` ([`qwen_settings`]) and the
//!   environment that run the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest `role:"user"` message of `messages` picks the script by its first
//! `[qwen:TAG]` tag, and the number of `role:"tool"` messages after it picks
//! the step of the script.
//!
//! | tag | first call | after the tool message |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `shell` | `run_shell_command` `echo scripted-shell-output` (read-only: runs without asking) | text `The command printed: <output>` |
//! | `touch` | `run_shell_command` `touch qwen-touched.txt` (asks permission) | text `Touch result: <tool message, 60 chars>` |
//! | `write` | `write_file` `<cwd>/qwen-written.txt` (`written by qwen\n`) | text `Write result: <tool message, 60 chars>` |
//! | `slow` | text in 100 deltas `tick N `, 100 ms apart (~10 s) | |
//! | `mcp:SERVER:TOOL` | see below (`echo` gets `{"text": <prompt>}`, `add` `{"a":2,"b":3}`) | text `MCP said: <result>` |
//! | `mcp-seq:SERVER` | the steps after the tag, `TOOL {json} ;; TOOL {json} ...`, in order; `"$NAME"` is the field NAME of the previous result | after the last, text `MCP said: <result, 4000 chars>` |
//! | `400` / `500` | HTTP 400 / 500 with OpenAI's error JSON | |
//!
//! MCP tools are deferred in Qwen Code 0.24.4: named `mcp__SERVER__TOOL`,
//! not declared in `tools`, reached through `tool_search` (`select:NAME`)
//! and called through `tool_call {"name", "arguments"}`. Qwen connects the
//! session's MCP servers in the background after `session/new`, so a tool
//! may not exist yet on the first turn. An MCP step therefore searches for
//! the tool first; when the search (after the prompt) returned its schema,
//! it calls the tool; when the search found nothing, it answers the text
//! `No tool mcp__SERVER__TOOL yet` ([`NOT_YET`]), and the test sends the
//! turn again. A tool declared directly in `tools` is called directly.
//!
//! Qwen Code puts `<system-reminder>` parts before the prompt in its first
//! user message (skills, the working directory, the deferred tools): the
//! prompt is the text of the parts that are not reminders, from the line of
//! its last `[qwen:` tag on (after a failed turn Qwen sends that turn's
//! prompt and the next one in one user message); `write` takes
//! its directory from the reminder's `I'm currently working in the
//! directory: /abs/path`. A tool's result is a `role:"tool"` message whose
//! content is an array of text parts (a shell's starts `Command: …` and
//! holds `Output: …`).
//!
//! Requests that are not streamed (Qwen's side requests, such as its
//! auto-mode classifier) get the text `Scripted side reply.`. `GET
//! /v1/models` gets a one-model list; any other path `200 {}`; `CONNECT`
//! (the CLI using the proxy trap of [`qwen_env`]) `403`. Everything is recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::opencode::chunks::Chunks;
use crate::opencode::latest_chat_prompt;
use crate::scripted::{self, content_text, find_tag, first_chars, mcp_script, pieces, Dialect, InjectedError, McpNext};
use crate::scripted::{McpProgress, McpScript, Recorder, ScriptedServer};

/// The Qwen Code version the tests run (`scripts/install-agents` installs it).
pub const QWEN_VERSION: &str = "0.24.4";

/// The model [`qwen_env`] configures (`OPENAI_MODEL`, `model.name`).
pub const QWEN_MODEL: &str = "mock-model";

/// The command of `[qwen:shell]`.
pub const SHELL_COMMAND: &str = "echo scripted-shell-output";

/// The file `[qwen:touch]` creates (in the working directory).
pub const TOUCHED_FILE: &str = "qwen-touched.txt";

/// The file `[qwen:write]` writes (in the working directory).
pub const WRITTEN_FILE: &str = "qwen-written.txt";

/// The content of `[qwen:write]`.
pub const WRITTEN_CONTENT: &str = "written by qwen\n";

/// How the text of an MCP step whose tool Qwen does not have yet starts.
pub const NOT_YET: &str = "No tool ";

const TAG_OPEN: &str = "[qwen:";

/// The Qwen Code CLI: `$TETHER_QWEN_PATH` if set, else the pinned install
/// `<agents_dir>/qwen-<QWEN_VERSION>/node_modules/.bin/qwen`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn qwen_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Qwen Code", "qwen", QWEN_VERSION, "TETHER_QWEN_PATH")
}

/// `~/.qwen/settings.json` for offline runs: no usage statistics (they look
/// up an Aliyun host), no telemetry, no update check, no IDE, no folder
/// trust, no background memory agent or follow-up suggestions (each makes
/// model requests of its own), the OpenAI auth type and a fixed model.
/// Qwen's approval mode is left at its own default, `auto` (a model
/// classifier judges each mutating call, in a request that is not
/// streamed): tether asks for the mode `default` when it opens a session
/// in its default permission mode, so no classifier request is made.
pub fn qwen_settings() -> Value {
    json!({
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"enableAutoUpdate": false},
        "ide": {"enabled": false},
        "memory": {"enableManagedAutoMemory": false, "enableManagedAutoDream": false},
        "security": {"auth": {"selectedType": "openai"}, "folderTrust": {"enabled": false}},
        "model": {"name": QWEN_MODEL},
        "ui": {"enableFollowupSuggestions": false},
    })
}

/// The environment a tether server (and so the Qwen Code CLI it spawns)
/// needs to run Qwen offline against `model`, with `home` as `$HOME`, where
/// it writes `.qwen/settings.json` ([`qwen_settings`]; Qwen keeps its
/// sessions under `.qwen` too: reuse `home` across a restart, never across
/// tests), and `<home>/tmp` as `$TMPDIR` (Qwen leaves `qwen-socks-*` dirs
/// there). The model is reached through `OPENAI_BASE_URL`, `OPENAI_API_KEY`
/// and `OPENAI_MODEL`.
///
/// # Panics
/// When the settings or the temp dir cannot be written.
pub fn qwen_env(model: &ScriptedQwen, home: &Path) -> Vec<(String, String)> {
    let config = home.join(".qwen");
    std::fs::create_dir_all(&config).expect("create ~/.qwen");
    std::fs::write(config.join("settings.json"), format!("{:#}\n", qwen_settings()))
        .expect("write ~/.qwen/settings.json");
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create Qwen's TMPDIR");
    let pairs = [
        ("HOME", home.display().to_string()),
        ("TMPDIR", tmp.display().to_string()),
        ("QWEN_CODE_NO_RELAUNCH", "true".to_owned()),
        ("OPENAI_BASE_URL", format!("{}/v1", model.url())),
        ("OPENAI_API_KEY", "scripted-key".to_owned()),
        ("OPENAI_MODEL", QWEN_MODEL.to_owned()),
        ("NO_COLOR", "1".to_owned()),
        ("TETHER_QWEN_PATH", qwen_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// What `[qwen:400]` and `[qwen:500]` answer. Qwen retries a 500 for about
/// 100 s; a 400 fails the turn at once.
const ERRORS: &[InjectedError] = &[
    InjectedError {
        tag: "400",
        status: 400,
        kind: "invalid_request_error",
        code: "invalid_request",
        message: "scripted bad request",
    },
    InjectedError {
        tag: "500",
        status: 500,
        kind: "server_error",
        code: "server_error",
        message: "scripted upstream failure",
    },
];

/// A scripted OpenAI Chat Completions API for Qwen Code on
/// `127.0.0.1:<OS-chosen port>`; see the module docs for the tags. Stops when dropped.
pub struct ScriptedQwen(ScriptedServer);

crate::scripted_model!(ScriptedQwen);

impl ScriptedQwen {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "qwen",
                model_path: |path| path == "/v1/chat/completions",
                request_id_header: "x-request-id",
                error_body: scripted::openai_error,
                errors: ERRORS,
                sse_content_type: "text/event-stream",
                reply: qwen_reply,
                other: |method, path, _| scripted::openai_other(QWEN_MODEL, method, path),
            })
            .await,
        )
    }
}

/// The text of a user message without Qwen's `<system-reminder>` parts.
fn prompt_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .filter(|t| !t.trim_start().starts_with("<system-reminder>"))
            .collect::<Vec<_>>()
            .join("\n"),
        other => content_text(other),
    }
}

/// The latest prompt in a user message's text: from the line of its last
/// `[qwen:` tag on (the whole text when it has none). Qwen keeps the prompt
/// of a turn that failed in its history and sends the next prompt in the same
/// user message, after it.
fn latest_segment(text: &str) -> String {
    let start = text.rfind(TAG_OPEN).map_or(0, |at| text[..at].rfind('\n').map_or(0, |i| i + 1));
    text[start..].trim().to_owned()
}

/// The messages after the latest user message.
fn after_prompt(request: &Value) -> &[Value] {
    let messages = request.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let last_user = messages.iter().rposition(|m| m.get("role").and_then(Value::as_str) == Some("user"));
    last_user.map_or(&[], |i| &messages[i + 1..])
}

/// The tool calls after the prompt, each with its result: (name, arguments, result text).
fn calls_after_prompt(request: &Value) -> Vec<(String, Value, String)> {
    let after = after_prompt(request);
    let result_of = |id: &str| {
        after
            .iter()
            .find(|m| {
                m.get("role").and_then(Value::as_str) == Some("tool")
                    && m.get("tool_call_id").and_then(Value::as_str) == Some(id)
            })
            .map(|m| content_text(m.get("content")))
    };
    after
        .iter()
        .filter_map(|m| m.get("tool_calls").and_then(Value::as_array))
        .flatten()
        .filter_map(|call| {
            let id = call.get("id").and_then(Value::as_str)?;
            let name = call.pointer("/function/name").and_then(Value::as_str)?.to_owned();
            let raw = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
            let arguments = serde_json::from_str(raw).unwrap_or(Value::Null);
            Some((name, arguments, result_of(id)?))
        })
        .collect()
}

/// The directory Qwen says it works in (`I'm currently working in the directory: /abs`).
pub fn working_directory(request: &Value) -> Option<PathBuf> {
    const KEY: &str = "I'm currently working in the directory:";
    let messages = request.get("messages").and_then(Value::as_array)?;
    messages.iter().filter(|m| m.get("role").and_then(Value::as_str) == Some("user")).find_map(|m| {
        let text = content_text(m.get("content"));
        let line = text.lines().find_map(|l| l.split_once(KEY).map(|(_, rest)| rest.trim().to_owned()))?;
        line.starts_with('/').then(|| PathBuf::from(line))
    })
}

/// The command output in a shell result (`Output: …` up to the next field).
fn command_output(result: &str) -> String {
    match result.split_once("Output: ") {
        Some((_, rest)) => rest.split("\nError:").next().unwrap_or(rest).trim().to_owned(),
        None => result.trim().to_owned(),
    }
}

fn qwen_reply(shared: &Recorder, _path: &str, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or(QWEN_MODEL).to_owned();
    let prompt_tokens = (request.to_string().len() / 4).max(1);
    let include_usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let mut prompt = latest_chat_prompt(&[TAG_OPEN], request);
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    if let Some(user) = messages.iter().rfind(|m| m.get("role").and_then(Value::as_str) == Some("user")) {
        prompt.text = latest_segment(&prompt_text(user));
        prompt.tag = find_tag(TAG_OPEN, &prompt.text).map_or_else(|| "text".to_owned(), |(_, _, tag)| tag);
    }
    let mut sse = Chunks::new(shared, &model, prompt_tokens);
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return shared.json_response(StatusCode::OK, request_id, &sse.completion("Scripted side reply."));
    }
    let step = prompt.tool_messages;
    let last = prompt.last_tool.clone();
    let say = |sse: &mut Chunks, text: &str| {
        sse.text(&pieces(text), Duration::ZERO);
        sse.finish("stop");
    };
    let call = |sse: &mut Chunks, name: &str, args: Value| {
        sse.tool_call(name, &args.to_string());
        sse.finish("tool_calls");
    };
    match prompt.tag.as_str() {
        "slow" => {
            let ticks: Vec<String> = (1..=100).map(|n| format!("tick {n} ")).collect();
            sse.text(&ticks, Duration::from_millis(100));
            sse.finish("stop");
        }
        "shell" if step == 0 => {
            call(&mut sse, "run_shell_command", json!({"command": SHELL_COMMAND, "description": "Print a line"}))
        }
        "shell" => say(&mut sse, &format!("The command printed: {}", command_output(&last))),
        "touch" if step == 0 => call(
            &mut sse,
            "run_shell_command",
            json!({"command": format!("touch {TOUCHED_FILE}"), "description": "Create an empty file"}),
        ),
        "touch" => say(&mut sse, &format!("Touch result: {}", first_chars(last.trim(), 60))),
        "write" if step == 0 => {
            let path = working_directory(request).map_or_else(|| PathBuf::from(WRITTEN_FILE), |d| d.join(WRITTEN_FILE));
            call(&mut sse, "write_file", json!({"file_path": path.display().to_string(), "content": WRITTEN_CONTENT}))
        }
        "write" => say(&mut sse, &format!("Write result: {}", first_chars(last.trim(), 60))),
        tag if tag.starts_with("mcp:") || tag.starts_with("mcp-seq:") => {
            let step = match mcp_script(TAG_OPEN, tag, &prompt.text, &prompt.echo()) {
                Some(Ok(script)) => mcp_step(request, &script),
                Some(Err(e)) => Step::Text(e),
                None => Step::Text(format!("Malformed tag {tag}")),
            };
            match step {
                Step::Call(name, args) => call(&mut sse, &name, args),
                Step::Text(text) => say(&mut sse, &text),
            }
        }
        _ => say(&mut sse, &format!("Scripted reply: {}", prompt.echo())),
    }
    sse.into_response(shared, request_id, include_usage)
}

/// What the scripted model does next in an MCP script.
#[derive(Debug, PartialEq)]
enum Step {
    /// Call this tool with these arguments.
    Call(String, Value),
    Text(String),
}

/// The names of the tools a request declares.
fn declared_tools(request: &Value) -> Vec<String> {
    let tools = request.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    tools.iter().filter_map(|t| t.pointer("/function/name").and_then(Value::as_str)).map(str::to_owned).collect()
}

/// The next step of an MCP script for Qwen: `mcp__SERVER__TOOL`, called
/// directly when `tools` declares it, else through `tool_call` once a
/// `tool_search` after the prompt returned its schema; searched for with
/// `select:` first; [`NOT_YET`] when the search did not find it.
fn mcp_step(request: &Value, script: &McpScript) -> Step {
    let prefix = format!("mcp__{}__", script.server);
    let name_of = |tool: &str| format!("{prefix}{tool}");
    let declared = declared_tools(request);
    let calls = calls_after_prompt(request);
    let searches: Vec<(String, String)> = calls
        .iter()
        .filter(|(name, _, _)| name == "tool_search")
        .map(|(_, args, result)| (args["query"].as_str().unwrap_or("").to_owned(), result.clone()))
        .collect();
    // A search returns `<functions>` with each schema found, `Not found: …` for the others.
    let found = |name: &str| {
        searches.iter().any(|(_, result)| {
            let schemas = result.split("Not found:").next().unwrap_or("");
            schemas.contains("<functions>") && schemas.contains(&format!("\"{name}\""))
        })
    };
    let available = |tool: &str| declared.contains(&name_of(tool)) || found(&name_of(tool));
    let searched = |tool: &str| searches.iter().any(|(query, _)| query.contains(&name_of(tool)));
    let ours = |name: &str| name.starts_with(&prefix);
    let results = calls
        .iter()
        .filter(|(name, args, _)| ours(name) || (name == "tool_call" && args["name"].as_str().is_some_and(ours)))
        .map(|(_, _, result)| result.clone())
        .collect();
    match script.next(&McpProgress { results, available: &available, searched: &searched }) {
        McpNext::Call(call) => {
            let name = name_of(&call.tool);
            if declared.contains(&name) {
                Step::Call(name, call.arguments)
            } else {
                Step::Call("tool_call".into(), json!({"name": name, "arguments": call.arguments}))
            }
        }
        McpNext::Search(tools) => {
            let names: Vec<String> = tools.iter().map(|t| name_of(t)).collect();
            let max = names.len().max(1);
            Step::Call(
                "tool_search".into(),
                json!({"query": format!("select:{}", names.join(",")), "max_results": max}),
            )
        }
        McpNext::Missing(tool) => Step::Text(format!("{NOT_YET}{} yet", name_of(&tool))),
        McpNext::Text(text) => Step::Text(text),
    }
}

#[cfg(test)]
mod tests;
