//! Codex app-server notifications and requests → event drafts, and the
//! replies due at once ([`Converted`]). Pure: it writes nothing to codex; the
//! only state is what the protocol needs (file changes by item, for the diff
//! of an approval request; the turn's usage so far; open MCP calls).

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Value};
use tether_protocol::{
    Delta, ItemKind, ItemStatus, McpServerState, Part, PermissionAction, PlanEntry, PlanStatus, Question,
    QuestionOption, Role, StopReason, Tool, ToolKind, Usage,
};

use super::wire::*;
use crate::agents::lenient::{decode, Lenient};
use crate::agents::{Draft, NativeRequest};

#[derive(Debug, Default)]
pub struct CodexConverter {
    file_changes: HashMap<String, Vec<FileChange>>,
    turn_usage: Usage,
    /// Each `turn/plan/updated` is a plan item of its own.
    plan_updates: u64,
    /// MCP tool calls started and not completed: (item id, server, tool), to
    /// join an approval elicitation (which names no item) to its call.
    open_mcp_calls: Vec<(String, String, String)>,
    /// MCP tool calls whose approval the client declined (codex reports them failed).
    declined_mcp_calls: Vec<String>,
    /// The permission mode accepts file edits: their approvals are answered at once.
    accept_edits: bool,
    /// The session's thread: notifications of any other are a subagent's.
    main_thread: Option<String>,
    /// A subagent's thread → the `spawnAgent` call (item id) that started it.
    subagents: HashMap<String, String>,
    /// The last `spawnAgent` call seen: the parent of a subagent whose
    /// thread its call has not named yet.
    last_spawn: Option<String>,
}

fn add(a: &mut Option<u64>, b: u64) {
    *a = Some(a.unwrap_or(0) + b);
}

fn status_of(status: &str) -> ItemStatus {
    match status {
        "failed" => ItemStatus::Failed,
        "declined" => ItemStatus::Declined,
        "inProgress" => ItemStatus::InProgress,
        _ => ItemStatus::Completed,
    }
}

fn summary_text(parts: &[Lenient<TextPart>]) -> String {
    parts.iter().filter_map(|p| p.get()?.text()).collect::<Vec<_>>().join("\n")
}

fn diff_of(changes: &[FileChange]) -> Option<String> {
    let diff: String = changes.iter().map(|c| &*c.diff).collect::<Vec<_>>().join("\n");
    (!diff.is_empty()).then_some(diff)
}

/// The item a ThreadItem is, without its final status.
fn describe(item: &ThreadItem) -> Option<(String, ItemKind, Option<Role>, Option<Tool>)> {
    let tool = |name: &str, kind, input: Value| Tool {
        name: name.to_string(),
        kind,
        server: None,
        input,
        output: None,
        exit_code: None,
        diff: None,
        paths: vec![],
    };
    Some(match item {
        ThreadItem::AgentMessage { id, .. } => (id.clone(), ItemKind::Message, Some(Role::Assistant), None),
        ThreadItem::Reasoning { id, .. } => (id.clone(), ItemKind::Reasoning, None, None),
        ThreadItem::CommandExecution { id, command, cwd, aggregated_output, exit_code, .. } => {
            let mut t = tool("shell", ToolKind::Shell, json!({"command": command, "cwd": cwd}));
            t.output = aggregated_output.clone();
            t.exit_code = *exit_code;
            (id.clone(), ItemKind::ToolCall, None, Some(t))
        }
        ThreadItem::FileChange { id, changes, .. } => {
            let mut t = tool(
                "apply_patch",
                ToolKind::FileEdit,
                json!({"changes": changes.iter().map(|c| &c.path).collect::<Vec<_>>()}),
            );
            t.paths = changes.iter().map(|c| c.path.clone()).collect();
            t.diff = diff_of(changes);
            (id.clone(), ItemKind::ToolCall, None, Some(t))
        }
        ThreadItem::McpToolCall { id, server, tool: name, arguments, result, error, .. } => {
            let mut t = tool(name, ToolKind::Mcp, arguments.clone());
            t.server = Some(server.clone());
            t.output = result.as_ref().or(error.as_ref()).map(mcp_output);
            (id.clone(), ItemKind::ToolCall, None, Some(t))
        }
        ThreadItem::WebSearch { id, query } => {
            (id.clone(), ItemKind::ToolCall, None, Some(tool("web_search", ToolKind::Web, json!({"query": query}))))
        }
        ThreadItem::Plan { id, .. } => (id.clone(), ItemKind::Plan, None, None),
        // A subagent started: a `task` item, as Claude's Agent call, open until the
        // subagent ends (see `item_completed`); its other activities are not items.
        ThreadItem::SubAgentActivity { id, agent_path, kind, .. } if kind == "started" => {
            (id.clone(), ItemKind::ToolCall, None, Some(spawn_tool(agent_path)))
        }
        ThreadItem::SubAgentActivity { .. } => return None,
        ThreadItem::CollabAgentToolCall { id, tool: name, prompt, receiver_thread_ids, agents_states, .. } => {
            // `spawnAgent` starts a subagent (a `task`, as Claude's Agent call); the others talk to one.
            let kind = if name == "spawnAgent" { ToolKind::Task } else { ToolKind::Other };
            let mut t = tool(name, kind, json!({"prompt": prompt, "receivers": receiver_thread_ids}));
            let said: Vec<&str> = agents_states.values().filter_map(|s| s.get()?.message.as_deref()).collect();
            t.output = (!said.is_empty()).then(|| said.join("\n"));
            (id.clone(), ItemKind::ToolCall, None, Some(t))
        }
        ThreadItem::UserMessage { .. } | ThreadItem::Other => return None,
    })
}

/// The `task` tool of a subagent Codex started (multi-agent v2).
fn spawn_tool(agent_path: &str) -> Tool {
    Tool {
        name: "spawn_agent".to_string(),
        kind: ToolKind::Task,
        server: None,
        input: json!({"agent": agent_path}),
        output: None,
        exit_code: None,
        diff: None,
        paths: vec![],
    }
}

/// The text an MCP tool returned (its text content blocks), else its JSON.
fn mcp_output(v: &Value) -> String {
    if let Ok(s) = String::deserialize(v) {
        return s;
    }
    let r: McpResult = decode(v);
    let texts: Vec<String> = r
        .content
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|b| b.into_inner()?.text.into_inner())
        .collect();
    if texts.is_empty() {
        r.message.into_inner().unwrap_or_else(|| v.to_string())
    } else {
        texts.join("\n")
    }
}

impl CodexConverter {
    pub fn new() -> Self {
        Self::default()
    }

    /// File-change approvals are accepted without asking (`accept_edits`).
    pub fn set_accept_edits(&mut self, accept: bool) {
        self.accept_edits = accept;
    }

    /// The session's thread (notifications of any other thread are a subagent's).
    pub fn set_thread(&mut self, thread: Option<String>) {
        self.main_thread = thread;
    }

    /// The `spawnAgent` call a subagent's notification belongs under, if
    /// `params` are of a thread other than the session's; `Some(None)` when
    /// no spawn is known.
    fn subagent_of(&self, params: &Value) -> Option<Option<String>> {
        let thread = decode::<ThreadRef>(params).thread_id.into_inner()?;
        let main = self.main_thread.as_deref()?;
        (thread != main).then(|| self.subagents.get(&thread).cloned().or_else(|| self.last_spawn.clone()))
    }

    /// A notification (a line with `method` and no `id`).
    pub fn notification(&mut self, method: &str, params: Value, line: &str) -> Vec<Draft> {
        if let Some(spawn) = self.subagent_of(&params) {
            return self.subagent_notification(method, params, line, spawn);
        }
        self.thread_notification(method, params, line)
    }

    /// A subagent's notification: its items are the session's, under the
    /// call that spawned it; its turns, usage and errors are its own.
    fn subagent_notification(&mut self, method: &str, params: Value, line: &str, spawn: Option<String>) -> Vec<Draft> {
        match method {
            "item/started"
            | "item/completed"
            | "item/agentMessage/delta"
            | "item/reasoning/summaryTextDelta"
            | "item/reasoning/textDelta"
            | "item/commandExecution/outputDelta"
            | "serverRequest/resolved" => {
                let drafts = self.thread_notification(method, params, line);
                let Some(parent) = spawn else { return drafts };
                let mut out = Vec::with_capacity(drafts.len() + 1);
                for draft in drafts {
                    if let Draft::ItemStarted { native_id, .. } = &draft {
                        out.push(Draft::ItemParent { native_id: native_id.clone(), parent_native_id: parent.clone() });
                    }
                    out.push(draft);
                }
                out
            }
            _ => vec![],
        }
    }

    fn thread_notification(&mut self, method: &str, params: Value, line: &str) -> Vec<Draft> {
        let unparsed = |e: serde_json::Error| vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }];
        match method {
            "item/started" => match serde_json::from_value::<ItemNotification>(params) {
                Ok(n) => {
                    if let ThreadItem::FileChange { id, changes, .. } = &n.item {
                        self.file_changes.insert(id.clone(), changes.clone());
                    }
                    if let ThreadItem::McpToolCall { id, server, tool, .. } = &n.item {
                        self.open_mcp_calls.push((id.clone(), server.clone(), tool.clone()));
                    }
                    self.spawned(&n.item);
                    describe(&n.item)
                        .map(|(native_id, kind, role, tool)| vec![Draft::ItemStarted { native_id, kind, role, tool }])
                        .unwrap_or_default()
                }
                Err(e) => unparsed(e),
            },
            "item/completed" => match serde_json::from_value::<ItemNotification>(params) {
                Ok(n) => self.item_completed(n.item),
                Err(e) => unparsed(e),
            },
            "item/agentMessage/delta"
            | "item/reasoning/summaryTextDelta"
            | "item/reasoning/textDelta"
            | "item/commandExecution/outputDelta" => match serde_json::from_value::<DeltaNotification>(params) {
                Ok(d) => {
                    let delta = match method {
                        "item/agentMessage/delta" => Delta::Text(d.delta),
                        "item/commandExecution/outputDelta" => Delta::Output(d.delta),
                        _ => Delta::Reasoning(d.delta),
                    };
                    vec![Draft::ItemDelta { native_id: d.item_id, delta }]
                }
                Err(e) => unparsed(e),
            },
            "thread/tokenUsage/updated" => match serde_json::from_value::<TokenUsageNotification>(params) {
                Ok(n) => {
                    let last = n.token_usage.last;
                    let u = &mut self.turn_usage;
                    add(&mut u.input_tokens, last.input_tokens);
                    add(&mut u.cached_input_tokens, last.cached_input_tokens);
                    add(&mut u.output_tokens, last.output_tokens);
                    add(&mut u.reasoning_tokens, last.reasoning_output_tokens);
                    vec![Draft::Usage(Usage {
                        input_tokens: Some(last.input_tokens),
                        output_tokens: Some(last.output_tokens),
                        cached_input_tokens: Some(last.cached_input_tokens),
                        reasoning_tokens: Some(last.reasoning_output_tokens),
                        cost_usd: None,
                    })]
                }
                Err(e) => unparsed(e),
            },
            "turn/started" => {
                self.turn_usage = Usage::default();
                vec![]
            }
            // Codex closed one of its requests (answered, or dropped with its turn).
            "serverRequest/resolved" => match decode::<RequestResolved>(&params).request_id.into_inner() {
                Some(id) => vec![Draft::RequestCancelled { native_request_id: id.to_string() }],
                None => vec![],
            },
            "turn/completed" => match serde_json::from_value::<TurnNotification>(params) {
                Ok(n) => {
                    let stop_reason = match &*n.turn.status {
                        "interrupted" => StopReason::Interrupted,
                        "failed" => StopReason::Error,
                        _ => StopReason::EndTurn,
                    };
                    let error = n.turn.error.filter(|_| stop_reason == StopReason::Error).map(|e| {
                        (
                            "turn_failed".to_string(),
                            e.additional_details.map(|d| format!("{}: {d}", e.message)).unwrap_or(e.message),
                        )
                    });
                    let usage = std::mem::take(&mut self.turn_usage);
                    let usage = (usage != Usage::default()).then_some(usage);
                    vec![Draft::TurnCompleted { stop_reason, usage, error }]
                }
                Err(e) => unparsed(e),
            },
            "error" => match serde_json::from_value::<ErrorNotification>(params) {
                Ok(n) => vec![Draft::Error {
                    code: if n.will_retry { "model_retry".into() } else { "model_error".into() },
                    message: n
                        .error
                        .additional_details
                        .map(|d| format!("{}: {d}", n.error.message))
                        .unwrap_or(n.error.message),
                    retryable: n.will_retry,
                }],
                Err(e) => unparsed(e),
            },
            "turn/plan/updated" => match serde_json::from_value::<PlanNotification>(params) {
                Ok(n) => {
                    self.plan_updates += 1;
                    let plan = n
                        .plan
                        .into_iter()
                        .map(|s| PlanEntry {
                            text: s.step,
                            status: match &*s.status {
                                "completed" => PlanStatus::Completed,
                                "inProgress" | "in_progress" => PlanStatus::InProgress,
                                _ => PlanStatus::Pending,
                            },
                        })
                        .collect();
                    vec![Draft::ItemCompleted {
                        native_id: format!("plan:{}:{}", n.turn_id, self.plan_updates),
                        kind: ItemKind::Plan,
                        role: None,
                        status: ItemStatus::Completed,
                        content: vec![],
                        tool: None,
                        plan: Some(plan),
                    }]
                }
                Err(e) => unparsed(e),
            },
            "mcpServer/startupStatus/updated" => {
                let s: McpStartupStatus = decode(&params);
                let name = s.name.into_inner().unwrap_or_default();
                let error = s.error.into_inner();
                let status = match s.status.get().map(String::as_str) {
                    Some("starting") => McpServerState::Starting,
                    Some("ready") => McpServerState::Connected,
                    Some("cancelled") => McpServerState::Disabled,
                    _ => McpServerState::Failed,
                };
                vec![Draft::McpStatus { server: name, status, error }]
            }
            // Lifecycle and housekeeping that the universal stream shows in other ways.
            m if IGNORED.contains(&m)
                || m.starts_with("account/")
                || m.starts_with("mcpServer/")
                || m.starts_with("thread/realtime/") =>
            {
                vec![]
            }
            "warning" | "configWarning" | "deprecationNotice" | "guardianWarning" => {
                let text = decode::<Warning>(&params).message.into_inner().unwrap_or_else(|| params.to_string());
                vec![Draft::Log { stream: tether_protocol::LogStream::Stderr, text }]
            }
            _ => vec![Draft::Unparsed { line: line.to_string(), error: format!("unknown notification {method}") }],
        }
    }

    /// The client declined the approval of the MCP tool call `item_id`.
    pub fn mcp_call_declined(&mut self, item_id: &str) {
        self.declined_mcp_calls.push(item_id.to_string());
    }

    /// A `spawnAgent` call: the parent of the subagents it names (and, until
    /// it names them, of any subagent).
    fn spawned(&mut self, item: &ThreadItem) {
        match item {
            ThreadItem::CollabAgentToolCall { id, tool, receiver_thread_ids, .. } if tool == "spawnAgent" => {
                self.last_spawn = Some(id.clone());
                for thread in receiver_thread_ids {
                    self.subagents.insert(thread.clone(), id.clone());
                }
            }
            ThreadItem::SubAgentActivity { id, agent_thread_id, kind, .. } if kind == "started" => {
                self.last_spawn = Some(id.clone());
                self.subagents.insert(agent_thread_id.clone(), id.clone());
            }
            _ => {}
        }
    }

    fn item_completed(&mut self, item: ThreadItem) -> Vec<Draft> {
        self.spawned(&item);
        if let ThreadItem::SubAgentActivity { agent_thread_id, agent_path, kind, .. } = &item {
            // Codex completes a subagent's `started` activity at once: its item stays open
            // while the subagent runs (its items are nested under it), and ends with it.
            let status = match kind.as_str() {
                "completed" => ItemStatus::Completed,
                "interrupted" => ItemStatus::Cancelled,
                _ => return vec![],
            };
            let Some(spawn) = self.subagents.get(agent_thread_id) else { return vec![] };
            return vec![Draft::ItemCompleted {
                native_id: spawn.clone(),
                kind: ItemKind::ToolCall,
                role: None,
                status,
                content: vec![],
                tool: Some(spawn_tool(agent_path)),
                plan: None,
            }];
        }
        let mut status = match &item {
            ThreadItem::CommandExecution { status, .. }
            | ThreadItem::FileChange { status, .. }
            | ThreadItem::McpToolCall { status, .. }
            | ThreadItem::CollabAgentToolCall { status, .. } => status_of(status),
            _ => ItemStatus::Completed,
        };
        if let ThreadItem::McpToolCall { id, .. } = &item {
            self.open_mcp_calls.retain(|(open, _, _)| open != id);
            if let Some(at) = self.declined_mcp_calls.iter().position(|d| d == id) {
                self.declined_mcp_calls.remove(at);
                // Codex ends a declined call as failed ("user rejected MCP tool call").
                if status == ItemStatus::Failed {
                    status = ItemStatus::Declined;
                }
            }
        }
        let content = match &item {
            ThreadItem::AgentMessage { text, .. } => vec![Part::text(text.clone())],
            ThreadItem::Reasoning { summary, content, .. } => {
                let text = if summary.is_empty() { summary_text(content) } else { summary_text(summary) };
                if text.is_empty() {
                    vec![]
                } else {
                    vec![Part::text(text)]
                }
            }
            _ => vec![],
        };
        let plan = match &item {
            ThreadItem::Plan { text, .. } => Some(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| PlanEntry { text: l.trim().to_string(), status: PlanStatus::Pending })
                    .collect(),
            ),
            _ => None,
        };
        if let ThreadItem::FileChange { id, .. } = &item {
            self.file_changes.remove(id);
        }
        match describe(&item) {
            Some((native_id, kind, role, tool)) => {
                vec![Draft::ItemCompleted { native_id, kind, role, status, content, tool, plan }]
            }
            None => vec![],
        }
    }

    /// A request from the app-server (a line with `id` and `method`): the
    /// drafts it makes, and the reply when tether answers it at once (a
    /// request it does not handle, a file change accepted by the mode).
    pub fn server_request(&mut self, id: Value, method: &str, params: Value, line: &str) -> Converted {
        if method == "item/fileChange/requestApproval" && self.accept_edits {
            return Converted::reply(Reply::Decision { id, decision: "accept" });
        }
        match self.request_drafts(id.clone(), method, params) {
            Some(drafts) => Converted { drafts, reply: None },
            None => Converted {
                drafts: vec![Draft::Unparsed { line: line.to_string(), error: format!("unhandled request {method}") }],
                reply: Some(Reply::Unhandled { id, method: method.to_string() }),
            },
        }
    }

    /// The drafts of a request tether handles; `None` when it does not.
    fn request_drafts(&mut self, id: Value, method: &str, params: Value) -> Option<Vec<Draft>> {
        let native = |kind| NativeRequest::Codex(ServerRequest { id: id.clone(), method: method.to_string(), kind });
        match method {
            "item/commandExecution/requestApproval" | "execCommandApproval" => {
                let a: CommandApproval = serde_json::from_value(params.clone()).ok()?;
                let command = a.command;
                Some(vec![Draft::PermissionRequested {
                    native: native(RequestKind::Approval),
                    native_item_id: Some(a.item_id),
                    action: PermissionAction::Shell,
                    title: command.as_deref().map(|c| format!("Run `{c}`")).unwrap_or_else(|| "Run a command".into()),
                    command,
                    path: a.cwd,
                    diff: None,
                    input: Some(params),
                }])
            }
            "item/fileChange/requestApproval" | "applyPatchApproval" => {
                let a: FileChangeApproval = serde_json::from_value(params.clone()).ok()?;
                let changes = self.file_changes.get(&a.item_id).cloned().unwrap_or_default();
                let path = changes.first().map(|c| c.path.clone());
                Some(vec![Draft::PermissionRequested {
                    native: native(RequestKind::Approval),
                    native_item_id: Some(a.item_id),
                    action: PermissionAction::FileEdit,
                    title: match &path {
                        Some(p) if changes.len() == 1 => format!("Edit {p}"),
                        _ => format!("Edit {} files", changes.len()),
                    },
                    command: None,
                    path,
                    diff: diff_of(&changes),
                    input: Some(params),
                }])
            }
            "mcpServer/elicitation/request" => {
                let e: ElicitationRequest = decode(&params);
                let server = e.server_name.into_inner().unwrap_or_else(|| "?".into());
                let message = e.message.into_inner().unwrap_or_default();
                let meta = e.meta.into_inner().unwrap_or_default();
                // Codex asks to approve an MCP tool call with an elicitation of its own,
                // marked in `_meta` and naming the tool (not the item: the open call of
                // that tool on that server is the one).
                if meta.codex_approval_kind.get().map(String::as_str) == Some("mcp_tool_call") {
                    let tool = meta.tool_name.into_inner().unwrap_or_else(|| "?".into());
                    let item_id = self
                        .open_mcp_calls
                        .iter()
                        .rfind(|(_, s, t)| *s == server && *t == tool)
                        .map(|(id, _, _)| id.clone());
                    let kind =
                        RequestKind::Elicitation { tool_call: true, item_id: item_id.clone(), persist: meta.persist };
                    return Some(vec![Draft::PermissionRequested {
                        native: native(kind),
                        native_item_id: item_id,
                        action: PermissionAction::Mcp,
                        title: format!("Call {tool} on the MCP server {server}"),
                        command: None,
                        path: None,
                        diff: None,
                        input: Some(meta.tool_params.unwrap_or_else(|| json!({}))),
                    }]);
                }
                let kind = RequestKind::Elicitation { tool_call: false, item_id: None, persist: Lenient::default() };
                Some(vec![Draft::PermissionRequested {
                    native: native(kind),
                    native_item_id: None,
                    action: PermissionAction::Mcp,
                    title: if message.is_empty() { format!("Allow the MCP server {server}") } else { message },
                    command: None,
                    path: None,
                    diff: None,
                    input: Some(params),
                }])
            }
            "item/tool/requestUserInput" => {
                let r: UserInputRequest = serde_json::from_value(params).ok()?;
                let question_ids: Vec<String> = r.questions.iter().map(|q| q.id.clone()).collect();
                let questions = r
                    .questions
                    .into_iter()
                    .map(|q| Question {
                        prompt: q.question,
                        header: q.header,
                        options: q
                            .options
                            .unwrap_or_default()
                            .into_iter()
                            .map(|o| QuestionOption { label: o.label, description: o.description })
                            .collect(),
                        multi_select: false,
                    })
                    .collect();
                Some(vec![Draft::QuestionRequested {
                    native: native(RequestKind::UserInput { question_ids }),
                    native_item_id: r.item_id,
                    questions,
                }])
            }
            _ => None,
        }
    }
}

/// What one request of codex's converts to.
#[derive(Debug, Default)]
pub struct Converted {
    pub drafts: Vec<Draft>,
    /// The answer to send codex now, if tether answers it without asking.
    pub reply: Option<Reply>,
}

impl Converted {
    fn reply(reply: Reply) -> Self {
        Converted { drafts: vec![], reply: Some(reply) }
    }
}

/// Notifications with nothing to add to the universal stream.
const IGNORED: &[&str] = &[
    "thread/started",
    "thread/status/changed",
    "thread/readState/changed",
    "thread/name/updated",
    "thread/settings/updated",
    "thread/queue/changed",
    "thread/compacted",
    "turn/diff/updated",
    "item/plan/delta",
    "item/reasoning/summaryPartAdded",
    "item/fileChange/outputDelta",
    "item/fileChange/patchUpdated",
    "item/commandExecution/terminalInteraction",
    "item/autoApprovalReview/started",
    "item/autoApprovalReview/completed",
    "item/mcpToolCall/progress",
    "thread/goal/updated",
    "thread/goal/cleared",
    "thread/section/changed",
    "thread/environment/connected",
    "thread/environment/disconnected",
    "hook/started",
    "hook/completed",
    "skills/changed",
    "app/list/updated",
    "remoteControl/status/changed",
    "model/rerouted",
    "model/verification",
    "model/safetyBuffering/updated",
    "turn/moderationMetadata",
    "fs/changed",
    "process/outputDelta",
    "process/exited",
    "command/exec/outputDelta",
];

#[cfg(test)]
mod tests;
