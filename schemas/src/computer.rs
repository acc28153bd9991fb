//! The "computer" half of the API: processes run beside the agents (their
//! output, screen and terminal), the TCP ports listening in the sandbox, and
//! preview links to them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{COMMAND_PATTERN, ENV_NAME_PATTERN, NO_NUL_PATTERN, SESSION_ID_PATTERN};

/// Process ids: `prc_` and letters, digits, `_` or `-`.
pub const PROCESS_ID_PATTERN: &str = "^prc_[A-Za-z0-9_-]+$";

/// Default terminal size of a process started with `tty` and no size.
pub const DEFAULT_COLS: u16 = 80;
pub const DEFAULT_ROWS: u16 = 24;
/// Largest `cols` or `rows` a terminal may be given.
pub const MAX_TERMINAL_SIZE: u16 = 1000;
/// Largest input one `POST .../input` (or one terminal frame) may carry.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// The `session_id` of events that belong to no session (a port opened by a
/// process no session started): they are on the global stream only.
pub const SANDBOX_LOG: &str = "sandbox";

/// `POST /v1/processes`: run a command beside the agents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProcess {
    /// The program: a name looked up in `PATH`, or a path (relative to `cwd`).
    #[schemars(pattern(COMMAND_PATTERN), length(max = 4096))]
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1024), extend("items" = {"type": "string", "pattern": NO_NUL_PATTERN, "maxLength": 65536}))]
    pub args: Vec<String>,
    /// Working directory, relative to the workspace root or absolute inside it
    /// (403 `path_outside_root` otherwise); the root when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(NO_NUL_PATTERN), length(max = 4096))]
    pub cwd: Option<String>,
    /// Added to the server's environment (less tether's own settings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("propertyNames" = {"pattern": ENV_NAME_PATTERN, "maxLength": 1024}, "additionalProperties" = {"type": "string", "pattern": NO_NUL_PATTERN, "maxLength": 65536}, "maxProperties" = 256))]
    pub env: BTreeMap<String, String>,
    /// Run under a terminal (default): output is what a terminal shows, a
    /// screen can be read, the size can change. `false`: plain pipes, stdout
    /// and stderr interleaved as they come.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TERMINAL_SIZE))]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TERMINAL_SIZE))]
    pub rows: Option<u16>,
    /// A name for people (the inspector shows it); the command line when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub title: Option<String>,
    /// The session this process works for: its ports are announced on that
    /// session's stream. Set by tether's MCP tools for the agent that calls them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(SESSION_ID_PATTERN), length(max = 128))]
    pub session_id: Option<String>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Whether a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessStatus {
    Running,
    Exited,
}

/// Why a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProcessEnd {
    /// It exited or was killed by a signal of its own.
    Exited,
    /// `DELETE /v1/processes/{id}` (or the MCP tool) stopped it.
    Stopped,
    /// The server stopped or restarted; processes end with the server.
    ServerStopped,
}

/// The bytes a process wrote, as byte offsets since it started: `start` is
/// the first still kept (older output was dropped past the limit), `end` the
/// offset the next byte will have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OutputRange {
    pub start: u64,
    pub end: u64,
}

/// A process, running or ended (`GET /v1/processes/{id}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Process {
    /// `prc_…`
    pub id: String,
    pub command: String,
    pub args: Vec<String>,
    /// Absolute.
    pub cwd: String,
    pub tty: bool,
    /// The terminal's size (absent without `tty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cols: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u16>,
    pub title: String,
    /// The process's pid (its process group and session id too).
    pub pid: i32,
    pub status: ProcessStatus,
    /// Set once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<ProcessEnd>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, e.g. `SIGTERM`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// RFC 3339 UTC.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    pub output: OutputRange,
}

/// `GET /v1/processes`: every process this store remembers, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessList {
    pub processes: Vec<Process>,
}

/// `POST /v1/processes/{id}/input`: bytes for the process's input, as text
/// or as base64 (exactly one of the two).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_INPUT_BYTES))]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 87384))]
    pub base64: Option<String>,
}

/// `POST /v1/processes/{id}/resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessResize {
    #[schemars(range(min = 1, max = MAX_TERMINAL_SIZE))]
    pub cols: u16,
    #[schemars(range(min = 1, max = MAX_TERMINAL_SIZE))]
    pub rows: u16,
}

/// The signals a process may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Signal {
    SIGHUP,
    SIGINT,
    SIGQUIT,
    SIGKILL,
    SIGUSR1,
    SIGUSR2,
    SIGTERM,
    SIGCONT,
    SIGSTOP,
    SIGTSTP,
    SIGWINCH,
}

/// `POST /v1/processes/{id}/signal`: sent to the whole process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessSignal {
    pub signal: Signal,
}

/// `GET /v1/processes/{id}/output` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputQuery {
    /// The offset to read from (0 when absent): answers the bytes at
    /// `after` and later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub after: Option<u64>,
    /// Most bytes to answer (default and maximum 1 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1048576))]
    pub limit: Option<u64>,
}

/// `GET /v1/processes/{id}/output` as JSON: the bytes from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessOutput {
    /// The offset of the first byte answered: `after`, or the oldest kept
    /// byte when output from `after` on was already dropped (`missed` > 0).
    pub start: u64,
    /// The offset after the last byte answered: the next `after`.
    pub end: u64,
    /// Bytes between `after` and `start` that are no longer kept.
    pub missed: u64,
    /// The bytes, base64.
    pub base64: String,
    /// The bytes as UTF-8 (invalid sequences replaced).
    pub text: String,
    /// Whether the process has ended (and `end` is the end of its output).
    pub exited: bool,
}

/// The cursor of a terminal screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Cursor {
    /// 0-based.
    pub row: u16,
    pub col: u16,
    pub visible: bool,
}

/// `GET /v1/processes/{id}/screen`: what the terminal shows now, as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Screen {
    pub cols: u16,
    pub rows: u16,
    /// One string per row, trailing blanks removed.
    pub lines: Vec<String>,
    pub cursor: Cursor,
    /// The title the program set (OSC 0/2), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The program switched to the alternate screen (a full-screen program).
    pub alternate_screen: bool,
    /// The output offset this screen reflects.
    pub offset: u64,
}

/// A control message of a terminal WebSocket (text frames; binary frames are
/// terminal bytes). Clients send `resize` and `replay`; the server sends
/// `attached` (and after a `replay`, again), `missed` and `exit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalControl {
    /// Change the terminal's size (processes with `tty`; not for read-only attaches).
    Resize { cols: u16, rows: u16 },
    /// Send the output again from `after` (the binary frames that follow
    /// start there, or at the oldest kept byte).
    Replay { after: u64 },
    /// The binary frames that follow start at `offset`; `missed` bytes
    /// between the asked offset and it are no longer kept.
    Attached { offset: u64, missed: u64, read_only: bool },
    /// This client fell too far behind: the bytes from `from` to `to` were
    /// skipped (no longer kept); the frames go on at `to`.
    Missed { from: u64, to: u64 },
    /// The process ended; no more output follows.
    Exit {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
        end: u64,
    },
}

/// `GET /v1/processes/{id}/terminal` and `/v1/sessions/{id}/terminal` query.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminalQuery {
    /// Start the output from this offset (default: the oldest kept byte, so
    /// an attach shows the history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Attach without sending input or resizing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// Who owns a listening port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PortOpened {
    pub port: u16,
    /// The address it listens on (`0.0.0.0`, `127.0.0.1`, `::`, …).
    pub address: String,
    /// The listening process, when `/proc` lets the server see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// The tether process it belongs to (its pid is in that process's group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    /// The session whose agent (or process) opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
}

/// `port.closed`: the same fields as when it opened.
pub type PortClosed = PortOpened;

/// A listening TCP port in the sandbox (`GET /v1/ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Port {
    pub port: u16,
    /// Every address it listens on.
    pub addresses: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The process's name (`/proc/<pid>/comm`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// The preview through this server: `/v1/ports/{port}/proxy/`.
    pub proxy_path: String,
}

/// `GET /v1/ports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PortList {
    pub ports: Vec<Port>,
    /// `false` when `/proc` hides other processes' sockets from the server
    /// (some sandboxes): ports are listed without a pid or owner.
    pub attributed: bool,
}

/// How a preview forwards paths.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyStyle {
    /// `/v1/ports/{port}/proxy/{path}` forwards `/{path}`.
    #[default]
    Proxy,
    /// `/v1/ports/{port}/absproxy/{path}` forwards the whole path (an app
    /// told that base path).
    Absproxy,
}

/// `POST /v1/ports/{port}/links`: a signed link a browser can open without
/// a header.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePreviewLink {
    /// How long the link (and the cookie it sets) is good for: 1 s to 7 days, 1 hour by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 604800))]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub style: ProxyStyle,
    /// The path inside the app to open (`/` by default): `/…`, no control
    /// characters, at most 2048 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern("^/[^\\u0000-\\u001F\\u007F-\\u009F]*$"), length(max = 2048))]
    pub path: Option<String>,
}

/// A preview link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreviewLink {
    pub port: u16,
    /// Path and query on this server (no token in it): opening it sets a
    /// cookie scoped to this port's preview and redirects to `path`.
    pub url: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// `GET /v1/ports/{port}/open`: a preview link as `POST .../links` made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenPreviewQuery {
    /// Unix seconds after which the link is refused.
    pub exp: u64,
    pub style: ProxyStyle,
    /// The path inside the app to open.
    pub path: String,
    /// Hex HMAC-SHA256 of the rest, by this server.
    pub sig: String,
}
