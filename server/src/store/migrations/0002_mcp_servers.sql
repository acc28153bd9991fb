-- The global MCP servers: applied to every new session, by name. `config` is
-- the server's JSON (tether_protocol::McpServer); `updated_at` is unix ms.
CREATE TABLE mcp_servers (
    name       TEXT PRIMARY KEY,
    config     TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
