//! Bearer-token auth, and the refusal to listen on a non-loopback address without one.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tether_e2e::events::*;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::server::scrub_env;
use tether_e2e::*;
use tether_sdk::reqwest::{self, Method};
use tether_sdk::{ListSessions, StopReason};

#[tokio::test]
async fn token_is_required_everywhere_but_health() {
    const TOKEN: &str = "e2e-s3cret-token";
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let anonymous = reqwest::Client::new();
    let url = |path: &str| server.endpoint(path);

    for (method, path) in [
        (Method::GET, "/v1/sessions"),
        (Method::POST, "/v1/sessions"),
        (Method::GET, "/v1/info"),
        (Method::GET, "/v1/agents"),
        (Method::GET, "/v1/events/stream"),
        (Method::GET, "/metrics"),
    ] {
        let resp = send(anonymous.request(method.clone(), url(path))).await;
        expect_problem(resp, 401, "unauthorized", &["authorization"]).await;
        let resp = send(anonymous.request(method.clone(), url(path)).bearer_auth("wrong-token")).await;
        expect_problem(resp, 401, "unauthorized", &["token"]).await;
    }
    let resp = send(anonymous.get(url("/v1/sessions")).header("authorization", TOKEN)).await;
    expect_problem(resp, 401, "unauthorized", &[]).await;
    // Health is open.
    let resp = send(anonymous.get(url("/v1/health"))).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), serde_json::json!({"status": "ok"}));

    // The right token opens everything, streams included.
    let client = server.client();
    assert!(client.list_sessions(&ListSessions::default()).await.unwrap().sessions.is_empty());
    let session = mock_session(&client).await;
    client.send_text(&session.id, "[mock:text] authorised").await.unwrap();
    let events = collect_turn(&client, &session.id, 0).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&events), "Mock reply to turn 1: authorised");
    // ..and the token never shows up in the log.
    let log = std::fs::read_to_string(server.stderr_log()).unwrap();
    assert!(!log.contains(TOKEN), "the token is in the server log");
}

#[tokio::test]
async fn the_token_is_also_accepted_in_x_tether_token_and_never_logged() {
    const TOKEN: &str = "x-header-s3cret";
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let http = reqwest::Client::new();
    let url = server.endpoint("/v1/sessions");
    let resp = send(http.get(&url).header("x-tether-token", TOKEN)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp = send(http.get(&url).header("x-tether-token", "wrong-one")).await;
    expect_problem(resp, 401, "unauthorized", &["x-tether-token", "not valid"]).await;
    // X-Tether-Token is the one checked when both are sent (an edge may pass its own Authorization on).
    let resp = send(http.get(&url).header("x-tether-token", TOKEN).bearer_auth("the-edge-s-own")).await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp = send(http.get(&url).header("x-tether-token", "wrong-one").bearer_auth(TOKEN)).await;
    expect_problem(resp, 401, "unauthorized", &["x-tether-token"]).await;
    // Authorization alone still works, and the event stream takes the header too.
    let resp = send(http.get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let resp = send(http.get(server.endpoint("/v1/events/stream")).header("x-tether-token", TOKEN)).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    drop(resp);
    let log = std::fs::read_to_string(server.stderr_log()).unwrap();
    assert!(!log.contains(TOKEN) && !log.contains("wrong-one"), "a token is in the server log");
}

#[tokio::test]
async fn non_loopback_host_without_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(tether_bin());
    cmd.args(["serve", "--host", "0.0.0.0", "--port", "0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--workspace")
        .arg(dir.path());
    scrub_env(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not refuse to listen on 0.0.0.0 without a token");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "exit status {status}");
    assert_eq!(status.code(), Some(2), "exit status {status}");
    assert!(stderr.contains("--token"), "stderr does not mention --token: {stderr}");
    assert!(out.stdout.is_empty(), "it printed an address: {}", String::from_utf8_lossy(&out.stdout));
}
