//! Claude Code: one long-lived `claude -p` process per session speaking
//! stream-json on a stdin pipe (it refuses a terminal there) with its output
//! on the PTY. The built-in mock agent speaks the same dialect and reuses
//! this adapter with its own launcher.
//!
//! `launch` starts it, `wire` types its stream-json lines, `convert` turns
//! them into drafts (pure); this adapter encodes user messages, interrupts
//! and the `control_response`s answering its `can_use_tool` requests.

pub mod convert;
pub mod launch;
pub mod wire;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tether_protocol::{Decision, Part};

use super::{lenient, Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::LaunchSpec;
use convert::ClaudeConverter;
pub use launch::{launch, permission_mode_flag, session_config_args};

/// Builds the command line for a session.
pub type CommandBuilder = fn(&Path, &LaunchContext<'_>) -> LaunchSpec;

/// The registry's constructor: an adapter for the real Claude Code CLI.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(ClaudeAdapter::new(program))
}

pub struct ClaudeAdapter {
    program: PathBuf,
    launcher: CommandBuilder,
    converter: ClaudeConverter,
    next_request: u64,
    out: Vec<u8>,
}

impl ClaudeAdapter {
    pub fn new(program: PathBuf) -> Self {
        Self::with_launcher(program, launch)
    }

    pub fn with_launcher(program: PathBuf, launcher: CommandBuilder) -> Self {
        ClaudeAdapter { program, launcher, converter: ClaudeConverter::new(), next_request: 0, out: Vec::new() }
    }
}

fn line(v: Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(&v).unwrap_or_default();
    out.push(b'\n');
    out
}

fn content_blocks(parts: &[Part]) -> Value {
    Value::Array(
        parts
            .iter()
            .map(|p| match p {
                Part::Text { text } => json!({"type": "text", "text": text}),
                Part::Image { mime, data: Some(data), .. } => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}})
                }
                Part::Image { path, .. } => {
                    json!({"type": "text", "text": format!("@{}", path.as_deref().unwrap_or_default())})
                }
                Part::File { path } => json!({"type": "text", "text": format!("@{path}")}),
            })
            .collect(),
    )
}

fn control_response(request_id: &str, response: Value) -> Vec<u8> {
    line(json!({"type": "control_response",
                "response": {"subtype": "success", "request_id": request_id, "response": response}}))
}

impl Adapter for ClaudeAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        (self.launcher)(&self.program, ctx)
    }

    fn user_message(&mut self, parts: &[Part]) {
        self.out.extend(line(json!({"type": "user", "message": {"role": "user", "content": content_blocks(parts)},
                    "parent_tool_use_id": null, "session_id": ""})));
    }

    fn interrupt(&mut self) -> bool {
        self.next_request += 1;
        let id = format!("tether_interrupt_{}", self.next_request);
        self.out
            .extend(line(json!({"type": "control_request", "request_id": id, "request": {"subtype": "interrupt"}})));
        true
    }

    fn permission_reply(&mut self, native: &NativeRequest, decision: Decision, message: Option<&str>) {
        let NativeRequest::Claude(req) = native else { return };
        let response = match decision {
            Decision::Deny => json!({"behavior": "deny",
                                      "message": message.unwrap_or("The user denied this action.")}),
            Decision::AllowOnce => json!({"behavior": "allow", "updatedInput": req.input}),
            Decision::AllowAlways => {
                let mut r = json!({"behavior": "allow", "updatedInput": req.input});
                if let Some(s) = req.permission_suggestions.as_ref().filter(|s| !s.is_null()) {
                    r["updatedPermissions"] = s.clone();
                }
                r
            }
        };
        self.out.extend(control_response(&req.request_id, response));
    }

    fn question_reply(&mut self, native: &NativeRequest, answers: Option<&[Vec<String>]>) {
        let NativeRequest::Claude(req) = native else { return };
        let Some(answers) = answers else {
            let reply = json!({"behavior": "deny", "message": "The user declined to answer."});
            self.out.extend(control_response(&req.request_id, reply));
            return;
        };
        // The answers go into the input, keyed by each question's text.
        let asked: wire::ToolInput = lenient::decode(&req.input);
        let mut by_question = serde_json::Map::new();
        for (q, a) in asked.questions.into_inner().unwrap_or_default().into_iter().zip(answers) {
            if let Some(text) = q.into_inner().and_then(|q| q.question.into_inner()) {
                by_question.insert(text, Value::String(a.join(", ")));
            }
        }
        let mut updated = req.input.clone();
        if let Value::Object(m) = &mut updated {
            m.insert("answers".into(), Value::Object(by_question));
        }
        self.out.extend(control_response(&req.request_id, json!({"behavior": "allow", "updatedInput": updated})));
    }

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        self.converter.convert(line)
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}
