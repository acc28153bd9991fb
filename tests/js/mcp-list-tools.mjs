// Lists (and optionally calls) tether's MCP tools with the official MCP
// TypeScript SDK, as the MCP Inspector and other TypeScript clients do.
// Usage: node mcp-list-tools.mjs URL [TOKEN]
// Prints one JSON line: {"tools":[names...],"call":<list_sessions result>}.
// The SDK is found through NODE_PATH (scripts/install-mcp-sdk installs it).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token] = process.argv.slice(2);
const headers = token ? { Authorization: `Bearer ${token}` } : {};
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client({ name: "tether-e2e-ts", version: "1.0.0" });
try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  const call = await client.callTool({ name: "list_sessions", arguments: {} });
  console.log(JSON.stringify({ tools: tools.map((t) => t.name), call: call.structuredContent ?? null, isError: call.isError ?? false }));
  await client.close();
} catch (e) {
  console.log(JSON.stringify({ error: String(e && e.stack || e) }));
  process.exitCode = 1;
}
