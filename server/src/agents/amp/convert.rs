//! Amp stream-json → event drafts. Pure: no clock, no I/O, no global state.
//!
//! The lines are Claude Code's ([`crate::agents::claude::wire::Line`]) with
//! what differs in Amp 0.0.1767830505-ga62310 (checked against the CLI):
//! - no `stream_event` lines: an `assistant` line is one whole message (its
//!   text and tool_use blocks; thinking is not written), without an id. A
//!   text block becomes an item started, one delta with the whole text and
//!   completed; a tool_use block a tool item that runs until its result.
//! - its tools: `Bash` (`cmd`), `create_file` (`path`, `content`),
//!   `edit_file` (`path`, `old_str`, `new_str`), `Read`, `Grep`, `glob`,
//!   ..., and the MCP servers' `mcp__SERVER__TOOL` (content: JSON text blocks).
//! - a tool result's content is a string; `Bash`'s is JSON
//!   `{"output": "...", "exitCode": 0}`.
//! - with `--stream-json-input` a turn ends with the assistant message whose
//!   `stop_reason` is `end_turn`; a `result` line comes only when the run
//!   ends: `success` (stdin closed), or `error_during_execution` with an
//!   `error` text: a model error, a call that needed a permission, or
//!   `User cancelled (SIGINT/SIGTERM)` after an interrupt.

use serde_json::Value;
use tether_protocol::{Delta, ItemKind, ItemStatus, McpServerState, Part, Role, StopReason, Tool, ToolKind, Usage};

use super::wire::{ResultJson, ToolInput};
use crate::agents::claude::convert::mcp_tool_name;
use crate::agents::claude::wire::{
    ApiUsage, AssistantLine, ContentBlock, Line, McpServerStatus, ResultLine, ToolResultContent, UserContent, UserLine,
};
use crate::agents::lenient::{decode, Lenient};
use crate::agents::Draft;

/// What Amp writes as the error of a run ended by SIGINT or SIGTERM.
pub const CANCELLED: &str = "User cancelled (SIGINT/SIGTERM)";

#[derive(Debug, Default)]
pub struct AmpConverter {
    /// Assistant messages seen in this process (their blocks' native ids).
    messages: u64,
    /// A turn was started and has not ended yet.
    turn_open: bool,
    /// The process wrote its `result`: it reads no more and exits.
    run_ended: bool,
}

/// The tool kind of an Amp tool name.
pub fn tool_kind(name: &str) -> ToolKind {
    match name {
        "Bash" => ToolKind::Shell,
        "create_file" | "edit_file" | "undo_edit" => ToolKind::FileEdit,
        "Read" | "look_at" => ToolKind::FileRead,
        "Grep" | "glob" | "finder" => ToolKind::Search,
        "read_web_page" | "web_search" => ToolKind::Web,
        "Task" => ToolKind::Task,
        n if mcp_tool_name(n).is_some() => ToolKind::Mcp,
        _ => ToolKind::Other,
    }
}

/// A small unified diff of a `create_file` or `edit_file` input.
fn tool_diff(name: &str, input: &ToolInput) -> Option<String> {
    let path = input.path.get().map_or("file", String::as_str);
    let lines = |prefix: char, s: &str| s.lines().map(|l| format!("{prefix}{l}\n")).collect::<String>();
    match name {
        "create_file" => Some(format!("--- /dev/null\n+++ {path}\n{}", lines('+', input.content.get()?))),
        "edit_file" => {
            let (old, new) = (input.old_str.get()?, input.new_str.get()?);
            Some(format!("--- {path}\n+++ {path}\n{}{}", lines('-', old), lines('+', new)))
        }
        _ => None,
    }
}

fn tool_of(name: &str, input: Value) -> Tool {
    let known: ToolInput = decode(&input);
    let mcp = mcp_tool_name(name);
    Tool {
        name: mcp.map_or(name, |(_, tool)| tool).to_string(),
        kind: tool_kind(name),
        server: mcp.map(|(server, _)| server.to_string()),
        paths: known.path.get().cloned().into_iter().collect(),
        diff: tool_diff(name, &known),
        input,
        output: None,
        exit_code: None,
    }
}

/// An MCP server of `init` (`{"name", "status"}`; Amp 0.0.1767830505-ga62310
/// writes its status's type: `connected`, `connecting`, `failed`, ...).
fn mcp_status(s: McpServerStatus) -> Draft {
    let status = match &*s.status {
        "connected" => McpServerState::Connected,
        "connecting" | "pending" => McpServerState::Starting,
        "disabled" => McpServerState::Disabled,
        _ => McpServerState::Failed,
    };
    Draft::McpStatus { server: s.name, status, error: s.error }
}

fn usage_of(u: &ApiUsage) -> Usage {
    Usage {
        input_tokens: u.input_tokens,
        output_tokens: u.output_tokens,
        cached_input_tokens: u.cache_read_input_tokens,
        reasoning_tokens: None,
        cost_usd: None,
    }
}

/// A tool result's output and exit code: `Bash`'s content is JSON
/// `{"output": .., "exitCode": ..}`, `edit_file`'s `{"diff": "```diff\n..```", "lineRange": ..}`
/// (the diff is the output, without its fence), an MCP tool's its content
/// blocks `[{"type": "text", "text": ..}]` (their texts); anything else is its text.
pub fn tool_output(content: ToolResultContent) -> (String, Option<i32>) {
    let text = match content {
        ToolResultContent::Text(s) => s,
        ToolResultContent::Blocks(parts) => {
            parts.into_iter().filter_map(|p| p.into_inner()?.text.into_inner()).collect::<Vec<_>>().join("\n")
        }
        ToolResultContent::Other(None) => String::new(),
        ToolResultContent::Other(Some(other)) => other.to_string(),
    };
    match serde_json::from_str::<ResultJson>(&text) {
        Ok(ResultJson::Shell { output, exit_code }) => {
            (output, exit_code.and_then(Lenient::into_inner).map(|c| c as i32))
        }
        Ok(ResultJson::Edit { diff }) => {
            let bare = diff.strip_prefix("```diff\n").and_then(|d| d.strip_suffix("```")).unwrap_or(&diff);
            (bare.to_string(), None)
        }
        Ok(ResultJson::Blocks(blocks)) if !blocks.is_empty() && blocks.iter().all(|b| b.kind == "text") => {
            let texts: Vec<String> = blocks.into_iter().filter_map(|b| b.text.into_inner()).collect();
            (texts.join("\n"), None)
        }
        _ => (text, None),
    }
}

impl AmpConverter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new process starts (its run has not ended).
    pub fn process_started(&mut self) {
        self.run_ended = false;
        self.turn_open = false;
    }

    /// Whether the process wrote its `result` (and so is exiting).
    pub fn run_ended(&self) -> bool {
        self.run_ended
    }

    /// The session sent a user message: a turn runs until Amp ends it.
    pub fn turn_started(&mut self) {
        self.turn_open = true;
    }

    /// Converts one output line (a JSON object) into drafts.
    pub fn convert(&mut self, line: &str) -> Vec<Draft> {
        match Line::parse(line) {
            Ok(Line::System(s)) if s.subtype == "init" => {
                let mut drafts = vec![Draft::SessionStarted { native_session_id: s.session_id, model: s.model }];
                drafts.extend(s.mcp_servers.into_iter().map(mcp_status));
                drafts
            }
            Ok(Line::Assistant(a)) => self.assistant(a),
            Ok(Line::User(u)) => user(u),
            Ok(Line::Result(r)) => self.result(r),
            Ok(Line::System(s)) => {
                vec![Draft::Unparsed { line: line.to_string(), error: format!("unknown system subtype {}", s.subtype) }]
            }
            Ok(_) => vec![Draft::Unparsed { line: line.to_string(), error: "not a line Amp writes".into() }],
            Err(error) => vec![Draft::Unparsed { line: line.to_string(), error }],
        }
    }

    fn assistant(&mut self, a: AssistantLine) -> Vec<Draft> {
        self.messages += 1;
        let msg = self.messages;
        let mut out = Vec::new();
        for (index, block) in a.message.content.into_iter().enumerate() {
            let native = format!("amp_{msg}_{index}");
            match block {
                ContentBlock::Text { text } => {
                    out.push(Draft::ItemStarted {
                        native_id: native.clone(),
                        kind: ItemKind::Message,
                        role: Some(Role::Assistant),
                        tool: None,
                    });
                    out.push(Draft::ItemDelta { native_id: native.clone(), delta: Delta::Text(text.clone()) });
                    out.push(Draft::ItemCompleted {
                        native_id: native,
                        kind: ItemKind::Message,
                        role: Some(Role::Assistant),
                        status: ItemStatus::Completed,
                        content: vec![Part::Text { text }],
                        tool: None,
                        plan: None,
                    });
                }
                ContentBlock::ToolUse { id, name, input } => out.push(Draft::ItemStarted {
                    native_id: id,
                    kind: ItemKind::ToolCall,
                    role: None,
                    tool: Some(tool_of(&name, input)),
                }),
                _ => {}
            }
        }
        if let Some(u) = &a.message.usage {
            out.push(Draft::Usage(usage_of(u)));
        }
        let stop = a.message.stop_reason.and_then(Lenient::into_inner);
        if stop.as_deref() == Some("end_turn") && self.turn_open {
            self.turn_open = false;
            out.push(Draft::TurnCompleted {
                stop_reason: StopReason::EndTurn,
                usage: a.message.usage.as_ref().map(usage_of),
                error: None,
            });
        }
        out
    }

    fn result(&mut self, r: ResultLine) -> Vec<Draft> {
        self.run_ended = true;
        if !r.is_error {
            // The run ended (stdin closed): its last turn ended with its message.
            if !std::mem::take(&mut self.turn_open) {
                return vec![];
            }
            return vec![Draft::TurnCompleted { stop_reason: StopReason::EndTurn, usage: None, error: None }];
        }
        self.turn_open = false;
        let message = r.error.and_then(Lenient::into_inner).or(r.result).unwrap_or_else(|| "the run failed".into());
        if message == CANCELLED {
            return vec![Draft::TurnCompleted { stop_reason: StopReason::Interrupted, usage: None, error: None }];
        }
        vec![Draft::TurnCompleted {
            stop_reason: StopReason::Error,
            usage: None,
            error: Some(("agent_error".to_string(), message)),
        }]
    }
}

/// Tool results (a `user` line echoing the prompt gives nothing).
fn user(u: UserLine) -> Vec<Draft> {
    let UserContent::Blocks(blocks) = u.message.content else { return vec![] };
    blocks
        .into_iter()
        .filter_map(|b| match b {
            ContentBlock::ToolResult { tool_use_id, content, is_error } => {
                let (output, exit_code) = tool_output(content);
                Some(Draft::ToolResult {
                    native_id: tool_use_id,
                    output,
                    is_error: is_error.unwrap_or(false),
                    exit_code,
                })
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
