//! The inspector's session view (`#/sessions/{id}`) in a real Chromium, on
//! the real binary with the mock agent: a session that does not exist says
//! so; an ended one says why and when, keeps no dead controls and starts a
//! new session like itself; the event count is live and the composer is
//! focused on open; the conversation reads as sentences (one line per turn
//! end, a crash told once, decisions and answers in words, a question's tool
//! input folded under its card); a failed request is a sentence with its
//! details behind a toggle. Each test saves a screenshot and fails on any
//! script error or CSP violation the page records.

use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{CreateSession, PermissionMode, SessionStatus};

const TOKEN: &str = "ui-session-t0ken";

async fn server() -> TestServer {
    TestServer::start_with(ServerOptions::with_token(TOKEN)).await
}

/// A browser on `/ui/` of `server`, signed in with [`TOKEN`].
async fn signed_in(server: &TestServer) -> Browser {
    Browser::signed_in(server, TOKEN).await
}

/// Opens session `id` and waits until its history is loaded (and, for a
/// session that goes on, until the page follows its live stream).
async fn open_session(b: &Browser, server: &TestServer, id: &str, live: bool) {
    b.goto(&server.endpoint(&format!("/ui/#/sessions/{id}"))).await;
    b.wait_for(&format!("#session[data-session='{id}']")).await;
    let cond = if live { "live === true" } else { "history_done === true" };
    b.wait_until(&format!("window.tether.sessions['{id}']?.{cond}")).await;
}

/// Waits until the page has received every event the store holds for `id`
/// now (and maybe more that came since); the page's last seq.
async fn caught_up(b: &Browser, client: &tether_sdk::Client, id: &str) -> u64 {
    let last = client.get_session(id).await.unwrap().last_seq;
    b.wait_until(&format!("window.tether.sessions['{id}'].seqs.at(-1) >= {last}")).await;
    b.eval(&format!("return window.tether.sessions['{id}'].seqs.at(-1)"), vec![]).await
}

/// Waits until the event count shows what the page received; that count.
async fn count_shown(b: &Browser, id: &str) -> u64 {
    b.wait_until(&format!(
        "document.querySelector('#event-count').innerText === `${{window.tether.sessions['{id}'].seqs.length}} events`"
    ))
    .await;
    let text = b.texts("#event-count").await.concat();
    text.trim_end_matches(" events").parse().unwrap_or_else(|_| panic!("not a count: {text:?}"))
}

/// Saves the screenshot `name` and asserts the page had no script error or CSP violation.
async fn finish(b: &Browser, name: &str) {
    b.screenshot(name).await;
    let errors: Vec<String> = b.eval("return window.tether.errors", vec![]).await;
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

async fn mock_with(client: &tether_sdk::Client, prompt: Option<&str>) -> tether_sdk::Session {
    let create = CreateSession { agent: "mock".into(), prompt: prompt.map(Into::into), ..Default::default() };
    client.create_session(&create).await.expect("create a mock session")
}

/// The `innerText` of the conversation's rows that are displayed.
async fn shown_rows(b: &Browser) -> Vec<String> {
    b.eval("return [...document.querySelectorAll('#conv .row')].filter((r) => r.checkVisibility()).map((r) => r.innerText)", vec![])
        .await
}

#[tokio::test]
async fn a_session_that_does_not_exist_says_so_with_a_way_back_and_no_controls() {
    let server = server().await;
    let b = signed_in(&server).await;
    b.goto(&server.endpoint("/ui/#/sessions/ses_doesnotexist")).await;
    let said = b.wait_text("#not-found", "There is no session").await;
    assert!(said.contains("ses_doesnotexist"), "{said}");
    let heading = b.wait_text("#session h1", "not found").await;
    assert_eq!(heading, "Session not found");
    for control in ["#message", "#send", "#composer", "#interrupt", "#delete", "#conv"] {
        assert_eq!(b.count(control).await, 0, "{control} is shown for a session that does not exist");
    }
    let loading: String = b.eval("return document.querySelector('main').innerText", vec![]).await;
    assert!(!loading.to_lowercase().contains("loading"), "still loading: {loading}");
    finish(&b, "ui_session_not_found").await;
    b.click("#back-to-sessions").await;
    b.wait_for("#sessions").await;
    assert!(b.current_url().await.ends_with("#/"), "{}", b.current_url().await);
}

#[tokio::test]
async fn an_ended_session_says_so_keeps_no_dead_controls_and_starts_a_new_one_like_it() {
    let server = server().await;
    let client = server.client();
    std::fs::create_dir(server.workspace().join("project")).unwrap();
    let create = CreateSession {
        agent: "mock".into(),
        cwd: Some("project".into()),
        model: Some("mock-large".into()),
        permission_mode: PermissionMode::AcceptEdits,
        prompt: Some("hello".into()),
        title: Some("to be ended".into()),
        ..Default::default()
    };
    let old = client.create_session(&create).await.unwrap();
    wait_status(&client, &old.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &old.id, true).await;
    b.wait_for("#composer #message").await;
    b.wait_for("#delete").await;

    // Ended behind the page's back: the page sees session.ended, and the stream's end is final.
    client.delete_session(&old.id, false).await.unwrap();
    let note = b.wait_text("#ended", "This session was ended").await;
    assert!(note.contains("New session like this"), "{note}");
    b.wait_for("#status[data-status='ended']").await;
    for control in ["#composer", "#message", "#send"] {
        assert_eq!(b.count(control).await, 0, "{control} is still there after the end");
    }
    b.wait_gone("#interrupt").await;
    b.wait_gone("#delete").await;
    b.wait_until(&format!("window.tether.sessions['{}'].stream === 'ended'", old.id)).await;
    let reconnected: bool =
        b.eval(&format!("return window.tether.sessions['{}'].states.includes('reconnecting')", old.id), vec![]).await;
    assert!(!reconnected, "the page reconnected after the session ended");
    let ended_at = read_all(&client, &old.id).await.last().unwrap().time.clone();
    let datetime: String =
        b.eval("return document.querySelector('#ended time').getAttribute('datetime')", vec![]).await;
    assert_eq!(datetime, ended_at, "the note does not tell when the session ended");
    finish(&b, "ui_session_ended").await;

    // The same page opened afresh on the ended session: ended from the start, no stream.
    b.goto(&server.endpoint("/ui/#/")).await;
    b.wait_for("#sessions").await;
    open_session(&b, &server, &old.id, false).await;
    b.wait_text("#ended", "This session was ended").await;
    assert_eq!(b.count("#composer").await, 0);
    b.wait_gone("#interrupt").await;

    // A new session like this one: same agent, folder, model and permission mode.
    b.click("#new-like-this").await;
    b.wait_until(&format!("document.querySelector('#session')?.dataset.session?.startsWith('ses_') && document.querySelector('#session').dataset.session !== '{}'", old.id)).await;
    let new_id: String = b.eval("return document.querySelector('#session').dataset.session", vec![]).await;
    assert!(b.current_url().await.ends_with(&format!("#/sessions/{new_id}")));
    let new = client.get_session(&new_id).await.unwrap();
    assert_eq!(
        (new.agent.as_str(), new.cwd.as_str(), new.model.as_deref(), new.permission_mode),
        (old.agent.as_str(), old.cwd.as_str(), old.model.as_deref(), old.permission_mode)
    );
    b.wait_for("#composer #message").await;
    b.wait_until("document.activeElement?.id === 'message'").await;

    // The End button: asks in place, then ends it the same way.
    b.click("#delete").await;
    b.click("#confirm-end").await;
    b.wait_text("#ended", "This session was ended").await;
    assert_eq!(b.count("#composer").await, 0);
    b.wait_gone("#interrupt").await;
    b.wait_gone("#delete").await;
    assert_eq!(client.get_session(&new_id).await.unwrap().status, SessionStatus::Ended);
    finish(&b, "ui_session_ended_by_button").await;
}

#[tokio::test]
async fn the_event_count_is_live_and_the_composer_is_focused_on_open() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, Some("first")).await;
    wait_status(&client, &session.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id, true).await;
    b.wait_until("document.activeElement?.id === 'message'").await;

    let seen = caught_up(&b, &client, &session.id).await;
    let before = count_shown(&b, &session.id).await;
    assert!(before >= seen, "{before} events shown, {seen} received");
    client.send_text(&session.id, "[mock:tool] more").await.unwrap();
    let mut stream = client.session_events(&session.id, Some(before));
    wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    let seen = caught_up(&b, &client, &session.id).await;
    let after = count_shown(&b, &session.id).await;
    assert!(after >= seen && after > before, "{after} events shown after the turn, {before} before, {seen} received");
    let stored = read_all(&client, &session.id).await;
    assert!(stored.iter().any(|e| e.seq == after), "the count {after} is no stored seq");
    finish(&b, "ui_session_count").await;
}

#[tokio::test]
async fn a_finished_turn_is_one_line_with_its_tokens_and_cost() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, Some("hello")).await;
    wait_status(&client, &session.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id, true).await;
    // An untitled session is called by its first prompt, as in the list; its id is in the meta line.
    assert_eq!(b.wait_text("h1.title", "hello").await, "hello");
    b.wait_text(".meta code", &session.id).await;

    let events = read_all(&client, &session.id).await;
    let done = the_turn_completed(&events);
    let usage = done.usage.clone().expect("the mock reports usage");
    let tokens = format!("{} in / {} out tokens", usage.input_tokens.unwrap(), usage.output_tokens.unwrap());
    // The mock's cost is $0.0001: two significant digits, trailing zeros dropped.
    assert_eq!(usage.cost_usd, Some(0.0001));
    let line = b.wait_text(".row[data-kind='turn'][data-stop='end_turn'] .turn-line", "Finished").await;
    let parts: Vec<&str> = line.split(" · ").collect();
    assert_eq!(parts[..3], ["Finished", tokens.as_str(), "$0.0001"], "{line:?}");
    assert_eq!(b.count(".row[data-kind='turn']").await, 1);
    let all = shown_rows(&b).await.join("\n");
    assert!(!all.contains("turn end") && !all.contains("end_turn"), "{all}");
    finish(&b, "ui_session_turn_end").await;
}

#[tokio::test]
async fn a_crash_is_told_once() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, Some("[mock:crash] boom")).await;
    let mut stream = client.session_events(&session.id, Some(0));
    wait_for_type(&mut stream, TURN_TIMEOUT, "agent.exited").await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id, true).await;
    caught_up(&b, &client, &session.id).await;

    let events = read_all(&client, &session.id).await;
    for t in ["error", "turn.completed", "agent.exited"] {
        assert_eq!(of_type(&events, t).len(), 1, "the crash should have one {t}:\n{}", describe(&events));
    }
    let line = b.wait_text(".row[data-kind='turn'][data-stop='error']", "Stopped by an error").await;
    assert!(line.contains("exited with code 3"), "{line}");
    let rows = shown_rows(&b).await;
    let telling: Vec<&String> =
        rows.iter().filter(|r| r.contains("exited") || r.contains("error") || r.contains("fatal")).collect();
    assert_eq!(telling.len(), 1, "the crash is told more than once: {rows:#?}");
    assert_eq!(b.count(".row[data-kind='error']").await, 0);
    assert_eq!(b.count(".row[data-type='agent.exited']").await, 0);
    // What the agent printed last is there, behind a toggle.
    b.wait_gone(".row[data-stop='error'] details pre").await;
    b.click(".row[data-stop='error'] details summary").await;
    b.wait_text(".row[data-stop='error'] details pre", "fatal").await;
    finish(&b, "ui_session_crash").await;
}

#[tokio::test]
async fn an_agent_stopped_for_idleness_is_a_sentence_and_the_next_message_runs() {
    let options =
        ServerOptions { extra_args: vec!["--agent-idle-secs".into(), "1".into()], ..ServerOptions::with_token(TOKEN) };
    let server = TestServer::start_with(options).await;
    let client = server.client();
    let session = mock_with(&client, Some("[mock:text] first")).await;
    let mut stream = client.session_events(&session.id, Some(0));
    wait_for(&mut stream, TURN_TIMEOUT, |e| {
        matches!(&e.body, tether_sdk::EventBody::AgentExited(x) if x.reason == Some(tether_sdk::AgentStopReason::Idle))
    })
    .await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id, true).await;
    caught_up(&b, &client, &session.id).await;
    let row =
        b.wait_text(".row[data-type='agent.exited']", "The agent was stopped after 1 s idle, to free its memory").await;
    assert!(row.contains("the next message starts it again"), "{row}");
    assert_eq!(client.get_session(&session.id).await.unwrap().status, SessionStatus::Idle);
    // The composer still works: the next message starts the agent and its turn runs.
    b.fill("#message", "[mock:text] second").await;
    b.click("#send").await;
    let turn = wait_for_type(&mut stream, TURN_TIMEOUT, "turn.completed").await;
    assert_eq!(the_turn_completed(&turn).stop_reason, tether_sdk::StopReason::EndTurn);
    finish(&b, "ui_session_idle_stop").await;
}

#[tokio::test]
async fn an_answered_permission_and_question_read_as_words_and_the_question_shows_no_raw_input() {
    let server = server().await;
    let client = server.client();
    let session = mock_with(&client, Some("[mock:permission]")).await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id, true).await;
    b.click(".card-permission button[data-decision='allow_once']").await;
    let done = b.wait_text(".card-permission .resolved", "Allowed once").await;
    assert_eq!(done, "Allowed once");
    b.wait_for("#status[data-status='idle']").await;
    // The tool call the card asked about stays folded under it.
    let open: bool = b
        .eval("return document.querySelector(\".row[data-kind='tool_call'][data-card='permission']\").open", vec![])
        .await;
    assert!(!open, "the permission's tool call is unfolded beside its card");

    client.send_text(&session.id, "[mock:question]").await.unwrap();
    b.wait_text(".card-question .title", "Which colour?").await;
    b.wait_for(".row[data-kind='tool_call'][data-card='question']").await;
    assert_eq!(b.count(".row[data-card='question'] pre").await, 0, "the question's tool input is shown");
    let all = shown_rows(&b).await.join("\n");
    assert!(!all.contains("\"questions\"") && !all.contains("multiSelect"), "raw question JSON is shown:\n{all}");
    b.screenshot("ui_session_question_open").await;
    b.click(".card-question button[data-choice='Blue']").await;
    let answered = b.wait_text(".card-question .resolved", "Answered").await;
    assert_eq!(answered, "Answered: Blue");
    b.wait_text(".row[data-role='assistant'] .text", "You chose: Blue").await;
    let all = shown_rows(&b).await.join("\n");
    for raw in ["allow_once", "by client", "in_progress", "end_turn"] {
        assert!(!all.contains(raw), "{raw:?} is shown:\n{all}");
    }
    finish(&b, "ui_session_words").await;
}

#[tokio::test]
async fn a_failed_request_is_a_sentence_with_its_details_behind_a_toggle() {
    let options = ServerOptions { max_body_bytes: Some(256), ..ServerOptions::with_token(TOKEN) };
    let server = TestServer::start_with(options).await;
    let client = server.client();
    let session = mock_with(&client, None).await;
    let b = signed_in(&server).await;
    open_session(&b, &server, &session.id, true).await;
    // Over the server's body limit: the POST answers 413 problem+json.
    let long = "too long ".repeat(60);
    let _: serde_json::Value =
        b.eval("document.querySelector('#message').value = arguments[0]; return null", vec![long.clone().into()]).await;
    b.click("#send").await;
    let said = b.wait_text("#send-error .problem-text", "Could not send the message").await;
    assert_eq!(said, "Could not send the message: it is larger than the server accepts.");
    b.wait_gone("#send-error pre").await;
    b.click("#send-error summary").await;
    let details = b.wait_text("#send-error pre", "payload_too_large").await;
    assert!(details.contains("413"), "{details}");
    // Nothing was lost: the message is still in the composer.
    let kept: String = b.eval("return document.querySelector('#message').value", vec![]).await;
    assert_eq!(kept, long);
    finish(&b, "ui_session_failed_request").await;
}

#[tokio::test]
async fn at_a_phone_width_every_state_of_the_session_view_fits_in_light_and_dark() {
    let server = server().await;
    let client = server.client();
    let permission = mock_with(&client, Some("[mock:permission]")).await;
    let question = mock_with(&client, Some("[mock:question]")).await;
    let crash = mock_with(&client, Some("[mock:crash] boom")).await;
    let ended = mock_with(&client, Some("[mock:tool] then the end")).await;
    for s in [&permission, &question] {
        wait_status(&client, &s.id, SessionStatus::Waiting, TURN_TIMEOUT).await;
    }
    wait_status(&client, &ended.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    client.delete_session(&ended.id, false).await.unwrap();
    let b = signed_in(&server).await;
    b.set_window(390, 844).await;
    let states = [
        ("permission", permission.id.as_str(), ".card-permission button[data-decision='deny']"),
        ("question", question.id.as_str(), ".card-question button[data-choice='Blue']"),
        ("crash", crash.id.as_str(), ".row[data-stop='error']"),
        ("ended", ended.id.as_str(), "#new-like-this"),
    ];
    for dark in [false, true] {
        b.set_color_scheme(dark).await;
        let scheme = if dark { "dark" } else { "light" };
        for (name, id, shown) in states {
            open_session(&b, &server, id, false).await;
            b.wait_for(shown).await;
            b.assert_fits_viewport(&format!("the {name} session at 390 px, {scheme}")).await;
            b.screenshot(&format!("ui_session_390_{name}_{scheme}")).await;
        }
        // The end, asked in place, fits too.
        open_session(&b, &server, &permission.id, true).await;
        b.click("#delete").await;
        b.wait_for("#confirm-end").await;
        b.assert_fits_viewport(&format!("asking to end a session at 390 px, {scheme}")).await;
        b.click("#cancel-end").await;
        b.wait_for("#delete").await;
        b.goto(&server.endpoint("/ui/#/sessions/ses_doesnotexist")).await;
        b.wait_for("#not-found").await;
        b.assert_fits_viewport(&format!("a session not found at 390 px, {scheme}")).await;
    }
    finish(&b, "ui_session_390").await;
}
