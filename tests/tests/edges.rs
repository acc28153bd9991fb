//! Browser-facing defences (server/src/http/edge.rs): a web page the
//! developer visits must not read a local tether's events over a WebSocket
//! (cross-site WebSocket hijacking), nor write through it by rebinding its
//! own name to 127.0.0.1 (DNS rebinding), while tether's own inspector,
//! curl, the SDK and configured names keep working.

use tether_e2e::events::*;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::ws::{RawWs, WsItem};
use tether_e2e::*;

const EVIL: &str = "https://evil.example";

#[tokio::test]
async fn a_cross_origin_websocket_is_refused_and_a_same_origin_one_works() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "a secret prompt").await.unwrap();

    // Any web page can try this: the browser sends its page's Origin on the upgrade.
    for path in ["/v1/events/ws?after=0".to_string(), format!("/v1/sessions/{}/events/ws?after=0", session.id)] {
        let refused = RawWs::connect_with(&server, &path, &[("origin", EVIL.to_string())]).await.unwrap_err();
        assert_eq!(refused.status, 403, "{path}: {}", refused.body);
        assert!(!refused.body.contains("secret"), "{}", refused.body);
        let p: tether_sdk::Problem = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(p.code(), "origin_not_allowed");
        assert!(p.detail.contains("--allow-origin https://evil.example"), "{p:?}");
    }
    // Another port of the same host is another site, and so is a sandboxed page ("null").
    for origin in ["http://127.0.0.1:1".to_string(), "null".to_string()] {
        let refused = RawWs::connect_with(&server, "/v1/events/ws?after=0", &[("origin", origin)]).await.unwrap_err();
        assert_eq!(refused.status, 403);
    }

    // tether's own page (same origin) and a client that is not a browser (no Origin) are served.
    let own = format!("http://127.0.0.1:{}", server.port());
    let mut ws = RawWs::connect_with(&server, "/v1/events/ws?after=0", &[("origin", own)]).await.unwrap();
    let first = ws.next_event(TURN_TIMEOUT).await;
    assert_eq!((first["gseq"].as_u64(), first["session_id"].as_str()), (Some(1), Some(session.id.as_str())), "{first}");
    let mut plain = RawWs::connect(&server, &format!("/v1/sessions/{}/events/ws?after=0", session.id)).await;
    assert!(matches!(plain.next(TURN_TIMEOUT).await, WsItem::Event(_)));

    // An origin the operator allows is served.
    let allowing = TestServer::start_with(ServerOptions {
        extra_args: vec!["--allow-origin".into(), "https://dashboard.example".into()],
        ..Default::default()
    })
    .await;
    let dashboard = [("origin", "https://dashboard.example".to_string())];
    assert!(RawWs::connect_with(&allowing, "/v1/events/ws?after=0", &dashboard).await.is_ok());
}

#[tokio::test]
async fn a_cross_origin_write_is_refused_and_the_same_origin_one_is_not() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let create = serde_json::json!({"agent": "mock"});
    let post = http.post(server.endpoint("/v1/sessions")).header("origin", EVIL).json(&create);
    expect_problem(send(post).await, 403, "origin_not_allowed", &["--allow-origin https://evil.example"]).await;
    let put = http.put(server.endpoint("/v1/fs/file?path=planted.txt")).header("origin", EVIL).body("x");
    expect_problem(send(put).await, 403, "origin_not_allowed", &[]).await;
    assert!(!server.workspace().join("planted.txt").exists());
    assert!(server.client().list_sessions(&Default::default()).await.unwrap().sessions.is_empty());

    let own = format!("http://127.0.0.1:{}", server.port());
    let made = http.post(server.endpoint("/v1/sessions")).header("origin", own).json(&create).send().await.unwrap();
    assert_eq!(made.status().as_u16(), 201);
    // Reading is not a write: another origin's page cannot read the answer anyway (no CORS headers).
    let read = http.get(server.endpoint("/v1/sessions")).header("origin", EVIL).send().await.unwrap();
    assert_eq!(read.status().as_u16(), 200);
    assert!(read.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn a_foreign_host_is_refused_without_a_token_and_served_with_one_or_when_allowed() {
    // DNS rebinding: attacker.example resolves to 127.0.0.1, the browser sends Host: attacker.example.
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let foreign = format!("attacker.example:{}", server.port());
    let put = http.put(server.endpoint("/v1/fs/file?path=rebound.txt")).header("host", &foreign).body("x");
    expect_problem(send(put).await, 403, "host_not_allowed", &["--allow-host attacker.example"]).await;
    assert!(!server.workspace().join("rebound.txt").exists());
    let create =
        http.post(server.endpoint("/v1/sessions")).header("host", &foreign).json(&serde_json::json!({"agent": "mock"}));
    expect_problem(send(create).await, 403, "host_not_allowed", &[]).await;
    let events = http.get(server.endpoint("/v1/events?after=0")).header("host", &foreign);
    expect_problem(send(events).await, 403, "host_not_allowed", &[]).await;
    // tether's own MCP endpoint: the same rule, the same kind of answer.
    let mcp = http
        .post(server.endpoint("/mcp"))
        .header("host", &foreign)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}));
    expect_problem(send(mcp).await, 403, "host_not_allowed", &[]).await;
    // Loopback names are served.
    for host in [format!("localhost:{}", server.port()), format!("127.0.0.1:{}", server.port())] {
        let ok = http.get(server.endpoint("/v1/info")).header("host", host).send().await.unwrap();
        assert_eq!(ok.status().as_u16(), 200);
    }
    // Two Host headers are never served.
    let two = http.get(server.endpoint("/v1/info")).header("host", "127.0.0.1").header("host", "attacker.example");
    assert_eq!(two.send().await.unwrap().status().as_u16(), 403);

    // A name the operator allows is served.
    let allowing = TestServer::start_with(ServerOptions {
        extra_args: vec!["--allow-host".into(), "devbox.lan".into()],
        ..Default::default()
    })
    .await;
    let named = http.get(allowing.endpoint("/v1/info")).header("host", format!("devbox.lan:{}", allowing.port()));
    assert_eq!(named.send().await.unwrap().status().as_u16(), 200);

    // With a token, any name reaches it (a proxy, the Sprite URL): the token is the protection.
    let guarded = TestServer::start_with(ServerOptions::with_token("edge-token")).await;
    let with_token = http
        .get(guarded.endpoint("/v1/info"))
        .header("host", "attacker.example")
        .header("authorization", "Bearer edge-token");
    assert_eq!(with_token.send().await.unwrap().status().as_u16(), 200);
    let without = http.get(guarded.endpoint("/v1/info")).header("host", "attacker.example");
    assert_eq!(without.send().await.unwrap().status().as_u16(), 401);
}

/// The environment of a process, as `KEY=value` strings.
fn environ(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

#[tokio::test]
async fn an_agent_inherits_no_tether_setting_unless_its_session_sets_one() {
    const SECRET: &str = "tether-secret-in-the-environment";
    // The token, as an operator often passes it: in tether's environment.
    let server = TestServer::start_with(ServerOptions {
        env: vec![
            ("TETHER_TOKEN".into(), SECRET.into()),
            ("TETHER_ALLOW_HOSTS".into(), "devbox.lan".into()),
            ("SPRITES_TOKEN".into(), format!("{SECRET}-sprites")),
            ("NOT_TETHERS".into(), "kept".into()),
        ],
        token: Some(SECRET.into()),
        ..Default::default()
    })
    .await;
    let client = server.client();
    let plain = mock_session(&client).await;
    let pid = tether_e2e::procs::wait_some_processes(&plain.id, TURN_TIMEOUT).await[0];
    let env = environ(pid);
    assert!(!env.is_empty(), "the agent's environment is readable");
    assert!(env.iter().all(|kv| !kv.contains(SECRET)), "the token reached the agent: {env:?}");
    // What tether sets for the agent (its session id, the mock's own state dir), nothing of tether's own.
    let tethers: Vec<&String> = env.iter().filter(|kv| kv.starts_with("TETHER_")).collect();
    assert!(tethers.contains(&&format!("TETHER_SESSION_ID={}", plain.id)), "{tethers:?}");
    assert!(
        tethers.iter().all(|kv| kv.starts_with("TETHER_SESSION_ID=") || kv.starts_with("TETHER_MOCK_")),
        "tether's settings reached the agent: {tethers:?}"
    );
    assert!(env.contains(&"NOT_TETHERS=kept".to_string()), "the rest of the environment is inherited");

    // The orchestration case: a session that drives tether is given what it asks for.
    let create = tether_sdk::CreateSession {
        agent: "mock".into(),
        env: [("TETHER_TOKEN".to_string(), SECRET.to_string())].into(),
        ..Default::default()
    };
    let driver = client.create_session(&create).await.unwrap();
    let pid = tether_e2e::procs::wait_some_processes(&driver.id, TURN_TIMEOUT).await[0];
    assert!(environ(pid).contains(&format!("TETHER_TOKEN={SECRET}")));
}
