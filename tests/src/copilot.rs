//! The real GitHub Copilot CLI in its ACP mode (`copilot --acp`) against a
//! scripted model: only the model is fake.
//!
//! - [`copilot_bin`]: the pinned CLI ([`COPILOT_VERSION`]) that
//!   `scripts/install-agents` installs from the npm registry (or
//!   `$TETHER_COPILOT_PATH`); its native binary is the optional package
//!   `@github/copilot-linux-x64`, which its `copilot` (a node loader) runs;
//! - the model is [`ScriptedOpenAI`], the Codex rig's Responses API, whose
//!   replies a `[copilot:TAG]` tag picks as `[codex:TAG]` does (Copilot
//!   offers its shell as the function `bash` and an MCP server's tools as
//!   functions `SERVER-TOOL`, which the scripted model calls directly);
//! - [`copilot_env`]: the environment that runs it offline against it, in
//!   BYOK mode (no GitHub login).

use std::path::{Path, PathBuf};

use crate::openai::ScriptedOpenAI;

/// The Copilot CLI version the tests run (`scripts/install-agents` installs it).
pub const COPILOT_VERSION: &str = "1.0.102";

/// The model [`copilot_env`] names: one Copilot knows (its tools and context
/// window follow from it); the scripted model ignores the name.
pub const COPILOT_MODEL: &str = "gpt-5.4";

/// The Copilot CLI: `$TETHER_COPILOT_PATH` if set, else the pinned install
/// `<agents_dir>/copilot-<COPILOT_VERSION>/node_modules/.bin/copilot`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn copilot_bin() -> PathBuf {
    crate::pinned_tools::agent_cli("Copilot", "copilot", COPILOT_VERSION, "TETHER_COPILOT_PATH")
}

/// The environment a tether server (and so the Copilot CLI it spawns) needs
/// to run Copilot offline against `model`, with `home` as `$HOME` and
/// `<home>/.copilot` as `$COPILOT_HOME` (its sessions are stored there:
/// reuse `home` across a restart, never across tests). `COPILOT_OFFLINE`
/// turns off its GitHub login, telemetry, web tools, GitHub MCP server and
/// updates; `COPILOT_PROVIDER_*` point it at the scripted Responses API.
///
/// # Panics
/// When `$COPILOT_HOME` cannot be created.
pub fn copilot_env(model: &ScriptedOpenAI, home: &Path) -> Vec<(String, String)> {
    let copilot_home = home.join(".copilot");
    std::fs::create_dir_all(&copilot_home).expect("create $COPILOT_HOME");
    let pairs = [
        ("HOME", home.display().to_string()),
        ("COPILOT_HOME", copilot_home.display().to_string()),
        ("COPILOT_OFFLINE", "true".to_owned()),
        ("COPILOT_AUTO_UPDATE", "false".to_owned()),
        ("COPILOT_PROVIDER_BASE_URL", format!("{}/v1", model.url())),
        ("COPILOT_PROVIDER_TYPE", "openai".to_owned()),
        ("COPILOT_PROVIDER_API_KEY", "scripted".to_owned()),
        ("COPILOT_PROVIDER_WIRE_API", "responses".to_owned()),
        ("COPILOT_MODEL", COPILOT_MODEL.to_owned()),
        ("NO_COLOR", "1".to_owned()),
        ("TETHER_COPILOT_PATH", copilot_bin().display().to_string()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).chain(model.proxy_trap()).collect()
}
