//! Reaching tether from outside: the SDK over TLS, through the Sprite URL's
//! edge auth, and through the Sprites TCP proxy (faked in
//! tests/src/remote.rs, relaying to the real binary), plus the SDK's
//! orchestration helpers (run_turn, wait_for_status, typed errors).

use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::remote::{FakeSpritesProxy, RecordingServer, TestCa, TlsFront};
use tether_e2e::*;
use tether_sdk::sprites::SpritesProxy;
use tether_sdk::{
    AllowAll, Client, DecideWith, Decision, DenyAll, Error, ErrorCode, EventBody, PermissionReply, QuestionReply,
    SessionStatus, StopReason, TokenHeader,
};

const TOKEN: &str = "tether-remote-token";

/// The same checks, whatever the transport: a session with a permission
/// through run_turn, its events streamed and paged identically, a file
/// written and read back, and a typed error.
async fn exercise(client: &Client) {
    assert_eq!(client.health().await.unwrap().status, "ok");
    let session = mock_session(client).await;
    let id = session.id.as_str();

    let mut stream = client.session_events(id, None);
    let report = client.run_turn(id, "[mock:permission] over the wire", &mut AllowAll).await.unwrap();
    assert_eq!(report.stop_reason, StopReason::EndTurn, "{report:?}");
    assert_eq!(report.text, "I wrote the file.");
    assert_eq!(report.permissions.len(), 1);
    assert_eq!(report.permissions[0].1, Decision::AllowOnce);
    assert_eq!(report.tool_calls().count(), 1, "{:?}", report.items);

    let streamed = wait_for(&mut stream, TURN_TIMEOUT, |e| e.seq == report.last_seq).await;
    assert_contiguous(&streamed, 1);
    assert_eq!(streamed, read_all(client, id).await[..streamed.len()]);

    client.fs_write("remote/hello.txt", "over the wire".as_bytes().to_vec()).await.unwrap();
    assert_eq!(&client.fs_read("remote/hello.txt").await.unwrap()[..], b"over the wire");

    let err = client.get_session("ses_nope").await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, code: ErrorCode::SessionNotFound, .. }), "{err:?}");
    assert_eq!(err.kind(), Some(ErrorCode::SessionNotFound));
    client.delete_session(id, false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_speaks_https_through_a_tls_terminator() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &server.url, None).await;
    assert!(front.url.starts_with("https://"));
    let client = Client::new(&front.url).with_http_client(ca.http_client()).with_token(TOKEN);
    exercise(&client).await;

    // The token went as a bearer header, as asked by default.
    assert!(front.forwarded_auth().iter().all(|a| a.as_deref() == Some(&*format!("Bearer {TOKEN}"))));

    // An SDK that does not trust the CA refuses the server: no silent downgrade.
    let untrusting = Client::new(&front.url).with_token(TOKEN);
    let err = untrusting.health().await.unwrap_err();
    assert!(matches!(err, Error::Http(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_sprite_url_the_edge_gets_the_sprites_token_and_tether_its_own() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &server.url, Some("sprites-org-token")).await;
    let client =
        Client::sprite_url(&front.url, "sprites-org-token").with_http_client(ca.http_client()).with_token(TOKEN);
    exercise(&client).await;
    // The edge took Authorization; tether's token came in X-Tether-Token.
    assert!(front.forwarded_auth().iter().all(Option::is_none), "{:?}", front.forwarded_auth());

    // Tether's token as the bearer header is taken by the edge: a redirect to its login. This
    // caller's own HTTP client follows it (reqwest's default); the SDK still does not read the page.
    let bearer_only = Client::new(&front.url).with_http_client(ca.http_client()).with_token(TOKEN);
    let err = bearer_only.info().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 302, code: ErrorCode::SpritesTokenRefused, .. }), "{err:?}");
    // And the Sprites token alone does not open tether.
    let no_tether_token = Client::sprite_url(&front.url, "sprites-org-token").with_http_client(ca.http_client());
    let err = no_tether_token.info().await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorCode::Unauthorized), "{err:?}");
    // X-Tether-Token can be chosen without an edge as well.
    let direct = Client::new(&server.url).with_token(TOKEN).with_token_header(TokenHeader::XTetherToken);
    direct.info().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sprites_proxy_carries_a_session_and_streams_resume_across_cut_tunnels() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let proxy = FakeSpritesProxy::start("my-sprite", "sprites-token", None).await;
    let client = Client::through_sprites_proxy(
        SpritesProxy::new("my-sprite", "sprites-token")
            .with_api_url(&proxy.url)
            .with_target("localhost", server.port()),
    )
    .unwrap()
    .with_token(TOKEN);
    exercise(&client).await;
    assert_eq!(proxy.paths()[0], "/v1/sprites/my-sprite/proxy");
    assert_eq!(proxy.inits()[0], serde_json::json!({"host": "localhost", "port": server.port()}));

    // A slow turn followed through the tunnel; every tunnel is cut twice mid-stream.
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    let mut stream = client.session_events(id, None);
    client.send_text(id, "[mock:slow]").await.unwrap();
    let mut seen = wait_for_count(&mut stream, TURN_TIMEOUT, "item.delta", 10).await;
    let before = proxy.connected();
    proxy.cut_all();
    seen.extend(wait_for_count(&mut stream, TURN_TIMEOUT, "item.delta", 10).await);
    assert!(proxy.connected() > before, "the stream did not come back on a new tunnel");
    proxy.cut_all();
    seen.extend(wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await);

    // No gap, no duplicate: exactly the stored history.
    assert_contiguous(&seen, 1);
    assert_eq!(seen, read_all(&client, id).await[..seen.len()]);
    assert_eq!(the_turn_completed(&seen).stop_reason, StopReason::EndTurn);
    let text: String = (1..=100).map(|i| format!("tick {i} ")).collect();
    assert_eq!(final_text(&seen).trim_end(), text.trim_end());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sprites_proxy_over_wss_and_its_refusals_are_clear_errors() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let ca = TestCa::new();
    let proxy = FakeSpritesProxy::start("s1", "good", Some(&ca)).await;
    assert!(proxy.url.starts_with("wss://"));
    let through = |token: &str, port: u16| {
        let config = SpritesProxy::new("s1", token)
            .with_api_url(&proxy.url)
            .with_target("localhost", port)
            .with_root_certificate(ca.ca_der.clone());
        Client::through_sprites_proxy(config).unwrap().with_token(TOKEN)
    };
    let client = through("good", server.port());
    assert_eq!(client.info().await.unwrap().version, server.client().info().await.unwrap().version);
    let session = mock_session(&client).await;
    let report = client.run_turn(&session.id, "over wss", &mut DenyAll).await.unwrap();
    assert_eq!(report.text, "Mock reply to turn 1: over wss");

    // A wrong Sprites token: 401 sprites_token_refused (not tether's token: tether never saw the request),
    // and an event stream ends on it rather than retrying forever.
    let refused = through("bad", server.port());
    let err = refused.health().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 401, code: ErrorCode::SpritesTokenRefused, .. }), "{err:?}");
    assert!(err.to_string().contains("refused the token"), "{err}");
    let mut stream = refused.session_events(&session.id, None);
    let first = tokio::time::timeout(TURN_TIMEOUT, stream.next_event()).await.unwrap();
    assert!(matches!(first, Some(Err(Error::Api { status: 401, .. }))), "{first:?}");
    assert!(tokio::time::timeout(TURN_TIMEOUT, stream.next_event()).await.unwrap().is_none());

    // Nothing listening on the port inside the Sprite: 502 sprite_unreachable, retryable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = through("good", dead_port).health().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 502, code: ErrorCode::SpriteUnreachable, .. }), "{err:?}");
    assert!(err.is_retryable());

    // A client that does not trust the proxy's certificate cannot open a tunnel.
    let untrusting = Client::through_sprites_proxy(
        SpritesProxy::new("s1", "good").with_api_url(&proxy.url).with_target("localhost", server.port()),
    )
    .unwrap();
    let err = untrusting.health().await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorCode::SpriteUnreachable), "{err:?}");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_turn_decides_through_callbacks_and_wait_for_status_follows_the_session() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();

    // Deny a permission, answer a question: the callbacks see the requests.
    let mut asked = Vec::new();
    let mut decider = DecideWith {
        permission: |request: &tether_sdk::PermissionRequested| {
            asked.push(request.title.clone());
            PermissionReply { decision: Decision::Deny, message: None }
        },
        question: |request: &tether_sdk::QuestionRequested| {
            assert_eq!(request.questions[0].options[1].label, "Blue");
            QuestionReply { answers: Some(vec![vec!["Blue".into()]]), reject: false }
        },
    };
    let denied = client.run_turn(id, "[mock:permission]", &mut decider).await.unwrap();
    assert_eq!(denied.permissions[0].1, Decision::Deny);
    assert_eq!(denied.text, "The write was denied.");
    let answered = client.run_turn(id, "[mock:question]", &mut decider).await.unwrap();
    assert_eq!(answered.text, "You chose: Blue");
    assert_eq!(answered.questions.len(), 1);
    assert_eq!(asked.len(), 1);

    // wait_for_status: at once when already there; otherwise on the status event.
    let idle = client.wait_for_status(id, &[SessionStatus::Idle], Duration::from_secs(5)).await.unwrap();
    assert_eq!(idle.status, SessionStatus::Idle);
    client.send_text(id, "[mock:permission]").await.unwrap();
    let waiting = client.wait_for_status(id, &[SessionStatus::Waiting], TURN_TIMEOUT).await.unwrap();
    assert_eq!(waiting.status, SessionStatus::Waiting);
    // Nothing answers the permission: a short wait for idle times out, as an error saying so.
    let err = client.wait_for_status(id, &[SessionStatus::Idle], Duration::from_millis(300)).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    client.interrupt(id).await.unwrap();
    client.wait_for_status(id, &[SessionStatus::Idle], TURN_TIMEOUT).await.unwrap();

    // A turn that outlives run_turn's timeout is interrupted when asked to be.
    let options = tether_sdk::TurnOptions { timeout: Duration::from_millis(500), interrupt_on_timeout: true };
    let message = tether_sdk::SendMessage::text("[mock:slow]");
    let err = client.run_turn_with(id, &message, &mut AllowAll, &options).await.unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    client.wait_for_status(id, &[SessionStatus::Idle], TURN_TIMEOUT).await.unwrap();
    let events = read_all(&client, id).await;
    assert_eq!(turns_completed(&events).last().unwrap().stop_reason, StopReason::Interrupted);

    // A deleted session ends a wait; a turn on it is a typed conflict.
    client.send_text(id, "[mock:slow]").await.unwrap();
    let waiter = {
        let client = client.clone();
        let id = id.to_owned();
        tokio::spawn(async move { client.wait_for_status(&id, &[SessionStatus::Failed], TURN_TIMEOUT).await })
    };
    let mut stream = client.session_events(id, None);
    wait_for(&mut stream, TURN_TIMEOUT, |e| matches!(e.body, EventBody::ItemDelta(_))).await;
    client.delete_session(id, false).await.unwrap();
    let err = waiter.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::SessionEnded(_)), "{err:?}");
    let err = client.run_turn(id, "too late", &mut AllowAll).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorCode::Conflict), "{err:?}");
}

/// What the Sprites login (a recording server) received from the clients
/// the edge sent there: nothing at all, so certainly no tether token.
fn assert_nothing_reached(login: &RecordingServer) {
    let requests = login.requests();
    let leaked: Vec<_> = requests.iter().filter_map(|r| r.header("x-tether-token")).collect();
    assert!(leaked.is_empty(), "the tether token reached the Sprites login: {leaked:?}");
    assert!(requests.is_empty(), "the redirect was followed: {requests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sprites_token_is_a_typed_error_and_the_tether_token_never_follows_the_redirect() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let ca = TestCa::new();
    let front = TlsFront::start(&ca, &server.url, Some("sprites-org-token")).await;

    // The SDK's own HTTP client (only the test CA added): the 302 to the login is the typed error.
    let wrong = Client::sprite_url(&front.url, "wrong-sprites-token")
        .with_root_certificate(&ca.ca_der)
        .unwrap()
        .with_token(TOKEN);
    let err = wrong.info().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 302, code: ErrorCode::SpritesTokenRefused, .. }), "{err:?}");
    assert_eq!(err.code(), Some("sprites_token_refused"));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("/auth/sprite?return_url="), "{err}");
    // An event stream ends on it instead of retrying forever.
    let mut stream = wrong.all_events(None);
    let first = tokio::time::timeout(TURN_TIMEOUT, stream.next_event()).await.unwrap();
    assert!(matches!(first, Some(Err(Error::Api { code: ErrorCode::SpritesTokenRefused, .. }))), "{first:?}");
    assert!(tokio::time::timeout(TURN_TIMEOUT, stream.next_event()).await.unwrap().is_none());
    assert_nothing_reached(front.login());

    // The right Sprites token through the same client setup: tether answers.
    let right = Client::sprite_url(&front.url, "sprites-org-token")
        .with_root_certificate(&ca.ca_der)
        .unwrap()
        .with_token(TOKEN);
    right.info().await.unwrap();

    // The terminal client: exit 3, a sentence to act on, and nothing sent to the login.
    let ca_file = server.data_dir().join("test-ca.pem");
    std::fs::write(&ca_file, ca.ca_pem()).unwrap();
    let (code, stdout, stderr) = tether_command(
        &["sessions", "--url", &front.url, "--sprites-token", "wrong-sprites-token", "--token", TOKEN],
        &ca_file,
    )
    .await;
    assert_eq!(code, 3, "stdout {stdout:?} stderr {stderr:?}");
    assert!(
        stderr.contains(&format!(
            "the Sprite URL's edge in front of tether at {} refused the Sprites token (it redirected to the Sprites \
             login): check SPRITES_TOKEN or --sprites-token, and that this token's organization may reach the \
             Sprite.",
            front.url
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("302") && !stderr.contains("HTTP"), "no transport jargon: {stderr}");
    // And with no Sprites token at all, it says one is needed.
    let (code, _, stderr) = tether_command(&["sessions", "--url", &front.url, "--token", TOKEN], &ca_file).await;
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("asks for a Sprites token (it redirected to the Sprites login)"), "{stderr}");
    assert_nothing_reached(front.login());
}

/// Runs the terminal client with `args` through pipes, trusting `ca_file`
/// (`SSL_CERT_FILE`) and nothing from the environment: (exit code, stdout, stderr).
async fn tether_command(args: &[&str], ca_file: &std::path::Path) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(tether_bin());
    server::scrub_env_tokio(&mut cmd);
    cmd.args(args)
        .env("SSL_CERT_FILE", ca_file)
        .env_remove("SPRITES_TOKEN")
        .env_remove("TETHER_URL")
        .env_remove("TETHER_TOKEN")
        .env_remove("TETHER_SPRITE")
        .env_remove("SPRITES_API_URL")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(TURN_TIMEOUT, cmd.output()).await.expect("the command ends").expect("run tether");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sprite_the_proxy_does_not_know_is_sprite_not_found_and_not_retried() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let proxy = FakeSpritesProxy::start("my-sprite", "sprites-token", None).await;
    let client = Client::through_sprites_proxy(
        SpritesProxy::new("no-such-sprite", "sprites-token")
            .with_api_url(&proxy.url)
            .with_target("localhost", server.port()),
    )
    .unwrap()
    .with_token(TOKEN);
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, Error::Api { status: 404, code: ErrorCode::SpriteNotFound, .. }), "{err:?}");
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("no Sprite named \"no-such-sprite\""), "{err}");
    // An event stream ends on it.
    let mut stream = client.all_events(None);
    let first = tokio::time::timeout(TURN_TIMEOUT, stream.next_event()).await.unwrap();
    assert!(matches!(first, Some(Err(Error::Api { code: ErrorCode::SpriteNotFound, .. }))), "{first:?}");
    assert!(tokio::time::timeout(TURN_TIMEOUT, stream.next_event()).await.unwrap().is_none());
    assert!(proxy.paths().is_empty(), "no handshake was accepted: {:?}", proxy.paths());

    // The terminal client names the Sprite and says what to check; exit 3.
    let (code, stdout, stderr) = tether_command(
        &[
            "sessions",
            "--sprite",
            "no-such-sprite",
            "--sprites-token",
            "sprites-token",
            "--sprites-api",
            &proxy.url,
            "--sprite-port",
            &server.port().to_string(),
            "--token",
            TOKEN,
        ],
        std::path::Path::new("/nonexistent-ca.pem"),
    )
    .await;
    assert_eq!(code, 3, "stdout {stdout:?} stderr {stderr:?}");
    assert!(
        stderr.contains(
            "there is no Sprite named no-such-sprite: check the name (sprite list shows yours), and that \
             SPRITES_TOKEN belongs to its organization."
        ),
        "{stderr}"
    );
}
