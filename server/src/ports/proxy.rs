//! Forwards one request to the app on `127.0.0.1:{port}` (or `[::1]`) and
//! its answer back, both bodies streamed as they come (nothing buffered); a
//! request that upgrades (WebSocket or any other `Upgrade`) is forwarded,
//! and once both sides switched protocols their bytes are spliced.
//!
//! tether's credentials never reach the app: `X-Tether-Token`, an
//! `Authorization` that carries tether's token and the preview cookies are
//! taken off. Hop-by-hop headers are not forwarded. The app is told where
//! the request came from (`X-Forwarded-Host`, `-Proto`, `-For`, and
//! `-Prefix` when the prefix was stripped) and is addressed as
//! `localhost:{port}`, the name dev servers accept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::PortError;

/// Headers that belong to one connection, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Where and how one request goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub port: u16,
    /// The path and query the app receives.
    pub path_and_query: String,
    /// The part of the path taken off (`/v1/ports/{port}/proxy`), if any:
    /// sent as `X-Forwarded-Prefix`, and put before the app's own
    /// redirects to absolute paths.
    pub prefix: Option<String>,
    /// tether's token, taken off an `Authorization` that carries it.
    pub token: Option<String>,
    /// The client's address, added to `X-Forwarded-For`.
    pub client: Option<SocketAddr>,
    /// The addresses the app listens on besides loopback (an app bound to
    /// one interface's address only), tried after it.
    pub also: Vec<IpAddr>,
}

/// Connects to the app: `127.0.0.1:{port}`, else `[::1]:{port}`, else
/// each of `also`. Refused everywhere: nothing listens.
pub async fn connect(port: u16, also: &[IpAddr]) -> Result<TcpStream, PortError> {
    let loopback = [IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)];
    let mut first = None;
    for ip in loopback.iter().chain(also) {
        match TcpStream::connect((*ip, port)).await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    match first {
        None => Err(PortError::NotListening { port }),
        Some(e) => Err(PortError::Failed { port, what: format!("could not be reached ({e})") }),
    }
}

/// Sends `req` to the app and answers its response.
pub async fn forward(mut req: Request<Body>, to: &Target) -> Result<Response<Body>, PortError> {
    let upgrade = wants_upgrade(req.headers());
    let client_side = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let has_body =
        parts.headers.contains_key(header::CONTENT_LENGTH) || parts.headers.contains_key(header::TRANSFER_ENCODING);
    clean_request(&mut parts.headers, to, upgrade);
    parts.uri = to
        .path_and_query
        .parse::<Uri>()
        .map_err(|e| PortError::Invalid(format!("the path cannot be forwarded: {e}")))?;
    parts.version = Version::HTTP_11;
    let body = if has_body { body } else { Body::empty() };
    let port = to.port;
    let stream = connect(port, &to.also).await?;
    let broke = |e: hyper::Error| PortError::Failed { port, what: format!("broke the connection ({e})") };
    let (mut sender, conn) =
        hyper::client::conn::http1::Builder::new().handshake::<_, Body>(TokioIo::new(stream)).await.map_err(broke)?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(port, error = %e, "preview connection ended");
        }
    });
    let mut resp = sender.send_request(Request::from_parts(parts, body)).await.map_err(broke)?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_side) = client_side else {
            return Err(PortError::Failed {
                port,
                what: "switched protocols for a request that asked no upgrade".into(),
            });
        };
        let app_side = hyper::upgrade::on(&mut resp);
        tokio::spawn(async move {
            let (client, app) = match (client_side.await, app_side.await) {
                (Ok(c), Ok(a)) => (c, a),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::debug!(port, error = %e, "preview upgrade failed");
                    return;
                }
            };
            let (mut client, mut app) = (TokioIo::new(client), TokioIo::new(app));
            if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut app).await {
                tracing::debug!(port, error = %e, "preview upgraded connection ended");
            }
        });
        let (parts, _) = resp.into_parts();
        return Ok(Response::from_parts(parts, Body::empty()));
    }
    let (mut parts, body) = resp.into_parts();
    clean_response(&mut parts.headers, to);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Whether the request asks to switch protocols (`Connection: upgrade` and an `Upgrade`).
fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// Takes off hop-by-hop headers (and those `Connection` names); an upgrade
/// keeps `Connection: upgrade` and its `Upgrade`.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let protocol = headers.get(header::UPGRADE).cloned().filter(|_| upgrade);
    let named: Vec<String> = connection_tokens(headers).collect();
    for name in HOP_BY_HOP.iter().copied().chain(named.iter().map(String::as_str)) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if let Some(protocol) = protocol {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

/// The request headers the app receives.
fn clean_request(headers: &mut HeaderMap, to: &Target, upgrade: bool) {
    let host = headers.get(header::HOST).cloned();
    strip_hop_by_hop(headers, upgrade);
    headers.remove(tether_protocol::TOKEN_HEADER);
    let tethers = |v: &HeaderValue| {
        let Some(token) = to.token.as_deref() else { return false };
        let given = v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
        given.is_some_and(|g| crate::token::constant_time_eq(g.trim().as_bytes(), token.as_bytes()))
    };
    let apps: Vec<HeaderValue> =
        headers.get_all(header::AUTHORIZATION).iter().filter(|v| !tethers(v)).cloned().collect();
    headers.remove(header::AUTHORIZATION);
    for v in apps {
        headers.append(header::AUTHORIZATION, v);
    }
    strip_preview_cookies(headers);
    let forwarded_proto = headers.get("x-forwarded-proto").cloned().unwrap_or_else(|| HeaderValue::from_static("http"));
    headers.insert("x-forwarded-proto", forwarded_proto);
    if let Some(host) = host {
        if !headers.contains_key("x-forwarded-host") {
            headers.insert("x-forwarded-host", host);
        }
    }
    if let Some(client) = to.client {
        let ip = client.ip().to_string();
        let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {ip}"),
            None => ip,
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert("x-forwarded-for", v);
        }
    }
    headers.remove("x-forwarded-prefix");
    if let Some(prefix) = to.prefix.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert("x-forwarded-prefix", prefix);
    }
    if let Ok(h) = HeaderValue::from_str(&format!("localhost:{}", to.port)) {
        headers.insert(header::HOST, h);
    }
}

/// Takes tether's preview cookies (`tether_preview_<port>`) out of `Cookie`, keeping the app's own.
fn strip_preview_cookies(headers: &mut HeaderMap) {
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with(PREVIEW_COOKIE_PREFIX))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if cookies.is_empty() {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&cookies.join("; ")) {
        headers.insert(header::COOKIE, v);
    }
}

/// The start of every preview cookie's name (see `link::cookie_name`).
const PREVIEW_COOKIE_PREFIX: &str = "tether_preview_";

/// The response headers the client receives: no hop-by-hop headers, and the
/// app's redirects to its own absolute paths kept under the preview.
fn clean_response(headers: &mut HeaderMap, to: &Target) {
    strip_hop_by_hop(headers, false);
    let Some(location) = headers.get(header::LOCATION).and_then(|v| v.to_str().ok()) else { return };
    let port = to.port;
    let own = [format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")];
    let path =
        own.iter().find_map(|o| location.strip_prefix(o.as_str())).filter(|p| p.is_empty() || p.starts_with('/'));
    let path = match path {
        Some("") => "/".to_string(),
        Some(p) => p.to_string(),
        None if location.starts_with('/') && !location.starts_with("//") => location.to_string(),
        None => return,
    };
    let rewritten = format!("{}{path}", to.prefix.as_deref().unwrap_or(""));
    if let Ok(v) = HeaderValue::from_str(&rewritten) {
        headers.insert(header::LOCATION, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(prefix: Option<&str>) -> Target {
        Target {
            port: 5173,
            path_and_query: "/".into(),
            prefix: prefix.map(str::to_string),
            token: Some("s3cret".into()),
            client: Some("10.0.0.9:5555".parse().unwrap()),
            also: vec![],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tethers_credentials_never_reach_the_app() {
        let mut h = headers(&[
            ("host", "me.sprites.app"),
            ("x-tether-token", "s3cret"),
            ("authorization", "Bearer s3cret"),
            ("cookie", "tether_preview_5173=5173.9.ab; app=1"),
            ("cookie", "tether_preview_80=x"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("upgrade", "h2c"),
            ("accept", "text/html"),
        ]);
        clean_request(&mut h, &target(Some("/v1/ports/5173/proxy")), false);
        assert!(h.get("x-tether-token").is_none() && h.get("authorization").is_none());
        assert_eq!(h.get_all("cookie").iter().collect::<Vec<_>>(), vec!["app=1"]);
        assert!(h.get("connection").is_none() && h.get("x-hop").is_none() && h.get("upgrade").is_none());
        assert_eq!(h["host"], "localhost:5173");
        assert_eq!(h["x-forwarded-host"], "me.sprites.app");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-prefix"], "/v1/ports/5173/proxy");
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["accept"], "text/html");
        // The app's own credentials are its own.
        let mut h = headers(&[
            ("authorization", "Bearer s3cret"),
            ("authorization", "Bearer app-token"),
            ("x-forwarded-proto", "https"),
        ]);
        clean_request(&mut h, &target(None), false);
        assert_eq!(h["authorization"], "Bearer app-token");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("x-forwarded-prefix").is_none() && h.get("cookie").is_none());
    }

    #[test]
    fn an_upgrade_keeps_its_headers() {
        let mut h = headers(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
            ("keep-alive", "timeout=5"),
        ]);
        assert!(wants_upgrade(&h));
        clean_request(&mut h, &target(None), true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["sec-websocket-key"], "k");
        assert!(h.get("keep-alive").is_none());
        assert!(!wants_upgrade(&headers(&[("upgrade", "websocket")])));
    }

    #[test]
    fn the_apps_redirects_stay_under_the_preview() {
        let cases = [
            (Some("/v1/ports/5173/proxy"), "/login", "/v1/ports/5173/proxy/login"),
            (Some("/v1/ports/5173/proxy"), "http://localhost:5173/a?b", "/v1/ports/5173/proxy/a?b"),
            (Some("/v1/ports/5173/proxy"), "http://127.0.0.1:5173", "/v1/ports/5173/proxy/"),
            (Some("/v1/ports/5173/proxy"), "https://example.com/x", "https://example.com/x"),
            (Some("/v1/ports/5173/proxy"), "//example.com/x", "//example.com/x"),
            (Some("/v1/ports/5173/proxy"), "relative", "relative"),
            (None, "/v1/ports/5173/absproxy/x", "/v1/ports/5173/absproxy/x"),
            (None, "http://localhost:5173/v1/ports/5173/absproxy/", "/v1/ports/5173/absproxy/"),
        ];
        for (prefix, from, to) in cases {
            let mut h = headers(&[("location", from), ("transfer-encoding", "chunked")]);
            clean_response(&mut h, &target(prefix));
            assert_eq!(h["location"], to, "{from}");
            assert!(h.get("transfer-encoding").is_none());
        }
    }
}
