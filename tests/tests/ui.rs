//! The inspector at /ui/ in a real Chromium (Debian's, through chromedriver),
//! on the real binary with a token: sign in (a wrong token is refused), create
//! a mock session from the form and watch the answer stream, answer a
//! permission and a question by clicking, interrupt, resume after the server
//! is killed and restarted with every event exactly once, upload a file and
//! see it through the watch. Each test saves a screenshot (see
//! `tether_e2e::browser::artifacts_dir`).

use serde_json::Value;
use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{CreateSession, Decision, ItemKind, ItemStatus, ResolvedBy, SessionStatus, StopReason};

const TOKEN: &str = "ui-test-t0ken";

async fn server() -> TestServer {
    TestServer::start_with(ServerOptions::with_token(TOKEN)).await
}

/// A browser on `/ui/` of `server`, signed in with its token.
async fn signed_in(server: &TestServer) -> Browser {
    Browser::signed_in(server, TOKEN).await
}

/// Opens one session's page and waits until its history is loaded and it follows the live stream.
async fn open_session(b: &Browser, server: &TestServer, id: &str) {
    b.goto(&server.endpoint(&format!("/ui/#/sessions/{id}"))).await;
    b.wait_for(&format!("#session[data-session='{id}']")).await;
    b.wait_until(&format!("window.tether.sessions['{id}']?.live === true")).await;
}

/// Saves the screenshot `name` and asserts the page had no script error or CSP violation.
async fn finish(b: &Browser, name: &str) {
    b.screenshot(name).await;
    let errors: Vec<String> = b.eval("return window.tether.errors", vec![]).await;
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

/// The seqs the page received for session `id`, in arrival order.
async fn page_seqs(b: &Browser, id: &str) -> Vec<u64> {
    b.eval(&format!("return window.tether.sessions['{id}'].seqs"), vec![]).await
}

async fn mock_with(client: &tether_sdk::Client, prompt: &str) -> tether_sdk::Session {
    let create = CreateSession { agent: "mock".into(), prompt: Some(prompt.into()), ..Default::default() };
    client.create_session(&create).await.expect("create a mock session")
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_a_clear_message_and_the_right_one_opens_the_server_view() {
    let server = server().await;
    let b = Browser::open().await;
    b.goto(&server.endpoint("/ui/")).await;
    b.wait_for("#login #token").await;
    b.fill("#token", "not-the-token").await;
    b.click("#login button[type=submit]").await;
    let message = b.wait_text("#login-error", "refused").await;
    assert!(message.contains("refused this token"), "{message}");
    b.screenshot("ui_wrong_token").await;
    assert_eq!(b.count("#sessions").await, 0, "the page went on with a refused token");

    b.fill("#token", TOKEN).await;
    b.click("#login button[type=submit]").await;
    b.wait_for("#sessions").await;
    // The token is kept: a reload does not ask again.
    b.goto(&server.endpoint("/ui/#/server")).await;
    b.wait_for("#agents tr[data-agent='mock']").await;
    let info = b.wait_text("#info", "Workspace").await;
    assert!(info.contains(server.workspace().to_str().unwrap()), "{info}");
    assert!(info.contains(env!("CARGO_PKG_VERSION")), "{info}");
    assert_eq!(b.count("#login").await, 0);
    finish(&b, "ui_server").await;
}

#[tokio::test]
async fn a_session_created_from_the_form_streams_its_answer_and_takes_messages() {
    let server = server().await;
    let client = server.client();
    let b = signed_in(&server).await;
    b.wait_for("#new-agent option[value='mock']").await;
    b.select("#new-agent", "mock").await;
    // The title is one of the options folded under "More options".
    b.click("#more-options > summary").await;
    b.fill("#new-title", "from the browser").await;
    b.fill("#new-prompt", "hello from the browser").await;
    b.click("#create").await;
    b.wait_for("#session").await;
    let id: String = b.eval("return document.querySelector('#session').dataset.session", vec![]).await;
    assert!(id.starts_with("ses_"), "{id}");
    assert!(b.current_url().await.ends_with(&format!("#/sessions/{id}")));
    let session = client.get_session(&id).await.unwrap();
    assert_eq!((session.agent.as_str(), session.title.as_deref()), ("mock", Some("from the browser")));

    b.wait_text(".row[data-role='assistant'] .text", "Mock reply to turn 1: hello from the browser").await;
    b.wait_for("#status[data-status='idle']").await;
    b.fill("#message", "and a second one").await;
    b.click("#send").await;
    b.wait_text(".row[data-role='assistant'] .text", "Mock reply to turn 2: and a second one").await;
    b.wait_for("#status[data-status='idle']").await;

    // What the page shows is what the store holds.
    let events = read_all(&client, &id).await;
    let shown = b.texts(".row[data-role='assistant'] .text").await;
    let stored: Vec<String> = assistant_messages(&events).iter().map(|i| item_text(i)).collect();
    assert_eq!(shown, stored);
    assert_eq!(b.texts(".row[data-role='user'] .text").await, ["hello from the browser", "and a second one"]);
    assert_eq!(b.count(".row[data-kind='turn'][data-stop='end_turn']").await, 2);
    b.screenshot("ui_session").await;

    // The raw view of the last reply shows the event with the agent's native message.
    let _: Value = b
        .eval("document.querySelectorAll(\".row[data-role='assistant'] .raw\").item(1).click(); return null", vec![])
        .await;
    let raw = b.wait_text("#event-json", "\"raw\"").await;
    let shown: Value = serde_json::from_str(&raw).unwrap();
    let stored = events.iter().find(|e| e.seq == shown["seq"].as_u64().unwrap()).unwrap();
    assert_eq!(shown["type"], stored.event_type(), "{raw}");
    assert!(shown["raw"].is_object(), "{raw}");
    // The list beside it shows that event's line, scrolled into view.
    let line = b.wait_text("#events .ev-row[aria-selected='true']", stored.event_type()).await;
    assert!(line.starts_with(&stored.seq.to_string()), "{line}");
    let in_view: bool = b
        .eval(
            "const r = document.querySelector(\"#events .ev-row[aria-selected='true']\").getBoundingClientRect();
             const v = document.querySelector('#events').getBoundingClientRect();
             return r.top >= v.top && r.bottom <= v.bottom",
            vec![],
        )
        .await;
    assert!(in_view, "the selected event is not scrolled into view");
    finish(&b, "ui_raw_event").await;
}

#[tokio::test]
async fn a_permission_card_answered_by_a_click_completes_the_tool() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, "[mock:permission]").await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id).await;
    b.wait_for(".card-permission button[data-decision='allow_once']").await;
    b.wait_for("#status[data-status='waiting']").await;
    b.screenshot("ui_permission").await;
    b.click(".card-permission button[data-decision='allow_once']").await;
    b.wait_for(".card-permission[data-resolved='allow_once']").await;
    b.wait_for(".row[data-kind='tool_call'][data-status='completed']").await;
    b.wait_text(".row[data-role='assistant'] .text", "I wrote the file.").await;

    let events = read_all(&client, &session.id).await;
    let resolved = permissions_resolved(&events);
    assert_eq!(resolved.len(), 1, "{}", describe(&events));
    assert_eq!((resolved[0].decision, resolved[0].by), (Decision::AllowOnce, ResolvedBy::Client));
    let tool = completed_items(&events).into_iter().find(|i| i.kind == ItemKind::ToolCall).unwrap();
    assert_eq!(tool.status, ItemStatus::Completed);
    let file = std::fs::read_to_string(server.workspace().join("mock-permission.txt")).unwrap();
    assert_eq!(file, "written by the mock agent\n");
    finish(&b, "ui_permission_allowed").await;
}

#[tokio::test]
async fn a_question_is_answered_by_clicking_a_choice() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, "[mock:question]").await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id).await;
    b.wait_text(".card-question .title", "Which colour?").await;
    b.screenshot("ui_question").await;
    b.click(".card-question button[data-choice='Blue']").await;
    b.wait_for(".card-question[data-resolved='answered']").await;
    b.wait_text(".row[data-role='assistant'] .text", "You chose: Blue").await;

    let events = read_all(&client, &session.id).await;
    let answers: Vec<_> = questions_resolved(&events).iter().map(|r| r.answers.clone()).collect();
    assert_eq!(answers, [Some(vec![vec!["Blue".to_string()]])], "{}", describe(&events));
    finish(&b, "ui_question_answered").await;
}

#[tokio::test]
async fn interrupt_stops_a_slow_turn() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, "[mock:slow]").await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id).await;
    b.wait_text(".row[data-role='assistant'] .text", "tick 2 ").await;
    b.wait_for("#status[data-status='running']").await;
    b.click("#interrupt").await;
    b.wait_for(".row[data-kind='turn'][data-stop='interrupted']").await;
    b.wait_for("#status[data-status='idle']").await;
    finish(&b, "ui_interrupted").await;
    let events = read_all(&client, &session.id).await;
    assert_eq!(the_turn_completed(&events).stop_reason, StopReason::Interrupted);
    let text = b.texts(".row[data-role='assistant'] .text").await.concat();
    assert!(!text.contains("tick 100 "), "the turn ran to its end: {text}");
}

#[tokio::test]
async fn the_page_resumes_after_the_server_is_killed_and_restarted_with_every_event_once() {
    let mut server = server().await;
    let client = server.client();
    let session = mock_with(&client, "[mock:slow]").await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id).await;
    b.wait_text(".row[data-role='assistant'] .text", "tick 3 ").await;

    server.kill9_and_restart_same_port().await;
    b.wait_text(".row", "server restarted").await;
    b.wait_until(
        "window.tether.conn.includes('reconnecting') && document.querySelector('#conn').dataset.state === 'live'",
    )
    .await;
    // The page goes on live: a new turn through the composer streams in.
    b.fill("#message", "after the restart").await;
    b.click("#send").await;
    b.wait_text(".row[data-role='assistant'] .text", "after the restart").await;
    wait_status(&client, &session.id, SessionStatus::Idle, TURN_TIMEOUT).await;

    let stored = read_all(&client, &session.id).await;
    let last = stored.last().unwrap().seq;
    b.wait_until(&format!("window.tether.sessions['{}'].seqs.at(-1) === {last}", session.id)).await;
    let seqs = page_seqs(&b, &session.id).await;
    assert_eq!(seqs, stored.iter().map(|e| e.seq).collect::<Vec<_>>(), "the page missed or repeated events");
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    finish(&b, "ui_resumed").await;
}

#[tokio::test]
async fn an_uploaded_file_appears_through_the_watch_and_outside_changes_too() {
    let server = server().await;
    let b = signed_in(&server).await;
    b.goto(&server.endpoint("/ui/#/files")).await;
    b.wait_for("#entries").await;
    b.wait_until("document.querySelector('#conn').dataset.state === 'live'").await;

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("from-the-browser.txt");
    std::fs::write(&local, "uploaded through the inspector\n").unwrap();
    b.upload_file("#upload", &local).await;
    b.wait_for("#changes li[data-path='from-the-browser.txt']").await;
    b.wait_for("#entries tr[data-path='from-the-browser.txt']").await;
    let stored = std::fs::read_to_string(server.workspace().join("from-the-browser.txt")).unwrap();
    assert_eq!(stored, "uploaded through the inspector\n");

    // A change made behind the page's back shows up too.
    std::fs::write(server.workspace().join("outside.txt"), "written outside").unwrap();
    b.wait_for("#changes li[data-path='outside.txt']").await;
    b.wait_for("#entries tr[data-path='outside.txt']").await;
    b.click("#entries tr[data-path='outside.txt'] a").await;
    b.wait_text("#file-text", "written outside").await;
    finish(&b, "ui_files").await;
}

#[tokio::test]
async fn activity_shows_every_sessions_events_as_they_happen() {
    let server = server().await;
    let client = server.client();
    let b = signed_in(&server).await;
    b.goto(&server.endpoint("/ui/#/activity")).await;
    b.wait_for("#activity-filter").await;
    b.wait_until("document.querySelector('#conn').dataset.state === 'live'").await;
    let one = mock_with(&client, "first").await;
    let two = mock_with(&client, "second").await;
    for s in [&one, &two] {
        b.wait_for(&format!("#activity li[data-session='{}'][data-type='turn.completed']", s.id)).await;
    }
    // The filter keeps one session's lines.
    b.fill("#activity-filter", &two.id).await;
    b.wait_gone(&format!("#activity li[data-session='{}']", one.id)).await;
    assert!(b.count(&format!("#activity li[data-session='{}']", two.id)).await > 0);
    finish(&b, "ui_activity").await;
}

#[tokio::test]
async fn at_a_phone_width_the_session_fits_and_works_from_the_keyboard() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, "[mock:tool] narrow").await;
    let b = signed_in(&server).await;
    b.client().set_window_size(390, 844).await.unwrap();
    open_session(&b, &server, &session.id).await;
    b.wait_text(".row[data-role='assistant'] .text", "mock-tool-output").await;
    let fits: bool = b.eval("return document.documentElement.scrollWidth <= window.innerWidth", vec![]).await;
    assert!(fits, "the page scrolls sideways at 390 px");
    // Ctrl+Enter in the composer sends.
    b.fill("#message", "sent from the keyboard").await;
    b.send_keys("#message", "\u{E009}\u{E007}").await;
    b.wait_text(".row[data-role='assistant'] .text", "Mock reply to turn 2: sent from the keyboard").await;
    finish(&b, "ui_narrow").await;
}

/// A subagent's steps are inside the Task call that started it, collapsed,
/// not rows of their own; opened, they show the subagent's tool call and
/// answer, and the page still fits a phone.
#[tokio::test]
async fn a_subagents_steps_are_nested_in_its_task_call_and_collapsed() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, "[mock:subagent] nest").await;
    let b = signed_in(&server).await;
    b.set_window(390, 844).await;
    open_session(&b, &server, &session.id).await;
    b.wait_text(".row[data-role='assistant'] .text", "The subagent said: The command printed").await;
    assert_eq!(b.count(".row[data-kind='tool_call']").await, 1, "only the Task call is a row");
    assert_eq!(b.count(".row[data-tool='Bash']").await, 0, "the subagent's call is not a row of its own");
    assert_eq!(b.count(".row[data-tool='Task'] details.subagent:not([open])").await, 1, "collapsed");
    b.click(".row[data-tool='Task'] > summary").await;
    let summary = b.wait_text(".row[data-tool='Task'] details.subagent > summary", "Subagent").await;
    assert_eq!(summary, "Subagent · 2 steps");
    b.click(".row[data-tool='Task'] details.subagent > summary").await;
    b.wait_for(".row[data-tool='Task'] details.subagent[open] > .child[data-tool='Bash']").await;
    b.wait_text(".row[data-tool='Task'] .child[data-role='assistant'] .text", "The command printed: mock-tool-output")
        .await;
    b.assert_fits_viewport("a session with an opened subagent at 390 px").await;
    let _: Value = b
        .eval("document.querySelector('.row[data-tool=Task] details.subagent').scrollIntoView(); return null;", vec![])
        .await;
    finish(&b, "ui_subagent_phone").await;
}
