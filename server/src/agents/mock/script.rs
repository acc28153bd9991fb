//! The mock's behaviour. A [`Mock`] takes decoded stdin lines from a channel
//! and writes Claude Code stream-json lines to any `Write`, one turn per user
//! message, the script chosen by the message's `[mock:...]` tag. It never
//! touches the real stdin/stdout itself, so tests drive whole turns in-process.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use super::ids;
use super::input::{Answer, Control, Input};
use super::state::StateFile;
use super::tag::{self, Tag};

/// The tools the mock announces in `system/init`.
pub const TOOLS: [&str; 3] = ["Bash", "Write", "AskUserQuestion"];
/// Longest text delta, in characters.
const TEXT_DELTA_CHARS: usize = 8;
/// Longest `input_json_delta` piece, in characters.
const JSON_DELTA_CHARS: usize = 16;
/// `[mock:flood]` looks at its input once per this many lines.
const FLOOD_POLL_EVERY: usize = 1000;
const SLOW_TICKS: u32 = 100;
const INPUT_TOKENS: u64 = 10;
const TOOL_COMMAND: &str = "echo mock-tool-output";
const PERMISSION_FILE: &str = "mock-permission.txt";
const PERMISSION_CONTENT: &str = "written by the mock agent\n";
const QUESTION: &str = "Which colour?";
const API_ERROR_TEXT: &str =
    r#"API Error: 500 {"type":"error","error":{"type":"api_error","message":"mock upstream failure"}}"#;
const CRASH_MESSAGE: &str = "mock: fatal error, exiting";
const CRASH_CODE: i32 = 3;

/// What a mock process knows when it starts.
#[derive(Debug, Clone)]
pub struct Config {
    pub session_id: String,
    pub model: String,
    /// `default`, `acceptEdits`, `bypassPermissions` or `plan`; an allow with a
    /// `setMode` rule changes it for the rest of the process.
    pub permission_mode: String,
    pub cwd: PathBuf,
    /// Turns this conversation already had (from the state file on resume).
    pub turns_done: u64,
    pub state: Option<StateFile>,
    /// Pace of `[mock:slow]` (100 ms in the real process).
    pub tick: Duration,
    /// Names of the MCP servers it was given (listed as connected in `system/init`).
    pub mcp_servers: Vec<String>,
    /// Names of the skills it was given (`tether:<name>` in `system/init`).
    pub skills: Vec<String>,
}

/// Why [`Mock::serve`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// stdin was closed: exit 0.
    Eof,
    /// `[mock:crash]`: write `message` to stderr and exit with `code`.
    Crash { code: i32, message: &'static str },
}

/// Why a turn stopped early.
enum Stop {
    Interrupted,
    Eof,
    Crash,
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Self {
        Stop::Io(e)
    }
}

/// How a script ended: with a reply for the `result` line, or having written
/// its own `result` (having saved the turn count first).
enum Ending {
    Reply(String),
    Reported,
}

/// The running turn.
struct Turn {
    number: u64,
    started: Instant,
    /// Assistant messages (model calls) completed.
    api_calls: u64,
    output_tokens: u64,
    /// The text message being streamed, for the partial assistant line after an interrupt.
    open: Option<Open>,
    denials: Vec<Value>,
}

struct Open {
    id: String,
    text: String,
    deltas: u64,
}

impl Turn {
    fn new(number: u64) -> Turn {
        Turn { number, started: Instant::now(), api_calls: 0, output_tokens: 0, open: None, denials: Vec::new() }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn append(&mut self, piece: &str) {
        if let Some(open) = self.open.as_mut() {
            open.text.push_str(piece);
            open.deltas += 1;
        }
    }
}

pub struct Mock<W: Write> {
    cfg: Config,
    out: W,
    rx: Receiver<Input>,
    /// User messages that arrived during a turn: each starts a later turn.
    queue: VecDeque<String>,
    /// The Task call whose subagent is writing (`parent_tool_use_id` of every line).
    parent: Option<String>,
}

impl<W: Write> Mock<W> {
    pub fn new(cfg: Config, out: W, rx: Receiver<Input>) -> Self {
        Mock { cfg, out, rx, queue: VecDeque::new(), parent: None }
    }

    /// Runs turns until stdin closes or a script exits the process. An error
    /// means the output is gone (e.g. a broken pipe).
    pub fn serve(&mut self) -> io::Result<Exit> {
        loop {
            let text = match self.queue.pop_front() {
                Some(text) => text,
                None => match self.rx.recv() {
                    Ok(Input::User { text }) => text,
                    Ok(Input::Control { request_id, request }) => {
                        self.control(&request_id, &request)?;
                        continue;
                    }
                    // Nothing is waiting for an answer between turns.
                    Ok(Input::Answer { .. }) => continue,
                    Err(_) => {
                        self.out.flush()?;
                        return Ok(Exit::Eof);
                    }
                },
            };
            match self.turn(&text) {
                Ok(()) | Err(Stop::Interrupted) => {}
                Err(Stop::Eof) => {
                    self.out.flush()?;
                    return Ok(Exit::Eof);
                }
                Err(Stop::Crash) => {
                    self.out.flush()?;
                    return Ok(Exit::Crash { code: CRASH_CODE, message: CRASH_MESSAGE });
                }
                Err(Stop::Io(e)) => return Err(e),
            }
        }
    }

    fn turn(&mut self, text: &str) -> Result<(), Stop> {
        self.cfg.turns_done += 1;
        let mut t = Turn::new(self.cfg.turns_done);
        self.init()?;
        let ending = match tag::tag_of(text) {
            Tag::Text => {
                let reply = tag::reply_text(t.number, text);
                self.text_reply(&mut t, reply)
            }
            Tag::EchoSize => self.text_reply(&mut t, tag::echo_size_text(text)),
            Tag::Tool => self.tool(&mut t, TOOL_COMMAND),
            Tag::Bash => self.tool(&mut t, &tag::untagged(text)),
            Tag::Subagent => self.subagent(&mut t),
            Tag::Permission => self.permission(&mut t),
            Tag::Question => self.question(&mut t),
            Tag::Slow => self.slow(&mut t),
            Tag::Error => self.api_error(&t),
            Tag::Crash => self.crash(&mut t, text),
            Tag::Flood(n) => self.flood(&mut t, n),
            Tag::Timed(n) => self.timed(&mut t, n),
            Tag::Mcp => self.mcp(&mut t, text),
            Tag::Skills => {
                let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
                let reply = format!("MCP servers: {}; skills: {}", list(&self.cfg.mcp_servers), list(&self.cfg.skills));
                self.text_reply(&mut t, reply)
            }
        };
        // The turn counts once it ends, and is saved before it is reported:
        // a kill right after the report resumes with the right count.
        match ending {
            Ok(Ending::Reply(reply)) => {
                self.persist();
                self.result_success(&t, &reply)?
            }
            Ok(Ending::Reported) => {}
            Err(Stop::Interrupted) => {
                self.persist();
                self.interrupted(&mut t)?
            }
            Err(stop) => return Err(stop),
        }
        Ok(())
    }

    // ---- scripts ----------------------------------------------------------

    fn text_reply(&mut self, t: &mut Turn, reply: String) -> Result<Ending, Stop> {
        self.text_message(t, &reply)?;
        Ok(Ending::Reply(reply))
    }

    /// A `Bash` call of `command`, run for real in the session's cwd.
    fn tool(&mut self, t: &mut Turn, command: &str) -> Result<Ending, Stop> {
        let description = if command == TOOL_COMMAND { "Print a line" } else { "Run a command" };
        let input = json!({"command": command, "description": description});
        let tool_id = self.tool_use_message(t, "Bash", &input)?;
        let (stdout, stderr, failed) = run_shell(command, &self.cfg.cwd);
        let content = if failed && stdout.is_empty() { stderr.clone() } else { stdout.clone() };
        let structured = json!({"stdout": stdout, "stderr": stderr, "interrupted": false, "isImage": false});
        self.tool_result(&tool_id, &content, failed, structured)?;
        let reply = format!("The command printed: {}", stdout.trim());
        self.text_reply(t, reply)
    }

    /// A `Task` call (a `general-purpose` subagent) whose subagent runs the
    /// `tool` script, then hands back its reply.
    fn subagent(&mut self, t: &mut Turn) -> Result<Ending, Stop> {
        let input =
            json!({"description": "Print a line", "prompt": "Print a line", "subagent_type": "general-purpose"});
        let task_id = self.tool_use_message(t, "Task", &input)?;
        self.parent = Some(task_id.clone());
        let sub = self.tool(t, TOOL_COMMAND);
        self.parent = None;
        let Ending::Reply(reply) = sub? else { return Ok(Ending::Reported) };
        self.tool_result(
            &task_id,
            &reply,
            false,
            json!({"status": "completed", "content": [{"type": "text", "text": reply}]}),
        )?;
        self.text_reply(t, format!("The subagent said: {reply}"))
    }

    /// `mcp__<first server>__echo`, answered by the mock itself with
    /// `echo: <text>` (what tether's test MCP server answers), or an error
    /// result when it was given no MCP server.
    fn mcp(&mut self, t: &mut Turn, text: &str) -> Result<Ending, Stop> {
        let server = self.cfg.mcp_servers.first().cloned().unwrap_or_else(|| "none".into());
        let echoed = tag::echo(text);
        let input = json!({"text": echoed});
        let tool_id = self.tool_use_message(t, &format!("mcp__{server}__echo"), &input)?;
        let (content, failed) = match self.cfg.mcp_servers.is_empty() {
            true => ("No MCP server was given to this session".to_string(), true),
            false => (format!("echo: {echoed}"), false),
        };
        self.tool_result(&tool_id, &content, failed, json!([{"type": "text", "text": content}]))?;
        self.text_reply(t, format!("The MCP tool answered: {content}"))
    }

    fn permission(&mut self, t: &mut Turn) -> Result<Ending, Stop> {
        let path = self.cfg.cwd.join(PERMISSION_FILE);
        let input = json!({"file_path": path.to_string_lossy(), "content": PERMISSION_CONTENT});
        let tool_id = self.tool_use_message(t, "Write", &input)?;
        let answer = if matches!(self.cfg.permission_mode.as_str(), "acceptEdits" | "bypassPermissions") {
            Answer::Allow { updated_input: None, updated_permissions: Vec::new() }
        } else {
            let suggestions = json!([{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]);
            self.ask("Write", &input, &tool_id, Some(suggestions))?
        };
        let reply = match answer {
            Answer::Allow { updated_input, .. } => {
                let used = updated_input.unwrap_or_else(|| input.clone());
                let file = used.get("file_path").and_then(Value::as_str).map_or(path, |p| self.cfg.cwd.join(p));
                let content = used.get("content").and_then(Value::as_str).unwrap_or(PERMISSION_CONTENT);
                let shown = file.to_string_lossy();
                match fs::write(&file, content) {
                    Ok(()) => {
                        let structured =
                            json!({"type": "create", "filePath": shown, "content": content, "structuredPatch": []});
                        self.tool_result(
                            &tool_id,
                            &format!("File created successfully at: {shown}"),
                            false,
                            structured,
                        )?;
                        "I wrote the file."
                    }
                    Err(e) => {
                        let message = format!("Error writing {shown}: {e}");
                        self.tool_result(&tool_id, &message, true, json!(message))?;
                        "The write failed."
                    }
                }
            }
            Answer::Deny { message } => {
                let message = if message.is_empty() { "Permission denied".to_string() } else { message };
                self.tool_result(&tool_id, &message, true, json!(format!("Error: {message}")))?;
                t.denials.push(json!({"tool_name": "Write", "tool_use_id": tool_id, "tool_input": input}));
                "The write was denied."
            }
        };
        self.text_reply(t, reply.to_string())
    }

    fn question(&mut self, t: &mut Turn) -> Result<Ending, Stop> {
        let questions = json!([{
            "question": QUESTION,
            "header": "Colour",
            "options": [{"label": "Red", "description": "warm"}, {"label": "Blue", "description": "cool"}],
            "multiSelect": false
        }]);
        let input = json!({"questions": questions});
        let tool_id = self.tool_use_message(t, "AskUserQuestion", &input)?;
        let reply = match self.ask("AskUserQuestion", &input, &tool_id, None)? {
            Answer::Allow { updated_input, .. } => {
                let answers = updated_input
                    .as_ref()
                    .and_then(|v| v.get("answers"))
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let pairs: Vec<String> =
                    answers.iter().map(|(q, a)| format!("\"{q}\"=\"{}\"", answer_text(a))).collect();
                let content = format!("User has answered your questions: {}.", pairs.join(", "));
                let chosen = answers.get(QUESTION).map(answer_text).unwrap_or_default();
                self.tool_result(&tool_id, &content, false, json!({"questions": questions, "answers": answers}))?;
                format!("You chose: {chosen}")
            }
            Answer::Deny { message } => {
                let message =
                    if message.is_empty() { "The user declined to answer the questions.".to_string() } else { message };
                self.tool_result(&tool_id, &message, true, json!(format!("Error: {message}")))?;
                t.denials.push(json!({"tool_name": "AskUserQuestion", "tool_use_id": tool_id, "tool_input": input}));
                "The question was rejected.".to_string()
            }
        };
        self.text_reply(t, reply)
    }

    fn slow(&mut self, t: &mut Turn) -> Result<Ending, Stop> {
        let id = self.open_text_message(t)?;
        let mut text = String::new();
        for i in 1..=SLOW_TICKS {
            let piece = format!("tick {i} ");
            self.text_delta(&piece)?;
            t.append(&piece);
            text.push_str(&piece);
            if i < SLOW_TICKS {
                self.pace(self.cfg.tick)?;
            } else {
                self.poll()?;
            }
        }
        self.close_message(t, &id, json!([{"type": "text", "text": text}]), "end_turn", u64::from(SLOW_TICKS))?;
        Ok(Ending::Reply(text))
    }

    fn api_error(&mut self, t: &Turn) -> Result<Ending, Stop> {
        let line = json!({
            "type": "assistant",
            "message": {
                "id": ids::message_id(),
                "model": "<synthetic>",
                "role": "assistant",
                "type": "message",
                "content": [{"type": "text", "text": API_ERROR_TEXT}],
                "stop_reason": "stop_sequence",
                "stop_sequence": "",
                "usage": usage(0, 0),
            },
            "parent_tool_use_id": self.parent,
            "session_id": self.cfg.session_id,
            "uuid": ids::uuid_v4(),
            "error": "unknown",
            "isApiErrorMessage": true,
        });
        self.emit(&line)?;
        let ms = t.elapsed_ms();
        let result = json!({
            "type": "result",
            "subtype": "success",
            "is_error": true,
            "duration_ms": ms,
            "duration_api_ms": ms,
            "num_turns": 1,
            "result": API_ERROR_TEXT,
            "session_id": self.cfg.session_id,
            "total_cost_usd": 0.0,
            "usage": usage(0, 0),
            "stop_reason": "stop_sequence",
            "permission_denials": [],
            "uuid": ids::uuid_v4(),
        });
        self.persist();
        self.emit(&result)?;
        Ok(Ending::Reported)
    }

    fn crash(&mut self, t: &mut Turn, text: &str) -> Result<Ending, Stop> {
        let reply = tag::reply_text(t.number, text);
        self.open_text_message(t)?;
        for piece in tag::chunks(&reply, TEXT_DELTA_CHARS).into_iter().take(2) {
            self.text_delta(piece)?;
        }
        self.out.flush()?;
        Err(Stop::Crash)
    }

    /// `n` one-character deltas as fast as the output takes them: the line is
    /// formatted once, only the uuid's last group (a counter) changes.
    fn flood(&mut self, t: &mut Turn, n: usize) -> Result<Ending, Stop> {
        let id = self.open_text_message(t)?;
        let uuid = ids::uuid_v4();
        let prefix = format!(
            r#"{{"type":"stream_event","event":{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"x"}}}},"session_id":{},"parent_tool_use_id":null,"uuid":"{}"#,
            Value::from(self.cfg.session_id.as_str()),
            &uuid[..24],
        );
        for i in 0..n {
            if i > 0 && i % FLOOD_POLL_EVERY == 0 {
                if let Err(stop) = self.poll() {
                    if let Some(open) = t.open.as_mut() {
                        open.text = "x".repeat(i);
                        open.deltas = i as u64;
                    }
                    return Err(stop);
                }
            }
            self.out.write_all(prefix.as_bytes())?;
            writeln!(self.out, "{i:012x}\"}}")?;
        }
        self.out.flush()?;
        let text = "x".repeat(n);
        self.close_message(t, &id, json!([{"type": "text", "text": text}]), "end_turn", n as u64)?;
        Ok(Ending::Reply(text))
    }

    /// `n` deltas 1 ms apart, each carrying the wall clock (unix micros) at its write.
    fn timed(&mut self, t: &mut Turn, n: usize) -> Result<Ending, Stop> {
        let id = self.open_text_message(t)?;
        let mut text = String::new();
        for _ in 0..n {
            let micros =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros()).unwrap_or(0);
            let piece = format!("t{micros} ");
            self.text_delta(&piece)?;
            t.append(&piece);
            text.push_str(&piece);
            self.pace(Duration::from_millis(1))?;
        }
        self.close_message(t, &id, json!([{"type": "text", "text": text}]), "end_turn", n as u64)?;
        Ok(Ending::Reply(text))
    }

    // ---- message pieces ---------------------------------------------------

    fn init(&mut self) -> io::Result<()> {
        let line = json!({
            "type": "system",
            "subtype": "init",
            "session_id": self.cfg.session_id,
            "model": self.cfg.model,
            "tools": TOOLS,
            "mcp_servers": self.cfg.mcp_servers.iter().map(|n| json!({"name": n, "status": "connected"})).collect::<Vec<_>>(),
            "skills": self.cfg.skills.iter().map(|n| format!("tether:{n}")).collect::<Vec<_>>(),
            "permissionMode": self.cfg.permission_mode,
            "cwd": self.cfg.cwd.to_string_lossy(),
            "uuid": ids::uuid_v4(),
        });
        self.emit(&line)
    }

    /// A whole assistant text message, streamed in short deltas.
    fn text_message(&mut self, t: &mut Turn, text: &str) -> Result<(), Stop> {
        let id = self.open_text_message(t)?;
        let pieces = tag::chunks(text, TEXT_DELTA_CHARS);
        for piece in &pieces {
            self.text_delta(piece)?;
            t.append(piece);
            self.poll()?;
        }
        self.close_message(t, &id, json!([{"type": "text", "text": text}]), "end_turn", pieces.len() as u64)?;
        Ok(())
    }

    /// `message_start` and an empty text block; returns the message id.
    fn open_text_message(&mut self, t: &mut Turn) -> io::Result<String> {
        let id = ids::message_id();
        self.message_start(&id)?;
        self.event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))?;
        t.open = Some(Open { id: id.clone(), text: String::new(), deltas: 0 });
        Ok(id)
    }

    fn text_delta(&mut self, piece: &str) -> io::Result<()> {
        self.event(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}))
    }

    /// A whole assistant message with one tool_use block, its input streamed
    /// as JSON pieces; returns the tool use id.
    fn tool_use_message(&mut self, t: &mut Turn, name: &str, input: &Value) -> Result<String, Stop> {
        let id = ids::message_id();
        let tool_id = ids::tool_use_id();
        self.message_start(&id)?;
        self.event(json!({
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}},
        }))?;
        let json = input.to_string();
        let pieces = tag::chunks(&json, JSON_DELTA_CHARS);
        for piece in &pieces {
            self.event(json!({
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": piece},
            }))?;
            self.poll()?;
        }
        let content = json!([{"type": "tool_use", "id": tool_id, "name": name, "input": input}]);
        self.close_message(t, &id, content, "tool_use", pieces.len() as u64)?;
        Ok(tool_id)
    }

    fn message_start(&mut self, id: &str) -> io::Result<()> {
        let event = json!({
            "type": "message_start",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.cfg.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 0},
            },
        });
        self.event(event)
    }

    /// Ends block 0 and the message: the assistant line with the whole
    /// content, then `message_delta` and `message_stop`.
    fn close_message(
        &mut self,
        t: &mut Turn,
        id: &str,
        content: Value,
        stop_reason: &str,
        tokens: u64,
    ) -> io::Result<()> {
        self.event(json!({"type": "content_block_stop", "index": 0}))?;
        t.open = None;
        t.api_calls += 1;
        t.output_tokens += tokens;
        self.assistant(id, content, tokens)?;
        self.event(json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": tokens},
        }))?;
        self.event(json!({"type": "message_stop"}))
    }

    fn assistant(&mut self, id: &str, content: Value, output_tokens: u64) -> io::Result<()> {
        let line = self.assistant_line(id, content, output_tokens);
        self.emit(&line)
    }

    fn assistant_line(&self, id: &str, content: Value, output_tokens: u64) -> Value {
        json!({
            "type": "assistant",
            "message": {
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": self.cfg.model,
                "content": content,
                "stop_reason": null,
                "stop_sequence": null,
                "usage": usage(INPUT_TOKENS, output_tokens),
            },
            "parent_tool_use_id": self.parent,
            "session_id": self.cfg.session_id,
            "uuid": ids::uuid_v4(),
        })
    }

    fn tool_result(&mut self, tool_id: &str, content: &str, is_error: bool, structured: Value) -> io::Result<()> {
        let line = json!({
            "type": "user",
            "message": {
                "role": "user",
                "content": [{"tool_use_id": tool_id, "type": "tool_result", "content": content, "is_error": is_error}],
            },
            "parent_tool_use_id": self.parent,
            "session_id": self.cfg.session_id,
            "uuid": ids::uuid_v4(),
            "tool_use_result": structured,
        });
        self.emit(&line)
    }

    fn result_success(&mut self, t: &Turn, reply: &str) -> io::Result<()> {
        let ms = t.elapsed_ms();
        let line = json!({
            "type": "result",
            "subtype": "success",
            "is_error": false,
            "duration_ms": ms,
            "duration_api_ms": ms,
            "num_turns": t.api_calls,
            "result": reply,
            "session_id": self.cfg.session_id,
            "total_cost_usd": 0.0001,
            "usage": usage(INPUT_TOKENS * t.api_calls, t.output_tokens),
            "stop_reason": "end_turn",
            "permission_denials": t.denials,
            "uuid": ids::uuid_v4(),
        });
        self.emit(&line)
    }

    /// After an interrupt (its control_response is already out): the text
    /// streamed so far as an assistant line, then Claude's error result.
    fn interrupted(&mut self, t: &mut Turn) -> io::Result<()> {
        let mut calls = t.api_calls;
        let mut tokens = t.output_tokens;
        if let Some(open) = t.open.take() {
            calls += 1;
            tokens += open.deltas;
            if !open.text.is_empty() {
                // Like Claude: the text so far, marked aborted, then the interruption note.
                let mut line = self.assistant_line(&open.id, json!([{"type": "text", "text": open.text}]), open.deltas);
                line["aborted"] = json!(true);
                self.emit(&line)?;
                let note = json!({
                    "type": "user",
                    "message": {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}]},
                    "parent_tool_use_id": self.parent,
                    "session_id": self.cfg.session_id,
                    "uuid": ids::uuid_v4(),
                });
                self.emit(&note)?;
            }
        }
        let ms = t.elapsed_ms();
        let line = json!({
            "type": "result",
            "subtype": "error_during_execution",
            "is_error": true,
            "duration_ms": ms,
            "duration_api_ms": ms,
            "num_turns": calls.max(1),
            "session_id": self.cfg.session_id,
            "total_cost_usd": 0,
            "usage": usage(INPUT_TOKENS * calls, tokens),
            "permission_denials": t.denials,
            "uuid": ids::uuid_v4(),
        });
        self.emit(&line)
    }

    fn event(&mut self, event: Value) -> io::Result<()> {
        let line = json!({
            "type": "stream_event",
            "event": event,
            "session_id": self.cfg.session_id,
            "parent_tool_use_id": self.parent,
            "uuid": ids::uuid_v4(),
        });
        self.emit(&line)
    }

    /// One line, flushed so the host sees it at once.
    fn emit(&mut self, line: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    // ---- input while a turn runs -----------------------------------------

    /// Answers a host request.
    fn control(&mut self, request_id: &Value, request: &Control) -> io::Result<()> {
        let response = match request {
            Control::Interrupt => {
                json!({"subtype": "success", "request_id": request_id, "response": {}})
            }
            Control::Initialize => json!({
                "subtype": "success",
                "request_id": request_id,
                "response": {"commands": [], "models": [], "pid": std::process::id()},
            }),
            Control::Other(_) => {
                json!({"subtype": "error", "request_id": request_id, "error": "unsupported"})
            }
        };
        self.emit(&json!({"type": "control_response", "response": response}))
    }

    /// Handles input that arrives during a turn; an interrupt stops the turn.
    fn during_turn(&mut self, input: Input) -> Result<(), Stop> {
        match input {
            Input::User { text } => self.queue.push_back(text),
            Input::Control { request_id, request } => {
                self.control(&request_id, &request)?;
                if request == Control::Interrupt {
                    return Err(Stop::Interrupted);
                }
            }
            // An answer to a request nobody waits for any more.
            Input::Answer { .. } => {}
        }
        Ok(())
    }

    /// Handles whatever input is already there, without waiting.
    fn poll(&mut self) -> Result<(), Stop> {
        loop {
            match self.rx.try_recv() {
                Ok(input) => self.during_turn(input)?,
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Waits `d` while handling input (an interrupt ends the wait at once).
    fn pace(&mut self, d: Duration) -> Result<(), Stop> {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.rx.recv_timeout(left) {
                Ok(input) => self.during_turn(input)?,
                Err(RecvTimeoutError::Timeout) => return Ok(()),
                Err(RecvTimeoutError::Disconnected) => {
                    // stdin is closed: finish the turn at the same pace, then exit.
                    thread::sleep(left);
                    return Ok(());
                }
            }
        }
    }

    /// Asks the host whether a tool may run and waits for its answer.
    fn ask(
        &mut self,
        tool_name: &str,
        input: &Value,
        tool_id: &str,
        suggestions: Option<Value>,
    ) -> Result<Answer, Stop> {
        let request_id = ids::request_id();
        let mut request = Map::new();
        request.insert("subtype".into(), json!("can_use_tool"));
        request.insert("tool_name".into(), json!(tool_name));
        request.insert("input".into(), input.clone());
        request.insert("tool_use_id".into(), json!(tool_id));
        if let Some(suggestions) = suggestions {
            request.insert("permission_suggestions".into(), suggestions);
        }
        self.emit(&json!({"type": "control_request", "request_id": request_id, "request": request}))?;
        let wanted = Value::String(request_id);
        loop {
            match self.rx.recv() {
                Ok(Input::Answer { request_id, answer }) if request_id == wanted => {
                    if let Answer::Allow { updated_permissions, .. } = &answer {
                        self.apply_permissions(updated_permissions);
                    }
                    return Ok(answer);
                }
                Ok(other) => self.during_turn(other)?,
                Err(_) => return Err(Stop::Eof),
            }
        }
    }

    /// `setMode` rules that come with an allow change the permission mode.
    fn apply_permissions(&mut self, rules: &[Value]) {
        for rule in rules {
            if rule.get("type").and_then(Value::as_str) == Some("setMode") {
                if let Some(mode) = rule.get("mode").and_then(Value::as_str) {
                    self.cfg.permission_mode = mode.to_string();
                }
            }
        }
    }

    fn persist(&self) {
        if let Some(state) = &self.cfg.state {
            if let Err(e) = state.save(self.cfg.turns_done) {
                let _ = writeln!(io::stderr(), "mock: cannot save state to {}: {e}", state.path().display());
            }
        }
    }
}

fn usage(input_tokens: u64, output_tokens: u64) -> Value {
    json!({
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_input_tokens": 0,
        "cache_creation_input_tokens": 0,
    })
}

/// An answer as text: a string as is, several choices joined by ", ".
fn answer_text(answer: &Value) -> String {
    match answer {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(answer_text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// Runs `sh -c command` in `cwd`: (stdout, stderr, failed), trailing newlines trimmed.
fn run_shell(command: &str, cwd: &Path) -> (String, String, bool) {
    let output = Command::new("sh").arg("-c").arg(command).current_dir(cwd).stdin(Stdio::null()).output();
    match output {
        Ok(o) => (
            String::from_utf8_lossy(&o.stdout).trim_end_matches('\n').to_string(),
            String::from_utf8_lossy(&o.stderr).trim_end_matches('\n').to_string(),
            !o.status.success(),
        ),
        Err(e) => (String::new(), format!("sh: {e}"), true),
    }
}
