//! Pi's RPC lines (typed in [`super::wire`]) → event drafts, and the reply due
//! at once (an extension's dialog, dismissed). Pure; its state is what the
//! stream needs: the assistant message being streamed (its blocks are named
//! `m<N>:<index>`, tool calls by their own id), the output each tool has
//! streamed, and the running turn's usage and outcome.
//!
//! A tether turn is one `prompt`: Pi's `agent_start` … `agent_end`, which may
//! hold several of Pi's own turns (one model reply and its tool calls each).
//! Text and thinking blocks complete with their message (`message_end`), so
//! an aborted message's blocks are `cancelled`; tool calls complete with
//! their execution (`tool_execution_end`).

use std::collections::HashMap;

use tether_protocol::{Delta, ItemKind, ItemStatus, LogStream, Part, Role, StopReason, Tool, ToolKind, Usage};

use super::wire::*;
use crate::agents::lenient::decode;
use crate::agents::Draft;

/// What one line converts to.
#[derive(Debug, Default, PartialEq)]
pub struct Converted {
    pub drafts: Vec<Draft>,
    /// Written to Pi at once.
    pub reply: Option<Outgoing>,
}

impl From<Vec<Draft>> for Converted {
    fn from(drafts: Vec<Draft>) -> Self {
        Converted { drafts, reply: None }
    }
}

/// The kind of a Pi tool, by its name (Pi's built-ins: `read`, `bash`,
/// `edit`, `write`, `grep`, `find`, `ls`).
pub fn tool_kind(name: &str) -> ToolKind {
    match name {
        "bash" => ToolKind::Shell,
        "edit" | "write" => ToolKind::FileEdit,
        "read" => ToolKind::FileRead,
        "grep" | "find" | "ls" => ToolKind::Search,
        _ => ToolKind::Other,
    }
}

/// The exit code of a `bash` call: Pi's bash tool (`dist/core/tools/bash.js`)
/// returns normally only when the command exited 0 (or was not given a
/// code), and otherwise fails with its output and `Command exited with code N`.
fn bash_exit_code(is_error: bool, output: &str) -> Option<i32> {
    if !is_error {
        return Some(0);
    }
    let last = output.trim_end().lines().last()?;
    last.strip_prefix("Command exited with code ")?.trim().parse().ok()
}

fn add(a: &mut Option<u64>, v: Option<u64>) {
    if let Some(v) = v {
        *a = Some(a.unwrap_or(0) + v);
    }
}

/// What the turn running now has seen.
#[derive(Debug, Default)]
struct Turn {
    usage: Usage,
    /// The last assistant message's stop reason.
    stop: Option<String>,
    error: Option<(String, String)>,
}

#[derive(Debug, Default)]
pub struct PiConverter {
    /// Assistant messages started (the open one is number `messages`).
    messages: u64,
    /// The open message's blocks: content index → native id.
    blocks: HashMap<usize, String>,
    /// Tool call id → the output it has streamed so far.
    streamed: HashMap<String, String>,
    /// Tool call id → its arguments (`tool_execution_end` does not repeat them).
    args: HashMap<String, serde_json::Value>,
    turn: Option<Turn>,
}

impl PiConverter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A prompt was sent: a turn runs until `agent_end` (or the prompt is refused).
    pub fn turn_started(&mut self) {
        self.turn = Some(Turn::default());
    }

    /// Ends the running turn (once).
    fn end_turn(&mut self) -> Vec<Draft> {
        let Some(turn) = self.turn.take() else { return vec![] };
        let stop_reason = match turn.stop.as_deref() {
            Some("aborted") => StopReason::Interrupted,
            _ if turn.error.is_some() => StopReason::Error,
            _ => StopReason::EndTurn,
        };
        let usage = (turn.usage != Usage::default()).then_some(turn.usage);
        let error = turn.error.filter(|_| stop_reason == StopReason::Error);
        vec![Draft::TurnCompleted { stop_reason, usage, error }]
    }

    fn block_id(&self, index: usize) -> String {
        format!("m{}:{index}", self.messages)
    }

    /// Converts one line Pi wrote.
    pub fn convert(&mut self, line: &str) -> Converted {
        let parsed: Line = match serde_json::from_str(line) {
            Ok(l) => l,
            Err(e) => return vec![Draft::Unparsed { line: line.to_string(), error: e.to_string() }].into(),
        };
        let kind = parsed.kind.get().cloned().unwrap_or_default();
        match kind.as_str() {
            "response" => self.response(parsed).into(),
            "message_start" => {
                let message = parsed.message.into_inner().unwrap_or_default();
                if message.role.get().map(String::as_str) == Some("assistant") {
                    self.messages += 1;
                    self.blocks.clear();
                }
                Converted::default()
            }
            "message_update" => self.update(parsed.assistant_message_event.into_inner().unwrap_or_default()).into(),
            "message_end" => self.message_end(parsed.message.into_inner().unwrap_or_default()).into(),
            "tool_execution_start" => {
                let Some(id) = parsed.tool_call_id.into_inner() else { return Converted::default() };
                let name = parsed.tool_name.into_inner().unwrap_or_else(|| "tool".into());
                self.args.insert(id.clone(), parsed.args.clone());
                let tool = tool(&name, parsed.args);
                vec![Draft::ItemUpdated { native_id: id, kind: ItemKind::ToolCall, role: None, tool: Some(tool) }]
                    .into()
            }
            "tool_execution_update" => {
                let Some(id) = parsed.tool_call_id.into_inner() else { return Converted::default() };
                let so_far = parsed.partial_result.get().map(ToolResult::text).unwrap_or_default();
                let before = self.streamed.entry(id.clone()).or_default();
                // The whole output so far each time: what is new is the rest of it.
                let Some(new) = so_far.strip_prefix(before.as_str()).filter(|n| !n.is_empty()).map(str::to_string)
                else {
                    return Converted::default();
                };
                *before = so_far;
                vec![Draft::ItemDelta { native_id: id, delta: Delta::Output(new) }].into()
            }
            "tool_execution_end" => {
                let Some(id) = parsed.tool_call_id.into_inner() else { return Converted::default() };
                self.streamed.remove(&id);
                let name = parsed.tool_name.into_inner().unwrap_or_else(|| "tool".into());
                let failed = parsed.is_error.into_inner().unwrap_or(false);
                let result = parsed.result.into_inner().unwrap_or_default();
                let output = result.text();
                let args = self.args.remove(&id).filter(|_| parsed.args.is_null()).unwrap_or(parsed.args);
                let mut tool = tool(&name, args);
                if name == "bash" {
                    tool.exit_code = bash_exit_code(failed, &output);
                }
                tool.diff = result.details.into_inner().and_then(|d| d.diff.into_inner());
                tool.output = Some(output);
                vec![Draft::ItemCompleted {
                    native_id: id,
                    kind: ItemKind::ToolCall,
                    role: None,
                    status: if failed { ItemStatus::Failed } else { ItemStatus::Completed },
                    content: vec![],
                    tool: Some(tool),
                    plan: None,
                }]
                .into()
            }
            "agent_end" => self.end_turn().into(),
            "auto_retry_start" => vec![Draft::Error {
                code: "model_retry".into(),
                message: format!(
                    "The model request failed ({}); Pi retries it (attempt {} of {}) in {} ms.",
                    parsed.error_message.get().map(String::as_str).unwrap_or("error"),
                    parsed.attempt.get().copied().unwrap_or(1),
                    parsed.max_attempts.get().copied().unwrap_or(1),
                    parsed.delay_ms.get().copied().unwrap_or(0),
                ),
                retryable: true,
            }]
            .into(),
            "compaction_start" => vec![Draft::Log {
                stream: LogStream::Stderr,
                text: format!(
                    "Pi is compacting the conversation ({}).",
                    parsed.reason.get().map(String::as_str).unwrap_or("manual")
                ),
            }]
            .into(),
            "extension_error" => vec![Draft::Log {
                stream: LogStream::Stderr,
                text: format!(
                    "A Pi extension failed: {}",
                    parsed.error.get().map(String::as_str).unwrap_or("no message")
                ),
            }]
            .into(),
            "extension_ui_request" => self.extension_ui(parsed),
            // Pi's own turns, the user's and the tools' messages, queues and
            // the end of retries and compactions: nothing the stream lacks.
            "agent_start" | "turn_start" | "turn_end" | "queue_update" | "auto_retry_end" | "compaction_end" => {
                Converted::default()
            }
            other => {
                vec![Draft::Unparsed { line: line.to_string(), error: format!("unknown pi event {other:?}") }].into()
            }
        }
    }

    fn response(&mut self, r: Line) -> Vec<Draft> {
        let command = r.command.get().cloned().unwrap_or_default();
        if r.success.get() == Some(&false) {
            let why = r.error.into_inner().unwrap_or_else(|| "no reason given".into());
            let message = format!("Pi refused the {command} command: {why}");
            let mut drafts =
                vec![Draft::Error { code: "agent_protocol".into(), message: message.clone(), retryable: false }];
            if command == "prompt" {
                if let Some(turn) = self.turn.as_mut() {
                    turn.error = Some(("turn_rejected".into(), message));
                }
                drafts.extend(self.end_turn());
            }
            return drafts;
        }
        match command.as_str() {
            "get_state" => {
                let state = r.data.into_inner().unwrap_or_default();
                let model = state.model.into_inner().and_then(|m| match (m.provider.into_inner(), m.id.into_inner()) {
                    (Some(p), Some(id)) => Some(format!("{p}/{id}")),
                    (None, id) => id,
                    (Some(_), None) => None,
                });
                // The file is what `--session` reopens; without one (`--no-session`), the id.
                let native = state.session_file.into_inner().or(state.session_id.into_inner());
                vec![Draft::SessionStarted { native_session_id: native, model }]
            }
            _ => vec![],
        }
    }

    fn update(&mut self, e: StreamEvent) -> Vec<Draft> {
        let kind = e.kind.get().cloned().unwrap_or_default();
        let index = e.content_index.get().copied().unwrap_or(0);
        match kind.as_str() {
            "text_start" | "thinking_start" => {
                let id = self.block_id(index);
                self.blocks.insert(index, id.clone());
                let (kind, role) = if kind == "text_start" {
                    (ItemKind::Message, Some(Role::Assistant))
                } else {
                    (ItemKind::Reasoning, None)
                };
                vec![Draft::ItemStarted { native_id: id, kind, role, tool: None }]
            }
            "text_delta" | "thinking_delta" | "toolcall_delta" => {
                let delta = e.delta.into_inner().unwrap_or_default();
                let Some(id) = self.blocks.get(&index).cloned() else { return vec![] };
                if delta.is_empty() {
                    return vec![];
                }
                let delta = match kind.as_str() {
                    "text_delta" => Delta::Text(delta),
                    "thinking_delta" => Delta::Reasoning(delta),
                    _ => Delta::Arguments(delta),
                };
                vec![Draft::ItemDelta { native_id: id, delta }]
            }
            "toolcall_start" => {
                // The partial message holds the call's id and name from its first chunk.
                let partial = e.partial.into_inner().unwrap_or_default();
                let block = partial.content.into_inner().unwrap_or_default().into_iter().nth(index);
                let block = block.and_then(|b| b.into_inner()).unwrap_or_default();
                let id = block.id.into_inner().unwrap_or_else(|| self.block_id(index));
                let name = block.name.into_inner().unwrap_or_else(|| "tool".into());
                self.blocks.insert(index, id.clone());
                let tool = tool(&name, serde_json::Value::Null);
                vec![Draft::ItemStarted { native_id: id, kind: ItemKind::ToolCall, role: None, tool: Some(tool) }]
            }
            "toolcall_end" => {
                let call = e.tool_call.into_inner().unwrap_or_default();
                let Some(id) = call.id.into_inner().or_else(|| self.blocks.get(&index).cloned()) else { return vec![] };
                let name = call.name.into_inner().unwrap_or_else(|| "tool".into());
                self.args.insert(id.clone(), call.arguments.clone());
                let tool = tool(&name, call.arguments);
                vec![Draft::ItemUpdated { native_id: id, kind: ItemKind::ToolCall, role: None, tool: Some(tool) }]
            }
            // `start`, `text_end`, `thinking_end`, `done`, `error`: the message's end says it all.
            _ => vec![],
        }
    }

    /// An assistant message ends: its text and thinking blocks complete
    /// (cancelled when aborted), its usage counts, its error is the turn's.
    fn message_end(&mut self, m: Message) -> Vec<Draft> {
        if m.role.get().map(String::as_str) != Some("assistant") {
            return vec![];
        }
        let stop = m.stop_reason.into_inner().unwrap_or_else(|| "stop".into());
        let status = match stop.as_str() {
            "aborted" => ItemStatus::Cancelled,
            "error" => ItemStatus::Failed,
            _ => ItemStatus::Completed,
        };
        let mut drafts = Vec::new();
        let blocks = m.content.into_inner().unwrap_or_default();
        for (index, block) in blocks.into_iter().enumerate() {
            let Some(block) = block.into_inner() else { continue };
            let id = self.blocks.get(&index).cloned().unwrap_or_else(|| self.block_id(index));
            let (kind, role, text) = match block.kind.get().map(String::as_str) {
                Some("text") => (ItemKind::Message, Some(Role::Assistant), block.text.into_inner()),
                Some("thinking") => (ItemKind::Reasoning, None, block.thinking.into_inner()),
                // A call the model never finished runs no tool: it ends with its message.
                Some("toolCall") if status != ItemStatus::Completed => {
                    let name = block.name.into_inner().unwrap_or_else(|| "tool".into());
                    drafts.push(Draft::ItemCompleted {
                        native_id: block.id.into_inner().unwrap_or(id),
                        kind: ItemKind::ToolCall,
                        role: None,
                        status,
                        content: vec![],
                        tool: Some(tool(&name, block.arguments)),
                        plan: None,
                    });
                    continue;
                }
                _ => continue,
            };
            let text = text.unwrap_or_default();
            drafts.push(Draft::ItemCompleted {
                native_id: id,
                kind,
                role,
                status,
                content: if text.is_empty() { vec![] } else { vec![Part::text(text)] },
                tool: None,
                plan: None,
            });
        }
        let u = m.usage.into_inner().unwrap_or_default();
        let usage = Usage {
            input_tokens: u.input.into_inner().filter(|n| *n > 0),
            output_tokens: u.output.into_inner().filter(|n| *n > 0),
            cached_input_tokens: u.cache_read.into_inner().filter(|n| *n > 0),
            reasoning_tokens: None,
            // Pi prices a reply from the model's configured costs: 0 when it has none.
            cost_usd: u.cost.into_inner().and_then(|c| c.total.into_inner()).filter(|c| *c > 0.0),
        };
        if usage != Usage::default() {
            drafts.push(Draft::Usage(usage.clone()));
        }
        let error = (stop == "error").then(|| {
            let message = m.error_message.into_inner().unwrap_or_else(|| "the model request failed".into());
            ("model_error".to_string(), message)
        });
        if let Some((code, message)) = &error {
            drafts.push(Draft::Error { code: code.clone(), message: message.clone(), retryable: false });
        }
        if let Some(turn) = self.turn.as_mut() {
            let acc = &mut turn.usage;
            add(&mut acc.input_tokens, usage.input_tokens);
            add(&mut acc.output_tokens, usage.output_tokens);
            add(&mut acc.cached_input_tokens, usage.cached_input_tokens);
            if let Some(c) = usage.cost_usd {
                acc.cost_usd = Some(acc.cost_usd.unwrap_or(0.0) + c);
            }
            turn.stop = Some(stop);
            if error.is_some() {
                turn.error = error;
            }
        }
        drafts
    }

    /// An extension asks something of the user: a dialog is dismissed at
    /// once (tether has no extension UI); the rest (status lines, widgets,
    /// titles, notifications) are for Pi's own terminal UI and are left out.
    fn extension_ui(&mut self, r: Line) -> Converted {
        let method = r.method.get().cloned().unwrap_or_default();
        let title = r.title.into_inner().unwrap_or_default();
        match (method.as_str(), r.id.into_inner()) {
            ("select" | "confirm" | "input" | "editor", Some(id)) => Converted {
                drafts: vec![Draft::Log {
                    stream: LogStream::Stderr,
                    text: format!(
                        "A Pi extension asked \"{title}\" ({method}); tether has no extension UI, so it was dismissed."
                    ),
                }],
                reply: Some(Outgoing::Ui(UiResponse::cancelled(id))),
            },
            _ => Converted::default(),
        }
    }
}

/// A tool item of Pi's tool `name` called with `args`.
fn tool(name: &str, args: serde_json::Value) -> Tool {
    let known: ToolArgs = decode(&args);
    Tool {
        name: name.to_string(),
        kind: tool_kind(name),
        server: None,
        paths: known.path.into_inner().into_iter().collect(),
        input: args,
        output: None,
        exit_code: None,
        diff: None,
    }
}

#[cfg(test)]
mod tests;
