//! Amp (`@sourcegraph/amp` 0.0.1767830505-ga62310, the last build whose
//! agent loop runs locally against a model URL): one long-lived
//! `amp --execute --stream-json --stream-json-input` process per session,
//! user messages as JSON lines on a stdin pipe, its output on the PTY.
//!
//! Its stream-json is Claude Code's dialect without partial messages: one
//! `assistant` line holds a whole message (text and tool_use blocks, no
//! thinking), `user` lines carry tool results (MCP tools are
//! `mcp__SERVER__TOOL`, from `--mcp-config`), and in this input mode a turn
//! ends with the assistant message whose `stop_reason` is `end_turn` (the
//! only `result` line comes when the process ends). It cannot ask for a
//! permission: a call that needs one ends the run with an error. An
//! interrupt is SIGINT (it writes a `result` naming the cancel and exits);
//! an error also ends the process. The next message waits for that exit
//! ([`Adapter::ending`]) and starts it again on the same thread
//! (`amp threads continue <id>`).
//!
//! `launch` starts it, the typed lines are Claude's ([`super::claude::wire`])
//! with `wire`'s tool inputs and results,
//! `convert` turns them into drafts (pure); this adapter encodes user
//! messages.

pub mod convert;
pub mod launch;
pub mod wire;

use std::path::PathBuf;

use serde_json::{json, Value};
use tether_protocol::{Decision, Part};

use super::{Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::LaunchSpec;
use convert::AmpConverter;

/// The registry's constructor: an adapter for the Amp CLI.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(AmpAdapter { program, converter: AmpConverter::new(), out: Vec::new() })
}

pub struct AmpAdapter {
    program: PathBuf,
    converter: AmpConverter,
    out: Vec<u8>,
}

/// A user message as Amp's `--stream-json-input` reads it: text blocks only
/// (its schema takes nothing else), files and images named by path.
pub fn user_line(parts: &[Part]) -> Vec<u8> {
    let content: Vec<Value> = parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => json!({"type": "text", "text": text}),
            Part::Image { path, .. } => {
                json!({"type": "text", "text": format!("@{}", path.as_deref().unwrap_or_default())})
            }
            Part::File { path } => json!({"type": "text", "text": format!("@{path}")}),
        })
        .collect();
    let mut out = serde_json::to_vec(&json!({"type": "user", "message": {"role": "user", "content": content}}))
        .unwrap_or_default();
    out.push(b'\n');
    out
}

impl Adapter for AmpAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        self.converter.process_started();
        launch::launch(&self.program, ctx)
    }

    fn user_message(&mut self, parts: &[Part]) {
        self.converter.turn_started();
        self.out.extend(user_line(parts));
    }

    /// Amp's input has no interrupt message: the session sends SIGINT, which
    /// Amp answers with a `result` naming the cancel before it exits.
    fn interrupt(&mut self) -> bool {
        false
    }

    /// Amp asks no permissions over stream-json.
    fn permission_reply(&mut self, _native: &NativeRequest, _decision: Decision, _message: Option<&str>) {}

    /// Amp asks no questions over stream-json.
    fn question_reply(&mut self, _native: &NativeRequest, _answers: Option<&[Vec<String>]>) {}

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        self.converter.convert(line)
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// After its `result` line Amp reads no more input and exits.
    fn ending(&self) -> bool {
        self.converter.run_ended()
    }
}
