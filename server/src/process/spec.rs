//! What the process host is asked to run: a command line and how its stdin
//! is wired. Agents build these (in their `launch`); the host owns the types,
//! so `process` depends on no agent.

use std::path::PathBuf;

use super::HttpBridge;

/// How the agent's protocol input reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdinMode {
    /// stdin is the PTY, like stdout and stderr.
    Pty,
    /// stdin is a pipe (for CLIs that refuse a terminal on stdin); output stays on the PTY.
    Pipe,
    /// The protocol is the agent's own HTTP server, reached through the bridge;
    /// stdin is /dev/null and the PTY carries its logs.
    Http(HttpBridge),
}

/// A command line ready for the process host.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: StdinMode,
}
