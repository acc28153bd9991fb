//! `tether sprite install|status|uninstall`: tether as a Sprite service.
//!
//! Install writes the token (0600, kept if it exists) and a wrapper script
//! that sets the environment and `exec`s `tether serve` (the service API's
//! args are comma-separated and its env/dir fields undocumented), registers
//! the wrapper as the service with `http_port`, waits until the server
//! answers with the token, and prints the Sprite URL. It is idempotent: an
//! unchanged definition is left alone, a changed one is replaced.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::api::{Action, Put, ServiceDef, SpriteApi, SpriteError};
use super::keepawake::KeepAwakeConfig;

/// What `tether sprite install` sets up.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub socket: PathBuf,
    /// The service's name.
    pub name: String,
    pub host: IpAddr,
    pub port: u16,
    pub token_file: PathBuf,
    pub workspace: PathBuf,
    pub data_dir: PathBuf,
    /// The tether binary the service runs.
    pub exe: PathBuf,
    pub keep_awake: bool,
    /// How long to wait for the service to answer.
    pub wait: Duration,
    /// Restart the service even when its definition is unchanged (a new binary in place).
    pub restart: bool,
}

/// The port the Sprite URL reaches unless a service says otherwise.
pub const URL_PORT: u16 = 8080;

/// Why `tether sprite install|uninstall` must not run here: from inside a
/// session tether runs, the command would stop the service that runs the
/// agent that runs it (the agent is in the service's cgroup).
pub fn refused_inside_a_session() -> Option<String> {
    let session = std::env::var(crate::process::SESSION_ENV).ok().filter(|s| !s.is_empty())?;
    Some(format!(
        "this runs inside the tether session {session}: changing the tether service from here would stop tether \
         and, with it, the agent that ran this command. Run it from a shell of your own in the Sprite \
         (`sprite console`) or use `tether sprite deploy` from your machine."
    ))
}

fn api(socket: &Path) -> Result<SpriteApi, String> {
    SpriteApi::detect(socket).ok_or_else(|| {
        format!(
            "not inside a Sprite: there is no Sprite API socket at {} (run `tether serve` instead, or pass --socket)",
            socket.display()
        )
    })
}

/// Quotes `s` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The wrapper script the service runs.
fn wrapper_script(o: &InstallOptions) -> String {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let home = std::env::var("HOME").unwrap_or_else(|_| "/home/sprite".into());
    let mut args = vec![
        "serve".to_string(),
        "--host".into(),
        o.host.to_string(),
        "--port".into(),
        o.port.to_string(),
        "--token-file".into(),
        o.token_file.display().to_string(),
        "--workspace".into(),
        o.workspace.display().to_string(),
        "--data-dir".into(),
        o.data_dir.display().to_string(),
        "--sprite-socket".into(),
        o.socket.display().to_string(),
        "--log-format".into(),
        "json".into(),
    ];
    if !o.keep_awake {
        args.push("--no-keep-awake".into());
    }
    let args: Vec<String> = args.iter().map(|a| sh_quote(a)).collect();
    format!(
        "#!/bin/sh\n# Written by `tether sprite install`; rewritten by it when the definition changes.\n\
         export PATH={}\nexport HOME={}\ncd {} || exit 1\nexec {} {}\n",
        sh_quote(&path),
        sh_quote(&home),
        sh_quote(&o.workspace.display().to_string()),
        sh_quote(&o.exe.display().to_string()),
        args.join(" ")
    )
}

/// Writes `content` to `path` (mode `mode`) unless it already holds exactly
/// that; answers whether it wrote.
fn write_if_changed(path: &Path, content: &[u8], mode: u32) -> Result<bool, String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if std::fs::read(path).is_ok_and(|c| c == content) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(content).and_then(|_| f.sync_all()).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

/// The token in `path`, created (random, 0600) when the file is missing or empty.
fn ensure_token(path: &Path) -> Result<(String, bool), String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_string();
        if !t.is_empty() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))?;
            return Ok((t, false));
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_if_changed(path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok((token, true))
}

/// Waits until tether answers `/v1/info` on `port` with `token`.
async fn wait_ready(host: IpAddr, port: u16, token: &str, wait: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    // No redirects (`client_builder`): the token goes nowhere but to tether.
    let client = tether_sdk::http_client(|| tether_sdk::client_builder().timeout(Duration::from_secs(5)))
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let url = format!("http://{}:{port}/v1/info", crate::connections::local_host(host));
    let mut last = String::from("no answer yet");
    while started.elapsed() < wait {
        match client.get(&url).header(tether_protocol::TOKEN_HEADER, token).send().await {
            Ok(r) if r.status().is_success() => return Ok(started.elapsed()),
            Ok(r) => last = format!("{url} answered {}", r.status()),
            Err(e) => last = format!("{url}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("the service did not answer within {} s ({last}); see /.sprite/logs/services/", wait.as_secs()))
}

/// Registers `def`; a 409 names the service that already has the HTTP port.
async fn register(api: &SpriteApi, name: &str, def: &ServiceDef) -> Result<(), String> {
    match api.put_service(name, def).await {
        Ok(Put::Started) => Ok(()),
        Ok(Put::Exists(message)) => Err(format!(
            "the Sprite kept an older service {name:?} ({message}); run `tether sprite uninstall` and install again"
        )),
        Err(SpriteError::Status { status: 409, body, .. }) => {
            // Only one service may have an http_port (the URL reaches one).
            let holder = api
                .services()
                .await
                .ok()
                .and_then(|list| list.into_iter().find(|s| s.name != name && s.http_port.is_some()));
            Err(match holder {
                Some(h) => format!(
                    "the service {:?} already has the Sprite's HTTP port ({}), and a Sprite routes its URL to one \
                     service only: remove that one (`sprite-env services delete {}`) and install again",
                    h.name,
                    h.http_port.unwrap_or_default(),
                    h.name
                ),
                None => format!("the Sprite refused the service {name:?} (409: {body})"),
            })
        }
        Err(e) => Err(e.to_string()),
    }
}

/// `tether sprite install`.
pub async fn install(o: &InstallOptions, out: &mut impl Write) -> Result<(), String> {
    let api = api(&o.socket)?;
    if o.port != URL_PORT {
        let _ = writeln!(
            out,
            "warning: the Sprite URL reaches port {URL_PORT} unless the platform honours the service's http_port \
             ({}); live reports saw it stay on {URL_PORT}. If the URL does not answer, install with --port {URL_PORT}.",
            o.port
        );
    }
    let (token, token_created) = ensure_token(&o.token_file)?;
    let wrapper = o.data_dir.join("sprite-service.sh");
    let wrapper_changed = write_if_changed(&wrapper, wrapper_script(o).as_bytes(), 0o755)?;
    let def = ServiceDef {
        cmd: wrapper.display().to_string(),
        args: vec![],
        needs: vec![],
        http_port: Some(o.port),
        env: Default::default(),
        dir: None,
    };
    let current = api.service(&o.name).await.map_err(|e| e.to_string())?;
    let action = match current {
        Some(s) if s.matches(&def) => {
            if !s.is_up() {
                // Stopped on purpose (it then shows as `failed`), or crashed for good.
                api.service_action(&o.name, Action::Start).await.map_err(|e| e.to_string())?;
                "started"
            } else if wrapper_changed || o.restart {
                api.service_action(&o.name, Action::Restart).await.map_err(|e| e.to_string())?;
                "restarted"
            } else {
                "unchanged"
            }
        }
        Some(_) => {
            // The platform keeps an existing definition: stop, delete (refused while running), register.
            api.service_action(&o.name, Action::Stop).await.map_err(|e| e.to_string())?;
            api.delete_service(&o.name).await.map_err(|e| e.to_string())?;
            register(&api, &o.name, &def).await?;
            "replaced"
        }
        None => {
            register(&api, &o.name, &def).await?;
            "registered"
        }
    };
    // Read it back: the port the URL should reach must have been kept.
    match api.service(&o.name).await {
        Ok(Some(s)) if s.http_port != Some(o.port) => {
            let _ = writeln!(
                out,
                "warning: the Sprite did not keep http_port {} for the service (it reads {}); the Sprite URL may \
                 not reach tether unless it listens on {URL_PORT}",
                o.port,
                s.http_port.map(|p| p.to_string()).unwrap_or_else(|| "nothing".into())
            );
        }
        Ok(_) => {}
        Err(e) => {
            let _ = writeln!(out, "warning: could not read the service back: {e}");
        }
    }
    let took = wait_ready(o.host, o.port, &token, o.wait).await?;
    let info = api.info().await.ok();
    let url = info.as_ref().and_then(|i| i.sprite_url.clone());
    let _ = writeln!(out, "service {:?} {action}: {} (port {})", o.name, wrapper.display(), o.port);
    let _ = writeln!(out, "tether answers on port {} ({} ms)", o.port, took.as_millis());
    let _ = writeln!(out, "token: {} ({})", o.token_file.display(), if token_created { "created" } else { "kept" });
    match url {
        Some(url) => {
            let url = url.trim_end_matches('/');
            let _ = writeln!(out, "url: {url}");
            let _ = writeln!(
                out,
                "try: curl -H \"Authorization: Bearer $SPRITES_TOKEN\" -H \"X-Tether-Token: $(cat {})\" {url}/v1/info",
                o.token_file.display()
            );
        }
        None => {
            let _ = writeln!(out, "url: unknown (GET /info on the Sprite API gave none)");
        }
    }
    Ok(())
}

/// `tether sprite status`: answers whether the service runs and answers.
pub async fn status(socket: &Path, name: &str, out: &mut impl Write) -> Result<bool, String> {
    let api = api(socket)?;
    let Some(service) = api.service(name).await.map_err(|e| e.to_string())? else {
        let _ = writeln!(out, "service {name:?}: not installed (run `tether sprite install`)");
        return Ok(false);
    };
    let state = service.state.clone().unwrap_or_default();
    let _ = writeln!(
        out,
        "service {name:?}: {} (pid {}, restarts {}){}",
        service.status(),
        state.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        state.restart_count.unwrap_or(0),
        state.error.map(|e| format!(", error: {e}")).unwrap_or_default()
    );
    let _ = writeln!(out, "command: {} {}", service.cmd, service.args.join(" "));
    if !service.is_up() {
        // A stop from outside shows as `failed` too: say how to bring it back.
        let _ = writeln!(out, "it is not running: `tether sprite install` starts it again");
    }
    let mut healthy = false;
    if let Some(port) = service.http_port {
        let url = format!("http://127.0.0.1:{port}/v1/health");
        let client = tether_sdk::http_client(|| reqwest::Client::builder().timeout(Duration::from_secs(3)))
            .map_err(|e| e.to_string())?;
        healthy = client.get(&url).send().await.is_ok_and(|r| r.status().is_success());
        let _ = writeln!(out, "health on port {port}: {}", if healthy { "ok" } else { "no answer" });
    }
    if let Ok(info) = api.info().await {
        if let Some(url) = info.sprite_url {
            let _ = writeln!(out, "url: {url}");
        }
    }
    Ok(healthy && service.status() == "running")
}

/// `tether sprite uninstall`: removes the service and its keep-awake task.
pub async fn uninstall(socket: &Path, name: &str, out: &mut impl Write) -> Result<(), String> {
    let api = api(socket)?;
    let Some(service) = api.service(name).await.map_err(|e| e.to_string())? else {
        let _ = writeln!(out, "service {name:?}: not installed");
        return Ok(());
    };
    // The platform refuses to delete a running service: stop it first.
    api.service_action(name, Action::Stop).await.map_err(|e| e.to_string())?;
    api.delete_service(name).await.map_err(|e| e.to_string())?;
    if let Some(port) = service.http_port {
        let task = KeepAwakeConfig::for_port(port).task;
        if api.delete_task(&task).await.map_err(|e| e.to_string())? {
            let _ = writeln!(out, "deleted the keep-awake task {task:?}");
        }
    }
    let _ = writeln!(out, "service {name:?}: removed (the token and data dir are kept)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes_and_spaces() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn a_wildcard_listener_is_reached_on_loopback() {
        assert_eq!(crate::connections::local_host("::".parse().unwrap_or(IpAddr::from([0u8; 4]))), "127.0.0.1");
        assert_eq!(crate::connections::local_host(IpAddr::from([127, 0, 0, 1])), "127.0.0.1");
        assert_eq!(crate::connections::local_host("::1".parse().unwrap_or(IpAddr::from([0u8; 4]))), "[::1]");
    }
}
