//! Port routes: the ports listening in the sandbox, preview links, and the
//! preview proxy (`/v1/ports/{port}/proxy/{path}` forwards `/{path}`,
//! `/v1/ports/{port}/absproxy/{path}` the whole path). Detection, links and
//! the forwarding itself live in `crate::ports`, with the code of each
//! failure (`PortError`); this module only answers them over HTTP, and
//! tells `auth` which requests a preview cookie lets in ([`preview_port`],
//! [`cookie_of`], [`is_open_path`]).

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use tether_protocol::{CreatePreviewLink, PortList, ProxyStyle};

use super::{ApiJson, ApiQuery, AppRef};
use crate::connections::ClientAddr;
use crate::http::ApiError;
use crate::ports::{link, parse_port, proxy, OpenLink};

pub fn router() -> Router<AppRef> {
    Router::new()
        .route("/v1/ports", get(list))
        .route("/v1/ports/{port}/links", post(create_link))
        .route("/v1/ports/{port}/open", get(open))
        .route("/v1/ports/{port}/proxy", any(to_slash))
        .route("/v1/ports/{port}/proxy/", any(proxy_style))
        .route("/v1/ports/{port}/proxy/{*path}", any(proxy_style))
        .route("/v1/ports/{port}/absproxy", any(absproxy_style))
        .route("/v1/ports/{port}/absproxy/", any(absproxy_style))
        .route("/v1/ports/{port}/absproxy/{*path}", any(absproxy_style))
}

/// Unix seconds now.
fn now() -> u64 {
    u64::try_from(crate::ids::now_ms() / 1000).unwrap_or(0)
}

async fn list(State(app): State<AppRef>) -> Json<PortList> {
    Json(app.ports.list())
}

/// 201 with the link.
async fn create_link(
    State(app): State<AppRef>,
    Path(port): Path<String>,
    ApiJson(req): ApiJson<CreatePreviewLink>,
) -> Result<Response, ApiError> {
    let port = parse_port(&port)?;
    let now_ms = u64::try_from(crate::ids::now_ms()).unwrap_or(0);
    let link = app.ports.create_link(port, req, now_ms).await?;
    Ok((StatusCode::CREATED, Json(link)).into_response())
}

/// Opens a signed link (no token needed: the signature is the credential):
/// a 303 into the preview, setting the cookie that lets the browser in.
async fn open(
    State(app): State<AppRef>,
    Path(port): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<OpenLink>,
) -> Result<Response, ApiError> {
    let port = parse_port(&port)?;
    let opened = app.ports.open_link(port, &q, now())?;
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"));
    let cookie = format!(
        "{}={}; Path=/v1/ports/{port}/; Max-Age={}; HttpOnly; SameSite=Lax{}",
        opened.cookie_name,
        opened.cookie_value,
        opened.max_age,
        if secure { "; Secure" } else { "" }
    );
    let location = HeaderValue::from_str(&opened.location)
        .map_err(|_| ApiError::invalid("the link's path cannot be a redirect; ask for a new link"))?;
    let cookie =
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::internal("could not build the preview cookie"))?;
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// `/v1/ports/{port}/proxy` → `/v1/ports/{port}/proxy/` (query kept), so
/// the app's relative links resolve under the preview.
async fn to_slash(Path(port): Path<String>, req: Request) -> Result<Response, ApiError> {
    let port = parse_port(&port)?;
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let location = HeaderValue::from_str(&format!("/v1/ports/{port}/proxy/{query}"))
        .map_err(|_| ApiError::invalid("the query cannot be redirected"))?;
    let mut resp = StatusCode::PERMANENT_REDIRECT.into_response();
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

async fn proxy_style(State(app): State<AppRef>, req: Request) -> Result<Response, ApiError> {
    forward(app, req, ProxyStyle::Proxy).await
}

async fn absproxy_style(State(app): State<AppRef>, req: Request) -> Result<Response, ApiError> {
    forward(app, req, ProxyStyle::Absproxy).await
}

async fn forward(app: AppRef, req: Request, style: ProxyStyle) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let Some((given, rest)) = split_preview_path(&path) else {
        return Err(ApiError::not_found(format!("no route for {path}")));
    };
    let port = parse_port(given)?;
    app.ports.check_previewable(port)?;
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let (path_and_query, prefix) = match style {
        ProxyStyle::Proxy => {
            let rest = rest.strip_prefix("/proxy").unwrap_or(rest);
            let rest = if rest.is_empty() { "/" } else { rest };
            (format!("{rest}{query}"), Some(format!("/v1/ports/{port}/proxy")))
        }
        ProxyStyle::Absproxy => (format!("{path}{query}"), None),
    };
    let target = proxy::Target {
        port,
        path_and_query,
        prefix,
        token: app.token.clone(),
        client: req.extensions().get::<ClientAddr>().map(|c| c.0),
        also: app.ports.other_addresses(port),
    };
    Ok(proxy::forward(req, &target).await?)
}

/// `/v1/ports/{port}/<rest>` → (`{port}`, `/<rest>`).
fn split_preview_path(path: &str) -> Option<(&str, &str)> {
    let after = path.strip_prefix("/v1/ports/")?;
    let slash = after.find('/')?;
    Some((&after[..slash], &after[slash..]))
}

/// The port whose preview `path` is in (`/v1/ports/{port}/proxy…` or
/// `/absproxy…`), if it is one: only those paths take a preview cookie.
pub fn preview_port(path: &str) -> Option<u16> {
    let (port, rest) = split_preview_path(path)?;
    let style = rest.strip_prefix('/')?.split('/').next()?;
    if style != "proxy" && style != "absproxy" {
        return None;
    }
    parse_port(port).ok()
}

/// Whether `path` opens a signed link (no token needed).
pub fn is_open_path(path: &str) -> bool {
    split_preview_path(path).is_some_and(|(port, rest)| rest == "/open" && parse_port(port).is_ok())
}

/// The value of `port`'s preview cookie among the request's cookies.
pub fn cookie_of(headers: &HeaderMap, port: u16) -> Option<String> {
    let name = link::cookie_name(port);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_preview_paths_take_a_cookie() {
        assert_eq!(preview_port("/v1/ports/5173/proxy/"), Some(5173));
        assert_eq!(preview_port("/v1/ports/5173/proxy"), Some(5173));
        assert_eq!(preview_port("/v1/ports/5173/absproxy/v1/ports/5173/absproxy/x"), Some(5173));
        for other in ["/v1/ports", "/v1/ports/5173/links", "/v1/ports/5173/open", "/v1/ports/0/proxy/", "/v1/sessions"]
        {
            assert_eq!(preview_port(other), None, "{other}");
        }
        assert!(is_open_path("/v1/ports/80/open") && !is_open_path("/v1/ports/80/open/x"));
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, "a=1; tether_preview_80=80.9.ab".parse().unwrap());
        h.append(header::COOKIE, "tether_preview_81=x".parse().unwrap());
        assert_eq!(cookie_of(&h, 80).as_deref(), Some("80.9.ab"));
        assert_eq!(cookie_of(&h, 81).as_deref(), Some("x"));
        assert_eq!(cookie_of(&h, 82), None);
    }
}
