//! How Amp starts for a session: execute mode with stream-json on both
//! sides, on the session's thread when it continues one.

use std::path::Path;

use tether_protocol::PermissionMode;

use crate::agents::LaunchContext;
use crate::process::{LaunchSpec, StdinMode};

/// `amp [threads continue <thread>] --execute --stream-json --stream-json-input ...`.
/// The model URL and key come from the session's environment (`AMP_URL`,
/// `AMP_API_KEY`). Only Amp's `smart` mode may stream JSON, so no model is
/// chosen. In the bypass mode `--dangerously-allow-all`; otherwise Amp's own
/// rules decide, and a call they would ask about ends the run with an error.
pub fn launch(program: &Path, ctx: &LaunchContext<'_>) -> LaunchSpec {
    let mut args: Vec<String> = Vec::new();
    if let Some(thread) = ctx.resume {
        args.extend(["threads".into(), "continue".into(), thread.into()]);
    }
    args.extend(
        ["--execute", "--stream-json", "--stream-json-input", "--no-ide", "--no-jetbrains", "--no-notifications"]
            .iter()
            .map(|s| s.to_string()),
    );
    if ctx.permission_mode == PermissionMode::Bypass {
        args.push("--dangerously-allow-all".into());
    }
    let env = vec![("AMP_SKIP_UPDATE_CHECK".into(), "1".into())];
    LaunchSpec { program: program.to_path_buf(), args, env, stdin: StdinMode::Pipe }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_resumed_session_continues_its_thread_and_bypass_allows_all() {
        let dir = std::env::temp_dir();
        let (env, mcp) = (BTreeMap::new(), BTreeMap::new());
        let mut ctx = LaunchContext::for_test(&dir, &env, &mcp);
        let fresh = launch(Path::new("amp"), &ctx);
        assert_eq!(fresh.args[..3], ["--execute", "--stream-json", "--stream-json-input"]);
        assert!(!fresh.args.contains(&"--dangerously-allow-all".to_string()));
        assert_eq!(fresh.stdin, StdinMode::Pipe);
        ctx.resume = Some("T-1");
        ctx.permission_mode = PermissionMode::Bypass;
        let resumed = launch(Path::new("amp"), &ctx);
        assert_eq!(resumed.args[..4], ["threads", "continue", "T-1", "--execute"]);
        assert!(resumed.args.contains(&"--dangerously-allow-all".to_string()));
    }
}
