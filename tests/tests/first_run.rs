//! The first hour of a new user, as the README leads it: the server started
//! by `./scripts/serve` (relative paths, the default data dir shared with
//! `tether agents install`), per-session MCP servers and skills that really
//! reach the agent whatever directory tether was started from, nothing of
//! tether's written into the workspace, `/` leading to the inspector, a
//! session's stream that ends with the session, and a session list that
//! says what each session is.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tether_e2e::events::final_text;
use tether_e2e::http::RawSse;
use tether_e2e::mcp::McpLog;
use tether_e2e::procs::cmdline;
use tether_e2e::rig::{install_skill, stdio_mcp_server, Rig};
use tether_e2e::server::{scrub_env, tether_bin, workspace_root};
use tether_e2e::ws::{RawWs, WsItem};
use tether_e2e::*;
use tether_sdk::{CreateSession, Decision, McpServer, PermissionMode};

const WAIT: Duration = Duration::from_secs(20);

/// Every file and folder under `dir`, relative.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().to_path_buf());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Sends `text` and returns its turn's events (the cursor read before sending).
async fn turn(client: &tether_sdk::Client, id: &str, text: &str) -> Vec<tether_sdk::Event> {
    let after = client.get_session(id).await.unwrap().last_seq;
    client.send_text(id, text).await.unwrap();
    collect_turn(client, id, after).await
}

/// Options of a server started in `launch_dir` with the relative `--data-dir data`.
fn relative_data_dir(launch_dir: &Path) -> ServerOptions {
    ServerOptions { data_dir: Some("data".into()), cwd: Some(launch_dir.to_path_buf()), ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_data_dir_from_another_cwd_still_gives_the_mock_its_mcp_server_and_skill() {
    let launch = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(relative_data_dir(launch.path())).await;
    let client = server.client();
    let info = client.info().await.unwrap();
    assert_eq!(Path::new(&info.data_dir), launch.path().canonicalize().unwrap().join("data"), "{info:?}");

    install_skill(&client, "release-notes", "Write release notes", "BODY").await;
    let own = McpServer::Stdio { command: "/bin/true".into(), args: vec![], env: BTreeMap::new(), cwd: None };
    let create = CreateSession {
        agent: "mock".into(),
        mcp_servers: BTreeMap::from([("own".to_string(), own)]),
        skills: vec!["release-notes".into()],
        ..Default::default()
    };
    let s = client.create_session(&create).await.unwrap();
    let events = turn(&client, &s.id, "[mock:skills]").await;
    assert_eq!(final_text(&events), "MCP servers: own; skills: release-notes", "{}", events::describe(&events));
    // A second turn: the mock's own state (kept between its turns) works too.
    turn(&client, &s.id, "[mock:text] again").await;

    let found = tree(server.workspace());
    assert!(found.is_empty(), "tether wrote into the workspace: {found:?}");
    // The log is a file here, not a terminal: plain text, no colour codes.
    let log = std::fs::read_to_string(server.stderr_log()).unwrap();
    assert!(log.contains("listening") && !log.contains('\u{1b}'), "{log}");
    assert!(server.data_dir().join("sessions").join(&s.id).is_dir(), "the session's folder is in the data dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_gets_absolute_mcp_config_and_plugin_dir_from_a_relative_data_dir() {
    let launch = tempfile::tempdir().unwrap();
    let rig: Rig<ScriptedAnthropic> =
        Rig::start_with("claude", ScriptedAnthropic::start().await, claude_env, relative_data_dir(launch.path())).await;
    let client = rig.server.client();
    install_skill(&client, "tester-skill", "Checks the frobnicator before every release", "FROBNICATE-42").await;
    let logs = tempfile::tempdir().unwrap();
    let log = McpLog::new(logs.path().join("calls.jsonl"));
    let servers = BTreeMap::from([("tt".to_string(), stdio_mcp_server(log.path(), "stdio", "s3cret"))]);
    let s = rig.session_with(PermissionMode::Bypass, servers, vec!["tester-skill".into()]).await;

    let (events, _) = rig.turn_answering(&s.id, "[claude:mcp:tt:echo] hello", Decision::AllowOnce).await;
    assert_eq!(final_text(&events), "MCP said: echo: hello", "{}", events::describe(&events));
    assert_eq!(log.calls_of("echo").len(), 1);

    // The paths on the CLI's command line are absolute and inside the data dir.
    let data = rig.server.data_dir().canonicalize().unwrap();
    let pids = processes_of_session(&s.id);
    let line = pids.iter().map(|p| cmdline(*p)).find(|c| c.contains("--mcp-config")).unwrap_or_else(|| {
        panic!("no process of the session has --mcp-config: {:?}", pids.iter().map(|p| cmdline(*p)).collect::<Vec<_>>())
    });
    let args: Vec<&str> = line.split(['\0', ' ']).collect();
    for flag in ["--mcp-config", "--plugin-dir"] {
        let at = args.iter().position(|a| *a == flag).unwrap_or_else(|| panic!("no {flag} in {line:?}"));
        let path = Path::new(args[at + 1]);
        assert!(path.is_absolute() && path.starts_with(&data), "{flag} {}", path.display());
        assert!(path.exists(), "{flag} {} does not exist", path.display());
    }

    let (events, _) = rig.turn_answering(&s.id, "[claude:skill:tester-skill] go", Decision::AllowOnce).await;
    let listed = rig.model.requests().iter().any(|r| {
        let t = r.to_string();
        t.contains("tether:tester-skill") && t.contains("Checks the frobnicator before every release")
    });
    assert!(listed, "no model request lists the skill: {}", events::describe(&events));
    let found = tree(rig.server.workspace());
    assert!(
        found.iter().all(|p| !p.to_string_lossy().contains("tether") && !p.starts_with("data")),
        "tether wrote into the workspace: {found:?}"
    );
}

/// `./scripts/serve` started as the README says (with `TETHER_BIN`, so the
/// test binary is used instead of a release build), killed on drop.
struct Serve {
    child: Child,
    url: String,
    /// Stdout after the address line.
    rest: std::sync::mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Serve {
    fn start(home: &Path, cwd: &Path) -> Serve {
        let stderr = home.join("serve.stderr");
        let mut cmd = Command::new(workspace_root().join("scripts/serve"));
        scrub_env(&mut cmd);
        cmd.current_dir(cwd)
            .args(["--port", "0"])
            .env("TETHER_BIN", tether_bin())
            .env("HOME", home)
            .env_remove("XDG_DATA_HOME")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let mut child = cmd.spawn().expect("run scripts/serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // A blocking wait: this worker thread gives its tasks to the other first.
        let first = tokio::task::block_in_place(|| rx.recv_timeout(WAIT)).unwrap_or_else(|e| {
            panic!("scripts/serve printed no address ({e}): {}", std::fs::read_to_string(&stderr).unwrap_or_default())
        });
        let url = first.rsplit_once(" listening on ").map(|(_, u)| u.to_string()).expect("the address line");
        Serve { child, url, rest: rx, stderr }
    }
}

impl Serve {
    /// Waits until `/v1/health` answers 200 (503 `starting` while the store opens).
    async fn ready(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ok = reqwest::get(format!("{}/v1/health", self.url)).await.is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "scripts/serve's server was not ready within {WAIT:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_server_lists_what_tether_agents_install_put_in_the_one_default_data_dir() {
    // A user's HOME with no TETHER_DATA_DIR: every command uses ~/.local/share/tether.
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join(".local/share/tether");
    // Where `tether agents install claude` puts the CLI (a stub that answers --version).
    let bin = data.join("agents/claude/node_modules/.bin/claude");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "#!/bin/sh\necho '9.8.7 (Claude Code)'\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    let mut list = Command::new(tether_bin());
    scrub_env(&mut list);
    let out = list.args(["agents", "list"]).env("HOME", home.path()).env_remove("XDG_DATA_HOME").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let claude = text.lines().find(|l| l.starts_with("claude")).unwrap_or_default();
    assert!(claude.contains(" installed") && claude.contains("9.8.7"), "tether agents list: {text}");
    // A table: every line's state starts in the same column, however long the id (`opencode-acp`).
    let starts: std::collections::BTreeSet<Option<usize>> =
        text.lines().map(|l| l.find("not installed").or_else(|| l.find("installed"))).collect();
    assert_eq!(starts.len(), 1, "tether agents list: {text}");
    assert!(text.lines().count() >= 9 && !starts.contains(&None), "tether agents list: {text}");

    // The README's command, from a second terminal's cwd.
    let elsewhere = tempfile::tempdir().unwrap();
    let serve = Serve::start(home.path(), elsewhere.path());
    serve.ready().await;
    let second = tokio::task::block_in_place(|| serve.rest.recv_timeout(WAIT)).expect("a second stdout line");
    assert_eq!(second, format!("inspector: {}/ui/", serve.url));
    let stderr = std::fs::read_to_string(&serve.stderr).unwrap();
    assert!(stderr.contains("export PATH="), "scripts/serve says how to put tether on PATH: {stderr}");

    let client = tether_sdk::Client::new(serve.url.clone());
    let agents = client.agents().await.unwrap();
    let claude = agents.agents.iter().find(|a| a.id == "claude").unwrap();
    assert!(claude.installed, "{claude:?}");
    assert_eq!(claude.version.as_deref(), Some("9.8.7"));
    assert_eq!(claude.path.as_deref().map(Path::new), Some(bin.as_path()));
    assert_eq!(Path::new(&client.info().await.unwrap().data_dir), data.canonicalize().unwrap());

    // A person opening the server's address lands in the inspector.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let root = http.get(format!("{}/", serve.url)).send().await.unwrap();
    assert_eq!(root.status().as_u16(), 307);
    assert_eq!(root.headers()["location"], "/ui/");
    let page = reqwest::get(format!("{}/", serve.url)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("<title>tether</title>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_stream_ends_once_it_has_sent_session_ended() {
    let server = TestServer::start().await;
    let client = server.client();
    let s = mock_session(&client).await;
    let url = server.endpoint(&format!("/v1/sessions/{}/events/stream", s.id));
    let http = reqwest::Client::new();
    let mut sse = RawSse::connect(http.get(&url)).await;
    let mut ws = RawWs::connect(&server, &format!("/v1/sessions/{}/events/ws", s.id)).await;
    turn(&client, &s.id, "hello").await;
    client.delete_session(&s.id, false).await.unwrap();

    // SSE: every event through session.ended, a stream.ended frame, then the end of the body.
    let mut frames = Vec::new();
    while let Some(f) = sse.next_frame(WAIT).await {
        frames.push(f);
    }
    let last = frames.last().expect("frames");
    assert_eq!(
        last.event.as_deref(),
        Some("stream.ended"),
        "{:?}",
        frames.iter().map(|f| &f.event).collect::<Vec<_>>()
    );
    let ended = &frames[frames.len() - 2];
    assert_eq!(ended.event_type(), "session.ended");
    assert_eq!(last.data["last_seq"], ended.seq());

    // WebSocket: the same, then a normal close.
    let mut got = Vec::new();
    let close = loop {
        match ws.next(WAIT).await {
            WsItem::Event(v) => got.push(v),
            WsItem::Control(c) => got.push(c),
            WsItem::Ping => {}
            WsItem::Close(code, reason) => break (code, reason),
            WsItem::End => panic!("the WebSocket ended without a close frame"),
        }
    };
    assert_eq!(close.0, 1000, "{close:?}");
    assert_eq!(got.last().unwrap()["type"], "stream.ended");
    assert_eq!(got[got.len() - 2]["type"], "session.ended");

    // Resuming after the last event: stream.ended at once, nothing else.
    let resumed = http.get(&url).header("last-event-id", ended.seq().to_string());
    let mut sse = RawSse::connect(resumed).await;
    let only = sse.next_frame(WAIT).await.expect("a frame");
    assert_eq!(only.event.as_deref(), Some("stream.ended"));
    assert!(sse.next_frame(WAIT).await.is_none());
    // From the start: the whole history, then the end.
    let mut stream = client.session_events(&s.id, Some(0));
    let mut n = 0;
    while let Some(e) = tokio::time::timeout(WAIT, stream.next_event()).await.expect("the SDK stream ends") {
        e.unwrap();
        n += 1;
    }
    assert_eq!(n, ended.seq(), "the SDK stream yields every event, then ends");
    // The global stream goes on.
    let mut all = RawSse::connect(http.get(server.endpoint("/v1/events/stream?after=0"))).await;
    let frames = all.read_until(WAIT, |f| f.gseq(), |f| f.event_type() == "session.ended").await;
    assert!(!frames.is_empty());
    let other = mock_session(&client).await;
    let more = all.read_until(WAIT, |f| f.gseq(), |f| f.data["session_id"] == other.id.as_str()).await;
    assert!(!more.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_list_says_what_each_session_is_and_a_restart_keeps_its_last_activity() {
    let mut server = TestServer::start().await;
    let client = server.client();
    let s = mock_session(&client).await;
    let fresh = client.get_session(&s.id).await.unwrap();
    assert_eq!(fresh.summary, Default::default(), "a new session has an empty summary");

    let long = format!("  \n  Fix the flaky login test {}\nsecond line", "x".repeat(300));
    turn(&client, &s.id, &long).await;
    let events = turn(&client, &s.id, "[mock:text] and then").await;
    let answer = final_text(&events);

    let listed = client.list_sessions(&Default::default()).await.unwrap();
    let row = listed.sessions.iter().find(|x| x.id == s.id).unwrap();
    let first = row.summary.first_prompt.as_deref().unwrap();
    assert!(first.starts_with("Fix the flaky login test xxx") && first.ends_with('…'), "{first:?}");
    assert_eq!(first.chars().count(), 201, "200 characters and the ellipsis");
    let last_line = answer.lines().rev().find(|l| !l.trim().is_empty()).unwrap().trim();
    assert_eq!(row.summary.last_text.as_deref(), Some(last_line));
    assert_eq!(row.summary.turns, 2);
    // The mock reports usage on every turn: the totals are the sums.
    let usage: Vec<_> = read_all(&client, &s.id)
        .await
        .into_iter()
        .filter_map(|e| match e.body {
            tether_sdk::EventBody::TurnCompleted(t) => t.usage,
            _ => None,
        })
        .collect();
    assert_eq!(usage.len(), 2);
    let sum = |f: fn(&tether_sdk::Usage) -> Option<u64>| usage.iter().filter_map(f).sum::<u64>();
    assert_eq!(row.summary.input_tokens, sum(|u| u.input_tokens));
    assert_eq!(row.summary.output_tokens, sum(|u| u.output_tokens));
    assert!(row.summary.input_tokens > 0);
    let cost: f64 = usage.iter().filter_map(|u| u.cost_usd).sum();
    assert!((row.summary.cost_usd.unwrap_or(-1.0) - cost).abs() < 1e-12, "{:?} vs {cost}", row.summary.cost_usd);

    // A clean restart (the agent is stopped, the session recovered) and a
    // kill -9 leave the last activity where it was.
    let before = client.get_session(&s.id).await.unwrap();
    server.restart_same_port().await;
    let after = client.get_session(&s.id).await.unwrap();
    assert!(after.last_seq >= before.last_seq);
    assert_eq!(after.updated_at, before.updated_at, "a clean restart moved the last activity");
    assert_eq!(after.summary, before.summary);
    turn(&client, &s.id, "[mock:text] once more").await;
    let before = client.get_session(&s.id).await.unwrap();
    assert!(before.updated_at > after.updated_at, "a turn is activity");
    server.kill9_and_restart_same_port().await;
    let after = client.get_session(&s.id).await.unwrap();
    assert!(after.last_seq > before.last_seq, "the restart wrote its events");
    assert_eq!(after.updated_at, before.updated_at, "a restart after kill -9 moved the last activity");
    assert_eq!(after.summary.turns, 3);

    // The raw JSON carries the summary too (for clients without the SDK).
    let raw: Value = client
        .request(reqwest::Method::GET, &format!("/v1/sessions/{}", s.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["summary"]["turns"], 3, "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_can_be_limited_to_some_event_types() {
    let server = TestServer::start().await;
    let client = server.client();
    let http = reqwest::Client::new();
    let s = mock_session(&client).await;
    turn(&client, &s.id, "[mock:tool]").await;
    let all = read_all(&client, &s.id).await;
    let want: Vec<u64> =
        all.iter().filter(|e| matches!(e.event_type(), "turn.completed" | "session.status")).map(|e| e.gseq).collect();
    assert!(want.len() >= 3 && want.len() < all.len(), "{want:?}");

    // SSE, from the start: only those types, each with its own gseq as id.
    let url = server.endpoint("/v1/events/stream?after=0&types=turn.completed,session.status");
    let mut sse = RawSse::connect(http.get(&url)).await;
    let last = *want.last().unwrap();
    let frames = sse.read_until(WAIT, |f| f.gseq(), |f| f.gseq() == last).await;
    assert_eq!(frames.iter().map(|f| f.gseq()).collect::<Vec<_>>(), want);
    // Live: a new turn's deltas are not sent, its end is.
    turn(&client, &s.id, "[mock:text] more").await;
    let next = sse.read_until(WAIT, |f| f.gseq(), |f| f.event_type() == "turn.completed").await;
    assert!(next.iter().all(|f| matches!(f.event_type(), "turn.completed" | "session.status")), "{next:?}");

    // WebSocket, the same filter.
    let mut ws = RawWs::connect(&server, "/v1/events/ws?after=0&types=turn.completed").await;
    let got = ws.read_until(WAIT, |v| v["type"] == "turn.completed").await;
    assert_eq!(got.len(), 1, "{got:?}");

    // A session's stream with a filter still ends with the session.
    let session_url = server.endpoint(&format!("/v1/sessions/{}/events/stream?types=turn.completed", s.id));
    let mut one = RawSse::connect(http.get(&session_url)).await;
    client.delete_session(&s.id, false).await.unwrap();
    let mut seen = Vec::new();
    while let Some(f) = one.next_frame(WAIT).await {
        seen.push(f.event.unwrap_or_default());
    }
    assert_eq!(seen, ["turn.completed", "turn.completed", "stream.ended"]);

    // An unknown type is refused, naming it and the known ones.
    let bad = http.get(server.endpoint("/v1/events/stream?types=turn.completed,turn.done")).send().await.unwrap();
    tether_e2e::http::expect_problem(bad, 400, "invalid_request", &["turn.done", "session.status"]).await;
}

/// The README's server (port detection on by default), then the README's
/// process walkthrough from a second terminal: a dev server as a process,
/// announced with its process id on the global stream, previewed through
/// tether, `tether sh` and `tether ps` against it, and a stop that closes the port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_server_runs_a_dev_server_as_a_process_and_previews_it() {
    let home = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let serve = Serve::start(home.path(), elsewhere.path());
    serve.ready().await;
    let client = tether_sdk::Client::new(serve.url.clone());
    let mut global = client.all_events(None);
    let port = tether_e2e::ports::free_port();
    let body = tether_sdk::CreateProcess {
        command: "python3".into(),
        args: ["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1"].map(String::from).to_vec(),
        title: Some("static".into()),
        ..Default::default()
    };
    let p = client.create_process(&body).await.unwrap();
    assert!(p.cwd.ends_with("/workspace"), "the README's ./workspace: {}", p.cwd);
    let got = tether_e2e::events::wait_for(
        &mut global,
        WAIT,
        |e| matches!(&e.body, tether_sdk::EventBody::PortOpened(o) if o.port == port),
    )
    .await;
    let opened = got.last().unwrap();
    assert_eq!(opened.session_id, tether_sdk::SANDBOX_LOG);
    let tether_sdk::EventBody::PortOpened(o) = &opened.body else { unreachable!() };
    assert_eq!((o.pid, o.process_id.as_deref()), (Some(p.pid), Some(p.id.as_str())));
    let page = reqwest::get(format!("{}/v1/ports/{port}/proxy/", serve.url)).await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("Directory listing"));

    // A second terminal: `tether sh` runs a command there and exits with its code; `tether ps` lists both.
    let mut sh = Command::new(tether_bin());
    scrub_env(&mut sh);
    sh.args(["sh", "--url", &serve.url, "--", "sh", "-c", "echo from-a-second-terminal; exit 3"])
        .env("HOME", home.path())
        .stdin(Stdio::null());
    let out = tokio::task::block_in_place(|| sh.output()).unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("from-a-second-terminal"));
    let mut ps = Command::new(tether_bin());
    scrub_env(&mut ps);
    let listed = tokio::task::block_in_place(|| ps.args(["ps", "--url", &serve.url]).output()).unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains(&p.id) && listed.contains("static"), "{listed}");

    client.delete_process(&p.id).await.unwrap();
    tether_e2e::events::wait_for(
        &mut global,
        WAIT,
        |e| matches!(&e.body, tether_sdk::EventBody::PortClosed(c) if c.port == port),
    )
    .await;
}
