//! The real OpenCode CLI against a scripted model: only the model is fake.
//!
//! - [`opencode_bin`]: the pinned CLI ([`OPENCODE_VERSION`]) that
//!   `scripts/install-agents` installs from the npm registry (or
//!   `$TETHER_OPENCODE_PATH`);
//! - [`ScriptedChat`]: an OpenAI Chat Completions server on 127.0.0.1 whose
//!   replies are chosen by an `[opencode:TAG]` tag in the latest user message;
//! - [`opencode_env`]: the `opencode.json` config and the environment that run
//!   the CLI offline against it.
//!
//! # Tags
//!
//! The reply depends only on the request body (the server is stateless): the
//! latest `role:"user"` message of `messages` picks the script by its first
//! `[opencode:TAG]` tag, and the number of `role:"tool"` messages after it
//! picks the step of the script.
//!
//! | tag | first call | after the tool message |
//! | --- | --- | --- |
//! | `text` (or none, or unknown) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `reasoning` | `reasoning_content` deltas, then text | |
//! | `bash` | tool call `bash {"command":"echo scripted-bash-output"}` (plus a `description` when the tool's schema has one) | text `The command printed: <output>` |
//! | `write` | tool call `write {"filePath":"<cwd>/opencode-written.txt","content":"written by opencode\n"}` | text `Write result: <tool message, 60 chars>` |
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

use crate::scripted::{content_text, find_tag, first_chars, pieces};
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
    let path = match std::env::var_os("TETHER_OPENCODE_PATH").filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => {
            agents_dir().join(format!("opencode-{OPENCODE_VERSION}")).join("node_modules").join(".bin").join("opencode")
        }
    };
    assert!(
        path.is_file(),
        "the OpenCode CLI {OPENCODE_VERSION} is not installed at {}: run scripts/install-agents \
         (or set TETHER_OPENCODE_PATH)",
        path.display()
    );
    path
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
        ("HTTPS_PROXY", url.clone()),
        ("HTTP_PROXY", url.clone()),
        ("https_proxy", url.clone()),
        ("http_proxy", url),
        ("NO_PROXY", "127.0.0.1,localhost".to_owned()),
        ("no_proxy", "127.0.0.1,localhost".to_owned()),
        ("TETHER_OPENCODE_PATH", opencode_bin().display().to_string()),
    ];
    pairs.extend(dirs.iter().map(|(k, d)| (*k, d.display().to_string())));
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// A scripted OpenAI Chat Completions API on `127.0.0.1:<OS-chosen port>`;
/// see the module docs for the tags. Stops when dropped.
pub struct ScriptedChat(ScriptedServer);

impl ScriptedChat {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "chat",
                model_path: "/v1/chat/completions",
                request_id_header: "x-request-id",
                error_body: error_json,
                reply: chat_reply,
                other: other_reply,
            })
            .await,
        )
    }

    /// `http://127.0.0.1:PORT` (the provider's `baseURL` is this plus `/v1`).
    pub fn url(&self) -> String {
        self.0.url()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// Every `POST /v1/chat/completions` body received so far, in order.
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
            {"id": OPENCODE_MODEL, "object": "model", "created": 0, "owned_by": "scripted"},
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

fn chat_reply(shared: &Recorder, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or(OPENCODE_MODEL).to_owned();
    let prompt_tokens = (request.to_string().len() / 4).max(1);
    let include_usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    let prompt = latest_prompt(request);
    let mut sse = Chunks::new(shared, &model, prompt_tokens);
    if is_title_request(request) {
        let title = "Scripted title";
        if request.get("stream").and_then(Value::as_bool) != Some(true) {
            return json_response(StatusCode::OK, request_id, &sse.completion(title));
        }
        sse.text(&pieces(title), Duration::ZERO);
        sse.finish("stop");
        return sse.into_response(shared.shutdown(), request_id, include_usage);
    }
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
        _ => {}
    }
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        return json_response(StatusCode::OK, request_id, &sse.completion("Scripted side reply."));
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
        "write" => {
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
    sse.into_response(shared.shutdown(), request_id, include_usage)
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
struct Prompt {
    /// The text of the message.
    text: String,
    /// The first `[opencode:TAG]` tag of the message, lowercase; `text` when none.
    tag: String,
    /// How many `role:"tool"` messages follow it.
    tool_messages: usize,
    /// The content of the last of them.
    last_tool: String,
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

const TAG_OPEN: &str = "[opencode:";

/// Finds the latest user message of a Chat Completions request, and counts
/// the tool messages after it.
fn latest_prompt(request: &Value) -> Prompt {
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut prompt = Prompt { tag: "text".into(), ..Prompt::default() };
    for message in &messages {
        match message.get("role").and_then(Value::as_str) {
            Some("user") => {
                let text = content_text(message.get("content")).trim().to_owned();
                let tag = find_tag(TAG_OPEN, &text).map(|(_, _, tag)| tag).unwrap_or_else(|| "text".into());
                prompt = Prompt { text, tag, tool_messages: 0, last_tool: String::new() };
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

/// The `role:"system"` texts of a request, joined: where OpenCode lists
/// skills (`<available_skills>`), MCP instructions and its environment.
pub fn system_text(request: &Value) -> String {
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let texts: Vec<String> = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("system"))
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

/// A Chat Completions SSE reply being built: chunks with the pause before each.
struct Chunks<'a> {
    shared: &'a Recorder,
    id: String,
    model: String,
    created: u64,
    chunks: Vec<(Duration, Value)>,
    prompt_tokens: usize,
    completion_tokens: usize,
    reasoning_tokens: usize,
}

impl<'a> Chunks<'a> {
    fn new(shared: &'a Recorder, model: &str, prompt_tokens: usize) -> Self {
        let mut chunks = Self {
            shared,
            id: shared.next_id("chatcmpl"),
            model: model.to_owned(),
            created: now_secs(),
            chunks: Vec::new(),
            prompt_tokens,
            completion_tokens: 0,
            reasoning_tokens: 0,
        };
        chunks.delta(Duration::ZERO, json!({"role": "assistant", "content": ""}), None);
        chunks
    }

    fn delta(&mut self, pause: Duration, delta: Value, finish_reason: Option<&str>) {
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        });
        self.chunks.push((pause, chunk));
    }

    fn usage(&self) -> Value {
        let completion = self.completion_tokens.max(1) + self.reasoning_tokens;
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        })
    }

    /// A whole (non-streamed) `chat.completion` with `text`.
    fn completion(&self, text: &str) -> Value {
        json!({
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": self.usage(),
        })
    }

    fn text(&mut self, pieces: &[String], pause: Duration) {
        for piece in pieces {
            self.completion_tokens += 1;
            self.delta(pause, json!({"content": piece}), None);
        }
    }

    fn reasoning(&mut self, pieces: &[&str]) {
        for piece in pieces {
            self.reasoning_tokens += 1;
            self.delta(Duration::ZERO, json!({"reasoning_content": piece}), None);
        }
    }

    fn tool_call(&mut self, name: &str, arguments: &str) {
        let call_id = self.shared.next_id("call");
        self.delta(
            Duration::ZERO,
            json!({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        );
        for piece in pieces(arguments) {
            self.completion_tokens += 1;
            self.delta(Duration::ZERO, json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}), None);
        }
    }

    fn finish(&mut self, reason: &str) {
        self.delta(Duration::ZERO, json!({}), Some(reason));
    }

    /// Streams the chunks (a usage chunk too when asked for), then
    /// `data: [DONE]`, each after its pause; cut short (the connection
    /// aborted) when the server stops.
    fn into_response(mut self, shutdown: watch::Receiver<bool>, request_id: &str, include_usage: bool) -> Response {
        let mut events: Vec<(Duration, String)> =
            self.chunks.drain(..).map(|(pause, chunk)| (pause, format!("data: {chunk}\n\n"))).collect();
        if include_usage {
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": self.usage(),
            });
            events.push((Duration::ZERO, format!("data: {chunk}\n\n")));
        }
        events.push((Duration::ZERO, "data: [DONE]\n\n".to_owned()));
        let stream =
            futures_util::stream::unfold((events.into_iter(), shutdown), |(mut events, mut shutdown)| async move {
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
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
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

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": [{"type": "text", "text": text}]})
    }

    #[test]
    fn tags_steps_and_cwd() {
        let r = json!({"messages": [
            {"role": "system", "content": "You are opencode.\n<env>\n  Working directory: /work/x\n</env>"},
            user("[opencode:bash] hi"),
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c", "type": "function", "function": {"name": "bash", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "scripted-bash-output\n"},
        ]});
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.tool_messages, p.last_tool.as_str()), ("bash", 1, "scripted-bash-output\n"));
        assert_eq!(working_directory(&r), PathBuf::from("/work/x"));
        assert_eq!(working_directory(&json!({"messages": []})), PathBuf::from("/tmp"));
        let r = json!({"messages": [user("[opencode:bash] hi"), {"role": "user", "content": "  plain words  "}]});
        let p = latest_prompt(&r);
        assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "plain words"));
        let p = latest_prompt(
            &json!({"messages": [user("[opencode:TEXT]  a very long prompt that goes on and on and on")]}),
        );
        assert_eq!((p.tag.as_str(), p.echo().as_str()), ("text", "a very long prompt that goes on and on a"));
    }

    /// The `data:` objects of an SSE body (without `[DONE]`).
    fn chunks(text: &str) -> Vec<Value> {
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    fn joined(chunks: &[Value], field: &str) -> String {
        chunks.iter().filter_map(|c| c["choices"][0]["delta"][field].as_str()).collect()
    }

    /// The arguments of the tool call of `chunks`, parsed.
    fn arguments(chunks: &[Value]) -> Value {
        let args: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        serde_json::from_str(&args).unwrap()
    }

    async fn post(url: &str, body: &Value) -> (u16, String) {
        let response =
            reqwest::Client::new().post(format!("{url}/v1/chat/completions")).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    #[tokio::test]
    async fn serves_scripts() {
        let server = ScriptedChat::start().await;
        let url = server.url();
        let tools = json!([
            {"type": "function", "function": {"name": "bash", "parameters": {}}},
            {"type": "function", "function": {"name": "write", "parameters": {}}},
            {"type": "function", "function": {"name": "question", "parameters": {}}},
        ]);
        let system = json!({"role": "system", "content": "x\n  Working directory: /w/d\n"});
        let req = |messages: Value| {
            json!({"model": "mock-model", "stream": true, "stream_options": {"include_usage": true},
                "tools": tools, "messages": messages})
        };
        let (status, text) = post(&url, &req(json!([system, user("[opencode:text] Hello there")]))).await;
        assert_eq!(status, 200);
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let cs = chunks(&text);
        assert_eq!(joined(&cs, "content"), "Scripted reply: Hello there");
        assert_eq!(cs[cs.len() - 2]["choices"][0]["finish_reason"], "stop");
        assert!(cs.last().unwrap()["usage"]["prompt_tokens"].is_number());

        let (_, text) = post(&url, &req(json!([system, user("[opencode:write] go")]))).await;
        let cs = chunks(&text);
        let args = arguments(&cs);
        assert_eq!(args, json!({"filePath": "/w/d/opencode-written.txt", "content": WRITTEN_CONTENT}));
        assert_eq!(cs[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "write");
        assert!(cs.iter().any(|c| c["choices"][0]["finish_reason"] == "tool_calls"));

        let (_, text) = post(
            &url,
            &req(json!([system, user("[opencode:bash] go"),
            {"role": "tool", "tool_call_id": "c", "content": "scripted-bash-output\n"}])),
        )
        .await;
        assert_eq!(joined(&chunks(&text), "content"), "The command printed: scripted-bash-output");

        let (_, text) = post(&url, &req(json!([user("[opencode:reasoning] go")]))).await;
        let cs = chunks(&text);
        assert_eq!(joined(&cs, "reasoning_content"), "Let me think about this scripted request.");
        let (_, text) = post(&url, &req(json!([user("[opencode:question] go")]))).await;
        assert_eq!(arguments(&chunks(&text))["questions"][0]["question"], "Which colour?");

        let (status, text) = post(&url, &req(json!([user("[opencode:500] go")]))).await;
        assert_eq!(status, 500);
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "server_error");
        let (status, _) = post(&url, &req(json!([user("[opencode:401] go")]))).await;
        assert_eq!(status, 401);
        // A title request (no tools) gets a title whatever the tag.
        let title = json!({"model": "m", "stream": true, "messages": [
            {"role": "system", "content": "You are a title generator."}, user("[opencode:500] go")]});
        let (status, text) = post(&url, &title).await;
        assert_eq!((status, joined(&chunks(&text), "content").as_str()), (200, "Scripted title"));
        assert_eq!(server.requests().len(), 8);
        let models = reqwest::get(format!("{url}/v1/models")).await.unwrap().json::<Value>().await.unwrap();
        assert_eq!(models["data"][0]["id"], OPENCODE_MODEL);
        assert_eq!(server.all_requests().len(), 9);
        drop(server);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(reqwest::Client::new().head(format!("{url}/")).send().await.is_err(), "stopped when dropped");
    }

    #[tokio::test]
    async fn serves_mcp_and_skill_scripts() {
        let server = ScriptedChat::start().await;
        let url = server.url();
        let tools = json!([
            {"type": "function", "function": {"name": "my_srv_echo", "parameters": {}}},
            {"type": "function", "function": {"name": "skill", "parameters": {}}},
        ]);
        let req = |messages: Value| json!({"model": "m", "stream": true, "tools": tools, "messages": messages});
        let (_, text) = post(&url, &req(json!([user("[opencode:mcp:my.srv:echo] say hi")]))).await;
        let cs = chunks(&text);
        assert_eq!(cs[1]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "my_srv_echo");
        assert_eq!(arguments(&cs), json!({"text": "say hi"}));
        let after = json!([user("[opencode:mcp:my.srv:echo] say hi"), {"role": "tool", "content": "echo: say hi"}]);
        assert_eq!(joined(&chunks(&post(&url, &req(after)).await.1), "content"), "MCP said: echo: say hi");
        let (_, text) = post(&url, &req(json!([user("[opencode:mcp:other:echo] x")]))).await;
        assert!(joined(&chunks(&text), "content").starts_with("No tool other_echo among: my_srv_echo"), "{text}");
        let (_, text) = post(&url, &req(json!([user("[opencode:skill:s-1] load")]))).await;
        assert_eq!(arguments(&chunks(&text)), json!({"name": "s-1"}));
    }

    #[tokio::test]
    async fn refuses_connect() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let server = ScriptedChat::start().await;
        let mut tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        tcp.write_all(b"CONNECT models.dev:443 HTTP/1.1\r\nHost: models.dev:443\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 256];
        let n = tcp.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    }

    #[tokio::test]
    async fn env_writes_the_config() {
        if std::env::var_os("TETHER_OPENCODE_PATH").is_none()
            && !agents_dir().join(format!("opencode-{OPENCODE_VERSION}")).exists()
        {
            eprintln!("skipped: opencode is not installed (scripts/install-agents)");
            return;
        }
        let server = ScriptedChat::start().await;
        let home = tempfile::tempdir().unwrap();
        let env = opencode_env(&server, home.path());
        let get = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        let config_path = home.path().join("config/opencode.json");
        assert_eq!(get("OPENCODE_CONFIG"), config_path.display().to_string());
        let config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
        assert_eq!(config["provider"]["mock"]["options"]["baseURL"], format!("{}/v1", server.url()));
        assert_eq!(get("XDG_DATA_HOME"), home.path().join("data").display().to_string());
        assert!(home.path().join("config/opencode/package-lock.json").is_file());
        assert_eq!(get("NO_PROXY"), "127.0.0.1,localhost");
    }

    // ---- recording the real `opencode serve` ----

    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use tokio::sync::mpsc;

    const PASSWORD: &str = "scripted-password";

    struct Serve {
        child: tokio::process::Child,
        base: String,
        http: reqwest::Client,
        calls: Vec<Value>,
        events: Arc<Mutex<Vec<String>>>,
        rx: mpsc::UnboundedReceiver<Value>,
        reader: Option<tokio::task::JoinHandle<()>>,
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    impl Serve {
        async fn spawn(env: &[(String, String)], cwd: &Path, logs: &Path) -> Self {
            let port = free_port();
            let mut command = tokio::process::Command::new(opencode_bin());
            command
                .args(["serve", "--hostname", "127.0.0.1", "--port", &port.to_string(), "--print-logs"])
                .current_dir(cwd)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("OPENCODE_SERVER_PASSWORD", PASSWORD)
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(logs.with_extension("stdout.txt")).unwrap())
                .stderr(std::fs::File::create(logs.with_extension("stderr.txt")).unwrap())
                .kill_on_drop(true);
            let child = command.spawn().expect("spawn opencode serve");
            let base = format!("http://127.0.0.1:{port}");
            let http = reqwest::Client::new();
            let started = std::time::Instant::now();
            loop {
                let answer = http
                    .get(format!("{base}/global/health"))
                    .basic_auth("opencode", Some(PASSWORD))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                if let Ok(r) = answer {
                    if r.status().is_success() {
                        eprintln!("healthy after {:?}: {}", started.elapsed(), r.text().await.unwrap_or_default());
                        break;
                    }
                }
                assert!(started.elapsed() < Duration::from_secs(60), "opencode serve not healthy in 60 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let events = Arc::new(Mutex::new(Vec::new()));
            let (tx, rx) = mpsc::unbounded_channel();
            let response = http
                .get(format!("{base}/event"))
                .basic_auth("opencode", Some(PASSWORD))
                .send()
                .await
                .expect("GET /event");
            assert!(response.status().is_success(), "GET /event: {}", response.status());
            let sink = Arc::clone(&events);
            let reader = tokio::spawn(async move {
                use futures_util::StreamExt;
                let mut stream = response.bytes_stream();
                let mut buf = Vec::new();
                while let Some(Ok(bytes)) = stream.next().await {
                    buf.extend_from_slice(&bytes);
                    while let Some(at) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=at).collect();
                        let line = String::from_utf8_lossy(&line).trim_end_matches(['\r', '\n']).to_owned();
                        if let Some(data) = line.strip_prefix("data:") {
                            let data = data.strip_prefix(' ').unwrap_or(data).to_owned();
                            sink.lock().unwrap().push(data.clone());
                            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                                let _ = tx.send(v);
                            }
                        }
                    }
                }
            });
            Self { child, base, http, calls: Vec::new(), events, rx, reader: Some(reader) }
        }

        async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            let method_value = Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self
                .http
                .request(method_value, format!("{}{path}", self.base))
                .basic_auth("opencode", Some(PASSWORD))
                .timeout(Duration::from_secs(30));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let parsed = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            self.calls
                .push(json!({"method": method, "path": path, "body": body, "status": status, "response": parsed}));
            (status, parsed)
        }

        /// Sends a prompt and handles the session's events until it is idle.
        async fn turn(&mut self, session: &str, text: &str, case: &str) -> Vec<Value> {
            let body = json!({
                "parts": [{"type": "text", "text": text}],
                "model": {"providerID": OPENCODE_PROVIDER, "modelID": OPENCODE_MODEL},
            });
            let (status, answer) = self.call("POST", &format!("/session/{session}/prompt_async"), Some(body)).await;
            assert!((200..300).contains(&status), "prompt_async: {status} {answer}");
            let mut seen = Vec::new();
            let mut deltas = 0;
            let mut aborted = false;
            let mut retries = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            loop {
                let event = tokio::time::timeout_at(deadline, self.rx.recv())
                    .await
                    .unwrap_or_else(|_| panic!("{case}: no session.idle in 90 s"))
                    .expect("the event stream ended");
                let kind = event["type"].as_str().unwrap_or_default().to_owned();
                let props = &event["properties"];
                let sid = props["sessionID"].as_str().or_else(|| props["info"]["sessionID"].as_str());
                if sid.is_some_and(|s| s != session) {
                    continue;
                }
                seen.push(event.clone());
                match kind.as_str() {
                    "permission.asked" => {
                        let id = props["id"].as_str().unwrap().to_owned();
                        let reply = if case.contains("denied") { "reject" } else { "once" };
                        let (status, answer) =
                            self.call("POST", &format!("/permission/{id}/reply"), Some(json!({"reply": reply}))).await;
                        assert!((200..300).contains(&status), "permission reply: {status} {answer}");
                    }
                    "question.asked" => {
                        let id = props["id"].as_str().unwrap().to_owned();
                        let (status, answer) = self
                            .call("POST", &format!("/question/{id}/reply"), Some(json!({"answers": [["Red"]]})))
                            .await;
                        assert!((200..300).contains(&status), "question reply: {status} {answer}");
                    }
                    "message.part.delta" if case.contains("abort") && !aborted => {
                        deltas += 1;
                        if deltas == 5 {
                            aborted = true;
                            let (status, answer) = self.call("POST", &format!("/session/{session}/abort"), None).await;
                            assert!((200..300).contains(&status), "abort: {status} {answer}");
                        }
                    }
                    // A 500 is retried with a growing backoff (2, 4, 8, .. s): abort on the second retry.
                    "session.status" if props["status"]["type"] == "retry" && case.contains("500") => {
                        retries += 1;
                        if retries == 2 {
                            let (status, answer) = self.call("POST", &format!("/session/{session}/abort"), None).await;
                            assert!((200..300).contains(&status), "abort: {status} {answer}");
                        }
                    }
                    "session.idle" => break,
                    _ => {}
                }
            }
            seen
        }

        async fn stop(mut self) -> (Vec<Value>, Vec<String>) {
            // Events still in flight after idle belong to the recording.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = self.child.kill().await;
            if let Some(reader) = self.reader.take() {
                reader.abort();
            }
            let events = self.events.lock().unwrap().clone();
            (std::mem::take(&mut self.calls), events)
        }
    }

    fn text_of(events: &[Value]) -> String {
        events
            .iter()
            .filter(|e| e["type"] == "message.part.updated" && e["properties"]["part"]["type"] == "text")
            .filter_map(|e| e["properties"]["part"]["text"].as_str().map(str::to_owned))
            .next_back()
            .unwrap_or_default()
    }

    /// Records the real `opencode serve` for each case into
    /// `server/src/agents/opencode/testdata/<name>.events.jsonl` (the `data:`
    /// of every `GET /event` line, verbatim) and `<name>.calls.jsonl` (the HTTP
    /// calls made and their answers), `openapi.json` (`GET /doc`), and the
    /// model requests and opencode's logs into `$TMPDIR/tether-opencode-recordings/`.
    /// Re-run after a version bump:
    /// `cargo test -p tether-e2e --lib record_opencode -- --ignored --nocapture`
    /// (`TETHER_RECORD_ONLY=text,bash` records only those cases).
    #[tokio::test]
    #[ignore = "needs scripts/install-agents; rewrites the recordings"]
    async fn record_opencode_transcripts() {
        let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server/src/agents/opencode/testdata");
        let side_dir = std::env::temp_dir().join("tether-opencode-recordings");
        std::fs::create_dir_all(&out_dir).unwrap();
        std::fs::create_dir_all(&side_dir).unwrap();
        let only = std::env::var("TETHER_RECORD_ONLY").ok();
        let wanted = |name: &str| only.as_deref().is_none_or(|o| o.split(',').any(|n| n == name));
        let lines = |l: &[String]| l.iter().map(|l| format!("{l}\n")).collect::<String>();
        let save = |name: &str, calls: &[Value], events: &[String], model: &ScriptedChat| {
            let calls: Vec<String> = calls.iter().map(Value::to_string).collect();
            std::fs::write(out_dir.join(format!("{name}.calls.jsonl")), lines(&calls)).unwrap();
            std::fs::write(out_dir.join(format!("{name}.events.jsonl")), lines(events)).unwrap();
            let all: Vec<Value> = model
                .all_requests()
                .into_iter()
                .map(|r| json!({"method": r.method, "uri": r.uri, "body": r.body}))
                .collect();
            std::fs::write(side_dir.join(format!("{name}.requests.json")), serde_json::to_string_pretty(&all).unwrap())
                .unwrap();
            eprintln!("recorded {name}: {} events, {} calls", events.len(), calls.len());
        };

        let cases: &[(&str, &[&str])] = &[
            ("text", &["[opencode:text] Hello from the recorder"]),
            ("reasoning", &["[opencode:reasoning] Think first"]),
            ("bash", &["[opencode:bash] Run a command"]),
            ("write_allowed", &["[opencode:write] Write a file"]),
            ("write_denied", &["[opencode:write] Write a file"]),
            ("question", &["[opencode:question] Ask me"]),
            ("slow_abort", &["[opencode:slow] Take your time"]),
            ("error_500", &["[opencode:500] Fail upstream"]),
            ("error_401", &["[opencode:401] Fail auth"]),
            ("two_turns", &["[opencode:text] First turn", "[opencode:bash] Second turn"]),
        ];
        for (name, prompts) in cases {
            if !wanted(name) {
                continue;
            }
            let model = ScriptedChat::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let env = opencode_env(&model, home.path());
            let mut serve = Serve::spawn(&env, cwd.path(), &side_dir.join(name)).await;
            if *name == "text" {
                let (status, doc) = serve.call("GET", "/doc", None).await;
                assert_eq!(status, 200);
                serve.calls.pop();
                std::fs::write(out_dir.join("openapi.json"), format!("{doc:#}\n")).unwrap();
                let unauth = serve.http.get(format!("{}/session", serve.base)).send().await.unwrap();
                eprintln!("GET /session without auth: {}", unauth.status());
            }
            let (status, session) = serve.call("POST", "/session", Some(json!({}))).await;
            assert_eq!(status, 200, "{session}");
            let id = session["id"].as_str().unwrap().to_owned();
            let mut last = Vec::new();
            for prompt in *prompts {
                last = serve.turn(&id, prompt, name).await;
            }
            let (calls, events) = serve.stop().await;
            save(name, &calls, &events, &model);
            let written = cwd.path().join(WRITTEN_FILE);
            eprintln!("{name}: last text {:?}", text_of(&last));
            match *name {
                "bash" | "two_turns" => assert!(text_of(&last).contains("scripted-bash-output"), "{name}"),
                "write_allowed" => assert_eq!(std::fs::read_to_string(&written).unwrap(), WRITTEN_CONTENT),
                "write_denied" => assert!(!written.exists(), "write_denied: the file exists"),
                _ => {}
            }
        }

        if wanted("mcp") {
            // A stdio MCP server through OPENCODE_CONFIG_CONTENT, its tools asking
            // (as tether's rules make them in `default`), and a skill loaded.
            let model = ScriptedChat::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let skills = tempfile::tempdir().unwrap();
            let skill = skills.path().join("rec-skill");
            std::fs::create_dir_all(&skill).unwrap();
            let md = "---\nname: rec-skill\ndescription: A recorded skill\n---\n\nREC-SKILL-BODY\n";
            std::fs::write(skill.join("SKILL.md"), md).unwrap();
            let mut env = opencode_env(&model, home.path());
            let bin = crate::mcp::mcp_test_server_bin().display().to_string();
            let log = home.path().join("mcp-calls.jsonl").display().to_string();
            let content = json!({
                "mcp": {"tt": {"type": "local", "command": [bin, "--log", log, "--label", "rec"], "enabled": true}},
                "skills": {"paths": [skills.path().display().to_string()]},
            });
            env.push(("OPENCODE_CONFIG_CONTENT".into(), content.to_string()));
            let mut serve = Serve::spawn(&env, cwd.path(), &side_dir.join("mcp")).await;
            let rules = json!({"permission": [{"permission": "tt_*", "pattern": "*", "action": "ask"}]});
            let (status, session) = serve.call("POST", "/session", Some(rules)).await;
            assert_eq!(status, 200, "{session}");
            let id = session["id"].as_str().unwrap().to_owned();
            let (status, mcp) = serve.call("GET", "/mcp", None).await;
            assert_eq!((status, &mcp["tt"]["status"]), (200, &json!("connected")), "{mcp}");
            let first = serve.turn(&id, "[opencode:mcp:tt:echo] hello mcp", "mcp").await;
            let second = serve.turn(&id, "[opencode:skill:rec-skill] load it", "mcp").await;
            let (calls, events) = serve.stop().await;
            save("mcp", &calls, &events, &model);
            assert_eq!(text_of(&first), "MCP said: echo: hello mcp");
            assert!(text_of(&second).contains("REC-SKILL-BODY"), "{}", text_of(&second));
        }

        if wanted("resume") {
            let model = ScriptedChat::start().await;
            let home = tempfile::tempdir().unwrap();
            let cwd = tempfile::tempdir().unwrap();
            let env = opencode_env(&model, home.path());
            let mut first = Serve::spawn(&env, cwd.path(), &side_dir.join("resume_first")).await;
            let (_, session) = first.call("POST", "/session", Some(json!({}))).await;
            let id = session["id"].as_str().unwrap().to_owned();
            first.turn(&id, "[opencode:text] Remember the word pomegranate", "resume").await;
            let (calls, events) = first.stop().await;
            save("resume_first", &calls, &events, &model);
            let mut second = Serve::spawn(&env, cwd.path(), &side_dir.join("resume")).await;
            let (status, answer) = second.call("GET", &format!("/session/{id}"), None).await;
            assert_eq!(status, 200, "{answer}");
            let _ = second.call("GET", &format!("/session/{id}/message"), None).await;
            let last = second.turn(&id, "[opencode:text] What was the word?", "resume").await;
            let (calls, events) = second.stop().await;
            save("resume", &calls, &events, &model);
            eprintln!("resume: last text {:?}", text_of(&last));
            let request = model.requests().into_iter().rfind(|r| !is_title_request(r)).unwrap();
            assert!(request["messages"].to_string().contains("pomegranate"), "resumed request: {request}");
        }
    }
}
