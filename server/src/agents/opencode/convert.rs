//! OpenCode events (`GET /event`, typed in [`super::wire`]) → event drafts.
//! Pure; its state is what the stream needs: which session is ours, the role
//! of each message, the kind of each part (deltas name only the part), tool
//! call ids, and the turn's usage and outcome.

use std::collections::HashMap;

use serde_json::Value;
use tether_protocol::{
    Delta, ItemKind, ItemStatus, LogStream, Part, PermissionAction, Role, StopReason, Tool, ToolKind, Usage,
};

use super::wire::*;
use crate::agents::lenient::{decode, Lenient};
use crate::agents::{asked, Draft, NativeRequest};

#[derive(Debug, Default)]
pub struct OpencodeConverter {
    session: Option<String>,
    user_messages: Vec<String>,
    /// Part id → "text" | "reasoning" | "tool".
    parts: HashMap<String, &'static str>,
    /// Tool call id → part id (permissions name the call).
    calls: HashMap<String, String>,
    turn_active: bool,
    aborted: bool,
    error: Option<(String, String)>,
    usage: Usage,
    todo_updates: u64,
    /// The session's MCP servers as (tool prefix, name), longest prefix
    /// first: OpenCode names their tools `<prefix>_<tool>` ([`super::tool_prefix`]).
    mcp_servers: Vec<(String, String)>,
}

pub fn tool_kind(name: &str) -> ToolKind {
    match name {
        "bash" => ToolKind::Shell,
        "edit" | "write" | "patch" | "multiedit" => ToolKind::FileEdit,
        "read" => ToolKind::FileRead,
        "grep" | "glob" | "list" | "codesearch" => ToolKind::Search,
        "webfetch" | "websearch" => ToolKind::Web,
        "task" => ToolKind::Task,
        n if n.contains('_') && !n.starts_with("todo") => ToolKind::Mcp,
        _ => ToolKind::Other,
    }
}

fn add(a: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *a = Some(a.unwrap_or(0) + v);
    }
}

fn text(s: &Lenient<String>) -> Option<&str> {
    s.get().map(String::as_str)
}

/// Events of no interest to the universal stream (global housekeeping).
const IGNORED: &[&str] = &[
    "server.connected",
    "server.heartbeat",
    "plugin.added",
    "catalog.updated",
    "reference.updated",
    "integration.updated",
    "file.edited",
    "file.watcher.updated",
    "session.created",
    "session.updated",
    "session.diff",
    "session.compacted",
    "permission.replied",
    "question.replied",
    "question.rejected",
    "message.removed",
    "message.part.removed",
    "lsp.updated",
    "lsp.client.diagnostics",
    "installation.updated",
    "installation.update-available",
    "project.updated",
    "vcs.branch.updated",
    "command.executed",
    "storage.write",
];

impl OpencodeConverter {
    pub fn set_mcp_servers(&mut self, names: Vec<String>) {
        let mut servers: Vec<(String, String)> = names.into_iter().map(|n| (super::tool_prefix(&n), n)).collect();
        servers.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        self.mcp_servers = servers;
    }

    /// `(server, tool)` when `name` is a tool of one of the session's MCP servers.
    fn mcp_tool<'a>(&self, name: &'a str) -> Option<(String, &'a str)> {
        self.mcp_servers.iter().find_map(|(prefix, server)| {
            let tool = name.strip_prefix(&prefix[..])?.strip_prefix('_')?;
            (!tool.is_empty()).then(|| (server.clone(), tool))
        })
    }

    pub fn set_session(&mut self, session: Option<String>) {
        self.session = session;
    }

    /// A prompt was sent: the turn runs until the session is idle again.
    pub fn turn_started(&mut self) {
        self.turn_active = true;
        self.aborted = false;
        self.error = None;
        self.usage = Usage::default();
    }

    /// Ends the running turn (once).
    pub fn end_turn(&mut self, stop_reason: StopReason, error: Option<(String, String)>) -> Vec<Draft> {
        if !self.turn_active {
            return vec![];
        }
        self.turn_active = false;
        let usage = std::mem::take(&mut self.usage);
        let usage = (usage != Usage::default()).then_some(usage);
        vec![Draft::TurnCompleted { stop_reason, usage, error }]
    }

    pub fn event(&mut self, v: &Value, line: &str) -> Vec<Draft> {
        let event: Event = decode(v);
        let kind = text(&event.kind).unwrap_or_default();
        let p: Properties = decode(&event.properties);
        if IGNORED.contains(&kind) {
            return vec![];
        }
        match p.session_id() {
            // Another OpenCode session (e.g. a subagent's): not this stream.
            Some(s) if Some(s) != self.session.as_deref() => return vec![],
            None if kind.starts_with("message.") || kind.starts_with("session.") => return vec![],
            _ => {}
        }
        let call_item = |p: &Properties| {
            let call = p.tool.get().and_then(|t| text(&t.call_id))?;
            self.calls.get(call).cloned()
        };
        match kind {
            "message.updated" => {
                if let Some(info) = p.info.get().filter(|i| text(&i.role) == Some("user")) {
                    if let Some(id) = info.id.get() {
                        self.user_messages.push(id.clone());
                    }
                }
                vec![]
            }
            "message.part.updated" => self.part(p.part.into_inner().unwrap_or_default()),
            "message.part.delta" => {
                let (Some(part), Some(delta)) = (p.part_id.get(), p.delta.into_inner()) else { return vec![] };
                let delta = match self.parts.get(part).copied() {
                    Some("reasoning") => Delta::Reasoning(delta),
                    Some("text") => Delta::Text(delta),
                    Some("tool") => Delta::Arguments(delta),
                    // A part we never saw start (e.g. of a user message): nothing to add to.
                    _ => return vec![],
                };
                vec![Draft::ItemDelta { native_id: part.clone(), delta }]
            }
            "session.status" => match p.status.into_inner() {
                Some(status) if text(&status.kind) == Some("retry") => vec![Draft::Error {
                    code: "model_retry".into(),
                    message: format!(
                        "model request failed ({}); retry {}",
                        text(&status.message).unwrap_or("error"),
                        status.attempt
                    ),
                    retryable: true,
                }],
                _ => vec![],
            },
            "session.idle" => {
                let stop = if self.aborted {
                    StopReason::Interrupted
                } else if self.error.is_some() {
                    StopReason::Error
                } else {
                    StopReason::EndTurn
                };
                let error = self.error.take();
                self.end_turn(stop, error)
            }
            "session.error" => {
                let error = p.error.into_inner().unwrap_or_default();
                let name = error.name.into_inner().unwrap_or_else(|| "error".into());
                if name == "MessageAbortedError" {
                    self.aborted = true;
                    return vec![];
                }
                let data = error.data.into_inner().unwrap_or_default();
                let message = data.message.into_inner().unwrap_or_else(|| "the model request failed".into());
                let retryable = data.is_retryable.into_inner().unwrap_or(false);
                self.error = Some((name.clone(), message.clone()));
                vec![Draft::Error { code: name, message, retryable }]
            }
            "permission.asked" => {
                let permission = text(&p.permission).unwrap_or_default();
                let meta = p.metadata.get();
                let mcp = self.mcp_tool(permission);
                let action = match permission {
                    "bash" => PermissionAction::Shell,
                    "edit" | "write" => PermissionAction::FileEdit,
                    _ if mcp.is_some() => PermissionAction::Mcp,
                    _ => PermissionAction::Other,
                };
                let command = meta.and_then(|m| m.command.get().cloned());
                let path = meta.and_then(|m| m.filepath.get().cloned());
                let title = match (&command, &path) {
                    _ if mcp.is_some() => {
                        let (server, tool) = mcp.unwrap_or_default();
                        format!("Call {tool} on the MCP server {server}")
                    }
                    (Some(c), _) => format!("Run `{c}`"),
                    (None, Some(f)) => format!("Edit {f}"),
                    _ => format!("Use {permission}"),
                };
                vec![Draft::PermissionRequested {
                    native: NativeRequest::Opencode(AskedRequest::Permission {
                        id: p.id.get().cloned(),
                        permission: permission.to_string(),
                    }),
                    native_item_id: call_item(&p),
                    action,
                    title,
                    command,
                    path,
                    diff: meta.and_then(|m| m.diff.get().cloned()),
                    input: Some(event.properties.clone()),
                }]
            }
            "question.asked" => {
                let questions = asked::questions(p.questions.clone());
                vec![Draft::QuestionRequested {
                    native: NativeRequest::Opencode(AskedRequest::Question { id: p.id.get().cloned() }),
                    native_item_id: call_item(&p),
                    questions,
                }]
            }
            "todo.updated" => {
                self.todo_updates += 1;
                vec![Draft::ItemCompleted {
                    native_id: format!("todo:{}", self.todo_updates),
                    kind: ItemKind::Plan,
                    role: None,
                    status: ItemStatus::Completed,
                    content: vec![],
                    tool: None,
                    plan: Some(asked::plan(p.todos)),
                }]
            }
            "session.warning" | "tui.toast.show" => {
                vec![Draft::Log { stream: LogStream::Stderr, text: p.message.into_inner().unwrap_or_default() }]
            }
            _ => vec![Draft::Unparsed { line: line.to_string(), error: format!("unknown opencode event {kind}") }],
        }
    }

    fn part(&mut self, part: MessagePart) -> Vec<Draft> {
        let Some(id) = part.id.into_inner() else { return vec![] };
        if text(&part.message_id).is_some_and(|m| self.user_messages.iter().any(|u| u == m)) {
            return vec![];
        }
        let started = self.parts.contains_key(&id);
        match text(&part.kind) {
            Some(t @ ("text" | "reasoning")) => {
                let (kind, role, tag) = if t == "text" {
                    (ItemKind::Message, Some(Role::Assistant), "text")
                } else {
                    (ItemKind::Reasoning, None, "reasoning")
                };
                self.parts.insert(id.clone(), tag);
                let mut out = Vec::new();
                if !started {
                    out.push(Draft::ItemStarted { native_id: id.clone(), kind, role, tool: None });
                }
                if part.time.get().is_some_and(|t| t.end.get().is_some()) {
                    let text = part.text.into_inner().unwrap_or_default();
                    out.push(Draft::ItemCompleted {
                        native_id: id,
                        kind,
                        role,
                        status: ItemStatus::Completed,
                        content: if text.is_empty() { vec![] } else { vec![Part::text(text)] },
                        tool: None,
                        plan: None,
                    });
                }
                out
            }
            Some("tool") => {
                let name = text(&part.tool).unwrap_or("tool");
                if let Some(call) = part.call_id.get() {
                    self.calls.insert(call.clone(), id.clone());
                }
                self.parts.insert(id.clone(), "tool");
                let state = part.state.into_inner().unwrap_or_default();
                let status = text(&state.status);
                let input = state.input;
                let known: ToolInput = decode(&input);
                if name == "todowrite" {
                    return match status {
                        Some("completed") => vec![Draft::ItemCompleted {
                            native_id: id,
                            kind: ItemKind::Plan,
                            role: None,
                            status: ItemStatus::Completed,
                            content: vec![],
                            tool: None,
                            plan: Some(asked::plan(known.todos)),
                        }],
                        _ => vec![],
                    };
                }
                let mcp = self.mcp_tool(name);
                let meta = state.metadata.get();
                let mut tool = Tool {
                    name: mcp.as_ref().map_or(name, |(_, t)| t).to_string(),
                    kind: if mcp.is_some() { ToolKind::Mcp } else { tool_kind(name) },
                    server: mcp.as_ref().map(|(s, _)| s.clone()),
                    paths: known.file_path.into_inner().into_iter().collect(),
                    input,
                    output: None,
                    exit_code: None,
                    diff: meta.and_then(|m| m.diff.get().cloned()),
                };
                match status {
                    Some("completed") | Some("error") => {
                        let failed = status == Some("error");
                        tool.output = state.output.get().or(state.error.get()).cloned();
                        tool.exit_code = meta.and_then(|m| m.exit.get()).map(|c| *c as i32);
                        vec![Draft::ItemCompleted {
                            native_id: id,
                            kind: ItemKind::ToolCall,
                            role: None,
                            status: if failed { ItemStatus::Failed } else { ItemStatus::Completed },
                            content: vec![],
                            tool: Some(tool),
                            plan: None,
                        }]
                    }
                    _ if started => {
                        vec![Draft::ItemUpdated {
                            native_id: id,
                            kind: ItemKind::ToolCall,
                            role: None,
                            tool: Some(tool),
                        }]
                    }
                    _ => vec![Draft::ItemStarted {
                        native_id: id,
                        kind: ItemKind::ToolCall,
                        role: None,
                        tool: Some(tool),
                    }],
                }
            }
            Some("step-finish") => {
                let t = part.tokens.into_inner().unwrap_or_default();
                let u = Usage {
                    input_tokens: t.input.into_inner(),
                    output_tokens: t.output.into_inner(),
                    cached_input_tokens: t.cache.into_inner().and_then(|c| c.read.into_inner()),
                    reasoning_tokens: t.reasoning.into_inner(),
                    cost_usd: part.cost.into_inner(),
                };
                let acc = &mut self.usage;
                add(&mut acc.input_tokens, u.input_tokens);
                add(&mut acc.output_tokens, u.output_tokens);
                add(&mut acc.cached_input_tokens, u.cached_input_tokens);
                add(&mut acc.reasoning_tokens, u.reasoning_tokens);
                acc.cost_usd = Some(acc.cost_usd.unwrap_or(0.0) + u.cost_usd.unwrap_or(0.0));
                vec![Draft::Usage(u)]
            }
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests;
