//! Installing agent CLIs: the pinned npm package of each agent goes into
//! `<data dir>/agents/<id>/` (npm into a staging folder, then renamed into
//! place, so an interrupted install never looks complete), and the version
//! of whatever binary is in use is read from `--version`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::AgentDef;
use crate::error::{AsProblem, ErrorCode};

/// The npm package and version an agent is installed from.
#[derive(Debug, Clone, Copy)]
pub struct Pinned {
    pub package: &'static str,
    pub version: &'static str,
}

/// Where an installed agent's binary is, under the data dir.
pub fn installed_bin(def: &AgentDef, data_dir: &Path) -> PathBuf {
    data_dir.join("agents").join(def.id).join("node_modules").join(".bin").join(def.command)
}

/// One step of an install, as shown to a terminal or streamed as SSE.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// `resolving`, `downloading`, `verifying`, `done`.
    pub stage: &'static str,
    /// 0..=100, by stage (npm reports no byte counts).
    pub percent: u8,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the {0} agent has no package to install")]
    NotInstallable(String),
    #[error("an install of the {0} agent is already running")]
    Busy(String),
    #[error("npm is not available: {0}")]
    NoNpm(String),
    #[error("npm install of {package}@{version} failed: {tail}")]
    Npm { package: String, version: String, tail: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl AsProblem for InstallError {
    fn code(&self) -> ErrorCode {
        match self {
            InstallError::NotInstallable(_) => ErrorCode::InvalidRequest,
            InstallError::Busy(_) => ErrorCode::Conflict,
            InstallError::NoNpm(_) | InstallError::Npm { .. } => ErrorCode::AgentUnavailable,
            InstallError::Io(_) => ErrorCode::Internal,
        }
    }
}

/// Agents being installed right now.
fn busy() -> &'static Mutex<Vec<&'static str>> {
    static BUSY: OnceLock<Mutex<Vec<&'static str>>> = OnceLock::new();
    BUSY.get_or_init(|| Mutex::new(Vec::new()))
}

struct BusyGuard(&'static str);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        if let Ok(mut b) = busy().lock() {
            b.retain(|id| *id != self.0);
        }
    }
}

/// Installs the pinned package of `def` into the data dir, reporting progress.
/// Returns the installed binary.
pub async fn install(
    def: &'static AgentDef,
    data_dir: &Path,
    mut progress: impl FnMut(Progress),
) -> Result<PathBuf, InstallError> {
    let pinned = def.pinned.ok_or_else(|| InstallError::NotInstallable(def.id.into()))?;
    let _guard = {
        let mut b = busy().lock().map_err(|_| InstallError::Busy(def.id.into()))?;
        if b.contains(&def.id) {
            return Err(InstallError::Busy(def.id.into()));
        }
        b.push(def.id);
        BusyGuard(def.id)
    };
    let spec = format!("{}@{}", pinned.package, pinned.version);
    let target = data_dir.join("agents").join(def.id);
    let bin = installed_bin(def, data_dir);
    if version_of(&bin).await.as_deref() == Some(pinned.version) {
        progress(Progress { stage: "done", percent: 100, message: format!("{spec} is already installed") });
        return Ok(bin);
    }
    progress(Progress { stage: "resolving", percent: 5, message: format!("installing {spec} from the npm registry") });
    let staging = data_dir.join("agents").join(format!(".{}-staging", def.id));
    if staging.exists() {
        tokio::fs::remove_dir_all(&staging).await?;
    }
    tokio::fs::create_dir_all(&staging).await?;
    let mut child = tokio::process::Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--no-update-notifier", "--prefer-offline", "--prefix"])
        .arg(&staging)
        .arg(&spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| InstallError::NoNpm(e.to_string()))?;
    progress(Progress { stage: "downloading", percent: 20, message: "npm install started".into() });
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward_lines(out, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward_lines(err, tx.clone()));
    }
    drop(tx);
    let mut tail: Vec<String> = Vec::new();
    let mut percent = 20u8;
    while let Some(line) = lines.recv().await {
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        percent = (percent + 10).min(80);
        progress(Progress { stage: "downloading", percent, message: line.clone() });
        tail.push(line);
        if tail.len() > 10 {
            tail.remove(0);
        }
    }
    let status = child.wait().await?;
    if !status.success() {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        return Err(InstallError::Npm {
            package: pinned.package.into(),
            version: pinned.version.into(),
            tail: tail.join(" | "),
        });
    }
    progress(Progress { stage: "verifying", percent: 90, message: format!("checking {} --version", def.command) });
    let staged_bin = staging.join("node_modules").join(".bin").join(def.command);
    let version = version_of(&staged_bin).await;
    if version.as_deref() != Some(pinned.version) {
        let _ = tokio::fs::remove_dir_all(&staging).await;
        return Err(InstallError::Npm {
            package: pinned.package.into(),
            version: pinned.version.into(),
            tail: format!("the installed binary reports version {version:?}"),
        });
    }
    if target.exists() {
        tokio::fs::remove_dir_all(&target).await?;
    }
    tokio::fs::rename(&staging, &target).await?;
    forget_version(&bin);
    progress(Progress { stage: "done", percent: 100, message: format!("installed {spec} at {}", bin.display()) });
    Ok(bin)
}

async fn forward_lines(r: impl tokio::io::AsyncRead + Unpin, tx: tokio::sync::mpsc::UnboundedSender<String>) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send(line).is_err() {
            break;
        }
    }
}

fn versions() -> &'static Mutex<HashMap<PathBuf, Option<String>>> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Option<String>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn forget_version(bin: &Path) {
    if let Ok(mut c) = versions().lock() {
        c.remove(bin);
    }
}

/// The version a binary reports with `--version` (the first dotted number), cached per path.
pub async fn version_of(bin: &Path) -> Option<String> {
    if !bin.is_file() {
        return None;
    }
    if let Some(v) = versions().lock().ok().and_then(|c| c.get(bin).cloned()) {
        return v;
    }
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(bin).arg("--version").stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await;
    let version = match out {
        // Pi prints its version to stderr only.
        Ok(Ok(o)) if o.status.success() => parse_version(&String::from_utf8_lossy(&o.stdout))
            .or_else(|| parse_version(&String::from_utf8_lossy(&o.stderr))),
        _ => None,
    };
    if let Ok(mut c) = versions().lock() {
        c.insert(bin.to_path_buf(), version.clone());
    }
    version
}

/// `2.1.330 (Claude Code)` → `2.1.330`; `codex-cli 0.169.0` → `0.169.0`;
/// `GitHub Copilot CLI 1.0.102.` → `1.0.102`;
/// `0.0.1767830505-ga62310 (released …)` → `0.0.1767830505-ga62310` (Amp's
/// builds: a dotted number and one alphanumeric suffix after a `-`).
pub fn parse_version(text: &str) -> Option<String> {
    let dotted = |n: &str| {
        n.split('.').count() >= 2 && n.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    text.split(|c: char| c.is_whitespace() || c == 'v')
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.').trim_end_matches('.'))
        .find(|w| match w.split_once('-') {
            Some((number, suffix)) => {
                dotted(number) && !suffix.is_empty() && suffix.chars().all(|c| c.is_ascii_alphanumeric())
            }
            None => dotted(w),
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_cli_banners() {
        assert_eq!(parse_version("2.1.330 (Claude Code)\n").as_deref(), Some("2.1.330"));
        assert_eq!(parse_version("codex-cli 0.169.0").as_deref(), Some("0.169.0"));
        assert_eq!(parse_version("opencode v1.18.33").as_deref(), Some("1.18.33"));
        let copilot = "GitHub Copilot CLI 1.0.102.\nRun 'copilot update' to check for updates.\n";
        assert_eq!(parse_version(copilot).as_deref(), Some("1.0.102"));
        assert_eq!(
            parse_version("0.0.1767830505-ga62310 (released 2026-01-08T00:07:21.653Z, 11mo ago)\n").as_deref(),
            Some("0.0.1767830505-ga62310")
        );
        assert_eq!(parse_version("no version here"), None);
    }
}
