//! Sessions: the registry of live session actors, creation and validation,
//! restart recovery and shutdown. Each live session is one actor task
//! (`actor.rs`) that owns its agent process and normalizer (`normalize.rs`).
//! A session without a live actor lives only in the store; the first command
//! for it starts an actor from its stored row. Every failure is a
//! [`SessionError`] (`error.rs`), in the sessions' terms, with its code and
//! status beside it; this module knows nothing of HTTP.

pub mod actor;
mod error;
pub mod normalize;
pub mod wait;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_protocol::{
    CreateSession, Decision, McpServer, Part, QuestionReply, Session, SessionList, SessionStatus, StreamReset,
};
use tokio::sync::{mpsc, oneshot};

use crate::agents;
use crate::store::{reader, stored, SessionRow, Store};
use actor::{Actor, AgentConfig, Command};
pub use error::SessionError;
use normalize::{Normalizer, SessionFacts};

#[derive(Default)]
pub struct Metrics {
    pub agent_processes: AtomicI64,
    pub sse_clients: AtomicI64,
}

/// State shared by the HTTP layer and every session actor.
pub struct Sessions {
    pub store: Store,
    pub data_dir: PathBuf,
    pub workspace: PathBuf,
    pub metrics: Metrics,
    /// New at every start (`boot_…`): a client that sees it change knows the server restarted.
    pub boot_id: String,
    actors: Mutex<HashMap<Arc<str>, mpsc::Sender<Command>>>,
    /// What each session's agent wrote to its PTY since this server started
    /// (the read-only `/v1/sessions/{id}/terminal`), the last
    /// [`TERMINAL_BYTES`] of it, in memory.
    terminals: Mutex<HashMap<Arc<str>, Arc<crate::process::OutputLog>>>,
    /// The pid of each live agent process, and its session (`crate::ports`
    /// attributes a listening port to the session its pid leads).
    agent_pids: Mutex<HashMap<i32, Arc<str>>>,
    /// The disk holding the data dir, as `crate::disk` last saw it.
    pub disk: crate::store::Disk,
    /// `--agent-idle-secs` in milliseconds (0: idle agents are never stopped).
    agent_idle_ms: std::sync::atomic::AtomicU64,
    /// The trace of each session's latest turn (webhook deliveries of its
    /// events send it as `traceparent`).
    pub turn_traces: crate::telemetry::TurnTraces,
    /// Tokens, costs and durations of the turns (`/metrics`, and OTLP when exported).
    pub telemetry: Arc<crate::telemetry::Stats>,
}

/// Default of `--agent-idle-secs`: an idle session's agent is stopped after 15 minutes.
pub const DEFAULT_AGENT_IDLE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How much of an agent's PTY output a session's terminal keeps.
pub const TERMINAL_BYTES: usize = 256 * 1024;

/// The version of the agent binary a session runs.
async fn agent_version(agent: &str, program: &Path) -> Option<String> {
    match agent {
        "mock" => Some(env!("CARGO_PKG_VERSION").to_string()),
        _ => agents::install::version_of(program).await,
    }
}

/// The folder tether owns for a session's generated agent configuration.
pub fn session_dir(data_dir: &Path, session_id: &str) -> PathBuf {
    sessions_dir(data_dir).join(session_id)
}

/// Where the sessions' folders are.
pub fn sessions_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("sessions")
}

/// The launch configuration stored with a session.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StoredConfig {
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    mcp_servers: BTreeMap<String, McpServer>,
    #[serde(default)]
    skills: Vec<String>,
}

impl Sessions {
    pub fn new(store: Store, data_dir: PathBuf, workspace: PathBuf) -> Arc<Sessions> {
        Arc::new(Sessions {
            store,
            data_dir,
            workspace,
            metrics: Metrics::default(),
            boot_id: crate::ids::new_id("boot_"),
            actors: Mutex::new(HashMap::new()),
            terminals: Mutex::new(HashMap::new()),
            agent_pids: Mutex::new(HashMap::new()),
            disk: Default::default(),
            agent_idle_ms: std::sync::atomic::AtomicU64::new(DEFAULT_AGENT_IDLE.as_millis() as u64),
            turn_traces: Arc::default(),
            telemetry: Arc::default(),
        })
    }

    /// How long a session may be idle before its agent is stopped (`None`: never).
    pub fn agent_idle(&self) -> Option<std::time::Duration> {
        let ms = self.agent_idle_ms.load(std::sync::atomic::Ordering::Relaxed);
        (ms > 0).then(|| std::time::Duration::from_millis(ms))
    }

    /// Sets [`Sessions::agent_idle`] (`None`: never stop an idle agent).
    pub fn set_agent_idle(&self, idle: Option<std::time::Duration>) {
        let ms = idle.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        self.agent_idle_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The PTY output of a session's agent, made when its first agent process starts.
    pub(crate) fn terminal_log(&self, id: &Arc<str>) -> Arc<crate::process::OutputLog> {
        let mut t = match self.terminals.lock() {
            Ok(t) => t,
            Err(p) => p.into_inner(),
        };
        t.entry(id.clone()).or_insert_with(|| Arc::new(crate::process::OutputLog::in_memory(TERMINAL_BYTES))).clone()
    }

    /// The PTY output of a session's agent, if an agent ran since the server started.
    pub fn terminal(&self, id: &str) -> Option<Arc<crate::process::OutputLog>> {
        self.terminals.lock().ok().and_then(|t| t.get(id).cloned())
    }

    pub(crate) fn forget(&self, id: &str) {
        if let Ok(mut a) = self.actors.lock() {
            a.remove(id);
        }
        // Its agent's terminal is over too: kept, every session ever run would hold its history.
        if let Ok(mut t) = self.terminals.lock() {
            t.remove(id);
        }
        if let Ok(mut t) = self.turn_traces.lock() {
            t.remove(id);
        }
    }

    /// The actor of `id` runs its agent as `pid` (`Some`), or no longer (`None`).
    pub(crate) fn agent_pid(&self, id: &Arc<str>, pid: Option<i32>) {
        if let Ok(mut pids) = self.agent_pids.lock() {
            pids.retain(|_, s| s != id);
            if let Some(pid) = pid {
                pids.insert(pid, id.clone());
            }
        }
    }

    /// The live session whose agent process is `pid` (the leader of its process session).
    pub fn session_of_agent_pid(&self, pid: i32) -> Option<String> {
        self.agent_pids.lock().ok().and_then(|p| p.get(&pid).map(|s| s.to_string()))
    }

    /// Whether `id` has a live agent process.
    pub fn agent_is_live(&self, id: &str) -> bool {
        self.agent_pids.lock().is_ok_and(|p| p.values().any(|s| &**s == id))
    }

    fn actor(&self, id: &str) -> Option<mpsc::Sender<Command>> {
        self.actors.lock().ok().and_then(|a| a.get(id).cloned())
    }

    /// Resolves a session's `cwd` inside the workspace root.
    pub fn resolve_cwd(&self, cwd: Option<&str>) -> Result<PathBuf, SessionError> {
        let Some(cwd) = cwd else { return Ok(self.workspace.clone()) };
        if cwd.contains('\0') {
            return Err(SessionError::CwdNul);
        }
        let joined = self.workspace.join(cwd);
        let real = joined.canonicalize().map_err(|e| match e.kind() {
            // A well-formed cwd the workspace does not hold: like any missing path, 404.
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
                SessionError::CwdMissing { cwd: cwd.to_string() }
            }
            _ => SessionError::CwdUnusable { cwd: cwd.to_string(), source: e },
        })?;
        if !real.starts_with(&self.workspace) {
            return Err(SessionError::CwdOutside { cwd: cwd.to_string() });
        }
        if !real.is_dir() {
            return Err(SessionError::CwdNotADirectory { cwd: cwd.to_string() });
        }
        Ok(real)
    }

    /// A page of sessions, newest first, after `cursor` (a previous page's `next_cursor`).
    pub async fn list(
        &self,
        status: Option<SessionStatus>,
        agent: Option<String>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<SessionList, SessionError> {
        let limit = limit.unwrap_or(50);
        if limit == 0 || limit > 1000 {
            return Err(SessionError::Limit { max: 1000 });
        }
        let cursor = match cursor {
            None => None,
            Some(c) => {
                let (at, id) = tether_protocol::parse_session_cursor(c).ok_or(SessionError::Cursor)?;
                Some((at, id.to_string()))
            }
        };
        let rows =
            self.store.read(move |c| reader::list_sessions(c, status, agent.as_deref(), cursor, limit + 1)).await?;
        let has_more = rows.len() > limit as usize;
        let rows = &rows[..rows.len().min(limit as usize)];
        let next_cursor = if has_more { rows.last().map(|r| format!("{}.{}", r.created_at, r.id)) } else { None };
        Ok(SessionList { sessions: rows.iter().map(|r| r.to_api()).collect(), next_cursor })
    }

    /// A page of a session's events as the JSON of an `EventPage`, built from
    /// the stored event texts (no decoding).
    pub async fn events_page(
        &self,
        id: &str,
        after: u64,
        limit: Option<u32>,
        include_raw: bool,
    ) -> Result<String, SessionError> {
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > 10_000 {
            return Err(SessionError::Limit { max: 10_000 });
        }
        let row = self.get(id).await?;
        if after > row.last_seq {
            let reset =
                StreamReset { last_seq: row.last_seq, store_id: self.store.store_id().to_string(), after: Some(after) };
            return Err(SessionError::CursorAhead(reset));
        }
        let sid = id.to_string();
        let events = self.store.read(move |c| reader::session_events(c, &sid, after, limit + 1)).await?;
        let has_more = events.len() > limit as usize;
        let events = &events[..events.len().min(limit as usize)];
        let next_after = events.last().map(|e| e.seq).unwrap_or(after);
        let mut body = String::with_capacity(events.iter().map(|e| e.json.len() + 1).sum::<usize>() + 64);
        body.push_str("{\"events\":");
        stored::write_array(&mut body, events.iter().map(|e| e.json_with(include_raw)));
        body.push_str(&format!(",\"next_after\":{next_after},\"has_more\":{has_more}}}"));
        Ok(body)
    }

    pub async fn get(&self, id: &str) -> Result<SessionRow, SessionError> {
        let sid = id.to_string();
        self.store
            .read(move |c| reader::get_session(c, &sid))
            .await?
            .ok_or_else(|| SessionError::NotFound { id: id.to_string() })
    }

    /// Creates a session; with a `prompt`, its first turn joins the trace
    /// `traceparent` names (see [`Sessions::send`]).
    pub async fn create(
        self: &Arc<Self>,
        req: CreateSession,
        traceparent: Option<&str>,
    ) -> Result<Session, SessionError> {
        Ok(self.create_with_turn(req, traceparent).await?.0)
    }

    /// Creates a session; with a `prompt`, also the id of the turn it started.
    pub async fn create_with_turn(
        self: &Arc<Self>,
        req: CreateSession,
        traceparent: Option<&str>,
    ) -> Result<(Session, Option<String>), SessionError> {
        self.check_disk()?;
        let def = agents::find(&req.agent).ok_or_else(|| {
            let known: Vec<&str> = agents::all().map(|a| a.id).collect();
            SessionError::UnknownAgent { agent: req.agent.clone(), known: known.join(", ") }
        })?;
        if !agents::is_supported(def.id) {
            return Err(SessionError::Unsupported { agent: def.id.to_string() });
        }
        let program = agents::locate(def, &self.data_dir).ok_or_else(|| match def.install_hint {
            Some(hint) => SessionError::NotInstalledHint { agent: def.id.to_string(), hint: hint.to_string() },
            None => SessionError::NotInstalled { agent: def.id.to_string() },
        })?;
        for (key, value) in &req.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(SessionError::EnvName { key: key.clone() });
            }
            if value.contains('\0') {
                return Err(SessionError::EnvNul { key: key.clone() });
            }
        }
        let cwd = self.resolve_cwd(req.cwd.as_deref())?;
        let mcp_servers = self.session_mcp_servers(def, req.mcp_servers).await?;
        let skills = self.session_skills(def, req.skills)?;
        let now = crate::ids::now_ms();
        let config = StoredConfig { env: req.env, mcp_servers, skills };
        let row = SessionRow {
            id: crate::ids::new_id("ses"),
            agent: def.id.to_string(),
            status: SessionStatus::Starting,
            cwd: cwd.display().to_string(),
            model: req.model,
            permission_mode: req.permission_mode,
            title: req.title,
            native_session_id: None,
            created_at: now,
            updated_at: now,
            last_seq: 0,
            metadata: req.metadata,
            config: serde_json::to_string(&config).unwrap_or_else(|_| "{}".into()),
            agent_live: false,
            open_turn: None,
            summary: Default::default(),
        };
        self.store.create_session(row.clone()).await?;
        let version = agent_version(&row.agent, &program).await;
        let tx = self.start_actor(&row, program, config, version)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command::Start { reply }).await.map_err(|_| actor_stopped())?;
        rx.await.map_err(|_| actor_stopped())??;
        let mut turn_id = None;
        if let Some(prompt) = req.prompt {
            let (reply, rx) = oneshot::channel();
            let parts = vec![Part::Text { text: prompt }];
            let trace = crate::telemetry::turn_trace(traceparent);
            tx.send(Command::Send { parts, trace, reply }).await.map_err(|_| actor_stopped())?;
            turn_id = Some(rx.await.map_err(|_| actor_stopped())??);
        }
        self.store.flush().await?;
        Ok((self.get(&row.id).await?.to_api(), turn_id))
    }

    /// The global MCP servers with the session's own merged over them (a
    /// session entry wins by name), checked against what the agent can take:
    /// a global server of a kind the agent cannot take is left out (it is for
    /// the sessions that can: Pi takes none), a session's own is refused.
    async fn session_mcp_servers(
        &self,
        def: &agents::AgentDef,
        own: BTreeMap<String, McpServer>,
    ) -> Result<BTreeMap<String, McpServer>, SessionError> {
        for (name, server) in &own {
            crate::mcp_servers::validate_name(name)
                .and_then(|()| crate::mcp_servers::validate(name, server))
                .map_err(|reason| SessionError::McpServer { name: name.clone(), reason })?;
        }
        let accepted = |server: &McpServer| match server {
            McpServer::Stdio { .. } => (def.accepts.mcp_stdio, "local (stdio)"),
            McpServer::Http { .. } => (def.accepts.mcp_http, "remote (HTTP)"),
        };
        for (name, server) in &own {
            let (ok, kind) = accepted(server);
            if !ok {
                return Err(SessionError::McpNotAccepted { agent: def.id.to_string(), kind, name: name.clone() });
            }
        }
        let mut servers = crate::mcp_servers::global_servers(&self.store).await?;
        servers.retain(|_, server| accepted(server).0);
        servers.extend(own);
        Ok(servers)
    }

    /// The session's skills: each must exist (installed or bundled), once.
    fn session_skills(&self, def: &agents::AgentDef, names: Vec<String>) -> Result<Vec<String>, SessionError> {
        if !names.is_empty() && !def.accepts.skills {
            return Err(SessionError::SkillsNotAccepted { agent: def.id.to_string() });
        }
        let mut seen = std::collections::BTreeSet::new();
        for name in &names {
            if !seen.insert(name.as_str()) {
                return Err(SessionError::SkillTwice { name: name.clone() });
            }
            if crate::skills::find(&self.data_dir, name).is_none() {
                return Err(SessionError::SkillNotInstalled { name: name.clone() });
            }
        }
        Ok(names)
    }

    fn facts(&self, row: &SessionRow, agent_version: Option<String>) -> SessionFacts {
        let def = agents::find(&row.agent);
        SessionFacts {
            agent: row.agent.clone(),
            agent_version,
            cwd: row.cwd.clone(),
            model: row.model.clone(),
            permission_mode: row.permission_mode,
            capabilities: def.map(|d| (d.capabilities)()).unwrap_or_default(),
            store_id: Some(self.store.store_id().to_string()),
            boot_id: Some(self.boot_id.clone()),
        }
    }

    fn start_actor(
        self: &Arc<Self>,
        row: &SessionRow,
        program: PathBuf,
        config: StoredConfig,
        agent_version: Option<String>,
    ) -> Result<mpsc::Sender<Command>, SessionError> {
        let adapter = agents::find(&row.agent)
            .and_then(|def| def.new_adapter(program.clone()))
            .ok_or_else(|| SessionError::NoAdapter { agent: row.agent.clone() })?;
        let mut actors = self.actors.lock().map_err(|_| SessionError::Internal("session registry poisoned".into()))?;
        if let Some(tx) = actors.get(row.id.as_str()) {
            return Ok(tx.clone());
        }
        let (tx, rx) = mpsc::channel(64);
        let id: Arc<str> = Arc::from(row.id.as_str());
        let actor = Actor {
            id: id.clone(),
            shared: self.clone(),
            launch: AgentConfig {
                agent: row.agent.clone(),
                program,
                cwd: PathBuf::from(&row.cwd),
                model: row.model.clone(),
                permission_mode: row.permission_mode,
                env: config.env,
                mcp_servers: config.mcp_servers,
                skills: config.skills,
            },
            adapter,
            norm: Normalizer::new(self.facts(row, agent_version), row.status, row.native_session_id.clone()),
            proc: None,
            queue: Default::default(),
            interrupt_deadline: None,
            idle_deadline: None,
        };
        actors.insert(id, tx.clone());
        tokio::spawn(actor.run(rx));
        Ok(tx)
    }

    /// The actor of a session, started from its stored row if needed.
    async fn live(self: &Arc<Self>, id: &str) -> Result<mpsc::Sender<Command>, SessionError> {
        if let Some(tx) = self.actor(id) {
            return Ok(tx);
        }
        let row = self.get(id).await?;
        if matches!(row.status, SessionStatus::Ended | SessionStatus::Failed) {
            return Err(ended(id));
        }
        let def = agents::find(&row.agent).ok_or(SessionError::UnknownStoredAgent)?;
        let program = agents::locate(def, &self.data_dir)
            .ok_or_else(|| SessionError::NoLongerInstalled { agent: def.id.to_string() })?;
        let config: StoredConfig = serde_json::from_str(&row.config).unwrap_or_default();
        let version = agent_version(&row.agent, &program).await;
        self.start_actor(&row, program, config, version)
    }

    /// Fails while the store is stalled: a command for a session would wait
    /// behind its held-back events (its actor is blocked on the full queue).
    fn check_store(&self) -> Result<(), SessionError> {
        match self.store.health().stall() {
            Some(stall) => Err(SessionError::Stalled(stall)),
            None => Ok(()),
        }
    }

    async fn call<T>(
        self: &Arc<Self>,
        id: &str,
        make: impl FnOnce(oneshot::Sender<Result<T, SessionError>>) -> Command,
    ) -> Result<T, SessionError> {
        self.check_store()?;
        let tx = self.live(id).await?;
        let (reply, rx) = oneshot::channel();
        if tx.send(make(reply)).await.is_err() {
            // The actor stopped between lookup and send (the session was deleted).
            return Err(ended(id));
        }
        rx.await.map_err(|_| ended(id))?
    }

    /// Queues a turn; `traceparent` (W3C) names the caller's span the turn's
    /// trace joins.
    pub async fn send(
        self: &Arc<Self>,
        id: &str,
        parts: Vec<Part>,
        traceparent: Option<&str>,
    ) -> Result<String, SessionError> {
        self.check_disk()?;
        let trace = crate::telemetry::turn_trace(traceparent);
        self.call(id, |reply| Command::Send { parts, trace, reply }).await
    }

    pub async fn interrupt(self: &Arc<Self>, id: &str) -> Result<(), SessionError> {
        self.call(id, |reply| Command::Interrupt { reply }).await
    }

    pub async fn permission(
        self: &Arc<Self>,
        id: &str,
        permission_id: String,
        decision: Decision,
        message: Option<String>,
    ) -> Result<(), SessionError> {
        self.call(id, |reply| Command::Permission { id: permission_id, decision, message, reply }).await
    }

    pub async fn question(
        self: &Arc<Self>,
        id: &str,
        question_id: String,
        answer: QuestionReply,
    ) -> Result<(), SessionError> {
        self.call(id, |reply| Command::Question { id: question_id, answer, reply }).await
    }

    /// Ends a session (its whole process group) and keeps or purges its history.
    pub async fn delete(self: &Arc<Self>, id: &str, purge: bool) -> Result<Session, SessionError> {
        let row = self.get(id).await?;
        if !matches!(row.status, SessionStatus::Ended | SessionStatus::Failed) {
            match self.call(id, |reply| Command::Delete { reply }).await {
                Ok(()) => {}
                // Ended meanwhile: deleting it again is no error.
                Err(SessionError::Ended { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        sweep_tagged(vec![id.to_string()]).await;
        let session = self.get(id).await?.to_api();
        if purge {
            self.store.purge(id).await?;
        }
        Ok(session)
    }

    /// On start: close what a crashed server left open, so every stream stays well formed.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, SessionError> {
        let rows = self.store.read(reader::interrupted_sessions).await?;
        let n = rows.len();
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let killed =
            tokio::task::spawn_blocking(move || crate::process::kill_tagged(&ids.iter().map(String::as_str).collect()))
                .await
                .unwrap_or_default();
        for (session, processes) in killed {
            tracing::info!(%session, processes, "killed leftover agent processes");
        }
        // Every session's open items in one read.
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut open = self
            .store
            .read(move |c| {
                ids.iter().map(|id| Ok((id.clone(), reader::open_items(c, id)?))).collect::<Result<HashMap<_, _>, _>>()
            })
            .await?;
        for row in rows {
            let items = open.remove(&row.id).unwrap_or_default();
            let mut norm = Normalizer::new(self.facts(&row, None), row.status, row.native_session_id.clone());
            norm.restore_open(row.open_turn.clone(), &items);
            norm.recover_after_restart();
            self.store.append(Arc::from(row.id.as_str()), norm.take()).await?;
        }
        self.store.flush().await?;
        Ok(n)
    }

    /// Tells every live session the server was paused (each with an agent
    /// running writes this `server.resumed`); answers how many were told.
    pub async fn notify_resumed(&self, resumed: tether_protocol::ServerResumed) -> usize {
        let actors: Vec<mpsc::Sender<Command>> =
            self.actors.lock().map(|a| a.values().cloned().collect()).unwrap_or_default();
        let mut told = 0;
        for tx in actors {
            if tx.send(Command::Resumed(resumed.clone())).await.is_ok() {
                told += 1;
            }
        }
        told
    }
    /// Tells the session `id` that keep-awake stopped or started holding the
    /// Sprite for it (`server.keep_awake`); false when it has no actor.
    pub async fn notify_keep_awake(&self, id: &str, data: tether_protocol::ServerKeepAwake) -> bool {
        let tx = self.actors.lock().ok().and_then(|a| a.get(id).cloned());
        match tx {
            Some(tx) => tx.send(Command::KeepAwake { data }).await.is_ok(),
            None => false,
        }
    }

    /// The disk is full: every live session ends its running turn (each in
    /// its own task: an actor waiting on the store must not hold up the others).
    pub async fn disk_full(&self) {
        // Not one more line from any agent while the last events take the
        // reserve: every agent is paused (its group SIGSTOPped); each
        // session then stops its agent if a turn runs, or lets it go on.
        let pids: Vec<i32> = self.agent_pids.lock().map(|p| p.keys().copied().collect()).unwrap_or_default();
        for pid in pids {
            crate::process::signal_group(pid, libc::SIGSTOP);
        }
        let actors: Vec<mpsc::Sender<Command>> =
            self.actors.lock().map(|a| a.values().cloned().collect()).unwrap_or_default();
        for tx in actors {
            tokio::spawn(async move {
                let _ = tx.send(Command::DiskFull).await;
            });
        }
    }

    /// 507 while the disk is full: new sessions and turns would only add to it.
    fn check_disk(&self) -> Result<(), SessionError> {
        if self.disk.state() == crate::store::DiskState::Full {
            return Err(SessionError::DiskFull);
        }
        Ok(())
    }

    /// Writes a `port.opened` or `port.closed` into the session `id`'s log;
    /// false when it has no actor or has ended (the event is not written).
    pub async fn notify_port(&self, id: &str, body: tether_protocol::EventBody) -> bool {
        let Some(tx) = self.actor(id) else { return false };
        let (reply, rx) = oneshot::channel();
        if tx.send(Command::Port { body: Box::new(body), reply }).await.is_err() {
            return false;
        }
        // An actor that stops before taking the command drops `reply`: not written.
        rx.await.unwrap_or(false)
    }

    /// After a stall of the store that lasted `limit` or longer, ends every
    /// turn that was running through it: an `error` (`store_full` or
    /// `store_unavailable`, retryable) and an interrupt through the actor's
    /// normal path, so its `turn.completed` says `error`. Shorter stalls only
    /// delay the events (nothing is lost either way).
    pub fn close_turns_after_stalls(self: &Arc<Self>, limit: Duration) {
        let mut ended = self.store.health().subscribe_ended();
        let shared = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let stall = match ended.recv().await {
                    Ok(s) => s,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                };
                if stall.duration < limit {
                    continue;
                }
                let Some(shared) = shared.upgrade() else { break };
                let actors: Vec<mpsc::Sender<Command>> =
                    shared.actors.lock().map(|a| a.values().cloned().collect()).unwrap_or_default();
                tracing::warn!(
                    seconds = stall.duration.as_secs(),
                    sessions = actors.len(),
                    "the store was stalled for long: ending the turns that ran through it"
                );
                for tx in actors {
                    let _ = tx.send(Command::StoreStalled { stall: stall.clone() }).await;
                }
            }
        });
    }

    /// Stops every live session's agent (SIGTERM, then SIGKILL) and waits for it.
    pub async fn shutdown(&self) {
        let (ids, actors): (Vec<String>, Vec<mpsc::Sender<Command>>) = self
            .actors
            .lock()
            .map(|a| a.iter().map(|(id, tx)| (id.to_string(), tx.clone())).unzip())
            .unwrap_or_default();
        let waits = actors.into_iter().map(|tx| async move {
            let (reply, rx) = oneshot::channel();
            if tx.send(Command::Shutdown { reply }).await.is_ok() {
                let _ = rx.await;
            }
        });
        futures_util::future::join_all(waits).await;
        sweep_tagged(ids).await;
        let _ = self.store.flush().await;
    }

    pub fn workspace(&self) -> &Path {
        &self.workspace
    }
}

/// Kills what the sessions' agents started and detached from their process
/// group (Claude Code's Bash tool runs each command in a new session, so a
/// background server outlives the agent's group): every process that still
/// carries one of their `TETHER_SESSION_ID`s.
async fn sweep_tagged(ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let killed =
        tokio::task::spawn_blocking(move || crate::process::kill_tagged(&ids.iter().map(String::as_str).collect()))
            .await
            .unwrap_or_default();
    for (id, n) in killed {
        tracing::info!(session = %id, processes = n, "ended what the session's agent left running");
    }
}

/// The answer to a command for a session that has ended (or whose actor stopped meanwhile).
fn ended(id: &str) -> SessionError {
    SessionError::Ended { id: id.to_string() }
}

/// A session actor that went away while starting: a bug, not the client's doing.
fn actor_stopped() -> SessionError {
    SessionError::Internal("session actor stopped".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_that_is_over_leaves_nothing_behind_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("tether.db")).unwrap();
        let sessions = Sessions::new(store, dir.path().into(), dir.path().into());
        let id: Arc<str> = Arc::from("ses_a");
        sessions.terminal_log(&id).append(b"hello");
        sessions.agent_pid(&id, Some(4242));
        assert!(sessions.terminal("ses_a").is_some());
        sessions.agent_pid(&id, None);
        sessions.forget("ses_a");
        assert!(sessions.terminal("ses_a").is_none(), "its terminal history is dropped");
        assert!(sessions.terminals.lock().unwrap().is_empty());
        assert!(sessions.agent_pids.lock().unwrap().is_empty());
        assert!(sessions.actors.lock().unwrap().is_empty());
    }
}
