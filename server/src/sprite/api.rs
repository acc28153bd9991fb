//! The in-Sprite API on `/.sprite/api.sock`: HTTP over a Unix socket (host
//! `sprite`). Every call tether makes to the platform is here, so a
//! correction to the platform's shapes (see shared/platform/SPRITES.md) is a
//! change to this one file.

use std::collections::BTreeMap;
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
    /// The creation (or start) stream said the service died: `exit` or `error`.
    #[error("the service {how} while starting{output}; its log is /.sprite/logs/services/{name}.log")]
    ServiceFailed { name: String, how: String, output: String },
}

/// Reads `null` (and a missing field) as the type's default: the platform
/// answers `"needs": null` and the like (shared/platform/SPRITES.md).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
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
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_port: Option<u16>,
    #[serde(default, deserialize_with = "null_as_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
}

/// A registered service, as `GET /v1/services/{name}` answers it. Any field
/// but the name may be `null`.
#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub cmd: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub needs: Vec<String>,
    #[serde(default)]
    pub http_port: Option<u16>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub dir: Option<String>,
    #[serde(default)]
    pub state: Option<ServiceState>,
}

impl Service {
    /// Whether this registration runs `def` (every field tether sets; a
    /// `null` reads as empty, so it matches an empty one).
    pub fn matches(&self, def: &ServiceDef) -> bool {
        self.cmd == def.cmd
            && self.args == def.args
            && self.needs == def.needs
            && self.http_port == def.http_port
            && self.env == def.env
            && self.dir.as_deref().filter(|d| !d.is_empty()) == def.dir.as_deref()
    }

    pub fn status(&self) -> &str {
        self.state.as_ref().and_then(|s| s.status.as_deref()).unwrap_or("unknown")
    }

    /// Running, or on its way there. A service stopped on purpose shows as
    /// `failed` (`exited with code 143`), like one that crashed.
    pub fn is_up(&self) -> bool {
        matches!(self.status(), "running" | "starting")
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
    #[serde(default)]
    pub next_restart_at: Option<String>,
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

    /// `GET /v1/services`: every registered service.
    pub async fn services(&self) -> Result<Vec<Service>, SpriteError> {
        let resp = self.send(self.client.get(format!("{BASE}/v1/services"))).await?;
        let list: Option<Vec<Service>> = Self::json("GET /v1/services", resp).await?;
        Ok(list.unwrap_or_default())
    }

    /// `PUT /v1/services/{name}`: registers and starts the service, reading
    /// its NDJSON progress to the end. Over an existing name the platform
    /// answers 200 with a message and keeps the old definition: that is
    /// [`Put::Exists`], never a success.
    pub async fn put_service(&self, name: &str, def: &ServiceDef) -> Result<Put, SpriteError> {
        let what = format!("PUT /v1/services/{name}");
        let req = self.client.put(format!("{BASE}/v1/services/{name}")).query(&[("duration", "5s")]).json(def);
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(Self::fail(&what, resp).await);
        }
        self.follow(name, resp).await
    }

    /// `POST /v1/services/{name}/start|stop|restart`, its progress read to
    /// the end; false when there is no such service.
    pub async fn service_action(&self, name: &str, action: Action) -> Result<bool, SpriteError> {
        let verb = action.verb();
        let what = format!("POST /v1/services/{name}/{verb}");
        let resp = self.send(self.client.post(format!("{BASE}/v1/services/{name}/{verb}"))).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(false);
        }
        if !resp.status().is_success() {
            return Err(Self::fail(&what, resp).await);
        }
        match action {
            // A stop's stream ends with `exit`/`stopped`: the end it asked for.
            Action::Stop => {
                let mut body = resp.bytes_stream();
                while let Some(chunk) = body.next().await {
                    chunk.map_err(|e| self.transport(e))?;
                }
            }
            Action::Start | Action::Restart => {
                self.follow(name, resp).await?;
            }
        }
        Ok(true)
    }

    /// Reads a start's NDJSON progress: `exit` or `error` is final (the
    /// runtime restarts a crashed service, so a `started` may follow it),
    /// `started`/`complete` is success, and no progress at all is the
    /// "already exists" message.
    async fn follow(&self, name: &str, resp: reqwest::Response) -> Result<Put, SpriteError> {
        let mut body = resp.bytes_stream();
        let mut progress = Progress::default();
        let mut line = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| self.transport(e))?;
            for &b in chunk.iter() {
                if b == b'\n' {
                    progress.line(&line);
                    line.clear();
                } else {
                    line.push(b);
                }
            }
            if progress.failed.is_some() {
                break;
            }
        }
        progress.line(&line);
        progress.outcome(name)
    }

    /// `DELETE /v1/services/{name}` (204); false when there was none. The
    /// platform refuses (409) to delete a running service: stop it first.
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

/// What a service PUT did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Registered and started.
    Started,
    /// A service of that name exists; its definition was kept (the platform's message).
    Exists(String),
}

/// A service action with a progress stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }
}

/// The progress of a service start, line by line (`started`, `stdout`,
/// `stderr`, `exit`, `error`, `complete`; sprites-go `ServiceLogEvent`).
#[derive(Default)]
struct Progress {
    started: bool,
    /// How it died (`exited with code 1`, or the error's text), once it did.
    failed: Option<String>,
    /// The last lines it printed, to show with a failure.
    output: Vec<String>,
    /// A line that is not progress (the "already running" message).
    other: Option<String>,
}

impl Progress {
    fn line(&mut self, line: &[u8]) {
        #[derive(Deserialize)]
        struct Event {
            #[serde(rename = "type")]
            kind: Option<String>,
            data: Option<String>,
            exit_code: Option<i64>,
            message: Option<String>,
            error: Option<String>,
        }
        let Ok(line) = std::str::from_utf8(line).map(str::trim) else { return };
        if line.is_empty() || self.failed.is_some() {
            return;
        }
        let Ok(e) = serde_json::from_str::<Event>(line) else {
            self.other = Some(line.chars().take(300).collect());
            return;
        };
        match e.kind.as_deref() {
            Some("started") | Some("complete") => self.started = true,
            Some("stdout") | Some("stderr") => {
                for l in e.data.unwrap_or_default().lines().filter(|l| !l.trim().is_empty()) {
                    if self.output.len() == 5 {
                        self.output.remove(0);
                    }
                    self.output.push(l.chars().take(200).collect());
                }
            }
            Some("exit") => {
                self.failed = Some(match e.exit_code {
                    Some(code) => format!("exited with code {code}"),
                    None => "exited".to_string(),
                })
            }
            Some("error") => {
                let why = e.data.or(e.error).or(e.message).unwrap_or_else(|| "no detail given".into());
                self.failed = Some(format!("failed ({})", why.trim()));
            }
            Some(_) => {}
            None => self.other = e.message.or(Some(line.chars().take(300).collect())),
        }
    }

    fn outcome(self, name: &str) -> Result<Put, SpriteError> {
        if let Some(how) = self.failed {
            let output = if self.output.is_empty() {
                String::new()
            } else {
                format!(", after printing: {}", self.output.join(" | "))
            };
            return Err(SpriteError::ServiceFailed { name: name.to_string(), how, output });
        }
        if self.started {
            return Ok(Put::Started);
        }
        Ok(Put::Exists(self.other.unwrap_or_else(|| "no progress was reported".into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(lines: &[&str]) -> Result<Put, SpriteError> {
        let mut p = Progress::default();
        for l in lines {
            p.line(l.as_bytes());
        }
        p.outcome("tether")
    }

    #[test]
    fn exit_and_error_are_final_even_when_a_restart_follows() {
        assert_eq!(progress(&[r#"{"type":"started","pid":4}"#, r#"{"type":"complete"}"#]).unwrap(), Put::Started);
        let died = progress(&[
            r#"{"type":"started"}"#,
            r#"{"type":"stderr","data":"error: the port is taken\n"}"#,
            r#"{"type":"exit","exit_code":3}"#,
            r#"{"type":"started"}"#,
        ])
        .unwrap_err()
        .to_string();
        assert!(died.contains("exited with code 3") && died.contains("the port is taken"), "{died}");
        let error = progress(&[r#"{"type":"error","data":"exec format error"}"#]).unwrap_err().to_string();
        assert!(error.contains("exec format error"), "{error}");
        let exists = progress(&[r#"{"message":"Service already running with that command","name":"tether"}"#]);
        assert_eq!(exists.unwrap(), Put::Exists("Service already running with that command".into()));
    }

    #[test]
    fn null_fields_read_as_empty() {
        let reg: Service = serde_json::from_str(
            r#"{"name":"tether","cmd":"/a","args":null,"needs":null,"env":null,"dir":null,"http_port":null,
                "state":{"status":"failed","error":"exited with code 143","pid":null,"started_at":null}}"#,
        )
        .unwrap();
        assert!(reg.args.is_empty() && reg.needs.is_empty() && reg.env.is_empty() && reg.http_port.is_none());
        assert!(!reg.is_up());
        let def = ServiceDef {
            cmd: "/a".into(),
            args: vec![],
            needs: vec![],
            http_port: None,
            env: BTreeMap::new(),
            dir: None,
        };
        assert!(reg.matches(&def));
    }

    #[test]
    fn a_registration_matches_only_the_same_definition() {
        let def = ServiceDef {
            cmd: "/a".into(),
            args: vec![],
            needs: vec![],
            http_port: Some(8080),
            env: BTreeMap::new(),
            dir: None,
        };
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
