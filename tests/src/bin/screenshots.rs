//! `cargo run -p tether-e2e --bin screenshots [-- --out DIR]`: regenerates the
//! inspector's screenshots in `docs/` (or DIR): every view at a desktop
//! width (1280 px, `ui-<view>.png`) and a phone's (390 px,
//! `ui-<view>-phone.png`; `new-session` is the create form), plus the
//! sessions list and a session in dark (`ui-sessions-dark.png`,
//! `ui-session-dark.png`). It starts a server (no token) and has the mock
//! agent make a session with a tool call and an open permission, one with an
//! open question, and a few finished ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use tether_e2e::events::{wait_status, TURN_TIMEOUT};
use tether_e2e::{Browser, TestServer};
use tether_sdk::{CreateSession, SessionStatus};

async fn create(client: &tether_sdk::Client, prompt: &str, title: Option<&str>) -> tether_sdk::Session {
    let create = CreateSession {
        agent: "mock".into(),
        prompt: Some(prompt.into()),
        title: title.map(Into::into),
        ..Default::default()
    };
    client.create_session(&create).await.expect("create a mock session")
}

#[tokio::main]
async fn main() {
    let out = tether_e2e::benchkit::out_dir();
    std::fs::create_dir_all(&out).unwrap();

    let server = TestServer::start().await;
    let client = server.client();
    let ws = server.workspace();
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(
        ws.join("README.md"),
        "# parser\n\nA small expression parser.\n\n## Build\n\n    cargo build\n\n## Test\n\n    cargo test\n",
    )
    .unwrap();
    std::fs::write(ws.join("src/main.rs"), "fn main() {\n    println!(\"hello\");\n}\n").unwrap();
    std::fs::write(ws.join("Cargo.toml"), "[package]\nname = \"parser\"\nversion = \"0.1.0\"\n").unwrap();

    // Finished sessions for the list.
    let done = create(&client, "Summarize what changed in the parser since last week", None).await;
    let titled = create(&client, "[mock:tool] run the test suite", Some("Nightly test run")).await;
    for s in [&done, &titled] {
        wait_status(&client, &s.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    }
    // A session with a tool call, then a permission left open.
    let main = create(&client, "[mock:tool] list the files in src", None).await;
    wait_status(&client, &main.id, SessionStatus::Idle, TURN_TIMEOUT).await;
    client.send_text(&main.id, "[mock:permission] now write the notes file").await.unwrap();
    wait_status(&client, &main.id, SessionStatus::Waiting, TURN_TIMEOUT).await;
    // A question left open.
    let question = create(&client, "[mock:question] pick the theme colour", None).await;
    wait_status(&client, &question.id, SessionStatus::Waiting, TURN_TIMEOUT).await;

    let b = Browser::open().await;
    let views: Vec<(&str, String, String)> = vec![
        ("sessions", "#/".into(), ".session-row .pill[data-status='waiting']".into()),
        ("session", format!("#/sessions/{}", main.id), ".card-permission button[data-decision='allow_once']".into()),
        ("question", format!("#/sessions/{}", question.id), ".card-question button[data-choice='Blue']".into()),
        ("events", format!("#/sessions/{}/events?seq=3", main.id), "#event-json".into()),
        ("files", "#/files?file=README.md".into(), "#file-text".into()),
        ("activity", "#/activity".into(), "#activity li[data-type='turn.completed']".into()),
        ("server", "#/server".into(), "#agents tr[data-agent='mock']".into()),
    ];
    let mut written = Vec::new();
    for (suffix, width, height) in [("", 1280, 800), ("-phone", 390, 844)] {
        b.set_window(width, height).await;
        b.set_color_scheme(false).await;
        for (name, route, ready) in &views {
            // A fresh page load each time (a goto to the same URL with only a
            // hash would keep the last view's state, such as an open form).
            b.goto("about:blank").await;
            b.goto(&server.endpoint(&format!("/ui/{route}"))).await;
            b.wait_for(ready).await;
            b.wait_for("#conn[data-state='live']").await;
            b.assert_fits_viewport(&format!("{route} at {width} px")).await;
            // The view's last frame is painted.
            let _: bool = b
                .eval(
                    "return new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))",
                    vec![],
                )
                .await;
            let path = out.join(format!("ui-{name}{suffix}.png"));
            std::fs::write(&path, b.screenshot_png().await).unwrap();
            written.push(path);
        }
        // The create form, with its options open.
        b.goto("about:blank").await;
        b.goto(&server.endpoint("/ui/#/")).await;
        b.click("#new-session-open").await;
        b.click("#more-options > summary").await;
        b.wait_for("#new-title").await;
        let path = out.join(format!("ui-new-session{suffix}.png"));
        std::fs::write(&path, b.screenshot_png().await).unwrap();
        written.push(path);
    }
    b.set_window(1280, 800).await;
    b.set_color_scheme(true).await;
    for (name, route, ready) in &views[..2] {
        b.goto("about:blank").await;
        b.goto(&server.endpoint(&format!("/ui/{route}"))).await;
        b.wait_for(ready).await;
        b.wait_for("#conn[data-state='live']").await;
        let path = out.join(format!("ui-{name}-dark.png"));
        std::fs::write(&path, b.screenshot_png().await).unwrap();
        written.push(path);
    }
    let errors: Vec<String> = b.eval("return window.tether.errors", vec![]).await;
    assert!(errors.is_empty(), "the page reported errors: {errors:#?}");
    for path in written {
        println!("{}", path.canonicalize().unwrap_or(path).display());
    }
}
