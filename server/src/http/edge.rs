//! Browser-facing defences, in one place for every route (`/mcp` included):
//!
//! - **Host** (DNS rebinding): when the server runs without a token, a
//!   request must name it by a loopback name (`localhost`, `127.0.0.1`,
//!   `[::1]`), the address it is bound to, an `--allow-host` name, or the
//!   Sprite URL's host. A page on another site that rebinds its own name to
//!   127.0.0.1 sends its own name as `Host` and is refused. With a token,
//!   any name may reach the server (a proxy, the Sprite URL): the token is
//!   the protection. A request with more than one `Host` is refused always.
//! - **Origin** (cross-site WebSocket hijacking, cross-site writes): a
//!   request that carries an `Origin` (browsers send it on WebSocket
//!   upgrades and on every POST/PUT/PATCH/DELETE) must come from the
//!   server's own origin (the `Origin`'s host and port are the request's
//!   `Host`), an `--allow-origin` origin, or the Sprite URL. Requests with
//!   no `Origin` (curl, the SDK, agents) are not browsers and pass.
//!
//! Plain `GET`s without an upgrade are not checked for `Origin`: a browser
//! does not let another origin read their answers (no CORS headers here).

use std::collections::HashSet;
use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppRef;
use crate::error::ErrorCode;
use crate::http::ApiError;

/// Who may reach the server from a browser, and by which names.
#[derive(Debug, Clone, Default)]
pub struct EdgePolicy {
    /// Whether a token protects the server (then any `Host` is served).
    pub token: bool,
    /// Host names (lowercase, no port) served without a token.
    pub hosts: HashSet<String>,
    /// Origins (`scheme://host[:port]`, lowercase) allowed besides the server's own.
    pub origins: HashSet<String>,
}

impl EdgePolicy {
    /// The loopback names, the bound address (unless a wildcard), and `extra_hosts`.
    pub fn new(token: bool, bound: IpAddr, extra_hosts: &[String], origins: &[String]) -> EdgePolicy {
        let mut hosts: HashSet<String> = ["localhost", "127.0.0.1", "::1"].map(str::to_string).into();
        if !bound.is_unspecified() {
            hosts.insert(bound.to_string());
        }
        hosts.extend(extra_hosts.iter().map(|h| host_only(&h.to_ascii_lowercase()).to_string()));
        let origins = origins.iter().map(|o| o.trim_end_matches('/').to_ascii_lowercase()).collect();
        EdgePolicy { token, hosts, origins }
    }
}

/// `host` of `host:port`, `[v6]:port` or `[v6]` (the brackets taken off).
fn host_only(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        // One colon: host:port. More: a bare IPv6 address.
        Some((host, port)) if !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// What the edge decides about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Refuse(ErrorCode, String),
}

/// Checks `Host` and `Origin` of a request against `policy`; `sprite_host`
/// is the Sprite URL's host when tether runs in a Sprite.
pub fn judge(policy: &EdgePolicy, method: &Method, headers: &HeaderMap, sprite_host: Option<&str>) -> Verdict {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next().map(|h| h.to_str().unwrap_or("").trim().to_ascii_lowercase());
    if hosts.next().is_some() {
        return Verdict::Refuse(
            ErrorCode::HostNotAllowed,
            "the request has more than one Host header; send exactly one".into(),
        );
    }
    if let (false, Some(h)) = (policy.token, host.as_deref()) {
        let name = host_only(h);
        if !policy.hosts.contains(name) && Some(name) != sprite_host {
            return Verdict::Refuse(
                ErrorCode::HostNotAllowed,
                format!(
                    "this tether has no token, so it serves only requests that name it by a loopback address or an \
                     allowed name, and {name:?} is neither (a web page may be trying to reach it through DNS \
                     rebinding). Use http://127.0.0.1 or http://localhost, start tether with --allow-host {name}, or \
                     give it a token."
                ),
            );
        }
    }
    let upgrade =
        headers.get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let writes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !(upgrade || writes) {
        return Verdict::Pass;
    }
    let Some(origin) = headers.get(header::ORIGIN) else { return Verdict::Pass };
    let origin = origin.to_str().unwrap_or("").trim().trim_end_matches('/').to_ascii_lowercase();
    let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
    let same = host.as_deref().is_some_and(|h| !authority.is_empty() && authority == h);
    let sprite = sprite_host.is_some_and(|s| host_only(authority) == s);
    if same || sprite || policy.origins.contains(&origin) {
        return Verdict::Pass;
    }
    let what = if upgrade { "open a WebSocket" } else { "change anything" };
    Verdict::Refuse(
        ErrorCode::OriginNotAllowed,
        format!(
            "a web page from {origin:?} may not {what} here: only tether's own pages may. To let that page in, start \
             tether with --allow-origin {origin}."
        ),
    )
}

/// The middleware: refuses what [`judge`] refuses, with a 403 problem.
pub async fn check(State(app): State<AppRef>, req: Request, next: Next) -> Response {
    let sprite_host = app.sprite.as_ref().and_then(|s| s.url_host());
    match judge(&app.edge, req.method(), req.headers(), sprite_host.as_deref()) {
        Verdict::Pass => next.run(req).await,
        Verdict::Refuse(code, detail) => ApiError::of(code, detail).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn open() -> EdgePolicy {
        EdgePolicy::new(false, "127.0.0.1".parse().unwrap(), &[], &[])
    }

    #[test]
    fn without_a_token_only_loopback_and_allowed_names_are_served() {
        let p = open();
        for host in ["127.0.0.1:7419", "localhost:7419", "[::1]:7419", "localhost"] {
            assert_eq!(judge(&p, &Method::POST, &headers(&[("host", host)]), None), Verdict::Pass, "{host}");
        }
        let refused = judge(&p, &Method::PUT, &headers(&[("host", "attacker.example:7419")]), None);
        assert!(
            matches!(refused, Verdict::Refuse(ErrorCode::HostNotAllowed, ref d) if d.contains("--allow-host attacker.example"))
        );
        let allowed = EdgePolicy::new(false, "127.0.0.1".parse().unwrap(), &["box.lan".into()], &[]);
        assert_eq!(judge(&allowed, &Method::GET, &headers(&[("host", "BOX.lan:7419")]), None), Verdict::Pass);
        assert_eq!(
            judge(&p, &Method::GET, &headers(&[("host", "me-org.sprites.app")]), Some("me-org.sprites.app")),
            Verdict::Pass
        );
        // With a token, any name.
        let token = EdgePolicy { token: true, ..open() };
        assert_eq!(judge(&token, &Method::GET, &headers(&[("host", "attacker.example")]), None), Verdict::Pass);
        // Two Host headers: never.
        let two = headers(&[("host", "127.0.0.1"), ("host", "attacker.example")]);
        assert!(matches!(judge(&token, &Method::GET, &two, None), Verdict::Refuse(ErrorCode::HostNotAllowed, _)));
    }

    #[test]
    fn only_the_servers_own_origin_opens_websockets_and_writes() {
        let p = open();
        let ws = |origin: &str| headers(&[("host", "127.0.0.1:7419"), ("upgrade", "websocket"), ("origin", origin)]);
        assert_eq!(judge(&p, &Method::GET, &ws("http://127.0.0.1:7419"), None), Verdict::Pass);
        assert!(matches!(
            judge(&p, &Method::GET, &ws("https://evil.example"), None),
            Verdict::Refuse(ErrorCode::OriginNotAllowed, _)
        ));
        assert!(matches!(judge(&p, &Method::GET, &ws("null"), None), Verdict::Refuse(ErrorCode::OriginNotAllowed, _)));
        // Another port of the same host is another origin.
        assert!(matches!(judge(&p, &Method::GET, &ws("http://127.0.0.1:3000"), None), Verdict::Refuse(..)));
        let post = headers(&[("host", "127.0.0.1:7419"), ("origin", "https://evil.example")]);
        assert!(matches!(judge(&p, &Method::POST, &post, None), Verdict::Refuse(ErrorCode::OriginNotAllowed, _)));
        // A plain GET is not a browser write; a request with no Origin is not a browser.
        assert_eq!(judge(&p, &Method::GET, &post, None), Verdict::Pass);
        assert_eq!(judge(&p, &Method::POST, &headers(&[("host", "127.0.0.1:7419")]), None), Verdict::Pass);
        let allowed = EdgePolicy::new(false, "127.0.0.1".parse().unwrap(), &[], &["https://app.example/".into()]);
        let from_app = headers(&[("host", "127.0.0.1:7419"), ("origin", "https://app.example")]);
        assert_eq!(judge(&allowed, &Method::DELETE, &from_app, None), Verdict::Pass);
        let sprite = headers(&[("host", "10.0.0.1:8080"), ("origin", "https://me-org.sprites.app")]);
        assert_eq!(
            judge(&EdgePolicy { token: true, ..open() }, &Method::POST, &sprite, Some("me-org.sprites.app")),
            Verdict::Pass
        );
    }
}
