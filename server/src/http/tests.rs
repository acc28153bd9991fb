//! The router in-process: auth, problem+json errors, limits and a mock session.

use std::time::{Duration, Instant};

use super::*;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

type App = crate::http::TestApp;

/// The mock agent is the tether binary itself; a lib test binary is not it, so
/// point `TETHER_MOCK_PATH` at a freshly built one (once per test process).
fn use_real_mock_binary() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = std::process::Command::new(cargo);
        cmd.args(["build", "-q", "-p", "tether", "--bin", "tether"]);
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        assert!(cmd.status().unwrap().success(), "could not build the tether binary");
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("tether");
        assert!(bin.is_file(), "{} is missing", bin.display());
        std::env::set_var("TETHER_MOCK_PATH", bin);
    });
}

async fn app(token: Option<&str>, max_body_bytes: usize) -> App {
    use_real_mock_binary();
    App::new(token, max_body_bytes).await
}

async fn call(app: &App, req: Request<Body>) -> (StatusCode, String, Value) {
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ct, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
}

/// Asserts a problem+json answer with this status and code whose detail mentions `needle`.
fn assert_problem(r: &(StatusCode, String, Value), status: u16, code: &str, needle: &str) {
    assert_eq!(r.0.as_u16(), status, "{:?}", r.2);
    assert_eq!(r.1, "application/problem+json");
    assert_eq!(r.2["type"], format!("urn:tether:error:{code}"));
    assert_eq!(r.2["status"], status);
    let detail = r.2["detail"].as_str().unwrap();
    assert!(detail.contains(needle), "detail {detail:?} should mention {needle:?}");
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_the_token() {
    let app = app(Some("s3cret"), 1 << 20).await;
    let health = call(&app, get("/v1/health")).await;
    assert_eq!((health.0, health.2), (StatusCode::OK, json!({"status": "ok"})));
    assert_problem(&call(&app, get("/v1/sessions")).await, 401, "unauthorized", "Authorization");
    let wrong = Request::get("/v1/sessions").header("authorization", "Bearer nope").body(Body::empty()).unwrap();
    assert_problem(&call(&app, wrong).await, 401, "unauthorized", "not valid");
    let right = Request::get("/v1/sessions").header("authorization", "Bearer s3cret").body(Body::empty()).unwrap();
    let ok = call(&app, right).await;
    assert_eq!(ok.0, StatusCode::OK);
    assert_eq!(ok.2, json!({"sessions": [], "next_cursor": null}));
}

#[tokio::test]
async fn bad_requests_get_problems_that_say_what_was_wrong() {
    let app = app(None, 64 * 1024).await;
    assert_problem(&call(&app, post_json("/v1/sessions", "{")).await, 400, "invalid_request", "EOF");
    assert_problem(
        &call(&app, post_json("/v1/sessions", r#"{"agent":"mock","colour":"red"}"#)).await,
        400,
        "invalid_request",
        "unknown field `colour`",
    );
    assert_problem(
        &call(&app, post_json("/v1/sessions", r#"{"agent":42}"#)).await,
        400,
        "invalid_request",
        "invalid type: integer",
    );
    assert_problem(&call(&app, post_json("/v1/sessions", "{}")).await, 400, "invalid_request", "missing field `agent`");
    assert_problem(
        &call(&app, post_json("/v1/sessions", r#"{"agent":"gpt-9"}"#)).await,
        400,
        "invalid_request",
        "unknown agent \"gpt-9\"",
    );
    assert_problem(
        &call(&app, post_json("/v1/sessions", r#"{"agent":"mock","cwd":"../.."}"#)).await,
        403,
        "path_outside_root",
        "outside the workspace root",
    );
    let text = Request::post("/v1/sessions").header("content-type", "text/plain").body(Body::from("{}")).unwrap();
    assert_problem(&call(&app, text).await, 415, "unsupported_media_type", "JSON");
    let big = format!(r#"{{"agent":"mock","prompt":"{}"}}"#, "x".repeat(100 * 1024));
    assert_problem(&call(&app, post_json("/v1/sessions", &big)).await, 413, "payload_too_large", "larger");
    assert_problem(&call(&app, get("/v1/sessions/ses_nope")).await, 404, "session_not_found", "ses_nope");
    assert_problem(&call(&app, get("/v1/sessions?limit=abc")).await, 400, "invalid_request", "invalid digit");
    assert_problem(
        &call(&app, get("/v1/sessions?bogus=1")).await,
        400,
        "invalid_request",
        "unknown query parameter `bogus`",
    );
    assert_problem(&call(&app, get("/v1/nowhere")).await, 404, "not_found", "/v1/nowhere");
    let del = Request::delete("/v1/health").body(Body::empty()).unwrap();
    assert_problem(&call(&app, del).await, 405, "method_not_allowed", "DELETE");
    let bad_cursor = Request::get("/v1/events/stream").header("last-event-id", "x").body(Body::empty()).unwrap();
    assert_problem(&call(&app, bad_cursor).await, 400, "invalid_request", "Last-Event-ID");
    // Still serving.
    assert_eq!(call(&app, get("/v1/health")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_mock_session_runs_a_turn_and_pages_its_events() {
    let app = app(None, 8 << 20).await;
    let created = call(&app, post_json("/v1/sessions", r#"{"agent":"mock","title":"t","metadata":{"k":1}}"#)).await;
    assert_eq!(created.0, StatusCode::CREATED, "{:?}", created.2);
    let id = created.2["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ses_"));
    assert_eq!(created.2["metadata"], json!({"k": 1}));
    let sent = call(&app, post_json(&format!("/v1/sessions/{id}/messages"), r#"{"text":"hi [mock:text]"}"#)).await;
    assert_eq!(sent.0, StatusCode::ACCEPTED);
    let turn_id = sent.2["turn_id"].as_str().unwrap().to_string();
    // Wait for the turn to end, by polling the page API with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    let events = loop {
        let page = call(&app, get(&format!("/v1/sessions/{id}/events?limit=1000"))).await.2;
        let events = page["events"].as_array().unwrap().clone();
        if events.iter().any(|e| e["type"] == "turn.completed") {
            break events;
        }
        assert!(Instant::now() < deadline, "the turn did not complete: {events:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let done = events.iter().find(|e| e["type"] == "turn.completed").unwrap();
    assert_eq!(done["data"]["turn_id"], turn_id);
    assert_eq!(done["data"]["stop_reason"], "end_turn");
    let text: String = events
        .iter()
        .filter(|e| e["type"] == "item.delta")
        .map(|e| e["data"]["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Mock reply to turn 1: hi");
    assert!(events.iter().all(|e| e.get("raw").is_none()));
    // Paging: after + limit + has_more, and raw on request.
    let page = call(&app, get(&format!("/v1/sessions/{id}/events?after=2&limit=3&include_raw=true"))).await.2;
    let got: Vec<u64> = page["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!((got, page["next_after"].clone(), page["has_more"].clone()), (vec![3, 4, 5], json!(5), json!(true)));
    let with_raw = call(&app, get(&format!("/v1/sessions/{id}/events?limit=1000&include_raw=true"))).await.2;
    let delta = with_raw["events"].as_array().unwrap().iter().find(|e| e["type"] == "item.delta").unwrap().clone();
    assert_eq!(delta["raw"]["type"], "stream_event");
    // Answering a permission that does not exist.
    let nope =
        call(&app, post_json(&format!("/v1/sessions/{id}/permissions/prm_x"), r#"{"decision":"allow_once"}"#)).await;
    assert_problem(&nope, 404, "not_found", "prm_x");
    let no_turn = call(&app, Request::post(format!("/v1/sessions/{id}/interrupt")).body(Body::empty()).unwrap()).await;
    assert_problem(&no_turn, 409, "conflict", "no turn");
    // Delete, then the session is ended and refuses messages; purge removes it.
    let deleted = call(&app, Request::delete(format!("/v1/sessions/{id}")).body(Body::empty()).unwrap()).await;
    assert_eq!((deleted.0, deleted.2["status"].clone()), (StatusCode::OK, json!("ended")));
    let late = call(&app, post_json(&format!("/v1/sessions/{id}/messages"), r#"{"text":"again"}"#)).await;
    assert_problem(&late, 409, "conflict", "ended");
    let purged =
        call(&app, Request::delete(format!("/v1/sessions/{id}?purge=true")).body(Body::empty()).unwrap()).await;
    assert_eq!(purged.0, StatusCode::OK);
    assert_problem(&call(&app, get(&format!("/v1/sessions/{id}"))).await, 404, "session_not_found", &id);
}

#[tokio::test]
async fn a_whole_number_written_with_a_fraction_is_an_integer() {
    // JSON Schema reads `280.0` as the integer 280 (schemathesis sends it).
    let app = app(None, 64 * 1024).await;
    let link = |ttl: &str| post_json("/v1/ports/1/links", &format!(r#"{{"ttl_secs":{ttl}}}"#));
    // Decoded: the port is what fails, not the body.
    assert_problem(&call(&app, link("280.0")).await, 404, "port_not_listening", "1");
    assert_problem(&call(&app, link("2.5e2")).await, 404, "port_not_listening", "1");
    assert_problem(&call(&app, link("280.5")).await, 400, "invalid_request", "ttl_secs");
    assert_problem(&call(&app, link("-1.0")).await, 400, "invalid_request", "ttl_secs");
}

#[tokio::test]
async fn message_bodies_are_validated() {
    let app = app(None, 8 << 20).await;
    let id = call(&app, post_json("/v1/sessions", r#"{"agent":"mock"}"#)).await.2["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/sessions/{id}/messages");
    assert_problem(&call(&app, post_json(&uri, "{}")).await, 400, "invalid_request", "`text` or `parts`");
    assert_problem(&call(&app, post_json(&uri, r#"{"parts":[]}"#)).await, 400, "invalid_request", "must not be empty");
    assert_problem(
        &call(&app, post_json(&uri, r#"{"parts":[{"type":"video"}]}"#)).await,
        400,
        "invalid_request",
        "unknown variant `video`",
    );
    let q = call(&app, post_json(&format!("/v1/sessions/{id}/questions/qst_x"), r#"{"answers":[["a"]]}"#)).await;
    assert_problem(&q, 404, "not_found", "qst_x");
}

#[tokio::test]
async fn lists_page_with_a_cursor_and_agents_and_openapi_are_served() {
    let app = app(None, 8 << 20).await;
    for _ in 0..3 {
        assert_eq!(call(&app, post_json("/v1/sessions", r#"{"agent":"mock"}"#)).await.0, StatusCode::CREATED);
    }
    let first = call(&app, get("/v1/sessions?limit=2")).await.2;
    assert_eq!(first["sessions"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = call(&app, get(&format!("/v1/sessions?limit=2&cursor={cursor}"))).await.2;
    assert_eq!(rest["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_cursor"], Value::Null);
    let agents = call(&app, get("/v1/agents")).await.2;
    let mock = agents["agents"].as_array().unwrap().iter().find(|a| a["id"] == "mock").unwrap().clone();
    assert_eq!(mock["installed"], true);
    assert_eq!(call(&app, get("/v1/openapi.json")).await.2, tether_protocol::openapi::openapi());
    let metrics = app.router.clone().oneshot(get("/metrics")).await.unwrap();
    let text = String::from_utf8(metrics.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(text.contains("tether_sessions{status=\"idle\"} 3"), "{text}");
}

#[tokio::test]
async fn the_ui_is_served_without_the_token_with_its_types_and_etags() {
    let app = app(Some("s3cret"), 1 << 20).await;
    let resp = app.router.clone().oneshot(get("/ui")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.headers()["location"], "/ui/");

    let resp = app.router.clone().oneshot(get("/ui/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers()["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert_eq!(resp.headers()["cache-control"], "no-cache");
    let etag = resp.headers()["etag"].clone();
    let html = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&html).contains(r#"src="js/main.js""#));

    let again = Request::get("/ui/").header("if-none-match", etag.clone()).body(Body::empty()).unwrap();
    let resp = app.router.clone().oneshot(again).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(resp.headers()["etag"], etag);

    let resp = app.router.clone().oneshot(get("/ui/js/main.js")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/javascript; charset=utf-8");
    assert_ne!(resp.headers()["etag"], etag, "each file has its own hash");

    assert_problem(&call(&app, get("/ui/nope.js")).await, 404, "not_found", "nope.js");
    // A climbing path is no way around the token: it names no UI file and reaches no API route.
    assert_problem(&call(&app, get("/ui/../v1/sessions")).await, 404, "not_found", "../v1/sessions");
    // The API behind the page still needs the token.
    assert_problem(&call(&app, get("/v1/info")).await, 401, "unauthorized", "Authorization");
}

/// The first `n` bytes (or more) of an endless body, within a deadline.
async fn body_prefix(resp: Response, n: usize) -> String {
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while got.len() < n {
        let frame = tokio::time::timeout_at(deadline, body.frame()).await.expect("more of the body in time");
        let Some(frame) = frame else { break };
        if let Ok(data) = frame.unwrap().into_data() {
            got.extend_from_slice(&data);
        }
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test]
async fn cursors_beyond_the_store_are_answered_not_waited_on() {
    let app = app(None, 1 << 20).await;
    let info = call(&app, get("/v1/info")).await.2;
    let store_id = info["store_id"].as_str().unwrap().to_string();
    // The global stream of an empty store asked for after=5: a reset naming 0, with id 0.
    let resp = app.router.clone().oneshot(get("/v1/events/stream?after=5")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let reset =
        format!("id: 0\nevent: stream.reset\ndata: {{\"last_seq\":0,\"store_id\":\"{store_id}\",\"after\":5}}\n\n");
    let text = body_prefix(resp, ": connected\n\n".len() + reset.len()).await;
    assert_eq!(text, format!(": connected\n\n{reset}"));
    // At the store's end, no reset.
    let resp = app.router.clone().oneshot(get("/v1/events/stream?after=0")).await.unwrap();
    assert_eq!(body_prefix(resp, 1).await, ": connected\n\n");

    // The page route: 409 cursor_ahead with the real last seq and the store.
    let id = call(&app, post_json("/v1/sessions", r#"{"agent":"mock"}"#)).await.2["id"].as_str().unwrap().to_string();
    let page = call(&app, get(&format!("/v1/sessions/{id}/events?after=0&limit=10000"))).await;
    let last = page.2["next_after"].as_u64().unwrap();
    let ahead = call(&app, get(&format!("/v1/sessions/{id}/events?after={}", last + 1000))).await;
    assert_problem(&ahead, 409, "cursor_ahead", &format!("after={}", last + 1000));
    assert!(ahead.2["last_seq"].as_u64().unwrap() >= last, "{:?}", ahead.2);
    assert_eq!(ahead.2["store_id"], store_id);
    // Other problems carry neither member.
    let other = call(&app, get("/v1/sessions/ses_nope/events")).await;
    assert!(other.2.get("last_seq").is_none() && other.2.get("store_id").is_none(), "{:?}", other.2);
}

#[tokio::test]
async fn websocket_routes_refuse_what_is_not_an_upgrade() {
    let app = app(None, 1 << 20).await;
    for path in ["/v1/events/ws", "/v1/events/ws?after=3"] {
        let resp = app.router.clone().oneshot(get(path)).await.unwrap();
        assert_eq!(resp.headers().get("upgrade").map(|v| v.to_str().unwrap()), Some("websocket"));
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["type"], "urn:tether:error:upgrade_required", "{body}");
        assert_eq!(body["status"], 426);
    }
    // The query is checked like any other route's.
    assert_problem(&call(&app, get("/v1/events/ws?colour=red")).await, 400, "invalid_request", "colour");
    assert_problem(
        &call(&app, get("/v1/sessions/ses_nope/events/ws?include_raw=maybe")).await,
        400,
        "invalid_request",
        "include_raw",
    );
    assert_problem(&call(&app, post_json("/v1/events/ws", "{}")).await, 405, "method_not_allowed", "POST");
}

/// The route paths the route groups register, read from their sources (the
/// router cannot list itself).
fn registered_paths() -> Vec<String> {
    let sources = [
        include_str!("agents.rs"),
        include_str!("events.rs"),
        include_str!("fs.rs"),
        include_str!("mcp.rs"),
        include_str!("processes.rs"),
        include_str!("ports.rs"),
        include_str!("service.rs"),
        include_str!("sessions.rs"),
        include_str!("skills.rs"),
        include_str!("ui.rs"),
        include_str!("webhooks.rs"),
        include_str!("mod.rs"),
    ];
    let mut paths = Vec::new();
    for source in sources {
        for marker in [".route(\""] {
            for (at, _) in source.match_indices(marker) {
                let rest = &source[at + marker.len()..];
                paths.push(rest[..rest.find('"').unwrap()].to_owned());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// Whether the router serves `method` on the concrete `uri`: anything but
/// the fallback's 404 and a 405.
async fn serves(app: &App, method: &str, uri: &str) -> bool {
    let req = Request::builder().method(method).uri(uri).header("authorization", "Bearer tok").body(Body::empty());
    let resp = app.router.clone().oneshot(req.unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    if status == 405 {
        return false;
    }
    if status != 404 {
        // Do not read the body: event streams never end.
        return true;
    }
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let detail = problem["detail"].as_str().unwrap_or_default();
    !detail.starts_with("no route for")
}

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = app(Some("tok"), 1 << 20).await;
    let document = tether_protocol::openapi::openapi();
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut served = std::collections::BTreeSet::new();
    for template in registered_paths() {
        // The empty-name MCP routes exist only to say that a name is needed.
        if template.ends_with('/') && template != "/ui/" && template != "/" || template.contains("//") {
            continue;
        }
        // The previews (`/proxy…`, `/absproxy…`) forward any method, path and
        // query to the app: described with `/v1/ports/{port}/open`, not listed.
        if template.contains("/proxy") || template.contains("/absproxy") {
            continue;
        }
        let concrete: String =
            template.split('/').map(|seg| if seg.starts_with('{') { "x" } else { seg }).collect::<Vec<_>>().join("/");
        let documented_form = template.replace("{*", "{");
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
            if serves(&app, method, &concrete).await {
                served.insert((method.to_owned(), documented_form.clone()));
            }
        }
    }
    let missing: Vec<_> = served.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&served).collect();
    assert!(missing.is_empty(), "served but not in openapi.json: {missing:?}");
    assert!(stale.is_empty(), "in openapi.json but not served: {stale:?}");
    assert!(served.contains(&("POST".to_owned(), "/v1/agents/{agent}/install".to_owned())));
}

/// Routes whose handlers read no query ignored unknown parameters, though
/// the document says they are refused: one rule now holds on every route
/// but the inspector's pages, from the document's own parameter lists.
#[tokio::test]
async fn a_query_parameter_the_document_does_not_list_is_refused_on_every_route() {
    let app = app(None, 1 << 20).await;
    for uri in ["/v1/info?verbose=1", "/v1/health?x=", "/v1/webhooks?page=2", "/v1/skills?all", "/metrics?x=1"] {
        assert_problem(&call(&app, get(uri)).await, 400, "invalid_request", "takes none");
    }
    let mcp = Request::post("/mcp?debug=1").header("content-type", "application/json").body(Body::from("{}")).unwrap();
    assert_problem(&call(&app, mcp).await, 400, "invalid_request", "unknown query parameter `debug`");
    // A listed parameter passes this rule (and the route's own checks its value).
    assert_problem(&call(&app, get("/v1/fs/stat?path=nope&x=1")).await, 400, "invalid_request", "takes path");
    assert_eq!(call(&app, get("/v1/sessions?limit=5")).await.0, StatusCode::OK);
    assert_eq!(call(&app, get("/v1/info")).await.0, StatusCode::OK);
    // The inspector's pages are a browser's addresses: any query is theirs.
    assert_eq!(call(&app, get("/ui/?session=ses_x")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_browsers_websocket_may_carry_the_token_as_a_subprotocol() {
    let app = app(Some("s3cret"), 1 << 20).await;
    // "s3cret" in base64url without padding.
    let with = |protocols: &str| {
        Request::get("/v1/events/ws").header("sec-websocket-protocol", protocols).body(Body::empty()).unwrap()
    };
    // The token passes (the route then wants an upgrade): 426, not 401.
    assert_problem(&call(&app, with("tether, tether.token.czNjcmV0")).await, 426, "upgrade_required", "");
    assert_problem(&call(&app, with("tether, tether.token.d3Jvbmc")).await, 401, "unauthorized", "WebSocket protocol");
    assert_problem(&call(&app, with("tether, tether.token.!!")).await, 401, "unauthorized", "WebSocket protocol");
    // Only the token's own subprotocol counts.
    assert_problem(&call(&app, with("tether")).await, 401, "unauthorized", "Authorization");
}
