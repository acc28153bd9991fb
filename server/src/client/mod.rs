//! The terminal client: `tether run|sessions|show|send|events|rm`, the
//! sandbox's `tether sh|ps|ports`, talking
//! to any tether (a URL, or a Sprite through the Sprites proxy) with
//! tether-sdk. No store is opened and no server started: a client command
//! is an HTTP request or two on a single-threaded runtime.
//!
//! Exit codes: 0 done; 1 the turn ended badly (error, refused, max turns) or
//! the session ended; 2 bad usage; 3 the server refused the request (the
//! problem is printed: not found, conflict, unauthorized, …); 4 the server
//! could not be reached; 130 interrupted with Ctrl-C.

mod computer;
mod failure;
mod render;
mod run;
mod sh;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use tether_sdk::{Client, Error as SdkError, ListSessions, SessionStatus};

use failure::{Place, Target};
pub use render::{Renderer, Style};

/// Exit codes of the client commands.
pub mod exit {
    pub const OK: u8 = 0;
    pub const TURN_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const REFUSED: u8 = 3;
    pub const UNREACHABLE: u8 = 4;
    pub const INTERRUPTED: u8 = 130;
}

/// Where the server is and how to authenticate: shared by every client command.
#[derive(clap::Args, Clone)]
pub struct ConnectArgs {
    /// The server's base URL (http:// or https://).
    #[arg(long, global = true, env = "TETHER_URL", default_value = "http://127.0.0.1:7419")]
    url: String,
    /// The server's token.
    #[arg(long, global = true, env = "TETHER_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the server's token from this file.
    #[arg(long, global = true, conflicts_with = "token")]
    token_file: Option<PathBuf>,
    /// Reach the tether inside this Sprite through the Sprites TCP proxy (instead of --url). With no
    /// token given, the one `tether sprite deploy` saved for this Sprite is sent.
    #[arg(long, global = true, env = "TETHER_SPRITE")]
    sprite: Option<String>,
    /// The Sprites token: for --sprite, or for a Sprite URL given as --url (its edge takes it
    /// as the bearer; tether's token then goes as X-Tether-Token).
    #[arg(long, global = true, env = "SPRITES_TOKEN", hide_env_values = true)]
    sprites_token: Option<String>,
    /// The Sprites API, for --sprite (wss://… or https://…).
    #[arg(long, global = true, env = "SPRITES_API_URL", default_value = tether_sdk::sprites::DEFAULT_API_URL)]
    sprites_api: String,
    /// The port tether serves on inside the Sprite, for --sprite.
    #[arg(long, global = true, default_value_t = tether_sdk::sprites::DEFAULT_PORT)]
    sprite_port: u16,
}

#[derive(clap::Subcommand)]
pub enum ClientCommand {
    /// Run one turn: create a session (or use --session), send the prompt, show the turn as it
    /// streams; permissions and questions are asked here. Ctrl-C interrupts the turn, twice quits.
    Run {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: run::RunArgs,
    },
    /// List sessions.
    Sessions {
        #[command(flatten)]
        connect: ConnectArgs,
        /// Only sessions with this status (starting, idle, running, waiting, ended, failed).
        #[arg(long)]
        status: Option<String>,
        /// Only sessions of this agent.
        #[arg(long)]
        agent: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one session.
    Show {
        #[command(flatten)]
        connect: ConnectArgs,
        session: String,
        #[arg(long)]
        json: bool,
    },
    /// Send a message to a session; prints the turn id (the turn runs in the background;
    /// `tether run --session SES` waits for it and shows it).
    Send {
        #[command(flatten)]
        connect: ConnectArgs,
        session: String,
        text: String,
    },
    /// A session's events as JSON lines (or --text); -f follows live and resumes across
    /// disconnects and server restarts until the session ends.
    Events {
        #[command(flatten)]
        connect: ConnectArgs,
        session: String,
        /// Follow: keep streaming new events.
        #[arg(short, long)]
        follow: bool,
        /// Start after this seq.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// Readable text instead of JSON lines.
        #[arg(long)]
        text: bool,
    },
    /// Delete a session (its agent is stopped; history is kept unless --purge).
    Rm {
        #[command(flatten)]
        connect: ConnectArgs,
        session: String,
        #[arg(long)]
        purge: bool,
    },
    /// A shell (or COMMAND) in the sandbox, on this terminal; Ctrl-\ then d detaches, `--attach` comes back.
    #[command(
        after_help = "Detach: Ctrl-\\ then d (the process goes on; reattach with `tether sh --attach prc_…`).\n\
                      Ctrl-\\ twice sends one Ctrl-\\ to the process.\n\
                      The exit code is the process's (128 + the signal's number when a signal ended it);\n\
                      4 when the connection is lost (the message says how to reattach)."
    )]
    Sh {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: sh::ShArgs,
    },
    /// List the processes run in the sandbox (`tether sh`, the agents' tools, the API): id, status, pid, age, title.
    Ps {
        #[command(flatten)]
        connect: ConnectArgs,
        /// The list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The TCP ports listening in the sandbox, with their owners and preview paths; `tether ports link PORT`
    /// makes a preview link a browser opens without a token.
    Ports {
        #[command(flatten)]
        connect: ConnectArgs,
        /// The list (or the link) as JSON.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: Option<computer::PortsCommand>,
    },
}

/// Runs a client command.
pub fn main(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(exit::UNREACHABLE, format!("cannot start the runtime: {e}")).into(),
    };
    let code = runtime.block_on(async move {
        let (client, target) = match command.connect().client() {
            Ok(c) => c,
            Err(code) => return code,
        };
        let outcome = match command {
            ClientCommand::Run { args, .. } => return run::run(&client, &target, args).await,
            ClientCommand::Sh { args, .. } => return sh::sh(&client, &target, args).await,
            ClientCommand::Ps { json, .. } => computer::ps(&client, json).await,
            ClientCommand::Ports { json, command, .. } => computer::ports(&client, json, command).await,
            ClientCommand::Events { session, follow, after, text, .. } => {
                events(&client, &session, follow, after, text).await
            }
            ClientCommand::Sessions { status, agent, limit, json, .. } => {
                sessions(&client, status, agent, limit, json).await
            }
            ClientCommand::Show { session, json, .. } => show(&client, &session, json).await,
            ClientCommand::Send { session, text, .. } => {
                let accepted = client.send_text(&session, text).await;
                accepted.map_err(CommandError::from).and_then(|a| Ok(writeln!(std::io::stdout(), "{}", a.turn_id)?))
            }
            ClientCommand::Rm { session, purge, .. } => {
                let removed = client.delete_session(&session, purge).await;
                removed.map_err(CommandError::from).and_then(|s| {
                    Ok(writeln!(std::io::stdout(), "{} {}", if purge { "purged" } else { "deleted" }, s.id)?)
                })
            }
        };
        match outcome {
            Ok(()) => exit::OK,
            Err(e) => report(&e, &target),
        }
    });
    // The stdin reader of `run` may still block in read(): do not wait for it.
    runtime.shutdown_background();
    ExitCode::from(code)
}

impl ClientCommand {
    fn connect(&self) -> &ConnectArgs {
        match self {
            ClientCommand::Run { connect, .. }
            | ClientCommand::Sessions { connect, .. }
            | ClientCommand::Show { connect, .. }
            | ClientCommand::Send { connect, .. }
            | ClientCommand::Events { connect, .. }
            | ClientCommand::Rm { connect, .. }
            | ClientCommand::Sh { connect, .. }
            | ClientCommand::Ps { connect, .. }
            | ClientCommand::Ports { connect, .. } => connect,
        }
    }
}

impl ConnectArgs {
    /// The client, and where it goes (for the messages when that fails).
    fn client(&self) -> Result<(Client, Target), u8> {
        let token = crate::token::read_token(self.token.as_deref(), self.token_file.as_deref())
            .map_err(|e| fail(exit::USAGE, e))?
            .filter(|t| !t.is_empty());
        let mut target = Target {
            place: Place::Url(self.url.clone()),
            token_sent: token.is_some(),
            edge_token_sent: false,
            saved_token: None,
        };
        let client = match (&self.sprite, &self.sprites_token) {
            (Some(name), Some(sprites_token)) => {
                let proxy = tether_sdk::sprites::SpritesProxy::new(name, sprites_token)
                    .with_api_url(&self.sprites_api)
                    .with_target("localhost", self.sprite_port);
                target.place = Place::Sprite { name: name.clone(), port: self.sprite_port };
                // No token given: the client sends the one `tether sprite deploy` saved, if any.
                if token.is_none() && tether_sdk::sprites::saved_token(name).is_some() {
                    target.token_sent = true;
                    target.saved_token = tether_sdk::sprites::saved_token_path(name);
                }
                Client::through_sprites_proxy(proxy).map_err(|e| report(&CommandError::from(e), &target))?
            }
            (Some(_), None) => {
                return Err(fail(exit::USAGE, "--sprite needs a Sprites token (--sprites-token or SPRITES_TOKEN)"));
            }
            (None, Some(sprites_token)) if self.url.starts_with("https://") => {
                target.edge_token_sent = true;
                with_connect_timeout(Client::sprite_url(&self.url, sprites_token))
            }
            (None, _) => {
                if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
                    return Err(fail(
                        exit::USAGE,
                        format!("--url must start with http:// or https://: {:?}", self.url),
                    ));
                }
                with_connect_timeout(Client::new(&self.url))
            }
        };
        let client = match token {
            Some(token) => client.with_token(token),
            None => client,
        };
        Ok((client, target))
    }
}

/// A server that does not answer is reported after [`failure::CONNECT_TIMEOUT`],
/// not after the system's own (minutes). Like the SDK's own client, it
/// follows no redirect: one would carry the tether token elsewhere.
fn with_connect_timeout(client: Client) -> Client {
    client.clone().with_http_options(|b| b.connect_timeout(failure::CONNECT_TIMEOUT)).unwrap_or(client)
}

/// `tether sessions`.
async fn sessions(
    client: &Client,
    status: Option<String>,
    agent: Option<String>,
    limit: u32,
    json: bool,
) -> Result<(), CommandError> {
    let status = match status {
        Some(s) => Some(
            serde_json::from_value::<SessionStatus>(serde_json::Value::String(s.clone()))
                .map_err(|_| CommandError::Usage(format!("unknown status {s:?}")))?,
        ),
        None => None,
    };
    let query = ListSessions { status, agent, limit: Some(limit), cursor: None };
    let list = client.list_sessions(&query).await?;
    let mut out = std::io::stdout().lock();
    let style = stdout_style();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&list).unwrap_or_default())?;
    } else if list.sessions.is_empty() {
        writeln!(out, "{}", style.dim("no sessions"))?;
    } else {
        writeln!(
            out,
            "{}",
            style.bold(&format!("{:<30} {:<9} {:<8} {:<23} TITLE", "ID", "AGENT", "STATUS", "CREATED"))
        )?;
        for s in &list.sessions {
            writeln!(
                out,
                "{:<30} {:<9} {:<8} {:<23} {}",
                s.id,
                s.agent,
                s.status.as_str(),
                render::when(&s.created_at),
                s.title.as_deref().unwrap_or("")
            )?;
        }
    }
    Ok(())
}

/// `tether show`.
async fn show(client: &Client, session: &str, json: bool) -> Result<(), CommandError> {
    let s = client.get_session(session).await?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&s).unwrap_or_default())?;
        return Ok(());
    }
    let rows = [
        ("id", s.id.clone()),
        ("agent", s.agent.clone()),
        ("status", s.status.as_str().to_owned()),
        ("directory", s.cwd.clone()),
        ("model", s.model.clone().unwrap_or_default()),
        ("permissions", render::permission_mode(s.permission_mode)),
        ("title", s.title.clone().unwrap_or_default()),
        ("agent's own id", s.native_session_id.clone().unwrap_or_default()),
        ("created", render::when(&s.created_at)),
        ("updated", render::when(&s.updated_at)),
        ("events", s.last_seq.to_string()),
    ];
    let style = stdout_style();
    for (name, value) in rows.iter().filter(|(_, v)| !v.is_empty()) {
        writeln!(out, "{} {value}", style.dim(&format!("{name:<16}")))?;
    }
    Ok(())
}

/// `tether events`: pages of the store, or the live stream with `-f`.
async fn events(client: &Client, session: &str, follow: bool, after: u64, text: bool) -> Result<(), CommandError> {
    let stdout = std::io::stdout();
    let mut renderer = text.then(|| Renderer::new(stdout.lock(), std::io::stderr(), stdout_style()));
    let mut show = |event: &tether_sdk::Event| -> std::io::Result<()> {
        match renderer.as_mut() {
            Some(r) => r.event(event),
            None => {
                let mut out = stdout.lock();
                writeln!(out, "{}", serde_json::to_string(event).unwrap_or_default())?;
                out.flush()
            }
        }
    };
    if !follow {
        let mut cursor = after;
        loop {
            let page = client.events_page(session, cursor, Some(1000), false).await?;
            for event in &page.events {
                show(event)?;
            }
            cursor = page.next_after;
            if !page.has_more {
                return Ok(());
            }
        }
    }
    let mut stream = client.session_events(session, Some(after));
    while let Some(next) = stream.next_event().await {
        match next {
            Ok(event) => {
                show(&event)?;
                if matches!(event.body, tether_sdk::EventBody::SessionEnded(_)) {
                    return Ok(());
                }
            }
            // Skipped (an event type newer than this client) or moved back by the stream itself.
            Err(SdkError::Decode(e)) => eprintln!("tether: {}", failure::skipped_event(&e)),
            Err(SdkError::CursorAhead(reset)) => eprintln!("tether: {}", failure::store_restored(&reset)),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Why a client command failed.
#[derive(Debug)]
pub(crate) enum CommandError {
    Sdk(Box<SdkError>),
    Usage(String),
    /// Writing the output failed (a closed pipe): not worth a message.
    Output,
}

impl From<SdkError> for CommandError {
    fn from(e: SdkError) -> Self {
        CommandError::Sdk(Box::new(e))
    }
}

impl From<std::io::Error> for CommandError {
    fn from(_: std::io::Error) -> Self {
        CommandError::Output
    }
}

/// Prints the error as a sentence about `target` and returns the exit code for it.
pub(crate) fn report(e: &CommandError, target: &Target) -> u8 {
    match e {
        CommandError::Output => exit::OK,
        CommandError::Usage(msg) => fail(exit::USAGE, msg),
        CommandError::Sdk(e) => {
            let (code, message) = failure::describe(e, target);
            fail(code, message)
        }
    }
}

pub(crate) fn fail(code: u8, msg: impl std::fmt::Display) -> u8 {
    let _ = writeln!(std::io::stderr(), "tether: {msg}");
    code
}

/// Colour on stdout only when it is a terminal and NO_COLOR is not set.
fn stdout_style() -> Style {
    Style { color: std::io::stdout().is_terminal() && colour_allowed() }
}

fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::env::var("TERM").map_or(true, |t| t != "dumb")
}
