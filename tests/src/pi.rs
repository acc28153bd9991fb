//! The real Pi CLI against a scripted model: only the model is fake.
//!
//! - [`pi_bin`]: the pinned CLI ([`PI_VERSION`]) that `scripts/install-agents`
//!   installs from the npm registry (or `$TETHER_PI_PATH`);
//! - [`ScriptedPi`]: an OpenAI Chat Completions server on 127.0.0.1 (the
//!   encoding of [`crate::opencode`]'s model) whose replies are chosen by a
//!   `[pi:TAG]` tag in the latest user message;
//! - [`pi_env`]: Pi's `models.json` and `settings.json` and the environment
//!   that run the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest `role:"user"` message of `messages` picks the script by its first
//! `[pi:TAG]` tag, and the number of `role:"tool"` messages after it picks
//! the step of the script.
//!
//! | tag | first call | after the tool message |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `thinking` | `reasoning_content` deltas, then text `Thought about it: <prompt>` | |
//! | `bash` | tool call `bash {"command":"echo scripted-bash-output"}` | text `The command printed: <output>` |
//! | `write` | tool call `write {"path":"pi-written.txt","content":"written by pi\n"}` | text `Write result: <tool message, 60 chars>` |
//! | `edit` | tool call `edit {"path":"pi-written.txt","edits":[{"oldText":"written by pi","newText":"edited by pi"}]}` | text `Edit result: <tool message, 60 chars>` |
//! | `skill:NAME` | tool call `read {"path": <location>}` of the skill `NAME` as Pi lists it (`<available_skills>` in its system prompt); text `No skill NAME among the available skills` when it is not listed | text `Skill said: <result, 200 chars>` |
//! | `slow` | text in 100 deltas `tick N `, 100 ms apart (~10 s) | |
//! | `401` / `500` | HTTP 401 / 500 with OpenAI's error JSON | |
//!
//! Pi 0.73.1 sends its system prompt as a `role:"developer"` message, the
//! user's text as content parts, a tool's result as a `role:"tool"` message
//! (its text as a string), and asks for usage (`stream_options.include_usage`);
//! its built-in tools take paths relative to its working directory.
//!
//! `GET /v1/models` gets a one-model list; any other path `200 {}`; `CONNECT`
//! (the CLI using the proxy trap of [`pi_env`]) `403`. Everything is recorded.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::response::Response;
use serde_json::{json, Value};

use crate::opencode::chunks::Chunks;
use crate::opencode::latest_chat_prompt;
use crate::scripted::{self, first_chars, pieces, Dialect, Recorder, ScriptedServer};

/// The Pi version the tests run (`scripts/install-agents` installs it).
pub const PI_VERSION: &str = "0.73.1";

/// The provider [`pi_env`] configures.
pub const PI_PROVIDER: &str = "mock";

/// The model [`pi_env`] configures (`mock/mock-model`).
pub const PI_MODEL: &str = "mock-model";

/// The command of `[pi:bash]`.
pub const BASH_COMMAND: &str = "echo scripted-bash-output";

/// The file `[pi:write]` writes and `[pi:edit]` edits (in the working directory).
pub const WRITTEN_FILE: &str = "pi-written.txt";

/// The content of `[pi:write]`.
pub const WRITTEN_CONTENT: &str = "written by pi\n";

/// The content after `[pi:edit]`.
pub const EDITED_CONTENT: &str = "edited by pi\n";

const TAG_OPEN: &str = "[pi:";

/// The Pi CLI: `$TETHER_PI_PATH` if set, else the pinned install
/// `<agents_dir>/pi-<PI_VERSION>/node_modules/.bin/pi`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn pi_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Pi", "pi", PI_VERSION, "TETHER_PI_PATH")
}

/// Pi's `models.json` for `model`: the scripted server as the provider
/// `mock` (Chat Completions), its one model able to think (so Pi reads
/// `reasoning_content`).
pub fn pi_models(model: &ScriptedPi) -> Value {
    json!({"providers": {PI_PROVIDER: {
        "baseUrl": format!("{}/v1", model.url()),
        "api": "openai-completions",
        "apiKey": "scripted",
        "models": [{"id": PI_MODEL, "reasoning": true}],
    }}})
}

/// The environment a tether server (and so the Pi CLI it spawns) needs to
/// run Pi offline against `model`, with `home` as `$HOME`: Pi's config dir
/// `<home>/pi-agent` (`$PI_CODING_AGENT_DIR`) holding [`pi_models`] and a
/// `settings.json` that makes `mock/mock-model` the default (for sessions
/// with no `model`); `PI_OFFLINE=1` (no update checks, no telemetry).
/// Sessions are stored in `<home>/pi-agent/sessions`: reuse `home` across a
/// restart, never across tests.
///
/// # Panics
/// When the files cannot be written.
pub fn pi_env(model: &ScriptedPi, home: &Path) -> Vec<(String, String)> {
    let dir = home.join("pi-agent");
    std::fs::create_dir_all(&dir).expect("create the Pi config dir");
    std::fs::write(dir.join("models.json"), format!("{:#}\n", pi_models(model))).expect("write models.json");
    let settings = json!({"defaultProvider": PI_PROVIDER, "defaultModel": PI_MODEL, "quietStartup": true});
    std::fs::write(dir.join("settings.json"), format!("{settings:#}\n")).expect("write settings.json");
    let pairs: Vec<(&str, String)> = vec![
        ("PI_CODING_AGENT_DIR", dir.display().to_string()),
        ("PI_OFFLINE", "1".to_owned()),
        ("HOME", home.display().to_string()),
        ("NO_COLOR", "1".to_owned()),
        ("TETHER_PI_PATH", pi_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// A scripted OpenAI Chat Completions API for Pi on `127.0.0.1:<OS-chosen
/// port>`; see the module docs for the tags. Stops when dropped.
pub struct ScriptedPi(ScriptedServer);

crate::scripted_model!(ScriptedPi);

impl ScriptedPi {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "pi",
                model_path: |path| path == "/v1/chat/completions",
                request_id_header: "x-request-id",
                error_body: scripted::openai_error,
                errors: scripted::OPENAI_ERRORS,
                sse_content_type: "text/event-stream",
                reply: pi_reply,
                other: |method, path, _| scripted::openai_other(PI_MODEL, method, path),
            })
            .await,
        )
    }
}

fn pi_reply(shared: &Recorder, _path: &str, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or(PI_MODEL).to_owned();
    let prompt_tokens = (request.to_string().len() / 4).max(1);
    let include_usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let prompt = latest_chat_prompt(&[TAG_OPEN], request);
    let mut sse = Chunks::new(shared, &model, prompt_tokens);
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    let step = prompt.tool_messages;
    let after_tool = |label: &str| format!("{label}: {}", first_chars(prompt.last_tool.trim(), 60));
    match prompt.tag.as_str() {
        "thinking" => {
            sse.reasoning(&["Let me think ", "about this ", "scripted request."]);
            sse.text(&pieces(&format!("Thought about it: {}", prompt.echo())), Duration::ZERO);
            sse.finish("stop");
        }
        "slow" => {
            let ticks: Vec<String> = (1..=100).map(|n| format!("tick {n} ")).collect();
            sse.text(&ticks, Duration::from_millis(100));
            sse.finish("stop");
        }
        "bash" if step == 0 => {
            sse.tool_call("bash", &json!({"command": BASH_COMMAND}).to_string());
            sse.finish("tool_calls");
        }
        "bash" => {
            sse.text(&pieces(&format!("The command printed: {}", prompt.last_tool.trim())), Duration::ZERO);
            sse.finish("stop");
        }
        "write" if step == 0 => {
            sse.tool_call("write", &json!({"path": WRITTEN_FILE, "content": WRITTEN_CONTENT}).to_string());
            sse.finish("tool_calls");
        }
        "edit" if step == 0 => {
            let edits = json!([{"oldText": WRITTEN_CONTENT.trim_end(), "newText": EDITED_CONTENT.trim_end()}]);
            sse.tool_call("edit", &json!({"path": WRITTEN_FILE, "edits": edits}).to_string());
            sse.finish("tool_calls");
        }
        "write" => {
            sse.text(&pieces(&after_tool("Write result")), Duration::ZERO);
            sse.finish("stop");
        }
        "edit" => {
            sse.text(&pieces(&after_tool("Edit result")), Duration::ZERO);
            sse.finish("stop");
        }
        tag if tag.starts_with("skill:") => {
            let name = &tag["skill:".len()..];
            if step > 0 {
                let said = format!("Skill said: {}", first_chars(prompt.last_tool.trim(), 200));
                sse.text(&pieces(&said), Duration::ZERO);
                sse.finish("stop");
            } else if let Some(path) = skill_location(request, name) {
                sse.tool_call("read", &json!({"path": path}).to_string());
                sse.finish("tool_calls");
            } else {
                sse.text(&pieces(&format!("No skill {name} among the available skills")), Duration::ZERO);
                sse.finish("stop");
            }
        }
        _ => {
            sse.text(&pieces(&format!("Scripted reply: {}", prompt.echo())), Duration::ZERO);
            sse.finish("stop");
        }
    }
    sse.into_response(shared, request_id, include_usage)
}

/// Where Pi's system prompt says the skill `name` is: Pi 0.73.1
/// (`dist/core/skills.js`, `formatSkillsForPrompt`) lists each skill as
/// `<skill><name>N</name><description>D</description><location>PATH</location></skill>`
/// inside `<available_skills>` of its `role:"developer"` message.
pub fn skill_location(request: &Value, name: &str) -> Option<String> {
    let system = crate::opencode::system_text(request);
    let at = system.find(&format!("<name>{name}</name>"))?;
    let rest = &system[at..];
    let end = rest.find("</skill>").unwrap_or(rest.len());
    let entry = &rest[..end];
    let start = entry.find("<location>")? + "<location>".len();
    let stop = entry[start..].find("</location>")? + start;
    Some(entry[start..stop].to_owned())
}

#[cfg(test)]
mod tests;
