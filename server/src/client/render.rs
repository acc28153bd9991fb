//! Universal events as readable terminal text.
//!
//! The transcript (assistant text as it streams, tool calls with their
//! command and a short output, diffs) goes to `out`; what is about the run
//! rather than the conversation (status, errors, the turn's end) goes to
//! `err`, so `tether run … > file` keeps only the conversation.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use tether_protocol::{
    Decision, Delta, EndReason, Event, EventBody, Item, ItemKind, ItemStatus, Part, PermissionMode,
    PermissionRequested, PermissionResolved, QuestionRequested, QuestionResolved, ResolvedBy, Role, StopReason, Tool,
    Usage,
};

/// Lines of a tool's output shown at most.
const OUTPUT_LINES: usize = 6;
/// Characters of one shown line at most.
const LINE_CHARS: usize = 160;
/// Lines of a diff shown with a permission at most.
const DIFF_LINES: usize = 40;

/// ANSI styles, or nothing when colour is off.
#[derive(Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }
    pub fn red(self, text: &str) -> String {
        self.paint("31", text)
    }
    pub fn green(self, text: &str) -> String {
        self.paint("32", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.paint("33", text)
    }
    pub fn cyan(self, text: &str) -> String {
        self.paint("36", text)
    }
}

/// Renders one session's events; remembers what it has shown.
pub struct Renderer<O: Write, E: Write> {
    out: O,
    err: E,
    style: Style,
    /// Items whose text arrived as deltas (their completion does not repeat it).
    streamed: HashSet<String>,
    /// Tool calls started without their input (it streams as arguments):
    /// their line is shown when they complete.
    deferred: HashSet<String>,
    /// Diffs already shown with a permission, by item and by text: the
    /// completed tool call does not show them again.
    diffs_shown: HashSet<String>,
    /// The prompts of the questions asked, by question id, so that the
    /// answer can be shown with its question.
    prompts: HashMap<String, Vec<String>>,
    /// Error messages shown in this turn (its end does not repeat them).
    errors_shown: HashSet<String>,
    /// The cursor is not at the start of a line on `out`.
    mid_line: bool,
    /// The kind of the text being streamed (reasoning is dimmed).
    streaming_reasoning: bool,
}

impl<O: Write, E: Write> Renderer<O, E> {
    pub fn new(out: O, err: E, style: Style) -> Self {
        Renderer {
            out,
            err,
            style,
            streamed: HashSet::new(),
            deferred: HashSet::new(),
            diffs_shown: HashSet::new(),
            prompts: HashMap::new(),
            errors_shown: HashSet::new(),
            mid_line: false,
            streaming_reasoning: false,
        }
    }

    pub fn style(&self) -> Style {
        self.style
    }

    /// Writes a line about the run on `err`, after ending the transcript's line.
    pub fn note(&mut self, line: &str) -> io::Result<()> {
        self.end_line()?;
        self.out.flush()?;
        writeln!(self.err, "{line}")?;
        self.err.flush()
    }

    fn end_line(&mut self) -> io::Result<()> {
        if self.mid_line {
            writeln!(self.out)?;
            self.mid_line = false;
        }
        Ok(())
    }

    fn text(&mut self, text: &str, reasoning: bool) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        if reasoning != self.streaming_reasoning {
            self.end_line()?;
            self.streaming_reasoning = reasoning;
        }
        let shown = if reasoning { self.style.dim(text) } else { text.to_owned() };
        write!(self.out, "{shown}")?;
        self.mid_line = !text.ends_with('\n');
        self.out.flush()
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        self.end_line()?;
        writeln!(self.out, "{line}")?;
        self.out.flush()
    }

    /// Shows one event.
    pub fn event(&mut self, event: &Event) -> io::Result<()> {
        let s = self.style;
        match &event.body {
            EventBody::SessionStarted(d) => {
                let version = d.agent_version.as_deref().map(|v| format!(" {v}")).unwrap_or_default();
                self.note(&s.dim(&format!("{}{version} started in {} ({})", d.agent, d.cwd, event.session_id)))
            }
            EventBody::TurnStarted(d) => {
                let input = Part::joined_text(&d.input);
                self.line(&s.cyan(&format!("> {}", first_line(&input))))
            }
            EventBody::ItemStarted(d) => self.item_started(&d.item),
            EventBody::ItemDelta(d) => match &d.delta {
                Delta::Text(t) => {
                    self.streamed.insert(d.item_id.clone());
                    self.text(t, false)
                }
                Delta::Reasoning(t) => {
                    self.streamed.insert(d.item_id.clone());
                    self.text(t, true)
                }
                Delta::Output(_) | Delta::Arguments(_) => Ok(()),
            },
            EventBody::ItemCompleted(d) => self.item_completed(&d.item),
            EventBody::PermissionRequested(d) => self.permission(d),
            EventBody::PermissionResolved(d) => self.line(&s.dim(&format!("  {}", permission_resolved(d)))),
            EventBody::QuestionRequested(d) => self.question(d),
            EventBody::QuestionResolved(d) => {
                let prompts = self.prompts.remove(&d.question_id).unwrap_or_default();
                for line in question_resolved(&prompts, d) {
                    self.line(&s.dim(&format!("  {line}")))?;
                }
                Ok(())
            }
            EventBody::TurnCompleted(d) => {
                let mut line = match d.stop_reason {
                    StopReason::EndTurn => s.dim("done"),
                    StopReason::Interrupted => s.yellow("interrupted"),
                    StopReason::Error => s.red("the turn failed"),
                    StopReason::MaxTurns => s.yellow("stopped: the agent reached its limit of turns"),
                    StopReason::Refused => s.red("the model refused to go on"),
                };
                if let Some(e) = &d.error {
                    let message = readable_error(&e.message);
                    // Said once: not again when the error event before said it.
                    if !self.errors_shown.contains(&message) {
                        line.push_str(&format!(": {message}{}", code_suffix(&e.code)));
                    }
                }
                self.errors_shown.clear();
                if let Some(u) = &d.usage {
                    let usage = usage_text(u);
                    if !usage.is_empty() {
                        line.push_str(&s.dim(&format!(" · {usage}")));
                    }
                }
                self.note(&line)
            }
            EventBody::Error(d) => {
                let message = readable_error(&d.message);
                let line = s.red(&format!("error: {message}{}", code_suffix(&d.code)));
                self.errors_shown.insert(message);
                self.note(&line)
            }
            EventBody::AgentExited(d) if !d.expected => {
                let how = match (d.exit_code, d.signal) {
                    (_, Some(sig)) => format!("signal {sig}"),
                    (Some(code), None) => format!("exit code {code}"),
                    (None, None) => "unknown cause".to_owned(),
                };
                self.note(&s.red(&format!("the agent exited ({how})")))
            }
            EventBody::SessionEnded(d) => {
                let what = match d.reason {
                    EndReason::Terminated => "the session was ended",
                    EndReason::Failed => "the session failed",
                };
                let message = d.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                self.note(&s.yellow(&format!("{what}{message}")))
            }
            EventBody::ServerRestarted(_) => self.note(&s.yellow("the server restarted")),
            EventBody::ServerKeepAwake(d) if !d.held => self.note(&s.dim(
                "tether stopped keeping the Sprite awake while this waits for you; it may pause, and wakes when you \
                 answer",
            )),
            EventBody::ServerKeepAwake(_) => Ok(()),
            EventBody::ServerDisk(d) => match d.state.as_str() {
                "full" => self.note(&s.red(
                    "the disk holding tether's data dir is full: turns end and new work is refused until there is room",
                )),
                "low" => self.note(&s.yellow("the disk holding tether's data dir is low on space")),
                _ => self.note(&s.dim("the disk holding tether's data dir has room again")),
            },
            EventBody::PortOpened(d) => self.note(&s.dim(&format!(
                "a server listens on port {} ({}): open it with `tether ports link {}`",
                d.port, d.address, d.port
            ))),
            EventBody::PortClosed(d) => self.note(&s.dim(&format!("port {} closed", d.port))),
            EventBody::AgentUnparsed(d) => self.note(
                &s.dim(&format!("the agent printed a line tether does not understand: {}", clip(first_line(&d.line)))),
            ),
            EventBody::AgentExited(_)
            | EventBody::SessionStatus(_)
            | EventBody::ServerResumed(_)
            | EventBody::UsageUpdated(_)
            | EventBody::AgentLog(_)
            | EventBody::McpStatus(_) => Ok(()),
        }
    }

    fn item_started(&mut self, item: &Item) -> io::Result<()> {
        if item.kind == ItemKind::ToolCall {
            if let Some(tool) = &item.tool {
                if is_question_tool(tool) {
                    // The question and its answer are shown from their own events.
                    return Ok(());
                }
                if tool_summary(&tool.input).is_empty() {
                    self.deferred.insert(item.item_id.clone());
                    return Ok(());
                }
                return self.tool_line(item, tool);
            }
        }
        Ok(())
    }

    /// `● Bash ls -l`; a subagent's call (it has a parent item) `  ↳ Bash ls -l`.
    fn tool_line(&mut self, item: &Item, tool: &tether_protocol::Tool) -> io::Result<()> {
        let mark = if item.parent_item_id.is_some() { "  ↳" } else { "●" };
        let line = format!("{} {}", self.style.bold(&format!("{mark} {}", tool.name)), tool_summary(&tool.input));
        self.line(line.trim_end())
    }

    fn item_completed(&mut self, item: &Item) -> io::Result<()> {
        let s = self.style;
        match item.kind {
            ItemKind::Message | ItemKind::Reasoning => {
                if item.role == Some(Role::User) {
                    return Ok(());
                }
                if !self.streamed.remove(&item.item_id) {
                    let text = item.text();
                    self.text(&text, item.kind == ItemKind::Reasoning)?;
                }
                self.end_line()
            }
            ItemKind::Plan => {
                for entry in item.plan.iter().flatten() {
                    let mark = match entry.status {
                        tether_protocol::PlanStatus::Completed => "[x]",
                        tether_protocol::PlanStatus::InProgress => "[>]",
                        tether_protocol::PlanStatus::Pending => "[ ]",
                    };
                    self.line(&format!("  {mark} {}", entry.text))?;
                }
                Ok(())
            }
            ItemKind::ToolCall => {
                let Some(tool) = &item.tool else { return Ok(()) };
                if is_question_tool(tool) {
                    self.deferred.remove(&item.item_id);
                    return match item.status {
                        ItemStatus::Failed => self.line(&s.red("  the question could not be asked")),
                        _ => Ok(()),
                    };
                }
                if self.deferred.remove(&item.item_id) {
                    self.tool_line(item, tool)?;
                }
                let diff = tool.diff.as_deref().filter(|d| !d.trim().is_empty());
                let shown_before =
                    self.diffs_shown.remove(&item.item_id) | diff.is_some_and(|d| self.diffs_shown.remove(d.trim()));
                if let Some(diff) = diff.filter(|_| !shown_before) {
                    for line in diff.lines() {
                        self.line(&paint_diff_line(s, line))?;
                    }
                }
                if let Some(output) = tool.output.as_deref().filter(|o| !o.trim().is_empty()) {
                    let lines: Vec<&str> = output.trim_end().lines().collect();
                    for line in lines.iter().take(OUTPUT_LINES) {
                        self.line(&s.dim(&format!("  │ {}", clip(line))))?;
                    }
                    if lines.len() > OUTPUT_LINES {
                        self.line(&s.dim(&format!("  │ … {} more lines", lines.len() - OUTPUT_LINES)))?;
                    }
                }
                match item.status {
                    ItemStatus::Completed if tool.exit_code.is_some_and(|c| c != 0) => {
                        self.line(&s.red(&format!("  exit code {}", tool.exit_code.unwrap_or_default())))
                    }
                    ItemStatus::Failed => self.line(&s.red("  failed")),
                    ItemStatus::Declined => self.line(&s.yellow("  declined")),
                    ItemStatus::Cancelled => self.line(&s.yellow("  cancelled")),
                    _ => Ok(()),
                }
            }
        }
    }

    pub fn permission(&mut self, p: &PermissionRequested) -> io::Result<()> {
        let s = self.style;
        self.note(&s.yellow(&format!("? permission: {}", p.title)))?;
        if let Some(command) = p.command.as_deref().filter(|c| !p.title.contains(c)) {
            self.note(&format!("  $ {command}"))?;
        }
        if let Some(path) = p.path.as_deref().filter(|path| !p.title.contains(path)) {
            self.note(&format!("  {path}"))?;
        }
        if let Some(diff) = p.diff.as_deref().filter(|d| !d.trim().is_empty()) {
            let lines: Vec<&str> = diff.lines().collect();
            for line in lines.iter().take(DIFF_LINES) {
                self.note(&paint_diff_line(s, line))?;
            }
            if lines.len() > DIFF_LINES {
                self.note(&s.dim(&format!("  … {} more lines", lines.len() - DIFF_LINES)))?;
            }
            // Shown here, where it is decided on; not again when the edit is done.
            if let Some(item) = &p.item_id {
                self.diffs_shown.insert(item.clone());
            }
            self.diffs_shown.insert(diff.trim().to_owned());
        }
        Ok(())
    }

    pub fn question(&mut self, q: &QuestionRequested) -> io::Result<()> {
        let s = self.style;
        self.prompts.insert(q.question_id.clone(), q.questions.iter().map(|q| q.prompt.clone()).collect());
        for question in &q.questions {
            let header = question.header.as_deref().map(|h| format!("[{h}] ")).unwrap_or_default();
            self.note(&s.yellow(&format!("? {header}{}", question.prompt)))?;
            for (i, option) in question.options.iter().enumerate() {
                let description = option.description.as_deref().map(|d| s.dim(&format!(" — {d}"))).unwrap_or_default();
                self.note(&format!("  {}. {}{description}", i + 1, option.label))?;
            }
        }
        Ok(())
    }

    /// Asks on `err` without a newline (the answer is typed after it).
    pub fn ask(&mut self, prompt: &str) -> io::Result<()> {
        self.end_line()?;
        self.out.flush()?;
        write!(self.err, "{}", self.style.bold(prompt))?;
        self.err.flush()
    }
}

/// One line of a diff, indented: additions green, removals red, the rest dim.
fn paint_diff_line(s: Style, line: &str) -> String {
    let shown = clip(line);
    let painted = if line.starts_with('+') && !line.starts_with("+++") {
        s.green(&shown)
    } else if line.starts_with('-') && !line.starts_with("---") {
        s.red(&shown)
    } else {
        s.dim(&shown)
    };
    format!("  {painted}")
}

/// The tool an agent asks its questions with (Claude's `AskUserQuestion`,
/// OpenCode's `question`): its input is the questions, its output the
/// answers, both shown from the question's own events instead.
fn is_question_tool(tool: &Tool) -> bool {
    tool.input.get("questions").is_some_and(serde_json::Value::is_array)
        || matches!(tool.name.as_str(), "AskUserQuestion" | "question" | "request_user_input")
}

/// "allowed once", "denied by the permission mode", …
fn permission_resolved(r: &PermissionResolved) -> String {
    let decision = match r.decision {
        Decision::AllowOnce => "allowed once",
        Decision::AllowAlways => "allowed from now on",
        Decision::Deny => "denied",
    };
    match r.by {
        ResolvedBy::Client => decision.to_owned(),
        ResolvedBy::Mode => format!("{decision} by the session's permission mode"),
        ResolvedBy::Agent => format!("{decision} by the agent"),
    }
}

/// The answers as sentences, each after its question when it is known:
/// `Which colour? You answered "Blue".`
fn question_resolved(prompts: &[String], r: &QuestionResolved) -> Vec<String> {
    if r.rejected {
        return vec!["The question was declined without an answer.".to_owned()];
    }
    let Some(answers) = r.answers.as_ref().filter(|a| !a.is_empty()) else {
        return vec!["The question was closed without an answer.".to_owned()];
    };
    answers
        .iter()
        .enumerate()
        .map(|(i, chosen)| {
            let said = if chosen.is_empty() {
                "You gave no answer.".to_owned()
            } else {
                format!("You answered {}.", quoted_list(chosen))
            };
            match prompts.get(i).map(|p| p.trim()).filter(|p| !p.is_empty()) {
                Some(prompt) => format!("{prompt} {said}"),
                None => said,
            }
        })
        .collect()
}

/// `"a"`, `"a" and "b"`, `"a", "b" and "c"`.
fn quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("\"{}\"", clip(first_line(i)))).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// An error message without the JSON an agent may have put in it:
/// `API Error: 500 {"error":{"message":"overloaded"}}` → `API Error: 500 overloaded`.
fn readable_error(message: &str) -> String {
    let Some(start) = message.find('{') else { return message.to_owned() };
    let Ok(body) = serde_json::from_str::<serde_json::Value>(message[start..].trim_end()) else {
        return message.to_owned();
    };
    let inner = ["/error/message", "/message", "/error", "/detail"]
        .iter()
        .find_map(|pointer| body.pointer(pointer).and_then(serde_json::Value::as_str));
    match inner {
        Some(inner) => format!("{} {inner}", message[..start].trim_end()).trim_start().to_owned(),
        None => message.to_owned(),
    }
}

/// ` (code)`, or nothing for a code that says nothing.
fn code_suffix(code: &str) -> String {
    if code.is_empty() || code == "unknown" {
        String::new()
    } else {
        format!(" ({code})")
    }
}

/// A permission mode in words, with the value `--permission-mode` takes.
pub fn permission_mode(mode: PermissionMode) -> String {
    let words = match mode {
        PermissionMode::Default => "ask before acting",
        PermissionMode::AcceptEdits => "edit files without asking, ask for the rest",
        PermissionMode::Bypass => "never ask",
        PermissionMode::Plan => "plan only, change nothing",
    };
    format!("{words} ({})", mode.as_str())
}

/// An RFC 3339 time in UTC as people read it: `2026-12-05 13:12:29 UTC`.
pub fn when(rfc3339: &str) -> String {
    let Some(utc) = rfc3339.strip_suffix('Z') else { return rfc3339.to_owned() };
    let Some((date, time)) = utc.split_once('T') else { return rfc3339.to_owned() };
    let seconds = time.split('.').next().unwrap_or(time);
    format!("{date} {seconds} UTC")
}

/// A tool's input in one line: its command, path or pattern when it has
/// one, else its plain fields as `name: value` (never JSON).
fn tool_summary(input: &serde_json::Value) -> String {
    for key in ["command", "cmd", "file_path", "path", "pattern", "url", "query", "description"] {
        match input.get(key) {
            Some(serde_json::Value::String(v)) => return clip(first_line(v)),
            Some(serde_json::Value::Array(parts)) => {
                let words: Vec<&str> = parts.iter().filter_map(|p| p.as_str()).collect();
                if !words.is_empty() {
                    return clip(&words.join(" "));
                }
            }
            _ => {}
        }
    }
    match input {
        serde_json::Value::Object(map) => {
            let fields: Vec<String> =
                map.iter().filter_map(|(name, v)| plain(v).map(|v| format!("{name}: {v}"))).collect();
            clip(&fields.join(", "))
        }
        other => plain(other).map(|v| clip(&v)).unwrap_or_default(),
    }
}

/// A string, number or boolean as text; `None` for what only JSON can show.
fn plain(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(first_line(s).to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn usage_text(u: &Usage) -> String {
    let mut parts = Vec::new();
    match (u.input_tokens.filter(|n| *n > 0), u.output_tokens.filter(|n| *n > 0)) {
        (Some(i), Some(o)) => parts.push(format!("{i} tokens in, {o} out")),
        (Some(i), None) => parts.push(format!("{i} tokens in")),
        (None, Some(o)) => parts.push(format!("{o} tokens out")),
        (None, None) => {}
    }
    if let Some(c) = u.cost_usd.filter(|c| *c > 0.0) {
        parts.push(format!("${c:.4}"));
    }
    parts.join(", ")
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn clip(line: &str) -> String {
    if line.chars().count() <= LINE_CHARS {
        line.to_owned()
    } else {
        let mut clipped: String = line.chars().take(LINE_CHARS - 1).collect();
        clipped.push('…');
        clipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tether_protocol::event_type;

    fn event(kind: &str, data: serde_json::Value) -> Event {
        serde_json::from_value(
            json!({"seq":1,"gseq":1,"session_id":"ses_1","time":"t","source":"agent","type":kind,"data":data}),
        )
        .unwrap()
    }

    fn render(events: &[Event], color: bool) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut r = Renderer::new(&mut out, &mut err, Style { color });
        for e in events {
            r.event(e).unwrap();
        }
        drop(r);
        (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn item(id: &str, kind: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut item = json!({"item_id":id,"turn_id":"trn_1","kind":kind,"status":"completed","content":[]});
        item.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({ "item": item })
    }

    #[test]
    fn streamed_text_is_not_repeated_and_tools_show_command_output_and_diff() {
        let output: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        let events = [
            event(
                event_type::ITEM_STARTED,
                item("itm_1", "message", json!({"role":"assistant","status":"in_progress"})),
            ),
            event(event_type::ITEM_DELTA, json!({"item_id":"itm_1","delta":{"text":"Hel"}})),
            event(event_type::ITEM_DELTA, json!({"item_id":"itm_1","delta":{"text":"lo"}})),
            event(
                event_type::ITEM_COMPLETED,
                item("itm_1", "message", json!({"role":"assistant","content":[{"type":"text","text":"Hello"}]})),
            ),
            event(
                event_type::ITEM_STARTED,
                item("itm_2", "tool_call", json!({"tool":{"name":"Bash","kind":"shell","input":{"command":"ls -l"}}})),
            ),
            event(
                event_type::ITEM_COMPLETED,
                item(
                    "itm_2",
                    "tool_call",
                    json!({"tool":{"name":"Bash","kind":"shell","input":{},"output":output,"exit_code":2,
                                   "diff":"--- a\n+++ b\n-old\n+new"}}),
                ),
            ),
            event(
                event_type::TURN_COMPLETED,
                json!({"turn_id":"trn_1","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":4}}),
            ),
        ];
        // A tool whose input streams after it starts is shown when it completes, with its input.
        let late = [
            event(
                event_type::ITEM_STARTED,
                item("itm_3", "tool_call", json!({"tool":{"name":"Read","kind":"file_read","input":{}}})),
            ),
            event(
                event_type::ITEM_COMPLETED,
                item(
                    "itm_3",
                    "tool_call",
                    json!({"tool":{"name":"Read","kind":"file_read","input":{"file_path":"a.rs"}}}),
                ),
            ),
        ];
        assert_eq!(render(&late, false).0, "● Read a.rs\n");
        // A subagent's call is marked as one, under the call that started it.
        let nested = [
            event(
                event_type::ITEM_STARTED,
                item(
                    "itm_4",
                    "tool_call",
                    json!({"tool":{"name":"Task","kind":"task","input":{"description":"look"}}}),
                ),
            ),
            event(
                event_type::ITEM_STARTED,
                item(
                    "itm_5",
                    "tool_call",
                    json!({"parent_item_id":"itm_4","tool":{"name":"Bash","kind":"shell","input":{"command":"ls"}}}),
                ),
            ),
        ];
        assert_eq!(render(&nested, false).0, "● Task look\n  ↳ Bash ls\n");
        let (out, err) = render(&events, false);
        assert_eq!(out.matches("Hello").count(), 1, "{out}");
        assert_eq!(out.matches("● Bash").count(), 1, "{out}");
        assert!(out.starts_with("Hello\n● Bash ls -l\n"), "{out}");
        assert!(out.contains("  -old\n  +new\n"), "{out}");
        assert!(out.contains("  │ line 6\n  │ … 4 more lines\n  exit code 2\n"), "{out}");
        assert!(!out.contains("line 7"), "{out}");
        assert_eq!(err, "done · 3 tokens in, 4 out\n");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn whole_messages_are_shown_and_colour_is_only_on_request() {
        let events = [
            event(
                event_type::ITEM_COMPLETED,
                item("itm_1", "message", json!({"role":"user","content":[{"type":"text","text":"hi"}]})),
            ),
            event(
                event_type::ITEM_COMPLETED,
                item("itm_2", "message", json!({"role":"assistant","content":[{"type":"text","text":"Whole"}]})),
            ),
            event(
                event_type::TURN_COMPLETED,
                json!({"turn_id":"trn_1","stop_reason":"error","error":{"code":"x","message":"bad"}}),
            ),
        ];
        let (out, err) = render(&events, true);
        assert_eq!(out, "Whole\n");
        assert_eq!(err, "\x1b[31mthe turn failed\x1b[0m: bad (x)\n");
    }

    #[test]
    fn a_question_and_its_answer_read_as_sentences_without_the_tool_json() {
        let input = json!({"questions":[{"question":"Which colour?","options":[{"label":"Red"},{"label":"Blue"}]}]});
        let events = [
            event(
                event_type::ITEM_STARTED,
                item(
                    "itm_q",
                    "tool_call",
                    json!({"status":"in_progress","tool":{"name":"AskUserQuestion","kind":"other","input":{}}}),
                ),
            ),
            event(
                event_type::QUESTION_REQUESTED,
                json!({"question_id":"qst_1","questions":[{"prompt":"Which colour?","header":"Colour",
                    "options":[{"label":"Red","description":"warm"},{"label":"Blue"}],"multi_select":true}]}),
            ),
            event(
                event_type::QUESTION_RESOLVED,
                json!({"question_id":"qst_1","answers":[["Red","Blue"]],"rejected":false}),
            ),
            event(
                event_type::ITEM_COMPLETED,
                item(
                    "itm_q",
                    "tool_call",
                    json!({"tool":{"name":"AskUserQuestion","kind":"other","input":input,
                    "output":"User has answered your questions: \"Which colour?\"=\"Red, Blue\"."}}),
                ),
            ),
        ];
        let (out, err) = render(&events, false);
        assert_eq!(out, "  Which colour? You answered \"Red\" and \"Blue\".\n");
        assert_eq!(err, "? [Colour] Which colour?\n  1. Red — warm\n  2. Blue\n");

        let r = |answers: serde_json::Value, rejected: bool| -> QuestionResolved {
            serde_json::from_value(json!({"question_id":"q","answers":answers,"rejected":rejected})).unwrap()
        };
        let two = ["First?".to_owned(), "Second?".to_owned()];
        assert_eq!(
            question_resolved(&two, &r(json!([["a"], ["b", "c", "d"]]), false)),
            ["First? You answered \"a\".", "Second? You answered \"b\", \"c\" and \"d\"."]
        );
        assert_eq!(question_resolved(&[], &r(json!([["free text"]]), false)), ["You answered \"free text\"."]);
        assert_eq!(question_resolved(&two, &r(json!(null), true)), ["The question was declined without an answer."]);
        assert_eq!(question_resolved(&two, &r(json!(null), false)), ["The question was closed without an answer."]);
    }

    #[test]
    fn a_diff_shown_with_its_permission_is_not_shown_again() {
        let diff = "--- /dev/null\n+++ a.txt\n+hello\n";
        let tool = json!({"tool":{"name":"Write","kind":"file_edit","input":{"file_path":"a.txt"},"diff":diff,
            "output":"File created"}});
        let asked = event(
            event_type::PERMISSION_REQUESTED,
            json!({"permission_id":"prm_1","item_id":"itm_w","action":"file_write","title":"Write a.txt",
                "path":"a.txt","diff":diff,"options":["allow_once","deny"]}),
        );
        let allowed = event(
            event_type::PERMISSION_RESOLVED,
            json!({"permission_id":"prm_1","decision":"allow_once","by":"client"}),
        );
        let started = |id: &str| {
            let tool = json!({"status":"in_progress","tool":{"name":"Write","kind":"file_edit","input":{}}});
            event(event_type::ITEM_STARTED, item(id, "tool_call", tool))
        };
        let done = |id: &str| event(event_type::ITEM_COMPLETED, item(id, "tool_call", tool.clone()));
        let (out, err) = render(&[started("itm_w"), asked, allowed, done("itm_w")], false);
        assert_eq!(err, "? permission: Write a.txt\n  --- /dev/null\n  +++ a.txt\n  +hello\n");
        assert_eq!(out, "  allowed once\n● Write a.txt\n  │ File created\n");
        // Without a permission (or for another item), the completed edit shows its diff.
        let (out, _) = render(&[started("itm_x"), done("itm_x")], false);
        assert_eq!(out, "● Write a.txt\n  --- /dev/null\n  +++ a.txt\n  +hello\n  │ File created\n");
        let by_mode =
            event(event_type::PERMISSION_RESOLVED, json!({"permission_id":"p","decision":"allow_always","by":"mode"}));
        assert_eq!(render(&[by_mode], false).0, "  allowed from now on by the session's permission mode\n");
    }

    #[test]
    fn words_not_wire_values() {
        assert_eq!(
            tool_summary(&json!({"text":"hi\nthere","count":2,"nested":{"a":1},"list":[1]})),
            "text: hi, count: 2"
        );
        assert_eq!(tool_summary(&json!({"nested":{"a":1}})), "");
        assert_eq!(tool_summary(&json!("plain")), "plain");
        assert_eq!(when("2026-12-05T13:12:29.800Z"), "2026-12-05 13:12:29 UTC");
        assert_eq!(when("2026-12-05T13:12:29Z"), "2026-12-05 13:12:29 UTC");
        assert_eq!(when("not a time"), "not a time");
        let raw = r#"API Error: 500 {"type":"error","error":{"type":"api_error","message":"mock upstream failure"}}"#;
        assert_eq!(readable_error(raw), "API Error: 500 mock upstream failure");
        assert_eq!(readable_error("plain {not json"), "plain {not json");
        let failed = [
            event("error", json!({"code":"unknown","message":raw,"retryable":false})),
            event(
                event_type::TURN_COMPLETED,
                json!({"turn_id":"t","stop_reason":"error",
                "error":{"code":"agent_error","message":raw,"retryable":false},
                "usage":{"input_tokens":0,"output_tokens":0,"cost_usd":0.0}}),
            ),
        ];
        assert_eq!(render(&failed, false).1, "error: API Error: 500 mock upstream failure\nthe turn failed\n");
        assert_eq!(
            permission_mode(PermissionMode::AcceptEdits),
            "edit files without asking, ask for the rest (accept_edits)"
        );
        let ended = event(event_type::SESSION_ENDED, json!({"reason":"terminated"}));
        let failed = event(event_type::SESSION_ENDED, json!({"reason":"failed","message":"no agent"}));
        assert_eq!(render(&[ended, failed], false).1, "the session was ended\nthe session failed: no agent\n");
        let max = event(
            event_type::TURN_COMPLETED,
            json!({"turn_id":"t","stop_reason":"max_turns","usage":{"output_tokens":5}}),
        );
        assert_eq!(render(&[max], false).1, "stopped: the agent reached its limit of turns · 5 tokens out\n");
    }
}
