//! Processes, terminals and ports from the client side: the SDK drives a
//! real `bash` (input, output, resize), attaches to its terminal, loses the
//! connection and reattaches from its last offset; `tether sh` on a PTY
//! detaches and reattaches with the history; `tether ps` and `tether
//! ports` list what runs and listens.

use std::process::Stdio;
use std::time::Duration;

use tether_e2e::pty::Pty;
use tether_e2e::*;
use tether_sdk::{Client, CreateProcess, OutputQuery, Process, Terminal, TerminalFrame, TerminalQuery};

const TOKEN: &str = "processes-token";
const SHOWN: Duration = Duration::from_secs(30);

fn bash() -> CreateProcess {
    CreateProcess {
        command: "bash".into(),
        args: vec!["--norc".into(), "--noprofile".into(), "-i".into()],
        cols: Some(80),
        rows: Some(24),
        tty: true,
        ..Default::default()
    }
}

fn script(sh: &str) -> CreateProcess {
    CreateProcess { command: "sh".into(), args: vec!["-c".into(), sh.into()], ..Default::default() }
}

/// Waits until the process's kept output contains `needle`; returns it all.
async fn wait_output(client: &Client, id: &str, needle: &str) -> String {
    let deadline = tokio::time::Instant::now() + SHOWN;
    loop {
        let out = client.process_output_bytes(id, &OutputQuery::default()).await.unwrap();
        let text = String::from_utf8_lossy(&out.bytes).into_owned();
        if text.contains(needle) {
            return text;
        }
        assert!(tokio::time::Instant::now() < deadline, "{needle:?} never came; the output was:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_exited(client: &Client, id: &str) -> Process {
    let deadline = tokio::time::Instant::now() + SHOWN;
    loop {
        let p = client.get_process(id).await.unwrap();
        if p.status == tether_sdk::ProcessStatus::Exited {
            return p;
        }
        assert!(tokio::time::Instant::now() < deadline, "{id} did not exit: {p:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The frames of a terminal until its exit (or until `stop` says so): the
/// output bytes in order, the exit code.
async fn read_terminal(terminal: &mut Terminal, stop: impl Fn(&[u8]) -> bool) -> (Vec<u8>, Option<i32>) {
    let mut bytes = Vec::new();
    loop {
        let frame = tokio::time::timeout(SHOWN, terminal.next_frame()).await.expect("a frame in time");
        match frame {
            Some(Ok(TerminalFrame::Output { offset, bytes: chunk })) => {
                assert_eq!(offset + chunk.len() as u64, terminal.offset());
                bytes.extend_from_slice(&chunk);
                if stop(&bytes) {
                    return (bytes, None);
                }
            }
            Some(Ok(TerminalFrame::Exit { exit_code, end, .. })) => {
                assert_eq!(end, terminal.offset());
                assert!(terminal.next_frame().await.is_none(), "the terminal ends after the exit");
                return (bytes, exit_code);
            }
            Some(Ok(TerminalFrame::Attached { missed, .. })) => assert_eq!(missed, 0),
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(e)) => panic!("terminal error: {e}"),
            None => panic!("the terminal ended without an exit"),
        }
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_sdk_drives_bash_input_output_and_resize() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let p = client.create_process(&bash()).await.unwrap();
    assert!(p.id.starts_with("prc_") && p.tty && p.pid > 1, "{p:?}");
    client.send_process_text(&p.id, "echo sum-$((40+2))\r").await.unwrap();
    wait_output(&client, &p.id, "sum-42").await;

    let resized = client.resize_process(&p.id, 100, 30).await.unwrap();
    assert_eq!((resized.cols, resized.rows), (Some(100), Some(30)));
    client.send_process_text(&p.id, "stty size\r").await.unwrap();
    wait_output(&client, &p.id, "30 100").await;

    // The JSON form of the output says the same bytes.
    let json = client.process_output(&p.id, &OutputQuery::default()).await.unwrap();
    assert!(json.text.contains("sum-42") && !json.exited, "{json:?}");
    let screen = client.process_screen(&p.id).await.unwrap();
    assert_eq!((screen.cols, screen.rows), (100, 30));

    client.send_process_text(&p.id, "exit 7\r").await.unwrap();
    let ended = wait_exited(&client, &p.id).await;
    assert_eq!(ended.exit_code, Some(7), "{ended:?}");
    assert!(client.list_processes().await.unwrap().processes.iter().any(|q| q.id == p.id));
}

#[tokio::test]
async fn a_reattach_from_the_last_offset_gets_exactly_the_missed_bytes() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let p = client
        .create_process(&script("i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line-$i; sleep 0.01; done"))
        .await
        .unwrap();
    let mut first = client.attach_terminal(&p.id, &TerminalQuery::default()).await.unwrap();
    let (seen, _) = read_terminal(&mut first, |b| contains(b, "line-20\r\n") || contains(b, "line-20\n")).await;
    let offset = first.offset();
    assert_eq!(offset, seen.len() as u64);
    first.close().await.unwrap();
    // The process keeps writing while nobody is attached.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let after = TerminalQuery { after: Some(offset), read_only: None };
    let mut second = client.attach_terminal(&p.id, &after).await.unwrap();
    let Some(Ok(TerminalFrame::Attached { offset: at, missed: 0, .. })) = second.next_frame().await else {
        panic!("the reattach starts with its offset")
    };
    assert_eq!(at, offset);
    let (rest, code) = read_terminal(&mut second, |_| false).await;
    assert_eq!(code, Some(0));

    let whole = client.process_output_bytes(&p.id, &OutputQuery::default()).await.unwrap();
    assert_eq!(whole.start, 0);
    let mut joined = seen.clone();
    joined.extend_from_slice(&rest);
    assert_eq!(String::from_utf8_lossy(&joined), String::from_utf8_lossy(&whole.bytes));
    assert!(contains(&rest, "line-300"));
}

#[tokio::test]
async fn two_attached_clients_see_the_same_bytes() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let p = client
        .create_process(&script("sleep 0.5; i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo two-$i; done"))
        .await
        .unwrap();
    let query = TerminalQuery::default();
    let mut a = client.attach_terminal(&p.id, &query).await.unwrap();
    let mut b = client.attach_terminal(&p.id, &query).await.unwrap();
    let ((seen_a, code_a), (seen_b, code_b)) =
        tokio::join!(read_terminal(&mut a, |_| false), read_terminal(&mut b, |_| false));
    assert_eq!((code_a, code_b), (Some(0), Some(0)));
    assert_eq!(seen_a, seen_b);
    assert!(contains(&seen_a, "two-200"));
}

/// `tether ARGS` aimed at `server` through TETHER_URL/TETHER_TOKEN.
fn client_command(server: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(tether_bin());
    server::scrub_env_tokio(&mut cmd);
    cmd.args(args)
        .env("TETHER_URL", server.endpoint(""))
        .env("TETHER_TOKEN", server.token().unwrap_or_default())
        .env("TERM", "xterm-256color")
        .env("NO_COLOR", "1")
        .env_remove("SPRITES_TOKEN")
        .kill_on_drop(true);
    cmd
}

async fn output(mut cmd: tokio::process::Command) -> (i32, String, String) {
    cmd.stdin(Stdio::null());
    let out = tokio::time::timeout(SHOWN, cmd.output()).await.expect("the command ends").expect("run tether");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn process_id_after(text: &str, marker: &str) -> String {
    let at = text.find(marker).unwrap_or_else(|| panic!("{marker:?} not in:\n{text}")) + marker.len();
    text[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
}

#[tokio::test]
async fn tether_sh_detaches_and_reattaches_with_the_history() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let mut pty = Pty::spawn(client_command(&server, &["sh", "bash", "--norc", "--noprofile", "-i"]));
    pty.type_in(b"echo hello-$((6*7))\r");
    let shown = pty.wait_for("hello-42", SHOWN).await;
    // The local terminal's size (the test PTY is 120x40) is the process's.
    pty.type_in(b"stty size\r");
    pty.wait_for_from(shown, "40 120", SHOWN).await;
    pty.type_in(b"\x1cd");
    pty.wait_for("reattach with: tether sh --attach prc_", SHOWN).await;
    assert_eq!(pty.wait_exit(SHOWN).await.code(), Some(0), "{}", pty.text());
    let id = process_id_after(&pty.text(), "tether sh --attach ");

    // It went on: input through the API, then a reattach shows all of it.
    client.send_process_text(&id, "echo while-$((1+1))-away\r").await.unwrap();
    wait_output(&client, &id, "while-2-away").await;
    let mut pty = Pty::spawn(client_command(&server, &["sh", "--attach", &id]));
    let history = pty.wait_for("hello-42", SHOWN).await;
    pty.wait_for_from(history, "while-2-away", SHOWN).await;
    pty.type_in(b"exit 3\r");
    pty.wait_for(&format!("[{id} exited with code 3]"), SHOWN).await;
    assert_eq!(pty.wait_exit(SHOWN).await.code(), Some(3), "{}", pty.text());

    // Through a pipe (no terminal): input goes in, the exit code comes out.
    let mut cmd = client_command(&server, &["sh", "sh", "-c", "read x; echo got-$x; exit 5"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use tokio::io::AsyncWriteExt;
    child.stdin.take().unwrap().write_all(b"piped\n").await.unwrap();
    let out = tokio::time::timeout(SHOWN, child.wait_with_output()).await.unwrap().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("got-piped"), "{out:?}");

    // `tether ps` lists both.
    let (code, out, err) = output(client_command(&server, &["ps"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id) && out.contains("exited 3"), "{out}");
}

#[tokio::test]
async fn tether_ports_lists_a_listening_port_and_makes_a_preview_link() {
    let server =
        TestServer::start_with(ServerOptions { ports_poll_ms: Some(100), ..ServerOptions::with_token(TOKEN) }).await;
    let client = server.client();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let body = CreateProcess {
        command: "python3".into(),
        args: ["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"].map(String::from).to_vec(),
        ..Default::default()
    };
    let p = client.create_process(&body).await.unwrap();
    let deadline = tokio::time::Instant::now() + SHOWN;
    let listed = loop {
        let ports = client.ports().await.unwrap();
        if let Some(found) = ports.ports.into_iter().find(|q| q.port == port) {
            break found;
        }
        assert!(tokio::time::Instant::now() < deadline, "port {port} was never listed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(listed.proxy_path, format!("/v1/ports/{port}/proxy/"));

    let (code, out, err) = output(client_command(&server, &["ports"])).await;
    assert_eq!(code, 0, "{err}");
    let line = out.lines().find(|l| l.starts_with(&port.to_string())).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains(&server.endpoint(&format!("/v1/ports/{port}/proxy/"))), "{line}");
    if listed.process_id.is_some() {
        assert!(line.contains(&p.id), "{line}");
    }
    let (code, out, err) = output(client_command(&server, &["ports", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("\"port\": {port}")), "{out}");

    let (code, out, err) = output(client_command(&server, &["ports", "link", &port.to_string(), "--ttl", "60"])).await;
    assert_eq!(code, 0, "{err}");
    let url = out.trim();
    assert!(url.starts_with(&server.endpoint("/")) && !url.contains(TOKEN), "{url}");

    client.delete_process(&p.id).await.unwrap();
}

/// The terminal goes wherever the client's requests go: here through the
/// Sprites TCP proxy's relay. A cut tunnel is a lost terminal, and a
/// reattach from its offset goes on without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminal_through_the_sprites_proxy_survives_a_cut_tunnel() {
    use tether_e2e::remote::FakeSpritesProxy;
    use tether_sdk::sprites::SpritesProxy;
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let proxy = FakeSpritesProxy::start("my-sprite", "sprites-token", None).await;
    let client = Client::through_sprites_proxy(
        SpritesProxy::new("my-sprite", "sprites-token")
            .with_api_url(&proxy.url)
            .with_target("localhost", server.port()),
    )
    .unwrap()
    .with_token(TOKEN);
    let p = client
        .create_process(&script("i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo cut-$i; sleep 0.01; done"))
        .await
        .unwrap();
    let mut first = client.attach_terminal(&p.id, &TerminalQuery::default()).await.unwrap();
    let (mut seen, _) = read_terminal(&mut first, |b| contains(b, "cut-10\n")).await;
    proxy.cut_all();
    // Frames already on their way may still come; then the loss.
    loop {
        match tokio::time::timeout(SHOWN, first.next_frame()).await.expect("the cut is seen") {
            Some(Ok(TerminalFrame::Output { bytes, .. })) => seen.extend_from_slice(&bytes),
            Some(Err(e)) => {
                assert!(matches!(e, tether_sdk::Error::WebSocket(_)), "{e:?}");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(first.offset(), seen.len() as u64);
    let after = TerminalQuery { after: Some(first.offset()), read_only: None };
    let mut second = client.attach_terminal(&p.id, &after).await.unwrap();
    let (rest, code) = read_terminal(&mut second, |_| false).await;
    assert_eq!(code, Some(0));
    seen.extend_from_slice(&rest);
    let whole = client.process_output_bytes(&p.id, &OutputQuery::default()).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&seen), String::from_utf8_lossy(&whole.bytes));
}

/// A session's agent PTY, read-only, through the same helper.
#[tokio::test]
async fn a_session_terminal_attaches_read_only() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let session =
        client.create_session(&tether_sdk::CreateSession { agent: "mock".into(), ..Default::default() }).await.unwrap();
    let mut terminal = client.session_terminal(&session.id, &TerminalQuery::default()).await.unwrap();
    let first = tokio::time::timeout(SHOWN, terminal.next_frame()).await.unwrap().unwrap().unwrap();
    assert!(matches!(first, TerminalFrame::Attached { read_only: true, .. }), "{first:?}");
    let err = client.session_terminal("ses_nope", &TerminalQuery::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err:?}");
    let err = client.attach_terminal("prc_nope", &TerminalQuery::default()).await.unwrap_err();
    assert_eq!(err.status(), Some(404), "{err:?}");
}
