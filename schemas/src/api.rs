//! Request and response bodies of the HTTP API.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Capabilities, Decision, Event, Part};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PermissionMode {
    /// Ask through permission events.
    #[default]
    Default,
    AcceptEdits,
    /// Never ask.
    Bypass,
    /// Read-only planning.
    Plan,
}

impl PermissionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionMode::Default => "default",
            PermissionMode::AcceptEdits => "accept_edits",
            PermissionMode::Bypass => "bypass",
            PermissionMode::Plan => "plan",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Starting,
    Idle,
    Running,
    /// A permission or question is open.
    Waiting,
    /// Deleted.
    Ended,
    /// Cannot continue.
    Failed,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Starting => "starting",
            SessionStatus::Idle => "idle",
            SessionStatus::Running => "running",
            SessionStatus::Waiting => "waiting",
            SessionStatus::Ended => "ended",
            SessionStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "starting" => SessionStatus::Starting,
            "idle" => SessionStatus::Idle,
            "running" => SessionStatus::Running,
            "waiting" => SessionStatus::Waiting,
            "ended" => SessionStatus::Ended,
            "failed" => SessionStatus::Failed,
            _ => return None,
        })
    }
}

/// An MCP server given to an agent: a local command (stdio) or a remote URL
/// (streamable HTTP). On the wire `{"command":..,"args":[..],"env":{..},"cwd":..}`
/// or `{"url":..,"headers":{..}}`, with an optional `"type": "stdio" | "http"`;
/// anything else (both kinds at once, unknown fields) is refused with a message
/// that says what was wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "McpServerWire", into = "McpServerWire")]
pub enum McpServer {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        /// Where the command runs (absolute, or relative to the session's cwd); the session's cwd if unset.
        cwd: Option<String>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// The schema of [`McpServer`]: one of the two kinds, each with only its own
/// fields (a field of the other kind may be there only `null` or empty, as
/// the server reads those as absent); no NUL byte anywhere.
impl JsonSchema for McpServer {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "McpServer".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let no_nul = || serde_json::json!({"type": "string", "pattern": NO_NUL_PATTERN});
        let env = serde_json::json!({"type": "object", "propertyNames": {"pattern": ENV_NAME_PATTERN},
            "additionalProperties": no_nul()});
        let headers = serde_json::json!({"type": "object",
            "propertyNames": {"pattern": HEADER_NAME_PATTERN},
            "additionalProperties": {"type": "string", "pattern": HEADER_VALUE_PATTERN}});
        let empty_list = serde_json::json!({"type": "array", "maxItems": 0});
        let empty_map = serde_json::json!({"type": "object", "maxProperties": 0});
        schemars::json_schema!({
            "description": "An MCP server given to an agent: a local command (stdio: `command`, `args`, `env`, \
                `cwd`) or a remote URL (streamable HTTP: `url`, `headers`); `type` may say which.",
            "oneOf": [
                {"title": "stdio", "type": "object", "additionalProperties": false, "required": ["command"],
                 "properties": {
                    "type": {"enum": ["stdio", null]},
                    "command": {"type": "string", "pattern": COMMAND_PATTERN,
                                "description": "The program (looked up on PATH), not empty"},
                    "args": {"type": "array", "items": no_nul()},
                    "env": env,
                    "cwd": {"type": ["string", "null"], "minLength": 1, "pattern": NO_NUL_PATTERN,
                            "description": "Where the command runs (absolute, or relative to the session's cwd); \
                                the session's cwd if unset"},
                    "url": {"type": "null"},
                    "headers": empty_map,
                 }},
                {"title": "http", "type": "object", "additionalProperties": false, "required": ["url"],
                 "properties": {
                    "type": {"enum": ["http", null]},
                    "url": {"type": "string", "pattern": HTTP_URL_PATTERN, "maxLength": MAX_URL_LEN},
                    "headers": headers,
                    "command": {"type": "null"},
                    "args": empty_list,
                    "env": empty_map,
                    "cwd": {"type": "null"},
                 }},
            ]
        })
    }
}

/// No NUL byte.
pub const NO_NUL_PATTERN: &str = "^[^\\x00]*$";
/// A command: something besides whitespace, no NUL byte.
pub const COMMAND_PATTERN: &str = "^[^\\x00]*[^\\s\\x00][^\\x00]*$";
/// An environment variable name: not empty, no `=`, no NUL byte.
pub const ENV_NAME_PATTERN: &str = "^[^=\\x00]+$";
/// An HTTP header name (an RFC 9110 token).
pub const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// An HTTP header value: visible ASCII, spaces and tabs.
pub const HEADER_VALUE_PATTERN: &str = "^[\\t\\x20-\\x7e]*$";
/// A global or session MCP server name: 1-48 ASCII letters, digits, `-`
/// and `_`, starting with a letter or digit, without `__` (Claude names
/// MCP tools `mcp__<server>__<tool>`).
pub const MCP_SERVER_NAME_PATTERN: &str = "^[A-Za-z0-9](_?[A-Za-z0-9-])*_?$";
/// The longest MCP server name.
pub const MCP_SERVER_NAME_MAX: usize = 48;
/// A skill name: 1-64 lowercase letters, digits and single hyphens, not
/// starting or ending with a hyphen.
pub const SKILL_NAME_PATTERN: &str = "^[a-z0-9]+(-[a-z0-9]+)*$";
/// A file's path inside a skill: 1 to 16 `/`-separated segments, each with
/// a character besides `.`, and no backslash or control character.
pub const SKILL_PATH_PATTERN: &str = concat!(
    "^[^/\\\\\\x00-\\x1f\\x7f-\\x9f]*[^./\\\\\\x00-\\x1f\\x7f-\\x9f][^/\\\\\\x00-\\x1f\\x7f-\\x9f]*",
    "(/[^/\\\\\\x00-\\x1f\\x7f-\\x9f]*[^./\\\\\\x00-\\x1f\\x7f-\\x9f][^/\\\\\\x00-\\x1f\\x7f-\\x9f]*){0,15}$",
);
/// The longest skill name.
pub const SKILL_NAME_MAX: usize = 64;
/// A session id as the API names one: `ses_` then letters, digits, `_`, `-`.
pub const SESSION_ID_PATTERN: &str = "^ses_[A-Za-z0-9_-]+$";
/// The longest URL a webhook or an MCP server takes, in bytes (the pattern
/// allows only ASCII, so characters and bytes agree).
pub const MAX_URL_LEN: usize = 4096;
/// The URLs tether calls out to (webhooks, remote MCP servers): `http://` or
/// `https://`; optional `user[:password]@`; a host name whose last label
/// starts with a letter, a dotted IPv4 address or a bracketed IPv6 one
/// (`[::1]`); an optional port (0-65535); then printable ASCII.
pub const HTTP_URL_PATTERN: &str = concat!(
    "^https?://",
    "([A-Za-z0-9._~%!$&'()*+,;=-]+(:[A-Za-z0-9._~%!$&'()*+,;=-]*)?@)?",
    "(",
    "([A-Za-z0-9]+(-[A-Za-z0-9]+)*\\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*",
    "|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    "|\\[([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){7}",
    "|([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,2})?::([0-9A-Fa-f]{1,4}(:[0-9A-Fa-f]{1,4}){0,2})?)\\]",
    ")",
    "(:([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
    "([/?#][\\x21-\\x7e]*)?$",
);
/// The agents sessions can be created with in this build.
pub const SESSION_AGENTS: &[&str] = &[
    "mock",
    "claude",
    "codex",
    "opencode",
    "gemini",
    "opencode-acp",
    "claude-acp",
    "codex-acp",
    "qwen",
    "copilot",
    "amp",
    "pi",
];

/// The JSON shape of [`McpServer`]: one object for both kinds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerWire {
    /// `stdio` or `http`; inferred from `command` / `url` when absent.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl TryFrom<McpServerWire> for McpServer {
    type Error = String;

    fn try_from(w: McpServerWire) -> Result<Self, String> {
        let kind = match (w.kind.as_deref(), &w.command, &w.url) {
            (Some("stdio"), _, None) | (None, Some(_), None) => "stdio",
            (Some("http"), None, _) | (None, None, Some(_)) => "http",
            (Some(k), _, _) if k != "stdio" && k != "http" => {
                return Err(format!("unknown MCP server type {k:?}: give \"stdio\" (command) or \"http\" (url)"))
            }
            (_, Some(_), Some(_)) => {
                return Err("an MCP server has either `command` (stdio) or `url` (http), not both".into())
            }
            (Some("stdio"), None, _) | (Some("http"), _, None) | (None, None, None) => {
                return Err(
                    "an MCP server needs `command` (a local stdio server) or `url` (a remote HTTP server)".into()
                )
            }
            (Some(_), _, _) => return Err("`type` does not match the fields given".into()),
        };
        if kind == "stdio" {
            if !w.headers.is_empty() {
                return Err("`headers` belong to an HTTP MCP server (`url`), not a stdio one".into());
            }
            let command = w.command.unwrap_or_default();
            if command.trim().is_empty() {
                return Err("`command` must not be empty".into());
            }
            Ok(McpServer::Stdio { command, args: w.args, env: w.env, cwd: w.cwd })
        } else {
            if !w.args.is_empty() || !w.env.is_empty() || w.cwd.is_some() {
                return Err("`args`, `env` and `cwd` belong to a stdio MCP server (`command`), not an HTTP one".into());
            }
            let url = w.url.unwrap_or_default();
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("`url` {url:?} must be an http:// or https:// URL"));
            }
            Ok(McpServer::Http { url, headers: w.headers })
        }
    }
}

impl From<McpServer> for McpServerWire {
    fn from(s: McpServer) -> Self {
        match s {
            McpServer::Stdio { command, args, env, cwd } => McpServerWire {
                kind: Some("stdio".into()),
                command: Some(command),
                args,
                env,
                cwd,
                ..Default::default()
            },
            McpServer::Http { url, headers } => {
                McpServerWire { kind: Some("http".into()), url: Some(url), headers, ..Default::default() }
            }
        }
    }
}

/// `GET /v1/mcp/servers`: the servers applied to every new session, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpServerList {
    pub servers: BTreeMap<String, McpServer>,
}

/// One tool an MCP server offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON Schema of the tool's arguments.
    #[serde(default)]
    pub input_schema: Value,
}

/// `GET /v1/mcp/servers/{name}/tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct McpToolList {
    pub server: String,
    pub tools: Vec<McpTool>,
}

/// An installed or bundled skill: a folder with a `SKILL.md` whose front
/// matter names and describes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Skill {
    pub name: String,
    pub description: String,
    /// Paths of its files, relative to the skill folder, `/`-separated, sorted.
    pub files: Vec<String>,
    /// Embedded in the binary (read-only) rather than installed through the API.
    pub bundled: bool,
}

/// `GET /v1/skills`, sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillList {
    pub skills: Vec<Skill>,
}

/// `GET /v1/skills/{name}` (JSON): the skill and the text of each file; and the
/// JSON form of `PUT /v1/skills/{name}` (`files` only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillFiles {
    /// Relative path → UTF-8 content; must hold `SKILL.md`, whose YAML front
    /// matter (`---` lines around `name:` and `description:`) names this
    /// skill. Paths are `/`-separated, at most 16 segments of at most 255
    /// bytes, with no empty, `.`-only or `..` segment, no backslash or
    /// control character; a file cannot also be a folder. At most 256 files,
    /// 1 MiB per file and 8 MiB in all (in bytes; 413 past a limit).
    #[schemars(extend("propertyNames" = {"pattern": SKILL_PATH_PATTERN}, "required" = ["SKILL.md"]))]
    pub files: BTreeMap<String, String>,
}

/// `GET /v1/skills/{name}`: the skill with its files' contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkillDetail {
    pub name: String,
    pub description: String,
    pub bundled: bool,
    /// Relative path → content (UTF-8 files; others are listed with an empty
    /// string and can be had as a tar with `Accept: application/x-tar`).
    pub files: BTreeMap<String, String>,
}

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// One of [`SESSION_AGENTS`]; it must be installed (422 `agent_not_installed`).
    #[schemars(extend("enum" = SESSION_AGENTS))]
    pub agent: String,
    /// An existing directory in the workspace (404 when there is none);
    /// defaults to the workspace root; a relative path is resolved against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(NO_NUL_PATTERN))]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub permission_mode: PermissionMode,
    /// A first message, sent at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Environment of the agent: names not empty, without `=`; no NUL byte.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": ENV_NAME_PATTERN}, "additionalProperties" = {"type": "string", "pattern": NO_NUL_PATTERN}))]
    pub env: BTreeMap<String, String>,
    /// The session's own MCP servers, by name (merged over the global ones).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": MCP_SERVER_NAME_PATTERN, "maxLength": MCP_SERVER_NAME_MAX}))]
    pub mcp_servers: BTreeMap<String, McpServer>,
    /// Installed or bundled skills, by name, each once (404 for one that is not installed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("uniqueItems" = true, "items" = {"type": "string", "pattern": SKILL_NAME_PATTERN, "maxLength": SKILL_NAME_MAX}))]
    pub skills: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    pub id: String,
    pub agent: String,
    pub status: SessionStatus,
    pub cwd: String,
    #[serde(default)]
    pub model: Option<String>,
    pub permission_mode: PermissionMode,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub native_session_id: Option<String>,
    pub created_at: String,
    /// The session's last activity: the time of its newest event, but for
    /// what the server writes on its own at a restart or a resume.
    pub updated_at: String,
    pub last_seq: u64,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// What a list of sessions shows at a glance, kept as events are stored.
    #[serde(default)]
    pub summary: SessionSummary,
}

/// A session at a glance: how it began, where it stands, what it cost.
/// Lines are single lines of at most 200 characters (cut with `…`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSummary {
    /// The first line of the first message's text (`null` before any turn).
    #[serde(default)]
    pub first_prompt: Option<String>,
    /// The last line of the assistant's last completed message.
    #[serde(default)]
    pub last_text: Option<String>,
    /// Turns started.
    #[serde(default)]
    pub turns: u64,
    /// Summed over the turns that reported usage (`turn.completed`).
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// `null` until a turn reports a cost.
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionList {
    pub sessions: Vec<Session>,
    pub next_cursor: Option<String>,
}

/// `POST /v1/sessions/{id}/messages`: `{"text":..}` or `{"parts":[..]}` (exactly one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["text"], "properties": {"text": {"type": "string"}, "parts": {"type": "null"}}},
    {"required": ["parts"], "properties": {"text": {"type": "null"}, "parts": {"type": "array", "minItems": 1}}},
]))]
pub struct SendMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
}

impl SendMessage {
    pub fn text(text: impl Into<String>) -> Self {
        SendMessage { text: Some(text.into()), parts: None }
    }

    /// The message as parts, or why it is not a valid message.
    pub fn into_parts(self) -> Result<Vec<Part>, &'static str> {
        match (self.text, self.parts) {
            (Some(text), None) => Ok(vec![Part::Text { text }]),
            (None, Some(parts)) if !parts.is_empty() => Ok(parts),
            (None, Some(_)) => Err("`parts` must not be empty"),
            (Some(_), Some(_)) => Err("give either `text` or `parts`, not both"),
            (None, None) => Err("a message needs `text` or `parts`"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MessageAccepted {
    pub turn_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PermissionReply {
    pub decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `{"answers":[["choice",..],..]}` (one list per question) or `{"reject":true}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["answers"], "properties": {"answers": {"type": "array"}, "reject": {"const": false}}},
    {"required": ["reject"], "properties": {"answers": {"type": "null"}, "reject": {"const": true}}},
]))]
pub struct QuestionReply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<Vec<Vec<String>>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reject: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next_after: u64,
    pub has_more: bool,
}

/// `stream.reset`: the cursor a client resumed from is beyond what the store
/// holds (the data dir was restored from an older copy, e.g. a checkpoint).
/// The stream goes on with the events after `last_seq`; what the client
/// had seen after it is not in this store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamReset {
    /// The newest cursor the store holds: the session's last `seq`, or on
    /// the global stream the last `gseq` (0 when it holds none).
    pub last_seq: u64,
    /// The store's identity (`sto_…`), as in `/v1/info`.
    pub store_id: String,
    /// The cursor the client asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// `stream.idle`: the stream had no event to send for `idle_secs` seconds
/// (`--stream-idle-secs`) and ends now; reconnect with the last cursor to go on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamIdle {
    pub idle_secs: u64,
}

/// `stream.ended`: the session is over and its last event (`session.ended`,
/// seq `last_seq`) has been sent; the stream ends now and there is nothing to
/// reconnect for. Only a session's own stream sends it, as its last frame
/// (also straight away to a client that resumes after that event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamEnded {
    pub last_seq: u64,
}

/// `stream.stalled`: the store cannot commit (a full disk, an I/O error), so
/// no new event can come for now; sent instead of a keepalive while it
/// lasts. Nothing is lost: events resume, gap-free, once it commits again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamStalled {
    /// `disk_full`, `read_only` or `io_error`.
    pub reason: String,
    /// Since when (RFC 3339).
    pub since: String,
    /// What is wrong and what happens, in a sentence.
    pub message: String,
}

/// A frame of an event stream that is not an event: on SSE `event:` is the
/// `type` and `data:` the `data`; on a WebSocket it is a text frame of this
/// JSON (`{"type":"stream.reset","data":{..}}`). Events never have a `type`
/// starting with `stream.`, so clients can tell the two apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", content = "data")]
pub enum StreamControl {
    #[serde(rename = "stream.reset")]
    Reset(StreamReset),
    #[serde(rename = "stream.idle")]
    Idle(StreamIdle),
    #[serde(rename = "stream.ended")]
    Ended(StreamEnded),
    #[serde(rename = "stream.stalled")]
    Stalled(StreamStalled),
}

impl StreamControl {
    /// The SSE `event:` name (the JSON `type`).
    pub fn name(&self) -> &'static str {
        match self {
            StreamControl::Reset(_) => "stream.reset",
            StreamControl::Idle(_) => "stream.idle",
            StreamControl::Ended(_) => "stream.ended",
            StreamControl::Stalled(_) => "stream.stalled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub installed: bool,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub capabilities: Capabilities,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

/// `GET /v1/health`: `{"status":"ok"}` (200) once the server is ready;
/// `{"status":"starting"}` (503, `Retry-After`) while it opens the store and
/// recovers sessions after binding its port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// `ok`, `starting`, or `degraded`: the server answers, but the disk
    /// holding its data dir is low on space or full, or the store cannot
    /// commit (`reasons` says which; `/v1/info` has the details).
    pub status: String,
    /// Why it is `degraded`: `disk_low`, `disk_full`, `store_stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// How the event store stands (`store` of `GET /v1/info`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StoreStatus {
    /// `ok`, or `stalled` while commits fail (disk full, I/O errors): events
    /// are held back and retried until they commit, nothing is lost; agents
    /// are held back meanwhile, and commands that cannot wait answer
    /// `507 insufficient_storage` or `503 store_unavailable`.
    pub state: String,
    /// Why it is stalled: `disk_full`, `read_only` or `io_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the stall began (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_since: Option<String>,
    /// How long it has lasted so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_ms: Option<u64>,
    /// Events in the batch being retried (more wait in the queue behind it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_events: Option<u64>,
    /// The most recent commit error, kept after the stall ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When that error happened (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_at: Option<String>,
    /// Failed commits since the server started.
    #[serde(default)]
    pub commit_failures: u64,
}

impl Default for StoreStatus {
    fn default() -> Self {
        StoreStatus {
            state: "ok".into(),
            reason: None,
            stalled_since: None,
            stalled_ms: None,
            held_events: None,
            last_error: None,
            last_error_at: None,
            commit_failures: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Info {
    pub version: String,
    pub uptime_ms: u64,
    pub data_dir: String,
    pub workspace_root: String,
    pub capabilities: Vec<String>,
    /// The global cursor (`gseq`) of the newest event when this was read:
    /// `GET /v1/events/stream?after=<last_gseq>` follows every session from now on.
    #[serde(default)]
    pub last_gseq: u64,
    /// The store's identity (`sto_…`), created with the database: the same
    /// across restarts of one data dir.
    #[serde(default)]
    pub store_id: String,
    /// New at every start of the server (`boot_…`).
    #[serde(default)]
    pub boot_id: String,
    /// Whether the store commits, or is stalled and why.
    #[serde(default)]
    pub store: StoreStatus,
    /// Inside a Fly.io Sprite (its API socket exists): who it is, whether
    /// tether keeps it awake, and its network policy. Absent elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sprite: Option<SpriteStatus>,
}

/// The Sprite tether runs in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpriteStatus {
    /// The Sprite's name and URL, as its API tells (`GET /info` on the socket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Whether tether holds a Sprite Task while agents work.
    pub keep_awake: bool,
    /// How long sessions that only wait for a person keep it awake, in seconds.
    pub keep_awake_wait_secs: u64,
    /// The DNS allow/deny rules set for the Sprite from outside
    /// (`/.sprite/policy/network.json`), when there are any: a name they
    /// block resolves to REFUSED for every agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicy>,
    /// Why the policy file could not be read, when it exists but is not valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy_error: Option<String>,
}

/// A Sprite's network policy: rules applied in order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkPolicy {
    #[serde(default)]
    pub rules: Vec<NetworkRule>,
}

/// One rule: a domain (wildcards allowed) allowed or denied, or a named
/// list included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NetworkRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// `allow` or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
}

/// RFC 7807 problem details, as every error is answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Problem {
    /// `urn:tether:error:<code>`.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// `cursor_ahead` only: the newest cursor the store holds (the session's
    /// last `seq`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
    /// `cursor_ahead` only: the store's identity (`sto_…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
}

impl Problem {
    /// The stable code after `urn:tether:error:`.
    pub fn code(&self) -> &str {
        self.type_.strip_prefix("urn:tether:error:").unwrap_or(&self.type_)
    }

    /// [`code`](Self::code) as an [`ErrorCode`] (`Unknown` for a code this
    /// version does not know).
    pub fn error_code(&self) -> ErrorCode {
        ErrorCode::from_code(self.code())
    }
}

macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $code:literal,)*) => {
        /// Every stable problem code the API answers with (the part of the
        /// problem `type` after `urn:tether:error:`). Match on this rather
        /// than on strings; `Unknown` is a code this version does not know
        /// (a newer server, or a non-problem error body).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
            /// A code this version does not know.
            Unknown,
        }

        impl ErrorCode {
            /// Every known code (not `Unknown`).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The wire form (`session_not_found`); `unknown` for `Unknown`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The code of a wire form; `Unknown` when not known.
            pub fn from_code(code: &str) -> ErrorCode {
                match code {
                    $($code => ErrorCode::$variant,)*
                    _ => ErrorCode::Unknown,
                }
            }
        }
    };
}

error_codes! {
    /// 400: the request is malformed or a field is wrong (the detail says which).
    InvalidRequest = "invalid_request",
    /// 401: no token, or a wrong one.
    Unauthorized = "unauthorized",
    /// 404: no such route or object.
    NotFound = "not_found",
    /// 404: no session with that id.
    SessionNotFound = "session_not_found",
    /// 404: no webhook with that id.
    WebhookNotFound = "webhook_not_found",
    /// 404: no process with that id.
    ProcessNotFound = "process_not_found",
    /// 404: nothing listens on that port in the sandbox (start the server
    /// first; `GET /v1/ports` lists what listens).
    PortNotListening = "port_not_listening",
    /// 403: the port is tether's own; it is not previewed through itself.
    PortNotAllowed = "port_not_allowed",
    /// 403: the preview link is forged, for another port, or expired; ask
    /// for a new one (`POST /v1/ports/{port}/links`).
    PreviewLinkInvalid = "preview_link_invalid",
    /// 502: the app behind a previewed port broke the connection or answered
    /// something that is not HTTP.
    PreviewFailed = "preview_failed",
    /// 422: the agent's CLI is not installed (`POST /v1/agents/{agent}/install`).
    AgentNotInstalled = "agent_not_installed",
    /// 503: the agent cannot be started or installed right now.
    AgentUnavailable = "agent_unavailable",
    /// 409: the state does not allow it (a turn is running, the session ended, ..).
    Conflict = "conflict",
    /// 413: the body is larger than allowed.
    PayloadTooLarge = "payload_too_large",
    /// 403: the path leaves the workspace root.
    PathOutsideRoot = "path_outside_root",
    /// 403: the filesystem refused access.
    PermissionDenied = "permission_denied",
    /// 406: the `Accept` header does not take what the route answers (`/mcp`
    /// needs `application/json, text/event-stream`).
    NotAcceptable = "not_acceptable",
    /// 400: a file or directory name in the path is longer than 255 bytes.
    NameTooLong = "name_too_long",
    /// 400: a path is not valid UTF-8 once percent-decoded (`%FF`): the API
    /// names files by UTF-8 paths only, and never creates one under another name.
    NameNotUtf8 = "name_not_utf8",
    /// 415: the body's `Content-Encoding` is not one the route decodes
    /// (uploads take `gzip` or `identity`).
    UnsupportedEncoding = "unsupported_encoding",
    /// 403: a web page of another origin may not open a WebSocket or change
    /// state here (the `Origin` is not the server's own nor in `--allow-origin`).
    OriginNotAllowed = "origin_not_allowed",
    /// 403: without a token, only requests naming this server by a loopback
    /// name, its bound address or an `--allow-host` name are served (DNS
    /// rebinding); or the request had more than one `Host`.
    HostNotAllowed = "host_not_allowed",
    /// 415: the body's media type is not accepted.
    UnsupportedMediaType = "unsupported_media_type",
    /// 405: the route exists but not with this method.
    MethodNotAllowed = "method_not_allowed",
    /// 416: the asked byte range is outside the file.
    RangeNotSatisfiable = "range_not_satisfiable",
    /// 426: a WebSocket route was asked without an upgrade.
    UpgradeRequired = "upgrade_required",
    /// 409: the cursor is beyond what the store holds (restored from an older copy).
    CursorAhead = "cursor_ahead",
    /// 502/504: an MCP server could not be reached or did not answer.
    McpUnavailable = "mcp_unavailable",
    /// 507: the data dir is full; retry later.
    InsufficientStorage = "insufficient_storage",
    /// 507: the workspace's disk is full.
    NoSpace = "no_space",
    /// 503: the event store cannot write; retry later.
    StoreUnavailable = "store_unavailable",
    /// 503: the server is starting (recovery running); retry after the `Retry-After`.
    Starting = "starting",
    /// 503: the server holds as many connections as it takes
    /// (`--max-connections`); retry after the `Retry-After`.
    TooManyConnections = "too_many_connections",
    /// 503: this client address holds as many event streams (SSE or
    /// WebSocket) as one client may (`--max-streams-per-client`); close one,
    /// or retry after the `Retry-After`.
    TooManyStreams = "too_many_streams",
    /// 408: the request body stopped arriving (nothing for
    /// `--body-read-timeout-secs`); send the request again.
    RequestTimeout = "request_timeout",
    /// 500: a bug or an unexpected failure (details are in the server log).
    Internal = "internal",
    /// 502: the SDK's Sprites transport could not open a tunnel to the
    /// Sprite (answered by the SDK, not by a server).
    SpriteUnreachable = "sprite_unreachable",
    /// 404: the Sprites API has no Sprite of that name (the proxy's
    /// handshake answered 404; answered by the SDK, not by a server).
    SpriteNotFound = "sprite_not_found",
    /// The Sprites token is missing, wrong, or may not reach this Sprite:
    /// a 3xx from the edge in front of tether (the Sprite URL) to the
    /// Sprites login (`sprites.dev`, `/auth/sprite`), never followed; or a
    /// 401 from the SDK's Sprites transport when the proxy refused the token
    /// (401/403 at its handshake). Synthesized by the SDK, not answered by a server.
    SpritesTokenRefused = "sprites_token_refused",
    /// 3xx: a redirect elsewhere; never followed, since it would carry
    /// tether's token to another place. The detail names the `Location`
    /// (synthesized by the SDK, not answered by a server).
    Redirected = "redirected",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a filesystem entry is (a symlink is reported as itself, never followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FsKind {
    File,
    Dir,
    Symlink,
}

/// One file, directory or symlink of the workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FsEntry {
    pub name: String,
    /// Relative to the workspace root, `/`-separated (`""` is the root).
    pub path: String,
    pub kind: FsKind,
    pub size: u64,
    /// RFC 3339 UTC with milliseconds.
    pub modified: String,
    /// `true` when the name on disk is not valid UTF-8: `name` and `path`
    /// show it with U+FFFD in place of the bytes that are not, so they do not
    /// name the file, and the API (whose paths are UTF-8) cannot reach it
    /// (a request naming such a path is `400 name_not_utf8`). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_utf8: bool,
}

/// `GET /v1/fs/entries`: a directory's entries, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FsEntries {
    pub entries: Vec<FsEntry>,
}

/// `POST /v1/fs/mkdir`: creates the directory and its parents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    /// The directory (`""`, the root, already exists: 200).
    #[schemars(pattern(NO_NUL_PATTERN))]
    pub path: String,
}

/// `POST /v1/fs/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    /// The entry to move (not the root).
    #[schemars(pattern(NO_NUL_PATTERN))]
    pub from: String,
    /// Where it goes (not the root); its parent must exist.
    #[schemars(pattern(NO_NUL_PATTERN))]
    pub to: String,
    /// Replace an existing `to` (otherwise 409).
    #[serde(default)]
    pub overwrite: bool,
}

/// What happened to a watched path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchKind {
    Created,
    Modified,
    Removed,
    Renamed,
}

/// One change of `GET /v1/fs/watch`; paths relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WatchEvent {
    pub kind: WatchKind,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Where a new webhook starts delivering from: `"now"` (the default: events
/// committed after it is created), `"start"` (the whole log), or a `gseq`
/// (the events after it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(try_from = "Value", into = "Value")]
#[schemars(with = "WebhookFromWire")]
pub enum WebhookFrom {
    #[default]
    Now,
    Start,
    Gseq(u64),
}

/// The JSON shape of [`WebhookFrom`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WebhookFromWire {
    Named(WebhookFromName),
    /// Deliver the events after this `gseq`.
    Gseq(u64),
}

/// The named starting points of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFromName {
    /// After the last event committed when the webhook is created.
    Now,
    /// The whole log.
    Start,
}

impl TryFrom<Value> for WebhookFrom {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        // JSON has one number type: `5.0` is the integer 5, as JSON Schema reads it.
        let integral = v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64);
        match (&v, v.as_u64().or(integral)) {
            (_, Some(gseq)) => Ok(WebhookFrom::Gseq(gseq)),
            (Value::String(s), _) if s == "now" => Ok(WebhookFrom::Now),
            (Value::String(s), _) if s == "start" => Ok(WebhookFrom::Start),
            _ => Err(format!("`from` must be \"now\", \"start\" or a gseq (a non-negative integer), not {v}")),
        }
    }
}

impl From<WebhookFrom> for Value {
    fn from(f: WebhookFrom) -> Value {
        match f {
            WebhookFrom::Now => Value::String("now".into()),
            WebhookFrom::Start => Value::String("start".into()),
            WebhookFrom::Gseq(g) => Value::from(g),
        }
    }
}

/// `POST /v1/webhooks`: deliver the committed events (optionally only some
/// types, some sessions) to `url`, signed with `secret`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Absolute `http://` or `https://` URL with a host ([`HTTP_URL_PATTERN`]);
    /// each delivery is a POST to it.
    #[schemars(pattern(HTTP_URL_PATTERN), length(max = MAX_URL_LEN))]
    pub url: String,
    /// 16 to 1024 characters; the key of the `X-Tether-Signature` HMAC. Never answered back.
    #[serde(deserialize_with = "secret_string")]
    #[schemars(length(min = 16, max = 1024))]
    pub secret: String,
    /// Event types to deliver (universal event types); empty or absent: every type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("items" = {"enum": crate::event::EVENT_TYPES}))]
    pub events: Option<Vec<String>>,
    /// Session ids whose events to deliver (each an existing session: 404
    /// otherwise); absent: every session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), extend("items" = {"type": "string", "pattern": SESSION_ID_PATTERN, "maxLength": 128}))]
    pub sessions: Option<Vec<String>>,
    /// Where delivery starts; `now` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<WebhookFrom>,
}

/// A secret is a string; any other JSON is refused without echoing it.
fn secret_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        _ => Err(serde::de::Error::custom("`secret` must be a string")),
    }
}

/// How a webhook's deliveries go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Delivering, or caught up.
    Active,
    /// The last 3 or more attempts failed; it keeps retrying the same batch.
    Failing,
}

impl WebhookState {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookState::Active => "active",
            WebhookState::Failing => "failing",
        }
    }
}

/// A webhook subscription and how its delivery stands (the secret is never shown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Webhook {
    /// `whk_…`.
    pub id: String,
    pub url: String,
    /// The event types delivered; `null`: every type.
    pub events: Option<Vec<String>>,
    /// The sessions whose events are delivered; `null`: every session.
    pub sessions: Option<Vec<String>>,
    pub created_at: String,
    pub state: WebhookState,
    /// The last acknowledged `gseq`: every matching event up to it was delivered.
    pub cursor: u64,
    /// Events in the log after `cursor` (before filtering).
    pub pending: u64,
    /// Events acknowledged by the receiver so far (re-sent batches count again).
    pub delivered_events: u64,
    pub consecutive_failures: u64,
    /// Why the last attempt failed (`HTTP 500`, `connect error: …`, `timeout …`), while failures last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_at: Option<String>,
}

/// `GET /v1/webhooks`, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// The body of one delivery (a POST to the webhook's URL): up to 100
/// events in `gseq` order, without `raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookDelivery {
    pub webhook_id: String,
    pub events: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip_and_unknown_ones_stay_unknown() {
        for &code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(code.as_str()), code);
            assert_ne!(code, ErrorCode::Unknown);
        }
        assert_eq!(ErrorCode::from_code("from_the_future"), ErrorCode::Unknown);
        let problem = Problem {
            type_: "urn:tether:error:session_not_found".into(),
            title: "Not Found".into(),
            status: 404,
            detail: String::new(),
            last_seq: None,
            store_id: None,
        };
        assert_eq!(problem.error_code(), ErrorCode::SessionNotFound);
    }
}
