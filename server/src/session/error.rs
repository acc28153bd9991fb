//! What can go wrong with a session, in the sessions' own terms: a request
//! that cannot make one (agent, `cwd`, `env`, MCP servers, skills), a
//! session that is gone or has ended, an answer that fits no open
//! permission or question, an agent that cannot start, a stalled store.
//! Each variant carries its data and says in its message what to do; the
//! code and status of each are here too ([`AsProblem`]), once, for the
//! HTTP API and the MCP tools alike. Nothing here knows HTTP.

use tether_protocol::StreamReset;

use crate::error::{cursor_ahead_detail, stall_code, stall_detail, AsProblem, ErrorCode};
use crate::store::{Stall, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session with id {id:?}")]
    NotFound { id: String },
    #[error("session {id} has ended")]
    Ended { id: String },
    #[error("unknown agent {agent:?}; known agents: {known}")]
    UnknownAgent { agent: String, known: String },
    #[error(
        "sessions of the {agent} agent are not supported by this build yet; supported: {supported}",
        supported = tether_protocol::SESSION_AGENTS.join(", ")
    )]
    Unsupported { agent: String },
    #[error(
        "the {agent} agent is not installed; install it with `tether agents install {agent}` or set TETHER_{var}_PATH",
        var = .agent.to_ascii_uppercase()
    )]
    NotInstalled { agent: String },
    /// A declared agent that is not where its declaration says: how to install it.
    #[error(
        "the {agent} agent is not installed; {hint} (or set TETHER_{var}_PATH)",
        var = .agent.to_ascii_uppercase().replace('-', "_")
    )]
    NotInstalledHint { agent: String, hint: String },
    /// A stored session's agent is gone (found when its actor restarts).
    #[error("the {agent} agent is not installed; install it with `tether agents install {agent}`")]
    NoLongerInstalled { agent: String },
    /// A stored session names an agent this build does not know.
    #[error("unknown agent")]
    UnknownStoredAgent,
    #[error("no adapter for the {agent} agent")]
    NoAdapter { agent: String },
    #[error("`cwd` contains a NUL byte")]
    CwdNul,
    /// A well-formed cwd the workspace does not hold: like any missing path, 404.
    #[error("`cwd` {cwd:?} does not exist in the workspace")]
    CwdMissing { cwd: String },
    #[error("`cwd` {cwd:?} cannot be used: {source}")]
    CwdUnusable { cwd: String, source: std::io::Error },
    #[error("`cwd` {cwd:?} is outside the workspace root")]
    CwdOutside { cwd: String },
    #[error("`cwd` {cwd:?} is not a directory")]
    CwdNotADirectory { cwd: String },
    #[error("`env` has an invalid variable name {key:?}")]
    EnvName { key: String },
    #[error("the value of `env.{key}` contains a NUL byte")]
    EnvNul { key: String },
    /// `reason` is `crate::mcp_servers`'s check of the entry.
    #[error("`mcp_servers.{name}`: {reason}")]
    McpServer { name: String, reason: String },
    /// `kind` is "local (stdio)" or "remote (HTTP)".
    #[error("the {agent} agent takes no {kind} MCP servers: remove `{name}` from `mcp_servers`")]
    McpNotAccepted { agent: String, kind: &'static str, name: String },
    #[error("the {agent} agent cannot be given skills")]
    SkillsNotAccepted { agent: String },
    #[error("`skills` names {name:?} twice")]
    SkillTwice { name: String },
    #[error("`skills` names {name:?}, which is not installed (see GET /v1/skills)")]
    SkillNotInstalled { name: String },
    #[error("`limit` must be between 1 and {max}")]
    Limit { max: u32 },
    #[error("`cursor` is not a valid cursor (a page's `next_cursor`)")]
    Cursor,
    /// A `seq` cursor beyond what the store holds (it was restored from an older copy).
    #[error("{}", cursor_ahead_detail("seq", .0))]
    CursorAhead(StreamReset),
    #[error("no open permission request {id} in this session")]
    NoPermission { id: String },
    #[error("no open question {id} in this session")]
    NoQuestion { id: String },
    #[error("give either `answers` or `reject`, not both")]
    AnswersAndReject,
    #[error("give `answers` (one list per question) or `reject: true`")]
    NoAnswer,
    #[error("`answers` has {given} lists but the request asked {asked} questions")]
    AnswerCount { given: usize, asked: usize },
    #[error("no turn is running in this session")]
    NoTurn,
    /// `reason` says why the agent's configuration could not be written.
    #[error("could not prepare the {agent} agent's configuration: {reason}")]
    Prepare { agent: String, reason: String },
    /// `reason` says why the agent's process could not be spawned.
    #[error("could not start the {agent} agent: {reason}")]
    Spawn { agent: String, reason: String },
    /// The session's actor is gone, or a task of it failed (a bug).
    #[error("{0}")]
    Internal(String),
    /// The disk holding the data dir is full (`crate::disk`): no new work until there is room.
    #[error("the disk holding tether's data dir is full: new sessions and messages are refused until there is room again (GET /v1/health says when); free some space and try again")]
    DiskFull,
    /// The store cannot commit; commands wait for it to recover.
    #[error("{}", stall_detail(.0))]
    Stalled(Stall),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AsProblem for SessionError {
    fn code(&self) -> ErrorCode {
        use SessionError::*;
        match self {
            NotFound { .. } => ErrorCode::SessionNotFound,
            CwdMissing { .. } | SkillNotInstalled { .. } | NoPermission { .. } | NoQuestion { .. } => {
                ErrorCode::NotFound
            }
            Ended { .. } | CwdNotADirectory { .. } | NoTurn => ErrorCode::Conflict,
            UnknownAgent { .. }
            | Unsupported { .. }
            | CwdNul
            | CwdUnusable { .. }
            | EnvName { .. }
            | EnvNul { .. }
            | McpServer { .. }
            | McpNotAccepted { .. }
            | SkillsNotAccepted { .. }
            | SkillTwice { .. }
            | Limit { .. }
            | Cursor
            | AnswersAndReject
            | NoAnswer
            | AnswerCount { .. } => ErrorCode::InvalidRequest,
            NotInstalled { .. } | NotInstalledHint { .. } | NoLongerInstalled { .. } => ErrorCode::AgentNotInstalled,
            UnknownStoredAgent | NoAdapter { .. } | Prepare { .. } | Spawn { .. } => ErrorCode::AgentUnavailable,
            CwdOutside { .. } => ErrorCode::PathOutsideRoot,
            CursorAhead(_) => ErrorCode::CursorAhead,
            Internal(_) => ErrorCode::Internal,
            Stalled(stall) => stall_code(stall),
            DiskFull => ErrorCode::InsufficientStorage,
            Store(e) => e.code(),
        }
    }

    fn detail(&self) -> String {
        match self {
            SessionError::Store(e) => e.detail(),
            other => other.to_string(),
        }
    }

    fn reset(&self) -> Option<StreamReset> {
        match self {
            SessionError::CursorAhead(reset) => Some(reset.clone()),
            _ => None,
        }
    }
}
