//! The MCP routes in-process: every name and body rule answers 400
//! problem+json naming the problem; the registry round trip and its statuses.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

type App = crate::http::TestApp;

async fn app() -> App {
    App::new(None, 1 << 20).await
}

async fn call(app: &App, method: &str, uri: &str, body: Option<&str>) -> (StatusCode, String, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty)).unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn assert_invalid(r: &(StatusCode, String, Value), needle: &str) {
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{:?}", r.2);
    assert_eq!(r.1, "application/problem+json");
    assert_eq!(r.2["type"], "urn:tether:error:invalid_request");
    assert_eq!(r.2["status"], 400);
    let detail = r.2["detail"].as_str().unwrap();
    assert!(detail.contains(needle), "detail {detail:?} should mention {needle:?}");
}

#[tokio::test]
async fn bad_names_and_bodies_are_refused_naming_the_problem() {
    let app = app().await;
    let ok = r#"{"command":"npx","args":["-y","x"]}"#;
    let long = "x".repeat(49);
    for (name, needle) in [
        ("a__b", "`__`"),
        ("-x", "start with a letter or a digit"),
        (long.as_str(), "longer than 48"),
        ("a.b", "'.'"),
        ("a%20b", "' '"),
    ] {
        let uri = format!("/v1/mcp/servers/{name}");
        assert_invalid(&call(&app, "PUT", &uri, Some(ok)).await, needle);
        assert_invalid(&call(&app, "DELETE", &uri, None).await, needle);
        assert_invalid(&call(&app, "GET", &format!("{uri}/tools"), None).await, needle);
    }
    assert_invalid(&call(&app, "PUT", "/v1/mcp/servers/", Some(ok)).await, "must not be empty");
    assert_invalid(&call(&app, "DELETE", "/v1/mcp/servers/", None).await, "must not be empty");
    assert_invalid(&call(&app, "GET", "/v1/mcp/servers//tools", None).await, "must not be empty");

    let uri = "/v1/mcp/servers/s";
    for (body, needle) in [
        (r#"{"command":"x","colour":"red"}"#, "unknown field `colour`"),
        (r#"{"command":"x","url":"http://h/mcp"}"#, "not both"),
        (r#"{}"#, "needs `command`"),
        (r#"{"args":["a"]}"#, "needs `command`"),
        (r#"{"url":"not a url"}"#, "http:// or https://"),
        (r#"{"url":"http://"}"#, "`url`"),
        (r#"{"url":"http://h/mcp","headers":{"bad header":"v"}}"#, "not a valid HTTP header name"),
        (r#"{"command":"x","env":{"A=B":"v"}}"#, "must not contain `=`"),
        (r#"{"command":"x","env":{"":"v"}}"#, "must not be empty"),
        (r#"{"command":"x","args":["a\u0000b"]}"#, "NUL"),
        (r#"{"command":""}"#, "`command` must not be empty"),
        (r#"{"type":"http","command":"x"}"#, "needs `command`"),
        (r#"{"type":"stdio","url":"http://h/mcp"}"#, "needs `command`"),
        (r#"{"type":"sse","url":"http://h/mcp"}"#, "unknown MCP server type \"sse\""),
        (r#"{"command":"x","headers":{"A":"b"}}"#, "`headers` belong to an HTTP"),
        (r#"{"url":"http://h/mcp","env":{"A":"b"}}"#, "belong to a stdio"),
        (r#"{"command":42}"#, "invalid type"),
    ] {
        assert_invalid(&call(&app, "PUT", uri, Some(body)).await, needle);
    }
    assert_invalid(&call(&app, "GET", "/v1/mcp/servers/s/tools?timeout_ms=50", None).await, "outside 100..=60000");
    assert_invalid(&call(&app, "GET", "/v1/mcp/servers/s/tools?timeout_ms=60001", None).await, "outside 100..=60000");
    assert_invalid(&call(&app, "GET", "/v1/mcp/servers/s/tools?wait=1", None).await, "unknown query parameter `wait`");
    // Nothing was stored, and the server still serves.
    assert_eq!(call(&app, "GET", "/v1/mcp/servers", None).await.2, json!({"servers": {}}));
}

#[tokio::test]
async fn the_registry_round_trip_answers_201_200_and_404() {
    let app = app().await;
    let uri = "/v1/mcp/servers/files";
    let put = call(&app, "PUT", uri, Some(r#"{"command":"npx","args":["-y","fs"],"env":{"K":"V"}}"#)).await;
    assert_eq!(put.0, StatusCode::CREATED, "{:?}", put.2);
    let stored = json!({"type": "stdio", "command": "npx", "args": ["-y", "fs"], "env": {"K": "V"}});
    assert_eq!(put.2, stored);
    assert_eq!(call(&app, "GET", uri, None).await.2, stored);
    let replaced = call(&app, "PUT", uri, Some(r#"{"url":"http://127.0.0.1:9/mcp"}"#)).await;
    assert_eq!(replaced.0, StatusCode::OK, "{:?}", replaced.2);
    let list = call(&app, "GET", "/v1/mcp/servers", None).await;
    assert_eq!(list.2, json!({"servers": {"files": {"type": "http", "url": "http://127.0.0.1:9/mcp"}}}));
    let deleted = call(&app, "DELETE", uri, None).await;
    assert_eq!((deleted.0, deleted.2["url"].clone()), (StatusCode::OK, json!("http://127.0.0.1:9/mcp")));
    for (method, path) in [("DELETE", uri), ("GET", uri), ("GET", "/v1/mcp/servers/files/tools")] {
        let gone = call(&app, method, path, None).await;
        assert_eq!((gone.0, gone.2["type"].clone()), (StatusCode::NOT_FOUND, json!("urn:tether:error:not_found")));
    }
}

#[tokio::test]
async fn a_failing_probe_is_a_502_and_a_hanging_one_a_504() {
    let app = app().await;
    call(&app, "PUT", "/v1/mcp/servers/gone", Some(r#"{"command":"/nonexistent/server"}"#)).await;
    call(&app, "PUT", "/v1/mcp/servers/slow", Some(r#"{"command":"sleep","args":["30"]}"#)).await;
    let gone = call(&app, "GET", "/v1/mcp/servers/gone/tools", None).await;
    assert_eq!((gone.0, gone.1.as_str()), (StatusCode::BAD_GATEWAY, "application/problem+json"));
    assert_eq!(gone.2["type"], "urn:tether:error:mcp_unavailable");
    assert_eq!(
        gone.2["detail"],
        "MCP server \"gone\" could not start `/nonexistent/server`: No such file or directory"
    );
    let started = Instant::now();
    let slow = call(&app, "GET", "/v1/mcp/servers/slow/tools?timeout_ms=300", None).await;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert_eq!(slow.0, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.2["type"], "urn:tether:error:mcp_unavailable");
    assert_eq!(slow.2["detail"], "MCP server \"slow\" did not answer within 0.3 s");
    call(&app, "PUT", "/v1/mcp/servers/tls", Some(r#"{"url":"https://127.0.0.1:9/mcp"}"#)).await;
    let tls = call(&app, "GET", "/v1/mcp/servers/tls/tools", None).await;
    assert_eq!(tls.0, StatusCode::BAD_GATEWAY);
    assert!(tls.2["detail"].as_str().unwrap().contains("no TLS client"), "{}", tls.2);
}
