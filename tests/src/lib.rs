//! tether-e2e: support for the end-to-end tests of tether. Everything runs
//! against the real `tether` binary in its own process, on an OS-chosen port
//! of 127.0.0.1, driven through `tether-sdk` (or raw HTTP where the wire
//! itself is under test).
//!
//! - [`server`]: [`TestServer`], the binary built once per test process
//!   (or `$TETHER_BIN`), started, signalled, restarted (on the same port
//!   too), killed on drop;
//! - [`browser`]: [`Browser`], a headless Chromium driven through
//!   chromedriver (WebDriver), waits with deadlines, screenshots into
//!   [`browser::artifacts_dir`], for the UI tests;
//! - [`benchkit`]: what the benches share (data dirs, percentiles, timed
//!   starts on a data dir, a light seq-only SSE reader);
//! - [`charts`]: line charts as SVG for docs/ (plotters);
//! - [`events`]: reading streams with deadlines, accessors and assertions on
//!   event sequences ([`assert_well_formed`]);
//! - [`faults`]: the `kill -9` fault loop (random kills mid-operation, restarts,
//!   checks of the store, the streams, skills and webhook deliveries);
//! - [`http`]: problem+json assertions and a raw SSE reader;
//! - [`mcp`]: the test MCP server (rmcp; tools echo, add, whoami, mint) over stdio
//!   ([`mcp_test_server_bin`]) or streamable HTTP ([`McpHttpServer`]), and
//!   its call log ([`McpLog`]);
//! - [`pinned_tools`]: outside tools run against the server, pinned and
//!   cached by the project's scripts (schemathesis, the MCP Inspector);
//! - [`ports`]: servers to preview (a dev server, a request-head echo, a
//!   WebSocket echo) and a port nothing listens on;
//! - [`procs`]: the processes of a session (by their `TETHER_SESSION_ID`);
//! - [`scripted`]: what the scripted models share (the HTTP server, request
//!   recording, injected errors, SSE streaming, tags and MCP call scripts);
//!   each model below is a `Dialect` of it plus its protocol's encoding;
//! - [`rig`]: [`rig::Rig`], a server whose sessions run a real agent CLI
//!   against one scripted model;
//! - [`amp`]: the real Amp CLI ([`amp_bin`], [`amp_env`]) against a scripted
//!   Amp server ([`ScriptedAmp`]: its Anthropic proxy and internal API);
//! - [`anthropic`]: the real Claude Code CLI ([`claude_bin`], [`claude_env`])
//!   against a scripted Anthropic model ([`ScriptedAnthropic`]);
//! - [`openai`]: the real Codex CLI ([`codex_bin`], [`codex_env`]) against a
//!   scripted OpenAI Responses model ([`ScriptedOpenAI`]);
//! - [`copilot`]: the real GitHub Copilot CLI over ACP ([`copilot_bin`],
//!   [`copilot_env`]) against the same Responses model (`[copilot:TAG]`);
//! - [`opencode`]: the real OpenCode CLI ([`opencode_bin`], [`opencode_env`])
//!   against a scripted OpenAI Chat Completions model ([`ScriptedChat`]);
//! - [`pi`]: the real Pi CLI in RPC mode ([`pi_bin`], [`pi_env`]) against a
//!   scripted Chat Completions model ([`ScriptedPi`], OpenCode's encoding);
//! - [`gemini`]: the real Gemini CLI over ACP ([`gemini_bin`], [`gemini_env`])
//!   against a scripted Gemini API model ([`ScriptedGemini`]);
//! - [`qwen`]: the real Qwen Code CLI over ACP ([`qwen_bin`], [`qwen_env`])
//!   against a scripted Chat Completions model ([`ScriptedQwen`], OpenCode's encoding);
//! - [`sprite`]: [`sprite::FakeSprite`], a fake of the in-Sprite API on a Unix
//!   socket (services run for real, tasks expire, every call recorded);
//! - [`tar`]: raw tar archives, hostile entries included (`..`, links);
//! - [`pty`]: [`pty::Pty`], a command on a pseudo-terminal (typed input, Ctrl-C);
//! - [`term_ws`]: a raw client of the terminal WebSockets ([`term_ws::TermWs`]);
//! - [`webhook_receiver`]: a webhook endpoint that checks signatures, records
//!   deliveries, fails on demand and goes down and up on its port;
//! - [`ws`]: a raw WebSocket client of the event-stream routes ([`ws::RawWs`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod amp;
pub mod anthropic;
pub mod benchkit;
pub mod browser;
pub mod charts;
pub mod copilot;
pub mod events;
pub mod faults;
pub mod gemini;
pub mod http;
pub mod mcp;
pub mod openai;
pub mod opencode;
pub mod otlp;
pub mod pi;
pub mod pinned_tools;
pub mod ports;
pub mod procs;
pub mod pty;
pub mod qwen;
pub mod remote;
pub mod rig;
pub mod scripted;
pub mod server;
pub mod sprite;
pub mod sprites_api;
pub mod tar;
pub mod term_ws;
pub mod tether_mcp;
pub mod webhook_receiver;
pub mod ws;

pub use amp::{amp_bin, amp_env, ScriptedAmp, AMP_VERSION};
pub use anthropic::{
    claude_acp_bin, claude_acp_env, claude_bin, claude_env, ScriptedAnthropic, CLAUDE_ACP_VERSION, CLAUDE_VERSION,
};
pub use browser::Browser;
pub use copilot::{copilot_bin, copilot_env, COPILOT_VERSION};
pub use events::{
    assert_contiguous, assert_well_formed, assert_well_formed_prefix, collect_turn, collect_turns, read_after,
    read_all, wait_for, TURN_TIMEOUT,
};
pub use gemini::{gemini_bin, gemini_env, ScriptedGemini, GEMINI_VERSION};
pub use mcp::{mcp_test_server_bin, McpHttpServer, McpLog};
pub use openai::{
    codex_acp_bin, codex_acp_env, codex_bin, codex_env, ScriptedOpenAI, CODEX_ACP_VERSION, CODEX_VERSION,
};
pub use opencode::{opencode_bin, opencode_env, ScriptedChat, OPENCODE_VERSION};
pub use pi::{pi_bin, pi_env, ScriptedPi, PI_VERSION};
pub use procs::{processes_of_session, wait_no_processes};
pub use qwen::{qwen_bin, qwen_env, ScriptedQwen, QWEN_VERSION};
pub use server::{tether_bin, workspace_root, ServerOptions, TestServer};

use tether_sdk::{Client, CreateSession, Session};

/// FNV-1a, 64-bit, over `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Creates a session of the `mock` agent in the workspace root.
pub async fn mock_session(client: &Client) -> Session {
    client
        .create_session(&CreateSession { agent: "mock".into(), ..Default::default() })
        .await
        .expect("create a mock session")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
