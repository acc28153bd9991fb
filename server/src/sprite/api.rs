//! The in-Sprite API on `/.sprite/api.sock`: HTTP over a Unix socket (host
//! `sprite`). Every call tether makes to the platform is here, so a
//! correction to the platform's shapes (see shared/platform/SPRITES.md) is a
//! change to this one file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// Where the API socket is in a Sprite.
pub const DEFAULT_SOCKET: &str = "/.sprite/api.sock";

/// Requests on the socket go to this base (the host is ignored by the transport).
const BASE: &str = "http://sprite";

/// How long one API call may take (a service PUT streams until the service has started).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SpriteError {
    #[error("the Sprite API at {path} did not answer: {source}")]
    Transport { path: String, source: reqwest::Error },
    #[error("the Sprite API answered {status} to {what}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("the Sprite API sent an unexpected answer to {what}: {detail}")]
    Decode { what: String, detail: String },
    #[error("the service exited while starting (exit code {code:?}); its log is in /.sprite/logs/services/")]
    ServiceExited { code: Option<i64> },
}

/// `GET /info`: who this Sprite is.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct SpriteInfo {
    #[serde(default)]
    pub sprite_id: Option<String>,
    #[serde(default)]
    pub sprite_name: Option<String>,
    #[serde(default)]
    pub sprite_url: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub org: Option<String>,
}

/// The definition of a service, as `PUT /v1/services/{name}` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceDef {
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
}

/// A registered service, as `GET /v1/services/{name}` answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub needs: Vec<String>,
    #[serde(default)]
    pub http_port: Option<u16>,
    #[serde(default)]
    pub state: Option<ServiceState>,
}

impl Service {
    /// Whether this registration runs `def` (the fields tether sets).
    pub fn matches(&self, def: &ServiceDef) -> bool {
        self.cmd == def.cmd && self.args == def.args && self.needs == def.needs && self.http_port == def.http_port
    }

    pub fn status(&self) -> &str {
        self.state.as_ref().and_then(|s| s.status.as_deref()).unwrap_or("unknown")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ServiceState {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub pid: Option<i64>,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub restart_count: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A client of the in-Sprite API.
#[derive(Clone)]
pub struct SpriteApi {
    client: reqwest::Client,
    socket: PathBuf,
}

impl SpriteApi {
    /// The API at `socket`, if that socket exists (tether runs inside a Sprite).
    pub fn detect(socket: &Path) -> Option<SpriteApi> {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(socket).ok()?;
        if !meta.file_type().is_socket() {
            return None;
        }
        SpriteApi::new(socket).ok()
    }

    pub fn new(socket: &Path) -> Result<SpriteApi, SpriteError> {
        let client = tether_sdk::http_client(|| reqwest::Client::builder().unix_socket(socket).timeout(CALL_TIMEOUT))
            .map_err(|source| SpriteError::Transport { path: socket.display().to_string(), source })?;
        Ok(SpriteApi { client, socket: socket.to_path_buf() })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn transport(&self, source: reqwest::Error) -> SpriteError {
        SpriteError::Transport { path: self.socket.display().to_string(), source }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, SpriteError> {
        req.send().await.map_err(|e| self.transport(e))
    }

    async fn fail(what: &str, resp: reqwest::Response) -> SpriteError {
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        SpriteError::Status { what: what.to_string(), status, body: body.chars().take(300).collect() }
    }

    async fn json<T: serde::de::DeserializeOwned>(what: &str, resp: reqwest::Response) -> Result<T, SpriteError> {
        if !resp.status().is_success() {
            return Err(Self::fail(what, resp).await);
        }
        let text = resp.text().await.map_err(|e| SpriteError::Decode { what: what.into(), detail: e.to_string() })?;
        serde_json::from_str(&text).map_err(|e| SpriteError::Decode { what: what.into(), detail: e.to_string() })
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<SpriteInfo, SpriteError> {
        let what = "GET /info";
        let resp = self.send(self.client.get(format!("{BASE}/info"))).await?;
        Self::json(what, resp).await
    }

    /// `GET /v1/services/{name}`; `None` when no such service is registered.
    pub async fn service(&self, name: &str) -> Result<Option<Service>, SpriteError> {
        let what = format!("GET /v1/services/{name}");
        let resp = self.send(self.client.get(format!("{BASE}/v1/services/{name}"))).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Self::json(&what, resp).await.map(Some)
    }

    /// `PUT /v1/services/{name}`: registers and starts the service. The answer
    /// is NDJSON progress (`started`, then `complete`, or `exit` if it died),
    /// read to its end.
    pub async fn put_service(&self, name: &str, def: &ServiceDef) -> Result<(), SpriteError> {
        let what = format!("PUT /v1/services/{name}");
        let req = self.client.put(format!("{BASE}/v1/services/{name}")).query(&[("duration", "5s")]).json(def);
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(Self::fail(&what, resp).await);
        }
        let mut body = resp.bytes_stream();
        let mut line = Vec::new();
        let mut outcome = Ok(());
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            for &b in chunk.iter() {
                if b != b'\n' {
                    line.push(b);
                    continue;
                }
                if let Some(r) = progress_line(&line) {
                    outcome = r;
                }
                line.clear();
            }
        }
        if let Some(r) = progress_line(&line) {
            outcome = r;
        }
        outcome
    }

    /// `DELETE /v1/services/{name}`; false when there was none.
    pub async fn delete_service(&self, name: &str) -> Result<bool, SpriteError> {
        self.delete(&format!("/v1/services/{name}")).await
    }

    /// `PUT /v1/tasks/{name}` with an expiry: creates or refreshes a task,
    /// which keeps the Sprite awake until it expires or is deleted.
    pub async fn put_task(&self, name: &str, expire: Duration) -> Result<(), SpriteError> {
        let what = format!("PUT /v1/tasks/{name}");
        let body = serde_json::json!({ "expire": format!("{}s", expire.as_secs().max(1)) });
        let resp = self.send(self.client.put(format!("{BASE}/v1/tasks/{name}")).json(&body)).await?;
        if !resp.status().is_success() {
            return Err(Self::fail(&what, resp).await);
        }
        Ok(())
    }

    /// `DELETE /v1/tasks/{name}`; false when there was none.
    pub async fn delete_task(&self, name: &str) -> Result<bool, SpriteError> {
        self.delete(&format!("/v1/tasks/{name}")).await
    }

    async fn delete(&self, path: &str) -> Result<bool, SpriteError> {
        let what = format!("DELETE {path}");
        let resp = self.send(self.client.delete(format!("{BASE}{path}"))).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            reqwest::StatusCode::NOT_FOUND => Ok(false),
            _ => Err(Self::fail(&what, resp).await),
        }
    }
}

/// One NDJSON progress line of a service PUT: `Some` when it decides the outcome.
fn progress_line(line: &[u8]) -> Option<Result<(), SpriteError>> {
    #[derive(Deserialize)]
    struct Progress {
        #[serde(rename = "type")]
        kind: Option<String>,
        exit_code: Option<i64>,
    }
    let line = std::str::from_utf8(line).ok()?.trim();
    if line.is_empty() {
        return None;
    }
    // Anything that is not a progress object (an "already running" text) leaves the outcome alone.
    let p: Progress = serde_json::from_str(line).ok()?;
    match p.kind.as_deref() {
        Some("complete") | Some("started") => Some(Ok(())),
        Some("exit") => Some(Err(SpriteError::ServiceExited { code: p.exit_code })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_exit_line_decides_the_outcome_and_noise_does_not() {
        assert!(matches!(progress_line(br#"{"type":"started","pid":4}"#), Some(Ok(()))));
        assert!(matches!(
            progress_line(br#"{"type":"exit","exit_code":3}"#),
            Some(Err(SpriteError::ServiceExited { code: Some(3) }))
        ));
        assert!(progress_line(b"already running").is_none());
        assert!(progress_line(b"  ").is_none());
    }

    #[test]
    fn a_registration_matches_only_the_same_definition() {
        let def = ServiceDef { cmd: "/a".into(), args: vec![], needs: vec![], http_port: Some(8080) };
        let reg: Service = serde_json::from_str(
            r#"{"name":"tether","cmd":"/a","args":[],"http_port":8080,"state":{"status":"running","pid":9}}"#,
        )
        .unwrap();
        assert!(reg.matches(&def));
        assert_eq!(reg.status(), "running");
        assert!(!reg.matches(&ServiceDef { http_port: Some(8081), ..def.clone() }));
        assert!(!reg.matches(&ServiceDef { cmd: "/b".into(), ..def }));
    }
}
