//! The real OpenCode CLI against a scripted model: only the model is fake.
//!
//! - [`opencode_bin`]: the pinned CLI ([`OPENCODE_VERSION`]) that
//!   `scripts/install-agents` installs from the npm registry (or
//!   `$TETHER_OPENCODE_PATH`);
//! - [`ScriptedChat`]: an OpenAI Chat Completions server on 127.0.0.1 whose
//!   replies are chosen by an `[opencode:TAG]` (or `[opencode-acp:TAG]`, the
//!   same CLI in its ACP mode) tag in the latest user message;
//! - [`opencode_env`]: the `opencode.json` config and the environment that run
//!   the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest `role:"user"` message of `messages` picks the script by its first
//! `[opencode:TAG]` or `[opencode-acp:TAG]` tag, and the number of
//! `role:"tool"` messages after it picks the step of the script.
//!
//! | tag | first call | after the tool message |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `reasoning` | `reasoning_content` deltas, then text | |
//! | `bash` | tool call `bash {"command":"echo scripted-bash-output"}` (plus a `description` when the tool's schema has one) | text `The command printed: <output>` |
//! | `write` | tool call `write {"filePath":"<cwd>/opencode-written.txt","content":"written by opencode\n"}` | text `Write result: <tool message, 60 chars>` |
//! | `write-to` | tool call `write` of the same content to the absolute path that is the rest of the message | text `Write result: <tool message, 60 chars>` |
//! | `question` | tool call `question` (one question `Which colour?`, Red / Blue) | text `Answer seen: <tool message, 80 chars>` |
//! | `mcp:SERVER:TOOL` | tool call `SERVER_TOOL` as OpenCode offers MCP tools (`echo` gets `{"text": <prompt>}`, `add` `{"a":2,"b":3}`); text `No tool SERVER_TOOL among: …` when it is not offered | text `MCP said: <result>` |
//! | `skill:NAME` | tool call `skill {"name": NAME}` | text `Skill said: <result, 200 chars>` |
//! | `slow` | text in 100 deltas `tick N `, 100 ms apart (~10 s) | |
//! | `401` / `500` | HTTP 401 / 500 with OpenAI's error JSON | |
//!
//! OpenCode 1.18.33 asks the model for a session title in a separate request
//! without `tools` (its system prompt starts "You are a title generator"):
//! such requests always get the text `Scripted title`, whatever the tag.
//!
//! The working directory for `write` comes from the system prompt: OpenCode
//! 1.18.33 puts `Working directory: /abs/path` in an `<env>` section of its
//! `role:"system"` message. [`working_directory`] takes the absolute path after
//! `working directory:` (any case) on a line of a system message; `/tmp` if
//! none has one.
//!
//! `GET /v1/models` gets a one-model list; any other path `200 {}`; `CONNECT`
//! (the CLI using the proxy trap of [`opencode_env`]) `403`. Everything is
//! recorded.

use crate::scripted::{content_text, find_tag, first_chars, first_tag, pieces};

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use crate::pinned_tools::agents_dir;
use crate::scripted::{self, Dialect, Frames, Recorder, ScriptedServer};

pub(crate) mod chunks;
use chunks::Chunks;

/// The OpenCode version the tests run (`scripts/install-agents` installs it).
pub const OPENCODE_VERSION: &str = "1.18.33";

/// The provider id [`opencode_env`] configures.
pub const OPENCODE_PROVIDER: &str = "mock";

/// The model id [`opencode_env`] configures (`mock/mock-model`).
pub const OPENCODE_MODEL: &str = "mock-model";

/// The OpenCode CLI: `$TETHER_OPENCODE_PATH` if set, else the pinned install
/// `<agents_dir>/opencode-<OPENCODE_VERSION>/node_modules/.bin/opencode`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn opencode_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("OpenCode", "opencode", OPENCODE_VERSION, "TETHER_OPENCODE_PATH")
}

/// The `opencode.json` for `model`: the scripted server as the only provider
/// (`mock/mock-model`, Chat Completions through `@ai-sdk/openai-compatible`),
/// no sharing, no autoupdate, and `edit` (which covers `write`) and `bash`
/// asking for permission.
pub fn opencode_config(model: &ScriptedChat) -> Value {
    json!({
        "$schema": "https://opencode.ai/config.json",
        "model": format!("{OPENCODE_PROVIDER}/{OPENCODE_MODEL}"),
        "small_model": format!("{OPENCODE_PROVIDER}/{OPENCODE_MODEL}"),
        "share": "disabled",
        "autoupdate": false,
        "provider": {
            OPENCODE_PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Mock",
                "options": {"baseURL": format!("{}/v1", model.url()), "apiKey": "scripted"},
                "models": {
                    OPENCODE_MODEL: {
                        "name": "Mock Model",
                        "tool_call": true,
                        "reasoning": true,
                        "limit": {"context": 200_000, "output": 32_000},
                    },
                },
            },
        },
        "permission": {"edit": "ask", "bash": "ask"},
    })
}

/// The `package.json` OpenCode expects in a config dir: with it, a
/// `package-lock.json` and a `node_modules/` that list `@opencode-ai/plugin`,
/// OpenCode does not run `npm install` there.
fn write_config_dir(dir: &Path) {
    std::fs::create_dir_all(dir.join("node_modules")).expect("create the OpenCode config dir");
    let package = json!({"dependencies": {"@opencode-ai/plugin": OPENCODE_VERSION}});
    let lock = json!({
        "name": "opencode", "lockfileVersion": 3, "requires": true,
        "packages": {
            "": {"dependencies": {"@opencode-ai/plugin": OPENCODE_VERSION}},
            "node_modules/@opencode-ai/plugin": {"version": OPENCODE_VERSION},
        },
    });
    std::fs::write(dir.join("package.json"), format!("{package:#}\n")).expect("write package.json");
    std::fs::write(dir.join("package-lock.json"), format!("{lock:#}\n")).expect("write package-lock.json");
    let plugin = dir.join("node_modules").join("@opencode-ai").join("plugin");
    std::fs::create_dir_all(&plugin).expect("create node_modules/@opencode-ai/plugin");
    let manifest = json!({"name": "@opencode-ai/plugin", "version": OPENCODE_VERSION, "type": "module"});
    std::fs::write(plugin.join("package.json"), format!("{manifest:#}\n")).expect("write the plugin manifest");
}

/// A ripgrep for OpenCode: on `$PATH`, or the one the pinned Codex package
/// bundles (`scripts/install-agents` installs it), or none.
pub fn ripgrep() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("rg")).collect::<Vec<_>>())
        .unwrap_or_default();
    let codex = agents_dir().join(format!("codex-{}", crate::openai::CODEX_VERSION)).join("node_modules/@openai");
    let bundled = std::fs::read_dir(&codex).into_iter().flatten().flatten().flat_map(|pkg| {
        let vendor = pkg.path().join("vendor");
        std::fs::read_dir(vendor).into_iter().flatten().flatten().flat_map(|triple| {
            std::fs::read_dir(triple.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|d| d.path().join("rg"))
                .collect::<Vec<_>>()
        })
    });
    on_path.into_iter().chain(bundled).find(|p| p.is_file())
}

/// OpenCode's `skill` tool (and `grep`/`glob`) run ripgrep: `rg` on `$PATH`,
/// else `$XDG_CACHE_HOME/opencode/bin/rg`, else it downloads one, which
/// fails offline ("ripgrep execution failed"). Links [`ripgrep`] there.
fn link_ripgrep(cache_home: &Path) {
    let Some(rg) = ripgrep() else { return };
    let bin = cache_home.join("opencode").join("bin");
    std::fs::create_dir_all(&bin).expect("create the OpenCode bin dir");
    let link = bin.join("rg");
    if !link.exists() {
        std::os::unix::fs::symlink(&rg, &link).expect("link ripgrep for OpenCode");
    }
}

/// The environment a tether server (and so the OpenCode CLI it spawns) needs
/// to run OpenCode offline against `model`, with `home` as `$HOME` and the
/// four `XDG_*` dirs under it (`config`, `data`, `cache`, `state`); writes
/// [`opencode_config`] to `<home>/config/opencode.json` (also
/// `$OPENCODE_CONFIG`) and the package files of the config dir
/// `<home>/config/opencode`; links a ripgrep into `<home>/cache/opencode/bin`
/// when one is found ([`ripgrep`]). Sessions are stored in `<home>/data/opencode`:
/// reuse `home` across a restart, never across tests.
///
/// # Panics
/// When the files cannot be written.
pub fn opencode_env(model: &ScriptedChat, home: &Path) -> Vec<(String, String)> {
    let config_home = home.join("config");
    let dirs = [
        ("XDG_CONFIG_HOME", config_home.clone()),
        ("XDG_DATA_HOME", home.join("data")),
        ("XDG_CACHE_HOME", home.join("cache")),
        ("XDG_STATE_HOME", home.join("state")),
    ];
    for (_, dir) in &dirs {
        std::fs::create_dir_all(dir).expect("create an XDG dir");
    }
    write_config_dir(&config_home.join("opencode"));
    link_ripgrep(&home.join("cache"));
    let config_path = config_home.join("opencode.json");
    std::fs::write(&config_path, format!("{:#}\n", opencode_config(model))).expect("write opencode.json");
    let url = model.url();
    let mut pairs: Vec<(&str, String)> = vec![
        ("OPENCODE_CONFIG", config_path.display().to_string()),
        ("OPENCODE_DISABLE_MODELS_FETCH", "1".to_owned()),
        ("OPENCODE_DISABLE_AUTOUPDATE", "1".to_owned()),
        ("OPENCODE_DISABLE_LSP_DOWNLOAD", "1".to_owned()),
        ("OPENCODE_DISABLE_SHARE", "1".to_owned()),
        ("HOME", home.display().to_string()),
        ("NO_COLOR", "1".to_owned()),
        // The proxy trap in lower case too (some HTTP clients read only these).
        ("https_proxy", url.clone()),
        ("http_proxy", url),
        ("no_proxy", "127.0.0.1,localhost".to_owned()),
        ("TETHER_OPENCODE_PATH", opencode_bin().display().to_string()),
    ];
    pairs.extend(dirs.iter().map(|(k, d)| (*k, d.display().to_string())));
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// A scripted OpenAI Chat Completions API on `127.0.0.1:<OS-chosen port>`;
/// see the module docs for the tags. Stops when dropped.
pub struct ScriptedChat(ScriptedServer);

crate::scripted_model!(ScriptedChat, agent_requests = |r| !is_title_request(r));

impl ScriptedChat {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "chat",
                model_path: |path| path == "/v1/chat/completions",
                request_id_header: "x-request-id",
                error_body: scripted::openai_error,
                errors: scripted::OPENAI_ERRORS,
                sse_content_type: "text/event-stream",
                reply: chat_reply,
                other: |method, path, _| scripted::openai_other(OPENCODE_MODEL, method, path),
            })
            .await,
        )
    }
}

/// The content of `[opencode:write]`.
pub const WRITTEN_CONTENT: &str = "written by opencode\n";

/// The file name of `[opencode:write]` (in the working directory).
pub const WRITTEN_FILE: &str = "opencode-written.txt";

/// The command of `[opencode:bash]`.
pub const BASH_COMMAND: &str = "echo scripted-bash-output";

fn has_tool(request: &Value, name: &str) -> bool {
    request
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|tools| tools.iter().any(|t| t.pointer("/function/name").and_then(Value::as_str) == Some(name)))
}

/// Whether the tool `name` of `request` has the parameter `param`.
fn tool_takes(request: &Value, name: &str, param: &str) -> bool {
    request.get("tools").and_then(Value::as_array).is_some_and(|tools| {
        tools.iter().any(|t| {
            t.pointer("/function/name").and_then(Value::as_str) == Some(name)
                && t.pointer("/function/parameters/properties").and_then(|p| p.get(param)).is_some()
        })
    })
}

/// Whether `request` is OpenCode's title request (no tools; a title generator prompt).
pub fn is_title_request(request: &Value) -> bool {
    let no_tools = request.get("tools").and_then(Value::as_array).is_none_or(Vec::is_empty);
    let titler = request.get("messages").and_then(Value::as_array).is_some_and(|messages| {
        messages.iter().any(|m| {
            m.get("role").and_then(Value::as_str) == Some("system")
                && content_text(m.get("content")).to_ascii_lowercase().contains("title generator")
        })
    });
    no_tools || titler
}

fn chat_reply(shared: &Recorder, _path: &str, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or(OPENCODE_MODEL).to_owned();
    let prompt_tokens = (request.to_string().len() / 4).max(1);
    let include_usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let prompt = latest_prompt(request);
    let mut sse = Chunks::new(shared, &model, prompt_tokens);
    if is_title_request(request) {
        let title = "Scripted title";
        if request.get("stream").and_then(Value::as_bool) != Some(true) {
            return shared.json_response(StatusCode::OK, request_id, &sse.completion(title));
        }
        sse.text(&pieces(title), Duration::ZERO);
        sse.finish("stop");
        return sse.into_response(shared, request_id, include_usage);
    }
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return shared.json_response(StatusCode::OK, request_id, &sse.completion("Scripted side reply."));
    }
    let step = prompt.tool_messages;
    match prompt.tag.as_str() {
        "reasoning" => {
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
            let mut args = json!({"command": BASH_COMMAND});
            if tool_takes(request, "bash", "description") {
                args["description"] = json!("Print a scripted line");
            }
            sse.tool_call("bash", &args.to_string());
            sse.finish("tool_calls");
        }
        "bash" => {
            sse.text(&pieces(&format!("The command printed: {}", prompt.last_tool.trim())), Duration::ZERO);
            sse.finish("stop");
        }
        "write" if step == 0 => {
            let path = working_directory(request).join(WRITTEN_FILE);
            let args = json!({"filePath": path.display().to_string(), "content": WRITTEN_CONTENT});
            sse.tool_call("write", &args.to_string());
            sse.finish("tool_calls");
        }
        "write-to" if step == 0 => {
            let args = json!({"filePath": prompt.rest(), "content": WRITTEN_CONTENT});
            sse.tool_call("write", &args.to_string());
            sse.finish("tool_calls");
        }
        "write" | "write-to" => {
            sse.text(&pieces(&format!("Write result: {}", first_chars(&prompt.last_tool, 60))), Duration::ZERO);
            sse.finish("stop");
        }
        "question" if step == 0 && has_tool(request, "question") => {
            let args = json!({"questions": [{
                "question": "Which colour?",
                "header": "Colour",
                "options": [
                    {"label": "Red", "description": "The colour red"},
                    {"label": "Blue", "description": "The colour blue"},
                ],
            }]});
            sse.tool_call("question", &args.to_string());
            sse.finish("tool_calls");
        }
        tag if tag.starts_with("mcp:") || tag.starts_with("skill:") => {
            let mut words = tag.split(':');
            let step = match (words.next(), words.next(), words.next()) {
                (Some("mcp"), Some(server), Some(tool)) => mcp_step(request, &prompt, server, tool),
                (Some("skill"), Some(name), _) => skill_step(request, &prompt, name),
                _ => Step::Text(format!("Malformed tag {tag}")),
            };
            match step {
                Step::Tool(name, args) => {
                    sse.tool_call(&name, &args.to_string());
                    sse.finish("tool_calls");
                }
                Step::Text(text) => {
                    sse.text(&pieces(&text), Duration::ZERO);
                    sse.finish("stop");
                }
            }
        }
        "question" if step > 0 => {
            sse.text(&pieces(&format!("Answer seen: {}", first_chars(&prompt.last_tool, 80))), Duration::ZERO);
            sse.finish("stop");
        }
        _ => {
            sse.text(&pieces(&format!("Scripted reply: {}", prompt.echo())), Duration::ZERO);
            sse.finish("stop");
        }
    }
    sse.into_response(shared, request_id, include_usage)
}

/// What the scripted model does next.
enum Step {
    Tool(String, Value),
    Text(String),
}

/// The names of the tools a request offers.
fn offered_tools(request: &Value) -> Vec<String> {
    let tools = request.get("tools").and_then(Value::as_array).cloned().unwrap_or_default();
    tools.iter().filter_map(|t| t.pointer("/function/name").and_then(Value::as_str)).map(str::to_owned).collect()
}

/// The next step of `[opencode:mcp:SERVER:TOOL]`: OpenCode offers an MCP
/// tool directly in `tools` as `SERVER_TOOL` (both names with anything but
/// ASCII letters, digits, `_` and `-` made `_`); after its result, text
/// `MCP said: <result>`.
fn mcp_step(request: &Value, prompt: &Prompt, server: &str, tool: &str) -> Step {
    if prompt.tool_messages > 0 {
        return Step::Text(format!("MCP said: {}", first_chars(prompt.last_tool.trim(), 200)));
    }
    let clean = |s: &str| -> String {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
    };
    let name = format!("{}_{}", clean(server), clean(tool));
    let offered = offered_tools(request);
    if !offered.contains(&name) {
        return Step::Text(format!("No tool {name} among: {}", offered.join(", ")));
    }
    let args = match tool {
        "echo" => json!({"text": prompt.echo()}),
        "add" => json!({"a": 2, "b": 3}),
        _ => json!({}),
    };
    Step::Tool(name, args)
}

/// `[opencode:skill:NAME]`: calls OpenCode's `skill` tool with the skill's
/// name, then answers `Skill said: <result>`.
fn skill_step(request: &Value, prompt: &Prompt, name: &str) -> Step {
    if prompt.tool_messages > 0 {
        return Step::Text(format!("Skill said: {}", first_chars(prompt.last_tool.trim(), 200)));
    }
    if !has_tool(request, "skill") {
        return Step::Text(format!("No skill tool among: {}", offered_tools(request).join(", ")));
    }
    Step::Tool("skill".into(), json!({"name": name}))
}

/// The latest user message of a request and what follows it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Prompt {
    /// The text of the message.
    pub(crate) text: String,
    /// The first `[opencode:TAG]` (or the dialect's: `[opencode-acp:`, `[pi:`)
    /// tag of the message, lowercase; `text` when none.
    pub(crate) tag: String,
    /// How many `role:"tool"` messages follow it.
    pub(crate) tool_messages: usize,
    /// The content of the last of them.
    pub(crate) last_tool: String,
    /// The tag opening it was read with (`[opencode:`).
    open: &'static str,
}

impl Prompt {
    /// Up to 40 characters of the prompt without its tag, trimmed.
    pub(crate) fn echo(&self) -> String {
        crate::scripted::echo(self.open, &self.text)
    }

    /// The whole prompt without its tag, trimmed.
    fn rest(&self) -> String {
        match find_tag(self.open, &self.text) {
            Some((start, end, _)) => format!("{}{}", &self.text[..start], &self.text[end..]).trim().to_owned(),
            None => self.text.trim().to_owned(),
        }
    }
}

/// How a tag opens: the native agent's id, or its ACP mode's.
const TAG_OPENS: [&str; 2] = ["[opencode:", "[opencode-acp:"];

/// Finds the latest user message of a Chat Completions request, and counts
/// the tool messages after it.
fn latest_prompt(request: &Value) -> Prompt {
    latest_chat_prompt(&TAG_OPENS, request)
}

/// [`latest_prompt`] with the tags opened by `opens` (Pi's model reads `[pi:`).
pub(crate) fn latest_chat_prompt(opens: &[&'static str], request: &Value) -> Prompt {
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut prompt = Prompt { tag: "text".into(), open: opens[0], ..Prompt::default() };
    for message in &messages {
        match message.get("role").and_then(Value::as_str) {
            Some("user") => {
                let text = content_text(message.get("content")).trim().to_owned();
                let (open, tag) = first_tag(opens, &text).unwrap_or((opens[0], "text".into()));
                prompt = Prompt { text, tag, open, tool_messages: 0, last_tool: String::new() };
            }
            Some("tool") => {
                prompt.tool_messages += 1;
                prompt.last_tool = content_text(message.get("content"));
            }
            _ => {}
        }
    }
    prompt
}

/// The `role:"system"` (and `"developer"`) texts of a request, joined: where
/// OpenCode lists skills (`<available_skills>`), MCP instructions and its
/// environment; Pi's system prompt is a `developer` message.
pub fn system_text(request: &Value) -> String {
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let texts: Vec<String> = messages
        .iter()
        .filter(|m| matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer")))
        .map(|m| content_text(m.get("content")))
        .collect();
    texts.join("\n")
}

/// The model requests of a turn's agent loop (title requests left out).
pub fn agent_requests(model: &ScriptedChat) -> Vec<Value> {
    model.requests().into_iter().filter(|r| !is_title_request(r)).collect()
}

/// The working directory OpenCode states in its system prompt (`Working
/// directory: /abs/path`), `/tmp` if none.
pub fn working_directory(request: &Value) -> PathBuf {
    const KEY: &str = "working directory:";
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
        .flat_map(|m| content_text(m.get("content")).lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|line| {
            let lower = line.to_ascii_lowercase();
            let at = lower.find(KEY)?;
            let path = line[at + KEY.len()..].trim().to_owned();
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .next_back()
        .unwrap_or_else(|| PathBuf::from("/tmp"))
}

#[cfg(test)]
mod tests;
