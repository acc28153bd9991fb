//! ACP `session/update` notifications and `session/request_permission`
//! requests → event drafts. Pure: it writes nothing to the agent; its state is
//! what the protocol leaves to the client: the text item streaming now, and
//! every tool call as merged so far (updates carry only what changed, field by
//! field, and may come without a `tool_call` before them).

use std::collections::HashMap;

use serde_json::{json, Value};
use tether_protocol::{
    Delta, ItemKind, ItemStatus, PermissionAction, PlanEntry, PlanStatus, Role, Tool, ToolKind as Kind, Usage,
};

use super::wire::{
    ChunkMeta, CodexMcpError, CodexMcpInput, CodexMcpOutput, ContentBlock, DiffInput, PermissionAsk,
    RequestPermissionRequest, SessionUpdate, ToolCall, ToolCallContent, ToolCallStatus, ToolCallUpdate, ToolInput,
    ToolKind, ToolMeta, ToolOutput,
};
use crate::agents::lenient::decode;
use crate::agents::{Draft, NativeRequest};
use agent_client_protocol_schema::v1::{ContentChunk, PlanEntryStatus};

#[derive(Debug, Default)]
pub struct AcpConverter {
    /// The text item streaming now: its native id, kind, and the agent's message id if it gave one.
    text: Option<(String, ItemKind, Option<String>)>,
    items: u64,
    /// Every tool call of the turn, as merged so far.
    tools: HashMap<String, ToolCall>,
    /// Token counts an agent put in a chunk's `_meta.usage` (Qwen), for a turn whose answer has none.
    usage: Option<Usage>,
    /// The session's MCP servers by name (an agent may name their tools only by a prefix).
    mcp_servers: Vec<String>,
    /// The text of the turn's last update when it was a message chunk.
    last_chunk: Option<String>,
    /// Whether that chunk came without a `messageId`.
    last_chunk_unnamed: bool,
    /// The MCP server and tool of each call seen as one (Copilot's permission
    /// request renames its `SERVER-TOOL` call to the bare tool).
    mcp_calls: HashMap<String, (String, String)>,
}

impl AcpConverter {
    /// A converter for a session given these MCP servers.
    pub fn new(mcp_servers: Vec<String>) -> Self {
        AcpConverter { mcp_servers, ..Self::default() }
    }

    /// One `session/update`.
    pub fn update(&mut self, update: SessionUpdate) -> Vec<Draft> {
        // The last message chunk, until the turn shows something else (figures and the
        // session's own state do not count).
        match &update {
            SessionUpdate::AgentMessageChunk(ContentChunk { content: ContentBlock::Text(t), message_id, .. }) => {
                self.last_chunk = Some(t.text.clone());
                self.last_chunk_unnamed = message_id.is_none();
            }
            SessionUpdate::AgentMessageChunk(_)
            | SessionUpdate::AgentThoughtChunk(_)
            | SessionUpdate::ToolCall(_)
            | SessionUpdate::ToolCallUpdate(_)
            | SessionUpdate::Plan(_) => self.last_chunk = None,
            _ => {}
        }
        match update {
            SessionUpdate::AgentMessageChunk(chunk) => {
                if let Some(meta) = &chunk.meta {
                    let meta: ChunkMeta = decode(&Value::Object(meta.clone()));
                    if let Some(usage) = meta.usage.get() {
                        self.usage = Some(usage.to_usage());
                    }
                }
                self.text_delta(ItemKind::Message, chunk)
            }
            SessionUpdate::AgentThoughtChunk(chunk) => self.text_delta(ItemKind::Reasoning, chunk),
            SessionUpdate::ToolCall(call) => {
                let mut drafts = self.close_text();
                let id = call.tool_call_id.0.to_string();
                let known = self.tools.contains_key(&id);
                drafts.extend(parent_of(&id, &call, known));
                drafts.extend(self.tool_changed(id, call));
                drafts
            }
            SessionUpdate::ToolCallUpdate(update) => {
                let mut drafts = self.close_text();
                let id = update.tool_call_id.0.to_string();
                let known = self.tools.contains_key(&id);
                let merged = self.merged(update);
                drafts.extend(parent_of(&id, &merged, known));
                drafts.extend(self.tool_changed(id, merged));
                drafts
            }
            SessionUpdate::Plan(plan) => {
                let mut drafts = self.close_text();
                self.items += 1;
                let entries = plan
                    .entries
                    .into_iter()
                    .map(|e| PlanEntry {
                        text: e.content,
                        status: match e.status {
                            PlanEntryStatus::Completed => PlanStatus::Completed,
                            PlanEntryStatus::InProgress => PlanStatus::InProgress,
                            _ => PlanStatus::Pending,
                        },
                    })
                    .collect();
                drafts.push(Draft::ItemCompleted {
                    native_id: format!("plan-{}", self.items),
                    kind: ItemKind::Plan,
                    role: None,
                    status: ItemStatus::Completed,
                    content: vec![],
                    tool: None,
                    plan: Some(entries),
                });
                drafts
            }
            // The user's own message echoed (or replayed), the agent's slash
            // commands, modes, config and context-window figures: nothing a
            // turn's events show.
            _ => vec![],
        }
    }

    /// A `session/request_permission`: the tool call it is about (started if
    /// the agent sent no `tool_call` before it, as Gemini does), then the request.
    pub fn permission(&mut self, ask: PermissionAsk, request: RequestPermissionRequest) -> Vec<Draft> {
        let mut drafts = self.close_text();
        let id = request.tool_call.tool_call_id.0.to_string();
        let known = self.tools.contains_key(&id);
        let call = self.merged(request.tool_call);
        let tool = self.tool(&id, &call);
        if !known {
            drafts.extend(parent_of(&id, &call, known));
            drafts.push(Draft::ItemStarted {
                native_id: id.clone(),
                kind: ItemKind::ToolCall,
                role: None,
                tool: Some(tool.clone()),
            });
        }
        let action = match (call.kind, tool.kind) {
            (_, Kind::Mcp) => PermissionAction::Mcp,
            (ToolKind::Execute, _) => PermissionAction::Shell,
            (ToolKind::Edit | ToolKind::Delete | ToolKind::Move, _) => {
                // A new file's diff is from /dev/null (`a/dev/null` in Copilot's git diff).
                let new_file = |d: &str| d.lines().any(|l| l == "--- /dev/null" || l == "--- a/dev/null");
                if tool.diff.as_deref().is_some_and(new_file) {
                    PermissionAction::FileWrite
                } else {
                    PermissionAction::FileEdit
                }
            }
            _ => PermissionAction::Other,
        };
        let command = match (&call.raw_input, call.kind) {
            (Some(input), ToolKind::Execute) => decode::<ToolInput>(input).command.into_inner(),
            _ => None,
        }
        .or_else(|| (call.kind == ToolKind::Execute).then(|| call.title.clone()));
        let title = match (&tool.server, tool.kind) {
            (Some(server), Kind::Mcp) => format!("Call {} on the MCP server {server}", tool.name),
            _ => call.title.clone(),
        };
        drafts.push(Draft::PermissionRequested {
            native: NativeRequest::Acp(ask),
            native_item_id: Some(id),
            action,
            title,
            command,
            path: tool.paths.first().cloned(),
            diff: tool.diff.clone(),
            input: call.raw_input.clone(),
        });
        drafts
    }

    /// The text of the turn's last update, if it was a message chunk.
    pub fn last_chunk(&self) -> Option<&str> {
        self.last_chunk.as_deref()
    }

    /// The text of the turn's last update, if it was a message chunk sent
    /// without a `messageId` (how Codex's adapter reports a failed turn).
    pub fn last_unnamed_chunk(&self) -> Option<&str> {
        self.last_chunk.as_deref().filter(|_| self.last_chunk_unnamed)
    }

    /// The turn ended: the session closes what is still open (completed,
    /// cancelled or failed, as the turn ended). Answers the usage the
    /// updates carried (ACP's own `usage` shape), if any.
    pub fn turn_ended(&mut self) -> Option<Usage> {
        self.tools.clear();
        self.mcp_calls.clear();
        self.last_chunk = None;
        self.text = None;
        self.usage.take()
    }

    fn text_delta(&mut self, kind: ItemKind, chunk: ContentChunk) -> Vec<Draft> {
        let ContentBlock::Text(text) = chunk.content else { return vec![] };
        if text.text.is_empty() {
            return vec![];
        }
        let message_id = chunk.message_id.map(|m| m.0.to_string());
        let mut drafts = vec![];
        let same = matches!(&self.text, Some((_, k, m)) if *k == kind && (message_id.is_none() || *m == message_id));
        if !same && kind == ItemKind::Reasoning && text.text.trim().is_empty() {
            // Codex's adapter opens each reasoning summary with a blank `"\n\n"`: no thought yet.
            return drafts;
        }
        if !same {
            drafts.extend(self.close_text());
            self.items += 1;
            let prefix = if kind == ItemKind::Message { "msg" } else { "thought" };
            self.text = Some((format!("{prefix}-{}", self.items), kind, message_id));
        }
        let native_id = self.text.as_ref().map(|t| t.0.clone()).unwrap_or_default();
        let delta = if kind == ItemKind::Message { Delta::Text(text.text) } else { Delta::Reasoning(text.text) };
        drafts.push(Draft::ItemDelta { native_id, delta });
        drafts
    }

    fn close_text(&mut self) -> Vec<Draft> {
        let Some((native_id, kind, _)) = self.text.take() else { return vec![] };
        vec![Draft::ItemCompleted {
            native_id,
            kind,
            role: (kind == ItemKind::Message).then_some(Role::Assistant),
            status: ItemStatus::Completed,
            content: vec![],
            tool: None,
            plan: None,
        }]
    }

    /// The tool call with this update applied, field by field.
    fn merged(&mut self, update: ToolCallUpdate) -> ToolCall {
        let id = update.tool_call_id.0.to_string();
        let call = self.tools.entry(id).or_insert_with(|| ToolCall::new(update.tool_call_id.clone(), ""));
        if let Some(more) = update.meta.clone() {
            // Codex's adapter sends a command's output in pieces: the call keeps all of it.
            let output = |m: &ToolMeta| m.terminal_output_delta.get().and_then(|t| t.data.get().cloned());
            let before = output(&meta_of(call));
            let piece = output(&decode(&Value::Object(more.clone())));
            let mut meta = call.meta.take().unwrap_or_default();
            meta.extend(more);
            if let Some(piece) = piece {
                let whole = format!("{}{piece}", before.unwrap_or_default());
                meta.insert(TERMINAL_OUTPUT.into(), json!({ "data": whole }));
            }
            call.meta = Some(meta);
        }
        // A diff once shown stays with the call: OpenCode's last update replaces it with its result.
        let diffs: Vec<ToolCallContent> =
            call.content.iter().filter(|c| matches!(c, ToolCallContent::Diff(_))).cloned().collect();
        call.update(update.fields);
        if !call.content.iter().any(|c| matches!(c, ToolCallContent::Diff(_))) {
            call.content.splice(0..0, diffs);
        }
        // Gemini sends an MCP call's arguments as one JSON text before it runs, and no `rawInput`.
        let running = matches!(call.status, ToolCallStatus::Pending | ToolCallStatus::InProgress);
        if call.raw_input.is_none() && running {
            if let [ToolCallContent::Content(c)] = call.content.as_slice() {
                if let ContentBlock::Text(t) = &c.content {
                    if let Ok(args @ Value::Object(_)) = serde_json::from_str::<Value>(&t.text) {
                        call.raw_input = Some(args);
                        call.content.clear();
                    }
                }
            }
        }
        call.clone()
    }

    /// The call as tether shows it; an MCP call stays the call it was first
    /// seen as, whatever its later titles (Copilot's bare `echo_upper` of the
    /// server `echo` would read as OpenCode's `echo_` + `upper`).
    fn tool(&mut self, id: &str, call: &ToolCall) -> Tool {
        let mcp = self.mcp_calls.get(id).cloned().or_else(|| mcp_of(call, &self.mcp_servers));
        if let Some(mcp) = &mcp {
            self.mcp_calls.insert(id.to_string(), mcp.clone());
        }
        tool_with(call, mcp)
    }

    fn tool_changed(&mut self, id: String, call: ToolCall) -> Vec<Draft> {
        self.tools.insert(id.clone(), call.clone());
        let tool = Some(self.tool(&id, &call));
        match call.status {
            ToolCallStatus::Completed | ToolCallStatus::Failed => vec![Draft::ItemCompleted {
                native_id: id,
                kind: ItemKind::ToolCall,
                role: None,
                status: if call.status == ToolCallStatus::Failed { ItemStatus::Failed } else { ItemStatus::Completed },
                content: vec![],
                tool,
                plan: None,
            }],
            _ => vec![Draft::ItemUpdated { native_id: id, kind: ItemKind::ToolCall, role: None, tool }],
        }
    }
}

/// A call that is new to the turn and came from a subagent (Claude's
/// adapter marks it `_meta.claudeCode.parentToolUseId`): the call that
/// started the subagent is its parent.
fn parent_of(id: &str, call: &ToolCall, known: bool) -> Option<Draft> {
    if known {
        return None;
    }
    let parent = meta_of(call).claude_code.get()?.parent_tool_use_id.get()?.clone();
    (parent != id).then(|| Draft::ItemParent { native_id: id.to_string(), parent_native_id: parent })
}

/// Where Codex's adapter puts a command's output (`_meta`).
const TERMINAL_OUTPUT: &str = "terminal_output_delta";

/// What tether reads of a tool call's `_meta`.
fn meta_of(call: &ToolCall) -> ToolMeta {
    call.meta.as_ref().map(|m| decode(&Value::Object(m.clone()))).unwrap_or_default()
}

/// The tool's own name, as its agent's `_meta` gives it.
fn meta_tool_name(meta: &ToolMeta) -> Option<String> {
    meta.tool_name.get().cloned().or_else(|| meta.claude_code.get()?.tool_name.get().cloned())
}

/// (server, tool) of an MCP tool call: a `mcp__SERVER__TOOL` name (Qwen,
/// Claude), a title `TOOL (SERVER MCP Server)` (Gemini), `_meta.provenance`,
/// or a title `SERVER_TOOL` (OpenCode, which spells the server its own way)
/// or `SERVER-TOOL` (Copilot) of kind `other` naming one of the session's
/// `servers` (the longest that fits).
fn mcp_of(call: &ToolCall, servers: &[String]) -> Option<(String, String)> {
    let meta = meta_of(call);
    if meta.is_mcp_tool_call.get() == Some(&true) {
        // Codex's adapter: `rawInput` `{server, tool, arguments}`, titled `mcp.SERVER.TOOL`.
        let input: CodexMcpInput = call.raw_input.as_ref().map(decode).unwrap_or_default();
        if let (Some(server), Some(tool)) = (input.server.get(), input.tool.get()) {
            return Some((server.clone(), tool.clone()));
        }
        let rest = call.title.strip_prefix("mcp.")?;
        let server = servers.iter().filter(|s| rest.starts_with(&format!("{s}."))).max_by_key(|s| s.len())?;
        return Some((server.clone(), rest[server.len() + 1..].to_string()));
    }
    if let Some(name) = meta_tool_name(&meta) {
        if let Some((server, tool)) = name.strip_prefix("mcp__").and_then(|r| r.split_once("__")) {
            return Some((server.to_string(), tool.to_string()));
        }
    }
    if let Some((tool, rest)) = call.title.split_once(" (") {
        if let Some(server) = rest.strip_suffix(" MCP Server)") {
            return Some((server.to_string(), tool.to_string()));
        }
    }
    if meta.provenance.get().map(String::as_str) == Some("mcp") {
        let server = meta.server_id.get()?.clone();
        return Some((server, meta_tool_name(&meta).unwrap_or_else(|| call.title.clone())));
    }
    if call.kind != ToolKind::Other {
        return None;
    }
    servers
        .iter()
        .filter_map(|server| {
            let opencode = || call.title.strip_prefix(&crate::agents::opencode::tool_prefix(server))?.strip_prefix('_');
            let copilot = || call.title.strip_prefix(server.as_str())?.strip_prefix('-');
            let tool = opencode().or_else(copilot)?;
            (!tool.is_empty()).then(|| (server.clone(), tool.to_string()))
        })
        .max_by_key(|(server, _)| server.len())
}

/// The tool call as tether shows it (`servers`: the session's MCP servers).
pub fn tool_of(call: &ToolCall, servers: &[String]) -> Tool {
    tool_with(call, mcp_of(call, servers))
}

/// The tool call as tether shows it, given the MCP server and tool it calls, if it does.
fn tool_with(call: &ToolCall, mcp: Option<(String, String)>) -> Tool {
    // Claude's subagent tool (`Agent`, formerly `Task`; kind `think` in the adapter's calls).
    let claude_tool = meta_of(call).claude_code.get().and_then(|c| c.tool_name.get().cloned());
    let subagent = matches!(claude_tool.as_deref(), Some("Agent" | "Task"));
    let kind = match (&mcp, call.kind) {
        (Some(_), _) => Kind::Mcp,
        (None, _) if subagent => Kind::Task,
        (None, ToolKind::Execute) => Kind::Shell,
        (None, ToolKind::Edit | ToolKind::Delete | ToolKind::Move) => Kind::FileEdit,
        (None, ToolKind::Read) => Kind::FileRead,
        (None, ToolKind::Search) => Kind::Search,
        (None, ToolKind::Fetch) => Kind::Web,
        _ => Kind::Other,
    };
    let name = match &mcp {
        Some((_, tool)) => tool.clone(),
        None => meta_tool_name(&meta_of(call)).or_else(|| call.name.clone()).unwrap_or_else(|| {
            match call.kind {
                ToolKind::Execute => "shell",
                ToolKind::Edit => "edit",
                ToolKind::Delete => "delete",
                ToolKind::Move => "move",
                ToolKind::Read => "read",
                ToolKind::Search => "search",
                ToolKind::Fetch => "fetch",
                ToolKind::Think => "think",
                _ => "tool",
            }
            .to_string()
        }),
    };
    let mut paths: Vec<String> = call.locations.iter().map(|l| l.path.display().to_string()).collect();
    let mut diff = String::new();
    let mut text = Vec::new();
    for content in &call.content {
        match content {
            ToolCallContent::Diff(d) => {
                let path = d.path.display().to_string();
                let old = d.old_text.as_deref().unwrap_or("");
                let lines = |prefix: char, s: &str| s.lines().map(|l| format!("{prefix}{l}\n")).collect::<String>();
                let from = if old.is_empty() { "/dev/null".to_string() } else { path.clone() };
                diff.push_str(&format!("--- {from}\n+++ {path}\n{}{}", lines('-', old), lines('+', &d.new_text)));
                if !paths.contains(&path) {
                    paths.push(path);
                }
            }
            ToolCallContent::Content(c) => {
                if let ContentBlock::Text(t) = &c.content {
                    text.push(t.text.clone());
                }
            }
            _ => {}
        }
    }
    // No diff shown, but one in its input (Copilot asks to write with `{fileName, diff}`, a git diff).
    if diff.is_empty() {
        let input: DiffInput = call.raw_input.as_ref().map(decode).unwrap_or_default();
        if let Some(d) = input.diff.get() {
            diff = d.trim_start_matches('\n').to_string();
        }
    }
    // Output in `content`, else in `rawOutput` (a string, or an object's `output`), once
    // the call ended: before that its text describes the call.
    let ended = matches!(call.status, ToolCallStatus::Completed | ToolCallStatus::Failed);
    let raw = call.raw_output.as_ref();
    let fields: ToolOutput = raw.map(decode).unwrap_or_default();
    let meta = meta_of(call);
    let codex_mcp = meta.is_mcp_tool_call.get() == Some(&true);
    let output = if !ended {
        None
    } else if !text.is_empty() {
        Some(text.join("\n"))
    } else if codex_mcp {
        raw.map(codex_mcp_output)
    } else {
        raw.and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| fields.output.get().cloned())
            // Codex's adapter: only in `_meta`.
            .or_else(|| meta.terminal_output_delta.get().and_then(|t| t.data.get().cloned()))
    };
    let exit_code =
        fields.exit_code().or_else(|| meta.terminal_exit.get().and_then(|e| e.exit_code.get()).map(|c| *c as i32));
    // Its input, else what the title says (Gemini sends no input; a shell call's title is its command).
    let input = match &call.raw_input {
        Some(Value::Object(o)) if o.is_empty() => None,
        // Codex's adapter: the MCP tool's arguments, under the server's and the tool's names.
        Some(raw) if codex_mcp => decode::<CodexMcpInput>(raw).arguments.into_inner().or_else(|| Some(raw.clone())),
        other => other.clone(),
    }
    .unwrap_or_else(|| match call.kind {
        ToolKind::Execute => json!({"command": call.title}),
        _ => json!({"title": call.title}),
    });
    Tool {
        name,
        kind,
        server: mcp.map(|(server, _)| server),
        input,
        output: output.filter(|o| !o.is_empty()),
        exit_code,
        diff: (!diff.is_empty()).then_some(diff),
        paths,
    }
}

/// The text of an MCP call's result as Codex's adapter sends it
/// (`{"result": {"content": [..]}, "error": ..}`): its text blocks, or the error.
fn codex_mcp_output(raw: &Value) -> String {
    let out: CodexMcpOutput = decode(raw);
    match out.error {
        Some(Value::String(text)) => return text,
        Some(error) if !error.is_null() => {
            let said: CodexMcpError = decode(&error);
            return said.message.into_inner().unwrap_or_else(|| error.to_string());
        }
        _ => {}
    }
    let content = out.result.into_inner().map(|r| r.content).unwrap_or_default();
    let texts: Vec<String> = content.into_iter().filter_map(|b| b.into_inner()?.text.into_inner()).collect();
    texts.join("\n")
}

#[cfg(test)]
mod tests;
