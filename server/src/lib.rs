//! tether: a server that runs coding agents under PTYs, turns their output
//! into one universal event stream, stores it durably and serves it over
//! HTTP/SSE with replay.
//!
//! Layout (docs/ARCHITECTURE.md has the whole picture): `store` (the
//! durable event log, its one writer and its one follower), `process` (the
//! PTY host and the spawn types), `agents` (one folder per agent: launch,
//! wire, convert, adapter; the registry), `session` (the per-session actor,
//! the normalizer, turn waits), `fs` (the workspace's files), `mcp_servers`
//! (the MCP servers agents are given: the global registry, probing),
//! `skills` (installed and bundled skills), `webhooks` (subscriptions and
//! their delivery), `app` (the application core the HTTP API and
//! `tether_mcp` share), `error` (how every room's error is told to a
//! client), `http` (one module per route group; `ApiError`), `tether_mcp`
//! (tether's own MCP server and the `tether mcp` bridge), `sprite` (the
//! Sprite platform), `pause` (pause detection from the clocks),
//! `connections` (the accept loop: connection cap, read and send timeouts),
//! `serve` (start, serve, shut down), `ids` and `token` (ids and time
//! stamps; reading and comparing the API token), `client` (the terminal
//! client: `tether run`, `sessions`, …), `cli` (the `tether` command),
//! `alloc` (the binary's counting allocator).

pub mod agents;
pub mod alloc;
pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod connections;
pub mod disk;
pub mod error;
pub mod exec;
pub mod fs;
pub mod http;
pub mod ids;
pub mod mcp_servers;
pub mod patterns;
pub mod pause;
pub mod ports;
pub mod process;
pub mod retention;
pub mod serve;
pub mod session;
pub mod skills;
pub mod sprite;
pub mod store;
pub mod telemetry;
pub mod tether_mcp;
pub mod token;
pub mod webhooks;
