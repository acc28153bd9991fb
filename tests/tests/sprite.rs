//! tether in a Sprite, against the fake in-Sprite API (tests/src/sprite.rs):
//! `tether sprite install|status|uninstall` registering a service that
//! really runs, keep-awake Tasks while turns run (and their cleanup after a
//! kill -9). Pause detection (`server.resumed`) is in pause.rs.

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::http::send;
use tether_e2e::sprite::{Call, FakeSprite, FAKE_SPRITE_URL};
use tether_e2e::*;
use tether_sdk::{EventBody, StopReason};

/// Runs `tether sprite ARGS` (no `TETHER_*` from the caller's environment).
async fn sprite_cli(args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(tether_bin());
    cmd.arg("sprite").args(args);
    tether_e2e::server::scrub_env_tokio(&mut cmd);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("tether sprite finished within 90 s")
        .expect("run tether sprite");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A port nobody listens on right now, for the service to take.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn changes(calls: &[Call]) -> Vec<String> {
    calls.iter().filter(|c| c.method != "GET").map(Call::line).collect()
}

async fn answers(port: u16, token: Option<&str>) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let mut req = client.get(format!("http://127.0.0.1:{port}/v1/info"));
    if let Some(t) = token {
        req = req.header("X-Tether-Token", t);
    }
    req.send().await.ok().map(|r| r.status().as_u16())
}

#[tokio::test]
async fn install_registers_a_running_service_once_and_uninstall_removes_it() {
    let fake = FakeSprite::start().await;
    let data = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let port = free_port();
    let port_s = port.to_string();
    let socket = fake.socket().to_str().unwrap().to_string();
    let data_s = data.path().to_str().unwrap().to_string();
    let ws_s = ws.path().to_str().unwrap().to_string();
    let install_args = [
        "install",
        "--socket",
        &socket,
        "--port",
        &port_s,
        "--host",
        "127.0.0.1",
        "--data-dir",
        &data_s,
        "--workspace",
        &ws_s,
    ];

    let out = sprite_cli(&install_args).await;
    assert!(out.status.success(), "install failed: {}\n{}", text(&out.stderr), text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("registered") && stdout.contains(FAKE_SPRITE_URL), "{stdout}");
    assert!(stdout.contains("X-Tether-Token"), "install says how to call it: {stdout}");
    assert!(
        stdout.contains("warning: the Sprite URL reaches port 8080") && stdout.contains("--port 8080"),
        "a port other than 8080 is warned about: {stdout}"
    );

    // The registration: the wrapper, no args, the HTTP port.
    let data_dir = data.path().canonicalize().unwrap();
    let wrapper = data_dir.join("sprite-service.sh");
    let puts: Vec<Call> = fake.calls().into_iter().filter(|c| c.line() == "PUT /v1/services/tether").collect();
    assert_eq!(puts.len(), 1, "{:?}", fake.call_lines());
    let body = puts[0].body.clone().unwrap();
    assert_eq!(body["cmd"], wrapper.to_str().unwrap());
    assert_eq!(body["args"], serde_json::json!([]));
    assert_eq!(body["http_port"], port);
    let script = std::fs::read_to_string(&wrapper).unwrap();
    assert!(script.starts_with("#!/bin/sh") && script.contains("exec ") && script.contains("'serve'"), "{script}");
    assert!(script.contains(&format!("'--sprite-socket' '{socket}'")), "{script}");

    // The token: created, 0600, and the server takes it in X-Tether-Token.
    let token_file = data_dir.join("token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file's mode");
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_string();
    assert!(token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit()), "{token:?}");
    assert_eq!(answers(port, Some(&token)).await, Some(200));
    assert_eq!(answers(port, None).await, Some(401), "the service requires its token");
    assert!(!stdout.contains(&token), "install does not print the token itself");

    // A second run with the same options changes nothing.
    let before = fake.calls().len();
    let out = sprite_cli(&install_args).await;
    assert!(out.status.success(), "second install failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("unchanged"), "{}", text(&out.stdout));
    let later = &fake.calls()[before..];
    assert!(changes(later).is_empty(), "the second install changed something: {:?}", changes(later));
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token, "the token is kept");

    // Every GET answered nulls for what tether did not set (as the platform does): read as empty.
    let got = fake.service("tether").unwrap();
    assert!(got.get("needs").is_none() || got["needs"].is_null() || got["needs"] == serde_json::json!([]));

    // A changed option only the wrapper carries: the wrapper is rewritten and the service restarted.
    let mut changed = install_args.to_vec();
    changed.push("--no-keep-awake");
    let before = fake.calls().len();
    let out = sprite_cli(&changed).await;
    assert!(out.status.success(), "changed install failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("restarted"), "{}", text(&out.stdout));
    assert_eq!(changes(&fake.calls()[before..]), vec!["POST /v1/services/tether/restart".to_string()]);
    assert!(std::fs::read_to_string(&wrapper).unwrap().contains("'--no-keep-awake'"));
    assert_eq!(answers(port, Some(&token)).await, Some(200));

    // Stopped from outside (`sprite-env services stop`): the platform then says `failed`; install starts it.
    fake.stop_service("tether").await;
    assert_eq!(answers(port, Some(&token)).await, None, "stopped");
    let out = sprite_cli(&["status", "--socket", &socket]).await;
    assert_eq!(out.status.code(), Some(1));
    let status = text(&out.stdout);
    assert!(status.contains("failed") && status.contains("`tether sprite install` starts it again"), "{status}");
    let before = fake.calls().len();
    let out = sprite_cli(&changed).await;
    assert!(out.status.success(), "install after a stop failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("started"), "{}", text(&out.stdout));
    assert_eq!(changes(&fake.calls()[before..]), vec!["POST /v1/services/tether/start".to_string()]);
    assert_eq!(answers(port, Some(&token)).await, Some(200));

    // A changed definition (another port): the platform keeps an existing one, so stop, delete, register.
    let new_port = free_port();
    let new_port_s = new_port.to_string();
    let mut moved = changed.clone();
    let at = moved.iter().position(|a| *a == "--port").unwrap() + 1;
    moved[at] = &new_port_s;
    let before = fake.calls().len();
    let out = sprite_cli(&moved).await;
    assert!(out.status.success(), "changed install failed: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("replaced"), "{}", text(&out.stdout));
    assert_eq!(
        changes(&fake.calls()[before..]),
        vec![
            "POST /v1/services/tether/stop".to_string(),
            "DELETE /v1/services/tether".to_string(),
            "PUT /v1/services/tether".to_string()
        ]
    );
    assert_eq!(fake.service("tether").unwrap()["http_port"], new_port);
    assert_eq!(answers(new_port, Some(&token)).await, Some(200));
    assert_eq!(answers(port, Some(&token)).await, None, "the old port is free");
    let port = new_port;

    let out = sprite_cli(&["status", "--socket", &socket]).await;
    let status = text(&out.stdout);
    assert!(out.status.success(), "status: {status}{}", text(&out.stderr));
    assert!(
        status.contains("running") && status.contains("health on port") && status.contains(FAKE_SPRITE_URL),
        "{status}"
    );

    let before = fake.calls().len();
    let out = sprite_cli(&["uninstall", "--socket", &socket]).await;
    assert!(out.status.success(), "uninstall: {}", text(&out.stderr));
    assert!(fake.service("tether").is_none());
    // The platform refuses to delete a running service: stop, then delete.
    assert_eq!(
        changes(&fake.calls()[before..])[..2],
        ["POST /v1/services/tether/stop".to_string(), "DELETE /v1/services/tether".to_string()]
    );
    // The fake stopped the service's process: nothing answers on the port any more.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while answers(port, Some(&token)).await.is_some() {
        assert!(std::time::Instant::now() < deadline, "the service still answers after uninstall");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = sprite_cli(&["status", "--socket", &socket]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("not installed"), "{}", text(&out.stdout));
}

/// `tether sprite install` options for a fresh data dir and workspace.
struct Install {
    _data: tempfile::TempDir,
    _ws: tempfile::TempDir,
    args: Vec<String>,
}

impl Install {
    fn new(fake: &FakeSprite, port: u16) -> Install {
        let data = tempfile::tempdir().unwrap();
        let ws = tempfile::tempdir().unwrap();
        let args = [
            "install",
            "--socket",
            fake.socket().to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--host",
            "127.0.0.1",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--workspace",
            ws.path().to_str().unwrap(),
            "--wait-secs",
            "10",
        ]
        .map(str::to_string)
        .to_vec();
        Install { _data: data, _ws: ws, args }
    }

    async fn run(&self) -> Output {
        sprite_cli(&self.args.iter().map(String::as_str).collect::<Vec<_>>()).await
    }
}

#[tokio::test]
async fn a_service_that_dies_while_starting_is_reported_with_its_own_words() {
    let fake = FakeSprite::start().await;
    // Something else holds the port: tether serve exits at once, and the runtime restarts it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Install::new(&fake, port).run().await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("exited with code") && err.contains("while starting"), "{err}");
    assert!(err.contains(&port.to_string()), "tether's own words about the port reach the user: {err}");
    assert!(err.contains("/.sprite/logs/services/tether.log"), "{err}");
}

#[tokio::test]
async fn the_service_holding_the_url_port_is_named() {
    let fake = FakeSprite::start().await;
    fake.plant_service("webapp", serde_json::json!({"cmd": "/usr/bin/webapp", "http_port": 8080}));
    let out = Install::new(&fake, free_port()).run().await;
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("\"webapp\"") && err.contains("sprite-env services delete webapp"), "{err}");
}

#[tokio::test]
async fn install_and_uninstall_refuse_to_run_inside_a_session() {
    let fake = FakeSprite::start().await;
    let install = Install::new(&fake, free_port());
    for args in [install.args.clone(), vec!["uninstall".into(), "--socket".into(), fake.socket().display().to_string()]]
    {
        let mut cmd = tokio::process::Command::new(tether_bin());
        cmd.arg("sprite").args(&args);
        tether_e2e::server::scrub_env_tokio(&mut cmd);
        // What every agent tether runs has in its environment.
        cmd.env("TETHER_SESSION_ID", "ses_0123456789abcdef01234567");
        let out = cmd.output().await.unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("inside the tether session ses_0123456789abcdef01234567") && err.contains("stop tether"),
            "{err}"
        );
    }
    assert!(fake.calls().is_empty(), "nothing reached the Sprite API: {:?}", fake.call_lines());
}

#[tokio::test]
async fn outside_a_sprite_the_sprite_commands_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("api.sock");
    for cmd in ["install", "status", "uninstall"] {
        let out = sprite_cli(&[cmd, "--socket", socket.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = text(&out.stderr);
        assert!(err.contains("not inside a Sprite") && err.contains(socket.to_str().unwrap()), "{cmd}: {err}");
    }
}

fn keep_awake_server(fake: &FakeSprite, refresh_ms: u64) -> ServerOptions {
    ServerOptions {
        extra_args: vec![
            "--sprite-socket".into(),
            fake.socket().to_str().unwrap().into(),
            "--keep-awake-refresh-ms".into(),
            refresh_ms.to_string(),
        ],
        ..Default::default()
    }
}

#[tokio::test]
async fn a_running_turn_holds_a_task_refreshed_until_it_ends_and_so_does_a_permission() {
    let fake = FakeSprite::start().await;
    let server = TestServer::start_with(keep_awake_server(&fake, 200)).await;
    let task = format!("/v1/tasks/tether-{}", server.port());
    let put = format!("PUT {task}");
    let delete = format!("DELETE {task}");
    let client = server.client();
    let session = mock_session(&client).await;
    assert!(fake.live_tasks().is_empty(), "an idle server holds no task");

    let mut stream = client.session_events(&session.id, Some(0));
    client.send_text(&session.id, "[mock:slow]").await.unwrap();
    let calls = fake
        .wait_for_calls("three PUTs of the task while the turn runs", Duration::from_secs(20), |c| {
            c.iter().filter(|c| c.line() == put).count() >= 3
        })
        .await;
    let first_put = calls.iter().find(|c| c.line() == put).unwrap();
    assert_eq!(first_put.body.as_ref().unwrap()["expire"], "300s");
    assert_eq!(fake.live_tasks(), vec![format!("tether-{}", server.port())]);

    client.interrupt(&session.id).await.unwrap();
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    fake.wait_for_calls("the task deleted when the turn ended", Duration::from_secs(10), |c| {
        c.last().is_some_and(|l| l.line() == delete)
    })
    .await;
    assert!(fake.live_tasks().is_empty());

    // A permission left open also keeps the Sprite awake; answering it lets it go.
    let n = fake.calls().len();
    client.send_text(&session.id, "[mock:permission]").await.unwrap();
    let asked = wait_for_type(&mut stream, TURN_TIMEOUT, "permission.requested").await;
    let Some(EventBody::PermissionRequested(p)) = asked.last().map(|e| &e.body) else { unreachable!() };
    fake.wait_for_calls("a task while the permission is open", Duration::from_secs(10), |c| {
        c[n..].iter().any(|c| c.line() == put)
    })
    .await;
    assert!(!fake.live_tasks().is_empty());
    let reply = tether_sdk::PermissionReply { decision: tether_sdk::Decision::AllowOnce, message: None };
    client.reply_permission(&session.id, &p.permission_id, &reply).await.unwrap();
    let turn = wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    assert_eq!(the_turn_completed(&turn).stop_reason, StopReason::EndTurn);
    fake.wait_for_calls("the task deleted after the answer", Duration::from_secs(10), |c| {
        c.last().is_some_and(|l| l.line() == delete)
    })
    .await;
    assert!(fake.live_tasks().is_empty());
}

#[tokio::test]
async fn after_a_kill9_mid_turn_the_next_start_deletes_the_stale_task() {
    let fake = FakeSprite::start().await;
    let mut server = TestServer::start_with(keep_awake_server(&fake, 60_000)).await;
    let name = format!("tether-{}", server.port());
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "[mock:slow]").await.unwrap();
    fake.wait_for_calls("the task taken for the turn", Duration::from_secs(20), |c| {
        c.iter().any(|c| c.line() == format!("PUT /v1/tasks/{name}"))
    })
    .await;
    server.kill9().await;
    assert_eq!(fake.live_tasks(), vec![name.clone()], "a killed server leaves its task behind");

    let n = fake.calls().len();
    server.restart_same_port().await;
    fake.wait_for_calls("the stale task deleted at start", Duration::from_secs(20), |c| {
        c[n..].iter().any(|c| c.line() == format!("DELETE /v1/tasks/{name}"))
    })
    .await;
    assert!(fake.live_tasks().is_empty(), "{:?}", fake.live_tasks());
    // Recovery closed the turn, so nothing takes the task again.
    let all = read_all(&server.client(), &session.id).await;
    assert!(of_type(&all, "server.restarted").len() == 1, "{}", describe_tail(&all, 10));
}

#[tokio::test]
async fn a_permission_left_open_lets_the_sprite_sleep_after_the_wait_limit_and_an_answer_takes_it_again() {
    let fake = FakeSprite::start().await;
    let mut options = keep_awake_server(&fake, 60_000);
    options.extra_args.extend(["--keep-awake-wait-secs".to_string(), "1".to_string()]);
    let server = TestServer::start_with(options).await;
    let put = format!("PUT /v1/tasks/tether-{}", server.port());
    let delete = format!("DELETE /v1/tasks/tether-{}", server.port());
    let client = server.client();
    let session = mock_session(&client).await;
    let mut stream = client.session_events(&session.id, Some(0));

    client.send_text(&session.id, "[mock:permission]").await.unwrap();
    let asked = wait_for_type(&mut stream, TURN_TIMEOUT, "permission.requested").await;
    let Some(EventBody::PermissionRequested(p)) = asked.last().map(|e| &e.body) else { unreachable!() };
    // Nobody answers: after the wait limit the task is let go, and the session is told.
    let released = wait_for_type(&mut stream, Duration::from_secs(20), "server.keep_awake").await;
    let Some(EventBody::ServerKeepAwake(k)) = released.last().map(|e| &e.body) else { unreachable!() };
    assert!(!k.held && k.reason == "waiting_for_person", "{k:?}");
    assert!(k.waited_ms.is_some_and(|w| w >= 1000), "{k:?}");
    let calls = fake.call_lines();
    let taken = calls.iter().position(|c| *c == put).expect("the task was taken while the permission was new");
    assert!(calls[taken..].contains(&delete), "{calls:?}");
    assert!(fake.live_tasks().is_empty(), "{:?}", fake.live_tasks());

    // The answer sets the agent working again: the task is taken again, and the session told.
    let n = fake.calls().len();
    let reply = tether_sdk::PermissionReply { decision: tether_sdk::Decision::AllowOnce, message: None };
    client.reply_permission(&session.id, &p.permission_id, &reply).await.unwrap();
    let rest = wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    assert_eq!(the_turn_completed(&rest).stop_reason, StopReason::EndTurn);
    let held = |events: &[tether_sdk::Event]| {
        events.iter().find_map(|e| match &e.body {
            EventBody::ServerKeepAwake(k) if k.held => Some(k.clone()),
            _ => None,
        })
    };
    // The keeper tells the session on its own task: before or after the turn's end.
    let held_again = match held(&rest) {
        Some(k) => Some(k),
        None => held(&wait_for_type(&mut stream, Duration::from_secs(10), "server.keep_awake").await),
    };
    assert_eq!(held_again.map(|k| k.reason), Some("work_resumed".to_string()), "{}", describe_tail(&rest, 8));
    fake.wait_for_calls("the task taken again, then let go when the turn ended", Duration::from_secs(10), |c| {
        let after: Vec<String> = c[n..].iter().map(Call::line).collect();
        after.iter().position(|l| *l == put).is_some_and(|i| after[i..].contains(&delete))
    })
    .await;
}

#[tokio::test]
async fn info_and_the_server_view_show_the_sprite_and_its_network_policy() {
    let fake = FakeSprite::start().await;
    let mut options = keep_awake_server(&fake, 60_000);
    options.extra_args.extend(["--keep-awake-wait-secs".to_string(), "600".to_string()]);
    let token = "sprite-view-token";
    options.token = Some(token.into());
    let server = TestServer::start_with(options).await;
    let client = server.client();

    // No policy file: none shown.
    let sprite = client.info().await.unwrap().sprite.expect("inside the fake Sprite, /v1/info says so");
    assert_eq!((sprite.name.as_deref(), sprite.url.as_deref()), (Some("fake-sprite"), Some(FAKE_SPRITE_URL)));
    assert!(sprite.keep_awake && sprite.keep_awake_wait_secs == 600, "{sprite:?}");
    assert!(sprite.network_policy.is_none() && sprite.network_policy_error.is_none(), "{sprite:?}");

    fake.write_network_policy(
        r#"{"rules":[{"domain":"registry.npmjs.org","action":"allow"},{"include":"defaults"},{"domain":"*","action":"deny"}]}"#,
    );
    let policy = client.info().await.unwrap().sprite.unwrap().network_policy.expect("the policy is read");
    assert_eq!(policy.rules.len(), 3);
    assert_eq!(policy.rules[2].domain.as_deref(), Some("*"));
    assert_eq!(policy.rules[2].action.as_deref(), Some("deny"));

    let b = tether_e2e::browser::Browser::signed_in(&server, token).await;
    b.set_window(390, 844).await;
    b.goto(&server.endpoint("/ui/#/server")).await;
    let shown = b.wait_text("#network-policy", "deny *").await;
    assert!(shown.contains("allow registry.npmjs.org") && shown.contains("include defaults"), "{shown}");
    let facts = b.wait_text("#info", "fake-sprite").await;
    assert!(facts.contains("10 min") || facts.contains("10m"), "the wait limit is shown: {facts}");
    b.assert_fits_viewport("the server view in a Sprite").await;

    // A file that is not a policy is said so, not hidden.
    fake.write_network_policy("{not json");
    let sprite = client.info().await.unwrap().sprite.unwrap();
    assert!(sprite.network_policy.is_none());
    assert!(sprite.network_policy_error.is_some_and(|e| e.contains("network.json")));
    b.close().await;
}

/// How long any wait of the webhook tests may take.
const WAIT: Duration = Duration::from_secs(60);

const HOOK_SECRET: &str = "whsec-sprite-4e1b7a90c2d3f568";

/// A keep-awake server whose webhook retries are fast (50 ms doubling up to
/// 200 ms), undelivered events holding the Sprite for `webhook_secs`.
fn keep_awake_webhook_server(fake: &FakeSprite, webhook_secs: u64) -> ServerOptions {
    let mut options = keep_awake_server(fake, 200);
    options.extra_args.extend(
        ["--webhook-retry-min-ms", "50", "--webhook-retry-max-ms", "200", "--keep-awake-webhook-secs"]
            .map(String::from)
            .into_iter()
            .chain([webhook_secs.to_string()]),
    );
    options
}

async fn create_hook(client: &tether_sdk::Client, url: &str) -> serde_json::Value {
    let body = serde_json::json!({"url": url, "secret": HOOK_SECRET, "events": ["turn.completed"]});
    let resp = send(client.request(reqwest::Method::POST, "/v1/webhooks").json(&body)).await;
    assert_eq!(resp.status().as_u16(), 201);
    resp.json().await.unwrap()
}

/// Whether a delivery carried a `turn.completed`, and what was answered.
fn completed_deliveries(deliveries: &[tether_e2e::webhook_receiver::Delivery]) -> (usize, usize) {
    let with = deliveries.iter().filter(|d| d.events.iter().any(|e| e.event_type == "turn.completed"));
    with.fold((0, 0), |(failed, acked), d| if d.acknowledged() { (failed, acked + 1) } else { (failed + 1, acked) })
}

#[tokio::test]
async fn undelivered_webhook_events_hold_the_task_after_the_last_turn_until_delivered() {
    let fake = FakeSprite::start().await;
    let server = TestServer::start_with(keep_awake_webhook_server(&fake, 600)).await;
    let task = format!("/v1/tasks/tether-{}", server.port());
    let delete = format!("DELETE {task}");
    let client = server.client();
    let receiver = tether_e2e::webhook_receiver::Receiver::start(HOOK_SECRET).await;
    receiver.fail_next(u32::MAX);
    create_hook(&client, &receiver.url()).await;

    let session = mock_session(&client).await;
    let mut stream = client.session_events(&session.id, Some(0));
    client.send_text(&session.id, "[mock:text] hello").await.unwrap();
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    // The turn is over, but its end is not delivered: the receiver fails it again and again.
    receiver.wait_until(WAIT, "three failed deliveries of the turn's end", |d| completed_deliveries(d).0 >= 3).await;
    // (A start deletes a task a killed run may have left: only what follows the first PUT counts.)
    let calls = fake.call_lines();
    let first_put = calls.iter().position(|c| c.starts_with("PUT ")).unwrap_or_else(|| panic!("no task: {calls:?}"));
    assert!(!calls[first_put..].contains(&delete), "the task was released before the events were delivered: {calls:?}");
    assert_eq!(fake.live_tasks(), vec![format!("tether-{}", server.port())]);

    // The receiver comes back: the end is delivered, then the task is released.
    receiver.fail_next(0);
    receiver.wait_until(WAIT, "the turn's end acknowledged", |d| completed_deliveries(d).1 >= 1).await;
    fake.wait_for_calls("the task deleted once delivered", WAIT, |c| c.last().is_some_and(|l| l.line() == delete))
        .await;
    assert!(fake.live_tasks().is_empty());
}

#[tokio::test]
async fn a_receiver_that_stays_down_holds_the_task_only_for_the_limit_and_its_webhook_is_failing() {
    let fake = FakeSprite::start().await;
    let server = TestServer::start_with(keep_awake_webhook_server(&fake, 2)).await;
    let delete = format!("DELETE /v1/tasks/tether-{}", server.port());
    let client = server.client();
    let receiver = tether_e2e::webhook_receiver::Receiver::start(HOOK_SECRET).await;
    receiver.fail_next(u32::MAX);
    let hook = create_hook(&client, &receiver.url()).await;

    let session = mock_session(&client).await;
    let mut stream = client.session_events(&session.id, Some(0));
    client.send_text(&session.id, "[mock:text] hello").await.unwrap();
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    let ended = std::time::Instant::now();
    fake.wait_for_calls("the task released after the limit", WAIT, |c| c.last().is_some_and(|l| l.line() == delete))
        .await;
    assert!(ended.elapsed() >= Duration::from_millis(1500), "released {:?} after the turn", ended.elapsed());
    assert!(fake.live_tasks().is_empty());
    assert_eq!(completed_deliveries(&receiver.deliveries()).1, 0, "nothing was delivered");
    let view: serde_json::Value =
        send(client.request(reqwest::Method::GET, &format!("/v1/webhooks/{}", hook["id"].as_str().unwrap())))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(view["state"], "failing", "{view}");
    // Delivery goes on while the server is up: the receiver gets the events when it answers again.
    receiver.fail_next(0);
    receiver.wait_until(WAIT, "the turn's end acknowledged later", |d| completed_deliveries(d).1 >= 1).await;
}
