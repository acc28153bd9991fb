//! How the server starts the mock agent: the tether binary itself, run with
//! the hidden `__mock-agent` subcommand, under the PTY host like any agent,
//! driven by the Claude adapter (the mock speaks Claude's stream-json): the
//! whole server side of the mock, and its constructor in the registry.

use std::path::{Path, PathBuf};

use tether_protocol::Capabilities;

use crate::agents::claude::permission_mode_flag;
use crate::agents::claude::ClaudeAdapter;
use crate::agents::{Adapter, LaunchContext};
use crate::process::{LaunchSpec, StdinMode};

/// The registry's constructor: Claude's adapter with the mock's launcher.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(ClaudeAdapter::with_launcher(program, launch))
}

/// The hidden subcommand of the tether binary that runs the mock agent.
pub const SUBCOMMAND: &str = "__mock-agent";

pub fn capabilities() -> Capabilities {
    Capabilities {
        streaming_text: true,
        tool_calls: true,
        permissions: true,
        questions: true,
        interrupt: true,
        resume: true,
        mcp: true,
        skills: true,
        models: false,
        reasoning: false,
        usage: true,
        images: false,
        terminal: false,
    }
}

pub fn launch(program: &Path, ctx: &LaunchContext<'_>) -> LaunchSpec {
    let mut args =
        vec![SUBCOMMAND.to_string(), "--permission-mode".into(), permission_mode_flag(ctx.permission_mode).into()];
    if let Some(model) = ctx.model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(resume) = ctx.resume {
        args.extend(["--resume".into(), resume.into()]);
    }
    // The same files Claude Code gets: the mock lists them in its init.
    args.extend(crate::agents::claude::session_config_args(ctx));
    // In the session's own folder: the agent may run as another user (`--agent-user`)
    // that can write nowhere else in the data dir.
    let state = ctx.session_dir.join("mock-state");
    let env = vec![("TETHER_MOCK_STATE_DIR".to_string(), state.display().to_string())];
    LaunchSpec { program: program.to_path_buf(), args, env, stdin: StdinMode::Pipe }
}
