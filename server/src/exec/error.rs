//! What can go wrong with a process, in the room's own terms.

use crate::error::{AsProblem, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("no process {0} (GET /v1/processes lists them)")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot start {command:?}: {reason}; give a program on the PATH or a path to one")]
    Spawn { command: String, reason: String },
    #[error("process {0} has ended; start a new one")]
    Ended(String),
    #[error("process {0} runs without a terminal (`tty: false`): it has no screen and no size")]
    NoTerminal(String),
    #[error("the input is {len} bytes; send at most {} bytes at a time", tether_protocol::MAX_INPUT_BYTES)]
    InputTooLarge { len: usize },
    #[error("{0}")]
    Internal(String),
}

impl AsProblem for ExecError {
    fn code(&self) -> ErrorCode {
        match self {
            ExecError::NotFound(_) => ErrorCode::ProcessNotFound,
            ExecError::Invalid(_) | ExecError::Spawn { .. } => ErrorCode::InvalidRequest,
            ExecError::Ended(_) | ExecError::NoTerminal(_) => ErrorCode::Conflict,
            ExecError::InputTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ExecError::Internal(_) => ErrorCode::Internal,
        }
    }
}
