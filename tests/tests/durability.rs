//! Durability under a full disk, and an honest start: the data dir on a
//! small tmpfs filled up in the middle of a flood loses no event; health
//! answers while the start is held; a read-only or full data dir at start is
//! one clear line and exit code 2.
//!
//! The tmpfs tests need to mount (root, or CAP_SYS_ADMIN): without it they
//! fail and say so.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tether_e2e::events::*;
use tether_e2e::http::{events_json, expect_problem, send, RawFrame, RawSse};
use tether_e2e::server::scrub_env;
use tether_e2e::*;
use tether_sdk::reqwest::{self, Method};
use tether_sdk::{Event, EventBody, StopReason};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let parent = tempfile::Builder::new().prefix("tether-e2e-tmpfs-").tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", options, "tmpfs"]).arg(&dir).output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "this test needs to mount a tmpfs (run it as root or with CAP_SYS_ADMIN): `mount -t tmpfs -o {options}` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("this test needs `mount` to mount a tmpfs: {e}"),
        }
        Tmpfs { dir, _parent: parent }
    }

    fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.dir).status().is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it open: detach it now, it goes when released.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `path` until the file system is full (ENOSPC); the bytes written.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0xa5u8; 1 << 20];
    let mut written = 0u64;
    for size in [1 << 20, 4096, 1] {
        loop {
            match file.write(&chunk[..size]) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    written
}

async fn info(client: &tether_sdk::Client) -> Value {
    let resp = send(client.request(Method::GET, "/v1/info")).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

/// Polls `/v1/info` (every 20 ms, up to `timeout`) until `pred` holds of its `store`.
async fn wait_store(
    client: &tether_sdk::Client,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let store = info(client).await["store"].clone();
        if pred(&store) {
            return store;
        }
        assert!(Instant::now() < deadline, "the store was not {what} within {timeout:?}: {store}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_flood_loses_no_event_and_ends_the_turn_well() {
    let disk = Tmpfs::mount("size=256m");
    let server = TestServer::start_with(ServerOptions {
        data_dir: Some(disk.path().to_path_buf()),
        // A stall of a second or more ends the turns that ran through it;
        // no reserve: the agent is held back until space returns.
        // No watermarks (they would stop the flood before the disk is full).
        extra_args: [
            "--store-stall-limit-ms",
            "1000",
            "--disk-reserve-mb",
            "0",
            "--disk-low-mb",
            "0",
            "--disk-flood-mb",
            "0",
            "--keepalive-secs",
            "1",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .await;
    let client = server.client();
    let session = mock_session(&client).await;
    let id = session.id.clone();
    client.send_text(&id, "[mock:text] before").await.unwrap();
    let after = collect_turn(&client, &id, 0).await.last().unwrap().seq;

    // One raw client reads everything the flood sends, through the stall.
    let path = format!("/v1/sessions/{id}/events/stream");
    let mut sse = RawSse::connect(client.request(Method::GET, &path).header("Last-Event-ID", after.to_string())).await;
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let (mut frames, mut stalled): (Vec<RawFrame>, Vec<RawFrame>) = (Vec::new(), Vec::new());
        loop {
            let frame = sse.next_frame(Duration::from_secs(120)).await.expect("the stream ended");
            // While the store is stalled, the stream says so (not an event: no id, no seq).
            if frame.event.as_deref() == Some("stream.stalled") {
                assert!(frame.id.is_none(), "{frame:?}");
                stalled.push(frame);
                continue;
            }
            let done = frame.event_type() == "turn.completed";
            frames.push(frame);
            let _ = seen_tx.send(frames.len());
            if done {
                return (frames, stalled);
            }
        }
    });
    let flood = client.send_text(&id, "[mock:flood:1000000]").await.unwrap();
    seen_rx.wait_for(|n| *n >= 20_000).await.expect("the reader stopped before 20,000 events");

    // The disk fills up in the middle of the flood.
    let filler = disk.path().join("filler");
    let filled = tokio::task::spawn_blocking({
        let filler = filler.clone();
        move || fill(&filler)
    })
    .await
    .unwrap();
    assert!(filled > 0);
    let store = wait_store(&client, Duration::from_secs(60), "stalled", |s| s["state"] == "stalled").await;
    assert_eq!(store["reason"], "disk_full", "{store}");
    eprintln!("filled {filled} bytes; stalled: {store}");

    // While it is stalled: health and reads answer, the stall shows, what cannot wait is refused.
    let health = send(client.request(Method::GET, "/v1/health")).await;
    assert_eq!(health.status().as_u16(), 200);
    let metrics = send(client.request(Method::GET, "/metrics")).await.text().await.unwrap();
    assert!(metrics.contains("tether_store_stalled{reason=\"disk_full\"} 1"), "{metrics}");
    let listed = send(client.request(Method::GET, "/v1/sessions")).await;
    assert_eq!(listed.status().as_u16(), 200);
    let create = send(client.request(Method::POST, "/v1/sessions").json(&serde_json::json!({"agent": "mock"}))).await;
    assert_eq!(create.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    expect_problem(create, 507, "insufficient_storage", &["disk", "full"]).await;
    let message = send(
        client.request(Method::POST, &format!("/v1/sessions/{id}/messages")).json(&serde_json::json!({"text": "hi"})),
    )
    .await;
    expect_problem(message, 507, "insufficient_storage", &["full"]).await;

    // Full for longer than the limit (1 s), with the agent held back; then space returns.
    let long = wait_store(&client, Duration::from_secs(30), "stalled for 1.5 s", |s| {
        s["state"] != "stalled" || s["stalled_ms"].as_u64().unwrap_or(0) >= 1500
    })
    .await;
    // A stall past the keepalive period (1 s here) is told on the stream (a
    // checkpoint may free room and end it sooner: then there is nothing to tell).
    let told_expected = long["state"] == "stalled";
    assert!(health_ok(&client).await, "health stopped answering during the stall");
    std::fs::remove_file(&filler).unwrap();

    let (received, stalled) =
        tokio::time::timeout(Duration::from_secs(120), reader).await.expect("the flood never ended").unwrap();
    if told_expected {
        let told = stalled.first().unwrap_or_else(|| panic!("the stream never said it was stalled"));
        assert_eq!(told.data["reason"], "disk_full", "{:?}", told.data);
        assert!(told.data["message"].as_str().unwrap().contains("nothing is lost"), "{:?}", told.data);
    } else {
        eprintln!("the stall ended within 1.5 s: no stream.stalled frame was due");
    }
    let store = wait_store(&client, Duration::from_secs(10), "ok", |s| s["state"] == "ok").await;
    assert!(store["commit_failures"].as_u64().unwrap() >= 1, "{store}");
    assert!(store["last_error"].as_str().unwrap().contains("full"), "{store}");

    // Every event the client saw is in the replay, the same; seq gap-free from 1.
    let stored = events_json(&client, &id, 0).await;
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "replay gap at index {i}");
    }
    for (i, f) in received.iter().enumerate() {
        assert_eq!(f.seq(), after + 1 + i as u64, "the client saw a gap or a duplicate");
        assert_eq!(&stored[f.seq() as usize - 1], &f.data, "event {} differs in the replay", f.seq());
    }
    let events: Vec<Event> = stored.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect();
    assert_well_formed(&events);

    // The turn held back through the long stall ended: a retryable store_full error, then stop_reason error.
    let flood_events = &events[after as usize..];
    let error = flood_events
        .iter()
        .find_map(|e| match &e.body {
            EventBody::Error(err) if err.code == "store_full" => Some(err),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no store_full error:\n{}", describe_tail(&events, 20)));
    assert!(error.retryable);
    assert!(error.message.contains("full"), "{}", error.message);
    let done = turns_completed(flood_events);
    assert_eq!(done.len(), 1, "{}", describe_tail(&events, 20));
    assert_eq!(done[0].turn_id, flood.turn_id);
    assert_eq!(done[0].stop_reason, StopReason::Error, "{}", describe_tail(&events, 20));
    assert_eq!(done[0].error.as_ref().map(|e| e.code.as_str()), Some("store_full"));
    eprintln!("{} events received live, {} stored, after the stall: {store}", received.len(), stored.len());
    // The client saw it end too.
    assert_eq!(received.last().unwrap().event_type(), "turn.completed");

    // And the server goes on: the session takes a new turn, a new session works.
    client.send_text(&id, "[mock:text] after").await.unwrap();
    let last = events.last().unwrap().seq;
    let next = collect_turn(&client, &id, last).await;
    assert!(final_text(&next).ends_with(": after"), "{}", describe(&next));
    let fresh = mock_session(&client).await;
    client.send_text(&fresh.id, "[mock:text] fresh").await.unwrap();
    let fresh_turn = collect_turn(&client, &fresh.id, 0).await;
    assert_eq!(final_text(&fresh_turn), "Mock reply to turn 1: fresh");
    drop(server);
    drop(disk);
}

/// `GET /v1/health` as JSON (200 whatever it says).
async fn health(client: &tether_sdk::Client) -> Value {
    let resp = send(client.request(Method::GET, "/v1/health")).await;
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

/// Waits (up to 10 s) for `server.disk {state}` on the global stream, after gseq `after`; its gseq.
async fn wait_disk_state(client: &tether_sdk::Client, after: u64, state: &str) -> u64 {
    let mut all = client.all_events(Some(after));
    let got = wait_for(
        &mut all,
        Duration::from_secs(10),
        |e| matches!(&e.body, EventBody::ServerDisk(d) if d.state == state),
    )
    .await;
    got.last().unwrap().gseq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_that_stays_full_ends_the_turn_with_store_full_refuses_new_work_and_recovers() {
    let disk = Tmpfs::mount("size=128m");
    let server = TestServer::start_with(ServerOptions {
        data_dir: Some(disk.path().to_path_buf()),
        extra_args: ["--disk-low-mb", "16", "--disk-flood-mb", "4", "--disk-reserve-mb", "16"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .await;
    let client = server.client();
    // The reserve is made at start, while there is room.
    let reserve = disk.path().join("reserve");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&reserve).map(|m| m.len()).unwrap_or(0) != 16 << 20 {
        assert!(Instant::now() < deadline, "no reserve in the data dir");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let session = mock_session(&client).await;
    let id = session.id.clone();
    client.send_text(&id, "[mock:text] before").await.unwrap();
    let after = collect_turn(&client, &id, 0).await.last().unwrap().seq;

    let path = format!("/v1/sessions/{id}/events/stream");
    let mut sse = RawSse::connect(client.request(Method::GET, &path).header("Last-Event-ID", after.to_string())).await;
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0usize);
    let reader = tokio::spawn(async move {
        let mut frames: Vec<RawFrame> = Vec::new();
        loop {
            let frame = sse.next_frame(Duration::from_secs(120)).await.expect("the stream ended");
            let done = frame.event_type() == "turn.completed";
            frames.push(frame);
            let _ = seen_tx.send(frames.len());
            if done {
                return frames;
            }
        }
    });
    let flood = client.send_text(&id, "[mock:flood:1000000]").await.unwrap();
    seen_rx.wait_for(|n| *n >= 20_000).await.expect("the reader stopped before 20,000 events");

    // The disk fills up and stays full.
    let filler = disk.path().join("filler");
    let filled = tokio::task::spawn_blocking({
        let filler = filler.clone();
        move || fill(&filler)
    })
    .await
    .unwrap();
    let full_at = Instant::now();
    assert!(filled > 0);
    // The turn ends within a bound, seen live: a store_full error, then its end.
    let received = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the turn did not end on a full disk")
        .unwrap();
    eprintln!("filled {filled} bytes; the turn ended {:?} later", full_at.elapsed());
    let last = received.last().unwrap();
    assert_eq!(last.event_type(), "turn.completed");
    assert_eq!(last.data["data"]["stop_reason"], "error", "{:?}", last.data);
    assert_eq!(last.data["data"]["error"]["code"], "store_full", "{:?}", last.data);
    assert!(received.iter().any(|f| f.event_type() == "error" && f.data["data"]["code"] == "store_full"));
    // The disk is still full: health says so, new work is refused.
    let h = health(&client).await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["reasons"].as_array().unwrap().iter().any(|r| r == "disk_full"), "{h}");
    let create = send(client.request(Method::POST, "/v1/sessions").json(&serde_json::json!({"agent": "mock"}))).await;
    assert_eq!(create.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    expect_problem(create, 507, "insufficient_storage", &["disk", "full", "free some space"]).await;
    let message = send(
        client.request(Method::POST, &format!("/v1/sessions/{id}/messages")).json(&serde_json::json!({"text": "hi"})),
    )
    .await;
    expect_problem(message, 507, "insufficient_storage", &["full"]).await;
    let full_gseq = wait_disk_state(&client, 0, "full").await;

    // Everything the client saw is in the replay, the same, gap-free from 1.
    let stored = events_json(&client, &id, 0).await;
    for (i, e) in stored.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "replay gap at index {i}");
    }
    for (i, f) in received.iter().enumerate() {
        assert_eq!(f.seq(), after + 1 + i as u64, "the client saw a gap or a duplicate");
        assert_eq!(&stored[f.seq() as usize - 1], &f.data, "event {} differs in the replay", f.seq());
    }
    let events: Vec<Event> = stored.iter().map(|v| serde_json::from_value(v.clone()).unwrap()).collect();
    assert_well_formed(&events);
    let done = turns_completed(&events[after as usize..]);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].turn_id, flood.turn_id);
    let stopped = events.iter().rev().find_map(|e| match &e.body {
        EventBody::AgentExited(x) => Some(x.clone()),
        _ => None,
    });
    assert_eq!(stopped.and_then(|x| x.reason), Some(tether_sdk::AgentStopReason::DiskFull));

    // Space returns: health is ok again, the reserve is back, a new turn runs.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while health(&client).await["status"] != "ok" {
        assert!(Instant::now() < deadline, "health stayed degraded after space returned: {}", health(&client).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client.send_text(&id, "[mock:text] after").await.unwrap();
    let next = collect_turn(&client, &id, stored.len() as u64).await;
    assert!(final_text(&next).ends_with(": after"), "{}", describe(&next));
    let fresh = mock_session(&client).await;
    client.send_text(&fresh.id, "[mock:text] fresh").await.unwrap();
    assert_eq!(final_text(&collect_turn(&client, &fresh.id, 0).await), "Mock reply to turn 1: fresh");
    wait_disk_state(&client, full_gseq, "ok").await;
    assert!(std::fs::metadata(&reserve).is_ok(), "the reserve was made again");
    drop(server);
    drop(disk);
}

async fn health_ok(client: &tether_sdk::Client) -> bool {
    send(client.request(Method::GET, "/v1/health")).await.status().as_u16() == 200
}

/// `tether serve` on `data_dir` with `extra` args; the child with its stdout piped.
fn spawn_serve(data_dir: &Path, workspace: &Path, extra: &[&str]) -> std::process::Child {
    let mut cmd = Command::new(tether_bin());
    cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"]).arg(data_dir);
    cmd.arg("--workspace").arg(workspace).args(extra);
    scrub_env(&mut cmd);
    cmd.env("TETHER_LOG", "warn");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Runs `tether serve` to its exit (it must exit within 20 s): (exit code, stdout, stderr).
async fn serve_to_exit(data_dir: &Path) -> (Option<i32>, String, String) {
    let ws = tempfile::tempdir().unwrap();
    let child = spawn_serve(data_dir, ws.path(), &[]);
    let out =
        tokio::time::timeout(Duration::from_secs(20), tokio::task::spawn_blocking(move || child.wait_with_output()))
            .await
            .expect("the server did not exit")
            .unwrap()
            .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_or_full_data_dir_at_start_is_one_clear_line() {
    let ro = Tmpfs::mount("ro,size=1m");
    let (code, stdout, stderr) = serve_to_exit(ro.path()).await;
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert_eq!(stdout, "", "nothing is listening, so no address line");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("tether: ") && stderr.contains("read-only"), "{stderr:?}");

    let full = Tmpfs::mount("size=1m");
    fill(&full.path().join("filler"));
    let (code, stdout, stderr) = serve_to_exit(full.path()).await;
    assert_eq!(code, Some(2), "stderr: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.starts_with("tether: ") && stderr.contains("is full"), "{stderr:?}");
    assert!(stderr.contains(&full.path().display().to_string()), "names the data dir: {stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_starting_while_the_start_is_held_then_ok() {
    let data = tempfile::tempdir().unwrap();
    let ws = tempfile::tempdir().unwrap();
    let gate = data.path().join("gate");
    let mut child = spawn_serve(data.path(), ws.path(), &["--start-gate", gate.to_str().unwrap()]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit_once(" listening on ").map(|(_, u)| u.to_string()).expect("the address line");
    let http = reqwest::Client::new();

    // Bound, not ready: health says so at once; everything else is a 503 problem `starting`.
    let health = http.get(format!("{url}/v1/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert_eq!(health.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = health.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "starting"}));
    let sessions = http.get(format!("{url}/v1/sessions")).send().await.unwrap();
    assert_eq!(sessions.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    expect_problem(sessions, 503, "starting", &["starting"]).await;
    let create =
        http.post(format!("{url}/v1/sessions")).json(&serde_json::json!({"agent": "mock"})).send().await.unwrap();
    expect_problem(create, 503, "starting", &[]).await;
    // Still held: nothing opened the store yet.
    assert!(!data.path().join("tether.db").exists());

    // Let the start go on: health turns ok and the API answers.
    std::fs::write(&gate, b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http.get(format!("{url}/v1/health")).send().await.unwrap();
        if resp.status().as_u16() == 200 {
            assert_eq!(resp.json::<Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
            break;
        }
        assert_eq!(resp.status().as_u16(), 503);
        assert!(Instant::now() < deadline, "not ready 20 s after the gate opened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sessions = http.get(format!("{url}/v1/sessions")).send().await.unwrap();
    assert_eq!(sessions.status().as_u16(), 200);
    let _ = child.kill();
    let _ = child.wait();

    // A SIGTERM while the start is held ends the server cleanly.
    std::fs::remove_file(&gate).unwrap();
    let mut child = spawn_serve(data.path(), ws.path(), &["--start-gate", gate.to_str().unwrap()]);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().rsplit_once(" listening on ").map(|(_, u)| u.to_string()).unwrap();
    let health = http.get(format!("{url}/v1/health")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 503, "the handler is installed once it answers");
    assert!(procs::signal(child.id() as i32, libc::SIGTERM));
    let status = tokio::time::timeout(Duration::from_secs(10), tokio::task::spawn_blocking(move || child.wait()))
        .await
        .expect("no exit after SIGTERM")
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status}");
}
