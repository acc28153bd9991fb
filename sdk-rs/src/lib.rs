//! tether-sdk: a typed Rust client for the tether HTTP API.
//!
//! ```no_run
//! # async fn demo() -> tether_sdk::Result<()> {
//! use tether_sdk::{Client, CreateSession};
//!
//! let client = Client::new("http://127.0.0.1:7419").with_token("secret");
//! let session = client
//!     .create_session(&CreateSession { agent: "mock".into(), ..Default::default() })
//!     .await?;
//! let mut events = client.session_events(&session.id, None);
//! client.send_text(&session.id, "hello").await?;
//! while let Some(event) = events.next_event().await {
//!     println!("{}", event?.event_type());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The wire types are those of `tether-protocol`, re-exported here (and as
//! [`protocol`]); query strings are its query structs too
//! (`EventPageQuery`, `FsPathQuery`, …), never pairs built here. Every non-2xx answer becomes [`Error::Api`] with its
//! problem details. Event streams ([`EventStream`]) reconnect by themselves
//! and never yield a duplicate. Processes run beside the agents
//! ([`Client::create_process`]) are attached to as terminals
//! ([`Client::attach_terminal`], a [`Terminal`] that counts output offsets
//! so a reattach gets exactly what was missed), over every transport the
//! client has.
//!
//! Redirects are never followed: a client that follows one sends tether's
//! token on to wherever it points (HTTP libraries strip `Authorization`
//! across hosts, not `X-Tether-Token`). The SDK's own HTTP clients follow
//! none ([`client_builder`]); a 3xx answer is an error: `sprites_token_refused`
//! when it points at the Sprites login (the Sprite URL's edge refused the
//! Sprites token), `redirected` otherwise (see [`ErrorCode`]).
#![forbid(unsafe_code)]

mod error;
pub mod fs;
pub mod mcp;
mod ports;
mod processes;
mod skills;
#[cfg(feature = "sprites")]
pub mod sprites;
pub mod sse;
mod stream;
#[cfg(feature = "terminal")]
pub mod terminal;
mod turn;

use std::fmt;
use std::sync::Arc;

use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;

pub use tether_protocol as protocol;
pub use tether_protocol::*;

pub use error::{Error, Result, UNKNOWN_PROBLEM_TYPE};
pub use processes::OutputBytes;
pub use reqwest;
pub use stream::EventStream;
#[cfg(feature = "terminal")]
pub use terminal::{Terminal, TerminalFrame};
pub use turn::{AllowAll, DecideWith, Decider, DenyAll, TurnOptions, TurnReport};

use stream::CursorKind;

/// A client of one tether server. Cheap to clone (the connection pool is
/// shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: Arc<str>,
    token: Option<Arc<str>>,
    token_header: TokenHeader,
    /// Sent as `Authorization: Bearer` for the edge in front of tether (the
    /// Sprite URL in its default `sprite` auth mode).
    edge_token: Option<Arc<str>>,
    /// The Sprites transport's local relay, alive as long as a clone is.
    #[cfg(feature = "sprites")]
    relay: Option<Arc<sprites::Relay>>,
    /// How `http` was built (`None`: the caller gave it), kept so that the
    /// terminal WebSocket gets an HTTP/1.1-only twin of it: an upgrade is
    /// HTTP/1.1, and a TLS server may otherwise pick HTTP/2.
    recipe: Option<Recipe>,
    /// That twin, built on the first attach and shared by the clones.
    #[cfg(feature = "terminal")]
    upgrade_http: Arc<std::sync::OnceLock<reqwest::Client>>,
    /// The W3C `traceparent` the turns this client starts join (see [`Client::with_traceparent`]).
    traceparent: Option<Arc<str>>,
}

/// Makes the builder of a client's `reqwest::Client` (transport, TLS roots,
/// options) afresh.
type Recipe = Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>;

/// Which header carries tether's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>` (the default).
    #[default]
    Authorization,
    /// `X-Tether-Token: <token>`, for when something in front of tether
    /// takes `Authorization` for itself (the Sprite URL's edge).
    XTetherToken,
}

/// Filters of `GET /v1/sessions`: the protocol's query type.
pub type ListSessions = tether_protocol::SessionListQuery;

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7419`;
    /// a trailing `/` is ignored).
    pub fn new(base_url: impl Into<String>) -> Client {
        let base_url: String = base_url.into();
        Client {
            http: http_client(client_builder).unwrap_or_default(),
            base_url: base_url.trim_end_matches('/').into(),
            token: None,
            token_header: TokenHeader::Authorization,
            edge_token: None,
            #[cfg(feature = "sprites")]
            relay: None,
            recipe: Some(Arc::new(client_builder)),
            #[cfg(feature = "terminal")]
            upgrade_http: Arc::default(),
            traceparent: None,
        }
    }

    /// The turns this client starts (a message, a session created with a
    /// prompt) join the trace this W3C `traceparent` names: their spans are
    /// children of that span, and `turn.started` records the trace. Without
    /// it, and with the `otel` feature (on by default), the current
    /// OpenTelemetry span's context is sent when there is one.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Client {
        self.traceparent = Some(traceparent.into().into());
        self
    }

    /// The `traceparent` a turn-starting request sends, if any.
    fn traceparent(&self) -> Option<String> {
        if let Some(t) = &self.traceparent {
            return Some(t.to_string());
        }
        #[cfg(feature = "otel")]
        {
            use opentelemetry::trace::TraceContextExt;
            let cx = opentelemetry::Context::current();
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                return Some(format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8()));
            }
        }
        None
    }

    /// `request` with the caller's `traceparent`, for the routes that start a turn.
    fn turn_request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.request(method, path);
        match self.traceparent() {
            Some(t) => request.header("traceparent", t),
            None => request,
        }
    }

    /// Rebuilds the HTTP client with these options (timeouts, a proxy, …)
    /// applied to the builder the SDK made it from, so that it keeps the
    /// SDK's redirect policy, its transport (the Sprites relay) and its TLS
    /// roots. The terminal WebSocket gets them too. For a client given with
    /// [`with_http_client`](Self::with_http_client), they apply to a fresh
    /// SDK builder instead.
    pub fn with_http_options(
        mut self,
        options: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Result<Client> {
        let base: Recipe = self.recipe.take().unwrap_or_else(|| Arc::new(client_builder));
        let recipe: Recipe = Arc::new(move || options(base()));
        Ok(self.with_recipe(recipe)?)
    }

    /// Builds `http` from `recipe` and keeps the recipe.
    fn with_recipe(mut self, recipe: Recipe) -> reqwest::Result<Client> {
        self.http = http_client(|| recipe())?;
        self.recipe = Some(recipe);
        #[cfg(feature = "terminal")]
        {
            self.upgrade_http = Arc::default();
        }
        Ok(self)
    }

    /// A client of the tether inside the Sprite `name`, through the Sprites
    /// TCP proxy (`wss://api.sprites.dev/v1/sprites/{name}/proxy`) with this
    /// Sprites token. tether's own token is the one `tether sprite deploy
    /// NAME` saved on this machine ([`sprites::saved_token`]), if any;
    /// [`with_token`](Self::with_token) overrides it. Each HTTP connection is
    /// a tunnel of its own, so event streams resume across tunnel drops.
    /// Must be called inside a tokio runtime. See [`sprites`] for the details.
    #[cfg(feature = "sprites")]
    pub fn sprite(name: impl Into<String>, sprites_token: impl Into<String>) -> Result<Client> {
        Client::through_sprites_proxy(sprites::SpritesProxy::new(name, sprites_token))
    }

    /// [`sprite`](Self::sprite) with every option of the proxy (the saved
    /// token too, [`with_token`](Self::with_token) overriding it).
    #[cfg(feature = "sprites")]
    pub fn through_sprites_proxy(proxy: sprites::SpritesProxy) -> Result<Client> {
        let saved = sprites::saved_token(proxy.sprite());
        let relay = sprites::Relay::start(proxy)?;
        let socket = relay.socket.clone();
        let recipe: Recipe = Arc::new(move || client_builder().unix_socket(socket.as_path()));
        // The host is not used to connect (the relay's socket is); it is the
        // `Host` tether sees, and a loopback name is one it serves without a token.
        let mut client = Client::new("http://localhost")
            .with_recipe(recipe)
            .map_err(|e| Error::Tunnel(format!("cannot build the HTTP client: {e}")))?;
        client.relay = Some(Arc::new(relay));
        client.token = saved.map(Into::into);
        Ok(client)
    }

    /// A client of the tether behind a Sprite URL (`https://NAME-ORG.sprites.app`)
    /// in its default auth mode: the Sprites token goes as `Authorization:
    /// Bearer` (the edge takes it), tether's token as `X-Tether-Token`.
    pub fn sprite_url(url: impl Into<String>, sprites_token: impl Into<String>) -> Client {
        let mut client = Client::new(url).with_token_header(TokenHeader::XTetherToken);
        client.edge_token = Some(sprites_token.into().into());
        client
    }

    /// Sends tether's token on every request, in the
    /// [`TokenHeader`] chosen (`Authorization: Bearer` by default).
    pub fn with_token(mut self, token: impl Into<String>) -> Client {
        self.token = Some(token.into().into());
        self
    }

    /// Which header carries the token.
    pub fn with_token_header(mut self, header: TokenHeader) -> Client {
        self.token_header = header;
        self
    }

    /// Uses this `reqwest` client (timeouts, proxies, TLS) for every request.
    /// Build it from [`client_builder`] to keep the SDK's redirect policy:
    /// a client that follows redirects (reqwest's default) sends tether's
    /// token on to wherever one points, before the SDK sees the answer. The
    /// SDK still acts on no redirect: a 3xx it gets, or an answer that came
    /// from another URL than the one asked (a redirect the client followed),
    /// is an [`Error::Api`] (`sprites_token_refused` or `redirected`).
    ///
    /// That client also carries the terminal WebSocket
    /// ([`attach_terminal`](Self::attach_terminal)): an upgrade needs
    /// HTTP/1.1, so give one built with `http1_only()` if the server (or an
    /// edge in front of it) speaks HTTP/2 over TLS; or prefer
    /// [`with_http_options`](Self::with_http_options).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Client {
        self.http = http;
        self.recipe = None;
        #[cfg(feature = "terminal")]
        {
            self.upgrade_http = Arc::default();
        }
        self
    }

    /// Also trusts this root certificate (DER) for `https://`, besides the
    /// platform's roots (a private CA in front of tether), with the SDK's
    /// own HTTP client (no redirects; options given with
    /// [`with_http_options`](Self::with_http_options) are kept). Replaces a client given with
    /// [`with_http_client`](Self::with_http_client). A client through the
    /// Sprites proxy keeps its own (its TLS is the proxy's: see
    /// `SpritesProxy::with_root_certificate`).
    #[cfg(feature = "rustls")]
    pub fn with_root_certificate(mut self, der: impl AsRef<[u8]>) -> Result<Client> {
        #[cfg(feature = "sprites")]
        if self.relay.is_some() {
            return Ok(self);
        }
        let cert = reqwest::Certificate::from_der(der.as_ref())?;
        let base: Recipe = self.recipe.take().unwrap_or_else(|| Arc::new(client_builder));
        Ok(self.with_recipe(Arc::new(move || base().tls_certs_merge([cert.clone()])))?)
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A request to `base_url + path` (path starting with `/`, query
    /// allowed) with the auth header set: the escape hatch for routes this
    /// client does not wrap.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_on(&self.http, method, path)
    }

    /// [`request`](Self::request) on another `reqwest` client.
    fn request_on(&self, http: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        let mut request = http.request(method, format!("{}{}", self.base_url, path));
        if let Some(edge) = &self.edge_token {
            request = request.bearer_auth(edge);
        }
        match (&self.token, self.token_header) {
            (Some(token), TokenHeader::Authorization) if self.edge_token.is_none() => request.bearer_auth(token),
            (Some(token), _) => request.header(tether_protocol::TOKEN_HEADER, token.as_ref()),
            (None, _) => request,
        }
    }

    // Service

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Health> {
        json(self.request(Method::GET, "/v1/health")).await
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<Info> {
        json(self.request(Method::GET, "/v1/info")).await
    }

    /// `GET /v1/openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value> {
        json(self.request(Method::GET, "/v1/openapi.json")).await
    }

    /// `GET /metrics`: Prometheus text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(send(self.request(Method::GET, "/metrics")).await?.text().await?)
    }

    // Agents

    /// `GET /v1/agents`.
    pub async fn agents(&self) -> Result<AgentList> {
        json(self.request(Method::GET, "/v1/agents")).await
    }

    /// `GET /v1/agents/{id}`.
    pub async fn agent(&self, id: impl AsRef<str>) -> Result<Agent> {
        json(self.request(Method::GET, &path(&["v1", "agents", id.as_ref()]))).await
    }

    // Sessions

    /// `POST /v1/sessions`.
    pub async fn create_session(&self, body: &CreateSession) -> Result<Session> {
        json(self.turn_request(Method::POST, "/v1/sessions").json(body)).await
    }

    /// `GET /v1/sessions?status=&agent=&limit=&cursor=`.
    pub async fn list_sessions(&self, query: &ListSessions) -> Result<SessionList> {
        json(self.request(Method::GET, "/v1/sessions").query(query)).await
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn get_session(&self, id: impl AsRef<str>) -> Result<Session> {
        json(self.request(Method::GET, &session_path(id.as_ref(), &[]))).await
    }

    /// `DELETE /v1/sessions/{id}` (`?purge=true` also deletes the history).
    pub async fn delete_session(&self, id: impl AsRef<str>, purge: bool) -> Result<Session> {
        let query = tether_protocol::SessionDeleteQuery { purge };
        json(self.request(Method::DELETE, &session_path(id.as_ref(), &[])).query(&query)).await
    }

    /// `POST /v1/sessions/{id}/messages`: 202 with the turn id at once.
    pub async fn send_message(&self, id: impl AsRef<str>, message: &SendMessage) -> Result<MessageAccepted> {
        let path = session_path(id.as_ref(), &["messages"]);
        json(self.turn_request(Method::POST, &path).json(message)).await
    }

    /// [`send_message`](Self::send_message) with `{"text": text}`.
    pub async fn send_text(&self, id: impl AsRef<str>, text: impl Into<String>) -> Result<MessageAccepted> {
        self.send_message(id, &SendMessage::text(text)).await
    }

    /// `POST /v1/sessions/{id}/interrupt` (202).
    pub async fn interrupt(&self, id: impl AsRef<str>) -> Result<()> {
        empty(self.request(Method::POST, &session_path(id.as_ref(), &["interrupt"]))).await
    }

    /// `POST /v1/sessions/{id}/permissions/{permission_id}`.
    pub async fn reply_permission(
        &self,
        session_id: impl AsRef<str>,
        permission_id: impl AsRef<str>,
        reply: &PermissionReply,
    ) -> Result<()> {
        let path = session_path(session_id.as_ref(), &["permissions", permission_id.as_ref()]);
        empty(self.request(Method::POST, &path).json(reply)).await
    }

    /// `POST /v1/sessions/{id}/questions/{question_id}`.
    pub async fn reply_question(
        &self,
        session_id: impl AsRef<str>,
        question_id: impl AsRef<str>,
        reply: &QuestionReply,
    ) -> Result<()> {
        let path = session_path(session_id.as_ref(), &["questions", question_id.as_ref()]);
        empty(self.request(Method::POST, &path).json(reply)).await
    }

    /// `GET /v1/sessions/{id}/events?after=&limit=&include_raw=`: the events
    /// with `seq > after`. An `after` beyond the session's last `seq` (the
    /// server's store was restored from an older copy) is
    /// [`Error::CursorAhead`] naming the real last `seq`.
    pub async fn events_page(
        &self,
        id: impl AsRef<str>,
        after: u64,
        limit: Option<u32>,
        include_raw: bool,
    ) -> Result<EventPage> {
        let query = tether_protocol::EventPageQuery { after, limit, include_raw };
        let path = session_path(id.as_ref(), &["events"]);
        json(self.request(Method::GET, &path).query(&query)).await.map_err(|e| match e {
            Error::CursorAhead(reset) => Error::CursorAhead(StreamReset { after: Some(after), ..reset }),
            other => other,
        })
    }

    // Event streams

    /// `GET /v1/sessions/{id}/events/stream`: the events of one session with
    /// `seq > after`, then live. The cursor is `seq`.
    pub fn session_events(&self, id: impl AsRef<str>, after: Option<u64>) -> EventStream {
        let path = session_path(id.as_ref(), &["events", "stream"]);
        EventStream::new(self.clone(), path, CursorKind::Seq, after)
    }

    /// `GET /v1/events/stream`: the events of every session with
    /// `gseq > after`, then live. The cursor is `gseq`.
    pub fn all_events(&self, after: Option<u64>) -> EventStream {
        EventStream::new(self.clone(), "/v1/events/stream".to_owned(), CursorKind::Gseq, after)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_header", &self.token_header)
            .field("edge_token", &self.edge_token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A `reqwest` client builder with the SDK's policy: it follows no redirect
/// (one would carry tether's token to wherever it points). Start from it for
/// [`Client::with_http_client`].
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none())
}

/// Builds a `reqwest` client from the builder `make` gives, and still gets
/// one where the system has no CA certificates (an empty container or
/// chroot), where the platform verifier refuses to start: then with no
/// trusted roots at all, so plain `http://` works and `https://` fails to
/// verify (with a certificate error) instead of nothing working.
pub fn http_client(make: impl Fn() -> reqwest::ClientBuilder) -> reqwest::Result<reqwest::Client> {
    match make().build() {
        Ok(client) => Ok(client),
        #[cfg(feature = "rustls")]
        Err(_) => make().tls_certs_only(Vec::new()).build(),
        #[cfg(not(feature = "rustls"))]
        Err(e) => Err(e),
    }
}

/// Sends a request. An answer from another URL than the one asked (the HTTP
/// client followed a redirect) is an error, never read.
pub(crate) async fn execute(request: RequestBuilder) -> Result<Response> {
    let (http, request) = request.build_split();
    let request = request?;
    let asked = request.url().clone();
    let response = http.execute(request).await?;
    if response.url() != &asked {
        return Err(error::followed_redirect(response.url()));
    }
    Ok(response)
}

/// Sends a request; a non-2xx answer becomes [`Error::Api`].
async fn send(request: RequestBuilder) -> Result<Response> {
    let response = execute(request).await?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(error::from_response(response).await)
    }
}

/// Sends a request and decodes its JSON answer.
async fn json<T: DeserializeOwned>(request: RequestBuilder) -> Result<T> {
    let body = send(request).await?.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| {
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Error::Decode(format!("{}: {e} in {shown:?}", std::any::type_name::<T>()))
    })
}

/// Sends a request whose answer has no meaningful body.
async fn empty(request: RequestBuilder) -> Result<()> {
    // Read the body to the end so the connection can be reused.
    send(request).await?.bytes().await?;
    Ok(())
}

/// `/v1/sessions/{id}/{rest..}`, each segment percent-encoded.
fn session_path(id: &str, rest: &[&str]) -> String {
    let mut segments = vec!["v1", "sessions", id];
    segments.extend_from_slice(rest);
    path(&segments)
}

/// `/seg/seg/..`, each segment percent-encoded (everything but the RFC 3986
/// unreserved characters), so an id can never change the route.
fn path(segments: &[&str]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        for &b in segment.as_bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::tests::{header, serve, Answer};

    fn reply(status: &str, content_type: &str, body: &str) -> Answer {
        Answer {
            bytes: format!(
                "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            keep_open: false,
        }
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(path(&["v1", "agents", "mock"]), "/v1/agents/mock");
        assert_eq!(session_path("a/b?c#d e", &["events"]), "/v1/sessions/a%2Fb%3Fc%23d%20e/events");
        assert_eq!(path(&["v1", "x\0é"]), "/v1/x%00%C3%A9");
    }

    #[test]
    fn base_url_and_debug() {
        let client = Client::new("http://h:1/").with_token("secret");
        assert_eq!(client.base_url(), "http://h:1");
        assert!(!format!("{client:?}").contains("secret"));
    }

    #[tokio::test]
    async fn requests_carry_the_token_and_errors_are_problems() {
        let (base, mut heads) = serve(|n, _| match n {
            0 => reply("200 OK", "application/json", r#"{"status":"ok"}"#),
            1 => reply(
                "404 Not Found",
                "application/problem+json",
                r#"{"type":"urn:tether:error:session_not_found","title":"Not Found","status":404,"detail":"nope"}"#,
            ),
            2 => reply("500 Internal Server Error", "text/plain", "boom"),
            3 => reply("202 Accepted", "application/json", ""),
            _ => reply("200 OK", "application/json", "{}"),
        })
        .await;
        let client = Client::new(base).with_token("tok");

        assert_eq!(client.health().await.unwrap().status, "ok");
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /v1/health HTTP/1.1"), "{head}");
        assert_eq!(header(&head, "authorization"), Some("Bearer tok"));

        let err = client.get_session("ses_x").await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(404), Some("session_not_found")));
        assert!(heads.recv().await.unwrap().starts_with("GET /v1/sessions/ses_x HTTP/1.1"));

        let err = client.delete_session("ses_x", true).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(500), Some("unknown")));
        match err {
            Error::Api { problem, .. } => assert_eq!(problem.detail, "boom"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(heads.recv().await.unwrap().starts_with("DELETE /v1/sessions/ses_x?purge=true HTTP/1.1"));

        client.interrupt("ses_x").await.unwrap();
        assert!(heads.recv().await.unwrap().starts_with("POST /v1/sessions/ses_x/interrupt HTTP/1.1"));

        // A 2xx body that is not the promised type is a decode error.
        let err = client.get_session("ses_x").await.unwrap_err();
        assert!(matches!(err, Error::Decode(_)), "{err:?}");
        heads.recv().await.unwrap();

        let query = ListSessions { status: Some(SessionStatus::Idle), limit: Some(5), ..Default::default() };
        let _ = client.list_sessions(&query).await;
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /v1/sessions?status=idle&limit=5 HTTP/1.1"), "{head}");

        let _ = client.events_page("ses_x", 7, Some(10), true).await;
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /v1/sessions/ses_x/events?after=7&limit=10&include_raw=true HTTP/1.1"), "{head}");
    }
}
