//! tether: a server that runs coding agents under PTYs, turns their output
//! into one universal event stream, stores it durably and serves it over
//! HTTP/SSE with replay.
//!
//! Layout: `store` (the durable event log), `process` (the PTY host),
//! `agents` (one folder per agent: launch, wire, convert), `session` (the
//! per-session actor and the normalizer), `fs` (the workspace's files),
//! `mcp` (global MCP servers and probing them), `skills` (installed and
//! bundled skills), `webhooks` (subscriptions and their delivery),
//! `connections` (the accept loop: connection cap, read and send timeouts),
//! `http` (one module per route group), `client` (the terminal client: `tether
//! run`, `sessions`, …), `cli` (the `tether` command).

pub mod agents;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod connections;
pub mod error;
pub mod fs;
pub mod http;
pub mod mcp;
pub mod patterns;
pub mod process;
pub mod server;
pub mod session;
pub mod skills;
pub mod sprite;
pub mod store;
pub mod tools;
pub mod util;
pub mod wake;
pub mod webhooks;
