//! The filesystem API: confinement to the workspace root (every escape
//! refused, nothing outside touched), the round trip of every route, Range
//! reads, atomic concurrent writes, streaming with bounded server memory,
//! and the upload limit.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::json;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::*;
use tether_sdk::reqwest::{Method, RequestBuilder};
use tether_sdk::{Client, FsKind};

fn q(client: &Client, method: Method, route: &str, path: &str) -> RequestBuilder {
    client.request(method, route).query(&[("path", path)])
}

/// Every file (relative path, contents) under `dir`, sorted.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if e.file_type().unwrap().is_dir() {
                out.push((rel + "/", Vec::new()));
                stack.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn fs_escape_attempts_are_refused_and_nothing_outside_is_touched() {
    let server = TestServer::start().await;
    let client = server.client();
    let ws = server.workspace();
    let outside_tmp = tempfile::Builder::new().prefix("tether-e2e-outside-").tempdir().unwrap();
    let outside = outside_tmp.path().canonicalize().unwrap();
    std::fs::write(outside.join("secret"), b"do not touch").unwrap();
    std::fs::create_dir(outside.join("dir")).unwrap();
    std::fs::write(outside.join("dir/inner"), b"inner").unwrap();
    symlink(&outside, ws.join("out")).unwrap();
    symlink(outside.join("secret"), ws.join("secret_link")).unwrap();
    std::fs::create_dir(ws.join("inside")).unwrap();
    let before = snapshot(&outside);

    let outside_name = outside.file_name().unwrap().to_string_lossy().into_owned();
    let dotdot = format!("../{outside_name}/secret");
    let absolute = outside.join("secret").to_string_lossy().into_owned();
    let dotdot_dir = format!("../{outside_name}/dir");
    let absolute_dir = outside.join("dir").to_string_lossy().into_owned();
    // (path, what kind of target: file or dir)
    let escapes: Vec<(String, &str)> = vec![
        (dotdot.clone(), "file"),
        ("inside/../../x".into(), "file"),
        (absolute.clone(), "file"),
        ("/etc/passwd".into(), "file"),
        ("out/secret".into(), "file"),
        ("out/dir/inner".into(), "file"),
        (dotdot_dir.clone(), "dir"),
        (absolute_dir.clone(), "dir"),
        ("out/dir".into(), "dir"),
        ("out".into(), "dir"),
        ("..".into(), "dir"),
    ];
    for (path, kind) in &escapes {
        let p = path.as_str();
        if *kind == "file" {
            expect_problem(send(q(&client, Method::GET, "/v1/fs/file", p)).await, 403, "path_outside_root", &[]).await;
            let put = q(&client, Method::PUT, "/v1/fs/file", p).body("pwned");
            expect_problem(send(put).await, 403, "path_outside_root", &[]).await;
        } else {
            let resp = send(q(&client, Method::GET, "/v1/fs/entries", p)).await;
            expect_problem(resp, 403, "path_outside_root", &[]).await;
            let put = q(&client, Method::PUT, "/v1/fs/file", &format!("{p}/new")).body("pwned");
            expect_problem(send(put).await, 403, "path_outside_root", &[]).await;
            let mkdir = client.request(Method::POST, "/v1/fs/mkdir").json(&json!({"path": format!("{p}/newdir")}));
            expect_problem(send(mkdir).await, 403, "path_outside_root", &[]).await;
        }
        if p != "out" {
            // `out` itself is a link inside the root: stat shows it, deleting removes the link.
            expect_problem(send(q(&client, Method::GET, "/v1/fs/stat", p)).await, 403, "path_outside_root", &[]).await;
            let del = q(&client, Method::DELETE, "/v1/fs/entries", p).query(&[("recursive", "true")]);
            expect_problem(send(del).await, 403, "path_outside_root", &[]).await;
            let mv = client.request(Method::POST, "/v1/fs/move").json(&json!({"from": p, "to": "inside/moved"}));
            expect_problem(send(mv).await, 403, "path_outside_root", &[]).await;
        }
        let mv = client
            .request(Method::POST, "/v1/fs/move")
            .json(&json!({"from": "inside", "to": format!("{p}/stolen"), "overwrite": true}));
        expect_problem(send(mv).await, 403, "path_outside_root", &[]).await;
    }
    // The final component a symlink to outside: never read or written through.
    expect_problem(send(q(&client, Method::GET, "/v1/fs/file", "secret_link")).await, 403, "path_outside_root", &[])
        .await;
    let put = q(&client, Method::PUT, "/v1/fs/file", "secret_link").body("pwned");
    expect_problem(send(put).await, 403, "path_outside_root", &[]).await;
    // A NUL byte.
    for route in ["/v1/fs/file", "/v1/fs/stat", "/v1/fs/entries"] {
        expect_problem(send(q(&client, Method::GET, route, "a\0b")).await, 400, "invalid_request", &["nul"]).await;
    }
    let put = q(&client, Method::PUT, "/v1/fs/file", "x\0/../../secret").body("pwned");
    expect_problem(send(put).await, 400, "invalid_request", &["nul"]).await;
    // The root itself cannot be deleted.
    let del = q(&client, Method::DELETE, "/v1/fs/entries", "").query(&[("recursive", "true")]);
    expect_problem(send(del).await, 409, "conflict", &["root"]).await;

    assert_eq!(snapshot(&outside), before, "something outside the root changed");
    assert!(ws.join("inside").is_dir());
    // The links are seen as links; deleting one removes the link only.
    let link = client.fs_stat("secret_link").await.unwrap();
    assert_eq!(link.kind, FsKind::Symlink);
    client.fs_delete("out", false).await.unwrap();
    client.fs_delete("secret_link", false).await.unwrap();
    assert!(!ws.join("out").exists() && !ws.join("secret_link").exists());
    assert_eq!(snapshot(&outside), before, "something outside the root changed");
}

#[tokio::test]
async fn fs_round_trip_of_every_route() {
    let server = TestServer::start().await;
    let client = server.client();
    let ws = server.workspace();

    // Write creates parents; read, stat and list see it.
    let entry = client.fs_write("a/b/c.txt", "hello, world").await.unwrap();
    assert_eq!(
        (entry.path.as_str(), entry.name.as_str(), entry.kind, entry.size),
        ("a/b/c.txt", "c.txt", FsKind::File, 12)
    );
    assert_eq!(std::fs::read(ws.join("a/b/c.txt")).unwrap(), b"hello, world");
    assert_eq!(&client.fs_read("a/b/c.txt").await.unwrap()[..], b"hello, world");
    // An absolute path under the root is the same file.
    let abs = ws.join("a/b/c.txt").to_string_lossy().into_owned();
    assert_eq!(&client.fs_read(&abs).await.unwrap()[..], b"hello, world");
    let stat = client.fs_stat("a/b/c.txt").await.unwrap();
    assert_eq!((stat.kind, stat.size), (FsKind::File, 12));
    assert!(stat.modified.ends_with('Z') && stat.modified.len() == 24, "{}", stat.modified);
    let root = client.fs_list("").await.unwrap();
    assert_eq!(root.entries.iter().map(|e| (e.name.as_str(), e.kind)).collect::<Vec<_>>(), [("a", FsKind::Dir)]);
    client.fs_write("a/b/a.txt", "A").await.unwrap();
    let list = client.fs_list("a/b").await.unwrap();
    let names: Vec<_> = list.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, ["a/b/a.txt", "a/b/c.txt"]);

    // Overwrite replaces the whole content.
    client.fs_write("a/b/c.txt", "x").await.unwrap();
    assert_eq!(&client.fs_read("a/b/c.txt").await.unwrap()[..], b"x");

    // Range reads.
    client.fs_write("r.bin", (0u8..100).collect::<Vec<u8>>()).await.unwrap();
    let resp = send(q(&client, Method::GET, "/v1/fs/file", "r.bin").header("range", "bytes=10-19")).await;
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 10-19/100");
    assert_eq!(&resp.bytes().await.unwrap()[..], (10u8..20).collect::<Vec<u8>>());
    assert_eq!(&client.fs_read_range("r.bin", 95, None).await.unwrap()[..], [95, 96, 97, 98, 99]);
    let resp = send(q(&client, Method::GET, "/v1/fs/file", "r.bin").header("range", "bytes=-3")).await;
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], [97, 98, 99]);
    let resp = send(q(&client, Method::GET, "/v1/fs/file", "r.bin").header("range", "bytes=100-")).await;
    assert_eq!(resp.headers()["content-range"], "bytes */100");
    expect_problem(resp, 416, "range_not_satisfiable", &[]).await;
    let resp = send(q(&client, Method::GET, "/v1/fs/file", "r.bin")).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.bytes().await.unwrap().len(), 100);

    // mkdir: 201, then 200 when it exists; 409 over a file.
    let resp = send(client.request(Method::POST, "/v1/fs/mkdir").json(&json!({"path": "d/e"}))).await;
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(client.fs_mkdir("d/e").await.unwrap().kind, FsKind::Dir);
    let resp = send(client.request(Method::POST, "/v1/fs/mkdir").json(&json!({"path": "r.bin"}))).await;
    expect_problem(resp, 409, "conflict", &[]).await;
    assert!(ws.join("d/e").is_dir());

    // move: into a new place, 409 onto an existing target, then overwrite.
    let moved = client.fs_move("a/b/c.txt", "d/e/c.txt", false).await.unwrap();
    assert_eq!(moved.path, "d/e/c.txt");
    assert!(!ws.join("a/b/c.txt").exists());
    let resp =
        send(client.request(Method::POST, "/v1/fs/move").json(&json!({"from": "a/b/a.txt", "to": "d/e/c.txt"}))).await;
    expect_problem(resp, 409, "conflict", &["overwrite"]).await;
    client.fs_move("a/b/a.txt", "d/e/c.txt", true).await.unwrap();
    assert_eq!(&client.fs_read("d/e/c.txt").await.unwrap()[..], b"A");
    client.fs_move("d/e", "f/g/h", false).await.unwrap();
    assert_eq!(&client.fs_read("f/g/h/c.txt").await.unwrap()[..], b"A");

    // Missing things are 404; a directory is not a file.
    for route in ["/v1/fs/file", "/v1/fs/stat", "/v1/fs/entries"] {
        expect_problem(send(q(&client, Method::GET, route, "nope/nothing")).await, 404, "not_found", &[]).await;
    }
    let resp = send(client.request(Method::POST, "/v1/fs/move").json(&json!({"from": "nope", "to": "x"}))).await;
    expect_problem(resp, 404, "not_found", &[]).await;
    expect_problem(send(q(&client, Method::GET, "/v1/fs/file", "f")).await, 409, "conflict", &["directory"]).await;
    let put = q(&client, Method::PUT, "/v1/fs/file", "f/g").body("x");
    expect_problem(send(put).await, 409, "conflict", &["directory"]).await;

    // delete: a non-empty directory needs recursive.
    let del = q(&client, Method::DELETE, "/v1/fs/entries", "f");
    expect_problem(send(del).await, 409, "conflict", &["recursive"]).await;
    client.fs_delete("f", true).await.unwrap();
    assert!(!ws.join("f").exists());
    client.fs_delete("r.bin", false).await.unwrap();
    let del = q(&client, Method::DELETE, "/v1/fs/entries", "r.bin");
    expect_problem(send(del).await, 404, "not_found", &[]).await;
    client.fs_mkdir("empty").await.unwrap();
    client.fs_delete("empty", false).await.unwrap();

    // No temporary file is left behind anywhere.
    let left: Vec<_> = snapshot(ws).into_iter().map(|(p, _)| p).filter(|p| p.contains(".tmp")).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn fs_concurrent_writers_leave_one_complete_version() {
    const SIZE: usize = 1 << 20;
    let server = TestServer::start().await;
    let client = server.client();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A reader that checks every version it sees is whole.
    let reader = {
        let client = client.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client.fs_read("shared.bin").await {
                    Ok(bytes) => {
                        assert_eq!(bytes.len(), SIZE, "a reader saw a partial file");
                        assert!(bytes.iter().all(|&b| b == bytes[0]), "a reader saw mixed contents");
                        seen += 1;
                    }
                    Err(e) => assert_eq!(e.status(), Some(404), "{e:?}"),
                }
            }
            seen
        })
    };
    let writers: Vec<_> = (1..=8u8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..3 {
                    client.fs_write("shared.bin", vec![i; SIZE]).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = reader.await.unwrap();
    let bytes = std::fs::read(server.workspace().join("shared.bin")).unwrap();
    assert_eq!(bytes.len(), SIZE);
    assert!((1..=8).contains(&bytes[0]) && bytes.iter().all(|&b| b == bytes[0]));
    let names: Vec<_> = std::fs::read_dir(server.workspace()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["shared.bin"], "temporary files left behind");
    println!("concurrent writers: one complete version; the reader saw {seen} whole versions");
}

/// The server's peak resident set (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn fs_large_file_streams_with_bounded_server_memory() {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 256; // 256 MiB
    let server = TestServer::start().await;
    let client = server.client();
    let base: Vec<u8> = (0..CHUNK).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let chunk = move |i: usize| {
        let mut c = base.clone();
        c[..8].copy_from_slice(&(i as u64).to_le_bytes());
        c
    };
    let expected = chunk.clone();
    let started = Instant::now();
    let body = futures_util::stream::iter(0..CHUNKS).map(move |i| Ok::<_, std::io::Error>(chunk(i)));
    let entry = client.fs_write_stream("big/file.bin", body).await.unwrap();
    assert_eq!(entry.size, (CHUNK * CHUNKS) as u64);
    let wrote = started.elapsed();

    let started = Instant::now();
    let mut stream = Box::pin(client.fs_read_stream("big/file.bin").await.unwrap());
    let mut offset = 0usize;
    let mut current = (usize::MAX, Vec::new());
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        let mut at = 0;
        while at < piece.len() {
            let index = (offset + at) / CHUNK;
            if current.0 != index {
                current = (index, expected(index));
            }
            let within = (offset + at) % CHUNK;
            let n = (CHUNK - within).min(piece.len() - at);
            assert!(piece[at..at + n] == current.1[within..within + n], "content differs at {}", offset + at);
            at += n;
        }
        offset += piece.len();
    }
    assert_eq!(offset, CHUNK * CHUNKS);
    let read = started.elapsed();
    let peak = peak_rss_kib(server.pid);
    println!(
        "256 MiB streamed: write {wrote:?}, read {read:?}; server peak RSS (VmHWM) {:.1} MiB",
        peak as f64 / 1024.0
    );
    assert!(peak < 64 * 1024, "server peak RSS {peak} KiB is over 64 MiB");
}

#[tokio::test]
async fn fs_upload_limit_is_413() {
    let options = ServerOptions { extra_args: vec!["--max-upload-bytes".into(), "1000".into()], ..Default::default() };
    let server = TestServer::start_with(options).await;
    let client = server.client();
    // Declared too large (Content-Length): refused before reading.
    let put = q(&client, Method::PUT, "/v1/fs/file", "big").body(vec![1u8; 2000]);
    expect_problem(send(put).await, 413, "payload_too_large", &["limit"]).await;
    // Streamed (chunked, no length): refused once past the limit.
    let body = futures_util::stream::iter([vec![1u8; 600], vec![2u8; 600]]).map(Ok::<_, std::io::Error>);
    let err = client.fs_write_stream("big", body).await.unwrap_err();
    assert_eq!((err.status(), err.code()), (Some(413), Some("payload_too_large")), "{err:?}");
    assert!(!server.workspace().join("big").exists());
    let names: Vec<_> = std::fs::read_dir(server.workspace()).unwrap().collect();
    assert!(names.is_empty(), "temporary files left behind: {names:?}");
    // At the limit is fine.
    client.fs_write("big", vec![3u8; 1000]).await.unwrap();
    assert_eq!(std::fs::read(server.workspace().join("big")).unwrap().len(), 1000);
}

mod watch {
    use std::collections::HashSet;
    use std::time::Duration;

    use tether_e2e::http::{RawFrame, RawSse};
    use tether_e2e::*;
    use tether_sdk::reqwest::Method;

    const WAIT: Duration = Duration::from_secs(30);

    async fn connect(server: &TestServer, path: &str, last_event_id: Option<u64>) -> RawSse {
        let mut req = server.client().request(Method::GET, "/v1/fs/watch").query(&[("path", path)]);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let sse = RawSse::connect(req).await;
        // The watcher is armed before the answer; give inotify a moment anyway.
        tokio::time::sleep(Duration::from_millis(100)).await;
        sse
    }

    fn id(f: &RawFrame) -> u64 {
        f.id.as_deref().unwrap().parse().unwrap()
    }

    fn kind_path(f: &RawFrame) -> (String, String) {
        (f.data["kind"].as_str().unwrap().to_string(), f.data["path"].as_str().unwrap().to_string())
    }

    #[tokio::test]
    async fn fs_watch_sees_created_modified_renamed_removed() {
        let server = TestServer::start().await;
        let ws = server.workspace().to_path_buf();
        std::fs::create_dir(ws.join("node_modules")).unwrap();
        let mut sse = connect(&server, "", None).await;
        let pause = || tokio::time::sleep(Duration::from_millis(250));
        std::fs::write(ws.join("node_modules/noise.js"), "x").unwrap();
        std::fs::write(ws.join("a.txt"), "one").unwrap();
        pause().await;
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(ws.join("a.txt")).unwrap();
            f.write_all(b"two").unwrap();
        }
        pause().await;
        std::fs::rename(ws.join("a.txt"), ws.join("b.txt")).unwrap();
        pause().await;
        std::fs::remove_file(ws.join("b.txt")).unwrap();
        let mut frames = Vec::new();
        loop {
            let f = sse.next_frame(WAIT).await.unwrap();
            let done = kind_path(&f) == ("removed".into(), "b.txt".into());
            frames.push(f);
            if done {
                break;
            }
        }
        for w in frames.windows(2) {
            assert!(id(&w[0]) < id(&w[1]), "ids not increasing");
        }
        for f in &frames {
            assert_eq!(f.event.as_deref(), Some(format!("watch.{}", f.data["kind"].as_str().unwrap()).as_str()));
            assert!(!f.data["path"].as_str().unwrap().contains("node_modules"), "ignored path reported: {}", f.data);
        }
        let seen: Vec<_> = frames.iter().map(kind_path).collect();
        let at = |k: &str, p: &str| {
            seen.iter()
                .position(|s| s == &(k.to_string(), p.to_string()))
                .unwrap_or_else(|| panic!("no {k} {p} in {seen:?}"))
        };
        let (c, m, r, d) =
            (at("created", "a.txt"), at("modified", "a.txt"), at("renamed", "b.txt"), at("removed", "b.txt"));
        assert!(c < m && m < r && r < d, "{seen:?}");
        assert_eq!(frames[r].data["from"], "a.txt");
        println!("watch frames: {seen:?}");
    }

    #[tokio::test]
    async fn fs_watch_delivers_a_10000_file_burst_without_loss() {
        const N: usize = 10_000;
        let server = TestServer::start().await;
        let ws = server.workspace().to_path_buf();
        std::fs::create_dir(ws.join("burst")).unwrap();
        let mut sse = connect(&server, "burst", None).await;
        let writer = std::thread::spawn(move || {
            for i in 0..N {
                std::fs::write(ws.join(format!("burst/f{i:05}")), "x").unwrap();
            }
        });
        let mut created = HashSet::new();
        let mut first_id = None;
        let mut last_id = 0;
        while created.len() < N {
            let f = sse.next_frame(WAIT).await.unwrap();
            assert_ne!(f.event.as_deref(), Some("watch.overflow"), "overflow during the burst");
            first_id.get_or_insert(id(&f));
            assert!(id(&f) > last_id);
            last_id = id(&f);
            let (kind, path) = kind_path(&f);
            if kind == "created" {
                created.insert(path);
            }
        }
        writer.join().unwrap();
        let peak = super::peak_rss_kib(server.pid);
        println!("10,000-file burst: all created events seen; server peak RSS {:.1} MiB", peak as f64 / 1024.0);
        assert!(peak < 64 * 1024, "server peak RSS {peak} KiB");
        // A reconnect inside the window replays what follows its cursor.
        let mid = first_id.unwrap() + (N as u64) / 2;
        let mut again = connect(&server, "burst", Some(mid)).await;
        let f = again.next_frame(WAIT).await.unwrap();
        assert_eq!(id(&f), mid + 1, "{:?}", f.data);
        let mut n = 1;
        let mut last = id(&f);
        while last < last_id {
            last = id(&again.next_frame(WAIT).await.unwrap());
            n += 1;
        }
        assert_eq!(last, last_id);
        assert!(n >= N / 2 - 1, "replayed {n}");
    }

    #[tokio::test]
    async fn fs_watch_reconnect_past_the_window_is_an_overflow() {
        let mut options = ServerOptions::default();
        options.env.push(("TETHER_WATCH_WINDOW".into(), "50".into()));
        let server = TestServer::start_with(options).await;
        let ws = server.workspace().to_path_buf();
        let mut sse = connect(&server, "", None).await;
        std::fs::write(ws.join("first"), "x").unwrap();
        let f = sse.next_frame(WAIT).await.unwrap();
        assert_eq!(kind_path(&f), ("created".into(), "first".into()));
        let cursor = id(&f);
        drop(sse);
        // Inside the window: 10 more, replayed.
        for i in 0..10 {
            std::fs::write(ws.join(format!("in{i}")), "x").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut sse = connect(&server, "", Some(cursor)).await;
        let mut got = Vec::new();
        while got.len() < 10 {
            let f = sse.next_frame(WAIT).await.unwrap();
            assert_eq!(f.event.as_deref(), Some("watch.created"));
            got.push(id(&f));
        }
        assert_eq!(got[0], cursor + 1);
        drop(sse);
        // Past the window: an explicit overflow, then live events again.
        for i in 0..200 {
            std::fs::write(ws.join(format!("past{i}")), "x").unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut sse = connect(&server, "", Some(cursor)).await;
        let f = sse.next_frame(WAIT).await.unwrap();
        assert_eq!(f.event.as_deref(), Some("watch.overflow"), "{:?}", f.data);
        assert!(id(&f) > cursor);
        std::fs::write(ws.join("after"), "x").unwrap();
        let f = sse.next_frame(WAIT).await.unwrap();
        assert_eq!(kind_path(&f), ("created".into(), "after".into()));
    }

    #[tokio::test]
    async fn fs_watch_through_the_sdk() {
        use futures_util::StreamExt;
        use tether_sdk::fs::WatchFrame;
        use tether_sdk::WatchKind;
        let server = TestServer::start().await;
        let client = server.client();
        client.fs_mkdir("dir/sub").await.unwrap();
        let mut changes = Box::pin(client.fs_watch("dir", false, None).await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Not recursive: dir/sub/deep is not reported, dir/top is (written atomically: `modified`
        // or `created`, never the temporary file).
        std::fs::write(server.workspace().join("dir/sub/deep"), "x").unwrap();
        client.fs_write("dir/top", "x").await.unwrap();
        let frame = tokio::time::timeout(WAIT, changes.next()).await.unwrap().unwrap().unwrap();
        let WatchFrame::Change { id, event } = frame else { panic!("{frame:?}") };
        assert_eq!(event.path, "dir/top");
        assert!(matches!(event.kind, WatchKind::Modified | WatchKind::Created), "{event:?}");
        // Resuming after an id the server never gave (another run) is an overflow.
        let mut resumed = Box::pin(client.fs_watch("dir", false, Some(id + 1_000_000)).await.unwrap());
        let frame = tokio::time::timeout(WAIT, resumed.next()).await.unwrap().unwrap().unwrap();
        assert!(matches!(frame, WatchFrame::Overflow { .. }), "{frame:?}");
    }
}

mod tar {
    use std::io::Write;
    use std::os::unix::fs::symlink;
    use std::process::{Command, Stdio};

    use futures_util::StreamExt;
    use tether_e2e::http::{expect_problem, send};
    use tether_e2e::tar::{archive, entry};
    use tether_e2e::*;
    use tether_sdk::reqwest::Method;

    fn pipe(cmd: &mut Command, input: &[u8]) -> Vec<u8> {
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    #[tokio::test]
    async fn fs_tar_upload_and_download_round_trip() {
        let server = TestServer::start().await;
        let client = server.client();
        let ws = server.workspace();
        let tar = archive(&[
            entry("d/", b'5', b"", ""),
            entry("d/a.txt", b'0', b"hello", ""),
            entry("./b.txt", b'0', &vec![7u8; 3000], ""),
            entry("d/link", b'2', b"", "a.txt"),
        ]);
        let stream = futures_util::stream::iter(
            tar.chunks(700).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
        );
        let entry_up = client.fs_upload("up", stream, false).await.unwrap();
        assert_eq!(entry_up.path, "up");
        assert_eq!(std::fs::read(ws.join("up/d/a.txt")).unwrap(), b"hello");
        assert_eq!(std::fs::read(ws.join("up/b.txt")).unwrap(), vec![7u8; 3000]);
        assert_eq!(std::fs::read_link(ws.join("up/d/link")).unwrap().to_str(), Some("a.txt"));
        // gzip, as Content-Encoding.
        let gz = pipe(Command::new("gzip").arg("-c"), &tar);
        let req = client
            .request(Method::POST, "/v1/fs/upload")
            .query(&[("path", "gz")])
            .header("content-type", "application/x-tar")
            .header("content-encoding", "gzip")
            .body(gz);
        assert_eq!(send(req).await.status().as_u16(), 200);
        assert_eq!(std::fs::read(ws.join("gz/d/a.txt")).unwrap(), b"hello");
        // Not a tar: 415; garbage: 400.
        let req = client.request(Method::POST, "/v1/fs/upload").query(&[("path", "x")]).body("x");
        expect_problem(send(req).await, 415, "unsupported_media_type", &[]).await;
        let req = client
            .request(Method::POST, "/v1/fs/upload")
            .query(&[("path", "x")])
            .header("content-type", "application/gzip")
            .body(vec![1u8; 600]);
        expect_problem(send(req).await, 400, "invalid_request", &["tar"]).await;

        // Download, unpacked by the system tar.
        let mut body = Box::pin(client.fs_download("up").await.unwrap());
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.unwrap());
        }
        let out = tempfile::tempdir().unwrap();
        pipe(Command::new("tar").arg("-xf").arg("-").arg("-C").arg(out.path()), &bytes);
        assert_eq!(std::fs::read(out.path().join("d/a.txt")).unwrap(), b"hello");
        assert_eq!(std::fs::read(out.path().join("b.txt")).unwrap(), vec![7u8; 3000]);
        assert_eq!(std::fs::read_link(out.path().join("d/link")).unwrap().to_str(), Some("a.txt"));
        let resp = send(client.request(Method::GET, "/v1/fs/download").query(&[("path", "../")])).await;
        expect_problem(resp, 403, "path_outside_root", &[]).await;
    }

    #[tokio::test]
    async fn fs_tar_entries_that_climb_out_are_refused() {
        let server = TestServer::start().await;
        let client = server.client();
        let ws = server.workspace();
        let outside_tmp = tempfile::Builder::new().prefix("tether-e2e-outside-").tempdir().unwrap();
        let outside = outside_tmp.path().canonicalize().unwrap();
        std::fs::write(outside.join("secret"), b"keep").unwrap();
        symlink(&outside, ws.join("out")).unwrap();
        let name = outside.file_name().unwrap().to_str().unwrap().to_string();
        let abs = outside.join("evil").to_str().unwrap().to_string();
        let evil: Vec<Vec<u8>> = vec![
            archive(&[entry(&format!("../{name}/evil"), b'0', b"x", "")]),
            archive(&[entry("a/../../evil", b'0', b"x", "")]),
            archive(&[entry(&abs, b'0', b"x", "")]),
            archive(&[entry("out/evil", b'0', b"x", "")]),
            archive(&[entry("out/secret", b'0', b"x", "")]),
            archive(&[entry("ln", b'2', b"", &outside.to_string_lossy()), entry("ln/evil", b'0', b"x", "")]),
            archive(&[entry("ln2", b'2', b"", &format!("../../{name}")), entry("ln2/evil", b'0', b"x", "")]),
        ];
        for (i, tar) in evil.into_iter().enumerate() {
            let req = client
                .request(Method::POST, "/v1/fs/upload")
                .query(&[("path", "")])
                .header("content-type", "application/x-tar")
                .body(tar);
            let problem = expect_problem(send(req).await, 403, "path_outside_root", &[]).await;
            println!("tar escape {i}: {}", problem.detail);
        }
        let req = client
            .request(Method::POST, "/v1/fs/upload")
            .query(&[("path", "out")])
            .header("content-type", "application/x-tar")
            .body(archive(&[entry("evil", b'0', b"x", "")]));
        expect_problem(send(req).await, 403, "path_outside_root", &[]).await;
        let names: Vec<_> = std::fs::read_dir(&outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secret"]);
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"keep");
    }
}

/// A name longer than the file systems take (255 bytes) was a 500 ("File
/// name too long") on every route; it is a 400 naming the limit.
#[tokio::test]
async fn a_name_over_255_bytes_is_a_400_on_every_fs_route() {
    let server = TestServer::start().await;
    let http = tether_sdk::reqwest::Client::new();
    let long = "n".repeat(256);
    let path = format!("dir/{long}");
    let q = |route: &str| server.endpoint(&format!("{route}?path={path}"));
    let requests: Vec<RequestBuilder> = vec![
        http.get(q("/v1/fs/file")),
        http.put(q("/v1/fs/file")).body("x"),
        http.get(q("/v1/fs/stat")),
        http.get(q("/v1/fs/entries")),
        http.delete(q("/v1/fs/entries")),
        http.get(q("/v1/fs/download")),
        http.request(Method::POST, server.endpoint("/v1/fs/mkdir")).json(&json!({"path": path})),
        http.request(Method::POST, server.endpoint("/v1/fs/move")).json(&json!({"from": "a.txt", "to": path})),
    ];
    for request in requests {
        expect_problem(send(request).await, 400, "name_too_long", &["255 bytes"]).await;
    }
    // 255 bytes is a name like any other, and the server kept serving.
    let ok = "m".repeat(255);
    server.client().fs_write(&ok, b"fits".to_vec()).await.unwrap();
    assert_eq!(&server.client().fs_read(&ok).await.unwrap()[..], b"fits");
}

/// `%FF` once percent-decoded is not UTF-8. It was read with U+FFFD in its
/// place, so `PUT ?path=bad/%FF.txt` created a file with another name; now
/// every fs route answers 400 `name_not_utf8` and creates nothing.
#[tokio::test]
async fn a_non_utf8_path_is_a_400_name_not_utf8_and_nothing_is_created() {
    let server = TestServer::start().await;
    let http = tether_sdk::reqwest::Client::new();
    let url = |route: &str| server.endpoint(&format!("{route}?path=bad/%FF.txt"));
    let requests: Vec<RequestBuilder> = vec![
        http.put(url("/v1/fs/file")).body("x"),
        http.get(url("/v1/fs/file")),
        http.get(url("/v1/fs/stat")),
        http.get(url("/v1/fs/entries")),
        http.delete(url("/v1/fs/entries")),
        http.get(url("/v1/fs/download")),
        http.get(url("/v1/fs/watch")),
        http.post(url("/v1/fs/upload")).header("content-type", "application/x-tar").body(vec![0u8; 1024]),
    ];
    for request in requests {
        expect_problem(send(request).await, 400, "name_not_utf8", &["UTF-8", "not_utf8"]).await;
    }
    // Another parameter that is not UTF-8 is a plain 400, never read lossily.
    let resp = send(http.delete(server.endpoint("/v1/fs/entries?path=x&recursive=%FF"))).await;
    expect_problem(resp, 400, "invalid_request", &["recursive", "UTF-8"]).await;
    let left: Vec<_> = std::fs::read_dir(server.workspace()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "something was created: {left:?}");
    // The UTF-8 name of the same characters works as ever.
    let put = http.put(server.endpoint("/v1/fs/file?path=bad/%C3%BF.txt")).body("y");
    assert_eq!(send(put).await.status().as_u16(), 200);
    assert_eq!(std::fs::read(server.workspace().join("bad/\u{ff}.txt")).unwrap(), b"y");
}

/// A name on disk that is not UTF-8 was listed with U+FFFD as if it were a
/// name; the entry now says `not_utf8: true` (and only such entries carry
/// the field), and the name it shows reaches nothing.
#[tokio::test]
async fn a_non_utf8_name_is_listed_flagged_not_utf8() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let server = TestServer::start().await;
    let client = server.client();
    let ws = server.workspace();
    std::fs::write(ws.join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1").unwrap();
    std::fs::write(ws.join("plain.txt"), b"utf-8").unwrap();
    let raw: serde_json::Value = send(q(&client, Method::GET, "/v1/fs/entries", "")).await.json().await.unwrap();
    assert_eq!(
        raw["entries"],
        json!([
            {"name": "caf\u{fffd}.txt", "path": "caf\u{fffd}.txt", "kind": "file", "size": 7,
             "modified": raw["entries"][0]["modified"], "not_utf8": true},
            {"name": "plain.txt", "path": "plain.txt", "kind": "file", "size": 5,
             "modified": raw["entries"][1]["modified"]},
        ])
    );
    let listed = client.fs_list("").await.unwrap();
    assert_eq!(listed.entries.iter().map(|e| e.not_utf8).collect::<Vec<_>>(), [true, false]);
    // The shown name is another name: not found, and never the file's bytes.
    let resp = send(q(&client, Method::GET, "/v1/fs/file", "caf\u{fffd}.txt")).await;
    expect_problem(resp, 404, "not_found", &[]).await;
}

/// A gzip `Content-Encoding` on `PUT /v1/fs/file` stored the compressed bytes;
/// they are decoded (the limit counting what is written), and a body that
/// is not valid gzip is a 400 that leaves nothing behind.
#[tokio::test]
async fn a_gzip_encoded_upload_is_stored_decoded() {
    let options =
        ServerOptions { extra_args: vec!["--max-upload-bytes".into(), "100000".into()], ..Default::default() };
    let server = TestServer::start_with(options).await;
    let client = server.client();
    let ws = server.workspace();
    let text: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let gz = gzip(&text);
    let put =
        q(&client, Method::PUT, "/v1/fs/file", "dir/text.txt").header("content-encoding", "gzip").body(gz.clone());
    let resp = send(put).await;
    assert_eq!(resp.status().as_u16(), 200);
    let entry: tether_sdk::FsEntry = resp.json().await.unwrap();
    assert_eq!(entry.size, text.len() as u64);
    assert_eq!(std::fs::read(ws.join("dir/text.txt")).unwrap(), text);
    // Truncated, or not gzip at all: 400, no file, no temporary file.
    for body in [gz[..gz.len() - 10].to_vec(), b"plain text, not gzip".to_vec()] {
        let put = q(&client, Method::PUT, "/v1/fs/file", "dir/bad.txt").header("content-encoding", "gzip").body(body);
        expect_problem(send(put).await, 400, "invalid_request", &["gzip"]).await;
    }
    let names: Vec<_> = std::fs::read_dir(ws.join("dir")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["text.txt"]);
    // 1 MB of zeros is a 1 KB body, but over the 100 kB limit once decoded.
    let put = q(&client, Method::PUT, "/v1/fs/file", "dir/bomb")
        .header("content-encoding", "gzip")
        .body(gzip(&vec![0u8; 1 << 20]));
    expect_problem(send(put).await, 413, "payload_too_large", &["limit"]).await;
    assert!(!ws.join("dir/bomb").exists());
}

/// An encoding tether does not decode was stored as is; it is refused on
/// every upload route with 415 `unsupported_encoding` naming the accepted ones.
#[tokio::test]
async fn an_unknown_content_encoding_is_415_unsupported_encoding() {
    let server = TestServer::start().await;
    let client = server.client();
    for encoding in ["br", "deflate", "gzip, zstd", "compress"] {
        let put = q(&client, Method::PUT, "/v1/fs/file", "f.txt").header("content-encoding", encoding).body("x");
        expect_problem(send(put).await, 415, "unsupported_encoding", &["gzip", "identity"]).await;
        let upload = q(&client, Method::POST, "/v1/fs/upload", "up")
            .header("content-type", "application/x-tar")
            .header("content-encoding", encoding)
            .body(vec![0u8; 1024]);
        expect_problem(send(upload).await, 415, "unsupported_encoding", &["gzip"]).await;
        let skill = client
            .request(Method::PUT, "/v1/skills/encoded")
            .header("content-type", "application/x-tar")
            .header("content-encoding", encoding)
            .body(vec![0u8; 1024]);
        expect_problem(send(skill).await, 415, "unsupported_encoding", &["gzip"]).await;
    }
    let left: Vec<_> = std::fs::read_dir(server.workspace()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "something was written: {left:?}");
    // identity is no encoding at all.
    let put = q(&client, Method::PUT, "/v1/fs/file", "f.txt").header("content-encoding", "identity").body("x");
    assert_eq!(send(put).await.status().as_u16(), 200);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("gzip").arg("-c").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

/// The check-then-open race: a directory of the workspace is swapped for a
/// symlink to outside (two renames, in a loop, from a thread) while requests
/// read, write, list, stat, create, extract and archive through it. Paths are looked
/// up beneath the open root, so whatever the interleaving: the canary
/// outside is never answered, nothing is ever created outside, and no
/// listing or archive shows what is there.
#[tokio::test]
async fn a_directory_swapped_for_a_symlink_never_lets_a_request_out() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;
    let server = TestServer::start().await;
    let client = server.client();
    let ws = server.workspace().to_path_buf();
    let outside_tmp = tempfile::Builder::new().prefix("tether-e2e-outside-").tempdir().unwrap();
    let outside = outside_tmp.path().canonicalize().unwrap();
    std::fs::write(outside.join("file"), b"CANARY").unwrap();
    std::fs::write(outside.join("only-outside"), b"CANARY").unwrap();
    std::fs::create_dir(ws.join("d")).unwrap();
    std::fs::write(ws.join("d/file"), b"inside").unwrap();
    symlink(&outside, ws.join("evil")).unwrap();
    let before = snapshot(&outside);

    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (ws, stop, swaps) = (ws.clone(), stop.clone(), swaps.clone());
        // A write or mkdir that finds `d` missing (between two renames)
        // creates it anew, inside: cleared out of the way.
        let put = move |from: &str, to: &str| {
            for _ in 0..1000 {
                if std::fs::rename(ws.join(from), ws.join(to)).is_ok() {
                    return;
                }
                let _ = std::fs::remove_dir_all(ws.join(to));
            }
            panic!("could not rename {from} to {to}");
        };
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // d (a directory) aside, the symlink in its place, then back.
                put("d", "aside");
                put("evil", "d");
                put("d", "evil");
                put("aside", "d");
                swaps.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut rounds = 0;
    let mut answered = [0u32; 6];
    while rounds < 400 && Instant::now() < deadline {
        rounds += 1;
        let tar = tether_e2e::tar::archive(&[tether_e2e::tar::entry(&format!("up{rounds}/f"), b'0', b"pwned", "")]);
        let (read, write, list, stat, mkdir, download, upload) = tokio::join!(
            send(q(&client, Method::GET, "/v1/fs/file", "d/file")),
            send(q(&client, Method::PUT, "/v1/fs/file", &format!("d/new{rounds}")).body("pwned")),
            send(q(&client, Method::GET, "/v1/fs/entries", "d")),
            send(q(&client, Method::GET, "/v1/fs/stat", "d/only-outside")),
            send(client.request(Method::POST, "/v1/fs/mkdir").json(&json!({"path": format!("d/dir{rounds}")}))),
            send(q(&client, Method::GET, "/v1/fs/download", "d")),
            send(q(&client, Method::POST, "/v1/fs/upload", "d").header("content-type", "application/x-tar").body(tar)),
        );
        let ok = [&read, &write, &list, &mkdir, &download, &upload].map(|r| r.status().is_success());
        for (count, ok) in answered.iter_mut().zip(ok) {
            *count += u32::from(ok);
        }
        assert_eq!(stat.status().as_u16() / 100, 4, "stat reached outside");
        let body = read.bytes().await.unwrap();
        assert!(!body.windows(6).any(|w| w == b"CANARY"), "read the canary outside: {body:?}");
        let listing = list.text().await.unwrap();
        assert!(!listing.contains("only-outside"), "listed outside: {listing}");
        let tar = download.bytes().await.unwrap();
        assert!(!tar.windows(6).any(|w| w == b"CANARY") && !tar.windows(12).any(|w| w == b"only-outside"));
        assert_eq!(snapshot(&outside), before, "something changed outside the root (round {rounds})");
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert_eq!(snapshot(&outside), before, "something changed outside the root");
    let swaps = swaps.load(Ordering::Relaxed);
    println!("race over HTTP: {rounds} rounds of 7 requests during {swaps} swaps; 2xx (read, write, list, mkdir, download, upload) {answered:?}");
    assert!(swaps > 0 && rounds > 10);
    // The writes that were answered 200 are inside, where they belong.
    assert!(answered[1] > 0, "no write went through at all");
}
