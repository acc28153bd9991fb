//! Outside tools the tests run against the server, pinned and installed by
//! the project's scripts into caches reused across runs: schemathesis from
//! PyPI (`scripts/install-tools`), the agent CLIs ([`agent_cli`]) and the MCP
//! Inspector from npm (`scripts/install-agents`).

use std::path::PathBuf;

/// The schemathesis version `scripts/install-tools` installs.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// The MCP Inspector version `scripts/install-agents` installs.
pub const MCP_INSPECTOR_VERSION: &str = "2.12.0";

/// Where `scripts/install-tools` installs: `${TETHER_TOOLS_DIR:-$HOME/.cache/tether-tools}`.
pub fn tools_dir() -> PathBuf {
    cache_dir("TETHER_TOOLS_DIR", "tether-tools")
}

/// Where `scripts/install-agents` installs the agent CLIs:
/// `${TETHER_AGENTS_DIR:-$HOME/.cache/tether-agents}`.
pub fn agents_dir() -> PathBuf {
    cache_dir("TETHER_AGENTS_DIR", "tether-agents")
}

/// An agent CLI (`title` in messages): `$<env>` if set, else the pinned
/// install `<agents_dir>/<bin>-<version>/node_modules/.bin/<bin>`.
///
/// # Panics
/// When it does not exist: run `scripts/install-agents`.
pub fn agent_cli(title: &str, bin: &str, version: &str, env: &str) -> PathBuf {
    let path = match std::env::var_os(env).filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => agents_dir().join(format!("{bin}-{version}")).join("node_modules").join(".bin").join(bin),
    };
    assert!(
        path.is_file(),
        "the {title} CLI {version} is not installed at {}: run scripts/install-agents (or set {env})",
        path.display()
    );
    path
}

/// A cache the project's install scripts fill: `$<env>` (made absolute) if
/// set, else `$HOME/.cache/<name>`.
pub fn cache_dir(env: &str, name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os(env).filter(|d| !d.is_empty()) {
        return std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir));
    }
    let home =
        std::env::var_os("HOME").filter(|h| !h.is_empty()).unwrap_or_else(|| panic!("HOME or {env} must be set"));
    PathBuf::from(home).join(".cache").join(name)
}

/// The `schemathesis` CLI of the pinned virtualenv.
///
/// # Panics
/// When it is not installed: run `scripts/install-tools`.
pub fn schemathesis_bin() -> PathBuf {
    let path = tools_dir().join(format!("schemathesis-{SCHEMATHESIS_VERSION}")).join("bin").join("schemathesis");
    assert!(
        path.is_file(),
        "schemathesis {SCHEMATHESIS_VERSION} is not installed at {}: run scripts/install-tools",
        path.display()
    );
    path
}

/// The MCP Inspector's launcher (`mcp-inspector --cli ...` is its CLI mode).
///
/// # Panics
/// When it is not installed: run `scripts/install-agents`.
pub fn mcp_inspector_bin() -> PathBuf {
    let path = agents_dir()
        .join(format!("mcp-inspector-{MCP_INSPECTOR_VERSION}"))
        .join("node_modules")
        .join(".bin")
        .join("mcp-inspector");
    assert!(
        path.is_file(),
        "the MCP Inspector {MCP_INSPECTOR_VERSION} is not installed at {}: run scripts/install-agents",
        path.display()
    );
    path
}
