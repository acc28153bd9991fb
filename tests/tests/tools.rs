//! tether's own MCP server (`/mcp`, and `tether mcp` over stdio) driven by
//! rmcp clients: a mock session end to end through the tools, the same
//! operations as the HTTP API, bad input as tool errors or a 401.

use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tether_e2e::events::{final_text, read_all};
use tether_e2e::tether_mcp::{call, call_with, connect_with, McpClient, Progress};
use tether_e2e::{tether_bin, wait_no_processes, ServerOptions, TestServer};
use tokio::io::AsyncWriteExt;

const TOKEN: &str = "tools-token";

async fn server() -> (TestServer, McpClient) {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = connect_with(&server, Some(TOKEN)).await.expect("connect to /mcp with the token");
    (server, client)
}

/// Waits for `turn` of `session` (no deadline of the tool: 30 s) and answers the report.
async fn wait(client: &McpClient, session: &str, turn: &str) -> Value {
    call(client, "wait_for_turn", json!({"session_id": session, "turn_id": turn, "timeout_s": 30})).await.unwrap()
}

async fn send(client: &McpClient, session: &str, text: &str) -> String {
    let sent = call(client, "send_message", json!({"session_id": session, "text": text})).await.unwrap();
    sent["turn_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_mock_session_is_driven_end_to_end_through_the_tools() {
    let (server, client) = server().await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for want in [
        "list_agents",
        "create_session",
        "send_message",
        "wait_for_turn",
        "get_events",
        "answer_permission",
        "answer_question",
        "interrupt",
        "delete_session",
        "list_sessions",
        "read_file",
        "write_file",
        "list_dir",
        "start_process",
        "list_processes",
        "read_process_output",
        "read_screen",
        "send_input",
        "stop_process",
    ] {
        assert!(names.contains(&want), "{want} is listed: {names:?}");
    }
    let agents = call(&client, "list_agents", json!({})).await.unwrap();
    let mock = agents["agents"].as_array().unwrap().iter().find(|a| a["id"] == "mock").unwrap();
    assert_eq!(mock["installed"], true);

    // Create with a prompt, wait for its turn.
    let created = call(&client, "create_session", json!({"agent": "mock", "prompt": "hello from mcp"})).await.unwrap();
    let id = created["session_id"].as_str().unwrap().to_string();
    assert_eq!(created["session"]["id"], id.as_str());
    let turn = created["turn_id"].as_str().expect("a prompt starts a turn").to_string();
    let report = wait(&client, &id, &turn).await;
    assert_eq!(report["state"], "completed", "{report}");
    assert_eq!((report["done"].clone(), report["timed_out"].clone()), (json!(true), json!(false)));
    assert_eq!(report["stop_reason"], "end_turn");
    assert_eq!(report["text"], "Mock reply to turn 1: hello from mcp");
    // The status after the turn, not the `running` of the turn that just ended.
    assert_eq!(report["session_status"], "idle", "{report}");
    // The same session as the HTTP API sees it.
    let http = server.client();
    let events = read_all(&http, &id).await;
    assert_eq!(final_text(&events), report["text"].as_str().unwrap());
    // The report covers the turn through its end and the idle status after it.
    let idle = events.iter().rfind(|e| e.event_type() == "session.status").map(|e| e.seq).unwrap();
    let last_seq = report["last_seq"].as_u64().unwrap();
    assert!((idle..=events.last().unwrap().seq).contains(&last_seq), "last_seq {last_seq}, idle at {idle}");

    // A tool call, in brief.
    let turn = send(&client, &id, "[mock:tool] look").await;
    let report = wait(&client, &id, &turn).await;
    assert_eq!(report["done"], true);
    let tools = report["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1, "{report}");
    assert_eq!(tools[0]["status"], "completed");
    assert!(tools[0]["output"].as_str().is_some_and(|o| !o.is_empty()), "{report}");

    // A permission: the wait comes back waiting; answered through the tool, the turn ends.
    let turn = send(&client, &id, "[mock:permission] write it").await;
    let report = wait(&client, &id, &turn).await;
    assert_eq!((report["state"].as_str(), report["done"].as_bool()), (Some("waiting"), Some(false)), "{report}");
    let permission = report["permissions"][0]["permission_id"].as_str().unwrap().to_string();
    let answered = call(
        &client,
        "answer_permission",
        json!({"session_id": id, "permission_id": permission, "decision": "allow_once"}),
    )
    .await
    .unwrap();
    assert_eq!(answered["ok"], true);
    let report = wait(&client, &id, &turn).await;
    assert_eq!((report["state"].as_str(), report["text"].as_str()), (Some("completed"), Some("I wrote the file.")));
    assert_eq!(report["permissions"], json!([]));
    let file = call(&client, "read_file", json!({"path": "mock-permission.txt"})).await.unwrap();
    assert_eq!(
        (file["content"].as_str(), file["encoding"].as_str()),
        (Some("written by the mock agent\n"), Some("utf8"))
    );

    // A question, answered through the tool.
    let turn = send(&client, &id, "[mock:question] pick").await;
    let report = wait(&client, &id, &turn).await;
    assert_eq!(report["state"], "waiting", "{report}");
    let question = report["questions"][0]["question_id"].as_str().unwrap().to_string();
    call(&client, "answer_question", json!({"session_id": id, "question_id": question, "answers": [["Blue"]]}))
        .await
        .unwrap();
    let report = wait(&client, &id, &turn).await;
    assert_eq!((report["stop_reason"].as_str(), report["text"].as_str()), (Some("end_turn"), Some("You chose: Blue")));

    // Interrupt a long turn.
    let turn = send(&client, &id, "[mock:slow] long").await;
    call(&client, "interrupt", json!({"session_id": id})).await.unwrap();
    let report = wait(&client, &id, &turn).await;
    assert_eq!((report["done"].as_bool(), report["stop_reason"].as_str()), (Some(true), Some("interrupted")));

    // Events by page, the same as the HTTP API's.
    let page = call(&client, "get_events", json!({"session_id": id, "after": 2, "limit": 5})).await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 5);
    assert_eq!((page["next_after"].as_u64(), page["has_more"].as_bool()), (Some(7), Some(true)));
    let http_page: Value = reqwest::Client::new()
        .get(server.endpoint(&format!("/v1/sessions/{id}/events?after=2&limit=5")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page, http_page);

    let sessions = call(&client, "list_sessions", json!({"agent": "mock"})).await.unwrap();
    assert!(sessions["sessions"].as_array().unwrap().iter().any(|s| s["id"] == id.as_str()));

    // Delete: the session ends with its processes, and stays readable.
    let deleted = call(&client, "delete_session", json!({"session_id": id})).await.unwrap();
    assert_eq!(deleted["status"], "ended");
    wait_no_processes(&id, Duration::from_secs(10)).await;
    let err = call(&client, "send_message", json!({"session_id": id, "text": "again"})).await.unwrap_err();
    assert!(err.starts_with("conflict (409): "), "{err}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn files_are_read_written_and_listed_inside_the_workspace_only() {
    let (server, client) = server().await;
    let written = call(&client, "write_file", json!({"path": "notes/a.txt", "content": "héllo\n"})).await.unwrap();
    assert_eq!((written["path"].as_str(), written["size"].as_u64()), (Some("notes/a.txt"), Some(7)));
    assert_eq!(std::fs::read_to_string(server.workspace().join("notes/a.txt")).unwrap(), "héllo\n");
    call(&client, "write_file", json!({"path": "notes/b.bin", "content": "AP8A", "encoding": "base64"})).await.unwrap();
    assert_eq!(std::fs::read(server.workspace().join("notes/b.bin")).unwrap(), vec![0u8, 255, 0]);
    let bin = call(&client, "read_file", json!({"path": "notes/b.bin"})).await.unwrap();
    assert_eq!((bin["encoding"].as_str(), bin["content"].as_str()), (Some("base64"), Some("AP8A")));
    // A read cut inside `é` ends before it, and says there is more.
    let part = call(&client, "read_file", json!({"path": "notes/a.txt", "max_bytes": 2})).await.unwrap();
    assert_eq!(
        (part["content"].as_str(), part["truncated"].as_bool(), part["size"].as_u64()),
        (Some("h"), Some(true), Some(7))
    );
    let rest = call(&client, "read_file", json!({"path": "notes/a.txt", "offset": 1})).await.unwrap();
    assert_eq!((rest["content"].as_str(), rest["truncated"].as_bool()), (Some("éllo\n"), Some(false)));
    let listed = call(&client, "list_dir", json!({"path": "notes"})).await.unwrap();
    let names: Vec<&str> = listed["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a.txt", "b.bin"]);

    for (tool, args) in [
        ("read_file", json!({"path": "../outside.txt"})),
        ("write_file", json!({"path": "../outside.txt", "content": "x"})),
        ("list_dir", json!({"path": "../"})),
    ] {
        let err = call(&client, tool, args).await.unwrap_err();
        assert!(err.starts_with("path_outside_root (403): "), "{tool}: {err}");
    }
    assert!(!server.workspace().parent().unwrap().join("outside.txt").exists());
    let err = call(&client, "read_file", json!({"path": "notes/none.txt"})).await.unwrap_err();
    assert!(err.starts_with("not_found (404): "), "{err}");
    let err =
        call(&client, "write_file", json!({"path": "x", "content": "%%", "encoding": "base64"})).await.unwrap_err();
    assert!(err.starts_with("invalid_request (400): `content` is not valid base64"), "{err}");
}

#[tokio::test]
async fn bad_input_is_a_tool_error_or_a_401_and_the_server_keeps_serving() {
    let (server, client) = server().await;
    // No token, or a wrong one: the MCP handshake is refused with 401.
    for token in [None, Some("wrong")] {
        let err = connect_with(&server, token).await.err().expect("refused");
        assert!(err.contains("401") || err.to_lowercase().contains("unauthorized"), "{token:?}: {err}");
    }
    let raw = reqwest::Client::new()
        .post(server.endpoint("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 401);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wait_for_turn",
            json!({"session_id": "ses_nope"}),
            "session_not_found (404): no session with id \"ses_nope\"",
        ),
        ("send_message", json!({"session_id": "ses_nope", "text": "x"}), "session_not_found (404)"),
        (
            "answer_permission",
            json!({"session_id": "ses_nope", "permission_id": "p", "decision": "deny"}),
            "session_not_found (404)",
        ),
        ("delete_session", json!({"session_id": "ses_nope"}), "session_not_found (404)"),
        ("get_events", json!({"session_id": "ses_nope"}), "session_not_found (404)"),
        ("create_session", json!({"agent": 5}), "invalid_request (400): invalid arguments at `agent`"),
        ("create_session", json!({"agent": "nope"}), "invalid_request (400): unknown agent \"nope\""),
        ("create_session", json!({"agent": "mock", "cwd": "../"}), "path_outside_root (403)"),
        ("send_message", json!({"session_id": "s"}), "invalid_request (400): invalid arguments: missing field `text`"),
        (
            "send_message",
            json!({"session_id": "s", "text": "x", "bogus": 1}),
            "invalid_request (400): invalid arguments at `bogus`: unknown field `bogus`",
        ),
        (
            "wait_for_turn",
            json!({"session_id": "s", "timeout_s": -1}),
            "invalid_request (400): `timeout_s` must be between 0 and 3600",
        ),
        (
            "answer_permission",
            json!({"session_id": "s", "permission_id": "p", "decision": "maybe"}),
            "invalid_request (400): invalid arguments at `decision`",
        ),
        ("list_sessions", json!({"limit": 0}), "invalid_request (400): `limit` must be between 1 and 1000"),
        ("read_file", json!({"path": "a", "max_bytes": 0}), "invalid_request (400): `max_bytes` must be between 1"),
    ];
    for (tool, args, want) in cases {
        let err = call(&client, tool, args.clone()).await.expect_err(tool);
        assert!(err.starts_with(want), "{tool} {args}: {err}");
    }
    // An open permission of a live session, answered with an unknown id.
    let created = call(&client, "create_session", json!({"agent": "mock"})).await.unwrap();
    let id = created["session_id"].as_str().unwrap();
    let err =
        call(&client, "answer_permission", json!({"session_id": id, "permission_id": "per_x", "decision": "deny"}))
            .await
            .unwrap_err();
    assert!(err.starts_with("not_found (404)") || err.starts_with("conflict (409)"), "{err}");
    // An unknown tool is a protocol error (MCP's invalid params), not a crash.
    let unknown = client.call_tool(CallToolRequestParams::new("no_such_tool")).await;
    assert!(unknown.is_err(), "{unknown:?}");

    // Still serving, over MCP and HTTP.
    let agents = call(&client, "list_agents", json!({})).await.unwrap();
    assert!(!agents["agents"].as_array().unwrap().is_empty());
    assert!(server.client().health().await.is_ok());
}

#[tokio::test]
async fn wait_for_turn_returns_at_its_timeout_and_a_later_call_returns_the_end() {
    let (_server, client) = server().await;
    let created = call(&client, "create_session", json!({"agent": "mock", "prompt": "[mock:slow] take your time"}))
        .await
        .unwrap();
    let id = created["session_id"].as_str().unwrap().to_string();
    let turn = created["turn_id"].as_str().unwrap().to_string();
    let start = Instant::now();
    let early =
        call(&client, "wait_for_turn", json!({"session_id": id, "turn_id": turn, "timeout_s": 0.5})).await.unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(4), "the wait took {took:?}");
    assert_eq!(
        (early["done"].as_bool(), early["timed_out"].as_bool(), early["state"].as_str()),
        (Some(false), Some(true), Some("running")),
        "{early}"
    );
    assert_eq!(early["stop_reason"], Value::Null);
    // Waiting again (without the turn id: the latest turn), with progress.
    let end = call_with(&client, "wait_for_turn", json!({"session_id": id, "timeout_s": 60}), true).await.unwrap();
    assert_eq!((end["done"].as_bool(), end["stop_reason"].as_str()), (Some(true), Some("end_turn")), "{end}");
    assert_eq!(end["turn_id"], turn.as_str());
    assert!(end["text"].as_str().unwrap().ends_with("tick 100 "), "{end}");
    let progress = client.service().messages();
    assert!(progress.iter().any(|m| m == "turn.completed"), "progress: {progress:?}");
    assert!(!progress.iter().any(|m| m == "item.delta"), "deltas are not progress: {progress:?}");
}

#[tokio::test]
async fn tether_mcp_serves_the_same_tools_over_stdio() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let mut cmd = tokio::process::Command::new(tether_bin());
    cmd.args(["mcp", "--url", &server.url]).env("TETHER_TOKEN", TOKEN).env_remove("TETHER_URL");
    let client = Progress::default().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let info = client.peer_info().expect("the server's info");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("tether"));
    // A turn of 2000 deltas 1 ms apart: still running when the wait starts, so its end comes live.
    let created =
        call(&client, "create_session", json!({"agent": "mock", "prompt": "[mock:timed:2000]"})).await.unwrap();
    let id = created["session_id"].as_str().unwrap();
    let report = call_with(&client, "wait_for_turn", json!({"session_id": id, "timeout_s": 30}), true).await.unwrap();
    assert_eq!((report["done"].as_bool(), report["stop_reason"].as_str()), (Some(true), Some("end_turn")), "{report}");
    assert!(client.service().messages().iter().any(|m| m == "turn.completed"), "progress comes through the bridge");
    let err = call(&client, "wait_for_turn", json!({"session_id": "ses_nope"})).await.unwrap_err();
    assert!(err.starts_with("session_not_found (404)"), "{err}");
    client.cancel().await.unwrap();

    // A wrong token: the bridge says so and exits, instead of hanging.
    let mut bridge = tokio::process::Command::new(tether_bin())
        .args(["mcp", "--url", &server.url, "--token", "wrong"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = bridge.stdin.take().unwrap();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    stdin.write_all(format!("{initialize}\n").as_bytes()).await.unwrap();
    stdin.flush().await.unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), bridge.wait_with_output())
        .await
        .expect("the bridge exits")
        .unwrap();
    drop(stdin);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401") || stderr.to_lowercase().contains("unauthorized"), "{stderr}");
}

/// The official MCP TypeScript SDK (and the MCP Inspector, built on it)
/// refused the whole `tools/list` while a property schema was the boolean
/// `true`; it lists and calls every tool now.
#[tokio::test]
async fn the_official_typescript_sdk_lists_and_calls_the_tools() {
    let sdk = tether_e2e::anthropic::agents_dir().join("mcp-sdk-1.32.2").join("node_modules");
    assert!(
        sdk.join("@modelcontextprotocol/sdk/package.json").exists(),
        "the MCP TypeScript SDK is not installed at {} (scripts/install-agents installs it)",
        sdk.display()
    );
    let (server, rust_client) = server().await;
    let expected: Vec<String> =
        rust_client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.into()).collect();
    // ES modules find packages next to the script, not through NODE_PATH.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&sdk, dir.path().join("node_modules")).unwrap();
    let script = dir.path().join("mcp-list-tools.mjs");
    std::fs::write(&script, include_str!("../js/mcp-list-tools.mjs")).unwrap();
    let run = tokio::process::Command::new("node").arg(&script).arg(server.endpoint("/mcp")).arg(TOKEN).output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.unwrap().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    let listed: Vec<String> = serde_json::from_value(answer["tools"].clone()).unwrap();
    assert_eq!(listed, expected, "{answer}");
    assert_eq!(answer["isError"], false, "{answer}");
    assert_eq!(answer["call"]["sessions"], json!([]), "{answer}");
    assert!(!stderr.contains("unknown format"), "the schemas use only JSON Schema's formats: {stderr}");
}

/// The MCP transport's refusals were `text/plain` (or untyped), and a body
/// that is not JSON a 415; they are problems like every other route's.
#[tokio::test]
async fn the_mcp_transports_refusals_are_problems() {
    use tether_e2e::http::{expect_problem, send};
    let (server, _client) = server().await;
    let http = reqwest::Client::new();
    let url = server.endpoint("/mcp");
    let post = || http.post(&url).bearer_auth(TOKEN);
    let both = "application/json, text/event-stream";
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let bad_json = post().header("content-type", "application/json").header("accept", both).body("{bad");
    expect_problem(send(bad_json).await, 400, "invalid_request", &["not JSON-RPC"]).await;
    let text = post().header("content-type", "text/plain").header("accept", both).body("x");
    expect_problem(send(text).await, 415, "unsupported_media_type", &["Content-Type: application/json"]).await;
    let no_accept = post().header("content-type", "application/json").body(ping.clone());
    expect_problem(send(no_accept).await, 406, "not_acceptable", &["Accept: application/json, text/event-stream"])
        .await;
    let unknown = post()
        .header("content-type", "application/json")
        .header("accept", both)
        .header("mcp-session-id", "no-such-session")
        .body(ping.clone());
    expect_problem(send(unknown).await, 404, "not_found", &["initialize a new session"]).await;
    let no_session = http.delete(&url).bearer_auth(TOKEN);
    expect_problem(send(no_session).await, 400, "invalid_request", &["Session ID"]).await;
    let huge = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#, "x".repeat(9 << 20));
    let too_large = post().header("content-type", "application/json").header("accept", both).body(huge);
    let resp = send(too_large).await;
    expect_problem(resp, 413, "payload_too_large", &[]).await;
    // And it keeps serving.
    assert_eq!(server.client().health().await.unwrap().status, "ok");
}

/// Ending an MCP session answered 202, which the official Python SDK logs as
/// a failed termination (it takes 200 or 204); it is a 204, and the session is gone.
#[tokio::test]
async fn deleting_an_mcp_session_answers_204_and_ends_it() {
    let (server, _client) = server().await;
    let http = reqwest::Client::new();
    let url = server.endpoint("/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(&init)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let session = resp.headers().get("mcp-session-id").unwrap().to_str().unwrap().to_string();
    let deleted = http.delete(&url).bearer_auth(TOKEN).header("mcp-session-id", &session).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    // Idempotent, like deleting a tether session; and the MCP session is gone.
    let again = http.delete(&url).bearer_auth(TOKEN).header("mcp-session-id", &session).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 204);
    let ping = json!({"jsonrpc": "2.0", "id": 2, "method": "ping"});
    let after = http
        .post(&url)
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .json(&ping)
        .send()
        .await
        .unwrap();
    tether_e2e::http::expect_problem(after, 404, "not_found", &["initialize a new session"]).await;
}

/// Runs the MCP Inspector's CLI (`mcp-inspector --cli`) against tether's
/// `/mcp` over streamable HTTP with the token, with `args` after the
/// connection flags; answers its exit status, stdout and stderr.
async fn inspector(server: &TestServer, args: &[&str]) -> (std::process::ExitStatus, String, String) {
    let bin = tether_e2e::pinned_tools::mcp_inspector_bin();
    // It keeps a catalog and state under $HOME: a home of its own, not the user's.
    let home = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(bin)
        .arg("--cli")
        .arg(server.endpoint("/mcp"))
        .args(["--transport", "http", "--header", &format!("Authorization: Bearer {TOKEN}")])
        .args(args)
        .env("HOME", home.path())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run).await.expect("the inspector answers in 60 s").unwrap();
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The MCP Inspector (the official client people point at an MCP server)
/// lists every tool, with no schema its strict portability check calls an
/// error, and calls one: `list_sessions` finds a session made over HTTP.
#[tokio::test]
async fn the_mcp_inspector_cli_lists_and_calls_the_tools() {
    let (server, rust_client) = server().await;
    let expected: Vec<String> =
        rust_client.list_all_tools().await.unwrap().into_iter().map(|t| t.name.into()).collect();
    let (status, stdout, stderr) = inspector(&server, &["--method", "tools/list", "--strict"]).await;
    // --strict: exit 6 when a tool schema has an error-severity portability problem.
    assert!(status.success(), "tools/list failed ({status}):\n{stdout}\n{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let names: Vec<&str> = listed["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, expected, "{stdout}");
    assert!(stderr.contains("0 errors"), "the portability summary counts no error: {stderr}");

    let session = server
        .client()
        .create_session(&tether_sdk::protocol::CreateSession { agent: "mock".into(), ..Default::default() })
        .await
        .unwrap();
    let (status, stdout, stderr) =
        inspector(&server, &["--method", "tools/call", "--tool-name", "list_sessions", "--tool-arg", "agent=mock"])
            .await;
    assert!(status.success(), "tools/call failed ({status}):\n{stdout}\n{stderr}");
    let called: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(called["isError"], false, "{stdout}");
    let ids: Vec<&str> = called["structuredContent"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions in {stdout}"))
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [session.id.as_str()], "{stdout}");
}

/// An agent's way to run a dev server or a shell beside it: start, read
/// output and screen, type, stop (the whole group), and refusals as tool errors.
#[tokio::test]
async fn processes_through_the_tools() {
    let (server, client) = server().await;
    let session = call(&client, "create_session", json!({"agent": "mock"})).await.unwrap();
    let session_id = session["session_id"].as_str().unwrap().to_string();
    let started = call(
        &client,
        "start_process",
        json!({"command": "bash", "args": ["--norc", "--noprofile", "-i"], "cols": 40, "rows": 8,
               "title": "shell", "session_id": session_id}),
    )
    .await
    .unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["session_id"], session_id.as_str());
    call(&client, "send_input", json!({"process_id": id, "text": "echo via-mcp-$((2*21))\n"})).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let end = loop {
        let out = call(&client, "read_process_output", json!({"process_id": id})).await.unwrap();
        if out["text"].as_str().unwrap().contains("via-mcp-42") {
            break out["end"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "no output: {out}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rest = call(&client, "read_process_output", json!({"process_id": id, "after": end})).await.unwrap();
    assert_eq!(rest["start"], end);
    let screen = call(&client, "read_screen", json!({"process_id": id})).await.unwrap();
    assert_eq!(screen["rows"], 8);
    assert!(screen["lines"].as_array().unwrap().iter().any(|l| l.as_str().unwrap() == "via-mcp-42"), "{screen}");
    let listed = call(&client, "list_processes", json!({})).await.unwrap();
    assert_eq!(listed["processes"][0]["id"], id.as_str());
    let stopped = call(&client, "stop_process", json!({"process_id": id})).await.unwrap();
    assert_eq!((stopped["status"].as_str(), stopped["ended"].as_str()), (Some("exited"), Some("stopped")));

    let err = call(&client, "read_screen", json!({"process_id": "prc_nope"})).await.unwrap_err();
    assert!(err.starts_with("process_not_found (404): "), "{err}");
    let err = call(&client, "start_process", json!({"command": "ls", "cwd": "../"})).await.unwrap_err();
    assert!(err.starts_with("path_outside_root (403): "), "{err}");
    let err = call(&client, "send_input", json!({"process_id": id, "text": "x"})).await.unwrap_err();
    assert!(err.starts_with("conflict (409): "), "{err}");
    drop(server);
}
