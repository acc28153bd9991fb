//! The real Amp CLI against a scripted model: only Amp's server is fake.
//!
//! - [`amp_bin`]: the pinned CLI ([`AMP_VERSION`], `@sourcegraph/amp`, the
//!   last build whose agent loop runs on the user's machine) that
//!   `scripts/install-agents` installs (or `$TETHER_AMP_PATH`);
//! - [`ScriptedAmp`]: the two routes of Amp's server that CLI needs, on
//!   127.0.0.1: its Anthropic proxy and its internal API;
//! - [`amp_env`]: the environment that runs the CLI offline against it.
//!
//! What the CLI sends (recorded from 0.0.1767830505-ga62310 against a
//! logging server, and read in its `dist/main.js`):
//! - `POST /api/provider/anthropic/v1/messages`: the Anthropic Messages API,
//!   `x-api-key: $AMP_API_KEY`. The turns stream (`stream: true`, model
//!   `claude-opus-4-5-20251101`, thinking enabled); the first message of a
//!   thread also asks for a title without streaming (`claude-haiku-4-5`,
//!   `tool_choice` `set_title`), answered here as Anthropic would: a
//!   `set_title` tool_use. Its tools: `Bash` (`cmd`), `create_file`
//!   (`path`, `content`), `edit_file`, `Read`, ...; the system prompt says
//!   `Working directory: /abs/path`; a user message is its `# User State`
//!   text block, then the prompt's.
//! - `POST /api/internal?METHOD` with `{"method": METHOD, "params": ..}`,
//!   whose answer is `{"ok": true, "result": ..}` or `{"ok": false, "error":
//!   {"code": .., "message": ..}}` (its client throws on a non-2xx status).
//!   It calls `getUserInfo` (the user: `id`, `email`, `features`; the CLI
//!   reads `result.id` and `result.features`), `uploadThread` (after each
//!   run: the thread is kept on the server too; the CLI checks `ok`),
//!   `getCreditsByRequestId` (`result.credits`, retried on `not-found`) and,
//!   when continuing a thread, `getThreadLinkInfo` (`result.creatorUserID`,
//!   compared with the user's id). Anything else answers `ok: false`,
//!   `not-found`.
//!
//! # Tags
//!
//! The model's reply depends only on the request (as
//! [`crate::anthropic`]'s): the latest prompt's first `[amp:TAG]` tag, and
//! the number of tool results after it.
//!
//! | tag | first call | after the tool result |
//! | --- | --- | --- |
//! | `text` (or none) | text `Scripted reply: <prompt, 40 chars>` | |
//! | `bash` | tool_use `Bash` `echo scripted-bash-output` | text `The command printed: <result>` |
//! | `hang` | tool_use `Bash` `tail -f /dev/null` (runs until stopped; Amp's default rules allow `tail *`, not `sleep`) | text `Stopped: <result, 60 chars>` |
//! | `write` | tool_use `create_file` `<cwd>/amp-written.txt` | text `Write result: <result, 60 chars>` |
//! | `mcp:SERVER:TOOL` | tool_use `mcp__SERVER__TOOL` (Amp lists MCP tools under that name; `echo` gets `{"text": <prompt>}`) | text `MCP said: <result>` |
//! | `401` / `500` | HTTP 401 / 500 with Anthropic's error JSON | |
//!
//! (`mcp-seq:SERVER` as [`crate::anthropic`]'s, without its `ToolSearch`:
//! Amp offers MCP tools directly.)

use std::path::{Path, PathBuf};

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::anthropic::sse::Sse;
use crate::anthropic::{latest_prompt_of, working_directory};
use crate::scripted::{
    first_chars, mcp_script, pieces, Dialect, InjectedError, McpNext, McpProgress, Recorder, ScriptedServer,
};

/// The Amp version the tests run (`scripts/install-agents` installs it).
pub const AMP_VERSION: &str = "0.0.1767830505-ga62310";

/// The file `[amp:write]` creates in the working directory, and its content.
pub const WRITTEN_FILE: &str = "amp-written.txt";
pub const WRITTEN_CONTENT: &str = "written by amp\n";

/// The user the internal API answers for.
const USER_ID: &str = "user_scripted";

const MESSAGES_PATH: &str = "/api/provider/anthropic/v1/messages";
const INTERNAL_PATH: &str = "/api/internal";

/// The Amp CLI: `$TETHER_AMP_PATH` if set, else the pinned install
/// `<agents_dir>/amp-<AMP_VERSION>/node_modules/.bin/amp`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn amp_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Amp", "amp", AMP_VERSION, "TETHER_AMP_PATH")
}

/// The environment a tether server (and so the Amp CLI it spawns) needs to
/// run Amp offline against `model`, with `home` as `$HOME` (threads are
/// stored under `$HOME/.local/share/amp/threads`: reuse it across a
/// restart, never across tests).
pub fn amp_env(model: &ScriptedAmp, home: &Path) -> Vec<(String, String)> {
    let pairs = [
        ("AMP_URL", model.url()),
        ("AMP_API_KEY", "amp-scripted-key".to_owned()),
        ("AMP_SKIP_UPDATE_CHECK", "1".to_owned()),
        ("HOME", home.display().to_string()),
        ("NO_COLOR", "1".to_owned()),
        ("TETHER_AMP_PATH", amp_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}

/// Waits (polling every 20 ms, up to `timeout`) until Amp has written
/// `text` into its thread file `<home>/.local/share/amp/threads/<thread>.json`.
/// Amp keeps a thread in memory and writes it 100 ms after it last changed:
/// a process killed sooner loses the newest messages.
///
/// # Panics
/// When the file does not hold `text` in time.
pub async fn wait_thread_saved(home: &Path, thread: &str, text: &str, timeout: std::time::Duration) {
    let file = home.join(".local/share/amp/threads").join(format!("{thread}.json"));
    let deadline = std::time::Instant::now() + timeout;
    while !std::fs::read_to_string(&file).is_ok_and(|t| t.contains(text)) {
        assert!(std::time::Instant::now() < deadline, "{} does not hold {text:?} after {timeout:?}", file.display());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Amp's server, scripted, on `127.0.0.1:<OS-chosen port>`; see the module
/// docs. Its model requests are the Messages API's (the internal API's
/// calls are in `all_requests`). Stops when dropped.
pub struct ScriptedAmp(ScriptedServer);

crate::scripted_model!(ScriptedAmp, agent_requests = |r| r["stream"] == serde_json::json!(true));

impl ScriptedAmp {
    /// Binds 127.0.0.1:0 and serves in the current tokio runtime.
    pub async fn start() -> Self {
        Self(
            ScriptedServer::start(Dialect {
                name: "Amp",
                model_path: |path| path == MESSAGES_PATH,
                request_id_header: "request-id",
                error_body: |kind, _code, message| json!({"type": "error", "error": {"type": kind, "message": message}}),
                errors: ERRORS,
                sse_content_type: "text/event-stream; charset=utf-8",
                reply: messages_reply,
                other: |method, path, body| {
                    if *method == Method::POST && path == INTERNAL_PATH {
                        internal_reply(body)
                    } else {
                        json!({})
                    }
                },
            })
            .await,
        )
    }
}

/// What `[amp:401]` and `[amp:500]` answer (Anthropic's error bodies, which Amp's proxy passes on).
const ERRORS: &[InjectedError] = &[
    InjectedError { tag: "401", status: 401, kind: "authentication_error", code: "", message: "invalid x-api-key" },
    InjectedError { tag: "500", status: 500, kind: "api_error", code: "", message: "scripted upstream failure" },
];

/// The internal API's answer to `{"method": .., "params": ..}`.
fn internal_reply(body: &Value) -> Value {
    let method = body.get("method").and_then(Value::as_str).unwrap_or("");
    let result = match method {
        "getUserInfo" => json!({"id": USER_ID, "email": "scripted@example.com", "features": []}),
        "getThreadLinkInfo" => json!({"creatorUserID": USER_ID}),
        "uploadThread" => json!({}),
        "getCreditsByRequestId" => json!({"credits": 0}),
        other => {
            let message = format!("the scripted Amp server has no method {other:?}");
            return json!({"ok": false, "error": {"code": "not-found", "message": message}});
        }
    };
    json!({"ok": true, "result": result})
}

fn messages_reply(shared: &Recorder, _path: &str, request: &Value, request_id: &str) -> Response {
    let model = request.get("model").and_then(Value::as_str).unwrap_or("claude-scripted").to_owned();
    let input_tokens = (request.to_string().len() / 4).max(1);
    let message_id = shared.next_id("msg");
    if request.get("stream").and_then(Value::as_bool) != Some(true) {
        // The title request forces the tool `set_title`: a real model calls it.
        let content = if request.pointer("/tool_choice/name").and_then(Value::as_str) == Some("set_title") {
            json!([{"type": "tool_use", "id": shared.next_id("toolu"), "name": "set_title",
                    "input": {"title": "Scripted thread"}}])
        } else {
            json!([{"type": "text", "text": "Scripted side reply."}])
        };
        let stop = if content[0]["type"] == "tool_use" { "tool_use" } else { "end_turn" };
        let message = json!({
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 4},
        });
        return shared.json_response(StatusCode::OK, request_id, &message);
    }
    let prompt = latest_prompt_of(request, &["[amp:"]);
    if let Some(error) = shared.injected_error(&prompt.tag, request_id) {
        return error;
    }
    let mut sse = Sse::new(&message_id, &model, input_tokens);
    let tool = match prompt.tag.as_str() {
        "bash" => Some((
            "Bash",
            json!({"cmd": "echo scripted-bash-output"}),
            format!("The command printed: {}", prompt.last_result.trim()),
        )),
        "hang" => Some((
            "Bash",
            json!({"cmd": "tail -f /dev/null"}),
            format!("Stopped: {}", first_chars(&prompt.last_result, 60)),
        )),
        "write" => Some((
            "create_file",
            json!({
                "path": format!("{}/{WRITTEN_FILE}", working_directory(request).trim_end_matches('/')),
                "content": WRITTEN_CONTENT,
            }),
            format!("Write result: {}", first_chars(&prompt.last_result, 60)),
        )),
        _ => None,
    };
    if let Some(step) = mcp_script(prompt.open, &prompt.tag, &prompt.text, &prompt.echo()) {
        match step.map(|script| mcp_step(request, &prompt, &script)) {
            Ok(McpStep::Call(name, input)) => {
                sse.tool_use(&shared.next_id("toolu"), &name, &input);
                sse.finish("tool_use");
            }
            Ok(McpStep::Text(text)) | Err(text) => {
                sse.text(&pieces(&text));
                sse.finish("end_turn");
            }
        }
        return shared.sse_response(sse.frames, request_id);
    }
    match tool {
        Some((name, input, _)) if prompt.tool_results == 0 => {
            sse.tool_use(&shared.next_id("toolu"), name, &input);
            sse.finish("tool_use");
        }
        Some((_, _, after)) => {
            sse.text(&pieces(&after));
            sse.finish("end_turn");
        }
        None => {
            sse.text(&pieces(&format!("Scripted reply: {}", prompt.echo())));
            sse.finish("end_turn");
        }
    }
    shared.sse_response(sse.frames, request_id)
}

enum McpStep {
    Call(String, Value),
    Text(String),
}

/// The next step of an MCP script: its tools are called as Amp offers them,
/// `mcp__SERVER__TOOL`; the results are those of these calls after the prompt.
fn mcp_step(request: &Value, prompt: &crate::anthropic::Prompt, script: &crate::scripted::McpScript) -> McpStep {
    let prefix = format!("mcp__{}__", script.server);
    let offered: Vec<String> = request
        .get("tools")
        .and_then(Value::as_array)
        .map(|tools| tools.iter().filter_map(|t| t["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let available = |tool: &str| offered.contains(&format!("{prefix}{tool}"));
    let results =
        prompt.calls.iter().filter(|c| c.name.starts_with(&prefix)).filter_map(|c| c.result.clone()).collect();
    match script.next(&McpProgress { results, available: &available, searched: &|_| true }) {
        McpNext::Call(call) => McpStep::Call(format!("{prefix}{}", call.tool), call.arguments),
        McpNext::Search(tools) => McpStep::Text(format!("No tools {tools:?} of {prefix} offered: {offered:?}")),
        McpNext::Missing(tool) => McpStep::Text(format!("No tool {prefix}{tool} offered: {offered:?}")),
        McpNext::Text(text) => McpStep::Text(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_internal_api_answers_what_the_cli_reads() {
        let user = internal_reply(&json!({"method": "getUserInfo", "params": {}}));
        assert_eq!(user["ok"], true);
        assert_eq!(user["result"]["id"], USER_ID);
        let link = internal_reply(&json!({"method": "getThreadLinkInfo", "params": {"thread": "T-1"}}));
        assert_eq!(link["result"]["creatorUserID"], user["result"]["id"]);
        assert_eq!(internal_reply(&json!({"method": "getCreditsByRequestId"}))["result"]["credits"], 0);
        let unknown = internal_reply(&json!({"method": "nope"}));
        assert_eq!((unknown["ok"].clone(), unknown["error"]["code"].clone()), (json!(false), json!("not-found")));
    }

    #[test]
    fn the_prompt_is_the_text_after_the_user_state_block() {
        let request = json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "# User State\nCurrently visible files user has open: none\n\n"},
            {"type": "text", "text": "[amp:bash] run it"},
        ]}]});
        let prompt = latest_prompt_of(&request, &["[amp:"]);
        assert_eq!((prompt.tag.as_str(), prompt.tool_results), ("bash", 0));
    }
}
