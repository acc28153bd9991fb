//! The session actor: one task per live session owning its agent process,
//! its adapter and its normalizer. Commands from the HTTP layer and output
//! from the process are handled one at a time, so a session's events are
//! produced in one order and written in that order.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tether_protocol::{
    AgentStopReason, Decision, EndReason, McpServer, Part, PermissionMode, QuestionReply, SessionStatus, TurnTrace,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::normalize::{Normalizer, Stop};
use super::SessionError;
use super::Sessions;
use crate::agents::{Adapter, LaunchContext};
use crate::error::AsProblem;
use crate::process::{self, ExitInfo, ProcEvent, Process};

/// How long an agent gets to stop a turn after an interrupt before it is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// SIGTERM → SIGKILL grace on DELETE.
const DELETE_GRACE: Duration = Duration::from_millis(1500);
/// SIGTERM → SIGKILL grace on server shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(700);

pub enum Command {
    Start {
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Send {
        parts: Vec<Part>,
        trace: TurnTrace,
        reply: oneshot::Sender<Result<String, SessionError>>,
    },
    Interrupt {
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Permission {
        id: String,
        decision: Decision,
        message: Option<String>,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Question {
        id: String,
        answer: QuestionReply,
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Delete {
        reply: oneshot::Sender<Result<(), SessionError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    /// The server was frozen for this long and woke (see `crate::pause`).
    Resumed(tether_protocol::ServerResumed),
    /// The store was stalled for long and has recovered: end the running turn.
    StoreStalled {
        stall: crate::store::StallEnded,
    },
    /// The disk holding the data dir is full (`crate::disk`): end the running turn.
    DiskFull,
    /// Keep-awake stopped or started holding the Sprite for this session.
    KeepAwake {
        data: tether_protocol::ServerKeepAwake,
    },
    /// A port the agent opened or closed (`crate::ports`): answers whether
    /// it was written (not once the session has ended).
    Port {
        body: Box<tether_protocol::EventBody>,
        reply: oneshot::Sender<bool>,
    },
}

/// What the actor needs to (re)start its agent.
pub struct AgentConfig {
    pub agent: String,
    pub program: PathBuf,
    pub cwd: PathBuf,
    pub model: Option<String>,
    pub permission_mode: PermissionMode,
    pub env: BTreeMap<String, String>,
    /// Global and session MCP servers, merged when the session was created.
    pub mcp_servers: BTreeMap<String, McpServer>,
    /// Names of the skills the session was given.
    pub skills: Vec<String>,
}

pub struct Actor {
    pub id: Arc<str>,
    pub shared: Arc<Sessions>,
    pub launch: AgentConfig,
    pub adapter: Box<dyn Adapter>,
    pub norm: Normalizer,
    pub proc: Option<Process>,
    pub queue: VecDeque<(String, Vec<Part>, TurnTrace)>,
    pub interrupt_deadline: Option<Instant>,
    /// When an idle agent is stopped (`--agent-idle-secs`): set while the
    /// session is idle with a live agent, moved on by every command and line.
    pub idle_deadline: Option<Instant>,
}

enum Flow {
    Continue,
    Stop,
}

impl Actor {
    pub async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        loop {
            // A full disk ends the running turn before anything else is read from the agent.
            if self.shared.disk.state() == crate::store::DiskState::Full
                && self.norm.turn_id().is_some()
                && self.proc.is_some()
            {
                self.handle(Command::DiskFull).await;
                self.flush().await;
            }
            let deadline = self.interrupt_deadline;
            let idle_deadline = self.idle_deadline;
            let flow = tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => Flow::Stop,
                },
                ev = next_proc_event(&mut self.proc) => {
                    self.on_proc_event(ev).await;
                    Flow::Continue
                }
                _ = sleep_until(deadline) => {
                    self.interrupt_timed_out().await;
                    Flow::Continue
                }
                _ = sleep_until(idle_deadline) => {
                    self.stop_idle_agent().await;
                    Flow::Continue
                }
            };
            self.write_adapter_output();
            self.flush().await;
            self.idle_deadline = self.idle_since_now();
            if let Flow::Stop = flow {
                break;
            }
        }
        self.shared.forget(&self.id);
    }

    async fn flush(&mut self) {
        let events = self.norm.take();
        if let Err(e) = self.shared.store.append(self.id.clone(), events).await {
            tracing::error!(session = %self.id, error = %e, "could not queue events");
        }
    }

    async fn handle(&mut self, cmd: Command) -> Flow {
        match cmd {
            Command::Start { reply } => {
                let r = self.ensure_process().await;
                let failed = r.is_err();
                if let Err(e) = &r {
                    // A session whose agent cannot start at all is over, not left dangling.
                    self.norm.end(EndReason::Failed, Some(e.detail()));
                }
                if failed {
                    // The failure is committed before the caller is answered:
                    // a client that lists sessions on the error sees `failed`.
                    self.flush().await;
                    let _ = self.shared.store.flush().await;
                    let _ = reply.send(r);
                    return Flow::Stop;
                }
                let _ = reply.send(r);
            }
            Command::Send { parts, trace, reply } => {
                let turn_id = crate::ids::new_id("trn");
                self.queue.push_back((turn_id.clone(), parts, trace));
                let r = self.start_next_turn().await.map(|_| turn_id);
                let _ = reply.send(r);
            }
            Command::Interrupt { reply } => {
                let r = self.interrupt();
                let _ = reply.send(r);
            }
            Command::Permission { id, decision, message, reply } => {
                let r = match self.norm.resolve_permission(&id, decision) {
                    None => Err(SessionError::NoPermission { id }),
                    Some(p) => {
                        self.adapter.permission_reply(&p.native, decision, message.as_deref());
                        Ok(())
                    }
                };
                let _ = reply.send(r);
            }
            Command::Question { id, answer, reply } => {
                let r = self.answer_question(id, answer);
                let _ = reply.send(r);
            }
            Command::Delete { reply } => {
                self.stop_process(DELETE_GRACE, Stop::Because(AgentStopReason::Deleted)).await;
                // The generated configs are not needed once the session is over.
                let dir = super::session_dir(&self.shared.data_dir, &self.id);
                if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(session = %self.id, error = %e, "could not remove the session's folder");
                    }
                }
                self.queue.clear();
                self.norm.end(EndReason::Terminated, None);
                self.flush().await;
                let r = self.shared.store.flush().await.map_err(SessionError::from);
                let _ = reply.send(r);
                return Flow::Stop;
            }
            Command::Resumed(resumed) => {
                if self.proc.is_some() {
                    self.norm.resumed(resumed);
                }
            }
            Command::KeepAwake { data } => self.norm.keep_awake(data),
            Command::DiskFull => {
                // The turn that ran into the full disk ends, even if room came back meanwhile
                // (this command can wait behind a blocked write): its agent is paused.
                if self.norm.turn_id().is_some() && self.proc.is_some() {
                    let message = "the disk holding tether's data dir is full, so this turn was ended and the \
                                   agent stopped; what it had written so far is kept. Free some space (GET \
                                   /v1/health says when there is room again), then send the message again"
                        .to_string();
                    self.norm.fail_turn("store_full", message);
                    self.stop_process(Duration::from_millis(500), Stop::Because(AgentStopReason::DiskFull)).await;
                } else if let Some(p) = &self.proc {
                    // No turn to end: the agent paused for the full disk goes on.
                    p.signal(libc::SIGCONT);
                }
            }
            Command::Port { body, reply } => {
                let _ = reply.send(self.norm.port(*body));
            }
            Command::StoreStalled { stall } => {
                if self.norm.status() == tether_protocol::SessionStatus::Running {
                    let (code, what) = match stall.kind {
                        crate::store::StallKind::DiskFull => ("store_full", "the disk holding the data dir was full"),
                        _ => ("store_unavailable", "the store could not write"),
                    };
                    let message = format!(
                        "{what} for {} s ({}): the agent was held back meanwhile, so this turn was ended; \
                         nothing it wrote was lost, send the message again to continue",
                        stall.duration.as_secs(),
                        stall.error
                    );
                    self.norm.fail_turn(code, message);
                    if let Err(e) = self.interrupt() {
                        tracing::debug!(session = %self.id, error = %e.detail(), "no turn to end after the stall");
                    }
                }
            }
            Command::Shutdown { reply } => {
                self.norm.server_stopping();
                self.stop_process(SHUTDOWN_GRACE, Stop::Because(AgentStopReason::Shutdown)).await;
                self.flush().await;
                let _ = self.shared.store.flush().await;
                let _ = reply.send(());
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn answer_question(&mut self, id: String, answer: QuestionReply) -> Result<(), SessionError> {
        let Some(pending) = self.norm.pending(&id).filter(|p| p.is_question) else {
            return Err(SessionError::NoQuestion { id });
        };
        let answers = match (answer.answers, answer.reject) {
            (Some(_), true) => return Err(SessionError::AnswersAndReject),
            (None, false) => return Err(SessionError::NoAnswer),
            (None, true) => None,
            (Some(a), false) => {
                if a.len() != pending.question_count {
                    return Err(SessionError::AnswerCount { given: a.len(), asked: pending.question_count });
                }
                Some(a)
            }
        };
        let Some(p) = self.norm.resolve_question(&id, answers.clone()) else {
            return Err(SessionError::NoQuestion { id });
        };
        self.adapter.question_reply(&p.native, answers.as_deref());
        Ok(())
    }

    /// Writes what the adapter queued for the agent (dropped if no agent runs).
    fn write_adapter_output(&mut self) {
        let bytes = self.adapter.take_output();
        if bytes.is_empty() {
            return;
        }
        if let Some(p) = &self.proc {
            if p.write(bytes).is_err() {
                tracing::warn!(session = %self.id, "agent input is closed");
            }
        }
    }

    fn interrupt(&mut self) -> Result<(), SessionError> {
        if self.norm.turn_id().is_none() {
            return Err(SessionError::NoTurn);
        }
        self.norm.request_interrupt();
        if !self.adapter.interrupt() {
            if let Some(p) = &self.proc {
                p.signal(libc::SIGINT);
            }
        }
        self.interrupt_deadline = Some(Instant::now() + INTERRUPT_GRACE);
        Ok(())
    }

    async fn interrupt_timed_out(&mut self) {
        self.interrupt_deadline = None;
        if self.norm.turn_id().is_some() {
            tracing::warn!(session = %self.id, "agent did not stop the turn after an interrupt; killing it");
            self.stop_process(Duration::from_millis(500), Stop::Because(AgentStopReason::InterruptTimeout)).await;
            self.start_next_turn().await.ok();
        }
    }

    /// Spawns the agent if it is not running.
    async fn ensure_process(&mut self) -> Result<(), SessionError> {
        if self.proc.is_some() {
            return Ok(());
        }
        self.norm.agent_starting();
        let session_dir = super::session_dir(&self.shared.data_dir, &self.id);
        let prepared =
            prepare_session_dir(session_dir.clone(), self.shared.data_dir.clone(), self.launch.skills.clone()).await;
        let skills_dir = match prepared {
            Ok(dir) => dir,
            Err(e) => {
                self.norm.agent_exited(ExitInfo { code: None, signal: None }, None);
                return Err(SessionError::Prepare { agent: self.launch.agent.clone(), reason: e.to_string() });
            }
        };
        let ctx = LaunchContext {
            session_id: &self.id,
            cwd: &self.launch.cwd,
            workspace: &self.shared.workspace,
            model: self.launch.model.as_deref(),
            permission_mode: self.launch.permission_mode,
            resume: self.norm.native_session_id(),
            env: &self.launch.env,
            data_dir: &self.shared.data_dir,
            session_dir: &session_dir,
            mcp_servers: &self.launch.mcp_servers,
            skills_dir: skills_dir.as_deref(),
        };
        // Whatever was queued for a process that is gone must not reach the new one.
        self.adapter.take_output();
        let spec = self.adapter.launch(&ctx);
        let cwd = self.launch.cwd.clone();
        let env = self.launch.env.clone();
        let id = self.id.to_string();
        let terminal = self.shared.terminal_log(&self.id);
        let tee: process::Tee = Arc::new(move |bytes: &[u8]| terminal.append(bytes));
        let spawned = tokio::task::spawn_blocking(move || process::spawn(&spec, &cwd, &env, &id, Some(tee))).await;
        match spawned {
            Ok(Ok(p)) => {
                self.shared.metrics.agent_processes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.shared.agent_pid(&self.id, Some(p.pid));
                self.proc = Some(p);
                self.adapter.started();
                self.norm.agent_ready();
                Ok(())
            }
            Ok(Err(e)) => {
                self.norm.agent_exited(ExitInfo { code: None, signal: None }, None);
                Err(SessionError::Spawn { agent: self.launch.agent.clone(), reason: e.to_string() })
            }
            Err(e) => Err(SessionError::Internal(e.to_string())),
        }
    }

    /// Starts the next queued message if no turn is running.
    async fn start_next_turn(&mut self) -> Result<(), SessionError> {
        if self.norm.turn_id().is_some() || self.queue.is_empty() {
            return Ok(());
        }
        if self.proc.is_some() && self.adapter.ending() {
            // It takes no more input: the turn starts once it has exited (`on_exit`).
            return Ok(());
        }
        self.ensure_process().await?;
        if let Some((turn_id, parts, trace)) = self.queue.pop_front() {
            self.adapter.user_message(&parts);
            self.shared.turn_traces.lock().unwrap_or_else(|e| e.into_inner()).insert(self.id.clone(), trace.clone());
            self.norm.begin_turn(turn_id, parts, Some(trace));
        }
        Ok(())
    }

    async fn on_proc_event(&mut self, ev: Option<ProcEvent>) {
        match ev {
            Some(ProcEvent::Lines(lines)) => {
                for line in lines {
                    self.on_line(&line);
                }
                if self.norm.turn_id().is_none() {
                    self.interrupt_deadline = None;
                    // The turn ended: start what was queued meanwhile.
                    if let Err(e) = self.start_next_turn().await {
                        tracing::warn!(session = %self.id, error = %e.detail(), "could not start a queued turn");
                    }
                }
            }
            Some(ProcEvent::Exited(info)) => self.on_exit(info).await,
            None => self.on_exit(ExitInfo { code: None, signal: None }).await,
        }
    }

    fn on_line(&mut self, line: &str) {
        if line.trim_start().starts_with('{') {
            let drafts = self.adapter.convert(line);
            self.norm.apply_line(line, drafts);
        } else {
            self.norm.log_line(line);
        }
    }

    async fn on_exit(&mut self, info: ExitInfo) {
        if self.proc.take().is_some() {
            self.shared.metrics.agent_processes.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.shared.agent_pid(&self.id, None);
        }
        self.interrupt_deadline = None;
        self.norm.agent_exited(info, None);
        // A crashed agent leaves the session idle; anything queued respawns it.
        self.flush().await;
        if let Err(e) = self.start_next_turn().await {
            tracing::warn!(session = %self.id, error = %e.detail(), "could not respawn the agent");
        }
    }

    /// Ends the process group (SIGTERM, SIGKILL after `grace`), keeping every line it wrote.
    async fn stop_process(&mut self, grace: Duration, stop: Stop) {
        let Some(mut p) = self.proc.take() else { return };
        let (lines, info) = p.terminate(grace).await;
        // A full disk has no room for what the agent had not handed over yet.
        if stop != Stop::Because(AgentStopReason::DiskFull) {
            for line in lines {
                self.on_line(&line);
            }
        }
        self.shared.metrics.agent_processes.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.shared.agent_pid(&self.id, None);
        self.interrupt_deadline = None;
        self.norm.agent_exited(info.unwrap_or(ExitInfo { code: None, signal: Some(libc::SIGKILL) }), Some(stop));
    }

    /// When the agent should be stopped for idleness, counted from now: only
    /// while it runs and the session is idle (no turn, nothing asked, nothing
    /// queued); `None` otherwise or when agents are never stopped for it.
    fn idle_since_now(&self) -> Option<Instant> {
        let limit = self.shared.agent_idle()?;
        let idle = self.proc.is_some()
            && self.norm.turn_id().is_none()
            && self.queue.is_empty()
            && self.norm.status() == SessionStatus::Idle;
        idle.then(|| Instant::now() + limit)
    }

    /// The session was idle for `--agent-idle-secs`: its agent is stopped (the
    /// session stays idle; the next message starts it again and resumes).
    async fn stop_idle_agent(&mut self) {
        self.idle_deadline = None;
        let Some(limit) = self.shared.agent_idle() else { return };
        if self.idle_since_now().is_none() {
            return;
        }
        tracing::info!(session = %self.id, idle_secs = limit.as_secs(), "stopping an idle agent");
        self.stop_process(DELETE_GRACE, Stop::Idle(limit)).await;
    }
}

/// Creates the session's own folder (0700: generated configs may hold the
/// MCP servers' secrets) and writes its skills there afresh, so every
/// spawn sees the skills' current versions. The skills folder, if any.
async fn prepare_session_dir(dir: PathBuf, data_dir: PathBuf, skills: Vec<String>) -> std::io::Result<Option<PathBuf>> {
    let r = tokio::task::spawn_blocking(move || -> std::io::Result<Option<PathBuf>> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let skills_dir = dir.join("skills");
        if !skills.is_empty() {
            crate::skills::materialize(&data_dir, &skills, &skills_dir).map_err(std::io::Error::other)?;
        }
        // An agent run as another user (`--agent-user`) owns its folder and nothing else of the data dir.
        crate::process::user::give_tree_to_agent(&dir)?;
        Ok((!skills.is_empty()).then_some(skills_dir))
    })
    .await;
    r.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

async fn next_proc_event(proc: &mut Option<Process>) -> Option<ProcEvent> {
    match proc {
        Some(p) => p.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
