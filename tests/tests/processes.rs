//! Processes beside the agents on the real binary: a `bash` under a PTY
//! driven by input and read back by offset, a resize seen by `stty size`,
//! terminal attach, detach and reattach with exactly the missed bytes, two
//! clients seeing the same bytes, the screen of a full-screen program, a
//! stop that ends the whole group (a child ignoring SIGTERM too) within 5 s,
//! records that outlive a restart, an agent's read-only terminal, and every
//! bad request as a clear 4xx.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tether_e2e::http::{expect_problem, send};
use tether_e2e::term_ws::{TermItem, TermWs};
use tether_e2e::*;
use tether_protocol::{Process, ProcessOutput, Screen, TerminalControl};
use tether_sdk::reqwest::Method;

const WAIT: Duration = Duration::from_secs(15);

async fn start(client: &tether_sdk::Client, body: Value) -> Process {
    let resp = send(client.request(Method::POST, "/v1/processes").json(&body)).await;
    assert_eq!(resp.status().as_u16(), 201, "{}", resp.text().await.unwrap_or_default());
    resp.json().await.unwrap()
}

async fn input(client: &tether_sdk::Client, id: &str, text: &str) {
    let resp =
        send(client.request(Method::POST, &format!("/v1/processes/{id}/input")).json(&json!({"text": text}))).await;
    assert_eq!(resp.status().as_u16(), 204, "{}", resp.text().await.unwrap_or_default());
}

async fn output(client: &tether_sdk::Client, id: &str, after: u64) -> ProcessOutput {
    let resp = send(client.request(Method::GET, &format!("/v1/processes/{id}/output?after={after}"))).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

async fn get(client: &tether_sdk::Client, id: &str) -> Process {
    send(client.request(Method::GET, &format!("/v1/processes/{id}"))).await.json().await.unwrap()
}

/// Polls the output until it holds `needle` (from offset 0); the whole text.
async fn wait_output(client: &tether_sdk::Client, id: &str, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let out = output(client, id, 0).await;
        if out.text.contains(needle) {
            return out.text;
        }
        assert!(Instant::now() < deadline, "{needle:?} never appeared; output so far: {:?}", out.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_exit(client: &tether_sdk::Client, id: &str) -> Process {
    let deadline = Instant::now() + WAIT;
    loop {
        let p = get(client, id).await;
        if p.status == tether_protocol::ProcessStatus::Exited {
            return p;
        }
        assert!(Instant::now() < deadline, "process {id} did not end: {p:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bash_under_a_pty_takes_input_resizes_and_its_output_is_read_by_offset() {
    let server = TestServer::start().await;
    let client = server.client();
    let p =
        start(&client, json!({"command": "bash", "args": ["--norc", "--noprofile", "-i"], "cols": 100, "rows": 30}))
            .await;
    assert!(p.id.starts_with("prc_"));
    assert_eq!((p.cols, p.rows, p.tty), (Some(100), Some(30), true));
    assert_eq!(p.cwd, server.workspace().display().to_string());

    input(&client, &p.id, "echo one-$((40+2))\n").await;
    let text = wait_output(&client, &p.id, "one-42").await;
    assert!(text.contains("echo one-$((40+2))"), "the terminal echoes what was typed: {text:?}");

    input(&client, &p.id, "stty size\n").await;
    wait_output(&client, &p.id, "30 100").await;
    let resp = send(
        client.request(Method::POST, &format!("/v1/processes/{}/resize", p.id)).json(&json!({"cols": 91, "rows": 17})),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let resized: Process = resp.json().await.unwrap();
    assert_eq!((resized.cols, resized.rows), (Some(91), Some(17)));
    input(&client, &p.id, "stty size\n").await;
    wait_output(&client, &p.id, "17 91").await;

    // Offsets: reading after the end of one read gives only what followed.
    let before = output(&client, &p.id, 0).await;
    input(&client, &p.id, "echo two-$((1+1))\n").await;
    wait_output(&client, &p.id, "two-2").await;
    let rest = output(&client, &p.id, before.end).await;
    assert_eq!(rest.start, before.end);
    assert!(rest.text.contains("two-2") && !rest.text.contains("one-42"), "{:?}", rest.text);
    // The bytes alone, with the offsets as headers.
    let resp = send(
        client
            .request(Method::GET, &format!("/v1/processes/{}/output?after={}", p.id, before.end))
            .header("accept", "application/octet-stream"),
    )
    .await;
    assert_eq!(resp.headers()["tether-output-start"], before.end.to_string().as_str());
    let bytes = resp.bytes().await.unwrap();
    assert!(String::from_utf8_lossy(&bytes).contains("two-2"));

    input(&client, &p.id, "exit 7\n").await;
    let ended = wait_exit(&client, &p.id).await;
    assert_eq!(ended.exit_code, Some(7));
    assert_eq!(ended.ended, Some(tether_protocol::ProcessEnd::Exited));
    let list: Value = send(client.request(Method::GET, "/v1/processes")).await.json().await.unwrap();
    assert_eq!(list["processes"][0]["id"], p.id.as_str());
    // An ended process takes no more input.
    let resp =
        send(client.request(Method::POST, &format!("/v1/processes/{}/input", p.id)).json(&json!({"text": "x"}))).await;
    expect_problem(resp, 409, "conflict", &["ended"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reattach_from_the_last_offset_gets_exactly_the_missed_bytes_and_two_clients_see_the_same() {
    let server = TestServer::start().await;
    let client = server.client();
    // Writes a numbered line every few milliseconds until told to stop.
    let script = "i=0; while [ ! -e stop ]; do i=$((i+1)); echo line-$i; sleep 0.005; done; echo done";
    let p = start(&client, json!({"command": "sh", "args": ["-c", script]})).await;
    let path = format!("/v1/processes/{}/terminal", p.id);

    let mut a = TermWs::connect(&server, &path).await;
    let mut b = TermWs::connect(&server, &path).await;
    let (a_from, a_missed) = a.attached(WAIT).await;
    let (b_from, _) = b.attached(WAIT).await;
    assert_eq!((a_from, a_missed, b_from), (0, 0, 0), "an attach starts with the whole history");
    let got_a = a.read_until(WAIT, b"line-50\r\n").await;
    let got_b = b.read_until(WAIT, b"line-50\r\n").await;
    let n = got_a.len().min(got_b.len());
    assert_eq!(got_a[..n], got_b[..n], "two clients see the same bytes");

    // Detach A; the process goes on writing; reattach from A's offset.
    let offset = got_a.len() as u64;
    drop(a);
    let out = output(&client, &p.id, 0).await;
    let deadline = Instant::now() + WAIT;
    let mut now = out.end;
    while now < offset + 2000 {
        assert!(Instant::now() < deadline, "the process stopped writing while detached");
        tokio::time::sleep(Duration::from_millis(20)).await;
        now = output(&client, &p.id, 0).await.end;
    }
    std::fs::write(server.workspace().join("stop"), "").unwrap();
    let ended = wait_exit(&client, &p.id).await;
    let mut again = TermWs::connect(&server, &format!("{path}?after={offset}")).await;
    assert_eq!(again.attached(WAIT).await, (offset, 0));
    let mut rest = Vec::new();
    loop {
        match again.next(WAIT).await {
            TermItem::Bytes(bytes) => rest.extend(bytes),
            TermItem::Control(TerminalControl::Exit { exit_code, end, .. }) => {
                assert_eq!(exit_code, Some(0));
                assert_eq!(end, ended.output.end);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(again.next(WAIT).await, TermItem::Close(1000));
    let all = send(
        client
            .request(Method::GET, &format!("/v1/processes/{}/output", p.id))
            .header("accept", "application/octet-stream"),
    )
    .await
    .bytes()
    .await
    .unwrap();
    assert_eq!(&all[..offset as usize], &got_a[..], "what A saw is the start of the output");
    assert_eq!(&all[offset as usize..], &rest[..], "the reattach got exactly the missed bytes, in order");
    assert!(String::from_utf8_lossy(&rest).ends_with("done\r\n"));

    // B, still attached, saw everything too, then the exit.
    let mut b_all = got_b;
    loop {
        match b.next(WAIT).await {
            TermItem::Bytes(bytes) => b_all.extend(bytes),
            TermItem::Control(TerminalControl::Exit { .. }) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(&b_all[..], &all[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_through_the_terminal_and_the_screen_of_a_full_screen_program() {
    let server = TestServer::start().await;
    let client = server.client();
    let p = start(&client, json!({"command": "bash", "args": ["--norc", "--noprofile", "-i"], "cols": 60, "rows": 12}))
        .await;
    let mut t = TermWs::connect(&server, &format!("/v1/processes/{}/terminal", p.id)).await;
    t.attached(WAIT).await;
    t.send_control(&TerminalControl::Resize { cols: 50, rows: 10 }).await;
    t.send_bytes(b"stty size; echo typed-$((6*7))\n").await;
    let got = t.read_until(WAIT, b"typed-42").await;
    assert!(String::from_utf8_lossy(&got).contains("10 50"), "{:?}", String::from_utf8_lossy(&got));

    // A curses-style program: the alternate screen, a title, text placed by cursor moves.
    let program =
        r#"printf '\033[?1049h\033[2J\033]2;dash\007\033[2;3HCPU 12%%\033[4;3HMEM 34%%\033[9;1Hq to quit'; read x"#;
    t.send_bytes(format!("{program}\n").as_bytes()).await;
    let deadline = Instant::now() + WAIT;
    let screen: Screen = loop {
        let s: Screen =
            send(client.request(Method::GET, &format!("/v1/processes/{}/screen", p.id))).await.json().await.unwrap();
        if s.lines.iter().any(|l| l.contains("q to quit")) {
            break s;
        }
        assert!(Instant::now() < deadline, "the screen never showed the program: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((screen.cols, screen.rows), (50, 10));
    assert_eq!(screen.lines[1], "  CPU 12%");
    assert_eq!(screen.lines[3], "  MEM 34%");
    assert_eq!(screen.lines[8], "q to quit");
    assert_eq!(screen.title.as_deref(), Some("dash"));
    assert!(screen.alternate_screen);
    assert_eq!(screen.lines.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_the_whole_group_within_5_s_even_a_child_that_ignores_sigterm() {
    let server = TestServer::start().await;
    let client = server.client();
    let script = "trap '' TERM; sh -c 'trap \"\" TERM; echo child=$$; while :; do sleep 1; done' & \
                  echo leader=$$; while :; do sleep 1; done";
    let p = start(&client, json!({"command": "sh", "args": ["-c", script], "tty": false})).await;
    let text = wait_output(&client, &p.id, "child=").await;
    let child: i32 = text.split("child=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(pid_alive(child));
    let begun = Instant::now();
    let resp = send(client.request(Method::DELETE, &format!("/v1/processes/{}", p.id))).await;
    assert_eq!(resp.status().as_u16(), 200);
    let stopped: Process = resp.json().await.unwrap();
    assert!(begun.elapsed() < Duration::from_secs(5), "the stop took {:?}", begun.elapsed());
    assert_eq!(stopped.status, tether_protocol::ProcessStatus::Exited);
    assert_eq!(stopped.ended, Some(tether_protocol::ProcessEnd::Stopped));
    assert_eq!(stopped.signal.as_deref(), Some("SIGKILL"), "{stopped:?}");
    assert!(!pid_alive(child), "the child that ignored SIGTERM survived the stop");
    assert!(!pid_alive(p.pid));
}

fn pid_alive(pid: i32) -> bool {
    // A zombie has been killed; only its parent has not reaped it yet.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_output_outlive_a_restart_and_say_the_process_ended_with_the_server() {
    let mut server = TestServer::start().await;
    let client = server.client();
    let p =
        start(&client, json!({"command": "sh", "args": ["-c", "echo before-restart; sleep 600"], "title": "sleeper"}))
            .await;
    wait_output(&client, &p.id, "before-restart").await;
    server.restart().await;
    let client = server.client();
    let after = get(&client, &p.id).await;
    assert_eq!(after.status, tether_protocol::ProcessStatus::Exited);
    assert_eq!(after.ended, Some(tether_protocol::ProcessEnd::ServerStopped));
    assert_eq!(after.title, "sleeper");
    assert!(!pid_alive(p.pid), "the process outlived the server");
    let out = output(&client, &p.id, 0).await;
    assert!(out.text.contains("before-restart"), "{:?}", out.text);
    assert!(out.exited);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_terminal_shows_its_agents_pty_read_only() {
    let server = TestServer::start().await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "terminal-marker-1234").await.unwrap();
    tether_e2e::events::collect_turn(&client, &session.id, 0).await;
    let mut t = TermWs::connect(&server, &format!("/v1/sessions/{}/terminal", session.id)).await;
    match t.next(WAIT).await {
        TermItem::Control(TerminalControl::Attached { offset: 0, read_only: true, .. }) => {}
        other => panic!("expected a read-only attach, got {other:?}"),
    }
    // The mock agent speaks JSON lines on its PTY; the prompt went through it.
    t.read_until(WAIT, b"terminal-marker-1234").await;
    // Input from a read-only client goes nowhere (and does not end the attach).
    t.send_bytes(b"ignored\n").await;
    let resp = send(
        client
            .request(Method::GET, "/v1/sessions/ses_nope/terminal")
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    )
    .await;
    expect_problem(resp, 404, "session_not_found", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_4xx_problems() {
    let server = TestServer::start().await;
    let client = server.client();
    let post = |path: &str, body: Value| client.request(Method::POST, path).json(&body);
    expect_problem(
        send(client.request(Method::GET, "/v1/processes/prc_nope")).await,
        404,
        "process_not_found",
        &["prc_nope"],
    )
    .await;
    expect_problem(
        send(post("/v1/processes/prc_nope/input", json!({"text": "x"}))).await,
        404,
        "process_not_found",
        &[],
    )
    .await;
    expect_problem(
        send(post("/v1/processes", json!({"command": "ls", "cwd": "../.."}))).await,
        403,
        "path_outside_root",
        &[],
    )
    .await;
    expect_problem(
        send(post("/v1/processes", json!({"command": "ls", "cwd": "/etc"}))).await,
        403,
        "path_outside_root",
        &[],
    )
    .await;
    expect_problem(
        send(post("/v1/processes", json!({"command": "no-such-program-here"}))).await,
        400,
        "invalid_request",
        &["no-such-program-here", "PATH"],
    )
    .await;
    expect_problem(
        send(post("/v1/processes", json!({"command": "sh", "cols": 0}))).await,
        400,
        "invalid_request",
        &["cols"],
    )
    .await;

    let p = start(&client, json!({"command": "cat"})).await;
    let path = format!("/v1/processes/{}", p.id);
    for bad in [json!({"cols": 0, "rows": 10}), json!({"cols": 10, "rows": 5000}), json!({"cols": "wide", "rows": 10})]
    {
        let resp = send(post(&format!("{path}/resize"), bad.clone())).await;
        assert_eq!(resp.status().as_u16(), 400, "{bad}");
    }
    expect_problem(
        send(post(&format!("{path}/input"), json!({"text": "x".repeat(70_000)}))).await,
        413,
        "payload_too_large",
        &["65536"],
    )
    .await;
    expect_problem(
        send(post(&format!("{path}/input"), json!({"text": "a", "base64": "YQ=="}))).await,
        400,
        "invalid_request",
        &["exactly one"],
    )
    .await;
    expect_problem(
        send(post(&format!("{path}/input"), json!({"base64": "%%%"}))).await,
        400,
        "invalid_request",
        &["base64"],
    )
    .await;
    expect_problem(
        send(post(&format!("{path}/signal"), json!({"signal": "SIGBOGUS"}))).await,
        400,
        "invalid_request",
        &[],
    )
    .await;
    // Not a WebSocket.
    expect_problem(
        send(client.request(Method::GET, &format!("{path}/terminal"))).await,
        426,
        "upgrade_required",
        &["WebSocket"],
    )
    .await;
    // A process without a terminal has no screen.
    let piped = start(&client, json!({"command": "cat", "tty": false})).await;
    expect_problem(
        send(client.request(Method::GET, &format!("/v1/processes/{}/screen", piped.id))).await,
        409,
        "conflict",
        &["terminal"],
    )
    .await;
    // base64 input reaches it; the server still serves.
    let resp = send(post(&format!("/v1/processes/{}/input", piped.id), json!({"base64": "aGVsbG8K"}))).await;
    assert_eq!(resp.status().as_u16(), 204);
    wait_output(&client, &piped.id, "hello").await;
    for id in [&p.id, &piped.id] {
        let resp = send(client.request(Method::DELETE, &format!("/v1/processes/{id}"))).await;
        assert_eq!(resp.status().as_u16(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dev_server_started_as_a_process_is_announced_previewed_and_closed() {
    let server = TestServer::start_with(ServerOptions { ports_poll_ms: Some(100), ..Default::default() }).await;
    let client = server.client();
    let session = mock_session(&client).await;
    std::fs::write(server.workspace().join("index.html"), "<h1>from the dev server</h1>").unwrap();
    let port = tether_e2e::ports::free_port();
    let mut stream = client.session_events(&session.id, Some(0));
    let p = start(
        &client,
        json!({"command": "python3", "args": ["-m", "http.server", port.to_string(), "--bind", "127.0.0.1"],
               "session_id": session.id, "title": "static files"}),
    )
    .await;
    let got = tether_e2e::events::wait_for(&mut stream, WAIT, |e| e.event_type() == "port.opened").await;
    let tether_sdk::EventBody::PortOpened(opened) = &got.last().unwrap().body else { unreachable!() };
    assert_eq!(opened.port, port);
    assert_eq!(opened.pid, Some(p.pid));
    assert_eq!(opened.process_id.as_deref(), Some(p.id.as_str()));
    assert_eq!(opened.session_id.as_deref(), Some(session.id.as_str()));
    let ports: tether_protocol::PortList = send(client.request(Method::GET, "/v1/ports")).await.json().await.unwrap();
    let listed = ports.ports.iter().find(|x| x.port == port).expect("listed");
    assert_eq!(listed.process_id.as_deref(), Some(p.id.as_str()));
    let page = send(client.request(Method::GET, &format!("/v1/ports/{port}/proxy/index.html"))).await;
    assert_eq!(page.text().await.unwrap(), "<h1>from the dev server</h1>");

    let resp = send(client.request(Method::DELETE, &format!("/v1/processes/{}", p.id))).await;
    assert_eq!(resp.status().as_u16(), 200);
    let got = tether_e2e::events::wait_for(&mut stream, WAIT, |e| e.event_type() == "port.closed").await;
    let tether_sdk::EventBody::PortClosed(closed) = &got.last().unwrap().body else { unreachable!() };
    assert_eq!((closed.port, closed.process_id.as_deref()), (port, Some(p.id.as_str())));
    expect_problem(
        send(client.request(Method::GET, &format!("/v1/ports/{port}/proxy/"))).await,
        404,
        "port_not_listening",
        &[],
    )
    .await;
}

/// A client that reads nothing while a process writes 8 MiB (eight times
/// what is kept) holds back neither the process nor a reading client; when
/// it reads again it is told exactly which bytes it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_never_slows_the_process_or_the_others() {
    let server = TestServer::start().await;
    let client = server.client();
    let total: u64 = 8 << 20;
    let script = format!("read go; head -c {total} /dev/zero | tr '\\0' z; echo; echo finished");
    let p = start(&client, json!({"command": "sh", "args": ["-c", script], "tty": false})).await;
    let path = format!("/v1/processes/{}/terminal", p.id);
    let mut stalled = TermWs::connect(&server, &path).await;
    let mut reader = TermWs::connect(&server, &path).await;
    reader.attached(WAIT).await;
    reader.send_bytes(b"go\n").await;
    // The reader gets everything while the other reads nothing; the process finishes meanwhile.
    let mut got = 0u64;
    let mut missed_by_reader = 0u64;
    loop {
        match reader.next(WAIT).await {
            TermItem::Bytes(b) => got += b.len() as u64,
            TermItem::Control(TerminalControl::Missed { from, to }) => missed_by_reader += to - from,
            TermItem::Control(TerminalControl::Exit { end, .. }) => {
                assert_eq!(got + missed_by_reader, end);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let ended = wait_exit(&client, &p.id).await;
    assert_eq!(ended.exit_code, Some(0));
    assert_eq!(ended.output.end, total + "\nfinished\n".len() as u64);
    // The stalled client now reads: its first bytes, then a `missed` that
    // jumps to what is kept, then the rest up to the exit: every offset
    // accounted for.
    let (from, missed) = stalled.attached(WAIT).await;
    assert_eq!((from, missed), (0, 0));
    let (mut offset, mut skipped) = (0u64, 0u64);
    loop {
        match stalled.next(WAIT).await {
            TermItem::Bytes(b) => offset += b.len() as u64,
            TermItem::Control(TerminalControl::Missed { from, to }) => {
                assert_eq!(from, offset, "a skip starts where the client was");
                skipped += to - from;
                offset = to;
            }
            TermItem::Control(TerminalControl::Exit { end, .. }) => {
                assert_eq!(offset, end);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(skipped > 0, "the stalled client was told it missed output");
    assert_eq!(offset, ended.output.end);
}
