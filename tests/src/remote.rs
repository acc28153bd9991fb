//! What stands between a remote client and tether, faked for the tests: a
//! TLS terminator (optionally doing the Sprite URL edge's auth, with the
//! Sprites login it redirects to as a recording server) and the Sprites TCP
//! proxy (a WebSocket server doing the documented handshake and relaying to
//! a local port). Both relay to the real binary. How the platform answers
//! is taken from ../shared/platform/SPRITES.md, cited where it matters.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as WsRequest, Response as WsResponse};
use tokio_tungstenite::tungstenite::Message;

/// A throw-away certificate authority and a server certificate it signed
/// for `127.0.0.1` and `localhost`.
pub struct TestCa {
    /// The CA's certificate (DER): what clients must trust.
    pub ca_der: Vec<u8>,
    acceptor: TlsAcceptor,
}

impl TestCa {
    pub fn new() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        TestCa { ca_der: ca.as_ref().der().to_vec(), acceptor: TlsAcceptor::from(Arc::new(config)) }
    }

    /// The CA's certificate as PEM (for `SSL_CERT_FILE`).
    pub fn ca_pem(&self) -> String {
        use std::fmt::Write as _;
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in self.ca_der.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
            for i in 0..4 {
                b64.push(if i <= chunk.len() { char::from(B64[(n >> (18 - 6 * i) & 63) as usize]) } else { '=' });
            }
        }
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            let _ = writeln!(pem, "{}", std::str::from_utf8(line).unwrap());
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        pem
    }

    /// A `reqwest` client that trusts this CA (and the platform's roots).
    pub fn http_client(&self) -> reqwest::Client {
        let cert = reqwest::Certificate::from_der(&self.ca_der).unwrap();
        reqwest::Client::builder().add_root_certificate(cert).build().unwrap()
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

/// One request a [`RecordingServer`] received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header, names lower-case, in order.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// An HTTPS server (`https://127.0.0.1:PORT`, a certificate of the test CA)
/// that records every request it gets, headers and all, and answers each
/// with a 200 HTML page: the stand-in for the Sprites login
/// (`https://sprites.dev/auth/sprite`), where the Sprite URL's edge sends a
/// refused request. Reachable and trusted, so a client that followed the
/// redirect would really arrive here and show what it carried.
pub struct RecordingServer {
    pub url: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingServer {
    pub async fn start(ca: &TestCa) -> RecordingServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let acceptor = ca.acceptor.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { break };
                let (acceptor, seen) = (acceptor.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let recorded = Recorded {
                            method: req.method().to_string(),
                            path: req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default(),
                            headers: req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                                })
                                .collect(),
                        };
                        seen.lock().unwrap().push(recorded);
                        let page = "<!doctype html><title>Sign in to Sprites</title>";
                        async move { Ok::<_, Infallible>(full(200, &[("content-type", "text/html")], page)) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        RecordingServer { url, requests, task }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

/// An HTTPS reverse proxy in front of a tether: `https://127.0.0.1:PORT`.
/// With an edge token it behaves like the Sprite URL in its `sprite` auth
/// mode: a request without `Authorization: Bearer <edge token>` gets a 302
/// to the Sprites login, `Location: <login>/auth/sprite?return_url=<the URL
/// asked>` (SPRITES.md, "The Sprite URL": "a missing, bad or not-allowed
/// token gets 302 to `https://sprites.dev/auth/sprite?return_url=…`, not
/// 401"), the login being a [`RecordingServer`] ([`login`](Self::login));
/// and the header is taken off before forwarding.
pub struct TlsFront {
    pub url: String,
    backend: Arc<Mutex<Arc<str>>>,
    /// The `Authorization` headers that reached the backend, in order.
    forwarded_auth: Arc<Mutex<Vec<Option<String>>>>,
    /// Where refused requests are redirected (with an edge token).
    login: Option<RecordingServer>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsFront {
    pub async fn start(ca: &TestCa, backend: &str, edge_token: Option<&str>) -> TlsFront {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let acceptor = ca.acceptor.clone();
        let backend = Arc::new(Mutex::new(Arc::<str>::from(backend.trim_end_matches('/'))));
        let target = backend.clone();
        let login = match edge_token {
            Some(_) => Some(RecordingServer::start(ca).await),
            None => None,
        };
        let edge: Option<Edge> = edge_token.map(|token| Edge {
            token: token.into(),
            login: login.as_ref().map(|l| l.url.as_str()).unwrap_or_default().into(),
            front: url.as_str().into(),
        });
        let forwarded_auth = Arc::new(Mutex::new(Vec::new()));
        let seen = forwarded_auth.clone();
        let client: HyperClient<HttpConnector, Incoming> = HyperClient::builder(TokioExecutor::new()).build_http();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else { break };
                let backend = target.lock().unwrap().clone();
                let (acceptor, edge, client, seen) = (acceptor.clone(), edge.clone(), client.clone(), seen.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (backend, edge, client, seen) =
                            (backend.clone(), edge.clone(), client.clone(), seen.clone());
                        async move { Ok::<_, Infallible>(forward(req, &backend, edge.as_ref(), &client, &seen, peer).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        TlsFront { url, backend, forwarded_auth, login, task }
    }

    /// Relays new connections to another backend (a restarted server's new port).
    pub fn set_backend(&self, backend: &str) {
        *self.backend.lock().unwrap() = backend.trim_end_matches('/').into();
    }

    /// The `Authorization` headers the backend received, in order.
    pub fn forwarded_auth(&self) -> Vec<Option<String>> {
        self.forwarded_auth.lock().unwrap().clone()
    }

    /// The Sprites login refused requests are redirected to (a front with an edge token).
    pub fn login(&self) -> &RecordingServer {
        self.login.as_ref().expect("a front with an edge token has a login")
    }
}

/// The Sprite URL edge's auth: its token, and where it sends the refused.
#[derive(Clone)]
struct Edge {
    token: Arc<str>,
    /// The Sprites login's origin (`https://127.0.0.1:PORT`).
    login: Arc<str>,
    /// This front's own origin, for `return_url`.
    front: Arc<str>,
}

/// Percent-encodes everything but the RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn full(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Body> {
    let mut response = Response::builder().status(status);
    for (k, v) in headers {
        response = response.header(*k, *v);
    }
    response.body(Full::new(Bytes::from(body.to_owned())).map_err(|never| match never {}).boxed()).unwrap()
}

async fn forward(
    mut req: Request<Incoming>,
    backend: &str,
    edge: Option<&Edge>,
    client: &HyperClient<HttpConnector, Incoming>,
    seen: &Mutex<Vec<Option<String>>>,
    peer: std::net::SocketAddr,
) -> Response<Body> {
    if let Some(edge) = edge {
        let given = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if given != Some(format!("Bearer {}", edge.token).as_str()) {
            let asked = format!("{}{}", edge.front, req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let location = format!("{}/auth/sprite?return_url={}", edge.login, encode(&asked));
            return full(302, &[("location", &location)], "");
        }
        req.headers_mut().remove("authorization");
        req.headers_mut().insert("sprite-client-ip", peer.ip().to_string().parse().unwrap());
    }
    seen.lock().unwrap().push(req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned));
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".into());
    *req.uri_mut() = format!("{backend}{path}").parse().unwrap();
    req.headers_mut().remove("host");
    match client.request(req).await {
        Ok(response) => response.map(|body| body.boxed()),
        Err(e) => full(502, &[("content-type", "text/plain")], &format!("front: {e}")),
    }
}

/// The Sprites TCP proxy: `ws[s]://127.0.0.1:PORT/v1/sprites/{name}/proxy`
/// with `Authorization: Bearer <token>`; a text frame `{"host","port"}`,
/// then a `port_opened` message and `{"status":"connected",..}`, then raw
/// bytes in binary frames to `127.0.0.1:port` (text frames dropped). It
/// knows one Sprite: any other name's handshake gets 404, a wrong token
/// 401 (SPRITES.md, "Reaching a port from outside").
pub struct FakeSpritesProxy {
    /// `ws://…` or `wss://…`, no path.
    pub url: String,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ProxyState {
    /// Every init message received, in order.
    inits: Mutex<Vec<Value>>,
    /// Request paths of the accepted handshakes.
    paths: Mutex<Vec<String>>,
    /// Tunnels that reached `connected`.
    connected: Mutex<u32>,
    cut: Mutex<Option<watch::Sender<u64>>>,
}

impl Drop for FakeSpritesProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSpritesProxy {
    /// Serves `sprite` for `token`; over TLS when `ca` is given.
    pub async fn start(sprite: &str, token: &str, ca: Option<&TestCa>) -> FakeSpritesProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let url = format!("{}://127.0.0.1:{port}", if ca.is_some() { "wss" } else { "ws" });
        let (cut_tx, cut_rx) = watch::channel(0u64);
        let state = Arc::new(ProxyState { cut: Mutex::new(Some(cut_tx)), ..Default::default() });
        let acceptor = ca.map(|ca| ca.acceptor.clone());
        let expected_path: Arc<str> = format!("/v1/sprites/{sprite}/proxy").into();
        let expected_auth: Arc<str> = format!("Bearer {token}").into();
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { break };
                // As a real proxy would: no Nagle delay on a relayed stream.
                let _ = tcp.set_nodelay(true);
                let (state, cut, acceptor) = (shared.clone(), cut_rx.clone(), acceptor.clone());
                let (path, auth) = (expected_path.clone(), expected_auth.clone());
                tokio::spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                tunnel(tls, &state, cut, &path, &auth).await;
                            }
                        }
                        None => tunnel(tcp, &state, cut, &path, &auth).await,
                    }
                });
            }
        });
        FakeSpritesProxy { url, state, task }
    }

    /// Drops every open tunnel at once, without a close frame (a network cut).
    pub fn cut_all(&self) {
        if let Some(tx) = self.state.cut.lock().unwrap().as_ref() {
            tx.send_modify(|n| *n += 1);
        }
    }

    /// Tunnels that reached `connected` so far.
    pub fn connected(&self) -> u32 {
        *self.state.connected.lock().unwrap()
    }

    /// Every init message received.
    pub fn inits(&self) -> Vec<Value> {
        self.state.inits.lock().unwrap().clone()
    }

    /// The paths of the accepted handshakes.
    pub fn paths(&self) -> Vec<String> {
        self.state.paths.lock().unwrap().clone()
    }
}

async fn tunnel<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    state: &ProxyState,
    mut cut: watch::Receiver<u64>,
    expected_path: &str,
    expected_auth: &str,
) {
    let mut path = String::new();
    // The callback's signature is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = |req: &WsRequest, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        let refuse = |status: u16| {
            let mut r = ErrorResponse::new(Some("refused".to_owned()));
            *r.status_mut() = status.try_into().unwrap();
            r
        };
        // Another Sprite's name: 404 (SPRITES.md, "Reaching a port from
        // outside": "A handshake 404 means no such Sprite (not retryable);
        // 401/403 a refused token").
        if req.uri().path() != expected_path {
            return Err(refuse(404));
        }
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(expected_auth) {
            return Err(refuse(401));
        }
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else { return };
    state.paths.lock().unwrap().push(path);
    let init = loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => break serde_json::from_str::<Value>(text.as_str()).unwrap_or(Value::Null),
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    state.inits.lock().unwrap().push(init.clone());
    let port = init.get("port").and_then(Value::as_u64).unwrap_or(0);
    let opened = json!({"type": "port_opened", "port": port, "address": "0.0.0.0", "pid": 1});
    if ws.send(Message::text(opened.to_string())).await.is_err() {
        return;
    }
    let tcp = match TcpStream::connect(("127.0.0.1", u16::try_from(port).unwrap_or(0))).await {
        Ok(tcp) => {
            let _ = tcp.set_nodelay(true);
            tcp
        }
        Err(e) => {
            let _ = ws.send(Message::text(json!({"status": "error", "error": e.to_string()}).to_string())).await;
            let _ = ws.close(None).await;
            return;
        }
    };
    let connected = json!({"status": "connected", "target": format!("10.0.0.1:{port}")});
    if ws.send(Message::text(connected.to_string())).await.is_err() {
        return;
    }
    *state.connected.lock().unwrap() += 1;
    cut.mark_unchanged();
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let (mut sink, mut source) = ws.split();
    let up = async {
        while let Some(Ok(message)) = source.next().await {
            match message {
                Message::Binary(bytes) if tcp_write.write_all(&bytes).await.is_err() => break,
                Message::Close(_) => break,
                // The real proxy drops text frames after connecting.
                _ => {}
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match tcp_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink.send(Message::binary(buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
        _ = cut.changed() => {}
    }
}
