//! The Sprites REST API, from outside a Sprite (`https://api.sprites.dev`,
//! the Sprites token as `Authorization: Bearer`): the calls `tether sprite
//! deploy` makes from a laptop. Every such call is here, in the shapes of
//! the platform's own sources, so a correction is a change to this file:
//!
//! - `GET /v1/sprites/{name}` → JSON with `url` (superfly/sprites-go
//!   `management.go` `GetSpriteWithOrg`, `types.go` `SpriteInfo`); 404 when
//!   there is no such Sprite.
//! - `PUT /v1/sprites/{name}/fs/write?path=…&workingDir=/&mode=0755&mkdirParents=true`,
//!   the body the file's bytes, 200 or 201; `GET …/fs/read?path=…&workingDir=/`
//!   answers the bytes, 404 for a missing file; failures carry `{"error"}`
//!   (sprites-go `filesystem.go`).
//! - `POST /v1/sprites/{name}/exec?cmd=A&cmd=B…&path=A&stdin=false`, no body
//!   (the query of sprites-go `exec.go` `buildWebSocketURL`, sent as plain
//!   HTTP as sprites-docs `integrations/claude-managed-agents.mdx` does): the
//!   answer is the command's output framed like the exec WebSocket's binary
//!   messages, a stream-id byte (1 stdout, 2 stderr; sprites-go
//!   `websocket.go`) before each chunk, ending with the exit frame `0x03`
//!   and the exit code. The frames carry no lengths, so only the exit code
//!   is exact; the text shown to a person is the rest with the id bytes
//!   taken out. Nothing here depends on parsing a command's output.
//!
//! This module must not print, and must not send the token anywhere but the
//! API it was given (no redirect is followed).

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

/// The public Sprites API.
pub const DEFAULT_API_URL: &str = "https://api.sprites.dev";

/// How long connecting to the API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a small call (a GET, a file read) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long uploading a file may take.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// The stream id of the exit frame (sprites-go `websocket.go`, `StreamExit`).
const EXIT_FRAME: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error(
        "the Sprites API at {base} refused the token ({status}): check SPRITES_TOKEN (a token of the Sprite's \
         organization, from https://sprites.dev/account or `sprite org auth`)"
    )]
    Refused { base: String, status: u16 },
    #[error("there is no Sprite named {name:?} for this token: check the name (`sprite list` shows yours)")]
    NoSuchSprite { name: String },
    #[error(
        "cannot reach the Sprites API at {base} ({detail}): check the network, or --sprites-api / SPRITES_API_URL"
    )]
    Unreachable { base: String, detail: String },
    #[error("the Sprites API answered {status} to {what}{body}")]
    Status { what: String, status: u16, body: String },
    #[error("the Sprites API sent an unexpected answer to {what}: {detail}")]
    Decode { what: String, detail: String },
}

/// `GET /v1/sprites/{name}`: the fields deploy uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SpriteInfo {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    /// The Sprite URL (`https://NAME-ORG.sprites.app`).
    #[serde(default)]
    pub url: Option<String>,
}

/// What a command run through the exec API did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: u8,
    /// Its stdout and stderr as they came, for a person to read.
    pub output: String,
}

/// The REST API for one Sprite.
#[derive(Clone)]
pub struct SpritesRest {
    http: reqwest::Client,
    base: Url,
    token: String,
    sprite: String,
}

impl std::fmt::Debug for SpritesRest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpritesRest")
            .field("base", &self.base.as_str())
            .field("sprite", &self.sprite)
            .field("token", &"<redacted>")
            .finish()
    }
}

impl SpritesRest {
    /// `api_url` in either form (`https://…` or the proxy's `wss://…`).
    pub fn new(api_url: &str, token: &str, sprite: &str) -> Result<SpritesRest, String> {
        let rest = tether_sdk::sprites::rest_api_url(api_url);
        let base = Url::parse(&rest).map_err(|e| format!("--sprites-api {api_url:?} is not a URL: {e}"))?;
        if !matches!(base.scheme(), "https" | "http") || base.cannot_be_a_base() {
            return Err(format!("--sprites-api must be an https:// (or wss://) URL: {api_url:?}"));
        }
        let http = tether_sdk::http_client(|| {
            reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT).redirect(reqwest::redirect::Policy::none())
        })
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(SpritesRest { http, base, token: token.to_owned(), sprite: sprite.to_owned() })
    }

    /// The API's base URL (REST form).
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `{base}/v1/sprites/{name}/{tail…}`, each segment percent-encoded.
    fn url(&self, tail: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend(["v1", "sprites", self.sprite.as_str()]).extend(tail);
        }
        url
    }

    async fn send(
        &self,
        what: &str,
        method: Method,
        url: Url,
        timeout: Duration,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<reqwest::Response, RestError> {
        let mut request = self.http.request(method, url).bearer_auth(&self.token).timeout(timeout);
        if let Some((body, content_type)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        match response.status() {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(RestError::Refused { base: self.base().to_owned(), status: response.status().as_u16() })
            }
            status if status.is_success() || status == StatusCode::NOT_FOUND => Ok(response),
            status => {
                let text = response.text().await.unwrap_or_default();
                Err(RestError::Status { what: what.to_owned(), status: status.as_u16(), body: error_text(&text) })
            }
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> RestError {
        let mut detail = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(inner) = source {
            detail = inner.to_string();
            source = inner.source();
        }
        if e.is_timeout() {
            detail = format!("no answer in time: {detail}");
        }
        RestError::Unreachable { base: self.base().to_owned(), detail }
    }

    fn no_such_sprite(&self) -> RestError {
        RestError::NoSuchSprite { name: self.sprite.clone() }
    }

    /// `GET /v1/sprites/{name}`.
    pub async fn sprite(&self) -> Result<SpriteInfo, RestError> {
        let what = format!("GET /v1/sprites/{}", self.sprite);
        let response = self.send(&what, Method::GET, self.url(&[]), CALL_TIMEOUT, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.no_such_sprite());
        }
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| RestError::Decode { what, detail: e.to_string() })
    }

    /// `PUT …/fs/write`: `bytes` into the file at the absolute `path`, with
    /// `mode`, its parent directories made.
    pub async fn write_file(&self, path: &str, bytes: Vec<u8>, mode: u32) -> Result<(), RestError> {
        let mut url = self.url(&["fs", "write"]);
        url.query_pairs_mut()
            .append_pair("path", path)
            .append_pair("workingDir", "/")
            .append_pair("mode", &format!("{mode:04o}"))
            .append_pair("mkdirParents", "true");
        let what = format!("writing {path}");
        let response =
            self.send(&what, Method::PUT, url, UPLOAD_TIMEOUT, Some((bytes, "application/octet-stream"))).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.no_such_sprite());
        }
        Ok(())
    }

    /// `GET …/fs/read`: the file at the absolute `path`, `None` if missing.
    pub async fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>, RestError> {
        let mut url = self.url(&["fs", "read"]);
        url.query_pairs_mut().append_pair("path", path).append_pair("workingDir", "/");
        let response = self.send(&format!("reading {path}"), Method::GET, url, CALL_TIMEOUT, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        Ok(Some(bytes.to_vec()))
    }

    /// `POST …/exec`: runs `argv` (no shell, no stdin) in `dir` and waits
    /// for its exit, at most `timeout`.
    pub async fn exec(&self, argv: &[&str], dir: &str, timeout: Duration) -> Result<ExecOutput, RestError> {
        let Some(program) = argv.first() else {
            return Err(RestError::Decode { what: "exec".into(), detail: "no command".into() });
        };
        let mut url = self.url(&["exec"]);
        {
            let mut query = url.query_pairs_mut();
            for arg in argv {
                query.append_pair("cmd", arg);
            }
            query.append_pair("path", program).append_pair("stdin", "false").append_pair("dir", dir);
        }
        let what = format!("running {program}");
        let response = self.send(&what, Method::POST, url, timeout, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.no_such_sprite());
        }
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        parse_exec(&body).ok_or_else(|| RestError::Decode {
            what,
            detail: "the output ended without an exit code (the connection may have dropped)".into(),
        })
    }

    /// `POST …/checkpoint {"comment"}`: captures the Sprite's filesystem.
    /// Answers the new checkpoint's id, found in the list by its comment.
    pub async fn checkpoint(&self, comment: &str) -> Result<String, RestError> {
        let what = "creating a checkpoint".to_string();
        let body = serde_json::json!({ "comment": comment }).to_string().into_bytes();
        let response = self
            .send(&what, Method::POST, self.url(&["checkpoint"]), UPLOAD_TIMEOUT, Some((body, "application/json")))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.no_such_sprite());
        }
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        let done = progress(&what, &text)?;
        let list = self.checkpoints().await?;
        let found = list.into_iter().filter(|c| c.comment.as_deref() == Some(comment)).map(|c| c.id).next_back();
        // The list names it by its comment; the completion message ("Checkpoint v3 created") otherwise.
        found
            .or_else(|| {
                done.split_whitespace().find(|w| w.starts_with('v') && w[1..].parse::<u32>().is_ok()).map(str::to_owned)
            })
            .ok_or(RestError::Decode { what, detail: format!("no id for the new checkpoint ({done})") })
    }

    /// `GET …/checkpoints`.
    pub async fn checkpoints(&self) -> Result<Vec<Checkpoint>, RestError> {
        let what = "listing the checkpoints".to_string();
        let response = self.send(&what, Method::GET, self.url(&["checkpoints"]), CALL_TIMEOUT, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(self.no_such_sprite());
        }
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| RestError::Decode { what, detail: e.to_string() })
    }

    /// `POST …/checkpoints/{id}/restore`: the filesystem goes back to the
    /// checkpoint and the Sprite restarts like a cold boot.
    pub async fn restore(&self, id: &str) -> Result<(), RestError> {
        let what = format!("restoring checkpoint {id}");
        let url = self.url(&["checkpoints", id, "restore"]);
        let response = self.send(&what, Method::POST, url, UPLOAD_TIMEOUT, None).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(RestError::Status { what, status: 404, body: ": no such checkpoint or Sprite".into() });
        }
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        progress(&what, &text).map(|_| ())
    }
}

/// A checkpoint, as `GET …/checkpoints` lists it (sprites-go `types.go` `Checkpoint`).
#[derive(Debug, Clone, Deserialize)]
pub struct Checkpoint {
    pub id: String,
    #[serde(default)]
    pub create_time: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
}

/// Reads a checkpoint or restore's NDJSON progress (`info`, `error`,
/// `complete`; sprites-go `StreamMessage`, the API docs' stream events):
/// an `error` line fails it, else answers the `complete` message.
fn progress(what: &str, text: &str) -> Result<String, RestError> {
    #[derive(Deserialize)]
    struct Line {
        #[serde(rename = "type")]
        kind: Option<String>,
        data: Option<String>,
        error: Option<String>,
    }
    let mut complete = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(l) = serde_json::from_str::<Line>(line) else { continue };
        match l.kind.as_deref() {
            Some("error") => {
                let why = l.error.or(l.data).unwrap_or_else(|| "no detail given".into());
                return Err(RestError::Status { what: what.to_owned(), status: 200, body: format!(": {why}") });
            }
            Some("complete") => complete = Some(l.data.unwrap_or_default()),
            _ => {}
        }
    }
    complete.ok_or_else(|| RestError::Decode {
        what: what.to_owned(),
        detail: "the progress ended without `complete`".into(),
    })
}

/// An exec answer: the exit code from the final exit frame, and the rest
/// as text with the stream-id bytes taken out.
pub fn parse_exec(body: &[u8]) -> Option<ExecOutput> {
    let [rest @ .., EXIT_FRAME, code] = body else { return None };
    let text: Vec<u8> = rest.iter().copied().filter(|b| !matches!(b, 1 | 2)).collect();
    Some(ExecOutput { code: *code, output: String::from_utf8_lossy(&text).into_owned() })
}

/// An error body for a sentence: its `error`/`message` field, or its first
/// line when it is short plain text; nothing for HTML.
fn error_text(body: &str) -> String {
    #[derive(Deserialize)]
    struct Problem {
        error: Option<String>,
        message: Option<String>,
    }
    let text = match serde_json::from_str::<Problem>(body) {
        Ok(p) => p.message.or(p.error).unwrap_or_default(),
        Err(_) => body.lines().next().unwrap_or_default().trim().to_owned(),
    };
    if text.is_empty() || text.starts_with('<') || text.chars().count() > 200 {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_the_last_frame_and_the_text_loses_its_frame_bytes() {
        let body = b"\x01hello \x02warn\n\x01world\n\x03\x07";
        assert_eq!(parse_exec(body), Some(ExecOutput { code: 7, output: "hello warn\nworld\n".into() }));
        assert_eq!(parse_exec(b"\x03\x00"), Some(ExecOutput { code: 0, output: String::new() }));
        assert_eq!(parse_exec(b"\x01cut off"), None);
        assert_eq!(parse_exec(b""), None);
    }

    #[test]
    fn urls_are_per_sprite_and_encoded_and_either_api_form_works() {
        let rest = SpritesRest::new("wss://api.sprites.dev/", "t", "my box").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rest.base(), "https://api.sprites.dev");
        assert_eq!(rest.url(&["fs", "write"]).as_str(), "https://api.sprites.dev/v1/sprites/my%20box/fs/write");
        assert!(SpritesRest::new("ftp://x", "t", "a").is_err());
    }

    #[test]
    fn error_bodies_become_short_clauses() {
        assert_eq!(error_text(r#"{"error":"permission denied","path":"/x"}"#), ": permission denied");
        assert_eq!(error_text("<html>login</html>"), "");
        assert_eq!(error_text(""), "");
    }
}
