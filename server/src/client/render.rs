//! Universal events as readable terminal text.
//!
//! The transcript (assistant text as it streams, tool calls with their
//! command and a short output, diffs) goes to `out`; what is about the run
//! rather than the conversation (status, errors, the turn's end) goes to
//! `err`, so `tether run … > file` keeps only the conversation.

use std::collections::HashSet;
use std::io::{self, Write};

use tether_protocol::{
    Delta, Event, EventBody, Item, ItemKind, ItemStatus, Part, PermissionRequested, QuestionRequested, Role,
    StopReason, Usage,
};

/// Lines of a tool's output shown at most.
const OUTPUT_LINES: usize = 6;
/// Characters of one shown line at most.
const LINE_CHARS: usize = 160;

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
                self.note(&s.dim(&format!("{} started: {}{version} in {}", event.session_id, d.agent, d.cwd)))
            }
            EventBody::TurnStarted(d) => {
                let input = parts_text(&d.input);
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
            EventBody::PermissionResolved(d) => {
                let decision = serde_json::to_value(d.decision).ok().and_then(|v| v.as_str().map(str::to_owned));
                self.line(&s.dim(&format!("  permission: {}", decision.unwrap_or_default())))
            }
            EventBody::QuestionRequested(d) => self.question(d),
            EventBody::QuestionResolved(d) => {
                let shown = match (&d.answers, d.rejected) {
                    (_, true) => "rejected".to_owned(),
                    (Some(a), false) => a.iter().map(|x| x.join(", ")).collect::<Vec<_>>().join("; "),
                    (None, false) => String::new(),
                };
                self.line(&s.dim(&format!("  answer: {shown}")))
            }
            EventBody::TurnCompleted(d) => {
                let mut line = match d.stop_reason {
                    StopReason::EndTurn => s.dim("done"),
                    StopReason::Interrupted => s.yellow("interrupted"),
                    StopReason::Error => s.red("error"),
                    StopReason::MaxTurns => s.yellow("stopped: max turns"),
                    StopReason::Refused => s.red("refused"),
                };
                if let Some(e) = &d.error {
                    line.push_str(&format!(": {} ({})", e.message, e.code));
                }
                if let Some(u) = &d.usage {
                    let usage = usage_text(u);
                    if !usage.is_empty() {
                        line.push_str(&s.dim(&format!(" · {usage}")));
                    }
                }
                self.note(&line)
            }
            EventBody::Error(d) => self.note(&s.red(&format!("error: {} ({})", d.message, d.code))),
            EventBody::AgentExited(d) if !d.expected => {
                let how = match (d.exit_code, d.signal) {
                    (_, Some(sig)) => format!("signal {sig}"),
                    (Some(code), None) => format!("exit code {code}"),
                    (None, None) => "unknown cause".to_owned(),
                };
                self.note(&s.red(&format!("the agent exited ({how})")))
            }
            EventBody::SessionEnded(d) => {
                let reason = serde_json::to_value(d.reason).ok().and_then(|v| v.as_str().map(str::to_owned));
                let message = d.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                self.note(&s.yellow(&format!("session ended ({}){message}", reason.unwrap_or_default())))
            }
            EventBody::ServerRestarted(_) => self.note(&s.yellow("the server restarted")),
            EventBody::AgentUnparsed(d) => {
                self.note(&s.dim(&format!("unparsed agent output: {}", first_line(&d.line))))
            }
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
                if tool_summary(&tool.input).is_empty() {
                    self.deferred.insert(item.item_id.clone());
                    return Ok(());
                }
                return self.tool_line(tool);
            }
        }
        Ok(())
    }

    fn tool_line(&mut self, tool: &tether_protocol::Tool) -> io::Result<()> {
        let line = format!("{} {}", self.style.bold(&format!("● {}", tool.name)), tool_summary(&tool.input));
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
                    let text = parts_text(&item.content);
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
                if self.deferred.remove(&item.item_id) {
                    self.tool_line(tool)?;
                }
                if let Some(diff) = tool.diff.as_deref().filter(|d| !d.is_empty()) {
                    for line in diff.lines() {
                        let shown = clip(line);
                        let painted = if line.starts_with('+') && !line.starts_with("+++") {
                            s.green(&shown)
                        } else if line.starts_with('-') && !line.starts_with("---") {
                            s.red(&shown)
                        } else {
                            s.dim(&shown)
                        };
                        self.line(&format!("  {painted}"))?;
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
        if let Some(command) = &p.command {
            self.note(&format!("  $ {command}"))?;
        }
        if let Some(path) = &p.path {
            self.note(&format!("  {path}"))?;
        }
        if let Some(diff) = &p.diff {
            for line in diff.lines().take(20) {
                self.note(&s.dim(&format!("  {}", clip(line))))?;
            }
        }
        Ok(())
    }

    pub fn question(&mut self, q: &QuestionRequested) -> io::Result<()> {
        let s = self.style;
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

/// The text parts, joined.
pub fn parts_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("")
}

/// A tool's input in one line: its command, path or pattern when it has
/// one, else the JSON.
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
        serde_json::Value::Null => String::new(),
        serde_json::Value::Object(map) if map.is_empty() => String::new(),
        other => clip(&other.to_string()),
    }
}

fn usage_text(u: &Usage) -> String {
    let mut parts = Vec::new();
    if let Some(i) = u.input_tokens {
        parts.push(format!("{i} in"));
    }
    if let Some(o) = u.output_tokens {
        parts.push(format!("{o} out"));
    }
    if let Some(c) = u.cost_usd {
        parts.push(format!("${c:.4}"));
    }
    parts.join(" · ")
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
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

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
            event("item.started", item("itm_1", "message", json!({"role":"assistant","status":"in_progress"}))),
            event("item.delta", json!({"item_id":"itm_1","delta":{"text":"Hel"}})),
            event("item.delta", json!({"item_id":"itm_1","delta":{"text":"lo"}})),
            event(
                "item.completed",
                item("itm_1", "message", json!({"role":"assistant","content":[{"type":"text","text":"Hello"}]})),
            ),
            event(
                "item.started",
                item("itm_2", "tool_call", json!({"tool":{"name":"Bash","kind":"shell","input":{"command":"ls -l"}}})),
            ),
            event(
                "item.completed",
                item(
                    "itm_2",
                    "tool_call",
                    json!({"tool":{"name":"Bash","kind":"shell","input":{},"output":output,"exit_code":2,
                                   "diff":"--- a\n+++ b\n-old\n+new"}}),
                ),
            ),
            event(
                "turn.completed",
                json!({"turn_id":"trn_1","stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":4}}),
            ),
        ];
        // A tool whose input streams after it starts is shown when it completes, with its input.
        let late = [
            event(
                "item.started",
                item("itm_3", "tool_call", json!({"tool":{"name":"Read","kind":"file_read","input":{}}})),
            ),
            event(
                "item.completed",
                item(
                    "itm_3",
                    "tool_call",
                    json!({"tool":{"name":"Read","kind":"file_read","input":{"file_path":"a.rs"}}}),
                ),
            ),
        ];
        assert_eq!(render(&late, false).0, "● Read a.rs\n");
        let (out, err) = render(&events, false);
        assert_eq!(out.matches("Hello").count(), 1, "{out}");
        assert_eq!(out.matches("● Bash").count(), 1, "{out}");
        assert!(out.starts_with("Hello\n● Bash ls -l\n"), "{out}");
        assert!(out.contains("  -old\n  +new\n"), "{out}");
        assert!(out.contains("  │ line 6\n  │ … 4 more lines\n  exit code 2\n"), "{out}");
        assert!(!out.contains("line 7"), "{out}");
        assert_eq!(err, "done · 3 in · 4 out\n");
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn whole_messages_are_shown_and_colour_is_only_on_request() {
        let events = [
            event(
                "item.completed",
                item("itm_1", "message", json!({"role":"user","content":[{"type":"text","text":"hi"}]})),
            ),
            event(
                "item.completed",
                item("itm_2", "message", json!({"role":"assistant","content":[{"type":"text","text":"Whole"}]})),
            ),
            event(
                "turn.completed",
                json!({"turn_id":"trn_1","stop_reason":"error","error":{"code":"x","message":"bad"}}),
            ),
        ];
        let (out, err) = render(&events, true);
        assert_eq!(out, "Whole\n");
        assert_eq!(err, "\x1b[31merror\x1b[0m: bad (x)\n");
    }
}
