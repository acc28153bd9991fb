//! The browser harness itself ([`Browser`], chromedriver, screenshots) and the
//! server restarts on the same port that the UI tests rely on.

use std::time::{Duration, Instant};

use axum::response::Html;
use axum::routing::get;
use serde_json::json;
use tether_e2e::browser::artifacts_dir;
use tether_e2e::*;
use tether_sdk::reqwest;

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";

#[tokio::test]
async fn chromium_loads_health_and_saves_a_screenshot() {
    let started = Instant::now();
    let server = TestServer::start_with(ServerOptions::with_token("t0k")).await;
    let browser = Browser::open().await;
    let profile = browser.profile_dir().to_path_buf();
    assert!(profile.is_dir());

    let health = server.endpoint("/v1/health");
    browser.goto(&health).await;
    assert_eq!(browser.current_url().await, health);
    let text = browser.wait_text("body", "ok").await;
    assert!(text.contains(r#""status":"ok""#), "{text:?}");

    let path = browser.screenshot("browser_smoke").await;
    assert_eq!(path, artifacts_dir().join("browser_smoke.png"));
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(PNG_MAGIC), "{} is not a PNG", path.display());
    assert!(browser.js_heap_bytes().await > 0);

    drop(browser);
    assert!(!profile.exists(), "{} outlived its browser", profile.display());
    eprintln!("browser smoke: {:?}", started.elapsed());
}

#[tokio::test]
async fn kill9_and_restart_keep_the_port() {
    let mut server = TestServer::start_with(ServerOptions::with_token("t0k")).await;
    let (url, pid) = (server.url.clone(), server.pid);
    let health_url = server.endpoint("/v1/health");
    let health = || async { reqwest::get(&health_url).await.unwrap().json::<serde_json::Value>().await };

    server.kill9_and_restart_same_port().await;
    assert_eq!(server.url, url);
    assert_ne!(server.pid, pid);
    assert_eq!(health().await.unwrap(), json!({"status": "ok"}));

    let pid = server.pid;
    server.restart_same_port().await;
    assert_eq!(server.url, url);
    assert_ne!(server.pid, pid);
    assert_eq!(health().await.unwrap(), json!({"status": "ok"}));
}

/// Every helper, on a page of our own that changes over time.
#[tokio::test]
async fn helpers_drive_a_page() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let page = format!("http://{}/", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/", get(|| async { Html(FIXTURE) }));
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let browser = Browser::open().await;
    browser.goto(&page).await;

    // Things that come and go.
    browser.wait_for("#later").await;
    browser.wait_gone("#spinner").await;
    browser.wait_until("document.querySelectorAll('#list li').length === 0").await;
    assert_eq!(browser.eval::<String>("return document.title + arguments[0];", vec![json!("!")]).await, "fixture!");

    // Typing, picking, clicking.
    browser.fill("#name", "first").await;
    browser.fill("#name", "second").await;
    browser.fill("#notes", "line 1\nline 2").await;
    browser.select("#pick", "b").await;
    browser.click("#add").await;
    browser.wait_text("#list li", "second/b").await;
    browser.fill("#name", "third").await;
    browser.click("#add").await;
    browser.wait_until("document.querySelectorAll('#list li').length === 2").await;
    assert_eq!(browser.count("#list li").await, 2);
    assert_eq!(browser.texts("#list li").await, ["second/b", "third/b"]);
    assert_eq!(
        browser.eval::<String>("return document.getElementById('notes').value;", vec![]).await,
        "line 1\nline 2"
    );
    browser.press_enter("#name").await;
    browser.wait_text("#out", "entered third").await;

    // A file into a hidden <input type=file>.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("upload.txt");
    std::fs::write(&file, "12345").unwrap();
    browser.upload_file("#file", &file).await;
    browser.wait_text("#out", "file upload.txt 5").await;

    browser.gc().await;
    assert!(browser.js_heap_bytes().await > 0);
    browser.close().await;
    serving.abort();
}

/// A wait that cannot succeed panics after its timeout, naming what it
/// awaited, the url and the page's text, and saving a screenshot.
#[tokio::test]
async fn a_failed_wait_says_what_and_where() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let server = TestServer::start().await;
    let mut browser = Browser::open().await;
    browser.set_timeout(TIMEOUT);
    let health = server.endpoint("/v1/health");
    browser.goto(&health).await;
    let started = Instant::now();
    let waiting = tokio::spawn(async move {
        browser.wait_text("body", "no such text").await;
    });
    let message = match waiting.await {
        Ok(()) => panic!("the wait succeeded"),
        Err(e) => *e.into_panic().downcast::<String>().unwrap(),
    };
    let elapsed = started.elapsed();
    assert!(elapsed >= TIMEOUT && elapsed < TIMEOUT + Duration::from_secs(10), "{elapsed:?}");
    for needle in ["timed out after 1s", "\"no such text\"", &health, r#""status":"ok""#] {
        assert!(message.contains(needle), "{needle:?} missing from {message}");
    }
    let shot = message.rsplit_once("screenshot: ").map(|(_, path)| path.trim()).unwrap_or_default();
    assert!(std::fs::read(shot).is_ok_and(|png| png.starts_with(PNG_MAGIC)), "no screenshot in {message}");
}

const FIXTURE: &str = r#"<!doctype html>
<title>fixture</title>
<p id="spinner">loading…</p>
<p id="later" hidden>here</p>
<input id="name"> <textarea id="notes"></textarea>
<select id="pick"><option value="a">A</option><option value="b">B</option></select>
<button id="add">Add</button>
<ul id="list"></ul>
<label for="file">Upload</label><input type="file" id="file" style="display: none">
<p id="out"></p>
<script>
  const $ = (id) => document.getElementById(id);
  setTimeout(() => { $("later").hidden = false; $("spinner").remove(); }, 300);
  $("add").onclick = () => {
    const li = document.createElement("li");
    li.textContent = $("name").value + "/" + $("pick").value;
    $("list").append(li);
  };
  $("name").addEventListener("keydown", (e) => { if (e.key === "Enter") $("out").textContent = "entered " + e.target.value; });
  $("file").onchange = (e) => { const f = e.target.files[0]; $("out").textContent = "file " + f.name + " " + f.size; };
</script>
"#;
