//! The inspector's layout and shell in a real Chromium: every view fits a
//! phone (390 px) and a desktop (1280 px), in light and dark (the OS
//! setting emulated through CDP, and shown to take effect), with no sideways
//! scroll and no control out of reach; the sessions list names untitled
//! sessions by their first prompt; the header counts sessions waiting for a
//! person and says how the connection is; the sign-in and "Forget token"
//! appear only where a token is in use.

use fantoccini::Locator;
use tether_e2e::events::*;
use tether_e2e::*;
use tether_sdk::{CreateSession, SessionStatus};

const TOKEN: &str = "layout-t0ken";

async fn with_token() -> TestServer {
    TestServer::start_with(ServerOptions::with_token(TOKEN)).await
}

/// A browser on `/ui/` of `server` (which has [`TOKEN`]), signed in.
async fn signed_in(server: &TestServer) -> Browser {
    Browser::signed_in(server, TOKEN).await
}

async fn create(client: &tether_sdk::Client, prompt: Option<&str>, title: Option<&str>) -> tether_sdk::Session {
    let create = CreateSession {
        agent: "mock".into(),
        prompt: prompt.map(Into::into),
        title: title.map(Into::into),
        ..Default::default()
    };
    client.create_session(&create).await.expect("create a mock session")
}

/// Asserts the page reported no script error or CSP violation.
async fn no_errors(b: &Browser) {
    let errors: Vec<String> = b.eval("return window.tether.errors", vec![]).await;
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
}

async fn background(b: &Browser) -> String {
    b.eval("return getComputedStyle(document.body).backgroundColor", vec![]).await
}

#[tokio::test]
async fn every_view_fits_a_phone_and_a_desktop_in_light_and_dark() {
    let server = with_token().await;
    let client = server.client();
    let tool = create(&client, Some("[mock:tool] list the files"), None).await;
    let permission = create(&client, Some("[mock:permission]"), None).await;
    let question = create(&client, Some("[mock:question]"), None).await;
    for s in [&permission, &question] {
        wait_status(&client, &s.id, SessionStatus::Waiting, TURN_TIMEOUT).await;
    }
    wait_status(&client, &tool.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    std::fs::write(
        server.workspace().join("notes.txt"),
        "A file with a line long enough to need wrapping on a phone. ".repeat(8),
    )
    .unwrap();

    let b = signed_in(&server).await;
    // The check sees what it must: a control pushed off the side, a page
    // wider than the window; and a wide box that scrolls on its own is fine.
    b.set_window(390, 844).await;
    let probe = "const b = document.createElement('button'); b.id = 'probe'; b.textContent = 'probe'; \
                 b.style.marginLeft = '500px'; document.querySelector('main').prepend(b); return null";
    b.eval::<serde_json::Value>(probe, vec![]).await;
    let problems = b.fit_problems().await;
    assert!(problems.iter().any(|p| p.contains("button#probe")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("<main> scrolls sideways")), "{problems:?}");
    let scroller = "const p = document.querySelector('#probe'); const box = document.createElement('div'); \
                    box.style.overflowX = 'auto'; p.replaceWith(box); box.append(p); return null";
    b.eval::<serde_json::Value>(scroller, vec![]).await;
    assert_eq!(b.fit_problems().await, Vec::<String>::new());
    b.eval::<serde_json::Value>("document.querySelector('#probe').parentElement.remove(); return null", vec![]).await;
    // (route, what shows once the view is there)
    let views = [
        ("#/".to_string(), format!(".session-row[data-session='{}'] .pill[data-status='waiting']", permission.id)),
        (format!("#/sessions/{}", permission.id), ".card-permission button[data-decision='allow_once']".to_string()),
        (format!("#/sessions/{}", question.id), ".card-question button[data-choice='Blue']".to_string()),
        (format!("#/sessions/{}", tool.id), ".row[data-kind='tool_call']".to_string()),
        (format!("#/sessions/{}/events", tool.id), "#events .ev-row[data-seq='1'] .sum".to_string()),
        ("#/files?file=notes.txt".to_string(), "#file-text".to_string()),
        ("#/activity".to_string(), "#activity li[data-type='turn.completed']".to_string()),
        ("#/server".to_string(), "#agents tr[data-agent='mock']".to_string()),
        ("#/processes".to_string(), "#new-terminal".to_string()),
    ];
    let mut backgrounds = Vec::new();
    for (width, height) in [(390, 844), (1280, 900)] {
        b.set_window(width, height).await;
        for dark in [false, true] {
            b.set_color_scheme(dark).await;
            let scheme = if dark { "dark" } else { "light" };
            for (route, ready) in &views {
                b.goto(&server.endpoint(&format!("/ui/{route}"))).await;
                b.wait_for(ready).await;
                b.wait_for("#conn[data-state='live']").await;
                b.assert_fits_viewport(&format!("{route} at {width} px, {scheme}")).await;
            }
            backgrounds.push((scheme, background(&b).await));
            no_errors(&b).await;
        }
    }
    // The emulated OS setting reached the page: its colours follow it.
    for pair in backgrounds.chunks(2) {
        assert_ne!(pair[0].1, pair[1].1, "light and dark have the same background: {backgrounds:?}");
    }
    // The header is short on a phone (two rows), not a third of the screen.
    b.set_window(390, 844).await;
    b.goto(&server.endpoint("/ui/#/")).await;
    b.wait_for("#waiting").await;
    let header: f64 =
        b.eval("return document.querySelector('header.top').getBoundingClientRect().height", vec![]).await;
    assert!(header <= 100.0, "the header is {header} px high at 390 px");
    // The view container takes focus on navigation but draws no ring.
    let ring: String = b.eval("return getComputedStyle(document.querySelector('main')).outlineStyle", vec![]).await;
    assert_eq!(ring, "none");
    no_errors(&b).await;
}

#[tokio::test]
async fn the_sessions_list_names_each_session_and_puts_those_waiting_first() {
    let server = with_token().await;
    let client = server.client();
    let untitled = create(&client, Some("Fix the flaky parser test\nand explain what was wrong"), None).await;
    let titled = create(&client, Some("say hi"), Some("Named by hand")).await;
    let empty = create(&client, None, None).await;
    wait_status(&client, &titled.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    wait_status(&client, &untitled.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    let waiting = create(&client, Some("[mock:permission]"), None).await;
    wait_status(&client, &waiting.id, SessionStatus::Waiting, TURN_TIMEOUT).await;

    let b = signed_in(&server).await;
    let row = |id: &str, part: &str| format!(".session-row[data-session='{id}'] {part}");
    let title = b.wait_text(&row(&untitled.id, ".session-title"), "Fix the flaky parser test").await;
    assert_eq!(title, "Fix the flaky parser test", "only the first line of the prompt");
    b.wait_text(&row(&titled.id, ".session-title"), "Named by hand").await;
    b.wait_text(&row(&empty.id, ".session-title"), "New mock session").await;
    // The assistant's last line, the status in words, the agent.
    b.wait_text(&row(&titled.id, ".last-text"), "Mock reply to turn 1: say hi").await;
    b.wait_text(&row(&titled.id, ".pill"), "Idle").await;
    b.wait_text(&row(&titled.id, ".agent"), "mock").await;
    b.wait_text(&row(&waiting.id, ".pill"), "Needs you").await;
    // Waiting for a person: first in the list.
    let first: String = b.eval("return document.querySelector('.session-row').dataset.session", vec![]).await;
    assert_eq!(first, waiting.id);
    // The create form is closed behind "New session", its extras under "More options".
    assert_eq!(b.count("#new-panel:not([hidden])").await, 0, "the form is open over a list of sessions");
    b.click("#new-session-open").await;
    b.wait_for("#new-agent").await;
    b.wait_for("#new-prompt").await;
    b.wait_gone("#new-title").await;
    b.wait_gone("#new-mcp").await;
    b.click("#more-options > summary").await;
    b.wait_for("#new-title").await;
    b.wait_gone("#new-mcp").await;
    b.wait_gone("#new-skills input").await;
    b.screenshot("ui_layout_sessions").await;
    no_errors(&b).await;
}

#[tokio::test]
async fn the_header_counts_sessions_waiting_for_a_person_and_says_how_the_connection_is() {
    let mut server = with_token().await;
    let client = server.client();
    let b = signed_in(&server).await;
    b.wait_for("#waiting[data-count='0']").await;
    let live = b.wait_text("#conn[data-state='live']", "Live").await;
    assert_eq!(live, "Live");

    let session = create(&client, Some("[mock:permission]"), None).await;
    let count = b.wait_text("#waiting[data-count='1']", "1").await;
    assert!(count.contains("Needs you"), "{count}");
    // The count links to the sessions waiting.
    b.click("#waiting").await;
    b.wait_until("location.hash === '#/?status=waiting'").await;
    b.wait_for("#filter-status").await;
    let filter: String = b.eval("return document.querySelector('#filter-status').value", vec![]).await;
    assert_eq!(filter, "waiting");
    b.click(&format!(".session-row[data-session='{}'] .session-title", session.id)).await;
    b.click(".card-permission button[data-decision='allow_once']").await;
    b.wait_for("#waiting[data-count='0']").await;
    wait_status(&client, &session.id, SessionStatus::Idle, TURN_TIMEOUT).await;

    // Server gone: reconnecting, then offline, in words; back: live.
    server.kill9().await;
    b.wait_text("#conn[data-state='reconnecting']", "Reconnecting").await;
    b.wait_text("#conn[data-state='offline']", "Offline").await;
    server.restart_same_port().await;
    b.wait_text("#conn[data-state='live']", "Live").await;
    no_errors(&b).await;
}

#[tokio::test]
async fn the_sign_in_and_forget_token_show_only_where_a_token_is_in_use() {
    // No token: no sign-in, no "Forget token", even with a token kept from elsewhere.
    let open = TestServer::start().await;
    let b = Browser::open().await;
    b.goto(&open.endpoint("/ui/")).await;
    let _: serde_json::Value =
        b.eval("localStorage.setItem('tether.token', 'from-another-server'); return null", vec![]).await;
    b.client().refresh().await.unwrap();
    b.wait_for("#sessions").await;
    assert_eq!(b.count("#login").await, 0, "a server without a token asked for one");
    b.wait_gone("#forget").await;
    let kept: Option<String> = b.eval("return localStorage.getItem('tether.token')", vec![]).await;
    assert_eq!(kept, None, "a token the server does not need is kept");
    no_errors(&b).await;
    drop(b);

    // A token: the sign-in says so plainly, with no error before a try.
    let server = with_token().await;
    let b = Browser::open().await;
    b.goto(&server.endpoint("/ui/")).await;
    b.wait_text("#login h1", "This server needs its token").await;
    b.wait_gone("#login-error").await;
    b.wait_gone("#forget").await;
    b.wait_gone("nav.nav").await;
    b.fill("#token", TOKEN).await;
    b.click("#login button[type=submit]").await;
    b.wait_for("#sessions").await;
    b.wait_for("#forget").await;
    b.click("#forget").await;
    b.wait_for("#login #token").await;
    b.wait_gone("#login-error").await;
    b.wait_gone("#forget").await;
    no_errors(&b).await;
}

#[tokio::test]
async fn files_reports_every_upload_keeps_the_open_file_in_the_url_and_says_a_folder_is_missing() {
    let server = with_token().await;
    let b = signed_in(&server).await;
    b.goto(&server.endpoint("/ui/#/files")).await;
    b.wait_for("#entries").await;
    b.wait_for("#conn[data-state='live']").await;
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<String> = ["one.txt", "two.txt"]
        .iter()
        .map(|name| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("this is {name}\n")).unwrap();
            path.to_str().unwrap().to_string()
        })
        .collect();
    // Both files at once (WebDriver takes several paths joined by newlines).
    let input = b.client().find(Locator::Css("#upload")).await.unwrap();
    input.send_keys(&paths.join("\n")).await.unwrap();
    b.wait_for("#upload-status li[data-name='one.txt'][data-state='done']").await;
    b.wait_for("#upload-status li[data-name='two.txt'][data-state='done']").await;
    b.wait_text("#upload-status", "2 of 2 files uploaded").await;

    // The file opened is in the URL: a reload shows it again.
    b.click("#entries tr[data-path='two.txt'] td.name a").await;
    b.wait_text("#file-text", "this is two.txt").await;
    b.wait_until("location.hash === '#/files?file=two.txt'").await;
    b.client().refresh().await.unwrap();
    b.wait_text("#file-text", "this is two.txt").await;

    // A folder that is not there says so; its actions are off.
    b.goto(&server.endpoint("/ui/#/files?path=no/such/folder")).await;
    b.wait_text("#missing", "does not exist").await;
    let disabled: bool = b
        .eval(
            "return document.querySelector('#upload').disabled && document.querySelector('#download-dir').disabled",
            vec![],
        )
        .await;
    assert!(disabled, "the actions of a missing folder are on");
    no_errors(&b).await;
}
