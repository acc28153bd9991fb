//! Pi (`@mariozechner/pi-coding-agent`): one `pi --mode rpc` per session,
//! JSON lines both ways: `get_state` once it is up (its answer names the
//! session file, which is the native session id, and the model), a `prompt`
//! per message, `abort` to stop a turn. Pi asks no permissions and no
//! questions and takes no MCP servers; an extension's dialog is dismissed.
//!
//! `launch` starts it, `wire` types the commands and lines, `convert` turns
//! lines into drafts (pure); this adapter alone writes to Pi.

pub mod convert;
pub mod launch;
pub mod wire;

use std::path::PathBuf;

use tether_protocol::{Decision, Part};

use super::{Adapter, Draft, LaunchContext, NativeRequest};
use crate::process::LaunchSpec;
use convert::PiConverter;
use wire::{Command, Outgoing};

/// The registry's constructor.
pub fn adapter(program: PathBuf) -> Box<dyn Adapter> {
    Box::new(PiAdapter::new(program))
}

pub struct PiAdapter {
    program: PathBuf,
    converter: PiConverter,
    out: Vec<u8>,
    next_id: u64,
}

impl PiAdapter {
    pub fn new(program: PathBuf) -> Self {
        PiAdapter { program, converter: PiConverter::new(), out: Vec::new(), next_id: 0 }
    }

    fn id(&mut self) -> String {
        self.next_id += 1;
        format!("tether-{}", self.next_id)
    }

    fn send(&mut self, outgoing: Outgoing) {
        self.out.extend(outgoing.to_line().into_bytes());
        self.out.push(b'\n');
    }
}

impl Adapter for PiAdapter {
    fn launch(&mut self, ctx: &LaunchContext<'_>) -> LaunchSpec {
        // A new process: nothing of the last one's stream is open.
        self.converter = PiConverter::new();
        launch::launch(&self.program, ctx)
    }

    fn started(&mut self) {
        let id = self.id();
        self.send(Outgoing::Command(Command::GetState { id }));
    }

    fn user_message(&mut self, parts: &[Part]) {
        let (message, images) = launch::prompt(parts);
        let id = self.id();
        self.converter.turn_started();
        self.send(Outgoing::Command(Command::Prompt { id, message, images }));
    }

    fn interrupt(&mut self) -> bool {
        let id = self.id();
        self.send(Outgoing::Command(Command::Abort { id }));
        true
    }

    /// Pi asks no permissions: there is never one to answer.
    fn permission_reply(&mut self, _native: &NativeRequest, _decision: Decision, _message: Option<&str>) {}

    /// Pi asks no questions: there is never one to answer.
    fn question_reply(&mut self, _native: &NativeRequest, _answers: Option<&[Vec<String>]>) {}

    fn convert(&mut self, line: &str) -> Vec<Draft> {
        let converted = self.converter.convert(line);
        if let Some(reply) = converted.reply {
            self.send(reply);
        }
        converted.drafts
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}
