//! The OpenAPI 3.1 document and the event JSON Schema, generated from the types.
//!
//! `TETHER_BLESS=1 cargo test -p tether-protocol` rewrites the committed files.

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::api::*;
use crate::event::*;

/// How a route's body or answer is described.
enum Body {
    None,
    Json(fn(&mut SchemaGenerator) -> Value),
    Sse,
    /// A WebSocket upgrade (101) whose text messages are events or control frames.
    Ws,
    Bytes(&'static str),
}

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    g.subschema_for::<T>().to_value()
}

struct Route {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [(&'static str, &'static str)],
    request: Body,
    status: u16,
    response: Body,
}

fn routes() -> Vec<Route> {
    use Body::*;
    let r = |method, path, summary, query, request, status, response| Route {
        method,
        path,
        summary,
        query,
        request,
        status,
        response,
    };
    vec![
        r(
            "get",
            "/v1/health",
            "Readiness, no auth: `ok` (200) when ready, `starting` (503, Retry-After) while the store opens and recovery runs",
            &[],
            None,
            200,
            Json(schema::<Health>),
        ),
        r(
            "get",
            "/v1/info",
            "Version, uptime, data dir, workspace root, capabilities",
            &[],
            None,
            200,
            Json(schema::<Info>),
        ),
        r("get", "/v1/openapi.json", "This document", &[], None, 200, Bytes("application/json")),
        r("get", "/metrics", "Prometheus text metrics", &[], None, 200, Bytes("text/plain")),
        r("get", "/", "Redirects (307) to the inspector, `/ui/`; no auth", &[], None, 307, Bytes("text/plain")),
        r("get", "/ui", "Redirects (308) to `/ui/`; no auth", &[], None, 308, Bytes("text/plain")),
        r("get", "/ui/", "The inspector web UI (embedded); no auth", &[], None, 200, Bytes("text/html")),
        r("get", "/ui/{path}", "A file of the inspector web UI; no auth", &[], None, 200, Bytes("text/plain")),
        r("get", "/v1/agents", "Every known agent", &[], None, 200, Json(schema::<AgentList>)),
        r("get", "/v1/agents/{agent}", "One agent", &[], None, 200, Json(schema::<Agent>)),
        r(
            "post",
            "/mcp",
            "tether as an MCP server (Streamable HTTP, JSON-RPC): the session, event and file tools; answers JSON \
             or an SSE stream per the MCP transport",
            &[],
            Bytes("application/json"),
            200,
            Bytes("application/json"),
        ),
        r(
            "get",
            "/mcp",
            "The MCP transport's stream of server messages for an MCP session (`Mcp-Session-Id`)",
            &[],
            None,
            200,
            Sse,
        ),
        r("delete", "/mcp", "Ends an MCP session (`Mcp-Session-Id`)", &[], None, 202, None),
        r(
            "post",
            "/v1/agents/{agent}/install",
            "Installs the agent's pinned CLI version from npm into the data dir (no body) and answers the agent. With \
             `Accept: text/event-stream` the answer is SSE: `progress` events, then one `done` (the agent) or \
             `error` (a problem)",
            &[],
            None,
            200,
            Json(schema::<Agent>),
        ),
        r(
            "get",
            "/v1/mcp/servers",
            "The global MCP servers, applied to every new session, by name",
            &[],
            None,
            200,
            Json(schema::<McpServerList>),
        ),
        r("get", "/v1/mcp/servers/{name}", "One global MCP server", &[], None, 200, Json(schema::<McpServer>)),
        r(
            "put",
            "/v1/mcp/servers/{name}",
            "Add (201) or replace (200) a global MCP server; the name is 1-48 ASCII letters, digits, `-` and `_`, \
             starting with a letter or digit, without `__`",
            &[],
            Json(schema::<McpServer>),
            201,
            Json(schema::<McpServer>),
        ),
        r(
            "delete",
            "/v1/mcp/servers/{name}",
            "Remove a global MCP server; answers it",
            &[],
            None,
            200,
            Json(schema::<McpServer>),
        ),
        r(
            "get",
            "/v1/mcp/servers/{name}/tools",
            "Connect to a global MCP server and list its tools (`timeout_ms` 100..=60000, default 10000); 502 \
             `mcp_unavailable` when it cannot start or does not speak MCP, 504 when it does not answer in time",
            &[("timeout_ms", "integer")],
            None,
            200,
            Json(schema::<McpToolList>),
        ),
        r("post", "/v1/sessions", "Create a session", &[], Json(schema::<CreateSession>), 201, Json(schema::<Session>)),
        r(
            "get",
            "/v1/sessions",
            "List sessions, newest first",
            &[("status", "string"), ("agent", "string"), ("limit", "integer"), ("cursor", "string")],
            None,
            200,
            Json(schema::<SessionList>),
        ),
        r("get", "/v1/sessions/{id}", "One session", &[], None, 200, Json(schema::<Session>)),
        r(
            "delete",
            "/v1/sessions/{id}",
            "Terminate the agent's process group and end the session; `purge=true` also deletes its history",
            &[("purge", "boolean")],
            None,
            200,
            Json(schema::<Session>),
        ),
        r(
            "post",
            "/v1/sessions/{id}/messages",
            "Send a user message; the turn runs in the background",
            &[],
            Json(schema::<SendMessage>),
            202,
            Json(schema::<MessageAccepted>),
        ),
        r("post", "/v1/sessions/{id}/interrupt", "Interrupt the running turn", &[], None, 202, None),
        r(
            "post",
            "/v1/sessions/{id}/permissions/{permission_id}",
            "Answer a permission request",
            &[],
            Json(schema::<PermissionReply>),
            200,
            None,
        ),
        r(
            "post",
            "/v1/sessions/{id}/questions/{question_id}",
            "Answer or reject a question",
            &[],
            Json(schema::<QuestionReply>),
            200,
            None,
        ),
        r(
            "get",
            "/v1/sessions/{id}/events",
            "A page of a session's events",
            &[("after", "integer"), ("limit", "integer"), ("include_raw", "boolean")],
            None,
            200,
            Json(schema::<EventPage>),
        ),
        r(
            "get",
            "/v1/sessions/{id}/events/stream",
            "SSE of one session; resumes after Last-Event-ID or `after` (seq); a cursor beyond the session's last \
             seq gets a first `stream.reset` frame (id: the last seq), then the events after it",
            &[("after", "integer"), ("include_raw", "boolean"), ("types", "string")],
            None,
            200,
            Sse,
        ),
        r(
            "get",
            "/v1/sessions/{id}/events/ws",
            "The same stream over a WebSocket: one text message per event (the JSON of SSE `data:`), control \
             frames as `{\"type\":\"stream.reset\",\"data\":{..}}`, pings as keepalive; a request that is not an \
             upgrade is 426 `upgrade_required`",
            &[("after", "integer"), ("include_raw", "boolean"), ("types", "string")],
            None,
            101,
            Ws,
        ),
        r(
            "get",
            "/v1/events/stream",
            "SSE of every session; resumes after Last-Event-ID or `after` (gseq); a cursor beyond the store's last \
             gseq gets a first `stream.reset` frame (`last_seq` and id: the last gseq), then the events after it; \
             `types` (comma-separated event types, on every stream) sends only those",
            &[("after", "integer"), ("include_raw", "boolean"), ("types", "string")],
            None,
            200,
            Sse,
        ),
        r(
            "get",
            "/v1/events/ws",
            "The global stream over a WebSocket (cursor gseq), framed as /v1/sessions/{id}/events/ws",
            &[("after", "integer"), ("include_raw", "boolean"), ("types", "string")],
            None,
            101,
            Ws,
        ),
        r(
            "get",
            "/v1/fs/entries",
            "List a directory of the workspace",
            &[("path", "string")],
            None,
            200,
            Json(schema::<FsEntries>),
        ),
        r(
            "get",
            "/v1/fs/stat",
            "One entry of the workspace",
            &[("path", "string")],
            None,
            200,
            Json(schema::<FsEntry>),
        ),
        r(
            "get",
            "/v1/fs/file",
            "A file's bytes, streamed; `Range: bytes=a-b` answers 206",
            &[("path", "string")],
            None,
            200,
            Bytes("application/octet-stream"),
        ),
        r(
            "put",
            "/v1/fs/file",
            "Write the body to a file (streamed, atomic: temp file + rename); creates parents",
            &[("path", "string")],
            None,
            200,
            Json(schema::<FsEntry>),
        ),
        r(
            "delete",
            "/v1/fs/entries",
            "Delete a file, symlink or directory (`recursive=true` for a non-empty one)",
            &[("path", "string"), ("recursive", "boolean")],
            None,
            204,
            None,
        ),
        r(
            "post",
            "/v1/fs/mkdir",
            "Create a directory and its parents",
            &[],
            Json(schema::<MkdirRequest>),
            201,
            Json(schema::<FsEntry>),
        ),
        r(
            "post",
            "/v1/fs/upload",
            "Extract a tar body (`application/x-tar`; gzip as `Content-Encoding: gzip` or `application/gzip`) under \
             `path`; entries that climb out are refused",
            &[("path", "string")],
            None,
            200,
            Json(schema::<FsEntry>),
        ),
        r(
            "get",
            "/v1/fs/download",
            "A directory as a tar stream (symlinks stored as links)",
            &[("path", "string")],
            None,
            200,
            Bytes("application/x-tar"),
        ),
        r(
            "get",
            "/v1/fs/watch",
            "SSE of changes under `path` (`event: watch.<kind>`, `data:` a WatchEvent; `watch.overflow` when a \
             reconnect is past the replay window); resumes after Last-Event-ID or `after`",
            &[("path", "string"), ("recursive", "boolean"), ("after", "integer")],
            None,
            200,
            Bytes("text/event-stream"),
        ),
        r(
            "post",
            "/v1/fs/move",
            "Move or rename an entry",
            &[],
            Json(schema::<MoveRequest>),
            200,
            Json(schema::<FsEntry>),
        ),
        r(
            "get",
            "/v1/skills",
            "Every skill, installed and bundled (`bundled: true`, read-only), sorted by name",
            &[],
            None,
            200,
            Json(schema::<SkillList>),
        ),
        r(
            "get",
            "/v1/skills/{name}",
            "One skill with the text of its files (non-UTF-8 files empty); with `Accept: application/x-tar` its \
             folder as a tar (`<name>/...`)",
            &[],
            None,
            200,
            Json(schema::<SkillDetail>),
        ),
        r(
            "put",
            "/v1/skills/{name}",
            "Install or replace a skill (201 when new, 200 when replaced): `SkillFiles` as JSON, or a tar of the \
             folder (`application/x-tar`; gzip as `Content-Encoding: gzip` or `application/gzip`) with SKILL.md at \
             its root or in one top folder `<name>/`. At most 256 files, 1 MiB per file, 8 MiB in all, 16 path \
             segments (413 past a limit); bundled names are 409",
            &[],
            Json(schema::<SkillFiles>),
            201,
            Json(schema::<Skill>),
        ),
        r(
            "delete",
            "/v1/skills/{name}",
            "Remove an installed skill; answers it (bundled skills are 409)",
            &[],
            None,
            200,
            Json(schema::<Skill>),
        ),
        r(
            "post",
            "/v1/webhooks",
            "Subscribe a URL to the committed events (201): batches of up to 100 events POSTed in `gseq` order, \
             signed with `X-Tether-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, \"<t>.<body>\")>`, retried with \
             back-off until acknowledged (2xx); at-least-once, resumed after a restart from the last acknowledged \
             `gseq`. `from`: `now` (default), `start` or a gseq. The secret is never answered back",
            &[],
            Json(schema::<CreateWebhook>),
            201,
            Json(schema::<Webhook>),
        ),
        r("get", "/v1/webhooks", "Every webhook, oldest first", &[], None, 200, Json(schema::<WebhookList>)),
        r(
            "get",
            "/v1/webhooks/{id}",
            "One webhook and how its delivery stands; 404 `webhook_not_found`",
            &[],
            None,
            200,
            Json(schema::<Webhook>),
        ),
        r(
            "delete",
            "/v1/webhooks/{id}",
            "Remove a webhook and stop its delivery at once (no request starts after the answer); answers it",
            &[],
            None,
            200,
            Json(schema::<Webhook>),
        ),
    ]
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
    let mut paths = Map::new();
    for route in routes() {
        let mut op = Map::new();
        op.insert("summary".into(), json!(route.summary));
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        params.extend(
            route
                .query
                .iter()
                .map(|(name, ty)| json!({"name": name, "in": "query", "required": false, "schema": {"type": ty}})),
        );
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Body::Json(f) = route.request {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": f(&mut g)}}}),
            );
        }
        let ok = match route.response {
            Body::None => json!({"description": "accepted"}),
            Body::Json(f) => json!({"description": "ok", "content": {"application/json": {"schema": f(&mut g)}}}),
            Body::Sse => json!({
                "description": "`text/event-stream`: frames with `id:` (the cursor), `event:` (the event type) and \
                    `data:` (an Event); also control frames `event: stream.reset` / `stream.idle` / `stream.ended` \
                    whose `data:` is the `data` of a StreamControl (`x-control-frame`). A session's stream ends \
                    after its last event, `session.ended`, with a `stream.ended` frame",
                "content": {"text/event-stream": {"itemSchema": event.clone()}},
                "x-control-frame": control.clone()
            }),
            Body::Ws => json!({
                "description": "Switching Protocols: a WebSocket whose text messages are Events or StreamControl \
                    frames (`x-websocket-message`); it closes with 1000 when idle past --stream-idle-secs or \
                    after a session's last event (a `stream.ended` message first), 1001 when the server shuts down",
                "x-websocket-message": {"oneOf": [event.clone(), control.clone()]}
            }),
            Body::Bytes(mime) => json!({"description": "ok", "content": {mime: {}}}),
        };
        let mut responses = Map::new();
        responses.insert(route.status.to_string(), ok);
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
    json!({
        "openapi": "3.1.0",
        "info": {"title": "tether", "version": crate::API_VERSION,
                 "description": "Run coding agents under PTYs; one universal event stream over HTTP/SSE."},
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
    })
}

/// The JSON Schema (draft 2020-12) of the universal event envelope.
pub fn event_schema() -> Value {
    schemars::schema_for!(Event).to_value()
}

/// The committed files: (file name under `schemas/`, pretty JSON with a final newline).
pub fn generated_files() -> Vec<(&'static str, String)> {
    let pretty = |v: Value| {
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s
    };
    vec![("openapi.json", pretty(openapi())), ("event.schema.json", pretty(event_schema()))]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
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
