//! The `tether` command line.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{default_data_dir, Config};

/// `tether --version`: the crate version and the commit it was built from.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("TETHER_COMMIT"), ")");

#[derive(Parser)]
#[command(name = "tether", version = VERSION, about = "Run coding agents under PTYs and serve one universal event stream")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Start the HTTP server.
    Serve(ServeArgs),
    /// List or install agent CLIs.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// tether's MCP tools over stdio, for clients that start MCP servers as
    /// commands: a bridge to a running tether's /mcp.
    Mcp(McpArgs),
    /// Run tether as a Fly.io Sprite service: `deploy` from your machine, the rest inside a Sprite.
    Sprite {
        #[command(subcommand)]
        command: SpriteCommand,
    },
    #[command(flatten)]
    Client(crate::client::ClientCommand),
    /// The built-in mock agent (spawned by the server; speaks Claude's stream-json).
    #[command(name = "__mock-agent", hide = true, disable_help_flag = true)]
    MockAgent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `__exec-in DIR -- CMD ARGS..`: runs CMD in DIR (for agents whose MCP config has no cwd).
    #[command(name = "__exec-in", hide = true)]
    ExecIn {
        dir: PathBuf,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Every known agent: installed or not, version, path.
    List {
        /// Where installed agents live [default: $TETHER_DATA_DIR or ~/.local/share/tether].
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Install the pinned version of an agent from the npm registry into the data dir.
    Install {
        /// claude, codex, opencode, amp or pi.
        agent: String,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum SpriteCommand {
    /// From your machine: put this tether into the Sprite NAME and run it there as its service (idempotent),
    /// saving its token where `tether sessions --sprite NAME` and the SDK find it.
    Deploy(SpriteDeployArgs),
    /// From your machine, a live check: deploy, the Sprite URL, the TCP proxy, slow turns left with no
    /// client attached, and a checkpoint made and restored (files changed in the Sprite meanwhile go back);
    /// prints a table of what held (exit 1 if anything did not).
    Smoke(SpriteSmokeArgs),
    /// Register tether as the Sprite service serving the Sprite URL (idempotent).
    Install(SpriteInstallArgs),
    /// Whether the service is registered, running and answering.
    Status(SpriteTarget),
    /// Remove the service and its keep-awake task (the token and data are kept).
    Uninstall(SpriteTarget),
}

#[derive(clap::Args)]
struct SpriteTarget {
    /// The Sprite API socket.
    #[arg(long, env = "TETHER_SPRITE_SOCKET", default_value = crate::sprite::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The service's name.
    #[arg(long, default_value = "tether")]
    name: String,
}

#[derive(clap::Args)]
struct SpriteDeployArgs {
    /// The Sprite's name.
    name: String,
    /// The Sprites token (of the Sprite's organization).
    #[arg(long, env = "SPRITES_TOKEN", hide_env_values = true)]
    sprites_token: Option<String>,
    /// The Sprites API (https://… or wss://…).
    #[arg(long, env = "SPRITES_API_URL", default_value = crate::sprite::rest::DEFAULT_API_URL)]
    sprites_api: String,
    /// The static Linux tether binary to upload [default: this one].
    #[arg(long)]
    binary: Option<PathBuf>,
    /// The port tether serves on in the Sprite (the Sprite URL reaches 8080).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The workspace root in the Sprite.
    #[arg(long, default_value = crate::sprite::deploy::REMOTE_HOME)]
    workspace: String,
    /// Replace the binary even when it is the same, and restart the service so the new one runs
    /// (running turns are interrupted; sessions come back as after a restart).
    #[arg(long)]
    upgrade: bool,
    /// Seconds install waits for the service to answer.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
}

#[derive(clap::Args)]
struct SpriteSmokeArgs {
    #[command(flatten)]
    deploy: SpriteDeployArgs,
    /// Seconds the turns are left with no client (a Sprite pauses about 30 s after its last client leaves).
    #[arg(long, default_value_t = 75)]
    idle_secs: u64,
    /// How many slow mock turns (about 10 s each) to queue.
    #[arg(long, default_value_t = 6)]
    turns: u32,
}

impl SpriteDeployArgs {
    fn options(self) -> Result<crate::sprite::deploy::DeployOptions, String> {
        let binary = self
            .binary
            .map(Ok)
            .unwrap_or_else(std::env::current_exe)
            .map_err(|e| format!("cannot find this tether binary: {e} (pass --binary)"))?;
        Ok(crate::sprite::deploy::DeployOptions {
            sprite: self.name,
            api_url: self.sprites_api,
            sprites_token: self.sprites_token,
            binary,
            port: self.port,
            workspace: self.workspace,
            upgrade: self.upgrade,
            wait: Duration::from_secs(self.wait_secs),
        })
    }
}

#[derive(clap::Args)]
struct SpriteInstallArgs {
    #[command(flatten)]
    target: SpriteTarget,
    /// Port to serve on. The Sprite URL reaches 8080 (another port is registered as the service's http_port, which
    /// the platform may not honour: install warns).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Address to listen on (all interfaces, dual stack: the Sprite proxy connects from outside loopback).
    #[arg(long, default_value = "::")]
    host: IpAddr,
    /// The token file (created with a random token, mode 0600, if missing) [default: DATA_DIR/token].
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The workspace root [default: the current directory].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Where tether keeps its data [default: $TETHER_DATA_DIR or ~/.local/share/tether].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Do not hold a Sprite Task while agents work (the Sprite may pause mid-turn).
    #[arg(long)]
    no_keep_awake: bool,
    /// Seconds to wait for the service to answer.
    #[arg(long, default_value_t = 60)]
    wait_secs: u64,
    /// Restart the service even when its definition is unchanged (after replacing the binary).
    #[arg(long)]
    restart: bool,
}

#[derive(clap::Args)]
struct McpArgs {
    /// The running tether's base URL (its /mcp is used), or the full URL of its /mcp.
    #[arg(long, env = "TETHER_URL", default_value = "http://127.0.0.1:7419")]
    url: String,
    /// The server's bearer token.
    #[arg(long, env = "TETHER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the bearer token from this file.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on; 0 picks a free one (the chosen address is printed on stdout).
    #[arg(long, default_value_t = 7419)]
    port: u16,
    /// Where tether.db lives [default: $TETHER_DATA_DIR or ~/.local/share/tether].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Root that every session cwd and file path is confined to [default: the current directory].
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Bearer token required on every route but /v1/health.
    #[arg(long, env = "TETHER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the bearer token from this file.
    #[arg(long, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Allow binding a non-loopback address without a token.
    #[arg(long)]
    no_token: bool,
    /// Without a token, also serve requests naming the server by this host name (repeatable; loopback names and the
    /// bound address always are). Anything else is refused: a web page cannot reach tether by DNS rebinding.
    #[arg(long = "allow-host", env = "TETHER_ALLOW_HOSTS", value_delimiter = ',', value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// Let web pages of this origin (`https://app.example`) open WebSockets and change state here, besides tether's
    /// own pages (repeatable).
    #[arg(long = "allow-origin", env = "TETHER_ALLOW_ORIGINS", value_delimiter = ',', value_name = "ORIGIN")]
    allow_origins: Vec<String>,
    /// When tether runs as root: run agents (and everything they start) as this unprivileged user, so they cannot
    /// read tether's token or store, nor signal it. The workspace is given to that user.
    #[arg(long, env = "TETHER_AGENT_USER", value_name = "USER")]
    agent_user: Option<String>,
    /// Largest JSON body accepted, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest file or tar upload accepted, in bytes.
    #[arg(long, env = "TETHER_MAX_UPLOAD_BYTES", default_value_t = crate::fs::DEFAULT_MAX_UPLOAD_BYTES)]
    max_upload_bytes: u64,
    /// Output kept per process (`/v1/processes`), in bytes: older output is dropped and reported as missed.
    #[arg(long, env = "TETHER_PROCESS_OUTPUT_BYTES", default_value_t = crate::exec::DEFAULT_OUTPUT_BYTES)]
    process_output_bytes: usize,
    /// Seconds between SSE keepalive comments.
    #[arg(long, default_value_t = 15, hide = true)]
    keepalive_secs: u64,
    /// End an event stream (SSE or WebSocket) that has had no event to send for this many seconds, so an idle
    /// client does not keep the machine awake; clients reconnect with their cursor. 0: never.
    #[arg(long, env = "TETHER_STREAM_IDLE_SECS", default_value_t = 0)]
    stream_idle_secs: u64,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The Sprite API socket: when it exists, tether keeps the Sprite awake while agents work.
    #[arg(long, env = "TETHER_SPRITE_SOCKET", default_value = crate::sprite::DEFAULT_SOCKET)]
    sprite_socket: PathBuf,
    /// Inside a Sprite, do not hold a Sprite Task while agents work.
    #[arg(long)]
    no_keep_awake: bool,
    /// Inside a Sprite, how long sessions that only wait for a person (a permission or a question) keep the
    /// Sprite awake, in seconds; after that it may pause until a turn runs again.
    #[arg(long, env = "TETHER_KEEP_AWAKE_WAIT_SECS", default_value_t = 900)]
    keep_awake_wait_secs: u64,
    /// Inside a Sprite, how long events not yet delivered to a webhook keep the Sprite awake once no session is
    /// busy (its receiver slow or failing), in seconds; then it may pause, and the webhook is marked failing.
    #[arg(long, env = "TETHER_KEEP_AWAKE_WEBHOOK_SECS", default_value_t = crate::sprite::keepawake::DEFAULT_WEBHOOK_LIMIT.as_secs())]
    keep_awake_webhook_secs: u64,
    /// Keep-awake task expiry, in seconds.
    #[arg(long, default_value_t = 300, hide = true)]
    keep_awake_expire_secs: u64,
    /// Keep-awake refresh period, in milliseconds.
    #[arg(long, default_value_t = 60_000, hide = true)]
    keep_awake_refresh_ms: u64,
    /// A tick this much later than expected means the server was paused, in milliseconds.
    #[arg(long, default_value_t = 5_000, hide = true)]
    pause_threshold_ms: u64,
    /// A stall of the store (disk full, I/O errors) this long or longer ends
    /// the turns that ran through it, in milliseconds.
    #[arg(long, default_value_t = crate::config::DEFAULT_STORE_STALL_LIMIT.as_millis() as u64, hide = true)]
    store_stall_limit_ms: u64,
    /// Tests only: after binding, hold the start (health answers `starting`) until this file exists.
    #[arg(long, hide = true)]
    start_gate: Option<PathBuf>,
    /// First wait before an unacknowledged webhook batch is sent again, in milliseconds (doubles per failure).
    #[arg(long, default_value_t = 1_000, hide = true)]
    webhook_retry_min_ms: u64,
    /// Longest wait between attempts at a webhook batch, in milliseconds.
    #[arg(long, default_value_t = 60_000, hide = true)]
    webhook_retry_max_ms: u64,
    /// Most connections served at once; past it a client is answered 503 `too_many_connections` with Retry-After
    /// at once (health still answers) [default: the open-files limit less a reserve for agents and the store, at
    /// most 4096].
    #[arg(long, env = "TETHER_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Most event streams (SSE or WebSocket) one client address holds open; past it a stream is answered 503
    /// `too_many_streams` with Retry-After. Behind a proxy, or on loopback, every client shares one address.
    #[arg(long, env = "TETHER_MAX_STREAMS_PER_CLIENT", default_value_t = crate::config::DEFAULT_MAX_STREAMS_PER_CLIENT as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_streams_per_client: u64,
    /// Seconds a client has to send a whole request head (after connecting, or between requests on a kept-alive
    /// connection); then the connection is closed.
    #[arg(long, env = "TETHER_HEADER_READ_TIMEOUT_SECS",
          default_value_t = crate::connections::DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_secs: u64,
    /// Seconds a request body may send nothing; then the request fails (408 `request_timeout`).
    #[arg(long, env = "TETHER_BODY_READ_TIMEOUT_SECS",
          default_value_t = crate::connections::DEFAULT_BODY_READ_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout_secs: u64,
    /// Seconds a client may take none of the bytes waiting for it (a response, event-stream frames); then it is
    /// disconnected (event-stream clients resume with their cursor).
    #[arg(long, env = "TETHER_SEND_TIMEOUT_SECS", default_value_t = crate::connections::DEFAULT_SEND_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    send_timeout_secs: u64,
    /// How often to look for TCP ports listening in the sandbox (`/proc/net/tcp`), in milliseconds: a port that
    /// opens or closes is a `port.opened` or `port.closed` event within about this long, and `GET /v1/ports`
    /// lists what listens. 0: no detection (ports are still previewed through `/v1/ports/{port}/proxy/`).
    #[arg(long, env = "TETHER_PORTS_POLL_MS", default_value_t = crate::ports::DEFAULT_POLL.as_millis() as u64)]
    ports_poll_ms: u64,
    /// Seconds a session may be idle (no turn running, nothing asked) before its agent process is stopped to free
    /// its memory; the session stays idle, and its next message starts the agent again, resuming the
    /// conversation. 0: never.
    #[arg(long, env = "TETHER_AGENT_IDLE_SECS", default_value_t = crate::session::DEFAULT_AGENT_IDLE.as_secs())]
    agent_idle_secs: u64,
    /// Which ended sessions to keep: an age (`7d`, `12h`, `30m`, `45s`), a count of the newest (`500`), or both
    /// (`7d,500`). Older or further ones are purged in the background with their events. Default: all are kept.
    #[arg(long, env = "TETHER_RETAIN", value_parser = crate::retention::Retain::parse)]
    retain: Option<crate::retention::Retain>,
    /// Free space (MiB) on the data dir's disk below which tether warns (`server.disk {state: low}`, `/v1/health`
    /// `degraded`); at most a tenth of the disk.
    #[arg(long, env = "TETHER_DISK_LOW_MB", default_value_t = 1024)]
    disk_low_mb: u64,
    /// Free space (MiB) below which the disk counts as full: new sessions and messages are refused (507) and
    /// running turns end with `store_full`, until there is room again; at most a thirty-third of the disk.
    #[arg(long, env = "TETHER_DISK_FLOOD_MB", default_value_t = 256)]
    disk_flood_mb: u64,
    /// Size (MiB) of the reserve file kept in the data dir and deleted when the disk is full, so the events that
    /// end the running turns always have room.
    #[arg(long, env = "TETHER_DISK_RESERVE_MB", default_value_t = 16)]
    disk_reserve_mb: u64,
    /// A JSON file declaring agents that speak ACP over stdio (`{"agents": [{"id", "command", "args", "env",
    /// "model_flag", "install"}]}`); by default `<data dir>/agents.json` when it exists.
    #[arg(long, env = "TETHER_AGENTS_FILE")]
    agents_file: Option<PathBuf>,
    /// Export traces (one per turn) and metrics over OTLP/HTTP to this collector (e.g. `http://localhost:4318`;
    /// `/v1/traces` and `/v1/metrics` are added). Off when neither this nor an `OTEL_EXPORTER_OTLP_*ENDPOINT`
    /// variable is set; headers, timeout, service name, resource attributes and the sampler come from the
    /// standard `OTEL_*` variables.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otel_endpoint: Option<String>,
    /// Put prompts, outputs, tool arguments and tool results on the exported spans (the GenAI conventions'
    /// opt-in). Off by default: spans then carry names, ids, timings, token counts and statuses only.
    #[arg(long, env = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")]
    otel_capture_content: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Commands::MockAgent { args } => ExitCode::from(crate::agents::mock::run(&args).clamp(0, 255) as u8),
        Commands::Serve(args) => serve(args),
        Commands::Agents { command } => agents_command(command),
        Commands::ExecIn { dir, command } => exec_in(&dir, &command),
        Commands::Mcp(args) => mcp(args),
        Commands::Sprite { command } => sprite_command(command),
        Commands::Client(command) => crate::client::main(command),
    }
}

fn sprite_command(command: SpriteCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let mut out = std::io::stdout();
    if matches!(command, SpriteCommand::Install(_) | SpriteCommand::Uninstall(_)) {
        if let Some(why) = crate::sprite::install::refused_inside_a_session() {
            eprintln!("tether: {why}");
            return ExitCode::from(2);
        }
    }
    runtime.block_on(async move {
        match command {
            SpriteCommand::Deploy(a) => {
                let options = match a.options() {
                    Ok(o) => o,
                    Err(e) => return fail(e),
                };
                match crate::sprite::deploy::deploy(&options, &mut out).await {
                    Ok(_) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            SpriteCommand::Smoke(a) => {
                let options = match a.deploy.options() {
                    Ok(deploy) => crate::sprite::smoke::SmokeOptions {
                        deploy,
                        idle: Duration::from_secs(a.idle_secs),
                        turns: a.turns,
                    },
                    Err(e) => return fail(e),
                };
                if crate::sprite::smoke::smoke(&options, &mut out).await {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            SpriteCommand::Install(a) => {
                let data_dir = a.data_dir.unwrap_or_else(default_data_dir);
                let workspace =
                    match a.workspace.map(Ok).unwrap_or_else(std::env::current_dir).and_then(|w| w.canonicalize()) {
                        Ok(w) => w,
                        Err(e) => return fail(format!("the workspace: {e}")),
                    };
                let exe = match std::env::current_exe().and_then(|e| e.canonicalize()) {
                    Ok(e) => e,
                    Err(e) => return fail(format!("cannot find this tether binary: {e}")),
                };
                let data_dir = match std::fs::create_dir_all(&data_dir).and_then(|_| data_dir.canonicalize()) {
                    Ok(d) => d,
                    Err(e) => return fail(format!("the data dir {}: {e}", data_dir.display())),
                };
                let options = crate::sprite::install::InstallOptions {
                    socket: a.target.socket,
                    name: a.target.name,
                    host: a.host,
                    port: a.port,
                    token_file: a.token_file.unwrap_or_else(|| data_dir.join("token")),
                    workspace,
                    data_dir,
                    exe,
                    keep_awake: !a.no_keep_awake,
                    wait: Duration::from_secs(a.wait_secs),
                    restart: a.restart,
                };
                match crate::sprite::install::install(&options, &mut out).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
            SpriteCommand::Status(t) => match crate::sprite::install::status(&t.socket, &t.name, &mut out).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(e),
            },
            SpriteCommand::Uninstall(t) => {
                match crate::sprite::install::uninstall(&t.socket, &t.name, &mut out).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(e),
                }
            }
        }
    })
}

/// `tether mcp`: stdout carries MCP only; diagnostics go to stderr.
fn mcp(args: McpArgs) -> ExitCode {
    let token = match crate::token::read_token(args.token.as_deref(), args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let outcome = runtime.block_on(crate::tether_mcp::proxy::run(&args.url, token.as_deref()));
    // Tokio reads stdin on a blocking thread that a closed server does not end: do not wait for it.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// Replaces this process with `command` run in `dir`; returns only on failure.
fn exec_in(dir: &std::path::Path, command: &[String]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = command.split_first() else { return fail("no command to run") };
    let e = std::process::Command::new(program).args(args).current_dir(dir).exec();
    fail(format!("cannot run {program:?} in {}: {e}", dir.display()))
}

/// `path` made absolute against the current directory (it need not exist).
fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn agents_command(command: AgentsCommand) -> ExitCode {
    use std::io::IsTerminal;
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        match command {
            AgentsCommand::List { data_dir } => {
                let data_dir = absolute(data_dir.unwrap_or_else(default_data_dir));
                if let Err(e) = crate::agents::declared::load(&data_dir.join(crate::agents::declared::FILE_NAME), false) {
                    return fail(e);
                }
                let mut out = std::io::stdout();
                // One column per field, as wide as the longest id (`opencode-acp`, a declared agent's).
                let width = crate::agents::all().map(|d| d.id.len()).max().unwrap_or(0);
                for def in crate::agents::all() {
                    let a = crate::agents::describe(def, &data_dir).await;
                    let _ = writeln!(
                        out,
                        "{:<width$} {:<13} {:<10} {}",
                        a.id,
                        if a.installed { "installed" } else { "not installed" },
                        a.version.as_deref().unwrap_or("-"),
                        a.path.as_deref().unwrap_or("-")
                    );
                }
                ExitCode::SUCCESS
            }
            AgentsCommand::Install { agent, data_dir } => {
                let data_dir = absolute(data_dir.unwrap_or_else(default_data_dir));
                let Some(def) = crate::agents::find(&agent) else {
                    return fail(format!("unknown agent {agent:?}"));
                };
                let tty = std::io::stderr().is_terminal();
                let mut err = std::io::stderr();
                let result = crate::agents::install::install(def, &data_dir, |p| {
                    if tty {
                        let filled = usize::from(p.percent) * 30 / 100;
                        let mut msg: String = p.message.chars().take(60).collect();
                        msg.push_str(&" ".repeat(60usize.saturating_sub(msg.chars().count())));
                        let _ = write!(
                            err,
                            "\r[{}{}] {:>3}% {:<11} {msg}",
                            "#".repeat(filled),
                            ".".repeat(30 - filled),
                            p.percent,
                            p.stage
                        );
                    } else {
                        let _ = writeln!(err, "{:>3}% {}: {}", p.percent, p.stage, p.message);
                    }
                })
                .await;
                if tty {
                    let _ = writeln!(err);
                }
                match result {
                    Ok(bin) => {
                        let _ = writeln!(std::io::stdout(), "{} {}", def.id, bin.display());
                        let _ = writeln!(
                            err,
                            "installed into the data dir {}; a server started with the same data dir ($TETHER_DATA_DIR, or the default that ./scripts/serve uses too) lists it",
                            data_dir.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
        }
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rmcp=off"));
    // Colours only for a person at a terminal (not in a log file or a pipe), and never with NO_COLOR.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    let _ = writeln!(std::io::stderr(), "tether: {msg}");
    ExitCode::from(2)
}

fn serve(args: ServeArgs) -> ExitCode {
    let started = Instant::now();
    crate::process::limit_malloc_arenas();
    init_logging(args.log_format);
    let open_files = match crate::process::raise_open_files_limit() {
        Ok((before, now)) => {
            tracing::debug!(before, now, "the soft limit of open files");
            now
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the limit of open files");
            1024
        }
    };
    let token = match crate::token::read_token(args.token.as_deref(), args.token_file.as_deref()) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    if token.as_deref() == Some("") {
        return fail("the token is empty");
    }
    if token.is_none() && !args.host.is_loopback() && !args.no_token {
        return fail(format!(
            "refusing to listen on {} without a token: pass --token (or TETHER_TOKEN, --token-file), or --no-token to allow it",
            args.host
        ));
    }
    let workspace = match args.workspace.clone().map(Ok).unwrap_or_else(std::env::current_dir) {
        Ok(w) => match w.canonicalize() {
            Ok(w) if w.is_dir() => w,
            Ok(w) => return fail(format!("workspace {} is not a directory", w.display())),
            Err(e) => return fail(format!("workspace {}: {e}", w.display())),
        },
        Err(e) => return fail(format!("cannot read the current directory: {e}")),
    };
    if let Some(name) = &args.agent_user {
        match crate::process::user::AgentUser::resolve(name) {
            Ok(user) => crate::process::user::run_agents_as(user),
            Err(e) => return fail(e),
        }
    }
    // Absolute from here on: agents run in the workspace, so every path
    // tether hands them (MCP configs, plugin folders, state) must not depend
    // on the directory tether was started from.
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    if let Err(e) = crate::serve::check_data_dir(&data_dir) {
        return fail(e);
    }
    let data_dir = match data_dir.canonicalize() {
        Ok(d) => d,
        Err(e) => return fail(format!("the data dir {}: {e}", data_dir.display())),
    };
    // The agents a user declared: a file named on the command line must be
    // there; the data dir's own is read when it exists.
    let declared = match &args.agents_file {
        Some(f) => crate::agents::declared::load(&absolute(f.clone()), true),
        None => crate::agents::declared::load(&data_dir.join(crate::agents::declared::FILE_NAME), false),
    };
    match declared {
        Ok(n) if n > 0 => tracing::info!(agents = n, "declared agents"),
        Ok(_) => {}
        Err(e) => return fail(e),
    }
    let config = Config {
        host: args.host,
        port: args.port,
        data_dir,
        workspace,
        token,
        max_body_bytes: args.max_body_bytes,
        max_upload_bytes: args.max_upload_bytes,
        process_output_bytes: args.process_output_bytes.max(1024),
        keepalive: Duration::from_secs(args.keepalive_secs.max(1)),
        sprite_socket: Some(args.sprite_socket.clone()),
        keep_awake: !args.no_keep_awake,
        allow_hosts: args.allow_hosts.clone(),
        allow_origins: args.allow_origins.clone(),
        keep_awake_expire: Duration::from_secs(args.keep_awake_expire_secs.max(1)),
        keep_awake_refresh: Duration::from_millis(args.keep_awake_refresh_ms.max(10)),
        keep_awake_wait: Duration::from_secs(args.keep_awake_wait_secs),
        keep_awake_webhooks: Duration::from_secs(args.keep_awake_webhook_secs),
        pause_threshold: Duration::from_millis(args.pause_threshold_ms.max(100)),
        stream_idle: (args.stream_idle_secs > 0).then(|| Duration::from_secs(args.stream_idle_secs)),
        store_stall_limit: Duration::from_millis(args.store_stall_limit_ms),
        start_gate: args.start_gate.clone(),
        webhook_retry: crate::webhooks::Retry {
            min: Duration::from_millis(args.webhook_retry_min_ms.max(1)),
            max: Duration::from_millis(args.webhook_retry_max_ms.max(args.webhook_retry_min_ms).max(1)),
        },
        connections: crate::connections::Limits {
            max_connections: args.max_connections.map_or_else(
                || crate::connections::Limits::default_max_connections(open_files),
                |n| usize::try_from(n).unwrap_or(usize::MAX),
            ),
            header_read_timeout: Duration::from_secs(args.header_read_timeout_secs),
            body_read_timeout: Duration::from_secs(args.body_read_timeout_secs),
            send_timeout: Duration::from_secs(args.send_timeout_secs),
        },
        max_streams_per_client: usize::try_from(args.max_streams_per_client).unwrap_or(usize::MAX),
        ports_poll: (args.ports_poll_ms > 0).then(|| Duration::from_millis(args.ports_poll_ms)),
        agent_idle: (args.agent_idle_secs > 0).then(|| Duration::from_secs(args.agent_idle_secs)),
        retain: args.retain,
        disk: crate::disk::DiskLimits {
            low: args.disk_low_mb << 20,
            flood: args.disk_flood_mb.min(args.disk_low_mb) << 20,
            reserve: args.disk_reserve_mb << 20,
        },
        telemetry: crate::telemetry::TelemetryConfig {
            endpoint: args.otel_endpoint.filter(|e| !e.trim().is_empty()),
            capture_content: args.otel_capture_content,
        },
    };
    if let Err(e) = crate::telemetry::check(&config.telemetry) {
        return fail(e);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(SocketAddr::new(config.host, config.port)).await {
            Ok(l) => l,
            Err(e) => return fail(format!("cannot listen on {}:{}: {e}", config.host, config.port)),
        };
        let shutdown = shutdown_signal();
        let bound = listener.local_addr().ok();
        let addr = bound.map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(%addr, data_dir = %config.data_dir.display(), workspace = %config.workspace.display(), auth = config.token.is_some(), "listening");
        // The first line on stdout, printed as soon as the port is bound (the
        // store opens and recovery runs behind it; /v1/health says `starting`
        // until it is done): tests and scripts read the bound address from
        // it. The second says where a person opens the inspector.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "tether {} listening on http://{addr}", env!("CARGO_PKG_VERSION"));
        if let Some(a) = bound {
            let _ = writeln!(out, "inspector: http://{}:{}/ui/", crate::connections::local_host(a.ip()), a.port());
        }
        let _ = out.flush();
        match crate::serve::run(config, started, listener, shutdown).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        }
    })
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, not
/// when the future is first polled, so a signal sent right after the
/// address line is printed already shuts the server down cleanly.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
