//! The terminal client (`tether run|sessions|show|send|events|rm`) of the
//! real binary, against a real server: on a PTY like a person at a keyboard
//! (typed answers, Ctrl-C), and through pipes like a script (JSON lines,
//! exit codes, no colour).

use std::process::Stdio;
use std::time::Duration;

use tether_e2e::events::*;
use tether_e2e::pty::Pty;
use tether_e2e::remote::FakeSpritesProxy;
use tether_e2e::*;
use tether_sdk::{Event, EventBody, SessionStatus, StopReason};
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "terminal-token";
const SHOWN: Duration = Duration::from_secs(30);

/// `tether ARGS` aimed at `server` through TETHER_URL/TETHER_TOKEN.
fn client_command(server: &TestServer, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(tether_bin());
    server::scrub_env_tokio(&mut cmd);
    cmd.args(args)
        .env("TETHER_URL", server.endpoint(""))
        .env("TETHER_TOKEN", server.token().unwrap_or_default())
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("SPRITES_TOKEN")
        .kill_on_drop(true);
    cmd
}

/// Runs a client command through pipes: (exit code, stdout, stderr).
async fn output(mut cmd: tokio::process::Command) -> (i32, String, String) {
    cmd.stdin(Stdio::null());
    let out = tokio::time::timeout(SHOWN, cmd.output()).await.expect("the command ends").expect("run tether");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn session_id_shown(screen: &str) -> String {
    let at = screen.find("session ses_").expect("the session id is shown") + "session ".len();
    screen[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

#[tokio::test]
async fn run_streams_the_turn_and_asks_permissions_and_questions_on_the_terminal() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();

    // A permission: the prompt shows what is asked; `y` typed on the terminal allows it.
    let mut pty = Pty::spawn(client_command(&server, &["run", "--agent", "mock", "[mock:permission] please"]));
    let asked = pty.wait_for("? permission: Write", SHOWN).await;
    pty.wait_for_from(asked, "allow? [y]es / [a]lways / [n]o: ", SHOWN).await;
    let session = session_id_shown(&pty.text());
    assert_eq!(client.get_session(&session).await.unwrap().status, SessionStatus::Waiting);
    pty.type_in(b"y\r");
    pty.wait_for_from(asked, "I wrote the file.", SHOWN).await;
    assert!(pty.wait_exit(SHOWN).await.success(), "{}", pty.text());
    assert!(server.workspace().join("mock-permission.txt").is_file());
    let events = read_all(&client, &session).await;
    let resolved: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::PermissionResolved(r) => Some(r.decision),
            _ => None,
        })
        .collect();
    assert_eq!(resolved, [tether_sdk::Decision::AllowOnce]);
    // Colour on a terminal: the prompt is bold, the diff's added line green.
    assert!(pty.text().contains("\x1b[1mallow?"), "{:?}", pty.text());
    assert!(pty.text().contains("\x1b[32m+written by the mock agent"), "{:?}", pty.text());
    // The diff is shown once: with the permission, where it is decided on, not again when the edit is done.
    assert_eq!(pty.text().matches("+written by the mock agent").count(), 1, "{}", pty.text());
    assert_eq!(pty.text().matches("+++ ").count(), 1, "{}", pty.text());
    let allowed = pty.wait_for_from(asked, "allowed once", SHOWN).await;
    pty.wait_for_from(allowed, "● Write", SHOWN).await;

    // A question in the same session (--session): a wrong answer is asked again, `2` picks Blue.
    let mut pty = Pty::spawn(client_command(&server, &["run", "--session", &session, "[mock:question]"]));
    let asked = pty.wait_for("  2. Blue", SHOWN).await;
    pty.wait_for_from(asked, "Which colour? Type a number, or your own answer: ", SHOWN).await;
    pty.type_in(b"7\r");
    let again = pty.wait_for_from(asked, "there is no choice 7", SHOWN).await;
    pty.wait_for_from(again, "Type a number, or your own answer: ", SHOWN).await;
    pty.type_in(b"2\r");
    // The question and the answer chosen, as a sentence; then the agent goes on.
    let answered = pty.wait_for_from(again, "Which colour? You answered \"Blue\".", SHOWN).await;
    pty.wait_for_from(answered, "You chose: Blue", SHOWN).await;
    assert!(pty.wait_exit(SHOWN).await.success(), "{}", pty.text());
    // Not the question tool's input or output: no JSON, whole or cut.
    let shown = pty.text();
    assert!(!shown.contains("{\"") && !shown.contains("\":"), "{shown}");
    assert!(!shown.contains("AskUserQuestion") && !shown.contains("User has answered"), "{shown}");

    // Text is shown as it streams: the first ticks of a slow turn are on the
    // terminal while the turn is still running.
    let mut pty = Pty::spawn(client_command(&server, &["run", "--session", &session, "[mock:slow]"]));
    pty.wait_for("tick 2 ", SHOWN).await;
    assert_eq!(client.get_session(&session).await.unwrap().status, SessionStatus::Running);
    assert!(!pty.text().contains("tick 99"), "the whole turn was shown at once");
    pty.wait_for("tick 99", SHOWN).await;
    assert!(pty.wait_exit(SHOWN).await.success(), "{}", pty.text());
}

#[tokio::test]
async fn ctrl_c_interrupts_the_turn_and_twice_quits() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();

    let mut pty = Pty::spawn(client_command(&server, &["run", "--agent", "mock", "[mock:slow]"]));
    pty.wait_for("tick 1 ", SHOWN).await;
    let session = session_id_shown(&pty.text());
    pty.type_in(b"\x03");
    let at = pty.wait_for("interrupting the turn", SHOWN).await;
    pty.wait_for_from(at, "interrupted", SHOWN).await;
    let status = pty.wait_exit(SHOWN).await;
    assert_eq!(status.code(), Some(130), "{}", pty.text());
    let events = read_all(&client, &session).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::Interrupted);
    assert!(!pty.text().contains("tick 99"));
    // The session lives on for the next turn.
    assert_eq!(client.get_session(&session).await.unwrap().status, SessionStatus::Idle);

    // Twice: the client quits at the second Ctrl-C whatever the turn does.
    let mut pty = Pty::spawn(client_command(&server, &["run", "--session", &session, "[mock:slow]"]));
    pty.wait_for("tick 1 ", SHOWN).await;
    pty.type_in(b"\x03");
    pty.wait_for("interrupting the turn", SHOWN).await;
    pty.type_in(b"\x03");
    assert_eq!(pty.wait_exit(SHOWN).await.code(), Some(130), "{}", pty.text());
}

#[tokio::test]
async fn run_json_prints_the_events_as_json_lines_without_colour() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let (code, stdout, stderr) =
        output(client_command(&server, &["run", "--agent", "mock", "--json", "--rm", "hello [mock:tool]"])).await;
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<Event> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not an event: {e}: {l}"))).collect();
    assert_contiguous(&events, 1);
    assert_eq!(events.last().map(Event::event_type), Some("turn.completed"));
    assert_eq!(final_text(&events), "The command printed: mock-tool-output");
    // The same events the server stores; --rm deleted the session after the turn.
    let stored = read_all(&server.client(), &events[0].session_id).await;
    assert_eq!(events, stored[..events.len()]);
    assert_eq!(stored.last().map(Event::event_type), Some("session.ended"));
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'));

    // The readable form through a pipe has no colour either.
    let (code, stdout, _) = output(client_command(&server, &["run", "--agent", "mock", "hello [mock:tool]"])).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("● Bash echo mock-tool-output"), "{stdout}");
    assert!(stdout.contains("│ mock-tool-output"), "{stdout}");
    assert!(!stdout.contains("{\""), "{stdout}");
    assert!(!stdout.contains('\x1b'), "{stdout:?}");

    // A failing turn exits 1.
    let (code, _, stderr) = output(client_command(&server, &["run", "--agent", "mock", "[mock:error]"])).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("error"), "{stderr}");
}

#[tokio::test]
async fn events_follow_resumes_after_a_server_restart() {
    let mut server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let session = mock_session(&client).await;
    client.send_text(&session.id, "first").await.unwrap();
    let mut stream = client.session_events(&session.id, None);
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;

    let mut follow = client_command(&server, &["events", &session.id, "-f"]);
    follow.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    let mut child = follow.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Event> = Vec::new();
    let mut read_until = async |seen: &mut Vec<Event>, done: &dyn Fn(&[Event]) -> bool| {
        tokio::time::timeout(TURN_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                seen.push(serde_json::from_str(&line).unwrap());
                if done(seen) {
                    return;
                }
            }
            panic!("tether events -f ended early");
        })
        .await
        .expect("the events are shown");
    };
    read_until(&mut seen, &|s| turns_completed(s).len() == 1).await;

    // The server restarts (same port); the follower reconnects after its last event.
    server.restart_same_port().await;
    client.send_text(&session.id, "second").await.unwrap();
    read_until(&mut seen, &|s| turns_completed(s).len() == 2).await;
    // Deleting the session ends the stream and the command, with success.
    client.delete_session(&session.id, false).await.unwrap();
    read_until(&mut seen, &|s| s.last().is_some_and(|e| e.event_type() == "session.ended")).await;
    let status = tokio::time::timeout(SHOWN, child.wait()).await.unwrap().unwrap();
    assert!(status.success());

    assert_contiguous(&seen, 1);
    assert_eq!(seen, read_all(&client, &session.id).await);
    assert_eq!(turns_completed(&seen).len(), 2);

    // Without -f: the stored events after --after, then the end.
    let (code, stdout, _) = output(client_command(&server, &["events", &session.id, "--after", "3"])).await;
    assert_eq!(code, 0);
    let paged: Vec<Event> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(paged, seen[3..]);
}

#[tokio::test]
async fn the_other_commands_and_their_exit_codes() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;
    let client = server.client();
    let session = mock_session(&client).await;

    let (code, stdout, _) = output(client_command(&server, &["sessions"])).await;
    assert_eq!(code, 0);
    assert!(stdout.starts_with("ID "), "{stdout}");
    assert!(stdout.contains(&session.id) && stdout.contains("mock"), "{stdout}");
    let (_, json, _) = output(client_command(&server, &["sessions", "--json"])).await;
    let list: tether_sdk::SessionList = serde_json::from_str(&json).unwrap();
    assert_eq!(list.sessions.len(), 1);

    let (code, stdout, _) = output(client_command(&server, &["send", &session.id, "hello"])).await;
    assert_eq!(code, 0);
    let turn_id = stdout.trim();
    assert!(turn_id.starts_with("trn_"), "{stdout}");
    let mut stream = client.session_events(&session.id, None);
    let turn = wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    assert_eq!(the_turn_completed(&turn).turn_id, turn_id);

    let (code, stdout, _) = output(client_command(&server, &["show", &session.id])).await;
    assert_eq!(code, 0);
    assert!(stdout.contains("status") && stdout.contains("idle"), "{stdout}");

    // Refusals by the server exit 3 with its problem on stderr.
    let (code, _, stderr) = output(client_command(&server, &["show", "ses_nope"])).await;
    assert_eq!(code, 3);
    assert!(stderr.contains("session_not_found"), "{stderr}");
    let mut wrong = client_command(&server, &["sessions"]);
    wrong.env("TETHER_TOKEN", "wrong");
    let (code, _, stderr) = output(wrong).await;
    assert_eq!(code, 3);
    assert!(stderr.contains("refused this token"), "{stderr}");
    // Bad usage exits 2, an unreachable server 4.
    assert_eq!(output(client_command(&server, &["sessions", "--status", "sleepy"])).await.0, 2);
    assert_eq!(output(client_command(&server, &["show"])).await.0, 2);
    let mut nowhere = client_command(&server, &["sessions"]);
    nowhere.env("TETHER_URL", "http://127.0.0.1:1");
    let (code, _, stderr) = output(nowhere).await;
    assert_eq!(code, 4);
    assert!(stderr.contains("cannot reach tether at http://127.0.0.1:1: nothing is listening there"), "{stderr}");

    // Through the Sprites TCP proxy with --sprite.
    let proxy = FakeSpritesProxy::start("my-sprite", "sprites-secret", None).await;
    let port = server.port().to_string();
    let mut via = client_command(
        &server,
        &["sessions", "--sprite", "my-sprite", "--sprites-api", &proxy.url, "--sprite-port", &port],
    );
    via.env("TETHER_URL", "http://unused.invalid").env("SPRITES_TOKEN", "sprites-secret");
    let (code, stdout, stderr) = output(via).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&session.id), "{stdout}");
    assert!(proxy.connected() >= 1);

    let (code, stdout, _) = output(client_command(&server, &["rm", &session.id])).await;
    assert_eq!((code, stdout.trim()), (0, format!("deleted {}", session.id).as_str()));
    assert_eq!(client.get_session(&session.id).await.unwrap().status, SessionStatus::Ended);
    // A message to a deleted session is refused.
    assert_eq!(output(client_command(&server, &["send", &session.id, "hi"])).await.0, 3);
}

/// A port nobody listens on: bound, read back, released.
/// A loopback port nothing listens on: 1 (tcpmux) is never served here,
/// unlike a port freed by a test, which another test may bind meanwhile.
fn free_port() -> u16 {
    let port = 1;
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "something listens on 127.0.0.1:{port}");
    port
}

/// `tether ARGS` on a terminal; returns what it showed (waiting for `needle`) and its exit code.
async fn on_terminal(cmd: tokio::process::Command, needle: &str) -> (String, Option<i32>) {
    let mut pty = Pty::spawn(cmd);
    pty.wait_for(needle, SHOWN).await;
    let code = pty.wait_exit(SHOWN).await.code();
    (pty.text(), code)
}

#[tokio::test]
async fn an_unreachable_server_and_a_missing_token_are_explained_in_one_sentence() {
    let server = TestServer::start_with(ServerOptions::with_token(TOKEN)).await;

    // Nothing listens at the URL: it is named, with the fix.
    let url = format!("http://127.0.0.1:{}", free_port());
    for args in [&["sessions"][..], &["run", "--agent", "mock", "hello"]] {
        let mut cmd = client_command(&server, args);
        cmd.env("TETHER_URL", &url);
        let sentence = format!(
            "tether: cannot reach tether at {url}: nothing is listening there. Start it with ./scripts/serve (or \
             tether serve), or pass --url / TETHER_URL."
        );
        let (shown, code) = on_terminal(cmd, &sentence).await;
        assert_eq!(code, Some(4), "{shown}");
        assert!(!shown.contains("os error") && !shown.contains("tcp connect"), "{shown}");
    }

    // A name that does not resolve, and TLS asked of a server that speaks plain HTTP.
    let mut cmd = client_command(&server, &["sessions"]);
    cmd.env("TETHER_URL", "http://tether.invalid:7419");
    let (shown, code) = on_terminal(cmd, "cannot reach tether at http://tether.invalid:7419: the name").await;
    assert!(shown.contains("tether.invalid does not resolve. Check the host name"), "{shown}");
    assert_eq!(code, Some(4), "{shown}");
    let https = server.endpoint("").replace("http://", "https://");
    let mut cmd = client_command(&server, &["sessions"]);
    cmd.env("TETHER_URL", &https);
    let (shown, code) = on_terminal(cmd, &format!("cannot reach tether at {https}: the TLS handshake failed")).await;
    assert!(shown.contains("Use http:// if the server does not speak TLS"), "{shown}");
    assert_eq!(code, Some(4), "{shown}");

    // The server wants a token: none given, then a wrong one. Both exit 3.
    let mut cmd = client_command(&server, &["sessions"]);
    cmd.env_remove("TETHER_TOKEN");
    let needs = format!(
        "tether: the server at {} needs a token: pass --token (or --token-file) or set TETHER_TOKEN.",
        server.endpoint("")
    );
    let (shown, code) = on_terminal(cmd, &needs).await;
    assert_eq!(code, Some(3), "{shown}");
    let mut cmd = client_command(&server, &["run", "--agent", "mock", "hello"]);
    cmd.env("TETHER_TOKEN", "not-the-token");
    let refused =
        format!("tether: the server at {} refused this token: pass the token it was started with", server.endpoint(""));
    let (shown, code) = on_terminal(cmd, &refused).await;
    assert_eq!(code, Some(3), "{shown}");
}
