//! MCP: the test MCP server itself (both transports, through an rmcp client),
//! the global registry (`/v1/mcp/servers`) and tool listing through tether.

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{json, Value};
use tether_e2e::{mcp_test_server_bin, McpHttpServer, McpLog};

/// The text of the first content block of a tool result.
fn text_of(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).unwrap();
    v["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {v}")).to_string()
}

fn args(v: Value) -> rmcp::model::JsonObject {
    v.as_object().unwrap().clone()
}

/// Lists the tools and calls echo, add, whoami and mint through `client`; checks the log.
async fn exercise(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>, log: &McpLog, label: &str) {
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "mint", "whoami"]);
    let echo =
        client.call_tool(CallToolRequestParams::new("echo").with_arguments(args(json!({"text": "hi"})))).await.unwrap();
    assert_eq!(text_of(&echo), "echo: hi");
    let add = client
        .call_tool(CallToolRequestParams::new("add").with_arguments(args(json!({"a": 2, "b": 40}))))
        .await
        .unwrap();
    assert_eq!(text_of(&add), "42");
    let who: Value =
        serde_json::from_str(&text_of(&client.call_tool(CallToolRequestParams::new("whoami")).await.unwrap())).unwrap();
    assert_eq!(who["label"], label);
    // mint: the same JSON as text and as structured content, a new token each call.
    let minted = serde_json::to_value(client.call_tool(CallToolRequestParams::new("mint")).await.unwrap()).unwrap();
    let token = minted["structuredContent"]["token"].as_str().unwrap().to_string();
    assert!(token.starts_with(&format!("tok-{label}-")), "{minted}");
    assert_eq!(
        serde_json::from_str::<Value>(minted["content"][0]["text"].as_str().unwrap()).unwrap(),
        json!({"token": token})
    );
    let again = client.call_tool(CallToolRequestParams::new("mint")).await.unwrap();
    assert_ne!(serde_json::to_value(again).unwrap()["structuredContent"]["token"], token.as_str());
    // The log is written before the answer: no waiting.
    let calls = log.calls();
    assert_eq!(calls.len(), 5, "{calls:#?}");
    assert_eq!(calls[0], json!({"label": label, "tool": "echo", "arguments": {"text": "hi"}, "result": "echo: hi"}));
    assert_eq!(calls[1]["result"], "42");
    assert_eq!(calls[2]["tool"], "whoami");
    assert_eq!(calls[3]["result"], json!({"token": token}).to_string());
}

#[tokio::test]
async fn mcp_test_server_speaks_stdio() {
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let mut cmd = tokio::process::Command::new(mcp_test_server_bin());
    cmd.arg("--log")
        .arg(log.path())
        .args(["--label", "stdio-one"])
        .current_dir(dir.path())
        .env("MCP_TEST_SECRET", "s3cret");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    exercise(&client, &log, "stdio-one").await;
    let who = &log.calls_of("whoami")[0];
    let who: Value = serde_json::from_str(who["result"].as_str().unwrap()).unwrap();
    assert_eq!(who["secret"], "s3cret");
    assert_eq!(who["cwd"], dir.path().canonicalize().unwrap().display().to_string());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn mcp_test_server_speaks_streamable_http() {
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let server = McpHttpServer::start_requiring("http-one", log.path(), "x-mcp-test", "open-sesame");

    // Without the header: refused.
    let refused = ().serve(StreamableHttpClientTransport::from_uri(server.url())).await;
    assert!(refused.is_err(), "connected without the required header");

    let headers = [("x-mcp-test".parse().unwrap(), "open-sesame".parse().unwrap())].into_iter().collect();
    let config = StreamableHttpClientTransportConfig::with_uri(server.url()).custom_headers(headers);
    let client = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
    exercise(&client, &log, "http-one").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn mcp_test_server_binary_serves_http() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let mut child = tokio::process::Command::new(mcp_test_server_bin())
        .arg("--log")
        .arg(log.path())
        .args(["--label", "http-bin", "--http"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.unwrap().unwrap().unwrap();
    let url = first.strip_prefix("listening on ").unwrap_or_else(|| panic!("first line {first:?}"));
    let client = ().serve(StreamableHttpClientTransport::from_uri(url.to_string())).await.unwrap();
    exercise(&client, &log, "http-bin").await;
    client.cancel().await.unwrap();
    child.kill().await.unwrap();
}

// The registry and tool listing through tether (the real binary, the SDK).

use std::collections::BTreeMap;
use std::time::Instant;

use tether_e2e::http::{expect_problem, send};
use tether_e2e::mcp::{wait_no_probe_processes, wait_some_probe_process};
use tether_e2e::TestServer;
use tether_sdk::reqwest::Method;
use tether_sdk::{McpServer, McpToolList};

/// A stdio config of the test server with `flags`, logging to `log`, its
/// environment marked with `marker` (`K=V`) so its probe processes can be found.
fn test_server(log: &std::path::Path, flags: &[&str], marker: &str) -> McpServer {
    let mut args = vec!["--log".to_string(), log.display().to_string(), "--label".into(), "e2e".into()];
    args.extend(flags.iter().map(|f| f.to_string()));
    let (k, v) = marker.split_once('=').unwrap();
    McpServer::Stdio {
        command: mcp_test_server_bin().display().to_string(),
        args,
        env: BTreeMap::from([(k.to_string(), v.to_string()), ("MCP_TEST_SECRET".into(), "s3cret".into())]),
        cwd: None,
    }
}

fn marker(test: &str) -> String {
    format!("MCP_E2E_RUN={test}-{}", std::process::id())
}

/// The listing has echo, add, mint and whoami with descriptions and object input schemas.
fn assert_test_tools(list: &McpToolList, server: &str) {
    assert_eq!(list.server, server);
    let mut names: Vec<&str> = list.tools.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "mint", "whoami"], "{list:#?}");
    for tool in &list.tools {
        assert!(tool.description.as_deref().is_some_and(|d| !d.is_empty()), "{tool:?}");
        assert_eq!(tool.input_schema["type"], "object", "{tool:?}");
    }
    let echo = list.tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.input_schema["properties"]["text"]["type"], "string", "{echo:?}");
    assert_eq!(echo.input_schema["required"], json!(["text"]), "{echo:?}");
    let add = list.tools.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add.input_schema["properties"]["a"]["type"], "integer", "{add:?}");
}

#[tokio::test]
async fn mcp_registry_round_trip_survives_a_restart() {
    let mut server = TestServer::start().await;
    let client = server.client();
    assert!(client.list_mcp_servers().await.unwrap().servers.is_empty());
    let stdio = McpServer::Stdio {
        command: "npx".into(),
        args: vec!["-y".into(), "some-server".into()],
        env: BTreeMap::from([("TOKEN".to_string(), "t".to_string())]),
        cwd: Some("sub".into()),
    };
    let remote = McpServer::Http {
        url: "https://mcp.example.com/mcp".into(),
        headers: BTreeMap::from([("Authorization".to_string(), "Bearer x".to_string())]),
    };
    let put = client.put_mcp_server("files", &stdio).await.unwrap();
    assert!(put.created);
    assert_eq!(put.server, stdio);
    assert!(client.put_mcp_server("web", &stdio).await.unwrap().created);
    let replaced = client.put_mcp_server("web", &remote).await.unwrap();
    assert!(!replaced.created, "replacing answers 200");
    assert_eq!(client.get_mcp_server("web").await.unwrap(), remote);
    let want = BTreeMap::from([("files".to_string(), stdio.clone()), ("web".to_string(), remote.clone())]);
    assert_eq!(client.list_mcp_servers().await.unwrap().servers, want);

    server.restart().await;
    let client = server.client();
    assert_eq!(client.list_mcp_servers().await.unwrap().servers, want);
    assert_eq!(client.delete_mcp_server("files").await.unwrap(), stdio);
    let gone = client.delete_mcp_server("files").await.unwrap_err();
    assert_eq!((gone.status(), gone.code()), (Some(404), Some("not_found")));
    let gone = client.mcp_server_tools("files").await.unwrap_err();
    assert_eq!((gone.status(), gone.code()), (Some(404), Some("not_found")));
    server.restart().await;
    let left = server.client().list_mcp_servers().await.unwrap().servers;
    assert_eq!(left, BTreeMap::from([("web".to_string(), remote)]));
}

#[tokio::test]
async fn mcp_tools_of_a_stdio_server() {
    let server = TestServer::start().await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    let log = McpLog::new(dir.path().join("calls.jsonl"));
    let marker = marker("stdio");
    client.put_mcp_server("local", &test_server(log.path(), &[], &marker)).await.unwrap();
    let started = Instant::now();
    let list = client.mcp_server_tools("local").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert_test_tools(&list, "local");
    assert!(log.calls().is_empty(), "listing calls no tool");
    wait_no_probe_processes(&marker, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn mcp_tools_of_an_http_server_with_a_required_header() {
    let server = TestServer::start().await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    let mcp = McpHttpServer::start_requiring("e2e-http", dir.path().join("calls.jsonl"), "x-mcp-key", "k3y");
    let with = |headers: &[(&str, &str)]| McpServer::Http {
        url: mcp.url(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    };
    client.put_mcp_server("remote", &with(&[("X-Mcp-Key", "k3y")])).await.unwrap();
    assert_test_tools(&client.mcp_server_tools("remote").await.unwrap(), "remote");
    // Without the header the server refuses: a 502 that names the server, without the header's value.
    client.put_mcp_server("refused", &with(&[])).await.unwrap();
    let resp = send(client.request(Method::GET, "/v1/mcp/servers/refused/tools")).await;
    let problem = expect_problem(resp, 502, "mcp_unavailable", &["\"refused\"", "401"]).await;
    assert!(!problem.detail.contains("k3y"), "{}", problem.detail);
    // Nothing listens any more.
    let url = mcp.url();
    drop(mcp);
    client.put_mcp_server("stopped", &McpServer::Http { url, headers: BTreeMap::new() }).await.unwrap();
    let resp = send(client.request(Method::GET, "/v1/mcp/servers/stopped/tools?timeout_ms=3000")).await;
    expect_problem(resp, 502, "mcp_unavailable", &["\"stopped\"", "connection refused"]).await;
    assert_eq!(client.health().await.unwrap().status, "ok");
}

#[tokio::test]
async fn mcp_tools_of_broken_servers_fail_in_time_and_leave_nothing() {
    let server = TestServer::start().await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.jsonl");
    /// Each answers within this, whatever its own deadline.
    const BOUND: Duration = Duration::from_secs(5);
    type Case = (&'static str, &'static [&'static str], u64, u16, &'static [&'static str]);
    // (name, flags, timeout_ms, status, mentions)
    let cases: [Case; 3] = [
        ("exits", &["--exit-at-once"], 10_000, 502, &["exited before answering (exit status 1)", "exiting at once"]),
        ("hangs", &["--hang"], 1500, 504, &["did not answer within 1.5 s"]),
        ("garbage", &["--garbage"], 10_000, 502, &["did not speak MCP", "not JSON-RPC"]),
    ];
    for (name, flags, timeout_ms, status, mentions) in cases {
        let marker = marker(name);
        client.put_mcp_server(name, &test_server(&log, flags, &marker)).await.unwrap();
        let started = Instant::now();
        let resp =
            send(client.request(Method::GET, &format!("/v1/mcp/servers/{name}/tools?timeout_ms={timeout_ms}"))).await;
        expect_problem(resp, status, "mcp_unavailable", mentions).await;
        assert!(started.elapsed() < BOUND, "{name}: answered after {:?}", started.elapsed());
        wait_no_probe_processes(&marker, Duration::from_secs(5)).await;
        assert_eq!(client.health().await.unwrap().status, "ok");
    }
    let missing =
        McpServer::Stdio { command: "/nonexistent/mcp-server".into(), args: vec![], env: BTreeMap::new(), cwd: None };
    client.put_mcp_server("missing", &missing).await.unwrap();
    let resp = send(client.request(Method::GET, "/v1/mcp/servers/missing/tools")).await;
    expect_problem(
        resp,
        502,
        "mcp_unavailable",
        &["could not start `/nonexistent/mcp-server`: No such file or directory"],
    )
    .await;
    assert!(log_is_empty(&log));
    // Still serving, and a good server still lists.
    let marker = marker("after");
    client.put_mcp_server("good", &test_server(&log, &[], &marker)).await.unwrap();
    assert_test_tools(&client.mcp_server_tools("good").await.unwrap(), "good");
}

fn log_is_empty(path: &std::path::Path) -> bool {
    McpLog::new(path).calls().is_empty()
}

#[tokio::test]
async fn mcp_probe_is_ended_when_the_request_is_dropped() {
    let server = TestServer::start().await;
    let client = server.client();
    let dir = tempfile::tempdir().unwrap();
    let marker = marker("dropped");
    client.put_mcp_server("hangs", &test_server(&dir.path().join("calls.jsonl"), &["--hang"], &marker)).await.unwrap();
    let request = tokio::spawn({
        let client = client.clone();
        async move { client.mcp_server_tools_within("hangs", 60_000).await }
    });
    wait_some_probe_process(&marker, Duration::from_secs(10)).await;
    request.abort();
    let _ = request.await;
    wait_no_probe_processes(&marker, Duration::from_secs(5)).await;
    assert_eq!(client.health().await.unwrap().status, "ok");
}
