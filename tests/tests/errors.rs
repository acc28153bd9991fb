//! Client errors: each answered as problem+json with its code and a detail
//! that names the problem, never a 5xx, and the server keeps serving.

use serde_json::json;
use tether_e2e::events::*;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::*;
use tether_sdk::reqwest::Method;
use tether_sdk::StopReason;

#[tokio::test]
async fn bad_requests_are_problems_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let client = server.client();
    let post_json = |path: &str, body: &str| {
        client.request(Method::POST, path).header("content-type", "application/json").body(body.to_string())
    };

    // Bodies of POST /v1/sessions.
    let cases: [(&str, &[&str]); 5] = [
        (r#"{"agent":"mock","#, &["json"]),                    // malformed JSON
        (r#"{"agent":"mock","colour":"red"}"#, &["colour"]),   // unknown field
        (r#"{"agent":"mock","title":42}"#, &["invalid type"]), // wrong type
        (r#"{"title":"no agent"}"#, &["agent"]),               // missing agent
        (r#"{"agent":"nope"}"#, &["nope"]),                    // unknown agent id
    ];
    for (body, mentions) in cases {
        expect_problem(send(post_json("/v1/sessions", body)).await, 400, "invalid_request", mentions).await;
    }
    // Wrong content type.
    let resp = send(
        client.request(Method::POST, "/v1/sessions").header("content-type", "text/plain").body(r#"{"agent":"mock"}"#),
    )
    .await;
    expect_problem(resp, 415, "unsupported_media_type", &["json"]).await;
    let resp = send(client.request(Method::POST, "/v1/sessions").body(r#"{"agent":"mock"}"#)).await;
    expect_problem(resp, 415, "unsupported_media_type", &["json"]).await;
    // A cwd outside the workspace.
    std::fs::create_dir(server.workspace().join("sub")).unwrap();
    std::os::unix::fs::symlink("/", server.workspace().join("escape")).unwrap();
    for cwd in ["../", "/", "sub/../../", "escape", "escape/tmp"] {
        let body = json!({"agent": "mock", "cwd": cwd}).to_string();
        expect_problem(send(post_json("/v1/sessions", &body)).await, 403, "path_outside_root", &["outside"]).await;
    }
    // Unknown sessions.
    let ghost = "ses_00000000000000000000dead";
    for (method, path) in [
        (Method::GET, format!("/v1/sessions/{ghost}")),
        (Method::DELETE, format!("/v1/sessions/{ghost}")),
        (Method::GET, format!("/v1/sessions/{ghost}/events")),
        (Method::GET, format!("/v1/sessions/{ghost}/events/stream")),
        (Method::POST, format!("/v1/sessions/{ghost}/interrupt")),
    ] {
        expect_problem(send(client.request(method, &path)).await, 404, "session_not_found", &[ghost]).await;
    }
    let resp = send(post_json(&format!("/v1/sessions/{ghost}/messages"), r#"{"text":"hi"}"#)).await;
    expect_problem(resp, 404, "session_not_found", &[ghost]).await;

    // On a real session.
    let session = mock_session(&client).await;
    let id = session.id.as_str();
    let resp =
        send(post_json(&format!("/v1/sessions/{id}/permissions/prm_nope"), r#"{"decision":"allow_once"}"#)).await;
    expect_problem(resp, 404, "not_found", &["prm_nope"]).await;
    let resp = send(post_json(&format!("/v1/sessions/{id}/questions/qst_nope"), r#"{"answers":[["Blue"]]}"#)).await;
    expect_problem(resp, 404, "not_found", &["qst_nope"]).await;
    let resp = send(post_json(&format!("/v1/sessions/{id}/permissions/prm_nope"), r#"{"decision":"maybe"}"#)).await;
    expect_problem(resp, 400, "invalid_request", &["maybe"]).await;
    let messages: [(&str, &[&str]); 4] = [
        (r#"{}"#, &["text"]),
        (r#"{"text":"a","parts":[{"type":"text","text":"b"}]}"#, &["not both"]),
        (r#"{"parts":[]}"#, &["parts"]),
        (r#"{"parts":[{"type":"video","url":"x"}]}"#, &["video"]),
    ];
    for (body, mentions) in messages {
        let resp = send(post_json(&format!("/v1/sessions/{id}/messages"), body)).await;
        expect_problem(resp, 400, "invalid_request", mentions).await;
    }
    let resp = send(client.request(Method::POST, &format!("/v1/sessions/{id}/interrupt"))).await;
    expect_problem(resp, 409, "conflict", &["no turn"]).await;
    // Bad cursors and query parameters.
    for path in [format!("/v1/sessions/{id}/events/stream"), "/v1/events/stream".to_string()] {
        let resp = send(client.request(Method::GET, &path).header("Last-Event-ID", "yesterday")).await;
        expect_problem(resp, 400, "invalid_request", &["last-event-id"]).await;
    }
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{id}/events?after=-1"))).await;
    expect_problem(resp, 400, "invalid_request", &["query"]).await;
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{id}/events?limit=0"))).await;
    expect_problem(resp, 400, "invalid_request", &["limit"]).await;
    let resp = send(client.request(Method::GET, "/v1/sessions?status=sleeping")).await;
    expect_problem(resp, 400, "invalid_request", &["sleeping"]).await;
    // Unknown routes and methods.
    expect_problem(
        send(client.request(Method::GET, "/v1/nothing-here")).await,
        404,
        "not_found",
        &["/v1/nothing-here"],
    )
    .await;
    let resp = send(client.request(Method::PUT, "/v1/health")).await;
    assert_eq!(resp.status().as_u16(), 405);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));

    // Still serving: health, and a whole turn.
    assert_eq!(client.health().await.unwrap().status, "ok");
    client.send_text(id, "[mock:text] still here").await.unwrap();
    let events = collect_turn(&client, id, 0).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::EndTurn);
    assert_eq!(final_text(&events), "Mock reply to turn 1: still here");
    assert_well_formed(&read_all(&client, id).await);
}

#[tokio::test]
async fn body_over_max_body_bytes_is_413() {
    const LIMIT: usize = 64 * 1024;
    let server = TestServer::start_with(ServerOptions::with_max_body_bytes(LIMIT)).await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.as_str();

    let big = json!({"text": "x".repeat(LIMIT + 1024)}).to_string();
    let resp = send(
        client
            .request(Method::POST, &format!("/v1/sessions/{id}/messages"))
            .header("content-type", "application/json")
            .body(big.clone()),
    )
    .await;
    expect_problem(resp, 413, "payload_too_large", &["max-body-bytes"]).await;
    let big_create = json!({"agent": "mock", "prompt": "y".repeat(LIMIT * 2)}).to_string();
    let resp =
        send(client.request(Method::POST, "/v1/sessions").header("content-type", "application/json").body(big_create))
            .await;
    expect_problem(resp, 413, "payload_too_large", &["max-body-bytes"]).await;
    assert_eq!(read_all(&client, id).await.iter().filter(|e| e.event_type() == "turn.started").count(), 0);

    // Just under the limit passes.
    let text = format!("[mock:echo-size] {}", "z".repeat(LIMIT - 1024));
    client.send_text(id, text.clone()).await.unwrap();
    let events = collect_turn(&client, id, 0).await;
    let expected = format!("received {} bytes, fnv1a64 {:016x}", text.len(), fnv1a64(text.as_bytes()));
    assert_eq!(final_text(&events), expected);
}
