//! `tether sprite deploy NAME` from a laptop, against the fake Sprites REST
//! API (tests/src/sprites_api.rs): the binary arrives 0755, install runs in
//! the Sprite (a service that really serves), the token lands here 0600, a
//! second deploy changes nothing, `--upgrade` replaces and restarts, and
//! `tether sessions --sprite NAME` then needs no token. `tether sprite
//! smoke`, the live check, runs here against the same fakes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use tether_e2e::remote::{TestCa, TlsFront};
use tether_e2e::sprite::Call;
use tether_e2e::sprites_api::FakeSpritesApi;
use tether_e2e::*;

const NAME: &str = "demo";
const SPRITES_TOKEN: &str = "sprites-org-token";
const REMOTE_BINARY: &str = "/home/sprite/.local/bin/tether";
const REMOTE_TOKEN: &str = "/home/sprite/.local/share/tether/token";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port nobody listens on right now, for the service to take.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Runs `tether ARGS` as a person's shell would: `XDG_CONFIG_HOME=config`,
/// `SPRITES_TOKEN` if given, nothing of the caller's `TETHER_*`.
async fn tether(args: &[&str], config: &Path, sprites_token: Option<&str>) -> Output {
    let mut cmd = tokio::process::Command::new(tether_bin());
    cmd.args(args).env("XDG_CONFIG_HOME", config).env_remove("SPRITES_API_URL").env_remove("SPRITES_TOKEN");
    if let Some(t) = sprites_token {
        cmd.env("SPRITES_TOKEN", t);
    }
    tether_e2e::server::scrub_env_tokio(&mut cmd);
    tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("tether finished within 180 s")
        .expect("run tether")
}

async fn deploy(api_url: &str, port: u16, config: &Path, extra: &[&str]) -> Output {
    let port = port.to_string();
    let mut args = vec!["sprite", "deploy", NAME, "--sprites-api", api_url, "--port", &port];
    args.extend_from_slice(extra);
    tether(&args, config, Some(SPRITES_TOKEN)).await
}

fn saved_token_file(config: &Path) -> PathBuf {
    config.join("tether/sprites").join(NAME).join("token")
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Changes to services the in-Sprite API saw (not GETs, not tasks).
fn service_changes(calls: &[Call]) -> Vec<String> {
    calls.iter().filter(|c| c.method != "GET" && c.path.starts_with("/v1/services")).map(Call::line).collect()
}

async fn info_status(port: u16, token: &str) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let req = client.get(format!("http://127.0.0.1:{port}/v1/info")).header("X-Tether-Token", token);
    req.send().await.ok().map(|r| r.status().as_u16())
}

/// `tether sessions --sprite NAME` through the fake's TCP proxy, no tether token given.
async fn sessions(api: &FakeSpritesApi, port: u16, config: &Path) -> Output {
    let port = port.to_string();
    let args = ["sessions", "--sprite", NAME, "--sprites-api", &api.ws_url, "--sprite-port", &port, "--json"];
    tether(&args, config, Some(SPRITES_TOKEN)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_installs_a_serving_tether_saves_its_token_and_a_second_deploy_changes_nothing() {
    let api = FakeSpritesApi::start(NAME, SPRITES_TOKEN).await;
    let config = tempfile::tempdir().unwrap();
    let port = free_port();

    let out = deploy(&api.url, port, config.path(), &[]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "deploy failed: {}\n{stdout}", text(&out.stderr));
    assert!(stdout.contains("binary: uploading"), "{stdout}");
    assert!(stdout.contains(&format!("url: https://{NAME}-org.sprites.app")), "{stdout}");
    assert!(stdout.contains(&format!("try: tether sessions --sprite {NAME}")), "{stdout}");
    assert!(stdout.contains("service \"tether\" registered") && !stdout.contains("--restart"), "{stdout}");

    // The binary arrived whole, 0755, through tether.new (never written in place).
    let remote_bin = api.local_path(REMOTE_BINARY);
    assert_eq!(std::fs::read(&remote_bin).unwrap(), std::fs::read(tether_bin()).unwrap());
    assert_eq!(mode(&remote_bin), 0o755);
    assert_eq!(api.writes(), vec![format!("{REMOTE_BINARY}.new")]);
    assert!(!api.local_path(&format!("{REMOTE_BINARY}.new")).exists());

    // Install ran in the Sprite: the service was registered and answers with the token.
    assert_eq!(service_changes(&api.sprite().calls()), vec!["PUT /v1/services/tether"]);
    let def = api.sprite().service("tether").expect("the service is registered");
    assert_eq!(def["http_port"], port);
    let remote_token = std::fs::read_to_string(api.local_path(REMOTE_TOKEN)).unwrap().trim().to_owned();
    assert_eq!(info_status(port, &remote_token).await, Some(200));

    // The token landed here, 0600, in a 0700 directory, and the output says where.
    let saved = saved_token_file(config.path());
    assert_eq!(std::fs::read_to_string(&saved).unwrap().trim(), remote_token);
    assert_eq!(mode(&saved), 0o600);
    assert_eq!(mode(saved.parent().unwrap()), 0o700);
    assert!(stdout.contains(&format!("token: {} (saved, mode 0600)", saved.display())), "{stdout}");
    assert!(!stdout.contains(&remote_token) && !text(&out.stderr).contains(&remote_token), "the token is not shown");

    // A second deploy: no upload, no change to the service, and it says so.
    let calls_before = api.sprite().calls().len();
    let writes_before = api.writes().len();
    let again = deploy(&api.url, port, config.path(), &[]).await;
    let again_out = text(&again.stdout);
    assert!(again.status.success(), "second deploy failed: {}\n{again_out}", text(&again.stderr));
    assert!(again_out.contains("nothing changed"), "{again_out}");
    assert!(again_out.contains("not uploaded"), "{again_out}");
    assert_eq!(api.writes().len(), writes_before, "nothing uploaded the second time");
    assert_eq!(service_changes(&api.sprite().calls()[calls_before..]), Vec::<String>::new());
    assert!(again_out.contains("(unchanged, mode 0600)"), "{again_out}");

    // The terminal client finds the token by itself.
    let listed = sessions(&api, port, config.path()).await;
    assert!(listed.status.success(), "sessions failed: {}", text(&listed.stderr));
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("sessions --json");
    assert!(list["sessions"].is_array(), "{list}");

    // Without the saved token, it says how to get one.
    let elsewhere = tempfile::tempdir().unwrap();
    let refused = sessions(&api, port, elsewhere.path()).await;
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused.stderr));
    let why = text(&refused.stderr);
    assert!(why.contains(&format!("needs a token: run `tether sprite deploy {NAME}`")), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_replaces_the_binary_and_restarts_the_service_keeping_sessions() {
    let api = FakeSpritesApi::start(NAME, SPRITES_TOKEN).await;
    let config = tempfile::tempdir().unwrap();
    let port = free_port();
    // The proxy's form of the API URL works for deploy as well.
    let out = deploy(&api.ws_url, port, config.path(), &[]).await;
    assert!(out.status.success(), "deploy failed: {}\n{}", text(&out.stderr), text(&out.stdout));

    // A session, made through the proxy with the saved token.
    let token = std::fs::read_to_string(saved_token_file(config.path())).unwrap().trim().to_owned();
    let proxy = tether_sdk::sprites::SpritesProxy::new(NAME, SPRITES_TOKEN)
        .with_api_url(&api.url)
        .with_target("localhost", port);
    let client = tether_sdk::Client::through_sprites_proxy(proxy).unwrap().with_token(&token);
    let session = mock_session(&client).await;

    let calls_before = api.sprite().calls().len();
    let writes_before = api.writes().len();
    let upgraded = deploy(&api.url, port, config.path(), &["--upgrade"]).await;
    let stdout = text(&upgraded.stdout);
    assert!(upgraded.status.success(), "upgrade failed: {}\n{stdout}", text(&upgraded.stderr));
    assert!(stdout.contains("binary: uploading") && stdout.contains("deployed."), "{stdout}");
    assert!(stdout.contains("--restart") && stdout.contains("restarted"), "{stdout}");
    assert_eq!(api.writes()[writes_before..], [format!("{REMOTE_BINARY}.new")]);
    assert_eq!(mode(&api.local_path(REMOTE_BINARY)), 0o755);
    assert_eq!(service_changes(&api.sprite().calls()[calls_before..]), vec!["POST /v1/services/tether/restart"]);
    assert!(stdout.contains("(unchanged, mode 0600)"), "the token is kept: {stdout}");

    // The restarted tether has the session, and the client still needs no token.
    let listed = sessions(&api, port, config.path()).await;
    assert!(listed.status.success(), "sessions failed: {}", text(&listed.stderr));
    let list: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("sessions --json");
    let ids: Vec<&str> = list["sessions"].as_array().unwrap().iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, [session.id.as_str()]);
}

#[tokio::test]
async fn deploy_failures_say_what_to_do() {
    let api = FakeSpritesApi::start(NAME, SPRITES_TOKEN).await;
    let config = tempfile::tempdir().unwrap();
    let run = |args: Vec<String>, token: Option<&'static str>| {
        let config = config.path().to_path_buf();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = tether(&args, &config, token).await;
            assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
            assert!(out.stdout.is_empty() || !text(&out.stdout).contains("deployed."));
            text(&out.stderr)
        }
    };
    let args = |name: &str| -> Vec<String> {
        ["sprite", "deploy", name, "--sprites-api", &api.url].iter().map(|s| s.to_string()).collect()
    };

    let e = run(args(NAME), None).await;
    assert!(e.contains("no Sprites token: set SPRITES_TOKEN"), "{e}");
    let e = run(args(NAME), Some("wrong")).await;
    assert!(e.contains("refused the token (401): check SPRITES_TOKEN"), "{e}");
    let e = run(args("nope"), Some(SPRITES_TOKEN)).await;
    assert!(e.contains("there is no Sprite named \"nope\"") && e.contains("check the name"), "{e}");

    let not_linux = config.path().join("tether-macos");
    std::fs::write(&not_linux, b"\xcf\xfa\xed\xfe not an ELF").unwrap();
    let mut with_binary = args(NAME);
    with_binary.extend(["--binary".to_string(), not_linux.display().to_string()]);
    let e = run(with_binary, Some(SPRITES_TOKEN)).await;
    assert!(e.contains("not a Linux executable") && e.contains("--binary"), "{e}");

    // Another tether in place is not replaced without --upgrade.
    let other = api.local_path(REMOTE_BINARY);
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, b"an older tether").unwrap();
    let e = run(args(NAME), Some(SPRITES_TOKEN)).await;
    assert!(e.contains("another tether binary is at") && e.contains("--upgrade"), "{e}");
    assert_eq!(std::fs::read(&other).unwrap(), b"an older tether");
    assert!(api.writes().is_empty(), "nothing was uploaded: {:?}", api.writes());
    assert!(api.sprite().calls().is_empty(), "install never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_smoke_check_holds_against_the_fakes() {
    let api = FakeSpritesApi::start(NAME, SPRITES_TOKEN).await;
    let config = tempfile::tempdir().unwrap();
    // The Sprite URL: TLS, the edge taking the Sprites token as its bearer, relaying to the service.
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, "http://127.0.0.1:9", Some(SPRITES_TOKEN)).await;
    // The service's port, chosen once the front holds its own (a port just
    // released by free_port may be the next one the OS hands out).
    let front_port = front.url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).expect("the front's port");
    let port = std::iter::repeat_with(free_port).find(|p| *p != front_port).expect("a free port");
    front.set_backend(&format!("http://127.0.0.1:{port}"));
    api.set_sprite_url(&front.url);
    let ca_file = config.path().join("ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();

    let port_s = port.to_string();
    let args =
        ["sprite", "smoke", NAME, "--sprites-api", &api.url, "--port", &port_s, "--idle-secs", "0", "--turns", "2"];
    let mut cmd = tokio::process::Command::new(tether_bin());
    cmd.args(args)
        .env("XDG_CONFIG_HOME", config.path())
        .env("SSL_CERT_FILE", &ca_file)
        .env("SPRITES_TOKEN", SPRITES_TOKEN)
        .env_remove("SPRITES_API_URL");
    tether_e2e::server::scrub_env_tokio(&mut cmd);
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output()).await.unwrap().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "smoke failed: {}\n{stdout}", text(&out.stderr));
    let table: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("CHECK")).collect();
    assert_eq!(table.len(), 6, "a header and five checks: {stdout}");
    for (row, check) in table[1..].iter().zip([
        "deploy",
        "the Sprite URL with X-Tether-Token",
        "the TCP proxy",
        "2 slow turn(s) with no client attached finish",
        "a checkpoint restored gives stream.reset",
    ]) {
        assert!(row.starts_with(check) && row.contains(" yes "), "{row}\n{stdout}");
    }
    // The edge got the Sprites token and took it off; tether got its own in X-Tether-Token.
    assert!(front.forwarded_auth().iter().all(Option::is_none), "{:?}", front.forwarded_auth());
    assert!(table[2].contains(&front.url), "{stdout}");
    // The restore really went through the platform's API, and the store went back.
    let lines: Vec<String> = api.calls().iter().map(|c| c.line()).collect();
    let restore = format!("POST /v1/sprites/{NAME}/checkpoints/v1/restore");
    assert!(lines.contains(&format!("POST /v1/sprites/{NAME}/checkpoint")) && lines.contains(&restore), "{lines:?}");
    assert!(table[5].contains("stream.reset"), "{stdout}");
}
