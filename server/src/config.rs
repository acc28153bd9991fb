//! The server's configuration, as resolved from the command line and environment.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Canonical workspace root: every session cwd and file path stays inside it.
    pub workspace: PathBuf,
    pub token: Option<String>,
    pub max_body_bytes: usize,
    pub max_upload_bytes: u64,
    /// Output kept per process (`--process-output-bytes`).
    pub process_output_bytes: usize,
    pub keepalive: Duration,
    /// The Sprite API socket to keep the Sprite awake through (`None`: keep-awake off).
    pub sprite_socket: Option<PathBuf>,
    /// Inside a Sprite, hold a Sprite Task while agents work.
    pub keep_awake: bool,
    /// Host names served without a token besides the loopback names and the bound address.
    pub allow_hosts: Vec<String>,
    /// Origins whose pages may open WebSockets and change state, besides the server's own.
    pub allow_origins: Vec<String>,
    pub keep_awake_expire: Duration,
    pub keep_awake_refresh: Duration,
    /// How long sessions that only wait for a person keep the Sprite awake.
    pub keep_awake_wait: Duration,
    /// How long undelivered webhook events keep the Sprite awake once no session is busy.
    pub keep_awake_webhooks: Duration,
    /// How late a tick must be to count as a pause of the machine.
    pub pause_threshold: Duration,
    /// An event stream with no event to send for this long ends (`--stream-idle-secs`; None: never).
    pub stream_idle: Option<Duration>,
    /// A stall of the store this long or longer ends the turns that ran through it.
    pub store_stall_limit: Duration,
    /// Tests only: after binding, the start waits until this file exists.
    pub start_gate: Option<PathBuf>,
    /// Back-off between attempts at an unacknowledged webhook batch.
    pub webhook_retry: crate::webhooks::Retry,
    /// The connection cap and the read and send timeouts of every connection.
    pub connections: crate::connections::Limits,
    /// Event streams (SSE or WebSocket) one client address may hold open.
    pub max_streams_per_client: usize,
    /// How often to look for listening ports (`--ports-poll-ms`; None: no detection).
    pub ports_poll: Option<Duration>,
    /// How long a session may be idle before its agent process is stopped (`--agent-idle-secs`; None: never).
    pub agent_idle: Option<Duration>,
    /// Which ended sessions are kept (`--retain`; None: all of them).
    pub retain: Option<crate::retention::Retain>,
    /// The data dir's disk watermarks and reserve (`--disk-low-mb`, `--disk-flood-mb`, `--disk-reserve-mb`).
    pub disk: crate::disk::DiskLimits,
    /// OpenTelemetry export (`--otel-endpoint`, `--otel-capture-content`, the `OTEL_*` variables).
    pub telemetry: crate::telemetry::TelemetryConfig,
}

/// Default of [`Config::max_streams_per_client`].
pub const DEFAULT_MAX_STREAMS_PER_CLIENT: usize = 128;

/// Default of [`Config::store_stall_limit`].
pub const DEFAULT_STORE_STALL_LIMIT: Duration = Duration::from_secs(30);

/// `$TETHER_DATA_DIR`, else `$XDG_DATA_HOME/tether`, else `~/.local/share/tether`.
pub fn default_data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TETHER_DATA_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(d).join("tether");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    home.join(".local").join("share").join("tether")
}
