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

/// Lists the tools and calls echo, add and whoami through `client`; checks the log.
async fn exercise(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>, log: &McpLog, label: &str) {
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| &*t.name).collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "echo", "whoami"]);
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
    // The log is written before the answer: no waiting.
    let calls = log.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    assert_eq!(calls[0], json!({"label": label, "tool": "echo", "arguments": {"text": "hi"}, "result": "echo: hi"}));
    assert_eq!(calls[1]["result"], "42");
    assert_eq!(calls[2]["tool"], "whoami");
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
