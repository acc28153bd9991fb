//! Reaching a tether inside a Fly.io Sprite through the Sprites TCP proxy.
//!
//! The proxy (`wss://api.sprites.dev/v1/sprites/{name}/proxy`, the Sprites
//! token as `Authorization: Bearer`) takes a JSON text frame `{"host",
//! "port"}`, answers with messages until one carries a `status`
//! (`"connected"`), and from then on relays raw TCP bytes in binary frames.
//!
//! The client speaks ordinary HTTP/1.1 over such tunnels: [`Client::sprite`]
//! gives its HTTP client a private Unix socket (in a fresh 0700 directory),
//! and every connection made to it is relayed over a tunnel of its own. A
//! tunnel that drops is a connection that drops, so event streams resume
//! after their last event on a new tunnel like after any other network
//! failure. A tunnel that cannot be opened is answered, on that connection,
//! with a problem: `502 sprite_unreachable` (retryable), `401
//! sprites_token_refused` when the proxy refused the Sprites token, or `404
//! sprite_not_found` when the handshake answered 404: the Sprites API has no
//! Sprite of that name (SPRITES.md, "Reaching a port from outside"; not
//! retryable).
//!
//! `tether sprite deploy NAME` saves the deployed tether's token on this
//! machine ([`saved_token_path`]); [`Client::sprite`] sends it when the
//! caller gives none.
//!
//! [`Client::sprite`]: crate::Client::sprite

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::Message;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::WebSocketStream;

use crate::error::{Error, Result};

/// The public Sprites API.
pub const DEFAULT_API_URL: &str = "wss://api.sprites.dev";
/// Where `tether sprite install` serves inside the Sprite.
pub const DEFAULT_PORT: u16 = 8080;
/// How long opening one tunnel (TCP, TLS, WebSocket handshake and the
/// proxy's `connected`) may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from the HTTP side per binary frame at most.
const FRAME_BYTES: usize = 64 * 1024;

/// Where and how to open tunnels to one Sprite.
#[derive(Clone)]
pub struct SpritesProxy {
    api_url: String,
    sprite: String,
    token: String,
    host: String,
    port: u16,
    #[cfg(feature = "rustls")]
    extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for SpritesProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpritesProxy")
            .field("url", &self.tunnel_url())
            .field("target", &format_args!("{}:{}", self.host, self.port))
            .field("token", &"<redacted>")
            .finish()
    }
}

impl SpritesProxy {
    /// Tunnels to port 8080 (`localhost`) of the Sprite `sprite`, through
    /// the public Sprites API, with this Sprites token.
    pub fn new(sprite: impl Into<String>, sprites_token: impl Into<String>) -> SpritesProxy {
        SpritesProxy {
            api_url: DEFAULT_API_URL.to_owned(),
            sprite: sprite.into(),
            token: sprites_token.into(),
            host: "localhost".to_owned(),
            port: DEFAULT_PORT,
            #[cfg(feature = "rustls")]
            extra_roots: Vec::new(),
        }
    }

    /// Another Sprites API, without a path: `wss://…` or `ws://…`, or the
    /// REST form `https://…` / `http://…` (the same host serves both).
    pub fn with_api_url(mut self, url: impl Into<String>) -> SpritesProxy {
        self.api_url = websocket_api_url(&url.into());
        self
    }

    /// Another host and port inside the Sprite.
    pub fn with_target(mut self, host: impl Into<String>, port: u16) -> SpritesProxy {
        self.host = host.into();
        self.port = port;
        self
    }

    /// Also trusts this root certificate (DER) for `wss://`, besides the
    /// platform's roots.
    #[cfg(feature = "rustls")]
    pub fn with_root_certificate(mut self, der: impl Into<Vec<u8>>) -> SpritesProxy {
        self.extra_roots.push(rustls::pki_types::CertificateDer::from(der.into()));
        self
    }

    /// `{api}/v1/sprites/{name}/proxy`, the name percent-encoded.
    pub fn tunnel_url(&self) -> String {
        format!("{}{}/proxy", self.api_url, crate::path(&["v1", "sprites", &self.sprite]))
    }

    /// The Sprite's name.
    pub fn sprite(&self) -> &str {
        &self.sprite
    }

    /// Opens one tunnel: a byte stream to the target port inside the Sprite.
    pub async fn open(&self) -> std::result::Result<Tunnel, TunnelError> {
        tokio::time::timeout(OPEN_TIMEOUT, self.open_inner())
            .await
            .map_err(|_| TunnelError::Unreachable(format!("no tunnel within {} s", OPEN_TIMEOUT.as_secs())))?
    }

    async fn open_inner(&self) -> std::result::Result<Tunnel, TunnelError> {
        let url = self.tunnel_url();
        let mut request = url.as_str().into_client_request().map_err(|e| TunnelError::Unreachable(e.to_string()))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token))
            .map_err(|_| TunnelError::Unauthorized("the Sprites token is not a valid header value".into()))?;
        request.headers_mut().insert("authorization", bearer);
        let uri = request.uri().clone();
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => return Err(TunnelError::Unreachable(format!("{url}: the Sprites API URL must be ws:// or wss://"))),
        };
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| TunnelError::Unreachable(format!("{host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Io> = if tls { self.tls(&host, tcp).await? } else { Box::new(tcp) };
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream).await.map_err(|e| match e {
            WsError::Http(resp) if matches!(resp.status(), StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                TunnelError::Unauthorized(format!("the Sprites API refused the token ({})", resp.status()))
            }
            WsError::Http(resp) if resp.status() == StatusCode::NOT_FOUND => {
                TunnelError::NoSuchSprite(format!("the Sprites API has no Sprite named {:?}", self.sprite))
            }
            WsError::Http(resp) => TunnelError::Unreachable(format!("the Sprites API answered {}", resp.status())),
            other => TunnelError::Unreachable(other.to_string()),
        })?;
        let init = json!({"host": self.host, "port": self.port}).to_string();
        ws.send(Message::text(init)).await.map_err(|e| TunnelError::Unreachable(e.to_string()))?;
        // Messages such as `port_opened` may come first: read until one has a status.
        loop {
            let message = match ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(TunnelError::Unreachable(e.to_string())),
                None => return Err(TunnelError::Unreachable("the proxy closed before connecting".into())),
            };
            let text = match &message {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Close(frame) => {
                    let why = frame.as_ref().map(|f| f.reason.to_string()).unwrap_or_default();
                    return Err(TunnelError::Unreachable(format!("the proxy closed before connecting {why}")));
                }
                _ => continue,
            };
            let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
            match value.get("status").and_then(Value::as_str) {
                Some("connected") => return Ok(Tunnel { ws }),
                Some(other) => {
                    let detail = value.get("error").or_else(|| value.get("message")).and_then(Value::as_str);
                    return Err(TunnelError::Unreachable(format!(
                        "the proxy could not reach {}:{} in Sprite {:?}: {other}{}",
                        self.host,
                        self.port,
                        self.sprite,
                        detail.map(|d| format!(" ({d})")).unwrap_or_default()
                    )));
                }
                None => continue,
            }
        }
    }

    #[cfg(feature = "rustls")]
    async fn tls(&self, host: &str, tcp: TcpStream) -> std::result::Result<Box<dyn Io>, TunnelError> {
        let config = tls_config(&self.extra_roots).map_err(TunnelError::Unreachable)?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| TunnelError::Unreachable(format!("{host}: {e}")))?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| TunnelError::Unreachable(format!("TLS with {host}: {e}")))?;
        Ok(Box::new(stream))
    }

    #[cfg(not(feature = "rustls"))]
    async fn tls(&self, host: &str, _tcp: TcpStream) -> std::result::Result<Box<dyn Io>, TunnelError> {
        Err(TunnelError::Unreachable(format!("{host}: wss:// needs the SDK's `rustls` feature")))
    }
}

#[cfg(feature = "rustls")]
fn tls_config(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots.iter().cloned(), provider.clone())
            .map_err(|e| format!("TLS roots: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The WebSocket form of a Sprites API URL (`https://` → `wss://`,
/// `http://` → `ws://`; `ws[s]://` kept), without a trailing `/`.
pub fn websocket_api_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

/// The REST form of a Sprites API URL (`wss://` → `https://`, `ws://` →
/// `http://`; `http[s]://` kept), without a trailing `/`.
pub fn rest_api_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if let Some(rest) = url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        url.to_owned()
    }
}

/// Where `tether sprite deploy NAME` saves the token of the tether it
/// deployed: `$XDG_CONFIG_HOME/tether/sprites/NAME/token`, or
/// `$HOME/.config/tether/sprites/NAME/token` when `XDG_CONFIG_HOME` is unset
/// or not absolute. `None` when there is no home to put it in, or when
/// `sprite` is not a plain name (empty, `.`, `..`, or containing `/`).
pub fn saved_token_path(sprite: &str) -> Option<std::path::PathBuf> {
    if sprite.is_empty() || sprite == "." || sprite == ".." || sprite.contains(['/', '\\', '\0']) {
        return None;
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(std::path::PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|h| h.join(".config"))
        })?;
    Some(config.join("tether").join("sprites").join(sprite).join("token"))
}

/// The token `tether sprite deploy` saved for the Sprite `sprite`
/// ([`saved_token_path`]), trimmed; `None` when there is none (or it is empty).
pub fn saved_token(sprite: &str) -> Option<String> {
    let text = std::fs::read_to_string(saved_token_path(sprite)?).ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Why a tunnel could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TunnelError {
    /// The Sprites API refused the token (401/403).
    #[error("{0}")]
    Unauthorized(String),
    /// The Sprites API has no Sprite of that name (the handshake's 404).
    #[error("{0}")]
    NoSuchSprite(String),
    /// Anything else: no route, TLS, the proxy's own failure to reach the port.
    #[error("{0}")]
    Unreachable(String),
}

/// One open tunnel: raw bytes to the port inside the Sprite.
pub struct Tunnel {
    ws: WebSocketStream<Box<dyn Io>>,
}

impl Tunnel {
    /// Relays bytes both ways between `local` and the tunnel until either
    /// side ends. Text frames from the proxy are ignored (it only relays
    /// binary ones).
    pub async fn relay<S: AsyncRead + AsyncWrite + Unpin>(self, local: S) {
        let (mut sink, mut source) = self.ws.split();
        let (mut reader, mut writer) = tokio::io::split(local);
        let up = async {
            let mut buf = vec![0u8; FRAME_BYTES];
            loop {
                match reader.read(&mut buf).await {
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
        let down = async {
            while let Some(Ok(message)) = source.next().await {
                match message {
                    Message::Binary(bytes) if writer.write_all(&bytes).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = writer.shutdown().await;
        };
        // Either direction ending ends the connection: HTTP/1.1 over it
        // cannot go on half-open, and the client will open a new one.
        tokio::select! {
            () = up => {}
            () = down => {}
        }
    }
}

/// The local end the HTTP client connects to: a Unix socket in a private
/// directory, each connection relayed over a new tunnel. Dropping it (with
/// the last clone of its `Client`) stops accepting and ends every relay.
pub(crate) struct Relay {
    pub(crate) socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Relay {
    /// Binds the socket and starts accepting (needs a tokio runtime).
    pub(crate) fn start(proxy: SpritesProxy) -> Result<Relay> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Tunnel("Client::sprite must be called inside a tokio runtime".into()))?;
        let dir = tempfile::Builder::new()
            .prefix("tether-sprite-")
            .tempdir()
            .map_err(|e| Error::Tunnel(format!("cannot make the relay's directory: {e}")))?;
        let socket = dir.path().join("http.sock");
        let listener = {
            let _guard = runtime.enter();
            UnixListener::bind(&socket).map_err(|e| Error::Tunnel(format!("cannot bind {}: {e}", socket.display())))?
        };
        let proxy = Arc::new(proxy);
        let accept = runtime.spawn(async move {
            let mut relays = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((local, _)) => {
                            let proxy = proxy.clone();
                            relays.spawn(async move { serve(&proxy, local).await });
                        }
                        Err(_) => break,
                    },
                    Some(_) = relays.join_next(), if !relays.is_empty() => {}
                }
            }
        });
        Ok(Relay { socket, _dir: dir, accept })
    }
}

/// Reads until the end of an HTTP request head (or 64 KiB, or the end of the stream).
async fn read_request_head(local: &mut UnixStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < 64 * 1024 {
        match local.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if memchr::memmem::find(&head, b"\r\n\r\n").is_some() {
            return;
        }
    }
}

/// One local connection: open its tunnel and relay, or answer the HTTP
/// request with a problem saying why there is no tunnel.
async fn serve(proxy: &SpritesProxy, mut local: UnixStream) {
    match proxy.open().await {
        Ok(tunnel) => tunnel.relay(local).await,
        Err(e) => {
            let (status, code) = match e {
                TunnelError::Unauthorized(_) => ("401 Unauthorized", "sprites_token_refused"),
                TunnelError::NoSuchSprite(_) => ("404 Not Found", "sprite_not_found"),
                TunnelError::Unreachable(_) => ("502 Bad Gateway", "sprite_unreachable"),
            };
            let body = json!({
                "type": format!("urn:tether:error:{code}"),
                "title": status.split_once(' ').map(|(_, t)| t).unwrap_or(status),
                "status": status.split_once(' ').and_then(|(s, _)| s.parse::<u16>().ok()),
                "detail": format!("Sprite {:?} through {}: {e}", proxy.sprite, proxy.tunnel_url()),
            })
            .to_string();
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/problem+json\r\nContent-Length: {}\r\nConnection: \
                 close\r\n\r\n{body}",
                body.len()
            );
            // Answer only once the request has been read: an answer that
            // comes before the client has sent its request is, to an HTTP
            // client, a message it did not expect.
            let _ = tokio::time::timeout(Duration::from_secs(5), read_request_head(&mut local)).await;
            let _ = local.write_all(answer.as_bytes()).await;
            let _ = local.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_form_of_the_api_url_gives_the_other() {
        assert_eq!(websocket_api_url("https://api.sprites.dev/"), "wss://api.sprites.dev");
        assert_eq!(websocket_api_url("http://127.0.0.1:9"), "ws://127.0.0.1:9");
        assert_eq!(websocket_api_url("wss://api.sprites.dev"), "wss://api.sprites.dev");
        assert_eq!(rest_api_url("wss://api.sprites.dev"), "https://api.sprites.dev");
        assert_eq!(rest_api_url("ws://127.0.0.1:9/"), "http://127.0.0.1:9");
        assert_eq!(rest_api_url("https://api.sprites.dev"), "https://api.sprites.dev");
        let proxy = SpritesProxy::new("demo", "t").with_api_url("https://api.sprites.dev");
        assert_eq!(proxy.tunnel_url(), "wss://api.sprites.dev/v1/sprites/demo/proxy");
    }

    #[test]
    fn a_saved_token_is_only_looked_for_under_a_plain_name() {
        for bad in ["", ".", "..", "a/b", "../x", "a\\b"] {
            assert_eq!(saved_token_path(bad), None, "{bad:?}");
        }
        if let Some(path) = saved_token_path("demo") {
            assert!(path.ends_with("tether/sprites/demo/token"), "{}", path.display());
        }
    }
}
