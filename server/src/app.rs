//! The application core: what one running server holds (the sessions and
//! their store, the webhooks, the limits every edge applies, the shutdown
//! signal), built once by `serve::prepare`. Both edges are built on it
//! and neither knows the other: the HTTP API (`http`, which adds its own
//! edge state around it) and tether's own MCP tools (`tether_mcp`); `serve`
//! mounts the tools' service on the HTTP router at `/mcp`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::session::Sessions;

pub struct App {
    pub shared: Arc<Sessions>,
    pub token: Option<String>,
    pub started: Instant,
    pub keepalive: Duration,
    /// An event stream with no event to send for this long ends (`--stream-idle-secs`).
    pub stream_idle: Option<Duration>,
    pub max_body_bytes: usize,
    /// Largest file or archive upload (`--max-upload-bytes`).
    pub max_upload_bytes: u64,
    /// Flips to true when the server is shutting down; open streams and MCP sessions end.
    pub shutdown: watch::Receiver<bool>,
    /// The webhook subscriptions and their delivery tasks.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// The processes run beside the agents (`/v1/processes`).
    pub processes: Arc<crate::exec::Processes>,
    /// The Sprite tether runs in, if any (shown in `/v1/info`).
    pub sprite: Option<crate::sprite::Here>,
    /// The ports listening in the sandbox, and their previews.
    pub ports: Arc<crate::ports::Ports>,
}

/// A listening process belongs to the agent or process that leads its
/// session (`crate::ports`).
impl crate::ports::Owners for App {
    fn tagged(&self, process_id: Option<&str>, session_id: Option<&str>) -> Option<crate::ports::Owner> {
        if let Some(entry) = process_id.and_then(|id| self.processes.get(id).ok()).filter(|e| e.is_running()) {
            let record = entry.record();
            return Some(crate::ports::Owner { process_id: Some(record.id), session_id: record.session_id });
        }
        let session_id = session_id.filter(|id| self.shared.agent_is_live(id))?;
        Some(crate::ports::Owner { process_id: None, session_id: Some(session_id.to_string()) })
    }

    fn owner(&self, sid: i32) -> Option<crate::ports::Owner> {
        if let Some((process_id, session_id)) = self.processes.owner_of(sid) {
            return Some(crate::ports::Owner { process_id: Some(process_id), session_id });
        }
        let session_id = self.shared.session_of_agent_pid(sid)?;
        Some(crate::ports::Owner { process_id: None, session_id: Some(session_id) })
    }
}
