//! The normalizer: turns adapter drafts into stamped events and keeps every
//! stream well formed. It assigns turn, item, permission and question ids,
//! stamps time, fills in missing lifecycle events (item.started before a lone
//! item.completed; items and turns closed on interrupt, crash, restart),
//! and keeps the session status current. No I/O: it only buffers `NewEvent`s.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tether_protocol::*;

use crate::agents::{Draft, NativeRequest};
use crate::ids::new_id;
use crate::process::ExitInfo;
use crate::store::{Effect, NewEvent};

/// How the server stopped an agent process (`agent.exited` with `expected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// For the reason it names.
    Because(AgentStopReason),
    /// The session had been idle this long.
    Idle(std::time::Duration),
}

/// Lines of non-protocol output kept for `agent.exited.stderr_tail`.
const LOG_TAIL_LINES: usize = 20;

#[derive(Debug)]
struct TurnState {
    turn_id: String,
    interrupt_requested: bool,
    error_emitted: bool,
    /// Set by [`Normalizer::fail_turn`]: how the turn ends unless it ends well.
    failure: Option<(String, String)>,
}

#[derive(Debug)]
struct OpenItem {
    item: Item,
    declined: bool,
}

/// An open permission or question, with what the adapter needs to answer it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub is_question: bool,
    pub native: NativeRequest,
    pub native_item_id: Option<String>,
    pub question_count: usize,
}

/// Static facts about the session, for `session.started`.
#[derive(Debug, Clone)]
pub struct SessionFacts {
    pub agent: String,
    pub agent_version: Option<String>,
    pub cwd: String,
    pub model: Option<String>,
    pub permission_mode: PermissionMode,
    pub capabilities: Capabilities,
    /// The store and the server start writing these events, for `session.started` and `server.restarted`.
    pub store_id: Option<String>,
    pub boot_id: Option<String>,
}

pub struct Normalizer {
    facts: SessionFacts,
    status: SessionStatus,
    native_session_id: Option<String>,
    announced: bool,
    turn: Option<TurnState>,
    /// Open items by native id, in start order.
    items: Vec<(String, OpenItem)>,
    /// Native ids completed since the current (or last) turn began: a late
    /// repeat of one (an agent's final snapshot after an interrupt) is not a new item.
    closed: std::collections::HashSet<String>,
    pending: HashMap<String, Pending>,
    /// The parent item id of items not started yet, by native id ([`Draft::ItemParent`]).
    parents: HashMap<String, String>,
    log_tail: VecDeque<String>,
    out: Vec<NewEvent>,
    /// The native line being converted, attached as `raw` to what it produces.
    raw: Option<Arc<str>>,
    clock: Clock,
    /// The last status reported per MCP server: `mcp.status` is written when it changes.
    mcp: HashMap<String, (McpServerState, Option<String>)>,
    /// What is emitted is the server's own bookkeeping (stopping, recovering
    /// after a restart), not activity: every event gets [`Effect::Quiet`].
    quiet: bool,
}

/// Event timestamps, formatted once per millisecond.
#[derive(Default)]
struct Clock {
    ms: i64,
    text: Option<Arc<str>>,
}

impl Clock {
    fn now(&mut self) -> Arc<str> {
        let ms = crate::ids::now_ms();
        match &self.text {
            Some(t) if ms == self.ms => t.clone(),
            _ => {
                let t: Arc<str> = Arc::from(crate::ids::rfc3339_ms(ms));
                self.ms = ms;
                self.text = Some(t.clone());
                t
            }
        }
    }
}

/// How a request that nobody answered is closed: denied, or rejected, by the agent.
fn withdrawn(id: String, p: &Pending) -> EventBody {
    if p.is_question {
        EventBody::QuestionResolved(QuestionResolved { question_id: id, answers: None, rejected: true })
    } else {
        EventBody::PermissionResolved(PermissionResolved {
            permission_id: id,
            decision: Decision::Deny,
            by: ResolvedBy::Agent,
        })
    }
}

/// Removes ANSI escape sequences (CSI, OSC and two-byte escapes) from a log line.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.peek() == Some(&'\\')) {
                        if c == '\x1b' {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

impl Normalizer {
    pub fn new(facts: SessionFacts, status: SessionStatus, native_session_id: Option<String>) -> Self {
        Normalizer {
            facts,
            status,
            announced: native_session_id.is_some(),
            native_session_id,
            turn: None,
            items: Vec::new(),
            closed: Default::default(),
            pending: HashMap::new(),
            parents: HashMap::new(),
            log_tail: VecDeque::new(),
            out: Vec::new(),
            raw: None,
            clock: Clock::default(),
            mcp: HashMap::new(),
            quiet: false,
        }
    }

    pub fn status(&self) -> SessionStatus {
        self.status
    }

    pub fn native_session_id(&self) -> Option<&str> {
        self.native_session_id.as_deref()
    }

    pub fn turn_id(&self) -> Option<&str> {
        self.turn.as_ref().map(|t| t.turn_id.as_str())
    }

    pub fn pending(&self, id: &str) -> Option<&Pending> {
        self.pending.get(id)
    }

    /// Takes the events produced so far.
    pub fn take(&mut self) -> Vec<NewEvent> {
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, source: Source, body: EventBody, mut effects: Vec<Effect>) {
        if self.quiet {
            effects.push(Effect::Quiet);
        }
        let raw = match source {
            Source::Agent => self.raw.clone(),
            Source::Server => None,
        };
        self.out.push(NewEvent::new(source, self.clock.now(), &body, raw, effects));
    }

    /// Sets the status, emitting `session.status` if it changed.
    pub fn set_status(&mut self, status: SessionStatus, effects: Vec<Effect>) {
        if status == self.status && effects.is_empty() {
            return;
        }
        self.emit_status(status, effects);
    }

    /// Emits `session.status` even if the status is unchanged.
    fn emit_status(&mut self, status: SessionStatus, mut effects: Vec<Effect>) {
        self.status = status;
        effects.push(Effect::Status(status));
        self.emit(Source::Server, EventBody::SessionStatus(SessionStatusData { status }), effects);
    }

    /// The status the session's state implies.
    fn sync_status(&mut self) {
        if matches!(self.status, SessionStatus::Ended | SessionStatus::Failed) {
            return;
        }
        let status = match (&self.turn, self.pending.is_empty()) {
            (Some(_), false) => SessionStatus::Waiting,
            (Some(_), true) => SessionStatus::Running,
            (None, _) => SessionStatus::Idle,
        };
        self.set_status(status, vec![]);
    }

    /// The agent process is being started (first start or respawn).
    pub fn agent_starting(&mut self) {
        // A new process reports its MCP servers afresh.
        self.mcp.clear();
        self.set_status(SessionStatus::Starting, vec![Effect::AgentLive(true)]);
    }

    /// The agent process is up.
    pub fn agent_ready(&mut self) {
        self.sync_status();
    }

    pub fn begin_turn(&mut self, turn_id: String, input: Vec<Part>, trace: Option<TurnTrace>) {
        // The first text that says something (a blank one would stick as the
        // session's first prompt and show as none).
        let text = input.iter().find_map(|p| match p {
            Part::Text { text } if !text.trim().is_empty() => Some(crate::store::summary_text(text, true)),
            _ => None,
        });
        self.emit(
            Source::Server,
            EventBody::TurnStarted(TurnStarted { turn_id: turn_id.clone(), input, trace }),
            vec![Effect::TurnOpen(turn_id.clone()), Effect::TurnStarted { text }],
        );
        self.turn = Some(TurnState { turn_id, interrupt_requested: false, error_emitted: false, failure: None });
        self.closed.clear();
        self.parents.clear();
        self.sync_status();
    }

    /// The server ends the running turn for a reason of its own: an `error`
    /// (retryable) now, and the interrupt that follows ends the turn with
    /// `stop_reason: error` and this error instead of `interrupted`.
    pub fn fail_turn(&mut self, code: &str, message: String) {
        let Some(turn) = &mut self.turn else { return };
        // Failed once (a long stall, then a full disk): said once.
        if turn.failure.is_some() {
            return;
        }
        turn.error_emitted = true;
        turn.failure = Some((code.to_string(), message.clone()));
        let body = EventBody::Error(ErrorData { code: code.to_string(), message, retryable: true, detail: None });
        self.emit(Source::Server, body, vec![]);
    }

    pub fn request_interrupt(&mut self) -> bool {
        match &mut self.turn {
            Some(t) => {
                t.interrupt_requested = true;
                true
            }
            None => false,
        }
    }

    /// A line of output that is not protocol (a banner, stderr noise, a coloured log line).
    pub fn log_line(&mut self, line: &str) {
        let text = strip_ansi(line);
        if text.trim().is_empty() {
            return;
        }
        if self.log_tail.len() == LOG_TAIL_LINES {
            self.log_tail.pop_front();
        }
        self.log_tail.push_back(text.clone());
        self.emit(Source::Agent, EventBody::AgentLog(AgentLog { stream: LogStream::Pty, text }), vec![]);
    }

    /// Applies the drafts converted from one native line (a JSON object).
    pub fn apply_line(&mut self, line: &str, drafts: Vec<Draft>) {
        // Only lines the converter understood are valid JSON to attach as `raw`.
        let understood = !drafts.iter().any(|d| matches!(d, Draft::Unparsed { .. }));
        self.raw = understood.then(|| Arc::from(line));
        for d in drafts {
            self.apply(d);
        }
        self.raw = None;
    }

    fn current_turn_id(&self) -> String {
        self.turn.as_ref().map(|t| t.turn_id.clone()).unwrap_or_default()
    }

    fn item_index(&self, native_id: &str) -> Option<usize> {
        self.items.iter().position(|(n, _)| n == native_id)
    }

    fn start_item(&mut self, native_id: String, kind: ItemKind, role: Option<Role>, tool: Option<Tool>) -> usize {
        let item = Item {
            item_id: new_id("itm"),
            turn_id: self.current_turn_id(),
            native_id: Some(native_id.clone()),
            parent_item_id: self.parents.remove(&native_id),
            kind,
            role,
            status: ItemStatus::InProgress,
            content: vec![],
            tool,
            plan: None,
        };
        let item_json = serde_json::to_string(&item).unwrap_or_default();
        let effects = vec![Effect::ItemOpen { item_id: item.item_id.clone(), item_json }];
        self.emit(Source::Agent, EventBody::ItemStarted(ItemEvent { item: item.clone() }), effects);
        self.items.push((native_id, OpenItem { item, declined: false }));
        self.items.len() - 1
    }

    fn complete_item(&mut self, index: usize, status: ItemStatus, source: Source) {
        let (native, mut open) = self.items.remove(index);
        self.closed.insert(native);
        open.item.status = if open.declined { ItemStatus::Declined } else { status };
        let mut effects = vec![Effect::ItemClose { item_id: open.item.item_id.clone() }];
        if open.item.kind == ItemKind::Message && open.item.role == Some(Role::Assistant) {
            let text = open.item.text();
            if !text.trim().is_empty() {
                effects.push(Effect::LastText(crate::store::summary_text(&text, false)));
            }
        }
        self.emit(source, EventBody::ItemCompleted(ItemEvent { item: open.item }), effects);
    }

    fn apply(&mut self, draft: Draft) {
        let native = match &draft {
            Draft::ItemStarted { native_id, .. }
            | Draft::ItemUpdated { native_id, .. }
            | Draft::ItemDelta { native_id, .. }
            | Draft::ItemCompleted { native_id, .. }
            | Draft::ToolResult { native_id, .. } => Some(native_id),
            _ => None,
        };
        if native.is_some_and(|n| self.closed.contains(n)) {
            return;
        }
        match draft {
            Draft::SessionStarted { native_session_id, model } => {
                if model.is_some() {
                    self.facts.model = model;
                }
                if self.announced && native_session_id == self.native_session_id {
                    return;
                }
                self.announced = true;
                self.native_session_id = native_session_id.clone();
                let effects = native_session_id.clone().map(Effect::NativeSession).into_iter().collect();
                let f = &self.facts;
                let body = EventBody::SessionStarted(SessionStarted {
                    agent: f.agent.clone(),
                    agent_version: f.agent_version.clone(),
                    native_session_id,
                    cwd: f.cwd.clone(),
                    model: f.model.clone(),
                    permission_mode: f.permission_mode,
                    capabilities: f.capabilities.clone(),
                    store_id: f.store_id.clone(),
                    boot_id: f.boot_id.clone(),
                });
                self.emit(Source::Agent, body, effects);
            }
            Draft::ItemParent { native_id, parent_native_id } => {
                let parent = self.item_index(&parent_native_id).map(|i| self.items[i].1.item.item_id.clone());
                if let (Some(parent), None) = (parent, self.item_index(&native_id)) {
                    self.parents.insert(native_id, parent);
                }
            }
            Draft::ItemStarted { native_id, kind, role, tool } => {
                if self.item_index(&native_id).is_none() {
                    self.start_item(native_id, kind, role, tool);
                }
            }
            Draft::ItemUpdated { native_id, kind, role, tool } => match self.item_index(&native_id) {
                Some(i) => {
                    let item = &mut self.items[i].1.item;
                    if tool.is_some() {
                        item.tool = tool;
                    }
                }
                None => {
                    self.start_item(native_id, kind, role, tool);
                }
            },
            Draft::ItemDelta { native_id, delta } => {
                let i = match self.item_index(&native_id) {
                    Some(i) => i,
                    None => {
                        let (kind, role) = match &delta {
                            Delta::Text(_) => (ItemKind::Message, Some(Role::Assistant)),
                            Delta::Reasoning(_) => (ItemKind::Reasoning, None),
                            Delta::Output(_) | Delta::Arguments(_) => (ItemKind::ToolCall, None),
                        };
                        self.start_item(native_id, kind, role, None)
                    }
                };
                let item = &mut self.items[i].1.item;
                match &delta {
                    Delta::Text(t) | Delta::Reasoning(t) => match item.content.last_mut() {
                        Some(Part::Text { text }) => text.push_str(t),
                        _ => item.content.push(Part::text(t.clone())),
                    },
                    Delta::Output(o) => {
                        if let Some(tool) = &mut item.tool {
                            tool.output.get_or_insert_with(String::new).push_str(o);
                        }
                    }
                    Delta::Arguments(_) => {}
                }
                let item_id = item.item_id.clone();
                self.emit(Source::Agent, EventBody::ItemDelta(ItemDelta { item_id, delta }), vec![]);
            }
            Draft::ItemCompleted { native_id, kind, role, status, content, tool, plan } => {
                let i = match self.item_index(&native_id) {
                    Some(i) => i,
                    None => self.start_item(native_id, kind, role, tool.clone()),
                };
                let item = &mut self.items[i].1.item;
                if !content.is_empty() {
                    item.content = content;
                }
                if let Some(mut tool) = tool {
                    if let Some(old) = item.tool.take() {
                        tool.output = tool.output.or(old.output);
                    }
                    item.tool = Some(tool);
                }
                if plan.is_some() {
                    item.plan = plan;
                }
                self.complete_item(i, status, Source::Agent);
            }
            Draft::ToolResult { native_id, output, is_error, exit_code } => {
                let i = match self.item_index(&native_id) {
                    Some(i) => i,
                    None => {
                        let tool = Tool {
                            name: "unknown".into(),
                            kind: ToolKind::Other,
                            server: None,
                            input: Value::Null,
                            output: None,
                            exit_code: None,
                            diff: None,
                            paths: vec![],
                        };
                        self.start_item(native_id, ItemKind::ToolCall, None, Some(tool))
                    }
                };
                if let Some(tool) = &mut self.items[i].1.item.tool {
                    tool.output = Some(output);
                    tool.exit_code = exit_code.or(tool.exit_code);
                }
                let status = if is_error { ItemStatus::Failed } else { ItemStatus::Completed };
                self.complete_item(i, status, Source::Agent);
            }
            Draft::TurnCompleted { stop_reason, usage, error } => {
                let interrupted = self.turn.as_ref().is_some_and(|t| t.interrupt_requested);
                let stop_reason = if interrupted && stop_reason != StopReason::EndTurn {
                    StopReason::Interrupted
                } else {
                    stop_reason
                };
                self.finish_turn(Source::Agent, stop_reason, usage, error);
                self.sync_status();
            }
            Draft::PermissionRequested { native, native_item_id, action, title, command, path, diff, input } => {
                let permission_id = new_id("prm");
                let item_id = native_item_id
                    .as_deref()
                    .and_then(|n| self.item_index(n))
                    .map(|i| self.items[i].1.item.item_id.clone());
                self.pending.insert(
                    permission_id.clone(),
                    Pending { is_question: false, native, native_item_id, question_count: 0 },
                );
                let body = EventBody::PermissionRequested(PermissionRequested {
                    permission_id,
                    item_id,
                    action,
                    title,
                    command,
                    path,
                    diff,
                    input,
                    options: vec![Decision::AllowOnce, Decision::AllowAlways, Decision::Deny],
                });
                self.emit(Source::Agent, body, vec![]);
                self.sync_status();
            }
            Draft::QuestionRequested { native, native_item_id, questions } => {
                let question_id = new_id("qst");
                self.pending.insert(
                    question_id.clone(),
                    Pending { is_question: true, native, native_item_id, question_count: questions.len() },
                );
                self.emit(
                    Source::Agent,
                    EventBody::QuestionRequested(QuestionRequested { question_id, questions }),
                    vec![],
                );
                self.sync_status();
            }
            Draft::RequestCancelled { native_request_id } => {
                let id = self
                    .pending
                    .iter()
                    .find(|(_, p)| p.native.request_id() == native_request_id)
                    .map(|(id, _)| id.clone());
                if let Some(id) = id {
                    if let Some(p) = self.pending.remove(&id) {
                        self.emit(Source::Agent, withdrawn(id, &p), vec![]);
                        self.sync_status();
                    }
                }
            }
            Draft::Usage(u) => self.emit(Source::Agent, EventBody::UsageUpdated(u), vec![]),
            Draft::Error { code, message, retryable } => {
                if let Some(t) = &mut self.turn {
                    t.error_emitted = true;
                }
                self.emit(
                    Source::Agent,
                    EventBody::Error(ErrorData { code, message, retryable, detail: None }),
                    vec![],
                );
            }
            Draft::Log { stream, text } => {
                self.emit(Source::Agent, EventBody::AgentLog(AgentLog { stream, text }), vec![])
            }
            Draft::Unparsed { line, error } => {
                self.emit(Source::Agent, EventBody::AgentUnparsed(AgentUnparsed { line, error }), vec![])
            }
            Draft::McpStatus { server, status, error } => {
                let now = (status, error.clone());
                if self.mcp.get(&server) != Some(&now) {
                    self.mcp.insert(server.clone(), now);
                    self.emit(Source::Agent, EventBody::McpStatus(McpStatus { server, status, error }), vec![]);
                }
            }
        }
    }

    /// Closes the open turn (if any): open items, open requests, then `turn.completed`.
    fn finish_turn(
        &mut self,
        source: Source,
        mut stop_reason: StopReason,
        usage: Option<Usage>,
        mut error: Option<(String, String)>,
    ) {
        // A turn the server failed ends with that failure, unless it ended well anyway.
        if let Some(failure) = self.turn.as_mut().and_then(|t| t.failure.take()) {
            if stop_reason != StopReason::EndTurn {
                stop_reason = StopReason::Error;
                error = Some(failure);
            }
        }
        let item_status = match stop_reason {
            StopReason::Interrupted => ItemStatus::Cancelled,
            StopReason::Error => ItemStatus::Failed,
            _ => ItemStatus::Completed,
        };
        while !self.items.is_empty() {
            self.complete_item(0, item_status, Source::Server);
        }
        let mut pending: Vec<(String, Pending)> = self.pending.drain().collect();
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, p) in pending {
            self.emit(Source::Server, withdrawn(id, &p), vec![]);
        }
        let Some(turn) = self.turn.take() else { return };
        let error = error.map(|(code, message)| TurnError { code, message });
        if stop_reason == StopReason::Error && !turn.error_emitted {
            let (code, message) = match &error {
                Some(e) => (e.code.clone(), e.message.clone()),
                None => ("turn_failed".to_string(), "the turn failed".to_string()),
            };
            self.emit(
                Source::Server,
                EventBody::Error(ErrorData { code, message, retryable: false, detail: None }),
                vec![],
            );
        }
        let mut effects = vec![Effect::TurnClose];
        if let Some(u) = &usage {
            effects.push(Effect::Usage {
                input_tokens: u.input_tokens.unwrap_or(0),
                output_tokens: u.output_tokens.unwrap_or(0),
                cost_usd: u.cost_usd,
            });
        }
        let body = EventBody::TurnCompleted(TurnCompleted { turn_id: turn.turn_id, stop_reason, usage, error });
        self.emit(source, body, effects);
    }

    /// The client answered a permission request. Returns what the adapter needs to reply.
    pub fn resolve_permission(&mut self, id: &str, decision: Decision) -> Option<Pending> {
        if self.pending.get(id).is_none_or(|p| p.is_question) {
            return None;
        }
        let p = self.pending.remove(id)?;
        if decision == Decision::Deny {
            if let Some(i) = p.native_item_id.as_deref().and_then(|n| self.item_index(n)) {
                self.items[i].1.declined = true;
            }
        }
        let body = EventBody::PermissionResolved(PermissionResolved {
            permission_id: id.to_string(),
            decision,
            by: ResolvedBy::Client,
        });
        self.emit(Source::Server, body, vec![]);
        self.sync_status();
        Some(p)
    }

    /// The client answered (or rejected, with `None`) a question.
    pub fn resolve_question(&mut self, id: &str, answers: Option<Vec<Vec<String>>>) -> Option<Pending> {
        if self.pending.get(id).is_none_or(|p| !p.is_question) {
            return None;
        }
        let p = self.pending.remove(id)?;
        let rejected = answers.is_none();
        let body = EventBody::QuestionResolved(QuestionResolved { question_id: id.to_string(), answers, rejected });
        self.emit(Source::Server, body, vec![]);
        self.sync_status();
        Some(p)
    }

    /// The agent process ended. `expected` when the server asked it to stop.
    /// The agent process ended: by itself (`stop: None`) or stopped by the server.
    pub fn agent_exited(&mut self, info: ExitInfo, stop: Option<Stop>) {
        let expected = stop.is_some();
        if self.turn.is_some() || !self.items.is_empty() {
            let interrupted = expected || self.turn.as_ref().is_some_and(|t| t.interrupt_requested);
            if interrupted {
                self.finish_turn(Source::Server, StopReason::Interrupted, None, None);
            } else {
                let message = match (info.code, info.signal) {
                    (Some(c), _) => format!("the agent exited with code {c} during the turn"),
                    (None, Some(s)) => format!("the agent was killed by signal {s} during the turn"),
                    (None, None) => "the agent exited during the turn".to_string(),
                };
                self.finish_turn(Source::Server, StopReason::Error, None, Some(("agent_exited".into(), message)));
            }
        }
        let tail: Vec<String> = self.log_tail.drain(..).collect();
        let stderr_tail = (!tail.is_empty()).then(|| tail.join("\n"));
        let (reason, idle_ms) = match stop {
            Some(Stop::Idle(idle)) => {
                (Some(AgentStopReason::Idle), Some(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX)))
            }
            Some(Stop::Because(reason)) => (Some(reason), None),
            None => (None, None),
        };
        let body = EventBody::AgentExited(AgentExited {
            exit_code: info.code,
            signal: info.signal,
            stderr_tail,
            expected,
            reason,
            idle_ms,
        });
        self.emit(Source::Server, body, vec![Effect::AgentLive(false)]);
        self.sync_status();
    }

    /// The server is stopping: close the turn as interrupted by the server.
    pub fn server_stopping(&mut self) {
        // Everything from here on (the turn closed, the agent stopped) is the server's doing.
        self.quiet = true;
        if self.turn.is_some() {
            self.finish_turn(
                Source::Server,
                StopReason::Error,
                None,
                Some(("server_shutdown".into(), "the server shut down during the turn".into())),
            );
            self.sync_status();
        }
    }

    /// Reopens the state a crashed server left: open items (as JSON) and the open turn.
    pub fn restore_open(&mut self, turn_id: Option<String>, items: &[String]) {
        if let Some(turn_id) = turn_id {
            self.turn = Some(TurnState { turn_id, interrupt_requested: false, error_emitted: false, failure: None });
        }
        for json in items {
            if let Ok(item) = serde_json::from_str::<Item>(json) {
                let native = item.native_id.clone().unwrap_or_else(|| item.item_id.clone());
                self.items.push((native, OpenItem { item, declined: false }));
            }
        }
    }

    /// After a crash of the server: close what was open, then `server.restarted`, idle.
    pub fn recover_after_restart(&mut self) {
        self.quiet = true;
        if self.turn.is_some() || !self.items.is_empty() {
            self.finish_turn(
                Source::Server,
                StopReason::Error,
                None,
                Some(("server_restarted".into(), "the server restarted during the turn".into())),
            );
        }
        self.emit(
            Source::Server,
            EventBody::ServerRestarted(ServerRestarted {
                store_id: self.facts.store_id.clone(),
                boot_id: self.facts.boot_id.clone(),
            }),
            vec![Effect::AgentLive(false)],
        );
        self.emit_status(SessionStatus::Idle, vec![]);
        self.quiet = false;
    }

    /// The server was frozen with this session's agent running: `server.resumed`.
    pub fn resumed(&mut self, resumed: ServerResumed) {
        self.emit(Source::Server, EventBody::ServerResumed(resumed), vec![Effect::Quiet]);
    }

    /// Keep-awake released or took the Sprite again: `server.keep_awake`.
    pub fn keep_awake(&mut self, data: tether_protocol::ServerKeepAwake) {
        self.emit(Source::Server, EventBody::ServerKeepAwake(data), vec![Effect::Quiet]);
    }

    /// A port the agent opened or closed (`port.opened`, `port.closed`);
    /// false, and nothing written, once the session has ended.
    pub fn port(&mut self, body: EventBody) -> bool {
        if matches!(self.status, SessionStatus::Ended | SessionStatus::Failed) {
            return false;
        }
        self.emit(Source::Server, body, vec![]);
        true
    }

    /// The session is over for good: `session.status` ended, then `session.ended` (the last event).
    pub fn end(&mut self, reason: EndReason, message: Option<String>) {
        let status = match reason {
            EndReason::Terminated => SessionStatus::Ended,
            EndReason::Failed => SessionStatus::Failed,
        };
        self.set_status(status, vec![]);
        self.emit(Source::Server, EventBody::SessionEnded(SessionEnded { reason, message }), vec![]);
    }
}

#[cfg(test)]
mod tests;
