//! The inspector's processes, terminals and ports in a real Chromium, on the
//! real binary: "New terminal" starts bash and its pane runs a command typed
//! through the page (xterm.js when the binary embeds it, else the plain
//! text pane), follows the pane's size (`stty size`), attaches again after a
//! dropped connection with every byte once, and stops the process; the plain
//! pane (`?view=text`) works the same way; the ports list names a dev
//! server's owner and opens its preview in a new tab; a session's terminal
//! tab shows the agent's output, read-only; a dev server started for a
//! session shows "Dev server on :PORT — open" in its conversation, greyed
//! when it stops. Every view fits a phone. Each test saves a screenshot and
//! fails on any script error or CSP violation the page records.

use std::time::Duration;

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::Locator;
use serde_json::{json, Value};
use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{CreateSession, SessionStatus};

const TOKEN: &str = "ui-terminal-t0ken";

async fn server() -> TestServer {
    TestServer::start_with(ServerOptions::with_token(TOKEN)).await
}

/// A server that looks for listening ports (every 100 ms; test servers do not by default).
async fn ports_server() -> TestServer {
    TestServer::start_with(ServerOptions { ports_poll_ms: Some(100), ..ServerOptions::with_token(TOKEN) }).await
}

/// A request to the server's API with the token; the JSON answer (Null for none).
async fn call(server: &TestServer, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let mut request = reqwest::Client::new().request(method.clone(), server.endpoint(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let resp = request.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{method} {path} answered {status}: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    }
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `python3 -m http.server PORT` in the workspace (for `session`, if
/// given) and waits until the server lists the port; the process.
async fn dev_server(server: &TestServer, port: u16, session: Option<&str>) -> Value {
    let mut body = json!({
        "command": "python3",
        "args": ["-m", "http.server", port.to_string(), "--bind", "127.0.0.1"],
        "tty": false,
        "title": "dev server",
    });
    if let Some(session) = session {
        body["session_id"] = json!(session);
    }
    let process = call(server, reqwest::Method::POST, "/v1/processes", Some(body)).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ports = call(server, reqwest::Method::GET, "/v1/ports", None).await;
        if ports["ports"].as_array().unwrap().iter().any(|p| p["port"] == port) {
            return process;
        }
        assert!(std::time::Instant::now() < deadline, "port {port} is not listed: {ports}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for a browser tab that is not among `before`; its handle.
async fn new_tab(b: &Browser, before: &[fantoccini::wd::WindowHandle]) -> fantoccini::wd::WindowHandle {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = b.client().windows().await.unwrap();
        if let Some(tab) = now.into_iter().find(|w| !before.contains(w)) {
            return tab;
        }
        assert!(std::time::Instant::now() < deadline, "no new tab opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves the screenshot `name` and asserts the page had no script error or CSP violation.
async fn finish(b: &Browser, name: &str) {
    b.screenshot(name).await;
    let errors: Vec<String> = b.eval("return window.tether.errors", vec![]).await;
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

/// Whether this binary embeds xterm.js (`scripts/install-ui-deps` before the build).
async fn has_xterm(server: &TestServer) -> bool {
    let manifest: Value = reqwest::get(server.endpoint("/ui/vendor/vendor.json")).await.unwrap().json().await.unwrap();
    manifest.get("xterm").is_some()
}

/// A JS expression: the state of the pane attached to `path`.
fn pane(path: &str) -> String {
    format!("window.tether.terminals[{}]", json!(path))
}

/// Types `text` into the focused element as key presses (xterm.js reads its
/// hidden textarea, which WebDriver will not send keys to directly).
async fn type_keys(b: &Browser, text: &str) {
    let mut keys = KeyActions::new("keyboard".into());
    for c in text.chars() {
        keys = keys.then(KeyAction::Down { value: c }).then(KeyAction::Up { value: c });
    }
    b.client().perform_actions(keys).await.expect("type into the page");
}

/// Types a command line into the process pane of the page (xterm.js or the plain pane's line field).
async fn run_line(b: &Browser, xterm: bool, line: &str) {
    if xterm {
        b.click("#process .term-screen .xterm-screen").await;
        b.wait_until("document.activeElement?.classList.contains('xterm-helper-textarea')").await;
        type_keys(b, &format!("{line}\u{e007}")).await;
    } else {
        b.fill("#term-line", line).await;
        b.press_enter("#term-line").await;
    }
}

/// The text the pane shows now.
async fn pane_text(b: &Browser, css: &str) -> String {
    b.eval("return document.querySelector(arguments[0])?.innerText ?? ''", vec![json!(css)]).await
}

/// How often `needle` occurs in `text`.
fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[tokio::test]
async fn a_new_terminal_runs_typed_commands_follows_its_size_reattaches_and_stops() {
    let server = server().await;
    let xterm = has_xterm(&server).await;
    let b = Browser::signed_in(&server, TOKEN).await;
    b.goto(&server.endpoint("/ui/#/processes")).await;
    b.wait_text("#processes", "No processes yet").await;
    b.click("#new-terminal").await;
    b.wait_for("#process[data-state='running']").await;
    let id: String = b.eval("return document.querySelector('#process').dataset.process", vec![]).await;
    let path = format!("/v1/processes/{id}/terminal");
    let state = pane(&path);
    b.wait_until(&format!("{state}?.state === 'live'")).await;
    let mode: String = b.eval(&format!("return {state}.mode"), vec![]).await;
    assert_eq!(mode, if xterm { "xterm" } else { "plain" });

    // A command typed through the page runs: its output, not only its echo.
    let marker = format!("hello-{}", std::process::id());
    run_line(&b, xterm, &format!("echo {marker}-$((6*7))")).await;
    b.wait_text("#process .term-screen", &format!("{marker}-42")).await;

    // The pane's size is the terminal's: `stty size` says the rows and columns sent.
    if xterm {
        b.wait_until(&format!("{state}.cols > 20")).await;
        let (rows, cols): (u32, u32) = b.eval(&format!("return [{state}.rows, {state}.cols]"), vec![]).await;
        run_line(&b, xterm, "echo size-$(stty size | tr ' ' x)").await;
        b.wait_text("#process .term-screen", &format!("size-{rows}x{cols}")).await;
    }

    // The connection drops while the process writes: the pane attaches again
    // from its last offset, and every line is shown once.
    run_line(&b, xterm, "for i in 1 2 3 4 5 6; do echo tick-$((i*11)); sleep 0.3; done").await;
    b.wait_text("#process .term-screen", "tick-22").await;
    b.eval::<Value>(&format!("{state}.socket.close(); return null"), vec![]).await;
    b.wait_until(&format!("{state}.attaches >= 2")).await;
    b.wait_text("#process .term-screen", "tick-66").await;
    let text = pane_text(&b, "#process .term-screen").await;
    for n in [11, 22, 33, 44, 55, 66] {
        assert_eq!(occurrences(&text, &format!("tick-{n}")), 1, "tick-{n} is not shown once:\n{text}");
    }
    // Nothing lost, nothing twice: once the page has caught up with what the
    // process wrote, it received exactly those bytes.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let (first, bytes, end) = loop {
        let process = call(&server, reqwest::Method::GET, &format!("/v1/processes/{id}"), None).await;
        let end = process["output"]["end"].as_u64().unwrap();
        let (offset, first, bytes): (u64, u64, u64) =
            b.eval(&format!("return [{state}.offset, {state}.first, {state}.bytes]"), vec![]).await;
        if offset == end {
            break (first, bytes, end);
        }
        assert!(std::time::Instant::now() < deadline, "the page is at offset {offset}, the process at {end}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(bytes, end - first, "the page received {bytes} bytes from offset {first} to {end}");

    // At a phone's width the pane fits, and the list does too.
    b.set_window(390, 844).await;
    b.assert_fits_viewport("a process's terminal at 390 px").await;
    b.screenshot("ui_terminal_process_390").await;
    b.goto(&server.endpoint("/ui/#/processes")).await;
    b.wait_for(&format!(".process-row[data-process='{id}'] .pill[data-status='running']")).await;
    b.assert_fits_viewport("the processes list at 390 px").await;
    b.screenshot("ui_terminal_list_390").await;
    b.set_window(1280, 900).await;

    // Stop: the process ends and the page says so, with no Stop button left.
    b.goto(&server.endpoint(&format!("/ui/#/processes/{id}"))).await;
    b.wait_until(&format!("{state}?.state === 'live'")).await;
    b.screenshot("ui_terminal_process").await;
    b.click("#stop").await;
    b.wait_for("#process[data-state='exited']").await;
    b.wait_text("#process-state", "Stopped").await;
    b.wait_gone("#stop").await;
    b.wait_until(&format!("{state}.state === 'exited'")).await;
    finish(&b, "ui_terminal_stopped").await;
}

#[tokio::test]
async fn the_plain_text_pane_runs_a_command_without_control_sequences() {
    let server = server().await;
    let process = call(
        &server,
        reqwest::Method::POST,
        "/v1/processes",
        Some(json!({"command": "bash", "args": ["--norc", "-i"], "title": "plain"})),
    )
    .await;
    let id = process["id"].as_str().unwrap();
    let b = Browser::signed_in(&server, TOKEN).await;
    b.goto(&server.endpoint(&format!("/ui/#/processes/{id}?view=text"))).await;
    let state = pane(&format!("/v1/processes/{id}/terminal"));
    b.wait_until(&format!("{state}?.state === 'live' && {state}.mode === 'plain'")).await;
    run_line(&b, false, "printf '\\033[1;31mred-%s\\033[0m\\n' $((2*21))").await;
    let text = b.wait_text("#process .term-text", "red-42").await;
    // The output line is the text alone: the colour's control sequences are gone.
    assert!(!text.contains('\u{1b}'), "control sequences shown: {text:?}");
    assert!(text.lines().any(|l| l == "red-42"), "the output line is not plain: {text:?}");
    // The pane strips what it must, split across chunks too (the pure function, in the page).
    let stripped: String = b
        .eval(
            "return import('/ui/js/terminal.js').then(({ stripControls }) => { \
               const a = stripControls('one\\x1b[3'); const b = stripControls('1mtwo\\x1b]0;t\\x07\\r\\n', a.pending); \
               return a.text + b.text; })",
            vec![],
        )
        .await;
    assert_eq!(stripped, "onetwo\n");
    b.set_window(390, 844).await;
    b.assert_fits_viewport("the plain pane at 390 px").await;
    finish(&b, "ui_terminal_plain_390").await;
}

#[tokio::test]
async fn the_ports_list_names_the_owner_and_opens_a_preview_in_a_new_tab() {
    let server = ports_server().await;
    std::fs::write(server.workspace().join("preview-marker.txt"), "hi").unwrap();
    let port = free_port();
    let process = dev_server(&server, port, None).await;
    let b = Browser::signed_in(&server, TOKEN).await;
    b.goto(&server.endpoint("/ui/#/processes")).await;
    let row = format!("#ports tr[data-port='{port}']");
    let owner = b.wait_text(&row, "dev server").await;
    assert!(owner.contains(&format!(":{port}")), "{owner}");
    let before = b.client().windows().await.unwrap();
    b.click(&format!("{row} .open-preview")).await;
    let tab = new_tab(&b, &before).await;
    let main = b.client().window().await.unwrap();
    b.client().switch_to_window(tab).await.unwrap();
    let listing = b.wait_text("body", "preview-marker.txt").await;
    assert!(listing.contains("Directory listing"), "{listing}");
    let url = b.current_url().await;
    assert!(url.contains(&format!("/v1/ports/{port}/")), "the preview is not served through tether: {url}");
    assert!(!url.contains(TOKEN), "the token is in the preview's url: {url}");
    // The preview shares tether's origin: its pages must find no token in either storage.
    let stored: serde_json::Value = b
        .eval(
            "return [sessionStorage.getItem('tether.token'), localStorage.getItem('tether.token'), document.cookie]",
            vec![],
        )
        .await;
    assert_eq!(stored[0], serde_json::Value::Null, "the preview tab can read the token from sessionStorage");
    assert_eq!(stored[1], serde_json::Value::Null, "the preview tab can read the token from localStorage");
    assert!(!stored[2].as_str().unwrap_or_default().contains(TOKEN), "{stored}");
    b.screenshot("ui_terminal_preview_tab").await;
    b.client().close_window().await.unwrap();
    b.client().switch_to_window(main).await.unwrap();
    b.set_window(390, 844).await;
    b.wait_for(&format!("{row} .open-preview")).await;
    b.assert_fits_viewport("the ports list at 390 px").await;
    finish(&b, "ui_terminal_ports_390").await;

    // Stopped: the port leaves the list (the machine's other ports may stay).
    let id = process["id"].as_str().unwrap();
    call(&server, reqwest::Method::DELETE, &format!("/v1/processes/{id}"), None).await;
    b.wait_gone(&row).await;
}

#[tokio::test]
async fn a_sessions_terminal_tab_shows_the_agents_output_read_only() {
    let server = server().await;
    let client = server.client();
    let marker = format!("agent-says-{}", std::process::id());
    let create =
        CreateSession { agent: "mock".into(), prompt: Some(format!("[mock:text] {marker}")), ..Default::default() };
    let session = client.create_session(&create).await.unwrap();
    wait_status(&client, &session.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    let b = Browser::signed_in(&server, TOKEN).await;
    b.goto(&server.endpoint(&format!("/ui/#/sessions/{}/terminal", session.id))).await;
    let state = pane(&format!("/v1/sessions/{}/terminal", session.id));
    b.wait_until(&format!("{state}?.state === 'live'")).await;
    b.wait_text("#session .term-screen", &marker).await;
    assert_eq!(b.count("#term-line").await, 0, "a read-only pane offers input");
    b.wait_text(".term-status", "read-only").await;
    // A later turn shows up live.
    client.send_text(&session.id, "[mock:text] second-turn-marker").await.unwrap();
    b.wait_text("#session .term-screen", "second-turn-marker").await;
    b.set_window(390, 844).await;
    b.assert_fits_viewport("a session's terminal at 390 px").await;
    finish(&b, "ui_terminal_session_390").await;
}

#[tokio::test]
async fn a_dev_server_started_for_a_session_is_announced_in_its_conversation() {
    let server = ports_server().await;
    let client = server.client();
    let create = CreateSession { agent: "mock".into(), prompt: Some("[mock:text] hello".into()), ..Default::default() };
    let session = client.create_session(&create).await.unwrap();
    wait_status(&client, &session.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    let b = Browser::signed_in(&server, TOKEN).await;
    b.goto(&server.endpoint(&format!("/ui/#/sessions/{}", session.id))).await;
    b.wait_until(&format!("window.tether.sessions['{}']?.live === true", session.id)).await;

    let port = free_port();
    let process = dev_server(&server, port, Some(&session.id)).await;
    let notice = format!(".port-notice[data-port='{port}']");
    let said = b.wait_text(&notice, &format!("Dev server on :{port}")).await;
    assert!(said.contains("open"), "{said}");
    b.wait_for(&format!("{notice}[data-open='true'] .open-preview")).await;
    b.screenshot("ui_terminal_port_notice").await;

    // "open" makes a link and opens it in a new tab, which shows the dev server.
    let main = b.client().window().await.unwrap();
    let before = b.client().windows().await.unwrap();
    b.click(&format!("{notice} .open-preview")).await;
    let tab = new_tab(&b, &before).await;
    b.client().switch_to_window(tab).await.unwrap();
    b.wait_text("body", "Directory listing").await;
    // Back to the conversation (a tab in the background draws nothing new).
    b.client().close_window().await.unwrap();
    b.client().switch_to_window(main).await.unwrap();

    // Stopped: the notice stays, greyed, without its button.
    let id = process["id"].as_str().unwrap();
    call(&server, reqwest::Method::DELETE, &format!("/v1/processes/{id}"), None).await;
    b.wait_for(&format!("{notice}[data-open='false']")).await;
    assert_eq!(b.count(&format!("{notice} .open-preview")).await, 0);
    b.wait_text(&notice, "closed").await;
    let opened = b.client().find_all(Locator::Css(&notice)).await.unwrap().len();
    assert_eq!(opened, 1, "one notice per opening");
    finish(&b, "ui_terminal_port_closed").await;
}
