// The sessions list (status, agent, title, last activity; filters by status
// and agent; refreshed live from the global event stream) and the form that
// creates a session: agent, cwd, model, permission mode, title, first prompt,
// per-session MCP servers and skills.

import { h, fill, badge, fmtAgo } from "../dom.js";
import { api, follow, enc } from "../api.js";

const STATUSES = ["", "starting", "idle", "running", "waiting", "ended", "failed"];
const MODES = ["default", "accept_edits", "bypass", "plan"];

export function mount(root, { query }) {
  const statusFilter = h("select#filter-status", { "aria-label": "status filter" }, STATUSES.map((s) => h("option", { value: s, selected: s === (query.get("status") || "") }, s || "any status")));
  const agentFilter = h("select#filter-agent", { "aria-label": "agent filter" }, h("option", { value: "" }, "any agent"));
  const tbody = h("tbody");
  const more = h("button#more", { type: "button", hidden: true }, "More");
  const listError = h("div.error-text", { role: "alert" });
  const table = h("table#sessions", h("thead", h("tr", ["Status", "Title", "Agent", "Last activity", "Events"].map((c) => h("th", { scope: "col" }, c)))), tbody);

  const form = createForm();
  fill(root, h("section.sessions",
    h("div.split",
      h("div.list-pane", h("h1", "Sessions"), h("div.filters", statusFilter, agentFilter), listError, table, more),
      h("div.form-pane", h("h2", "New session"), form.el))));

  let cursor = null;
  async function load(append = false) {
    const params = new URLSearchParams({ limit: "100" });
    if (statusFilter.value) params.set("status", statusFilter.value);
    if (agentFilter.value) params.set("agent", agentFilter.value);
    if (append && cursor) params.set("cursor", cursor);
    try {
      const page = await api.get(`/v1/sessions?${params}`);
      listError.textContent = "";
      const rows = page.sessions.map((s) => h("tr", { dataset: { session: s.id, status: s.status } },
        h("td", badge(s.status)),
        h("td", h("a", { href: `#/sessions/${enc(s.id)}` }, s.title || s.id)),
        h("td", s.agent),
        h("td", h("time", { datetime: s.updated_at, title: s.updated_at }, fmtAgo(s.updated_at))),
        h("td.num", s.last_seq)));
      append ? tbody.append(...rows) : fill(tbody, rows.length ? rows : h("tr", h("td", { colspan: 5 }, h("p.note", "No sessions yet: create one with the form."))));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
    } catch (e) {
      listError.textContent = e.describe ? e.describe() : String(e);
    }
  }
  more.addEventListener("click", () => load(true));
  for (const f of [statusFilter, agentFilter]) f.addEventListener("change", () => load());

  // Live: reload (debounced) when any session changes.
  let timer = null;
  let stream = null;
  api.get("/v1/info").then((info) => {
    stream = follow("/v1/events/stream", {
      after: info.last_gseq || 0,
      onEvents: (batch) => {
        if (!batch.some((f) => /^(session|turn)\./.test(f.event))) return;
        clearTimeout(timer);
        timer = setTimeout(() => load(), 300);
      },
    });
  }, () => {});

  api.get("/v1/agents").then(({ agents }) => {
    for (const a of agents) agentFilter.append(h("option", { value: a.id }, a.id));
    form.agents(agents);
  }, (e) => { listError.textContent = e.describe(); });
  load();
  return () => { stream?.close(); clearTimeout(timer); };
}

function createForm() {
  const agent = h("select#new-agent", { name: "agent", required: true });
  const cwd = h("input#new-cwd", { name: "cwd", placeholder: "workspace root" });
  const model = h("input#new-model", { name: "model", placeholder: "agent default" });
  const mode = h("select#new-mode", { name: "permission_mode" }, MODES.map((m) => h("option", { value: m }, m)));
  const title = h("input#new-title", { name: "title" });
  const prompt = h("textarea#new-prompt", { name: "prompt", rows: 4, placeholder: "optional: sent at once as the first message" });
  const mcp = h("textarea#new-mcp", { name: "mcp_servers", rows: 3, placeholder: '{"name": {"command": "…", "args": []}} or {"name": {"url": "…"}}', spellcheck: false });
  const skills = h("fieldset#new-skills", h("legend", "Skills"), h("p.note", "loading…"));
  const globalMcp = h("p.note#global-mcp");
  const error = h("div#create-error.error-text", { role: "alert" });
  const submit = h("button#create.primary", { type: "submit" }, "Create session");
  const field = (label, input, hint) => h("label.field", h("span", label), input, hint ? h("small.note", hint) : null);
  const el = h("form#new-session", { on: { submit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    const body = { agent: agent.value, permission_mode: mode.value };
    for (const [k, input] of [["cwd", cwd], ["model", model], ["title", title], ["prompt", prompt]]) if (input.value.trim()) body[k] = input.value;
    if (mcp.value.trim()) {
      try { body.mcp_servers = JSON.parse(mcp.value); } catch (x) { error.textContent = `MCP servers: not valid JSON (${x.message})`; mcp.focus(); return; }
    }
    const picked = [...skills.querySelectorAll("input:checked")].map((i) => i.value);
    if (picked.length) body.skills = picked;
    submit.disabled = true;
    try {
      const s = await api.post("/v1/sessions", body);
      location.hash = `#/sessions/${enc(s.id)}`;
    } catch (x) {
      error.textContent = x.describe ? x.describe() : String(x);
    } finally {
      submit.disabled = false;
    }
  } } },
    field("Agent", agent), field("Working directory", cwd, "relative to the workspace root"), field("Model", model),
    field("Permission mode", mode), field("Title", title), field("First prompt", prompt),
    field("MCP servers for this session (JSON)", mcp), globalMcp, skills, error, submit);

  api.get("/v1/skills").then(({ skills: list }) => {
    fill(skills, h("legend", "Skills"), list.length ? list.map((s) => h("label.choice", h("input", { type: "checkbox", name: "skill", value: s.name }), " ", s.name, s.description ? h("small", ` — ${s.description}`) : null)) : h("p.note", "no skills installed"));
  }, () => fill(skills, h("legend", "Skills"), h("p.note", "skills unavailable")));
  api.get("/v1/mcp/servers").then(({ servers }) => {
    const names = Object.keys(servers || {});
    globalMcp.textContent = names.length ? `Every session also gets the global MCP servers: ${names.join(", ")}.` : "No global MCP servers are configured.";
  }, () => {});

  return {
    el,
    agents(list) {
      fill(agent, list.map((a) => h("option", { value: a.id, disabled: !a.installed, selected: a.id === "mock" }, `${a.id}${a.installed ? "" : " (not installed)"}`)));
    },
  };
}
