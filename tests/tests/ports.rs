//! Ports and previews on the real binary: a dev server started beside the
//! agents gives `port.opened` (its pid, the sandbox log) and `port.closed`;
//! one an agent starts is announced on that session's stream; previews go
//! through tether's own URL in both path styles, tether's token stripped,
//! WebSockets included; signed links open a preview with no header and
//! stop working when they expire; bad ports and forged or expired links are
//! clear 4xx problems.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tether_e2e::events::wait_for;
use tether_e2e::http::{expect_problem, send};
use tether_e2e::ports::{free_port, interface_address, parse_head, wait_listening, DevServer, HeadEcho, WsEcho};
use tether_e2e::*;
use tether_protocol::{PortList, PreviewLink, SANDBOX_LOG};
use tether_sdk::reqwest::{self, Method, StatusCode};
use tether_sdk::{CreateSession, Event, EventBody, PortOpened};
use tokio::time::Instant;

const TOKEN: &str = "ports-e2e-token-5f1c";
/// How long any wait of these tests may take.
const WAIT: Duration = Duration::from_secs(30);

/// A server with a token, looking for ports every 100 ms.
async fn server() -> TestServer {
    TestServer::start_with(ServerOptions { ports_poll_ms: Some(100), ..ServerOptions::with_token(TOKEN) }).await
}

/// A client with no token and no redirects followed: a browser's first request.
fn bare() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The `port.opened` (or `port.closed`) of `port` in `e`, if it is one.
fn port_event(e: &Event, port: u16, opened: bool) -> Option<&PortOpened> {
    match (&e.body, opened) {
        (EventBody::PortOpened(d), true) | (EventBody::PortClosed(d), false) if d.port == port => Some(d),
        _ => None,
    }
}

async fn ports(client: &tether_sdk::Client) -> PortList {
    let resp = send(client.request(Method::GET, "/v1/ports")).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_dev_server_is_announced_previewed_in_both_styles_and_its_close_announced() {
    let server = server().await;
    let client = server.client();
    let mut global = client.all_events(None);
    // The files it serves: one at the top, one under the path absproxy forwards whole.
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("hello.txt"), b"hello from the dev server\n\x01\xff").unwrap();
    let mut dev = DevServer::start(site.path()).await;
    let port = dev.port;
    let abs_dir = site.path().join(format!("v1/ports/{port}/absproxy/app"));
    std::fs::create_dir_all(&abs_dir).unwrap();
    std::fs::write(abs_dir.join("abs.txt"), b"served under its base path").unwrap();

    let mut read = wait_for(&mut global, WAIT, |e| port_event(e, port, true).is_some()).await;
    let opened = read.last().unwrap().clone();
    assert_eq!(opened.session_id, SANDBOX_LOG, "a port no session owns is in the sandbox log");
    let data = port_event(&opened, port, true).unwrap().clone();
    assert_eq!(data.pid, Some(dev.pid()));
    assert_eq!(data.address, "127.0.0.1");
    assert_eq!((data.session_id.as_deref(), data.process_id.as_deref()), (None, None));

    let list = ports(&client).await;
    let listed = list.ports.iter().find(|p| p.port == port).unwrap_or_else(|| panic!("{port} not in {list:?}"));
    assert_eq!(listed.pid, Some(dev.pid()));
    assert!(listed.program.as_deref().is_some_and(|p| p.starts_with("python")), "{listed:?}");
    assert_eq!(listed.proxy_path, format!("/v1/ports/{port}/proxy/"));
    assert!(list.ports.windows(2).all(|w| w[0].port < w[1].port), "sorted by port: {list:?}");
    assert!(list.ports.iter().all(|p| p.port != server.port()), "tether's own port is not listed");

    // proxy: the prefix is stripped, the query kept.
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{port}/proxy/hello.txt?x=1"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"hello from the dev server\n\x01\xff");
    // absproxy: the whole path is forwarded.
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{port}/absproxy/app/abs.txt"))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"served under its base path");
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{port}/proxy/missing.txt"))).await;
    assert_eq!(resp.status(), 404, "the app's own answers come back as they are");
    // Without the trailing slash: to the preview's root.
    let resp = send(bare().get(server.endpoint(&format!("/v1/ports/{port}/proxy?a=b"))).bearer_auth(TOKEN)).await;
    assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(resp.headers()["location"], format!("/v1/ports/{port}/proxy/?a=b").as_str());
    // Without the token: refused like any route.
    let resp = send(bare().get(server.endpoint(&format!("/v1/ports/{port}/proxy/hello.txt")))).await;
    expect_problem(resp, 401, "unauthorized", &[]).await;

    // The sandbox log is no session.
    let resp = send(client.request(Method::GET, &format!("/v1/sessions/{SANDBOX_LOG}"))).await;
    expect_problem(resp, 404, "session_not_found", &[]).await;
    let sessions: Value = send(client.request(Method::GET, "/v1/sessions")).await.json().await.unwrap();
    assert_eq!(sessions["sessions"], json!([]));

    dev.stop().await;
    read.extend(wait_for(&mut global, WAIT, |e| port_event(e, port, false).is_some()).await);
    let closed = read.last().unwrap();
    assert_eq!(closed.session_id, SANDBOX_LOG);
    // Other tests' servers open and close ports beside this one: their events are in the log too.
    let seqs: Vec<u64> = read.iter().filter(|e| e.session_id == SANDBOX_LOG).map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "the sandbox log's seqs have no gap");
    assert_eq!(port_event(closed, port, false).unwrap().pid, data.pid);
    assert!(ports(&client).await.ports.iter().all(|p| p.port != port));
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{port}/proxy/hello.txt"))).await;
    expect_problem(resp, 404, "port_not_listening", &[&port.to_string(), "GET /v1/ports"]).await;
}

#[tokio::test]
async fn a_port_an_agent_opens_is_announced_on_its_session_stream() {
    let server = server().await;
    let client = server.client();
    let session = client.create_session(&CreateSession { agent: "mock".into(), ..Default::default() }).await.unwrap();
    let mut stream = client.session_events(&session.id, None);
    let port = free_port();
    let command = format!("[mock:bash] python3 -m http.server {port} --bind 127.0.0.1 >/dev/null 2>&1 &");
    client.send_text(&session.id, command).await.unwrap();
    let got = wait_for(&mut stream, WAIT, |e| port_event(e, port, true).is_some()).await;
    let opened = got.last().unwrap();
    assert_eq!(opened.session_id, session.id);
    let data = port_event(opened, port, true).unwrap().clone();
    assert_eq!(data.session_id.as_deref(), Some(session.id.as_str()));
    let pid = data.pid.expect("the pid of the agent's server");
    let listed = ports(&client).await;
    assert_eq!(
        listed.ports.iter().find(|p| p.port == port).and_then(|p| p.session_id.clone()),
        Some(session.id.clone())
    );

    // Ending the session ends its process group, the server with it: the
    // close is written after `session.ended`, so in the sandbox log.
    let mut global = client.all_events(Some(opened.gseq));
    send(client.request(Method::DELETE, &format!("/v1/sessions/{}", session.id))).await;
    let got = wait_for(&mut global, WAIT, |e| port_event(e, port, false).is_some()).await;
    let closed = got.last().unwrap();
    assert_eq!(closed.session_id, SANDBOX_LOG);
    assert_eq!(port_event(closed, port, false).unwrap().session_id.as_deref(), Some(session.id.as_str()));
    // Whatever happens above, the server does not outlive the test.
    kill9(pid);
}

/// SIGKILL to `pid` (gone already is fine).
fn kill9(pid: i32) {
    let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
}

#[tokio::test]
async fn requests_reach_the_app_without_tethers_token_and_websockets_echo() {
    let server = server().await;
    let client = server.client();
    let echo = HeadEcho::start().await;
    let path = format!("/v1/ports/{}/proxy/some/where?q=1&r=%2F", echo.port);
    let resp = send(
        client
            .request(Method::GET, &path)
            .header("cookie", format!("app=1; tether_preview_{}=x.y.z", echo.port))
            .header("x-app", "kept"),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let (request_line, headers) = parse_head(&resp.text().await.unwrap());
    assert_eq!(request_line, "GET /some/where?q=1&r=%2F HTTP/1.1");
    let text = format!("{headers:?}");
    assert!(!text.contains(TOKEN), "tether's token reached the app: {text}");
    assert_eq!(headers.get("cookie").map(String::as_str), Some("app=1"));
    assert_eq!(headers.get("x-app").map(String::as_str), Some("kept"));
    assert_eq!(headers.get("host"), Some(&format!("localhost:{}", echo.port)));
    assert_eq!(headers.get("x-forwarded-prefix"), Some(&format!("/v1/ports/{}/proxy", echo.port)));
    assert_eq!(headers.get("x-forwarded-host"), Some(&format!("127.0.0.1:{}", server.port())));
    // The app's own Authorization is its own.
    let resp = send(
        bare()
            .get(server.endpoint(&format!("/v1/ports/{}/absproxy/x", echo.port)))
            .header("x-tether-token", TOKEN)
            .header("authorization", "Bearer the-apps-own"),
    )
    .await;
    let (request_line, headers) = parse_head(&resp.text().await.unwrap());
    assert_eq!(request_line, format!("GET /v1/ports/{}/absproxy/x HTTP/1.1", echo.port));
    assert_eq!(headers.get("authorization").map(String::as_str), Some("Bearer the-apps-own"));
    assert!(!headers.contains_key("x-tether-token") && !headers.contains_key("x-forwarded-prefix"));

    let ws = WsEcho::start().await;
    let url = format!("ws://127.0.0.1:{}/v1/ports/{}/proxy/echo?room=1", server.port(), ws.port);
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut socket, resp) =
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 101);
    use tokio_tungstenite::tungstenite::Message;
    let first = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    let seen: Value = serde_json::from_str(first.to_text().unwrap()).unwrap();
    assert_eq!(seen["path"], "/echo?room=1");
    assert!(!seen["headers"].to_string().contains(TOKEN), "{seen}");
    for text in ["hello through tether", "and again"] {
        socket.send(Message::text(text)).await.unwrap();
        let back = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(back.to_text().unwrap(), text);
    }
    socket.send(Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    let back = tokio::time::timeout(WAIT, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(back.into_data().to_vec(), vec![0u8, 1, 2, 255]);
}

/// `POST /v1/ports/{port}/links` with `body`: 201 and the link.
async fn link(client: &tether_sdk::Client, port: u16, body: Value) -> PreviewLink {
    let resp = send(client.request(Method::POST, &format!("/v1/ports/{port}/links")).json(&body)).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// Opens a link with no header: the redirect and the cookie (`name=value`) it sets.
async fn open(server: &TestServer, url: &str) -> reqwest::Response {
    send(bare().get(server.endpoint(url))).await
}

fn cookie_of(resp: &reqwest::Response) -> String {
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    set.split(';').next().unwrap().to_string()
}

#[tokio::test]
async fn a_signed_link_opens_the_preview_without_a_header_until_it_expires() {
    let server = server().await;
    let client = server.client();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("index.html"), b"<h1>preview</h1>").unwrap();
    let dev = DevServer::start(site.path()).await;
    let port = dev.port;

    let made = link(&client, port, json!({"ttl_secs": 600, "path": "/index.html"})).await;
    assert_eq!(made.port, port);
    assert!(made.url.starts_with(&format!("/v1/ports/{port}/open?")) && !made.url.contains(TOKEN), "{made:?}");
    let resp = open(&server, &made.url).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], format!("/v1/ports/{port}/proxy/index.html").as_str());
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Lax", &format!("Path=/v1/ports/{port}/")] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = cookie_of(&resp);
    let page =
        send(bare().get(server.endpoint(&format!("/v1/ports/{port}/proxy/index.html"))).header("cookie", &cookie))
            .await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.text().await.unwrap(), "<h1>preview</h1>");
    // The cookie lets in nothing but that port's preview.
    let resp = send(bare().get(server.endpoint("/v1/sessions")).header("cookie", &cookie)).await;
    expect_problem(resp, 401, "unauthorized", &[]).await;
    let resp = send(bare().get(server.endpoint(&format!("/v1/ports/{port}/links"))).header("cookie", &cookie)).await;
    assert!(resp.status() == 401 || resp.status() == 405, "{}", resp.status());
    let other = free_port();
    let moved = cookie.replace(&format!("tether_preview_{port}="), &format!("tether_preview_{other}="));
    let resp = send(bare().get(server.endpoint(&format!("/v1/ports/{other}/proxy/"))).header("cookie", moved)).await;
    expect_problem(resp, 403, "preview_link_invalid", &[&format!("port {port}")]).await;
    // The signature's last character changed (to another one: a `0` would not change a `0`).
    let last = if cookie.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &cookie[..cookie.len() - 1]);
    let resp = send(bare().get(server.endpoint(&format!("/v1/ports/{port}/proxy/"))).header("cookie", forged)).await;
    expect_problem(resp, 403, "preview_link_invalid", &["POST /v1/ports"]).await;

    // absproxy links go to the whole path.
    let abs = link(&client, port, json!({"style": "absproxy"})).await;
    let resp = open(&server, &abs.url).await;
    assert_eq!(resp.headers()["location"], format!("/v1/ports/{port}/absproxy/").as_str());

    // A forged signature, or the link of port A opened on port B: refused.
    let last = made.url.chars().last().unwrap();
    let forged = format!("{}{}", &made.url[..made.url.len() - 1], if last == '0' { '1' } else { '0' });
    expect_problem(open(&server, &forged).await, 403, "preview_link_invalid", &[]).await;
    let on_b = made.url.replace(&format!("/v1/ports/{port}/"), &format!("/v1/ports/{other}/"));
    expect_problem(open(&server, &on_b).await, 403, "preview_link_invalid", &[]).await;
    let changed = made.url.replace("index.html", "other.html");
    expect_problem(open(&server, &changed).await, 403, "preview_link_invalid", &[]).await;

    // A link of one second: good at once, then refused, and its cookie too.
    let short = link(&client, port, json!({"ttl_secs": 1})).await;
    let resp = open(&server, &short.url).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = cookie_of(&resp);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp =
            send(bare().get(server.endpoint(&format!("/v1/ports/{port}/proxy/"))).header("cookie", &cookie)).await;
        if resp.status() == 403 {
            expect_problem(resp, 403, "preview_link_invalid", &["expired"]).await;
            break;
        }
        assert_eq!(resp.status(), 200);
        assert!(Instant::now() < deadline, "the cookie of a 1 s link still works after 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect_problem(open(&server, &short.url).await, 403, "preview_link_invalid", &["expired"]).await;
}

#[tokio::test]
async fn bad_ports_and_links_are_clear_problems() {
    let server = server().await;
    let client = server.client();
    let closed = free_port();
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{closed}/proxy/"))).await;
    expect_problem(resp, 404, "port_not_listening", &[&closed.to_string()]).await;
    let resp = send(client.request(Method::POST, &format!("/v1/ports/{closed}/links")).json(&json!({}))).await;
    expect_problem(resp, 404, "port_not_listening", &[]).await;
    let own = server.port();
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{own}/proxy/v1/health"))).await;
    expect_problem(resp, 403, "port_not_allowed", &["tether's own"]).await;
    let resp = send(client.request(Method::POST, &format!("/v1/ports/{own}/links")).json(&json!({}))).await;
    expect_problem(resp, 403, "port_not_allowed", &[]).await;
    for bad in ["0", "70000", "http", "-1"] {
        let resp = send(client.request(Method::GET, &format!("/v1/ports/{bad}/proxy/"))).await;
        expect_problem(resp, 400, "invalid_request", &["1 to 65535"]).await;
        let resp = send(client.request(Method::POST, &format!("/v1/ports/{bad}/links")).json(&json!({}))).await;
        expect_problem(resp, 400, "invalid_request", &[]).await;
    }
    let echo = HeadEcho::start().await;
    wait_listening(echo.port, WAIT).await;
    for body in [json!({"ttl_secs": 0}), json!({"ttl_secs": 604801}), json!({"path": "no-slash"}), json!({"bogus": 1})]
    {
        let resp = send(client.request(Method::POST, &format!("/v1/ports/{}/links", echo.port)).json(&body)).await;
        expect_problem(resp, 400, "invalid_request", &[]).await;
    }
    let resp = send(bare().get(server.endpoint(&format!("/v1/ports/{}/open?exp=1", echo.port)))).await;
    expect_problem(resp, 400, "invalid_request", &[]).await;
    // A port whose app breaks the connection: 502.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rude = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            drop(tcp);
        }
    });
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{rude}/proxy/"))).await;
    expect_problem(resp, 502, "preview_failed", &[&rude.to_string()]).await;
}

#[tokio::test]
async fn a_response_streams_through_the_proxy_as_the_app_writes_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = server().await;
    let client = server.client();
    // An app that sends its first chunk, then waits for the test before the last one.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        let first = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n6\r\nfirst\n\r\n";
        tcp.write_all(first.as_bytes()).await.unwrap();
        go_rx.await.unwrap();
        tcp.write_all(b"5\r\nlast\n\r\n0\r\n\r\n").await.unwrap();
    });
    let mut resp = send(client.request(Method::GET, &format!("/v1/ports/{port}/proxy/stream"))).await;
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(WAIT, resp.chunk()).await.expect("the first chunk before the app ends").unwrap();
    assert_eq!(first.as_deref(), Some(&b"first\n"[..]));
    go_tx.send(()).unwrap();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(WAIT, resp.chunk()).await.unwrap().unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"last\n");
}

#[tokio::test]
async fn an_app_bound_to_one_interface_only_is_previewed_too() {
    let Some(ip) = interface_address() else {
        eprintln!("no address besides loopback on this machine: nothing to show");
        return;
    };
    let server = server().await;
    let client = server.client();
    let echo = HeadEcho::start_on(ip).await;
    let deadline = Instant::now() + WAIT;
    while !ports(&client).await.ports.iter().any(|p| p.port == echo.port && p.addresses == [ip.to_string()]) {
        assert!(Instant::now() < deadline, "port {} on {ip} is not listed", echo.port);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = send(client.request(Method::GET, &format!("/v1/ports/{}/proxy/x", echo.port))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().starts_with("GET /x HTTP/1.1"));
}
