//! The inspector web UI at `/ui/`: the files of the repo's `ui/` folder,
//! embedded at build time (`build.rs`) and served as they are. These routes
//! need no token: the page holds no data of its own and asks for the token,
//! which it then sends on every API call. Every asset is revalidated by its
//! ETag (a content hash), so an upgraded binary never serves a stale page.
//! Third-party code embedded beside them (xterm.js, when
//! `scripts/install-ui-deps` ran before the build) is under `/ui/vendor/`,
//! and `/ui/vendor/vendor.json` says what is there.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

use super::AppRef;
use crate::http::ApiError;

/// One embedded file of `ui/`.
pub(super) struct UiAsset {
    path: &'static str,
    hash: &'static str,
    bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));

/// The page may load its own scripts and styles and talk to its own origin
/// (WebSockets included), nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// [`CSP`] when xterm.js is embedded: it draws with `<style>` elements it
/// writes itself (colours, cell sizes), so those are allowed; style
/// attributes stay refused, and scripts are still the page's own only.
const CSP_XTERM: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                         style-src-elem 'self' 'unsafe-inline'; style-src-attr 'none'; img-src 'self' data: blob:; \
                         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub fn router() -> Router<AppRef> {
    Router::new()
        // A person who opens the server's address lands in the inspector.
        .route("/", get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/ui/{*path}", get(|Path(path): Path<String>, headers: HeaderMap| async move { serve(&path, &headers) }))
}

/// Whether `path` is one of the UI's routes (served without a token).
pub fn is_ui_path(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::not_found(format!("the UI has no file {path:?}")).into_response();
    };
    let etag = format!("\"{}\"", asset.hash);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type(path))], asset.bytes).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(if XTERM { CSP_XTERM } else { CSP }));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_known_type_and_index_exists() {
        assert!(ASSETS.iter().any(|a| a.path == "index.html"), "ui/index.html is not embedded");
        assert!(ASSETS.iter().any(|a| a.path == "vendor/vendor.json"), "the vendor manifest is not embedded");
        assert_eq!(XTERM, ASSETS.iter().any(|a| a.path == "vendor/xterm.mjs"));
        for a in ASSETS {
            assert_ne!(content_type(a.path), "application/octet-stream", "{} has no content type", a.path);
            assert!(!a.path.starts_with('/') && !a.path.contains(".."), "bad asset path {}", a.path);
        }
    }
}
