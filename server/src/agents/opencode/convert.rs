//! OpenCode events (`GET /event`: `{"type","properties"}`) → event drafts.
//! Pure; its state is what the stream needs: which session is ours, the role
//! of each message, the kind of each part (deltas name only the part), tool
//! call ids, and the turn's usage and outcome.

use std::collections::HashMap;

use serde_json::{json, Value};
use tether_protocol::{
    Delta, ItemKind, ItemStatus, LogStream, Part, PermissionAction, PlanEntry, PlanStatus, Question, QuestionOption,
    Role, StopReason, Tool, ToolKind, Usage,
};

use crate::agents::Draft;

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

fn plan_of(todos: &Value) -> Vec<PlanEntry> {
    todos
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| PlanEntry {
                    text: t["content"].as_str().unwrap_or_default().to_string(),
                    status: match t["status"].as_str() {
                        Some("completed") => PlanStatus::Completed,
                        Some("in_progress") => PlanStatus::InProgress,
                        _ => PlanStatus::Pending,
                    },
                })
                .collect()
        })
        .unwrap_or_default()
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
            let tool = name.strip_prefix(prefix.as_str())?.strip_prefix('_')?;
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
        let kind = v["type"].as_str().unwrap_or_default();
        let p = &v["properties"];
        let sid = p["sessionID"]
            .as_str()
            .or_else(|| p["info"]["sessionID"].as_str())
            .or_else(|| p["part"]["sessionID"].as_str());
        if IGNORED.contains(&kind) {
            return vec![];
        }
        match sid {
            // Another OpenCode session (e.g. a subagent's): not this stream.
            Some(s) if Some(s) != self.session.as_deref() => return vec![],
            None if kind.starts_with("message.") || kind.starts_with("session.") => return vec![],
            _ => {}
        }
        match kind {
            "message.updated" => {
                if p["info"]["role"] == "user" {
                    if let Some(id) = p["info"]["id"].as_str() {
                        self.user_messages.push(id.to_string());
                    }
                }
                vec![]
            }
            "message.part.updated" => self.part(&p["part"]),
            "message.part.delta" => {
                let (Some(part), Some(delta)) = (p["partID"].as_str(), p["delta"].as_str()) else { return vec![] };
                let delta = match self.parts.get(part).copied() {
                    Some("reasoning") => Delta::Reasoning(delta.to_string()),
                    Some("text") => Delta::Text(delta.to_string()),
                    Some("tool") => Delta::Arguments(delta.to_string()),
                    // A part we never saw start (e.g. of a user message): nothing to add to.
                    _ => return vec![],
                };
                vec![Draft::ItemDelta { native_id: part.to_string(), delta }]
            }
            "session.status" => match p["status"]["type"].as_str() {
                Some("retry") => vec![Draft::Error {
                    code: "model_retry".into(),
                    message: format!(
                        "model request failed ({}); retry {}",
                        p["status"]["message"].as_str().unwrap_or("error"),
                        p["status"]["attempt"]
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
                let name = p["error"]["name"].as_str().unwrap_or("error").to_string();
                if name == "MessageAbortedError" {
                    self.aborted = true;
                    return vec![];
                }
                let message = p["error"]["data"]["message"].as_str().unwrap_or("the model request failed").to_string();
                let retryable = p["error"]["data"]["isRetryable"].as_bool().unwrap_or(false);
                self.error = Some((name.clone(), message.clone()));
                vec![Draft::Error { code: name, message, retryable }]
            }
            "permission.asked" => {
                let permission = p["permission"].as_str().unwrap_or_default();
                let meta = &p["metadata"];
                let mcp = self.mcp_tool(permission);
                let action = match permission {
                    "bash" => PermissionAction::Shell,
                    "edit" | "write" => PermissionAction::FileEdit,
                    _ if mcp.is_some() => PermissionAction::Mcp,
                    _ => PermissionAction::Other,
                };
                let command = meta["command"].as_str().map(str::to_string);
                let path = meta["filepath"].as_str().map(str::to_string);
                let title = match (&command, &path) {
                    _ if mcp.is_some() => {
                        let (server, tool) = mcp.unwrap_or_default();
                        format!("Call {tool} on the MCP server {server}")
                    }
                    (Some(c), _) => format!("Run `{c}`"),
                    (None, Some(f)) => format!("Edit {f}"),
                    _ => format!("Use {permission}"),
                };
                let item = p["tool"]["callID"].as_str().and_then(|c| self.calls.get(c)).cloned();
                vec![Draft::PermissionRequested {
                    native: json!({"request_id": p["id"], "permission": permission}),
                    native_item_id: item,
                    action,
                    title,
                    command,
                    path,
                    diff: meta["diff"].as_str().map(str::to_string),
                    input: Some(p.clone()),
                }]
            }
            "question.asked" => {
                let questions = p["questions"]
                    .as_array()
                    .map(|qs| {
                        qs.iter()
                            .map(|q| Question {
                                prompt: q["question"].as_str().unwrap_or_default().to_string(),
                                header: q["header"].as_str().map(str::to_string),
                                options: q["options"]
                                    .as_array()
                                    .map(|os| {
                                        os.iter()
                                            .map(|o| QuestionOption {
                                                label: o["label"].as_str().unwrap_or_default().to_string(),
                                                description: o["description"].as_str().map(str::to_string),
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                                multi_select: q["multiple"].as_bool().unwrap_or(false),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let item = p["tool"]["callID"].as_str().and_then(|c| self.calls.get(c)).cloned();
                vec![Draft::QuestionRequested {
                    native: json!({"request_id": p["id"]}),
                    native_item_id: item,
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
                    plan: Some(plan_of(&p["todos"])),
                }]
            }
            "session.warning" | "tui.toast.show" => {
                vec![Draft::Log {
                    stream: LogStream::Stderr,
                    text: p["message"].as_str().unwrap_or_default().to_string(),
                }]
            }
            _ => vec![Draft::Unparsed { line: line.to_string(), error: format!("unknown opencode event {kind}") }],
        }
    }

    fn part(&mut self, part: &Value) -> Vec<Draft> {
        let Some(id) = part["id"].as_str() else { return vec![] };
        if part["messageID"].as_str().is_some_and(|m| self.user_messages.iter().any(|u| u == m)) {
            return vec![];
        }
        let started = self.parts.contains_key(id);
        match part["type"].as_str() {
            Some(t @ ("text" | "reasoning")) => {
                let (kind, role, tag) = if t == "text" {
                    (ItemKind::Message, Some(Role::Assistant), "text")
                } else {
                    (ItemKind::Reasoning, None, "reasoning")
                };
                self.parts.insert(id.to_string(), tag);
                let mut out = Vec::new();
                if !started {
                    out.push(Draft::ItemStarted { native_id: id.to_string(), kind, role, tool: None });
                }
                if part["time"]["end"].is_number() {
                    let text = part["text"].as_str().unwrap_or_default().to_string();
                    out.push(Draft::ItemCompleted {
                        native_id: id.to_string(),
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
                let name = part["tool"].as_str().unwrap_or("tool");
                if let Some(call) = part["callID"].as_str() {
                    self.calls.insert(call.to_string(), id.to_string());
                }
                self.parts.insert(id.to_string(), "tool");
                let state = &part["state"];
                let input = state["input"].clone();
                if name == "todowrite" {
                    return match state["status"].as_str() {
                        Some("completed") => vec![Draft::ItemCompleted {
                            native_id: id.to_string(),
                            kind: ItemKind::Plan,
                            role: None,
                            status: ItemStatus::Completed,
                            content: vec![],
                            tool: None,
                            plan: Some(plan_of(&input["todos"])),
                        }],
                        _ => vec![],
                    };
                }
                let mcp = self.mcp_tool(name);
                let mut tool = Tool {
                    name: mcp.as_ref().map_or(name, |(_, t)| t).to_string(),
                    kind: if mcp.is_some() { ToolKind::Mcp } else { tool_kind(name) },
                    server: mcp.as_ref().map(|(s, _)| s.clone()),
                    paths: input["filePath"].as_str().map(|p| vec![p.to_string()]).unwrap_or_default(),
                    input,
                    output: None,
                    exit_code: None,
                    diff: state["metadata"]["diff"].as_str().map(str::to_string),
                };
                match state["status"].as_str() {
                    Some("completed") | Some("error") => {
                        let failed = state["status"] == "error";
                        tool.output = state["output"].as_str().or_else(|| state["error"].as_str()).map(str::to_string);
                        tool.exit_code = state["metadata"]["exit"].as_i64().map(|c| c as i32);
                        vec![Draft::ItemCompleted {
                            native_id: id.to_string(),
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
                            native_id: id.to_string(),
                            kind: ItemKind::ToolCall,
                            role: None,
                            tool: Some(tool),
                        }]
                    }
                    _ => vec![Draft::ItemStarted {
                        native_id: id.to_string(),
                        kind: ItemKind::ToolCall,
                        role: None,
                        tool: Some(tool),
                    }],
                }
            }
            Some("step-finish") => {
                let t = &part["tokens"];
                let u = Usage {
                    input_tokens: t["input"].as_u64(),
                    output_tokens: t["output"].as_u64(),
                    cached_input_tokens: t["cache"]["read"].as_u64(),
                    reasoning_tokens: t["reasoning"].as_u64(),
                    cost_usd: part["cost"].as_f64(),
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
