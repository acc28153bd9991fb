//! The real Gemini CLI against a scripted model: only the model is fake.
//!
//! - [`gemini_bin`]: the pinned CLI ([`GEMINI_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_GEMINI_PATH`); it speaks ACP
//!   with `gemini --acp`;
//! - [`ScriptedGemini`]: a Gemini API (Generative Language, `v1beta`) server
//!   on 127.0.0.1 whose replies are chosen by a `[gemini:TAG]` tag in the
//!   latest user prompt;
//! - [`gemini_env`]: the `~/.gemini/settings.json` ([`gemini_settings`]) and
//!   the environment that run the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest user *prompt* of the request's `contents` (the last `role:"user"`
//! content without `functionResponse` parts that has a text of its own: every
//! text part but the `<session_context>` block Gemini CLI puts first) picks
//! the script by its first `[gemini:TAG]` tag, and the number of
//! `functionResponse` parts after that prompt picks the step of the script.
//!
//! | tag | first call | after the function response |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `reasoning` | `thought: true` parts, then text | |
//! | `shell` | `run_shell_command` `echo scripted-shell-output` (read-only: runs without asking) | text `The command printed: <output>` |
//! | `touch` | `run_shell_command` `touch gemini-touched.txt` (asks permission) | text `Touch result: <output, 60 chars>` (`(empty)`, or the error of a rejected call) |
//! | `write` | `write_file` `<workspace>/gemini-written.txt` (`written by gemini\n`) | text `Write result: <response, 60 chars>` |
//! | `slow` | text in 100 chunks `tick N `, 100 ms apart (~10 s) | |
//! | `mcp:SERVER:TOOL` | `mcp_SERVER_TOOL` as the request declares it (`echo` gets `{"text": <prompt>}`, `add` `{"a":2,"b":3}`); text `No tool mcp_SERVER_TOOL among: …` when it is not declared | text `MCP said: <response>` |
//! | `mcp-seq:SERVER` | the steps after the tag, `TOOL {json} ;; TOOL {json} ...`, called in order as `mcp_SERVER_TOOL`; a string `"$NAME"` in a step's arguments is the field NAME of the previous response (JSON) | after each response the next step; after the last, text `MCP said: <response, 4000 chars>` |
//! | `badstream` | text without a `finishReason` (the CLI retries once, then ends the turn) | |
//! | `400` / `429` / `500` | HTTP 400 / 429 / 500 with Google's error JSON (`scripted failure`) | |
//!
//! Every other stream ends with `finishReason: "STOP"` and `usageMetadata`
//! on its last chunk: Gemini CLI 0.61.0 retries a stream without a finish
//! reason, or without text or a function call (`InvalidStreamError`).
//!
//! `<response>` is the `output` (else `error`) of the `functionResponse`,
//! without the `<untrusted_context>` wrapper Gemini CLI puts around tool
//! output; `<output>` of `shell` and `touch` is the command's output in it
//! (after `Output: `, before `Process Group PGID: ...` and the other
//! fields), else the whole response (an error).
//! `<workspace>` is the first of the "Workspace Directories" of the
//! `<session_context>` block ([`working_directory`]); without one the path is
//! relative.
//!
//! Notes on Gemini CLI 0.61.0 over ACP: a read-only command (`echo`) runs
//! without a permission request, a mutating one (`touch`) asks with no
//! `tool_call` before the request; the shell's output never reaches the
//! client (only the model). `write_file` in the workspace goes through the
//! client's `fs/read_text_file` and `fs/write_text_file` when the client
//! announces them, and fails unless a missing file is read as `""`.
//! Injected errors end the prompt with a JSON-RPC error whose `code` is the
//! HTTP status (a 429 or 500 after the second attempt, a few seconds later).
//!
//! `:generateContent` (not streamed: Gemini CLI's side requests, like the
//! model router when `model.name` is unset) gets one JSON response: for a
//! JSON-mode request, a value built from its `responseJsonSchema` (or
//! `responseSchema`): enums their first value, integers and numbers 1,
//! strings `scripted`; else the text `Scripted side reply.`. `:countTokens`
//! gets `{"totalTokens": 10}`, `GET /v1beta/models` a one-model list, any
//! other path `200 {}`, `CONNECT` (the CLI using the proxy trap of
//! [`gemini_env`]) `403`. Everything is recorded; [`ScriptedServer::requests`]
//! holds the bodies of `:streamGenerateContent` and `:generateContent`.

use crate::scripted::{find_tag, first_chars, mcp_script, pieces, McpNext, McpProgress, McpScript};

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::scripted::{Dialect, Frames, InjectedError, Recorder, ScriptedServer};

mod sse;
use sse::Sse;

/// The Gemini CLI version the tests run (`scripts/install-agents` installs it).
pub const GEMINI_VERSION: &str = "0.61.0";

/// The model [`gemini_settings`] configures (`model.name`): with a model set,
/// Gemini CLI makes no router request before each turn.
pub const GEMINI_MODEL: &str = "gemini-2.5-flash";

/// The Gemini CLI: `$TETHER_GEMINI_PATH` if set, else the pinned install
/// `<agents_dir>/gemini-<GEMINI_VERSION>/node_modules/.bin/gemini`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn gemini_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Gemini", "gemini", GEMINI_VERSION, "TETHER_GEMINI_PATH")
}

/// `~/.gemini/settings.json` for offline runs: no usage statistics (they
/// look up `play.googleapis.com`), no telemetry, no update check, no IDE,
/// no folder-trust prompts, a fixed model ([`GEMINI_MODEL`]), no sandbox,
/// and 2 attempts per model call instead of 10 (a 5xx fails in seconds, not
/// minutes).
pub fn gemini_settings() -> Value {
    json!({
        "privacy": {"usageStatisticsEnabled": false},
        "telemetry": {"enabled": false},
        "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false, "maxAttempts": 2},
        "ide": {"enabled": false},
        "security": {"folderTrust": {"enabled": false}},
        "model": {"name": GEMINI_MODEL},
        "tools": {"sandbox": false},
    })
}

/// The environment a tether server (and so the Gemini CLI it spawns) needs to
/// run Gemini offline against `model`, with `home` as `$HOME`, where it writes
/// `.gemini/settings.json` ([`gemini_settings`]; chats are stored under
/// `.gemini` too: reuse `home` across a restart, never across tests), and
/// `<home>/tmp` as `$TMPDIR` (Gemini CLI writes its error reports there).
/// `GEMINI_CLI_NO_RELAUNCH` keeps the CLI one process (a relaunching parent
/// ignores SIGTERM).
///
/// # Panics
/// When the settings or the temp dir cannot be written.
pub fn gemini_env(model: &ScriptedGemini, home: &Path) -> Vec<(String, String)> {
    let config = home.join(".gemini");
    std::fs::create_dir_all(&config).expect("create ~/.gemini");
    std::fs::write(config.join("settings.json"), format!("{:#}\n", gemini_settings()))
        .expect("write ~/.gemini/settings.json");
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).expect("create the Gemini CLI's TMPDIR");
    let pairs = [
        ("HOME", home.display().to_string()),
        ("TMPDIR", tmp.display().to_string()),
        ("GEMINI_CLI_NO_RELAUNCH", "true".to_owned()),
        ("GOOGLE_GEMINI_BASE_URL", model.url()),
        ("GEMINI_API_KEY", "scripted-key".to_owned()),
        ("NO_COLOR", "1".to_owned()),
        ("TETHER_GEMINI_PATH", gemini_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// A scripted Gemini API on `127.0.0.1:<OS-chosen port>`; see the module
/// docs for the tags. Stops when dropped.
pub struct ScriptedGemini(ScriptedServer);

crate::scripted_model!(ScriptedGemini);

impl ScriptedGemini {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "Gemini",
                model_path: |path| {
                    model_method(path).is_some_and(|(_, m)| m == "streamGenerateContent" || m == "generateContent")
                },
                request_id_header: "x-request-id",
                error_body: error_json,
                errors: ERRORS,
                sse_content_type: "text/event-stream",
                reply: gemini_reply,
                other,
            })
            .await,
        )
    }
}

/// `(model, method)` of a model method's path, `/v1beta/models/MODEL:METHOD`
/// (any API version).
fn model_method(path: &str) -> Option<(&str, &str)> {
    let (_version, rest) = path.strip_prefix('/')?.split_once('/')?;
    let (model, method) = rest.strip_prefix("models/")?.rsplit_once(':')?;
    (!model.is_empty() && !model.contains('/')).then_some((model, method))
}

/// What `[gemini:400]`, `[gemini:429]` and `[gemini:500]` answer (`kind` is
/// Google's `status`, `code` the HTTP status).
const ERRORS: &[InjectedError] = &[
    InjectedError { tag: "400", status: 400, kind: "INVALID_ARGUMENT", code: "400", message: "scripted failure" },
    InjectedError { tag: "429", status: 429, kind: "RESOURCE_EXHAUSTED", code: "429", message: "scripted failure" },
    InjectedError { tag: "500", status: 500, kind: "INTERNAL", code: "500", message: "scripted failure" },
];

/// Google's error body, `{"error": {"code", "message", "status"}}`. The
/// scaffolding's own errors (a refused `CONNECT`, a body that is not JSON)
/// name OpenAI's kinds: they become `PERMISSION_DENIED` and `INVALID_ARGUMENT`.
fn error_json(kind: &str, code: &str, message: &str) -> Value {
    let (code, status) = match kind {
        "permission_error" => (403, "PERMISSION_DENIED"),
        "invalid_request_error" => (400, "INVALID_ARGUMENT"),
        status => (code.parse().unwrap_or(500), status),
    };
    json!({"error": {"code": code, "message": message, "status": status}})
}

/// A model of `GET /v1beta/models`.
fn model_info(model: &str) -> Value {
    json!({
        "name": format!("models/{model}"), "version": "001", "displayName": model,
        "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "thinking": true,
    })
}

/// Answers what is not a model request: the model list, one model, `countTokens`.
fn other(method: &Method, path: &str, _body: &Value) -> Value {
    let under_version = path.strip_prefix('/').and_then(|p| p.split_once('/')).map_or("", |(_, rest)| rest);
    let get = *method == Method::GET;
    if *method == Method::POST && model_method(path).is_some_and(|(_, m)| m == "countTokens") {
        json!({"totalTokens": 10})
    } else if get && under_version == "models" {
        json!({"models": [model_info(GEMINI_MODEL)]})
    } else if let Some(model) =
        under_version.strip_prefix("models/").filter(|m| get && !m.is_empty() && !m.contains([':', '/']))
    {
        model_info(model)
    } else {
        json!({})
    }
}

fn gemini_reply(shared: &Recorder, path: &str, request: &Value, request_id: &str) -> Response {
    let (model, method) = model_method(path).unwrap_or((GEMINI_MODEL, "streamGenerateContent"));
    let input_tokens = (request.to_string().len() / 4).max(1);
    let mut sse = Sse::new(&shared.next_id("resp"), model, input_tokens);
    if method != "streamGenerateContent" {
        let text = match response_schema(request) {
            Some(schema) => value_from_schema(schema).to_string(),
            None => "Scripted side reply.".to_owned(),
        };
        return shared.json_response(StatusCode::OK, request_id, &sse.single(json!([{"text": text}])));
    }
    let prompt = latest_prompt(request);
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    let frames = match prompt.tag.as_str() {
        "reasoning" => {
            sse.thought(&["Let me think ", "about this ", "scripted request."]);
            sse.text(&pieces(&format!("Thought about it: {}", prompt.echo())));
            sse.finish()
        }
        "slow" => {
            let ticks: Vec<String> = (1..=100).map(|n| format!("tick {n} ")).collect();
            sse.text_paced(&ticks, Duration::from_millis(100));
            sse.finish()
        }
        "badstream" => {
            sse.text(&pieces(&format!("Unfinished reply: {}", prompt.echo())));
            sse.unfinished()
        }
        "shell" | "touch" | "write" => {
            let last = prompt.last_response();
            let (name, args, after) = match prompt.tag.as_str() {
                "shell" => (
                    "run_shell_command",
                    json!({"command": "echo scripted-shell-output", "description": "Print a line"}),
                    format!("The command printed: {}", command_output(last)),
                ),
                "touch" => (
                    "run_shell_command",
                    json!({"command": "touch gemini-touched.txt", "description": "Create an empty file"}),
                    format!("Touch result: {}", first_chars(&command_output(last), 60)),
                ),
                _ => {
                    let file_path = match working_directory(request) {
                        Some(dir) => format!("{}/{WRITTEN_FILE}", dir.trim_end_matches('/')),
                        None => WRITTEN_FILE.to_owned(),
                    };
                    (
                        "write_file",
                        json!({"file_path": file_path, "content": "written by gemini\n"}),
                        format!("Write result: {}", first_chars(last, 60)),
                    )
                }
            };
            if prompt.responses.is_empty() {
                sse.function_call(name, &args);
            } else {
                sse.text(&pieces(&after));
            }
            sse.finish()
        }
        tag if tag.starts_with("mcp:") || tag.starts_with("mcp-seq:") => {
            let step = match mcp_script(TAG_OPEN, tag, &prompt.text, &prompt.echo()) {
                Some(Ok(script)) => mcp_step(request, &prompt, &script),
                Some(Err(e)) => Step::Text(e),
                None => Step::Text(format!("Malformed tag {tag}")),
            };
            match step {
                Step::Call(name, args) => sse.function_call(&name, &args),
                Step::Text(text) => sse.text(&pieces(&text)),
            }
            sse.finish()
        }
        _ => {
            sse.text(&pieces(&format!("Scripted reply: {}", prompt.echo())));
            sse.finish()
        }
    };
    shared.sse_response(frames, request_id)
}

/// The file `[gemini:write]` writes, in the workspace.
pub const WRITTEN_FILE: &str = "gemini-written.txt";

/// The schema of a JSON-mode request: `generationConfig.responseJsonSchema`
/// (what Gemini CLI sends), else `responseSchema`.
fn response_schema(request: &Value) -> Option<&Value> {
    let config = request.get("generationConfig")?;
    config.get("responseJsonSchema").or_else(|| config.get("responseSchema")).filter(|s| s.is_object())
}

/// A value that fits `schema` (JSON Schema, or the API's `Schema` with
/// upper-case types): an enum's first value, every property of an object,
/// one item of an array, 1 for integers and numbers, `false`, `"scripted"`.
pub fn value_from_schema(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
        return first.clone();
    }
    if let Some(first) = schema.get("anyOf").and_then(Value::as_array).and_then(|a| a.first()) {
        return value_from_schema(first);
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.to_ascii_lowercase(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| !k.eq_ignore_ascii_case("null"))
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => "string".to_owned(),
    };
    match kind.as_str() {
        "object" => {
            let properties = schema.get("properties").and_then(Value::as_object);
            Value::Object(properties.into_iter().flatten().map(|(k, v)| (k.clone(), value_from_schema(v))).collect())
        }
        "array" => match schema.get("items") {
            Some(items) => json!([value_from_schema(items)]),
            None => json!([]),
        },
        "integer" | "number" => json!(1),
        "boolean" => json!(false),
        "null" => Value::Null,
        _ => json!("scripted"),
    }
}

/// What the scripted model does next in an MCP script.
#[derive(Debug, PartialEq)]
enum Step {
    /// Call this function with these arguments.
    Call(String, Value),
    Text(String),
}

/// The names of the functions a request declares (`tools[].functionDeclarations[].name`).
fn declared_functions(request: &Value) -> Vec<String> {
    let tools = request.get("tools").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    tools
        .iter()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The next step of an MCP script: Gemini CLI declares each MCP tool as the
/// function `mcp_SERVER_TOOL` (no search step); the script's results are
/// the responses of the functions `mcp_SERVER_*` after the prompt. Names
/// are matched without case (tags are lower case).
fn mcp_step(request: &Value, prompt: &Prompt, script: &McpScript) -> Step {
    let prefix = format!("mcp_{}_", script.server);
    let declared = declared_functions(request);
    let name_of = |tool: &str| {
        let wanted = format!("{prefix}{tool}");
        declared.iter().find(|name| name.eq_ignore_ascii_case(&wanted)).cloned()
    };
    let ours = |name: &str| name.to_ascii_lowercase().starts_with(&prefix.to_ascii_lowercase());
    let results = prompt.responses.iter().filter(|r| ours(&r.name)).map(|r| r.text.clone()).collect();
    let available = |tool: &str| name_of(tool).is_some();
    // Gemini has no tool search: a tool not declared now never will be.
    let missing = match script.next(&McpProgress { results, available: &available, searched: &|_| true }) {
        McpNext::Call(call) => {
            let name = name_of(&call.tool).unwrap_or_else(|| format!("{prefix}{}", call.tool));
            return Step::Call(name, call.arguments);
        }
        McpNext::Text(text) => return Step::Text(text),
        McpNext::Missing(tool) => tool,
        McpNext::Search(tools) => tools.into_iter().next().unwrap_or_default(),
    };
    let offered: Vec<&str> = declared.iter().map(String::as_str).filter(|n| n.starts_with("mcp_")).collect();
    Step::Text(format!("No tool {prefix}{missing} among: {}", first_chars(&offered.join(", "), 200)))
}

/// A `functionResponse` part after the prompt.
#[derive(Debug, Default, PartialEq)]
struct FunctionResponse {
    name: String,
    /// Its `output` (else `error`, else the whole response as JSON), without
    /// the `<untrusted_context>` wrapper, trimmed.
    text: String,
}

/// The latest user prompt of a request and what follows it.
#[derive(Debug, Default, PartialEq)]
struct Prompt {
    /// The text parts of the prompt's content (not `<session_context>`), joined.
    text: String,
    /// The first `[gemini:TAG]` tag of the prompt, lowercase; `text` when none.
    tag: String,
    /// The `functionResponse` parts after the prompt, in order.
    responses: Vec<FunctionResponse>,
}

impl Prompt {
    /// Up to 40 characters of the prompt without its tag, trimmed.
    fn echo(&self) -> String {
        crate::scripted::echo(TAG_OPEN, &self.text)
    }

    /// The text of the last function response ("" when none).
    fn last_response(&self) -> &str {
        self.responses.last().map_or("", |r| r.text.as_str())
    }
}

const TAG_OPEN: &str = "[gemini:";

/// Whether a text part is one Gemini CLI writes itself: a text that is one
/// `<tag>...</tag>` element (its `<session_context>`).
fn injected(text: &str) -> bool {
    let text = text.trim();
    text.starts_with('<') && text.ends_with('>')
}

/// The parts of a content.
fn parts(content: &Value) -> &[Value] {
    content.get("parts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// `text` without a `<untrusted_context>` ... `</untrusted_context>` wrapper, trimmed.
fn unwrap_untrusted(text: &str) -> &str {
    let text = text.trim();
    match text.strip_prefix("<untrusted_context>") {
        Some(inner) => inner.strip_suffix("</untrusted_context>").unwrap_or(inner).trim(),
        None => text,
    }
}

/// The text of a `functionResponse`'s `response`: its `output`, else its
/// `error`, else the whole of it as JSON; unwrapped ([`unwrap_untrusted`]).
fn response_text(response: &Value) -> String {
    let text = match response.get("output").or_else(|| response.get("error")) {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => response.to_string(),
    };
    unwrap_untrusted(&text).to_owned()
}

/// Finds the latest user prompt of a `generateContent` request (the last
/// user content without `functionResponse` parts that has a text of its
/// own), and the function responses after it.
fn latest_prompt(request: &Value) -> Prompt {
    let contents = request.get("contents").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut prompt = Prompt { tag: "text".into(), ..Prompt::default() };
    for content in contents {
        if content.get("role").and_then(Value::as_str).is_some_and(|r| r != "user") {
            continue;
        }
        let responses: Vec<&Value> = parts(content).iter().filter_map(|p| p.get("functionResponse")).collect();
        if !responses.is_empty() {
            prompt.responses.extend(responses.into_iter().map(|r| FunctionResponse {
                name: r.get("name").and_then(Value::as_str).unwrap_or_default().to_owned(),
                text: response_text(r.get("response").unwrap_or(&Value::Null)),
            }));
            continue;
        }
        let texts: Vec<&str> = parts(content)
            .iter()
            .filter(|p| p.get("thought") != Some(&Value::Bool(true)))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .filter(|t| !t.trim().is_empty() && !injected(t))
            .collect();
        if texts.is_empty() {
            continue;
        }
        let text = texts.join("\n");
        let tag = find_tag(TAG_OPEN, &text).map(|(_, _, tag)| tag).unwrap_or_else(|| "text".into());
        prompt = Prompt { text, tag, responses: Vec::new() };
    }
    prompt
}

/// The workspace Gemini CLI runs in, as its `<session_context>` block tells
/// the model: the first path listed under `Workspace Directories:` (or
/// after `working in the directory:`, as older versions wrote it), from the
/// first user text that has one.
pub fn working_directory(request: &Value) -> Option<String> {
    let contents = request.get("contents").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let texts = contents.iter().flat_map(parts).filter_map(|p| p.get("text").and_then(Value::as_str));
    for text in texts {
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.contains("Workspace Directories:") {
                let path = lines.next().and_then(|l| l.trim().strip_prefix("- ")).map(str::trim);
                if let Some(path) = path.filter(|p| p.starts_with('/')) {
                    return Some(path.to_owned());
                }
            } else if let Some((_, path)) = line.split_once("working in the directory:") {
                if path.trim().starts_with('/') {
                    return Some(path.trim().to_owned());
                }
            }
        }
    }
    None
}

/// What a command printed, from a `run_shell_command` response (already
/// unwrapped): the text after `Output: ` up to the next field line
/// (`Error:`, `Exit Code:`, `Signal:`, `Background PIDs:`, `Process Group
/// PGID:`), else the whole response; trimmed.
fn command_output(response: &str) -> String {
    const FIELDS: [&str; 5] = ["Error:", "Exit Code:", "Signal:", "Background PIDs:", "Process Group PGID:"];
    let Some(at) = response.find("Output:") else {
        return response.trim().to_owned();
    };
    let body = &response[at + "Output:".len()..];
    let mut lines = Vec::new();
    for (i, line) in body.lines().enumerate() {
        if i > 0 && FIELDS.iter().any(|f| line.starts_with(f)) {
            break;
        }
        lines.push(line);
    }
    lines.join("\n").trim().to_owned()
}

#[cfg(test)]
mod tests;
