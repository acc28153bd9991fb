//! Claude stream-json → event drafts. Pure: no clock, no I/O, no global state;
//! the only state is what the dialect itself needs (which block of which
//! message a line belongs to).

use serde_json::Value;
use tether_protocol::{
    Delta, ItemKind, ItemStatus, McpServerState, Part, PermissionAction, Role, StopReason, Tool, ToolKind, Usage,
};

use super::wire::*;
use crate::agents::lenient::{decode, Lenient};
use crate::agents::{asked, Draft, NativeRequest};

#[derive(Debug, Default)]
pub struct ClaudeConverter {
    /// The API message being streamed.
    message_id: Option<String>,
    /// Native item id of each content block index of that message.
    blocks: Vec<Option<String>>,
    /// Assistant lines seen for the current message id (one block per line).
    assistant_seen: (String, usize),
    /// Tool calls turned into plan items (TodoWrite), whose results are not items.
    plan_tools: Vec<String>,
}

/// The tool kind of a Claude tool name.
pub fn tool_kind(name: &str) -> ToolKind {
    match name {
        "Bash" | "BashOutput" | "KillShell" | "KillBash" => ToolKind::Shell,
        "Write" | "Edit" | "MultiEdit" | "NotebookEdit" => ToolKind::FileEdit,
        "Read" | "NotebookRead" => ToolKind::FileRead,
        "Grep" | "Glob" | "LS" => ToolKind::Search,
        "WebFetch" | "WebSearch" => ToolKind::Web,
        "Task" | "Agent" => ToolKind::Task,
        n if n.starts_with("mcp__") => ToolKind::Mcp,
        _ => ToolKind::Other,
    }
}

/// `mcp__<server>__<tool>` as (server, tool); MCP server names never hold `__`.
pub fn mcp_tool_name(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("mcp__")?.split_once("__")
}

fn mcp_status(s: super::wire::McpServerStatus) -> Draft {
    let (status, error) = match &*s.status {
        "connected" => (McpServerState::Connected, None),
        "pending" => (McpServerState::Starting, None),
        "disabled" => (McpServerState::Disabled, None),
        "needs-auth" => (McpServerState::Failed, Some("the server needs authentication".to_string())),
        _ => (McpServerState::Failed, None),
    };
    Draft::McpStatus { server: s.name, status, error: s.error.or(error) }
}

/// The file paths a tool input names.
fn tool_paths(input: &ToolInput) -> Vec<String> {
    [&input.file_path, &input.notebook_path, &input.path]
        .into_iter()
        .find_map(|p| p.get().cloned())
        .into_iter()
        .collect()
}

/// A small unified diff for Write/Edit/MultiEdit inputs.
fn tool_diff(name: &str, input: &ToolInput) -> Option<String> {
    let path = input.file_path.get().map_or("file", String::as_str);
    let lines = |prefix: char, s: &str| s.lines().map(|l| format!("{prefix}{l}\n")).collect::<String>();
    let text = |s: &Lenient<String>| s.get().map_or("", String::as_str).to_string();
    match name {
        "Write" => {
            let content = input.content.get()?;
            Some(format!("--- /dev/null\n+++ {path}\n{}", lines('+', content)))
        }
        "Edit" => {
            let (old, new) = (input.old_string.get()?, input.new_string.get()?);
            Some(format!("--- {path}\n+++ {path}\n{}{}", lines('-', old), lines('+', new)))
        }
        "MultiEdit" => {
            let edits = input.edits.get()?;
            let mut out = format!("--- {path}\n+++ {path}\n");
            for e in edits {
                let e = e.get().cloned().unwrap_or_default();
                out.push_str(&lines('-', &text(&e.old_string)));
                out.push_str(&lines('+', &text(&e.new_string)));
            }
            Some(out)
        }
        _ => None,
    }
}

fn tool_of(name: &str, input: Value) -> Tool {
    let mcp = mcp_tool_name(name);
    let known: ToolInput = decode(&input);
    Tool {
        name: mcp.map_or(name, |(_, tool)| tool).to_string(),
        kind: tool_kind(name),
        server: mcp.map(|(server, _)| server.to_string()),
        paths: tool_paths(&known),
        diff: tool_diff(name, &known),
        input,
        output: None,
        exit_code: None,
    }
}

fn usage_of(u: &ApiUsage, cost: Option<f64>) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cache_read_input_tokens,
        reasoning_tokens: None,
        cost_usd: cost,
    }
}

/// The text of a tool_result's content (a string or a list of text blocks).
fn result_text(content: ToolResultContent) -> String {
    match content {
        ToolResultContent::Text(s) => s,
        ToolResultContent::Blocks(parts) => {
            parts.into_iter().filter_map(|p| p.into_inner()?.text.into_inner()).collect::<Vec<_>>().join("\n")
        }
        ToolResultContent::Other(None) => String::new(),
        ToolResultContent::Other(Some(other)) => other.to_string(),
    }
}

/// A subagent's drafts, each item first declared a child of the Task call `parent`.
fn with_parent(drafts: Vec<Draft>, parent: &str) -> Vec<Draft> {
    let mut out = Vec::with_capacity(drafts.len() * 2);
    for d in drafts {
        if let Draft::ItemStarted { native_id, .. }
        | Draft::ItemUpdated { native_id, .. }
        | Draft::ItemCompleted { native_id, .. }
        | Draft::ToolResult { native_id, .. } = &d
        {
            if native_id != parent {
                out.push(Draft::ItemParent { native_id: native_id.clone(), parent_native_id: parent.to_string() });
            }
        }
        out.push(d);
    }
    out
}

impl ClaudeConverter {
    pub fn new() -> Self {
        Self::default()
    }

    fn block_native(&self, index: u32) -> Option<&String> {
        self.blocks.get(index as usize).and_then(Option::as_ref)
    }

    fn set_block(&mut self, index: u32, native: String) {
        let i = index as usize;
        if self.blocks.len() <= i {
            self.blocks.resize(i + 1, None);
        }
        self.blocks[i] = Some(native);
    }

    /// Converts one output line (a JSON object) into drafts.
    pub fn convert(&mut self, line: &str) -> Vec<Draft> {
        match Line::parse(line) {
            Ok(parsed) => self.convert_line(parsed, line),
            Err(error) => vec![Draft::Unparsed { line: line.to_string(), error }],
        }
    }

    fn convert_line(&mut self, parsed: Line, line: &str) -> Vec<Draft> {
        let parent = match &parsed {
            Line::StreamEvent(l) => l.parent_tool_use_id.clone(),
            Line::Assistant(l) => l.parent_tool_use_id.clone(),
            Line::User(l) => l.parent_tool_use_id.clone(),
            _ => None,
        };
        let drafts = self.convert_parsed(parsed, line);
        match parent {
            Some(parent) => with_parent(drafts, &parent),
            None => drafts,
        }
    }

    fn convert_parsed(&mut self, parsed: Line, line: &str) -> Vec<Draft> {
        match parsed {
            Line::System(s) => match &*s.subtype {
                "init" => {
                    let mut drafts = vec![Draft::SessionStarted { native_session_id: s.session_id, model: s.model }];
                    drafts.extend(s.mcp_servers.into_iter().map(mcp_status));
                    drafts
                }
                "api_retry" => vec![Draft::Error {
                    code: "api_retry".into(),
                    message: format!(
                        "model API request failed{}; retrying (attempt {})",
                        s.error_status.map(|c| format!(" with HTTP {c}")).unwrap_or_default(),
                        s.attempt.unwrap_or(0)
                    ),
                    retryable: true,
                }],
                // Progress notices the stream already shows in other ways (a
                // subagent's `task_*`: its items name the Task call as their parent).
                "status" | "permission_denied" | "thinking_tokens" | "task_started" | "task_progress"
                | "task_updated" | "task_notification" => vec![],
                _ => vec![Draft::Unparsed {
                    line: line.to_string(),
                    error: format!("unknown system subtype {}", s.subtype),
                }],
            },
            Line::StreamEvent(se) => self.stream_event(se.event),
            Line::Assistant(a) => self.assistant(a),
            Line::User(u) => self.user(u),
            Line::Result(r) => {
                let stop_reason = match &*r.subtype {
                    "error_max_turns" => StopReason::MaxTurns,
                    "error_during_execution" => StopReason::Interrupted,
                    _ if r.is_error => StopReason::Error,
                    _ => StopReason::EndTurn,
                };
                let usage = r.usage.as_ref().map(|u| usage_of(u, r.total_cost_usd));
                let error = (stop_reason == StopReason::Error).then(|| {
                    let message = r
                        .result
                        .clone()
                        .or_else(|| r.errors.as_ref().map(|e| e.join("; ")))
                        .unwrap_or_else(|| "the turn failed".into());
                    ("agent_error".to_string(), message)
                });
                vec![Draft::TurnCompleted { stop_reason, usage, error }]
            }
            Line::ControlRequest(c) => self.control_request(c, line),
            Line::ControlCancelRequest { request_id } => {
                vec![Draft::RequestCancelled { native_request_id: request_id }]
            }
            Line::Ignored => vec![],
        }
    }

    fn stream_event(&mut self, ev: StreamEvent) -> Vec<Draft> {
        match (&*ev.kind, ev.index) {
            ("message_start", _) => {
                self.message_id = ev.message.and_then(|m| m.id);
                self.blocks.clear();
                vec![]
            }
            ("content_block_start", Some(index)) => {
                let Some(content_block) = ev.content_block else { return vec![] };
                let msg = self.message_id.clone().unwrap_or_default();
                let (native, kind, role, tool) = match content_block {
                    ContentBlock::Text { .. } => {
                        (format!("{msg}:{index}"), ItemKind::Message, Some(Role::Assistant), None)
                    }
                    ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking {} => {
                        (format!("{msg}:{index}"), ItemKind::Reasoning, None, None)
                    }
                    ContentBlock::ToolUse { id, name, input } => {
                        if name == "TodoWrite" {
                            self.plan_tools.push(id.clone());
                            self.set_block(index, id);
                            return vec![];
                        }
                        (id, ItemKind::ToolCall, None, Some(tool_of(&name, input)))
                    }
                    _ => return vec![],
                };
                self.set_block(index, native.clone());
                vec![Draft::ItemStarted { native_id: native, kind, role, tool }]
            }
            ("content_block_delta", Some(index)) => {
                let (Some(native), Some(d)) = (self.block_native(index), ev.delta) else { return vec![] };
                if self.plan_tools.contains(native) {
                    return vec![];
                }
                let delta = match (&*d.kind, d.text, d.thinking, d.partial_json) {
                    ("text_delta", Some(text), _, _) => Delta::Text(text),
                    ("thinking_delta", _, Some(thinking), _) => Delta::Reasoning(thinking),
                    ("input_json_delta", _, _, Some(json)) => Delta::Arguments(json),
                    _ => return vec![],
                };
                vec![Draft::ItemDelta { native_id: native.clone(), delta }]
            }
            ("message_delta", _) => ev.usage.map(|u| vec![Draft::Usage(usage_of(&u, None))]).unwrap_or_default(),
            _ => vec![],
        }
    }

    fn assistant(&mut self, a: AssistantLine) -> Vec<Draft> {
        let msg = a.message.id.clone().unwrap_or_default();
        if a.is_api_error_message || a.error.is_some() {
            let message = a
                .message
                .content
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text } => Some(&text[..]),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n");
            let code = a.error.and_then(Lenient::into_inner).unwrap_or_else(|| "api_error".into());
            return vec![Draft::Error { code, message, retryable: false }];
        }
        if self.assistant_seen.0 != msg {
            self.assistant_seen = (msg.clone(), 0);
        }
        let mut out = Vec::new();
        for block in a.message.content {
            let index = self.assistant_seen.1;
            self.assistant_seen.1 += 1;
            let native = format!("{msg}:{index}");
            // An interrupted message comes as one last assistant line marked `aborted`.
            let status = if a.aborted { ItemStatus::Cancelled } else { ItemStatus::Completed };
            match block {
                ContentBlock::Text { text } => out.push(Draft::ItemCompleted {
                    native_id: native,
                    kind: ItemKind::Message,
                    role: Some(Role::Assistant),
                    status,
                    content: vec![Part::Text { text }],
                    tool: None,
                    plan: None,
                }),
                ContentBlock::Thinking { thinking } => out.push(Draft::ItemCompleted {
                    native_id: native,
                    kind: ItemKind::Reasoning,
                    role: None,
                    status,
                    content: vec![Part::Text { text: thinking }],
                    tool: None,
                    plan: None,
                }),
                ContentBlock::RedactedThinking {} => out.push(Draft::ItemCompleted {
                    native_id: native,
                    kind: ItemKind::Reasoning,
                    role: None,
                    status: ItemStatus::Completed,
                    content: vec![],
                    tool: None,
                    plan: None,
                }),
                ContentBlock::ToolUse { id, name, input } if name == "TodoWrite" => {
                    if !self.plan_tools.contains(&id) {
                        self.plan_tools.push(id.clone());
                    }
                    out.push(Draft::ItemCompleted {
                        native_id: id,
                        kind: ItemKind::Plan,
                        role: None,
                        status: ItemStatus::Completed,
                        content: vec![],
                        tool: None,
                        plan: Some(asked::plan(decode::<ToolInput>(&input).todos)),
                    });
                }
                ContentBlock::ToolUse { id, name, input } => out.push(Draft::ItemUpdated {
                    native_id: id,
                    kind: ItemKind::ToolCall,
                    role: None,
                    tool: Some(tool_of(&name, input)),
                }),
                _ => {}
            }
        }
        out
    }

    fn user(&mut self, u: UserLine) -> Vec<Draft> {
        let UserContent::Blocks(blocks) = u.message.content else { return vec![] };
        let exit_code = u.tool_use_result.and_then(Lenient::into_inner).and_then(|r| r.exit_code()).map(|c| c as i32);
        blocks
            .into_iter()
            .filter_map(|b| match b {
                ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                    if let Some(pos) = self.plan_tools.iter().position(|t| *t == tool_use_id) {
                        self.plan_tools.swap_remove(pos);
                        return None;
                    }
                    Some(Draft::ToolResult {
                        native_id: tool_use_id,
                        output: result_text(content),
                        is_error: is_error.unwrap_or(false),
                        exit_code,
                    })
                }
                _ => None,
            })
            .collect()
    }

    fn control_request(&mut self, c: ControlRequestLine, line: &str) -> Vec<Draft> {
        match c.request {
            ControlRequest::CanUseTool { tool_name, input, tool_use_id, permission_suggestions, blocked_path } => {
                let known: ToolInput = decode(&input);
                let native = NativeRequest::Claude(ToolRequest {
                    request_id: c.request_id,
                    tool_name: tool_name.clone(),
                    input: input.clone(),
                    permission_suggestions,
                });
                if tool_name == "AskUserQuestion" {
                    return vec![Draft::QuestionRequested {
                        questions: asked::questions(known.questions),
                        native,
                        native_item_id: tool_use_id,
                    }];
                }
                let action = match tool_kind(&tool_name) {
                    ToolKind::Shell => PermissionAction::Shell,
                    ToolKind::FileEdit if tool_name == "Write" => PermissionAction::FileWrite,
                    ToolKind::FileEdit => PermissionAction::FileEdit,
                    ToolKind::Mcp => PermissionAction::Mcp,
                    _ => PermissionAction::Other,
                };
                let command = known.command.get().cloned();
                let path = tool_paths(&known).into_iter().next().or(blocked_path);
                let title = match (&command, &path) {
                    _ if mcp_tool_name(&tool_name).is_some() => {
                        let (server, tool) = mcp_tool_name(&tool_name).unwrap_or_default();
                        format!("Call {tool} on the MCP server {server}")
                    }
                    (Some(cmd), _) => format!("Run `{cmd}`"),
                    (None, Some(p)) => format!("{tool_name} {p}"),
                    (None, None) => format!("Use {tool_name}"),
                };
                vec![Draft::PermissionRequested {
                    native,
                    native_item_id: tool_use_id,
                    action,
                    title,
                    command,
                    path,
                    diff: tool_diff(&tool_name, &known),
                    input: Some(input),
                }]
            }
            ControlRequest::Other => {
                vec![Draft::Unparsed { line: line.to_string(), error: "unknown control request subtype".into() }]
            }
        }
    }
}

#[cfg(test)]
mod tests;
