//! The end-to-end suite: one binary, one module per area. Every test starts
//! its own `tether` server (the real binary, real agent processes) on an
//! OS-chosen port of 127.0.0.1 with its own temporary directories, so tests
//! run in parallel. Set `TETHER_BIN` to test a prebuilt binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acp;
mod agent_user;
mod architecture;
mod auth;
mod browser_smoke;
mod claude;
mod codex;
mod conformance;
mod conversation;
mod copilot;
mod costs;
mod deploy;
mod durability;
mod edges;
mod errors;
mod faults;
mod first_run;
mod fs;
mod hostile;
mod lifecycle;
mod mcp;
mod mock_turns;
mod opencode;
mod orchestrate;
mod pause;
mod ports;
mod processes;
mod processes_client;
mod qwen;
mod recovery;
mod release;
mod remote;
mod retention;
mod schemathesis;
mod service;
mod session_config;
mod skills;
mod sprite;
mod streams;
mod streams_reset;
mod telemetry;
mod terminal;
mod tools;
mod ui;
mod ui_layout;
mod ui_session;
mod ui_terminal;
mod webhooks;
mod ws;
