//! tether's own MCP server: the tools an orchestrating agent (or a program
//! with an MCP client) uses to run sessions, wait for their turns, answer
//! their permissions and questions, and work with the workspace's files.
//! Served as MCP streamable HTTP at `/mcp` ([`service`], mounted by the HTTP
//! router behind its token auth) and over stdio by `tether mcp` ([`proxy`]).
//!
//! Every tool calls the same session and fs operations as the HTTP API, on
//! the same application core (`crate::app`); it owns none of its own and
//! knows nothing of the HTTP routes (`crate::serve` mounts [`service`]). A
//! failed operation is a [`ToolError`] (the session's or the filesystem's
//! own error, or the tool's) answered as a tool error (`isError`) whose
//! text is `<code> (<status>): <detail>`: the problem the HTTP API answers
//! for the same failure, through the same mapping (`crate::error::AsProblem`),
//! also in `_meta["tether/problem"]`.

pub mod proxy;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult, MetaObject,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tether_protocol::tools::{
    AnswerPermissionArgs, AnswerQuestionArgs, DeleteSessionArgs, Done, Encoding, FileContent, GetEventsArgs,
    ListSessionsArgs, NoArgs, PathArgs, PreviewLinkArgs, ProcessArgs, ReadFileArgs, ReadOutputArgs, SendInputArgs,
    SendMessageArgs, SessionArgs, SessionCreated, TurnProgress, WaitForTurnArgs, WriteFileArgs,
};
use tether_protocol::{
    AgentList, CreateSession, EventPage, FsEntries, FsEntry, MessageAccepted, Part, QuestionReply, Session, SessionList,
};
use tether_protocol::{CreateProcess, PortList, PreviewLink, Process, ProcessEnd, ProcessList, ProcessOutput, Screen};
use tokio_util::sync::CancellationToken;

use crate::app::App;
use crate::error::{AsProblem, ErrorCode};
use crate::fs::FsError;
use crate::session::SessionError;

/// `wait_for_turn`'s timeout when none is given, and its largest.
const WAIT_DEFAULT_S: f64 = 60.0;
const WAIT_MAX_S: f64 = 3600.0;
/// `read_file`'s default and largest read.
const READ_DEFAULT_BYTES: u64 = 1 << 20;
const READ_MAX_BYTES: u64 = 8 << 20;

const INSTRUCTIONS: &str = "tether runs coding agents (claude, codex, opencode, mock) in this sandbox. \
To hand work to an agent: create_session {agent, prompt} answers a session_id and turn_id; \
wait_for_turn {session_id, turn_id, timeout_s} blocks until the turn ends (done: true, with the agent's \
final text and its tool calls in brief) or waits for you: answer each open permission with \
answer_permission and each question with answer_question, then wait again. A timed-out wait \
(done: false) changes nothing: call wait_for_turn again. send_message continues a session; \
delete_session ends it and its processes. read_file, write_file and list_dir work inside the workspace.";

/// The `/mcp` service: one [`Tools`] per MCP session, stopped when the server shuts down.
pub fn service(app: Arc<App>) -> StreamableHttpService<Tools, LocalSessionManager> {
    let cancel = CancellationToken::new();
    let mut shutdown = app.shutdown.clone();
    let on_shutdown = cancel.clone();
    tokio::spawn(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
        on_shutdown.cancel();
    });
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(cancel)
        .with_max_request_body_bytes(app.max_body_bytes)
        .with_sse_keep_alive(Some(app.keepalive))
        // No priming event (an empty `data:` that opens each stream for a
        // resumption this server cannot offer: it keeps no event store), here
        // nor in its sessions below: Gemini CLI's MCP client fails on it
        // ("Unexpected end of JSON input") and drops the server.
        .with_sse_retry(None);
    // `Host` and `Origin` are checked for every route, this one included,
    // by the HTTP edge in front of it (problem+json answers, `--allow-host`).
    let config = config.disable_allowed_hosts();
    let mut sessions = LocalSessionManager::default();
    sessions.session_config.sse_retry = None;
    StreamableHttpService::new(move || Ok(Tools { app: app.clone() }), Arc::new(sessions), config)
}

/// The tools of one MCP session.
#[derive(Clone)]
pub struct Tools {
    app: Arc<App>,
}

/// A tool: its name, what it does, and the types of its arguments and result.
fn tool<A: JsonSchema + 'static, R: JsonSchema + 'static>(
    name: &'static str,
    description: &'static str,
    annotations: ToolAnnotations,
) -> Tool {
    // The argument types are structs: their schemas are objects, as MCP requires.
    let input = schema_for_input::<A>().unwrap_or_default();
    Tool::new(name, description, objects_only(input))
        .with_raw_output_schema(objects_only(schema_for_output::<R>()))
        .with_annotations(annotations)
}

/// The schema with every boolean subschema written as an object (`true` as
/// `{}`, `false` as `{"not": {}}`): JSON Schema allows both, but the official
/// TypeScript SDK (and so the MCP Inspector) refuses a whole `tools/list`
/// whose property schema is a boolean (schemars gives `serde_json::Value`
/// fields the schema `true`).
/// Number formats schemars writes that JSON Schema does not define.
const NUMERIC_FORMATS: &[&str] =
    &["int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float", "double"];

fn objects_only(schema: std::sync::Arc<rmcp::model::JsonObject>) -> std::sync::Arc<rmcp::model::JsonObject> {
    fn subschema(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Bool(true) => *v = serde_json::json!({}),
            serde_json::Value::Bool(false) => *v = serde_json::json!({"not": {}}),
            serde_json::Value::Object(o) => walk(o),
            _ => {}
        }
    }
    fn walk(o: &mut rmcp::model::JsonObject) {
        // schemars' integer formats (`uint64`, ..) are not JSON Schema's: validators warn on each.
        if o.get("format").and_then(|f| f.as_str()).is_some_and(|f| NUMERIC_FORMATS.contains(&f)) {
            o.remove("format");
        }
        for (key, value) in o.iter_mut() {
            match (key.as_str(), value) {
                ("properties" | "patternProperties" | "$defs" | "definitions", serde_json::Value::Object(map)) => {
                    map.values_mut().for_each(subschema)
                }
                ("anyOf" | "oneOf" | "allOf" | "prefixItems", serde_json::Value::Array(list)) => {
                    list.iter_mut().for_each(subschema)
                }
                ("items" | "not" | "if" | "then" | "else" | "contains", v) => subschema(v),
                (_, serde_json::Value::Object(inner)) if key != "const" && key != "default" && key != "examples" => {
                    walk(inner)
                }
                _ => {}
            }
        }
    }
    let mut schema = (*schema).clone();
    walk(&mut schema);
    std::sync::Arc::new(schema)
}

/// Every tool, in the order they are listed.
pub fn catalog() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let read = || ToolAnnotations::new().read_only(true).destructive(false);
        let write = || ToolAnnotations::new().read_only(false).destructive(false);
        let destroy = || ToolAnnotations::new().read_only(false).destructive(true);
        vec![
            tool::<NoArgs, AgentList>(
                "list_agents",
                "The agents this server can run, whether each is installed, and what each supports.",
                read(),
            ),
            tool::<CreateSession, SessionCreated>(
                "create_session",
                "Starts a session of an agent (`agent`: claude, codex, opencode or mock) in `cwd` (inside the \
                 workspace). With a `prompt` its first turn starts at once; wait for it with wait_for_turn. \
                 `permission_mode` default asks through permissions; bypass never asks.",
                write(),
            ),
            tool::<SendMessageArgs, MessageAccepted>(
                "send_message",
                "Sends a user message to a session. It starts a turn, or runs after the current one; answers \
                 the turn_id to wait for.",
                write(),
            ),
            tool::<WaitForTurnArgs, TurnProgress>(
                "wait_for_turn",
                "Waits until a turn (turn_id, or the session's latest) ends, needs an answer (state waiting: \
                 answer its permissions or questions, then wait again), or timeout_s passes (done false, \
                 timed_out true: the turn goes on; wait again). Answers the stop reason, the final assistant \
                 text, the tool calls in brief and the usage. Sends progress notifications when asked.",
                read(),
            ),
            tool::<GetEventsArgs, EventPage>(
                "get_events",
                "A page of a session's events (the universal event stream) after a seq cursor; read on with \
                 after = next_after while has_more.",
                read(),
            ),
            tool::<AnswerPermissionArgs, Done>(
                "answer_permission",
                "Answers an open permission request of a session: allow_once, allow_always or deny.",
                write(),
            ),
            tool::<AnswerQuestionArgs, Done>(
                "answer_question",
                "Answers an open question of a session: `answers` holds one list of chosen option labels per \
                 question, or `reject` declines it.",
                write(),
            ),
            tool::<SessionArgs, Done>("interrupt", "Interrupts a session's running turn.", write()),
            tool::<DeleteSessionArgs, Session>(
                "delete_session",
                "Ends a session and every process it started; its events stay readable unless `purge`.",
                destroy(),
            ),
            tool::<ListSessionsArgs, SessionList>(
                "list_sessions",
                "Sessions, newest first, by status or agent; page on with cursor = next_cursor.",
                read(),
            ),
            tool::<ReadFileArgs, FileContent>(
                "read_file",
                "Reads a file of the workspace (path relative to its root): UTF-8 text, or base64 when the \
                 bytes are not text. Large files are read in pieces with offset and max_bytes.",
                read(),
            ),
            tool::<WriteFileArgs, FsEntry>(
                "write_file",
                "Creates or replaces a file of the workspace atomically, making its folders; content is UTF-8 \
                 text, or base64 with encoding base64.",
                destroy(),
            ),
            tool::<PathArgs, FsEntries>(
                "list_dir",
                "The entries of a folder of the workspace (\"\" for its root).",
                read(),
            ),
            tool::<CreateProcess, Process>(
                "start_process",
                "Starts a process beside the agents (a dev server, a test watcher, a shell): `command` and \
                 `args` in `cwd` (inside the workspace), under a terminal unless tty is false. It keeps running \
                 after this call; read its output with read_process_output, its screen with read_screen. An \
                 agent passes its own session_id (the TETHER_SESSION_ID variable) so the ports the process \
                 opens are announced in its session.",
                write(),
            ),
            tool::<NoArgs, ProcessList>("list_processes", "Every process, newest first, running or ended.", read()),
            tool::<ReadOutputArgs, ProcessOutput>(
                "read_process_output",
                "A process's output from byte offset `after` as text (and base64); read on with after = end. \
                 `missed` counts bytes older than what is kept; `exited` says the output is complete.",
                read(),
            ),
            tool::<ProcessArgs, Screen>(
                "read_screen",
                "What a process's terminal shows now, one string per row, with the cursor and the title: \
                 for full-screen programs whose output is not lines.",
                read(),
            ),
            tool::<SendInputArgs, Done>(
                "send_input",
                "Types text into a process's terminal (add \"\\n\" to press Enter; \"\\u0003\" is Ctrl-C).",
                write(),
            ),
            tool::<ProcessArgs, Process>(
                "stop_process",
                "Stops a process and every process it started (SIGTERM, then SIGKILL after 3 s); answers its \
                 record with the exit.",
                destroy(),
            ),
            tool::<NoArgs, PortList>(
                "list_ports",
                "The TCP ports listening in the sandbox (tether's own excluded), each with the pid, process_id and \
                 session_id that own it where the server can see them.",
                read(),
            ),
            tool::<PreviewLinkArgs, PreviewLink>(
                "create_preview_link",
                "A signed, expiring link (path on tether's own address, no token in it) that opens the server on \
                 `port` in a browser: give it to the user. ttl_secs (default 3600), style proxy (the app sees \
                 `/`) or absproxy (the app sees `/v1/ports/PORT/absproxy/…`), path inside the app.",
                write(),
            ),
        ]
    })
}

/// What a tool call can fail with: the session's or the filesystem's own
/// error, or one of the tool's. Answered as the HTTP API answers the same
/// failure ([`AsProblem`]).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Exec(#[from] crate::exec::ExecError),
    #[error(transparent)]
    Ports(#[from] crate::ports::PortError),
    /// The arguments did not decode (the sentence names the field).
    #[error("{0}")]
    Arguments(String),
    #[error("no tool {name:?}")]
    NoTool { name: String },
    #[error("`timeout_s` must be between 0 and {max}")]
    Timeout { max: f64 },
    #[error("`max_bytes` must be between 1 and {max}")]
    MaxBytes { max: u64 },
    #[error("`content` is not valid base64: {0}")]
    Base64(base64::DecodeError),
    #[error("the file is larger than the upload limit ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("the wait was cancelled by the client")]
    Cancelled,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("cannot encode a tool result: {0}")]
    Encode(serde_json::Error),
    #[error("cannot read an event page: {0}")]
    EventPage(serde_json::Error),
    #[error("filesystem task failed: {0}")]
    Task(tokio::task::JoinError),
}

impl AsProblem for ToolError {
    fn code(&self) -> ErrorCode {
        match self {
            ToolError::Session(e) => e.code(),
            ToolError::Fs(e) => e.code(),
            ToolError::Exec(e) => e.code(),
            ToolError::Ports(e) => e.code(),
            ToolError::Arguments(_) | ToolError::Timeout { .. } | ToolError::MaxBytes { .. } | ToolError::Base64(_) => {
                ErrorCode::InvalidRequest
            }
            ToolError::NoTool { .. } => ErrorCode::NotFound,
            ToolError::TooLarge { .. } => ErrorCode::PayloadTooLarge,
            ToolError::Cancelled => ErrorCode::Conflict,
            ToolError::ShuttingDown => ErrorCode::AgentUnavailable,
            ToolError::Encode(_) | ToolError::EventPage(_) | ToolError::Task(_) => ErrorCode::Internal,
        }
    }

    fn status(&self) -> axum::http::StatusCode {
        match self {
            ToolError::Session(e) => e.status(),
            ToolError::Fs(e) => e.status(),
            ToolError::Exec(e) => e.status(),
            ToolError::Ports(e) => e.status(),
            other => crate::error::status_of(other.code()),
        }
    }

    fn detail(&self) -> String {
        match self {
            ToolError::Session(e) => e.detail(),
            ToolError::Fs(e) => e.detail(),
            ToolError::Exec(e) => e.detail(),
            ToolError::Ports(e) => e.detail(),
            other => other.to_string(),
        }
    }

    fn reset(&self) -> Option<tether_protocol::StreamReset> {
        match self {
            ToolError::Session(e) => e.reset(),
            _ => None,
        }
    }
}

/// Arguments decoded as the HTTP API decodes bodies: the error names the field.
fn args<T: DeserializeOwned>(arguments: Value) -> Result<T, ToolError> {
    serde_path_to_error::deserialize(arguments)
        .map_err(|e| ToolError::Arguments(crate::error::invalid_at("arguments", e)))
}

fn json<T: Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(ToolError::Encode)
}

const DONE: Done = Done { ok: true };

/// The tool error for a failed operation: the HTTP problem's code, status and detail.
fn tool_error(e: &impl AsProblem) -> CallToolResult {
    let (status, code, detail) = (e.status(), e.code(), e.detail());
    if status.is_server_error() {
        tracing::error!(%code, %detail, "tool call failed");
    }
    let problem = crate::error::problem(status, code, &detail, e.reset().as_ref());
    let text = format!("{code} ({}): {}", problem.status, problem.detail);
    let mut meta = serde_json::Map::new();
    let mut problem = serde_json::to_value(&problem).unwrap_or(Value::Null);
    if let Some(p) = problem.as_object_mut() {
        p.insert("code".into(), Value::from(code.as_str()));
    }
    meta.insert("tether/problem".into(), problem);
    CallToolResult::error(vec![ContentBlock::text(text)]).with_meta(Some(MetaObject(meta)))
}

impl Tools {
    async fn call(&self, name: &str, arguments: Value, ctx: &RequestContext<RoleServer>) -> Result<Value, ToolError> {
        let shared = &self.app.shared;
        // The caller's span, as MCP's `_meta` carries W3C Trace Context: a
        // turn started here joins its trace.
        let traceparent = ctx.meta.get(crate::telemetry::TRACEPARENT).and_then(Value::as_str);
        match name {
            "list_agents" => {
                let NoArgs {} = args(arguments)?;
                json(&crate::agents::list(&shared.data_dir).await)
            }
            "create_session" => {
                let req: CreateSession = args(arguments)?;
                let (session, turn_id) = shared.create_with_turn(req, traceparent).await?;
                json(&SessionCreated { session_id: session.id.clone(), turn_id, session })
            }
            "send_message" => {
                let a: SendMessageArgs = args(arguments)?;
                let turn_id = shared.send(&a.session_id, vec![Part::Text { text: a.text }], traceparent).await?;
                json(&MessageAccepted { turn_id })
            }
            "wait_for_turn" => self.wait(args(arguments)?, ctx).await.and_then(|r| json(&r)),
            "get_events" => {
                let a: GetEventsArgs = args(arguments)?;
                let page = shared.events_page(&a.session_id, a.after, a.limit, a.include_raw).await?;
                serde_json::from_str(&page).map_err(ToolError::EventPage)
            }
            "answer_permission" => {
                let a: AnswerPermissionArgs = args(arguments)?;
                shared.permission(&a.session_id, a.permission_id, a.decision, a.message).await?;
                json(&DONE)
            }
            "answer_question" => {
                let a: AnswerQuestionArgs = args(arguments)?;
                shared
                    .question(&a.session_id, a.question_id, QuestionReply { answers: a.answers, reject: a.reject })
                    .await?;
                json(&DONE)
            }
            "interrupt" => {
                let a: SessionArgs = args(arguments)?;
                shared.interrupt(&a.session_id).await?;
                json(&DONE)
            }
            "delete_session" => {
                let a: DeleteSessionArgs = args(arguments)?;
                json(&shared.delete(&a.session_id, a.purge).await?)
            }
            "list_sessions" => {
                let a: ListSessionsArgs = args(arguments)?;
                json(&shared.list(a.status, a.agent, a.limit, a.cursor.as_deref()).await?)
            }
            "read_file" => json(&self.read_file(args(arguments)?).await?),
            "write_file" => json(&self.write_file(args(arguments)?).await?),
            "list_dir" => {
                let a: PathArgs = args(arguments)?;
                let root = shared.workspace.clone();
                json(&blocking(move || crate::fs::list(&root, &a.path)).await?)
            }
            "start_process" => {
                let req: CreateProcess = args(arguments)?;
                let cwd = shared.resolve_cwd(req.cwd.as_deref())?;
                if let Some(session) = &req.session_id {
                    shared.get(session).await?;
                }
                let processes = self.app.processes.clone();
                let started =
                    tokio::task::spawn_blocking(move || processes.start(req, cwd)).await.map_err(ToolError::Task)??;
                json(&started)
            }
            "list_processes" => {
                let NoArgs {} = args(arguments)?;
                json(&ProcessList { processes: self.app.processes.list() })
            }
            "read_process_output" => {
                let a: ReadOutputArgs = args(arguments)?;
                let max = a.max_bytes.unwrap_or(64 * 1024);
                if max == 0 || max > crate::exec::MAX_READ as u64 {
                    return Err(ToolError::MaxBytes { max: crate::exec::MAX_READ as u64 });
                }
                json(&self.app.processes.get(&a.process_id)?.output(a.after.unwrap_or(0), max as usize))
            }
            "read_screen" => {
                let a: ProcessArgs = args(arguments)?;
                json(&self.app.processes.get(&a.process_id)?.screen()?)
            }
            "send_input" => {
                let a: SendInputArgs = args(arguments)?;
                self.app.processes.get(&a.process_id)?.write(a.text.into_bytes())?;
                json(&DONE)
            }
            "stop_process" => {
                let a: ProcessArgs = args(arguments)?;
                let entry = self.app.processes.get(&a.process_id)?;
                json(&entry.stop(ProcessEnd::Stopped).await)
            }
            "list_ports" => {
                let NoArgs {} = args(arguments)?;
                json(&self.app.ports.list())
            }
            "create_preview_link" => {
                let a: PreviewLinkArgs = args(arguments)?;
                let now_ms = u64::try_from(crate::ids::now_ms()).unwrap_or(0);
                json(&self.app.ports.create_link(a.port, a.link(), now_ms).await?)
            }
            _ => Err(ToolError::NoTool { name: name.to_string() }),
        }
    }

    async fn wait(&self, a: WaitForTurnArgs, ctx: &RequestContext<RoleServer>) -> Result<TurnProgress, ToolError> {
        let timeout = a.timeout_s.unwrap_or(WAIT_DEFAULT_S);
        if !timeout.is_finite() || !(0.0..=WAIT_MAX_S).contains(&timeout) {
            return Err(ToolError::Timeout { max: WAIT_MAX_S });
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(timeout);
        // Progress goes out from its own task (the wait's callback cannot
        // await); the task is drained before the answer, so every
        // notification goes out ahead of it.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let sender = ctx.meta.get_progress_token().map(|token| {
            let peer = ctx.peer.clone();
            tokio::spawn(async move {
                let mut n = 0.0;
                while let Some(message) = rx.recv().await {
                    n += 1.0;
                    let mut p = ProgressNotificationParam::new(token.clone(), n);
                    p.message = Some(message);
                    if peer.notify_progress(p).await.is_err() {
                        break;
                    }
                }
            })
        });
        let progress = |e: &crate::store::Committed| {
            if let Some(line) = crate::session::wait::progress_line(e) {
                let _ = tx.send(line);
            }
        };
        let mut shutdown = self.app.shutdown.clone();
        let shared = self.app.shared.clone();
        let report = tokio::select! {
            r = shared.wait_turn(&a.session_id, a.turn_id, deadline, progress) => r.map_err(ToolError::from),
            _ = ctx.ct.cancelled() => Err(ToolError::Cancelled),
            _ = shutdown.wait_for(|down| *down) => Err(ToolError::ShuttingDown),
        };
        drop(tx);
        if let Some(sender) = sender {
            let _ = tokio::time::timeout(Duration::from_secs(5), sender).await;
        }
        report
    }

    async fn read_file(&self, a: ReadFileArgs) -> Result<FileContent, ToolError> {
        let max = a.max_bytes.unwrap_or(READ_DEFAULT_BYTES);
        if max == 0 || max > READ_MAX_BYTES {
            return Err(ToolError::MaxBytes { max: READ_MAX_BYTES });
        }
        let root = self.app.shared.workspace.clone();
        let path = a.path.clone();
        let offset = a.offset;
        let (mut bytes, size) = blocking(move || crate::fs::read_range(&root, &path, offset, max)).await?;
        // A read cut inside a UTF-8 character is still text: end it before that character.
        let cut_char = match std::str::from_utf8(&bytes) {
            Err(e) if e.error_len().is_none() && offset + (bytes.len() as u64) < size => Some(e.valid_up_to()),
            _ => None,
        };
        if let Some(at) = cut_char.filter(|&at| at > 0) {
            bytes.truncate(at);
        }
        let truncated = offset + (bytes.len() as u64) < size;
        let (encoding, content) = match String::from_utf8(bytes) {
            Ok(text) => (Encoding::Utf8, text),
            Err(e) => (Encoding::Base64, base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
        };
        Ok(FileContent { path: a.path, size, offset, encoding, content, truncated })
    }

    async fn write_file(&self, a: WriteFileArgs) -> Result<FsEntry, ToolError> {
        let bytes = match a.encoding {
            Encoding::Utf8 => a.content.into_bytes(),
            Encoding::Base64 => {
                base64::engine::general_purpose::STANDARD.decode(a.content.trim()).map_err(ToolError::Base64)?
            }
        };
        let limit = self.app.max_upload_bytes;
        if bytes.len() as u64 > limit {
            return Err(ToolError::TooLarge { limit });
        }
        let root = self.app.shared.workspace.clone();
        blocking(move || crate::fs::write_file(&root, &a.path, &bytes)).await
    }
}

/// Runs blocking filesystem work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, FsError> + Send + 'static) -> Result<T, ToolError> {
    Ok(tokio::task::spawn_blocking(f).await.map_err(ToolError::Task)??)
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("tether", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(catalog().to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !catalog().iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(format!("no tool {:?}", request.name), None));
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.call(&request.name, arguments, &ctx).await {
            Ok(value) => CallToolResult::structured(value),
            Err(e) => tool_error(&e),
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_input_schema_and_an_output_schema() {
        let tools = catalog();
        assert_eq!(tools.len(), 21);
        for t in tools {
            assert_eq!(t.input_schema.get("type").and_then(Value::as_str), Some("object"), "{}", t.name);
            let output = t.output_schema.as_ref().unwrap_or_else(|| panic!("{} has no output schema", t.name));
            assert_eq!(output.get("type").and_then(Value::as_str), Some("object"), "{}", t.name);
        }
        let wait = tools.iter().find(|t| t.name == "wait_for_turn").unwrap();
        let props = wait.input_schema.get("properties").and_then(Value::as_object).unwrap();
        assert!(props.contains_key("session_id") && props.contains_key("timeout_s") && props.contains_key("turn_id"));
    }

    #[test]
    fn a_failed_operation_is_a_tool_error_with_the_problem_code_and_detail() {
        let r = tool_error(&ToolError::from(SessionError::NotFound { id: "ses_x".into() }));
        assert_eq!(r.is_error, Some(true));
        let text = match &r.content[0] {
            ContentBlock::Text(t) => t.text.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(text, "session_not_found (404): no session with id \"ses_x\"");
        let meta = r.meta.unwrap();
        assert_eq!(meta.0["tether/problem"]["code"], "session_not_found");
        assert_eq!(meta.0["tether/problem"]["status"], 404);
    }
}
