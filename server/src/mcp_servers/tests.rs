//! Names, configurations, the registry on a real store, and probes of
//! servers that fail in each way (a real MCP server is probed end to end
//! in the e2e suite).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::*;

fn stdio(command: &str, args: &[&str]) -> McpServer {
    McpServer::Stdio {
        command: command.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: BTreeMap::new(),
        cwd: None,
    }
}

fn http(url: &str, headers: &[(&str, &str)]) -> McpServer {
    McpServer::Http { url: url.into(), headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
}

#[test]
fn names_every_agent_accepts() {
    for ok in ["a", "github", "my-server", "my_server", "9lives", "A-b_C-1", &"x".repeat(48)] {
        assert_eq!(validate_name(ok), Ok(()), "{ok:?}");
    }
    let cases: [(&str, &str); 9] = [
        ("", "empty"),
        ("a__b", "`__`"),
        ("-x", "start with a letter or a digit"),
        ("_x", "start with a letter or a digit"),
        ("a.b", "'.'"),
        ("a b", "' '"),
        ("é", "'é'"),
        ("a/b", "'/'"),
        (&"x".repeat(49), "longer than 48"),
    ];
    for (bad, needle) in cases {
        let e = validate_name(bad).unwrap_err();
        assert!(e.contains(needle), "{bad:?}: {e:?} should mention {needle:?}");
    }
}

#[test]
fn configurations_are_checked_field_by_field() {
    assert_eq!(validate("fs", &stdio("npx", &["-y", "server"])), Ok(()));
    assert_eq!(validate("web", &http("https://mcp.example.com/mcp", &[("Authorization", "Bearer x")])), Ok(()));
    assert_eq!(validate("local", &http("http://127.0.0.1:8080/mcp", &[])), Ok(()));
    let with_env = |k: &str, v: &str| McpServer::Stdio {
        command: "x".into(),
        args: vec![],
        env: [(k.to_string(), v.to_string())].into(),
        cwd: None,
    };
    let cases = [
        (validate("a__b", &stdio("x", &[])), "`__`"),
        (validate("s", &stdio(" ", &[])), "`command` must not be empty"),
        (validate("s", &stdio("x\0y", &[])), "`command` must not contain a NUL"),
        (validate("s", &stdio("x", &["ok", "b\0d"])), "`args[1]`"),
        (validate("s", &with_env("", "v")), "variable name must not be empty"),
        (validate("s", &with_env("A=B", "v")), "\"A=B\" must not contain `=`"),
        (validate("s", &with_env("A", "v\0")), "`env.A`"),
        (validate("s", &http("http://", &[])), "`url`"),
        (validate("s", &http("not a url", &[])), "`url` is not a URL"),
        (validate("s", &http("ftp://host/x", &[])), "http:// or https://"),
        (
            validate("s", &http("http://h/mcp", &[("bad header", "v")])),
            "\"bad header\" is not a valid HTTP header name",
        ),
        (
            validate("s", &http("http://h/mcp", &[("X-K", "line\nbreak")])),
            "header \"X-K\" is not a valid HTTP header value",
        ),
    ];
    for (result, needle) in cases {
        let e = result.unwrap_err();
        assert!(e.contains(needle), "{e:?} should mention {needle:?}");
    }
    // A secret value never appears in a message.
    let e = validate("s", &http("http://h/mcp", &[("X-K", "s3cret\n")])).unwrap_err();
    assert!(!e.contains("s3cret"), "{e}");
}

#[tokio::test]
async fn the_registry_is_durable_and_answers_what_it_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tether.db");
    let store = Store::open(&path).unwrap();
    assert!(global_servers(&store).await.unwrap().is_empty());
    let one = stdio("one", &["--flag"]);
    let two = http("http://127.0.0.1:1/mcp", &[("X-K", "v")]);
    assert_eq!(put_global_server(&store, "a", &one).await.unwrap(), None);
    assert_eq!(put_global_server(&store, "b", &two).await.unwrap(), None);
    assert_eq!(put_global_server(&store, "a", &two).await.unwrap(), Some(one.clone()));
    assert_eq!(global_server(&store, "a").await.unwrap(), Some(two.clone()));
    assert_eq!(global_server(&store, "zz").await.unwrap(), None);
    assert_eq!(delete_global_server(&store, "b").await.unwrap(), Some(two.clone()));
    assert_eq!(delete_global_server(&store, "b").await.unwrap(), None);
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(global_servers(&store).await.unwrap(), [("a".to_string(), two)].into());
}

/// Probes `server` with `timeout`; asserts it failed within `bound` and returns the message.
async fn probe_fails(server: McpServer, timeout: Duration, bound: Duration) -> ProbeError {
    let ws = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let e = probe(&server, ws.path(), timeout).await.unwrap_err();
    assert!(started.elapsed() < bound, "{e} took {:?}", started.elapsed());
    e
}

#[tokio::test]
async fn probes_fail_clearly_and_in_time() {
    let t = Duration::from_millis(1500);
    let bound = Duration::from_secs(5);
    let e = probe_fails(stdio("/nonexistent/mcp-server", &[]), t, bound).await;
    assert_eq!(e.to_string(), "could not start `/nonexistent/mcp-server`: No such file or directory");
    let e = probe_fails(stdio("sh", &["-c", "echo boom >&2; exit 3"]), t, bound).await;
    assert_eq!(e.to_string(), "exited before answering (exit status 3): boom");
    let e = probe_fails(stdio("sleep", &["30"]), t, bound).await;
    assert!(e.is_timeout());
    assert_eq!(e.to_string(), "did not answer within 1.5 s");
    let garbage = "while :; do echo 'hello, not json'; sleep 0.05; done";
    let e = probe_fails(stdio("sh", &["-c", garbage]), Duration::from_secs(10), Duration::from_secs(5)).await;
    assert!(e.to_string().starts_with("did not speak MCP: "), "{e}");
    assert!(e.to_string().contains("hello, not json"), "{e}");
    let mut in_missing_dir = stdio("true", &[]);
    if let McpServer::Stdio { cwd, .. } = &mut in_missing_dir {
        *cwd = Some("no/such/dir".into());
    }
    let e = probe_fails(in_missing_dir, t, bound).await;
    assert!(e.to_string().contains("is not a directory"), "{e}");
    // Nothing listens on port 1.
    let e = probe_fails(http("http://127.0.0.1:1/mcp?token=s3cret", &[]), t, bound).await;
    assert!(matches!(e, ProbeError::Http { .. }), "{e}");
    assert!(e.to_string().starts_with("failed at http://127.0.0.1:1/mcp: "), "{e}");
    assert!(e.to_string().contains("Connection refused"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[tokio::test]
async fn a_dropped_probe_leaves_no_process() {
    let ws = tempfile::tempdir().unwrap();
    // A server that forks a child of its own and hangs.
    let marker = format!("mcp-drop-test-{}", std::process::id());
    let server = McpServer::Stdio {
        command: "sh".into(),
        args: vec!["-c".into(), "sleep 300 & sleep 300".into()],
        env: [("MARKER".to_string(), marker.clone())].into(),
        cwd: None,
    };
    let probe = probe(&server, ws.path(), Duration::from_secs(30));
    // Let it start, then drop it mid-probe.
    let _ = tokio::time::timeout(Duration::from_millis(500), probe).await;
    let needle = format!("MARKER={marker}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<_> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| {
                std::fs::read(e.path().join("environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle.as_bytes()))
            })
            .collect();
        if alive.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "{} process(es) left after the probe was dropped", alive.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
