//! The OpenAPI 3.1 document and the event JSON Schema, generated from the
//! types; with them, the UI's list of event types (`ui/js/event-types.js`).
//!
//! `TETHER_BLESS=1 cargo test -p tether-protocol` rewrites the committed files.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{JsonSchema, Schema};
use serde_json::{json, Map, Value};

use crate::api::*;
use crate::computer::*;
use crate::event::*;
use crate::query::*;

/// How a body or an answer is described.
enum Body {
    None,
    Json(fn(&mut SchemaGenerator) -> Value),
    /// A stream of events and control frames (`text/event-stream`).
    Events,
    /// The change stream of `GET /v1/fs/watch` (`text/event-stream`).
    Watch,
    /// The progress of an agent install (`text/event-stream`), or the agent as JSON.
    Install,
    /// A WebSocket upgrade (101) whose text messages are events or control frames.
    Ws,
    /// A WebSocket upgrade (101): terminal bytes (binary) and `TerminalControl` (text).
    TerminalWs,
    /// Bytes of any of these media types.
    Bytes(&'static [&'static str]),
    /// JSON, or bytes of these media types (content negotiation).
    JsonOr(fn(&mut SchemaGenerator) -> Value, &'static [&'static str]),
    /// The answer of `/mcp`: JSON-RPC as JSON or as an SSE stream.
    JsonRpc,
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

/// One answer of a route besides the `default` problem.
struct Answer {
    status: u16,
    description: &'static str,
    body: Body,
    headers: Value,
}

/// An OpenAPI link: the operation `target` can be called with `parameters`
/// taken from this answer (so stateful testing reaches routes that need an id).
struct Link {
    status: u16,
    name: &'static str,
    target: &'static str,
    parameters: Value,
}

struct Route {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// Schemas of path parameters that are more than any string.
    path_params: Vec<(&'static str, Value)>,
    /// Header parameters (OpenAPI Parameter Objects).
    headers: Vec<Value>,
    /// The route's query struct: its properties are the query parameters.
    query: Option<fn(&mut SchemaGenerator) -> Schema>,
    request: Body,
    answers: Vec<Answer>,
    links: Vec<Link>,
}

fn query<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.root_schema_for::<T>()
}

fn op(method: &'static str, path: &'static str, summary: &'static str) -> Route {
    Route {
        method,
        path,
        summary,
        path_params: Vec::new(),
        headers: Vec::new(),
        query: None,
        request: Body::None,
        answers: Vec::new(),
        links: Vec::new(),
    }
}

impl Route {
    fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(query::<T>);
        self
    }

    fn body(mut self, body: Body) -> Self {
        self.request = body;
        self
    }

    fn ok(self, status: u16, body: Body) -> Self {
        self.answer(status, "ok", body)
    }

    fn answer(mut self, status: u16, description: &'static str, body: Body) -> Self {
        self.answers.push(Answer { status, description, body, headers: Value::Null });
        self
    }

    /// A redirect to `to` (no body).
    fn redirect(mut self, status: u16, to: &'static str) -> Self {
        let headers = json!({"Location": {"required": true, "schema": {"const": to}}});
        self.answers.push(Answer { status, description: "a redirect, no body", body: Body::None, headers });
        self
    }

    fn path_param(mut self, name: &'static str, schema: Value) -> Self {
        self.path_params.push((name, schema));
        self
    }

    fn header(mut self, name: &str, required: bool, schema: Value, description: &str) -> Self {
        self.headers.push(
            json!({"name": name, "in": "header", "required": required, "schema": schema, "description": description}),
        );
        self
    }

    fn link(mut self, status: u16, name: &'static str, target: &'static str, parameters: Value) -> Self {
        self.links.push(Link { status, name, target, parameters });
        self
    }

    /// The `operationId`: the method and the path's words (`get_sessions_id_events`).
    fn id(&self) -> String {
        operation_id(self.method, self.path)
    }
}

fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<&str> =
        path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty() && *w != "v1").collect();
    match (words.is_empty(), path.len() > 1 && path.ends_with('/')) {
        (true, _) => format!("{method}_root"),
        // `/ui/` beside `/ui`.
        (false, true) => format!("{method}_{}_index", words.join("_")),
        (false, false) => format!("{method}_{}", words.join("_")),
    }
}

/// A `{name}` of a global MCP server.
fn mcp_server_name() -> Value {
    json!({"type": "string", "pattern": MCP_SERVER_NAME_PATTERN, "maxLength": MCP_SERVER_NAME_MAX})
}

fn skill_name() -> Value {
    json!({"type": "string", "pattern": SKILL_NAME_PATTERN, "maxLength": SKILL_NAME_MAX})
}

/// `Last-Event-ID`: the cursor a stream resumes after (wins over `after`).
fn last_event_id(route: Route) -> Route {
    route.header(
        "Last-Event-ID",
        false,
        json!({"type": "string", "pattern": "^[0-9]{1,19}$"}),
        "the cursor to resume after, as the last frame's `id:` (wins over `after`)",
    )
}

/// The headers of a WebSocket opening handshake (RFC 6455).
fn websocket(route: Route) -> Route {
    route
        .header("Connection", true, json!({"const": "Upgrade"}), "the opening handshake")
        .header("Upgrade", true, json!({"const": "websocket"}), "the opening handshake")
        .header("Sec-WebSocket-Version", true, json!({"const": "13"}), "the opening handshake")
        .header(
            "Sec-WebSocket-Key",
            true,
            json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{22}==$"}),
            "the opening handshake: 16 random bytes, base64",
        )
}

/// `Mcp-Session-Id`: the MCP session, from the answer to `initialize`.
fn mcp_session(route: Route, required: bool) -> Route {
    route.header(
        "Mcp-Session-Id",
        required,
        json!({"type": "string", "minLength": 1}),
        "the MCP session, as answered to `initialize` (404 when it ended or the server restarted)",
    )
}

/// The W3C Trace Context header a turn-starting request may carry.
fn traceparent(route: Route) -> Route {
    route.header(
        "traceparent",
        false,
        json!({"type": "string"}),
        "W3C Trace Context: the turn this request starts joins this trace (its spans are children of this span, \
         and `turn.started` records the trace). Ignored when malformed, as the W3C recommendation says: the turn \
         starts a trace of its own.",
    )
}

/// What the creating operations hand to the routes that need an id.
fn session_links(route: Route) -> Route {
    let id = || json!({"id": "$response.body#/id"});
    route
        .link(201, "GetSession", "get_sessions_id", id())
        .link(201, "SendMessage", "post_sessions_id_messages", id())
        .link(201, "Interrupt", "post_sessions_id_interrupt", id())
        .link(201, "GetEvents", "get_sessions_id_events", id())
        .link(201, "StreamEvents", "get_sessions_id_events_stream", id())
        .link(201, "DeleteSession", "delete_sessions_id", id())
        // The permission and question ids come from the session's events; the link gives the session.
        .link(201, "AnswerPermission", "post_sessions_id_permissions_permission_id", id())
        .link(201, "AnswerQuestion", "post_sessions_id_questions_question_id", id())
}

fn routes() -> Vec<Route> {
    use Body::*;
    const UI_TYPES: &[&str] =
        &["text/html", "text/javascript", "text/css", "image/svg+xml", "image/png", "application/json"];
    let mut routes = vec![
        op(
            "get",
            "/v1/health",
            "Readiness, no auth: `ok` (200) when ready, `starting` (503, Retry-After) while the store opens and \
             recovery runs",
        )
        .ok(200, Json(schema::<Health>))
        .answer(503, "starting: retry after `Retry-After`", Json(schema::<Health>)),
        op("get", "/v1/info", "Version, uptime, data dir, workspace root, capabilities").ok(200, Json(schema::<Info>)),
        op("get", "/v1/openapi.json", "This document").ok(200, Bytes(&["application/json"])),
        op("get", "/metrics", "Prometheus text metrics").ok(200, Bytes(&["text/plain"])),
        op("get", "/", "Redirects (307) to the inspector, `/ui/`; no auth").redirect(307, "/ui/"),
        op("get", "/ui", "Redirects (308) to `/ui/`; no auth").redirect(308, "/ui/"),
        op("get", "/ui/", "The inspector web UI (embedded); no auth; `If-None-Match` with its ETag answers 304")
            .ok(200, Bytes(&["text/html"]))
            .answer(304, "not modified", None),
        op("get", "/ui/{path}", "A file of the inspector web UI; no auth; `If-None-Match` with its ETag answers 304")
            .ok(200, Bytes(UI_TYPES))
            .answer(304, "not modified", None),
        op("get", "/v1/agents", "Every known agent").ok(200, Json(schema::<AgentList>)),
        op("get", "/v1/agents/{agent}", "One agent").ok(200, Json(schema::<Agent>)),
        mcp_session(
            op(
                "post",
                "/mcp",
                "tether as an MCP server (Streamable HTTP, JSON-RPC): the session, event and file tools. Send \
                 `Accept: application/json, text/event-stream` (406 otherwise) and a JSON-RPC message as \
                 `application/json` (415 otherwise); answers JSON or an SSE stream of JSON-RPC messages per the \
                 MCP transport, 202 for a notification or a response",
            ),
            false,
        )
        .body(Json(|_| json!({"type": "object", "required": ["jsonrpc"], "properties": {"jsonrpc": {"const": "2.0"}}})))
        .ok(200, JsonRpc)
        .answer(202, "accepted (a notification or a response): no body", None),
        mcp_session(
            op(
                "get",
                "/mcp",
                "The MCP transport's stream of server messages for an MCP session (send `Accept: text/event-stream`)",
            ),
            true,
        )
        .ok(200, Bytes(&["text/event-stream"])),
        mcp_session(op("delete", "/mcp", "Ends an MCP session"), true).answer(204, "ended", None),
        op(
            "post",
            "/v1/agents/{agent}/install",
            "Installs the agent's pinned CLI version from npm into the data dir (no body) and answers the agent. With \
             `Accept: text/event-stream` the answer is SSE: `progress` events, then one `done` (the agent) or \
             `error` (a problem)",
        )
        .ok(200, Install),
        op("get", "/v1/mcp/servers", "The global MCP servers, applied to every new session, by name")
            .ok(200, Json(schema::<McpServerList>)),
        op("get", "/v1/mcp/servers/{name}", "One global MCP server")
            .path_param("name", mcp_server_name())
            .ok(200, Json(schema::<McpServer>)),
        op(
            "put",
            "/v1/mcp/servers/{name}",
            "Add (201) or replace (200) a global MCP server; the name is 1-48 ASCII letters, digits, `-` and `_`, \
             starting with a letter or digit, without `__`",
        )
        .path_param("name", mcp_server_name())
        .body(Json(schema::<McpServer>))
        .answer(201, "added", Json(schema::<McpServer>))
        .answer(200, "replaced", Json(schema::<McpServer>))
        .link(201, "GetServer", "get_mcp_servers_name", json!({"name": "$request.path.name"}))
        .link(201, "ListTools", "get_mcp_servers_name_tools", json!({"name": "$request.path.name"}))
        .link(201, "DeleteServer", "delete_mcp_servers_name", json!({"name": "$request.path.name"}))
        .link(200, "GetReplaced", "get_mcp_servers_name", json!({"name": "$request.path.name"})),
        op("delete", "/v1/mcp/servers/{name}", "Remove a global MCP server; answers it")
            .path_param("name", mcp_server_name())
            .ok(200, Json(schema::<McpServer>)),
        op(
            "get",
            "/v1/mcp/servers/{name}/tools",
            "Connect to a global MCP server and list its tools; 502 `mcp_unavailable` when it cannot start or does \
             not speak MCP, 504 when it does not answer in time",
        )
        .path_param("name", mcp_server_name())
        .query::<McpToolsQuery>()
        .ok(200, Json(schema::<McpToolList>)),
        session_links(
            traceparent(op(
                "post",
                "/v1/sessions",
                "Create a session (422 `agent_not_installed` when the agent's CLI is not installed)",
            ))
            .body(Json(schema::<CreateSession>))
            .answer(201, "created", Json(schema::<Session>)),
        ),
        op("get", "/v1/sessions", "List sessions, newest first")
            .query::<SessionListQuery>()
            .ok(200, Json(schema::<SessionList>)),
        op("get", "/v1/sessions/{id}", "One session").ok(200, Json(schema::<Session>)),
        op(
            "delete",
            "/v1/sessions/{id}",
            "Terminate the agent's process group and end the session (it stays readable, `ended`); \
             `purge=true` also deletes its history",
        )
        .query::<SessionDeleteQuery>()
        .ok(200, Json(schema::<Session>)),
        traceparent(op("post", "/v1/sessions/{id}/messages", "Send a user message; the turn runs in the background"))
            .body(Json(schema::<SendMessage>))
            .answer(202, "accepted", Json(schema::<MessageAccepted>)),
        op("post", "/v1/sessions/{id}/interrupt", "Interrupt the running turn").answer(202, "accepted", None),
        op("post", "/v1/sessions/{id}/permissions/{permission_id}", "Answer a permission request")
            .body(Json(schema::<PermissionReply>))
            .answer(200, "answered", None),
        op("post", "/v1/sessions/{id}/questions/{question_id}", "Answer or reject a question")
            .body(Json(schema::<QuestionReply>))
            .answer(200, "answered", None),
        op("get", "/v1/sessions/{id}/events", "A page of a session's events (409 `cursor_ahead` past its last seq)")
            .query::<EventPageQuery>()
            .ok(200, Json(schema::<EventPage>)),
        last_event_id(op(
            "get",
            "/v1/sessions/{id}/events/stream",
            "SSE of one session; resumes after Last-Event-ID or `after` (seq); a cursor beyond the session's last \
             seq gets a first `stream.reset` frame (id: the last seq), then the events after it",
        ))
        .query::<StreamQuery>()
        .ok(200, Events),
        websocket(op(
            "get",
            "/v1/sessions/{id}/events/ws",
            "The same stream over a WebSocket: one text message per event (the JSON of SSE `data:`), control \
             frames as `{\"type\":\"stream.reset\",\"data\":{..}}`, pings as keepalive; a request that is not an \
             upgrade is 426 `upgrade_required`",
        ))
        .query::<StreamQuery>()
        .ok(101, Ws),
        last_event_id(op(
            "get",
            "/v1/events/stream",
            "SSE of every session; resumes after Last-Event-ID or `after` (gseq); a cursor beyond the store's last \
             gseq gets a first `stream.reset` frame (`last_seq` and id: the last gseq), then the events after it; \
             `types` (comma-separated event types, on every stream) sends only those",
        ))
        .query::<StreamQuery>()
        .ok(200, Events),
        websocket(op(
            "get",
            "/v1/events/ws",
            "The global stream over a WebSocket (cursor gseq), framed as /v1/sessions/{id}/events/ws",
        ))
        .query::<StreamQuery>()
        .ok(101, Ws),
        op("get", "/v1/fs/entries", "List a directory of the workspace")
            .query::<FsPathQuery>()
            .ok(200, Json(schema::<FsEntries>)),
        op("get", "/v1/fs/stat", "One entry of the workspace").query::<FsPathQuery>().ok(200, Json(schema::<FsEntry>)),
        op(
            "get",
            "/v1/fs/file",
            "A file's bytes, streamed; `Range: bytes=a-b` answers 206 (416 outside the file); a directory is 409",
        )
        .query::<FsPathQuery>()
        .ok(200, Bytes(&["application/octet-stream"]))
        .answer(206, "the asked range", Bytes(&["application/octet-stream"])),
        op(
            "put",
            "/v1/fs/file",
            "Write the body to a file (streamed, atomic: temp file + rename); creates parents; a directory (the \
             root included) is 409. A body sent with `Content-Encoding: gzip` is stored decoded; another encoding \
             is 415 `unsupported_encoding`",
        )
        .query::<FsPathQuery>()
        .body(Bytes(&["application/octet-stream"]))
        .ok(200, Json(schema::<FsEntry>))
        .link(200, "StatFile", "get_fs_stat", json!({"path": "$response.body#/path"}))
        .link(200, "ReadFile", "get_fs_file", json!({"path": "$response.body#/path"}))
        .link(200, "DeleteFile", "delete_fs_entries", json!({"path": "$response.body#/path"})),
        op(
            "delete",
            "/v1/fs/entries",
            "Delete a file, symlink or directory (`recursive=true` for a non-empty one); the root is 409",
        )
        .query::<FsDeleteQuery>()
        .answer(204, "deleted", None),
        op(
            "post",
            "/v1/fs/mkdir",
            "Create a directory and its parents: 201 when created, 200 when it already existed (`\"\"`, the root, \
             always does)",
        )
        .body(Json(schema::<MkdirRequest>))
        .answer(201, "created", Json(schema::<FsEntry>))
        .answer(200, "it already existed", Json(schema::<FsEntry>))
        .link(201, "ListDir", "get_fs_entries", json!({"path": "$response.body#/path"})),
        op(
            "post",
            "/v1/fs/upload",
            "Extract a tar body (`application/x-tar`; gzip as `Content-Encoding: gzip` or `application/gzip`; another \
             encoding is 415 `unsupported_encoding`) under `path`; entries that climb out, or whose names are not \
             UTF-8, are refused",
        )
        .query::<FsPathQuery>()
        .body(Bytes(&["application/x-tar", "application/gzip"]))
        .ok(200, Json(schema::<FsEntry>)),
        op("get", "/v1/fs/download", "A directory as a tar stream (symlinks stored as links)")
            .query::<FsPathQuery>()
            .ok(200, Bytes(&["application/x-tar"])),
        last_event_id(op(
            "get",
            "/v1/fs/watch",
            "SSE of changes under `path` (`event: watch.<kind>`, `data:` a WatchEvent; `watch.overflow` when a \
             reconnect is past the replay window); resumes after Last-Event-ID or `after`",
        ))
        .query::<FsWatchQuery>()
        .ok(200, Watch),
        op("post", "/v1/fs/move", "Move or rename an entry (not the root: 409)")
            .body(Json(schema::<MoveRequest>))
            .ok(200, Json(schema::<FsEntry>)),
        op("get", "/v1/skills", "Every skill, installed and bundled (`bundled: true`, read-only), sorted by name")
            .ok(200, Json(schema::<SkillList>)),
        op(
            "get",
            "/v1/skills/{name}",
            "One skill with the text of its files (non-UTF-8 files empty); with `Accept: application/x-tar` its \
             folder as a tar (`<name>/...`)",
        )
        .path_param("name", skill_name())
        .ok(200, JsonOr(schema::<SkillDetail>, &["application/x-tar"])),
        op(
            "put",
            "/v1/skills/{name}",
            "Install or replace a skill (201 when new, 200 when replaced): `SkillFiles` as JSON, or a tar of the \
             folder (`application/x-tar`; gzip as `Content-Encoding: gzip` or `application/gzip`) with SKILL.md at \
             its root or in one top folder `<name>/`. At most 256 files, 1 MiB per file, 8 MiB in all, 16 path \
             segments (413 past a limit); bundled names are 409",
        )
        .path_param("name", skill_name())
        .body(JsonOr(schema::<SkillFiles>, &["application/x-tar", "application/gzip"]))
        .answer(201, "installed", Json(schema::<Skill>))
        .answer(200, "replaced", Json(schema::<Skill>))
        .link(201, "GetSkill", "get_skills_name", json!({"name": "$response.body#/name"}))
        .link(201, "DeleteSkill", "delete_skills_name", json!({"name": "$response.body#/name"})),
        op("delete", "/v1/skills/{name}", "Remove an installed skill; answers it (bundled skills are 409)")
            .path_param("name", skill_name())
            .ok(200, Json(schema::<Skill>)),
        op(
            "post",
            "/v1/webhooks",
            "Subscribe a URL to the committed events (201): batches of up to 100 events POSTed in `gseq` order, \
             signed with `X-Tether-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`, retried with \
             back-off until acknowledged (2xx); at-least-once, resumed after a restart from the last acknowledged \
             `gseq`. `from`: `now` (default), `start` or a gseq (409 `cursor_ahead` past the last one). The secret \
             is never answered back",
        )
        .body(Json(schema::<CreateWebhook>))
        .answer(201, "subscribed", Json(schema::<Webhook>))
        .link(201, "GetWebhook", "get_webhooks_id", json!({"id": "$response.body#/id"}))
        .link(201, "DeleteWebhook", "delete_webhooks_id", json!({"id": "$response.body#/id"})),
        op("get", "/v1/webhooks", "Every webhook, oldest first").ok(200, Json(schema::<WebhookList>)),
        op("get", "/v1/webhooks/{id}", "One webhook and how its delivery stands; 404 `webhook_not_found`")
            .ok(200, Json(schema::<Webhook>)),
        op(
            "delete",
            "/v1/webhooks/{id}",
            "Remove a webhook and stop its delivery at once (no request starts after the answer); answers it",
        )
        .ok(200, Json(schema::<Webhook>)),
    ];
    routes.extend(computer_routes());
    routes
}

/// Processes, terminals, ports and previews.
fn computer_routes() -> Vec<Route> {
    use Body::*;
    let process_id = || json!({"type": "string", "pattern": PROCESS_ID_PATTERN, "maxLength": 128});
    let port = || json!({"type": "integer", "minimum": 1, "maximum": 65535});
    let id = || json!({"id": "$response.body#/id"});
    vec![
        op(
            "post",
            "/v1/processes",
            "Start a process beside the agents (201), in its own process group with a parent-death signal, under a \
             terminal unless `tty` is false. Its output is kept (the last `--process-output-bytes`, 1 MiB by \
             default) with byte offsets; its record outlives the server (the process does not: it ends with the \
             server and says so). 403 `path_outside_root` for a `cwd` outside the workspace, 400 when the command \
             cannot be started",
        )
        .body(Json(schema::<CreateProcess>))
        .answer(201, "started", Json(schema::<Process>))
        .link(201, "GetProcess", "get_processes_id", id())
        .link(201, "GetOutput", "get_processes_id_output", id())
        .link(201, "GetScreen", "get_processes_id_screen", id())
        .link(201, "SendInput", "post_processes_id_input", id())
        .link(201, "Resize", "post_processes_id_resize", id())
        .link(201, "Signal", "post_processes_id_signal", id())
        .link(201, "DeleteProcess", "delete_processes_id", id()),
        op("get", "/v1/processes", "Every process this store remembers, newest first")
            .ok(200, Json(schema::<ProcessList>)),
        op("get", "/v1/processes/{id}", "One process; 404 `process_not_found`")
            .path_param("id", process_id())
            .ok(200, Json(schema::<Process>)),
        op(
            "delete",
            "/v1/processes/{id}",
            "Stop a process: SIGTERM to its whole group, SIGKILL after 3 s; answers once no member is left (within \
             5 s), with its record. An ended process answers as it is",
        )
        .path_param("id", process_id())
        .ok(200, Json(schema::<Process>)),
        op(
            "post",
            "/v1/processes/{id}/input",
            "Write to the process's input (its terminal, or its stdin pipe): `text` or `base64`, at most 64 KiB; \
             409 once it ended",
        )
        .path_param("id", process_id())
        .body(Json(schema::<ProcessInput>))
        .answer(204, "written", None),
        op("post", "/v1/processes/{id}/resize", "Change the terminal's size (409 without `tty` or once ended)")
            .path_param("id", process_id())
            .body(Json(schema::<ProcessResize>))
            .ok(200, Json(schema::<Process>)),
        op("post", "/v1/processes/{id}/signal", "Send a signal to the process's whole group (409 once ended)")
            .path_param("id", process_id())
            .body(Json(schema::<ProcessSignal>))
            .answer(204, "sent", None),
        op(
            "get",
            "/v1/processes/{id}/output",
            "The output from byte offset `after` (JSON with base64 and text; `Accept: application/octet-stream` \
             for the bytes alone, with `Tether-Output-Start`/`-End`/`-Missed` headers). Output older than what \
             is kept is reported as `missed`",
        )
        .path_param("id", process_id())
        .query::<OutputQuery>()
        .ok(200, JsonOr(schema::<ProcessOutput>, &["application/octet-stream"])),
        op(
            "get",
            "/v1/processes/{id}/screen",
            "What the process's terminal shows now, as text (a server-side terminal emulator); 409 without `tty`",
        )
        .path_param("id", process_id())
        .ok(200, Json(schema::<Screen>)),
        websocket(op(
            "get",
            "/v1/processes/{id}/terminal",
            "Attach to the process's terminal: binary messages are terminal bytes both ways, text messages JSON \
             `TerminalControl` (`resize`, `replay` from the client; `attached`, `missed`, `exit` from the server). \
             The output from `after` (default: all that is kept) comes first, then live; many clients at once, a \
             slow one skips ahead (told by `missed`) and never slows the process or the others",
        ))
        .path_param("id", process_id())
        .query::<TerminalQuery>()
        .ok(101, TerminalWs),
        websocket(op(
            "get",
            "/v1/sessions/{id}/terminal",
            "Attach read-only to the agent's PTY of a live session, framed as /v1/processes/{id}/terminal",
        ))
        .query::<TerminalQuery>()
        .ok(101, TerminalWs),
        op(
            "get",
            "/v1/ports",
            "The TCP ports listening in the sandbox (tether's own excluded), with the pid, process and session \
             that own each where `/proc` shows it",
        )
        .ok(200, Json(schema::<PortList>))
        .link(200, "CreateLink", "post_ports_port_links", json!({"port": "$response.body#/ports/0/port"})),
        op(
            "post",
            "/v1/ports/{port}/links",
            "A signed, expiring preview link (201): opening it sets a cookie for this port's preview and redirects \
             into it, so a browser needs no header. 404 `port_not_listening`, 403 `port_not_allowed` for tether's \
             own port",
        )
        .path_param("port", port())
        .body(Json(schema::<CreatePreviewLink>))
        .answer(201, "created", Json(schema::<PreviewLink>)),
        op(
            "get",
            "/v1/ports/{port}/open",
            "Opens a preview link (no token needed): a valid, unexpired link answers 303 to the preview with an \
             HttpOnly cookie scoped to `/v1/ports/{port}/` that authorizes that port's preview alone; 403 \
             `preview_link_invalid` for a forged, changed, other port's or expired link. The preview itself: \
             `/v1/ports/{port}/proxy/{path}` forwards `/{path}` and `/v1/ports/{port}/absproxy/{path}` the whole \
             path to 127.0.0.1:{port}, any method, streamed, WebSocket upgrades included, tether's token and \
             cookie removed (404 `port_not_listening`, 403 `port_not_allowed` for tether's own port, 502 \
             `preview_failed`)",
        )
        .path_param("port", port())
        .query::<OpenPreviewQuery>()
        .answer(303, "to the preview (`Location`), with its cookie (`Set-Cookie`)", None),
    ]
}

/// The SSE frames of an event stream, as OpenAPI 3.2's `itemSchema` models
/// one (`event`, `id`, `data` as a JSON string): an event, whose `event:`
/// is its type, or a control frame.
fn event_frames(event: &Value) -> Value {
    let json_data =
        |schema: Value| json!({"type": "string", "contentMediaType": "application/json", "contentSchema": schema});
    let cursor = json!({"type": "string", "pattern": "^[0-9]+$"});
    let frame = |name: &str, part: &str, with_id: bool| {
        let data = json!({"$ref": format!("#/components/schemas/{part}")});
        let mut required = vec!["event", "data"];
        if with_id {
            required.push("id");
        }
        json!({"type": "object", "required": required,
               "properties": {"event": {"const": name}, "id": cursor.clone(), "data": json_data(data)}})
    };
    json!({"oneOf": [
        {"type": "object", "required": ["id", "event", "data"], "description": "an event (`event:` is its type)",
         "properties": {"event": {"enum": EVENT_TYPES}, "id": cursor.clone(), "data": json_data(event.clone())}},
        frame("stream.reset", "StreamReset", false),
        frame("stream.idle", "StreamIdle", false),
        frame("stream.ended", "StreamEnded", false),
        frame("stream.stalled", "StreamStalled", false),
    ]})
}

/// The frames of `GET /v1/fs/watch`.
fn watch_frames(g: &mut SchemaGenerator) -> Value {
    let change = schema::<WatchEvent>(g);
    let cursor = json!({"type": "string", "pattern": "^[0-9]+$"});
    let json_data =
        |schema: Value| json!({"type": "string", "contentMediaType": "application/json", "contentSchema": schema});
    let kinds: Vec<String> =
        ["created", "modified", "removed", "renamed"].iter().map(|k| format!("watch.{k}")).collect();
    json!({"oneOf": [
        {"type": "object", "required": ["id", "event", "data"],
         "properties": {"event": {"enum": kinds}, "id": cursor.clone(), "data": json_data(change)}},
        {"type": "object", "required": ["id", "event", "data"],
         "description": "the reconnect is past the replay window: look again at `path`",
         "properties": {"event": {"const": "watch.overflow"}, "id": cursor,
                        "data": json_data(json!({"type": "object", "required": ["kind", "path"],
                            "properties": {"kind": {"const": "overflow"}, "path": {"type": "string"}}}))}},
    ]})
}

/// The frames of an agent install with `Accept: text/event-stream`.
fn install_frames(g: &mut SchemaGenerator) -> Value {
    let agent = schema::<Agent>(g);
    let problem = schema::<Problem>(g);
    let json_data =
        |schema: Value| json!({"type": "string", "contentMediaType": "application/json", "contentSchema": schema});
    let progress = json!({"type": "object", "required": ["stage", "percent", "message"], "properties": {
        "stage": {"enum": ["resolving", "downloading", "verifying", "done"]},
        "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "message": {"type": "string"}}});
    json!({"oneOf": [
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"const": "progress"}, "data": json_data(progress)}},
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"const": "done"}, "data": json_data(agent)}},
        {"type": "object", "required": ["event", "data"],
         "properties": {"event": {"const": "error"}, "data": json_data(problem)}},
    ]})
}

/// Query parameters from a query struct's schema: one per property.
fn query_params(schema: &Value) -> Vec<Value> {
    let required: Vec<&str> =
        schema["required"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(props) = schema["properties"].as_object() else { return Vec::new() };
    props
        .iter()
        .map(|(name, prop)| {
            let mut prop = prop.clone();
            let description = prop.as_object_mut().and_then(|p| p.remove("description"));
            // A query parameter is absent, never `null`.
            if let Some(types) = prop["type"].as_array() {
                let types: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                prop["type"] = if types.len() == 1 { types[0].clone() } else { Value::Array(types) };
            }
            let mut param = json!({"name": name, "in": "query", "required": required.contains(&name.as_str()),
                                   "schema": prop});
            if let Some(d) = description {
                param["description"] = d;
            }
            param
        })
        .collect()
}

/// Bounds every integer schema by its `format` (`uint32` ≤ 4294967295, ..):
/// the server refuses what does not fit its type, so the document says so.
fn bound_integers(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let range = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some((json!(0), json!(u8::MAX))),
                Some("uint16") => Some((json!(0), json!(u16::MAX))),
                Some("uint32") => Some((json!(0), json!(u32::MAX))),
                Some("uint64") => Some((json!(0), json!(u64::MAX))),
                Some("int32") => Some((json!(i32::MIN), json!(i32::MAX))),
                Some("int64") => Some((json!(i64::MIN), json!(i64::MAX))),
                _ => None,
            };
            if let Some((min, max)) = range {
                map.entry("minimum").or_insert(min);
                map.entry("maximum").or_insert(max);
            }
            map.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// The OpenAPI 3.1 `webhooks` entry: what a receiver of `POST /v1/webhooks` gets.
fn delivery(g: &mut SchemaGenerator) -> Value {
    let header = |name: &str, description: &str| json!({"name": name, "in": "header", "required": true, "description": description, "schema": {"type": "string"}});
    json!({"post": {
        "summary": "One delivery: up to 100 events (without `raw`) in gseq order; answer 2xx to acknowledge them, \
            anything else (or no answer within 10 s) and the same batch is sent again after a back-off",
        "parameters": [
            header("X-Tether-Webhook-Id", "the webhook's id (`whk_…`)"),
            header("X-Tether-Event-Ids", "the `gseq` of each event of the batch, comma-separated (`session_id` + \
                `seq` names the same event); a re-sent batch has the same ids"),
            header("X-Tether-Signature", "`t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, \"<t>.<body>\")>`"),
        ],
        "requestBody": {"required": true, "content": {"application/json": {"schema": schema::<WebhookDelivery>(g)}}},
        "responses": {"2XX": {"description": "acknowledged: the cursor moves past the batch"},
                      "default": {"description": "not acknowledged: the batch is retried"}}
    }})
}

fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    SchemaGenerator::new(settings)
}

/// The OpenAPI 3.1 document of the API, as served at `/v1/openapi.json`.
pub fn openapi() -> Value {
    let mut g = generator();
    let problem = schema::<Problem>(&mut g);
    let event = schema::<Event>(&mut g);
    let control = schema::<StreamControl>(&mut g);
    for part in [schema::<StreamReset>, schema::<StreamIdle>, schema::<StreamEnded>, schema::<StreamStalled>] {
        part(&mut g);
    }
    let mut paths = Map::new();
    for route in routes() {
        let mut op = Map::new();
        op.insert("operationId".into(), json!(route.id()));
        op.insert("summary".into(), json!(route.summary));
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| {
                let schema = route
                    .path_params
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_else(|| json!({"type": "string", "minLength": 1}));
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        if let Some(query) = route.query {
            params.extend(query_params(&query(&mut g).to_value()));
        }
        params.extend(route.headers.iter().cloned());
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        let content = |g: &mut SchemaGenerator, body: &Body| -> Option<Value> {
            Some(match body {
                Body::None => return None,
                Body::Json(f) => json!({"application/json": {"schema": f(g)}}),
                Body::Events => json!({"text/event-stream": {"itemSchema": event_frames(&event)}}),
                Body::Watch => json!({"text/event-stream": {"itemSchema": watch_frames(g)}}),
                Body::Install => json!({"application/json": {"schema": schema::<Agent>(g)},
                                        "text/event-stream": {"itemSchema": install_frames(g)}}),
                Body::Ws | Body::TerminalWs => return None,
                Body::Bytes(types) => Value::Object(types.iter().map(|t| (t.to_string(), json!({}))).collect()),
                Body::JsonOr(f, types) => {
                    let mut m: Map<String, Value> = types.iter().map(|t| (t.to_string(), json!({}))).collect();
                    m.insert("application/json".into(), json!({"schema": f(g)}));
                    Value::Object(m)
                }
                Body::JsonRpc => json!({"application/json": {"schema": {"type": ["object", "array"]}},
                                        "text/event-stream": {}}),
            })
        };
        if let Some(body) = content(&mut g, &route.request) {
            op.insert("requestBody".into(), json!({"required": true, "content": body}));
        }
        let mut responses = Map::new();
        for answer in &route.answers {
            let mut r = json!({"description": answer.description});
            if let Body::Events = answer.body {
                r["description"] = json!(
                    "`text/event-stream`: frames with `id:` (the cursor), `event:` (the event type) and `data:` \
                     (an Event); also control frames `event: stream.reset` / `stream.idle` / `stream.ended` whose \
                     `data:` is the `data` of a StreamControl. A session's stream ends after its last event, \
                     `session.ended`, with a `stream.ended` frame; comments (`: connected`, `: keepalive`) are \
                     not frames"
                );
            }
            if let Body::Ws = answer.body {
                r["description"] = json!(
                    "Switching Protocols: a WebSocket whose text messages are Events or StreamControl frames \
                     (`x-websocket-message`); it closes with 1000 when idle past --stream-idle-secs or after a \
                     session's last event (a `stream.ended` message first), 1001 when the server shuts down"
                );
                r["x-websocket-message"] = json!({"oneOf": [event.clone(), control.clone()]});
            }
            if let Body::TerminalWs = answer.body {
                r["description"] = json!(
                    "Switching Protocols: a WebSocket whose binary messages are terminal bytes (in order, from the \
                     offset the last `attached` or `missed` named) and whose text messages are TerminalControl \
                     (`x-websocket-message`); it closes with 1000 after `exit`, 1001 when the server shuts down"
                );
                r["x-websocket-message"] = schema::<TerminalControl>(&mut g);
            }
            if let Some(c) = content(&mut g, &answer.body) {
                r["content"] = c;
            }
            if !answer.headers.is_null() {
                r["headers"] = answer.headers.clone();
            }
            let links: Map<String, Value> = route
                .links
                .iter()
                .filter(|l| l.status == answer.status)
                .map(|l| (l.name.to_string(), json!({"operationId": l.target, "parameters": l.parameters})))
                .collect();
            if !links.is_empty() {
                r["links"] = Value::Object(links);
            }
            responses.insert(answer.status.to_string(), r);
        }
        if route.path.contains("/events/stream") || route.path.contains("/events/ws") {
            responses.insert(
                "503".into(),
                json!({
                    "description": "`too_many_streams`: this client address already holds --max-streams-per-client \
                        event streams (SSE and WebSocket counted together); close one or retry after `Retry-After`. \
                        Any route may also answer `too_many_connections` past --max-connections",
                    "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
                    "content": {"application/problem+json": {"schema": problem.clone()}}
                }),
            );
        }
        responses.insert(
            "default".into(),
            json!({"description": "an error", "content": {"application/problem+json": {"schema": problem.clone()}}}),
        );
        op.insert("responses".into(), Value::Object(responses));
        if route.path != "/v1/health" && route.path != "/" && !route.path.starts_with("/ui") {
            op.insert("security".into(), json!([{"bearer": []}, {"tether_token": []}]));
        }
        let entry = paths.entry(route.path).or_insert_with(|| json!({}));
        if let Value::Object(m) = entry {
            m.insert(route.method.into(), Value::Object(op));
        }
    }
    let webhooks = json!({"tether.events": delivery(&mut g)});
    let schemas: Map<String, Value> = g.take_definitions(true).into_iter().collect();
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "tether", "version": crate::API_VERSION,
                 "description": "Run coding agents under PTYs; one universal event stream over HTTP/SSE.\n\n\
                    Every error is `application/problem+json` with a stable code. A query parameter a route does \
                    not list is refused (400 `invalid_request`) on every route but the inspector's pages (`/`, \
                    `/ui/...`), as is one of the wrong type or out of range."},
        "paths": paths,
        "webhooks": webhooks,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "tether_token": {"type": "apiKey", "in": "header", "name": "X-Tether-Token",
                                 "description": "the same token, where Authorization cannot carry it (checked first when both are sent)"}
            }
        }
    });
    bound_integers(&mut doc);
    doc
}

/// The JSON Schema (draft 2020-12) of the universal event envelope.
pub fn event_schema() -> Value {
    schemars::schema_for!(Event).to_value()
}

/// The committed files: (path from `schemas/`, content): the schemas as
/// pretty JSON with a final newline, and the UI's list of event types.
pub fn generated_files() -> Vec<(&'static str, String)> {
    let pretty = |v: Value| {
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    };
    vec![
        ("openapi.json", pretty(openapi())),
        ("event.schema.json", pretty(event_schema())),
        ("../ui/js/event-types.js", crate::event::ui_event_types_js()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_files_are_fresh() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let bless = std::env::var_os("TETHER_BLESS").is_some();
        let mut stale = Vec::new();
        for (name, text) in generated_files() {
            let path = dir.join(name);
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            if committed != text {
                if bless {
                    std::fs::write(&path, &text).unwrap();
                } else {
                    let diff = committed
                        .lines()
                        .zip(text.lines())
                        .enumerate()
                        .find(|(_, (a, b))| a != b)
                        .map(|(i, (a, b))| format!("line {}:\n- {a}\n+ {b}", i + 1))
                        .unwrap_or_else(|| {
                            format!("lengths differ: {} vs {} lines", committed.lines().count(), text.lines().count())
                        });
                    stale.push(format!("schemas/{name} is stale; first difference at {diff}"));
                }
            }
        }
        assert!(
            stale.is_empty(),
            "{}\nregenerate with: TETHER_BLESS=1 cargo test -p tether-protocol",
            stale.join("\n")
        );
    }

    #[test]
    fn every_route_references_resolvable_schemas() {
        let doc = openapi();
        let text = doc.to_string();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(schemas.contains_key(name), "dangling $ref to {name}");
        }
        assert!(doc["paths"]["/v1/sessions"]["post"]["requestBody"].is_object());
        for ws in ["/v1/sessions/{id}/events/ws", "/v1/events/ws"] {
            assert!(doc["paths"][ws]["get"]["responses"]["101"]["x-websocket-message"]["oneOf"].is_array(), "{ws}");
        }
        for stream in
            ["/v1/sessions/{id}/events/stream", "/v1/events/stream", "/v1/sessions/{id}/events/ws", "/v1/events/ws"]
        {
            let refused = &doc["paths"][stream]["get"]["responses"]["503"];
            assert!(refused["headers"]["Retry-After"].is_object(), "{stream}: no 503 with Retry-After");
        }
    }

    #[test]
    fn links_name_operations_that_exist_and_streams_list_every_frame() {
        let doc = openapi();
        let mut ids = std::collections::BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "duplicate {}", op["operationId"]);
            }
        }
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for answer in op["responses"].as_object().unwrap().values() {
                    for link in answer["links"].as_object().into_iter().flat_map(|l| l.values()) {
                        assert!(ids.contains(link["operationId"].as_str().unwrap()), "{link}");
                        links += 1;
                    }
                }
            }
        }
        assert!(links >= 15, "{links} links");
        let frames = doc["paths"]["/v1/events/stream"]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["itemSchema"]["oneOf"]
            .to_string();
        for name in ["stream.reset", "stream.idle", "stream.ended", "session.started", "StreamIdle"] {
            assert!(frames.contains(name), "{name} is not a documented frame");
        }
    }

    #[test]
    fn event_round_trips_with_flattened_body() {
        let json = r#"{"seq":3,"gseq":9,"session_id":"ses_x","time":"2026-11-23T12:00:00.123Z","type":"item.delta","source":"agent","data":{"item_id":"itm_1","delta":{"text":"hi"}}}"#;
        let ev: Event = serde_json::from_str(json).unwrap();
        assert_eq!(ev.event_type(), "item.delta");
        assert_eq!(
            ev.body,
            EventBody::ItemDelta(ItemDelta { item_id: "itm_1".into(), delta: Delta::Text("hi".into()) })
        );
        let back: Value = serde_json::to_value(&ev).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(json).unwrap());
    }

    #[test]
    fn message_body_needs_exactly_one_of_text_or_parts() {
        let both: SendMessage = serde_json::from_str(r#"{"text":"a","parts":[]}"#).unwrap();
        assert!(both.into_parts().is_err());
        assert!(serde_json::from_str::<SendMessage>(r#"{"txt":"a"}"#).is_err());
        let ok: SendMessage = serde_json::from_str(r#"{"parts":[{"type":"text","text":"a"}]}"#).unwrap();
        assert_eq!(ok.into_parts().unwrap(), vec![Part::text("a")]);
    }
}
