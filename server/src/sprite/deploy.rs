//! `tether sprite deploy NAME`: from a laptop with `SPRITES_TOKEN` to a
//! running tether in the Sprite, through the Sprites REST API
//! ([`super::rest`]) and nothing else.
//!
//! The steps, each printed as it goes:
//! 1. `GET` the Sprite (its URL; a wrong name or token stops here).
//! 2. Ask the Sprite whether [`REMOTE_BINARY`] already is this binary
//!    (`sha256sum -c`, so only an exit code crosses the wire). If it is,
//!    nothing is uploaded. If another tether is there, deploy stops and
//!    says `--upgrade` replaces it: replacing restarts the service, which
//!    interrupts running turns. Otherwise (or with `--upgrade`) the binary
//!    goes to `tether.new` (mode 0755), its hash is checked in the Sprite,
//!    and it is renamed over the old one: a running tether keeps its file.
//! 3. Run `tether sprite install` in the Sprite (with `--restart` when the
//!    binary was replaced, so the new one runs); its output is shown.
//! 4. Read the token install keeps in the Sprite and save it on this
//!    machine, 0600, where clients find it
//!    ([`tether_sdk::sprites::saved_token_path`]).
//!
//! A second deploy changes nothing and says so. This module must not print
//! the token, nor write it anywhere but that one file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rest::{ExecOutput, SpritesRest};

/// Where the binary lives in the Sprite.
pub const REMOTE_BINARY: &str = "/home/sprite/.local/bin/tether";
/// The data dir install is given in the Sprite (its default for the user `sprite`).
pub const REMOTE_DATA_DIR: &str = "/home/sprite/.local/share/tether";
/// The workspace by default, and where commands run.
pub const REMOTE_HOME: &str = "/home/sprite";

/// How long checking and renaming may take in the Sprite.
const SHORT_EXEC: Duration = Duration::from_secs(120);

/// What `tether sprite deploy` does.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The Sprite's name.
    pub sprite: String,
    /// The Sprites API, `https://…` or `wss://…`.
    pub api_url: String,
    pub sprites_token: Option<String>,
    /// The static Linux binary to upload.
    pub binary: PathBuf,
    /// The port tether serves on in the Sprite.
    pub port: u16,
    /// The workspace root in the Sprite.
    pub workspace: String,
    /// Replace the binary even when it is the same, and restart the service.
    pub upgrade: bool,
    /// How long install waits for the service to answer.
    pub wait: Duration,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    pub uploaded: bool,
    /// Install's word for the service: registered, unchanged, restarted, …
    pub service: String,
    pub token_changed: bool,
    pub token_file: PathBuf,
    pub url: Option<String>,
}

impl Deployed {
    pub fn changed_nothing(&self) -> bool {
        !self.uploaded && self.service == "unchanged" && !self.token_changed
    }
}

/// `tether sprite deploy`.
pub async fn deploy(o: &DeployOptions, out: &mut impl Write) -> Result<Deployed, String> {
    let Some(sprites_token) = o.sprites_token.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Err("no Sprites token: set SPRITES_TOKEN (or pass --sprites-token) to a token of the Sprite's \
                    organization, from https://sprites.dev/account or `sprite org auth`"
            .into());
    };
    let token_file = tether_sdk::sprites::saved_token_path(&o.sprite).ok_or_else(|| {
        format!(
            "cannot save the token for {:?}: a Sprite's name is one word without '/', and the token goes under \
             $XDG_CONFIG_HOME or $HOME (set one of them)",
            o.sprite
        )
    })?;
    let binary = read_binary(&o.binary)?;
    let hash = sha256_hex(&binary);
    let rest = SpritesRest::new(&o.api_url, sprites_token.trim(), &o.sprite)?;

    let info = rest.sprite().await.map_err(|e| e.to_string())?;
    let url = info.url.clone().filter(|u| !u.is_empty());
    say(out, format!("sprite {}: {}", o.sprite, url.as_deref().unwrap_or("found (the API gave no URL)")));

    let same = has_file(&rest, REMOTE_BINARY, &hash).await?;
    // Replacing a binary that is there means restarting the service that may run it.
    let (uploaded, replaced) = if same && !o.upgrade {
        say(
            out,
            format!("binary: the same tether is already at {REMOTE_BINARY} (sha256 {}); not uploaded", &hash[..12]),
        );
        (false, false)
    } else {
        let existed = same || exists(&rest, REMOTE_BINARY).await?;
        if existed && !o.upgrade {
            return Err(format!(
                "another tether binary is at {REMOTE_BINARY} in the Sprite {}: deploy again with --upgrade to replace \
                 it (the service restarts: running turns are interrupted, sessions come back as after a restart)",
                o.sprite
            ));
        }
        upload(&rest, binary, &hash, out).await?;
        (true, existed)
    };

    let port = o.port.to_string();
    let wait = o.wait.as_secs().to_string();
    let mut install = vec![
        REMOTE_BINARY,
        "sprite",
        "install",
        "--port",
        &port,
        "--data-dir",
        REMOTE_DATA_DIR,
        "--workspace",
        &o.workspace,
        "--wait-secs",
        &wait,
    ];
    if replaced {
        // The service's wrapper script is the same; only a restart makes the new binary run.
        install.push("--restart");
    }
    say(out, format!("service: running `tether {}` in the Sprite", install[1..].join(" ")));
    let ran = rest.exec(&install, REMOTE_HOME, o.wait + SHORT_EXEC).await.map_err(|e| e.to_string())?;
    // Install's own `url:` and `try:` lines speak of paths in the Sprite; the ones below are for here.
    let shown = ran.output.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("url:") && !l.starts_with("try:"));
    for line in shown {
        say(out, format!("  {line}"));
    }
    if ran.code != 0 {
        return Err(format!(
            "`tether sprite install` failed in the Sprite (exit {}); its output is above. The service's log is in \
             /.sprite/logs/services/ in the Sprite",
            ran.code
        ));
    }
    let service = service_action(&ran.output).unwrap_or("installed").to_owned();

    let remote_token = format!("{REMOTE_DATA_DIR}/token");
    let token = rest
        .read_file(&remote_token)
        .await
        .map_err(|e| e.to_string())?
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("install ran, but the Sprite has no token at {remote_token}"))?;
    let token_changed = save_token(&token_file, &token)?;
    say(
        out,
        format!("token: {} ({}, mode 0600)", token_file.display(), if token_changed { "saved" } else { "unchanged" }),
    );
    match &url {
        Some(url) => say(out, format!("url: {url}")),
        None => say(out, "url: unknown (the Sprites API gave none)"),
    }
    let deployed = Deployed { uploaded, service, token_changed, token_file, url };
    if deployed.changed_nothing() {
        say(out, "nothing changed: this tether was already deployed and running.");
    } else {
        say(out, "deployed.");
    }
    say(out, format!("try: tether sessions --sprite {}", o.sprite));
    Ok(deployed)
}

fn say(out: &mut impl Write, line: impl std::fmt::Display) {
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The binary to upload: it must be a Linux executable (a laptop's own
/// tether may be a macOS one).
fn read_binary(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read the binary {}: {e}", path.display()))?;
    if !bytes.starts_with(b"\x7fELF") {
        return Err(format!(
            "{} is not a Linux executable, and a Sprite runs Linux: pass --binary with tether's static Linux build \
             (`./scripts/release` makes dist/tether-x86_64-linux)",
            path.display()
        ));
    }
    Ok(bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether the file at `path` in the Sprite has this sha256 (a missing file has not).
async fn has_file(rest: &SpritesRest, path: &str, hash: &str) -> Result<bool, String> {
    let script = r#"printf '%s  %s\n' "$1" "$2" | sha256sum -c --status"#;
    let ran = rest.exec(&["sh", "-c", script, "sh", hash, path], REMOTE_HOME, SHORT_EXEC).await;
    Ok(ran.map_err(|e| e.to_string())?.code == 0)
}

async fn exists(rest: &SpritesRest, path: &str) -> Result<bool, String> {
    let ran = rest.exec(&["test", "-e", path], REMOTE_HOME, SHORT_EXEC).await;
    Ok(ran.map_err(|e| e.to_string())?.code == 0)
}

/// Uploads to `tether.new`, checks it arrived whole, renames it into place.
async fn upload(rest: &SpritesRest, binary: Vec<u8>, hash: &str, out: &mut impl Write) -> Result<(), String> {
    let staged = format!("{REMOTE_BINARY}.new");
    say(out, format!("binary: uploading {:.1} MB to {REMOTE_BINARY} (sha256 {})", mb(binary.len()), &hash[..12]));
    rest.write_file(&staged, binary, 0o755).await.map_err(|e| e.to_string())?;
    let script = r#"printf '%s  %s\n' "$1" "$2" | sha256sum -c --status || exit 3; mv -f "$2" "$3" || exit 4"#;
    let ExecOutput { code, output } = rest
        .exec(&["sh", "-c", script, "sh", hash, &staged, REMOTE_BINARY], REMOTE_HOME, SHORT_EXEC)
        .await
        .map_err(|e| e.to_string())?;
    match code {
        0 => {
            say(out, format!("binary: in place (mode 0755); {staged} renamed over it"));
            Ok(())
        }
        3 => Err(format!("the upload to {staged} arrived damaged (its sha256 differs): deploy again")),
        _ => Err(format!("cannot move {staged} to {REMOTE_BINARY} in the Sprite (exit {code}): {}", output.trim())),
    }
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Install's word for what it did to the service, from its line
/// `service "NAME" ACTION: …`.
fn service_action(output: &str) -> Option<&str> {
    output.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("service \"")?;
        let (_, after) = rest.split_once("\" ")?;
        let (action, _) = after.split_once(':')?;
        (!action.is_empty() && !action.contains(' ')).then_some(action)
    })
}

/// Writes the token to `path` (0600, its directory 0700) unless it already
/// holds it; answers whether it wrote.
fn save_token(path: &Path, token: &str) -> Result<bool, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let content = format!("{token}\n");
    let unchanged = std::fs::read_to_string(path).is_ok_and(|c| c.trim() == token);
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if unchanged {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(content.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_says_what_it_did_to_the_service() {
        let out = "warning: port\nservice \"tether\" unchanged: /d/sprite-service.sh (port 8080)\ntoken: x\n";
        assert_eq!(service_action(out), Some("unchanged"));
        assert_eq!(service_action("service \"tether\" restarted: /x (port 1)"), Some("restarted"));
        assert_eq!(service_action("nothing here"), None);
    }

    #[test]
    fn a_binary_that_is_not_linux_is_refused_with_what_to_pass() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mach_o = dir.path().join("tether");
        std::fs::write(&mach_o, b"\xcf\xfa\xed\xfe....").unwrap_or_else(|e| panic!("{e}"));
        let e = read_binary(&mach_o).err().unwrap_or_default();
        assert!(e.contains("not a Linux executable") && e.contains("--binary"), "{e}");
    }

    #[test]
    fn the_token_is_saved_0600_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("tether/sprites/box/token");
        assert_eq!(save_token(&file, "abc"), Ok(true));
        assert_eq!(save_token(&file, "abc"), Ok(false));
        assert_eq!(std::fs::read_to_string(&file).ok().as_deref(), Some("abc\n"));
        let mode = std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        assert_eq!(mode, 0o600);
        assert_eq!(save_token(&file, "def"), Ok(true));
    }
}
