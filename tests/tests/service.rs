//! Service routes: the OpenAPI document, agents, info, metrics.

use tether_e2e::http::{expect_problem, send};
use tether_e2e::*;
use tether_sdk::reqwest::Method;

#[tokio::test]
async fn openapi_agents_info_and_metrics() {
    let server = TestServer::start().await;
    let client = server.client();

    let resp = send(client.request(Method::GET, "/v1/openapi.json")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let served: serde_json::Value = resp.json().await.unwrap();
    assert!(served == tether_sdk::protocol::openapi::openapi(), "the served OpenAPI document differs from the code's");
    assert_eq!(served["openapi"].as_str().map(|v| v.starts_with("3.1")), Some(true));

    let agents = client.agents().await.unwrap().agents;
    let ids: Vec<&str> = agents.iter().map(|a| a.id.as_str()).collect();
    for id in ["mock", "claude", "codex", "opencode", "amp", "pi"] {
        assert!(ids.contains(&id), "agent {id} missing from {ids:?}");
    }
    let mock = agents.iter().find(|a| a.id == "mock").unwrap();
    assert!(mock.installed);
    assert!(mock.capabilities.streaming_text && mock.capabilities.permissions && mock.capabilities.interrupt);
    assert_eq!(client.agent("mock").await.unwrap(), *mock);
    let resp = send(client.request(Method::GET, "/v1/agents/nope")).await;
    expect_problem(resp, 404, "not_found", &["nope"]).await;

    let info = client.info().await.unwrap();
    assert_eq!(info.workspace_root, server.workspace().to_str().unwrap());
    assert!(!info.version.is_empty());

    let session = mock_session(&client).await;
    let resp = send(client.request(Method::GET, "/metrics")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let metrics = resp.text().await.unwrap();
    assert!(metrics.contains("tether_sessions"), "{metrics}");
    assert!(metrics.contains("tether_sessions{status=\"idle\"} 1"), "{metrics}");
    assert!(metrics.contains("tether_agent_processes 1"), "{metrics}");
    assert!(processes_of_session(&session.id).len() == 1);
}

#[test]
fn version_names_the_release_and_the_commit() {
    let out = std::process::Command::new(tether_bin()).arg("--version").output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // A prebuilt TETHER_BIN may come from another commit; the shape still holds.
    let expected = format!("tether {} (commit {commit})\n", env!("CARGO_PKG_VERSION"));
    if std::env::var_os("TETHER_BIN").is_none() {
        assert_eq!(line, expected);
    }
    let sha = line.trim().strip_prefix(&format!("tether {} (commit ", env!("CARGO_PKG_VERSION"))).unwrap();
    let sha = sha.strip_suffix(')').unwrap();
    assert!(sha == "unknown" || (sha.len() == 12 && sha.chars().all(|c| c.is_ascii_hexdigit())), "{line}");
}

#[tokio::test]
async fn info_names_the_store_and_the_boot() {
    let mut server = TestServer::start().await;
    let first = server.client().info().await.unwrap();
    assert!(first.store_id.starts_with("sto_") && first.boot_id.starts_with("boot_"), "{first:?}");
    let session = mock_session(&server.client()).await;
    server.client().send_text(&session.id, "hello").await.unwrap();
    let events = collect_turn(&server.client(), &session.id, 0).await;
    let started = events
        .iter()
        .find_map(|e| match &e.body {
            tether_sdk::EventBody::SessionStarted(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a session.started event");
    assert_eq!(started.store_id.as_deref(), Some(first.store_id.as_str()));
    assert_eq!(started.boot_id.as_deref(), Some(first.boot_id.as_str()));
    server.restart().await;
    let second = server.client().info().await.unwrap();
    assert_eq!(second.store_id, first.store_id, "the same data dir is the same store");
    assert_ne!(second.boot_id, first.boot_id, "a restart is a new boot");
    assert!(second.last_gseq > 0);
    server.client().get_session(&session.id).await.unwrap();
    let other = TestServer::start().await;
    assert_ne!(other.client().info().await.unwrap().store_id, first.store_id);
}
