//! Servers to preview: a dev server (`python3 -m http.server`, killed on
//! drop), a server that answers every request with the request head it
//! received, and a WebSocket echo server that first sends the handshake's
//! headers; and a port nothing listens on.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A port nothing listens on now (bound by the OS, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `python3 -m http.server PORT --bind 127.0.0.1` serving `dir`; killed on drop.
pub struct DevServer {
    pub port: u16,
    pub child: Child,
}

impl DevServer {
    /// Starts it and waits (deadline 20 s) until it takes connections.
    pub async fn start(dir: &Path) -> DevServer {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("start python3 -m http.server");
        wait_listening(port, Duration::from_secs(20)).await;
        DevServer { port, child }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// Kills it and waits for it to exit.
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// Waits until `127.0.0.1:port` takes a connection.
pub async fn wait_listening(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port} after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A server on 127.0.0.1 answering each request (one per connection) with
/// the request head it received, as `text/plain`; stops on drop.
pub struct HeadEcho {
    pub port: u16,
    task: JoinHandle<()>,
}

impl HeadEcho {
    pub async fn start() -> HeadEcho {
        Self::start_on("127.0.0.1".parse().unwrap()).await
    }

    /// Listening on `ip` only.
    pub async fn start_on(ip: std::net::IpAddr) -> HeadEcho {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    let body = &head[..end];
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                    let _ = tcp.write_all(body).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        HeadEcho { port, task }
    }
}

impl Drop for HeadEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An IPv4 address of this machine that is not loopback (`hostname -I`), if any.
pub fn interface_address() -> Option<std::net::IpAddr> {
    let out = std::process::Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback())
}

/// The request line and headers (names lowercased) of an echoed head.
pub fn parse_head(text: &str) -> (String, BTreeMap<String, String>) {
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (request_line, headers)
}

/// A WebSocket server on 127.0.0.1: its first message is the handshake's
/// path and headers (JSON `{"path":..,"headers":{..}}`), then it echoes
/// every text and binary message; stops on drop.
pub struct WsEcho {
    pub port: u16,
    task: JoinHandle<()>,
}

impl WsEcho {
    pub async fn start() -> WsEcho {
        use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
        use tokio_tungstenite::tungstenite::Message;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut seen = serde_json::Value::Null;
                    // The callback's type is tungstenite's (its error is a whole response).
                    #[allow(clippy::result_large_err)]
                    let record = |req: &Request, resp: Response| {
                        let headers: BTreeMap<String, String> = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        seen = serde_json::json!({"path": req.uri().to_string(), "headers": headers});
                        Ok(resp)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, record).await else { return };
                    if ws.send(Message::text(seen.to_string())).await.is_err() {
                        return;
                    }
                    while let Some(Ok(msg)) = ws.next().await {
                        let reply = match msg {
                            Message::Text(_) | Message::Binary(_) => msg,
                            Message::Close(_) => break,
                            _ => continue,
                        };
                        if ws.send(reply).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        WsEcho { port, task }
    }
}

impl Drop for WsEcho {
    fn drop(&mut self) {
        self.task.abort();
    }
}
