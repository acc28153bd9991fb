// The sessions list: one line per session with its title (else its first
// prompt's first line, else "New <agent> session"), the assistant's last
// line, status in words, agent, tokens and cost, last activity; sessions
// waiting for a person first and flagged. Filters by status and agent (kept
// in the URL), refreshed live when the shell hears of a change. The form
// that creates a session (agent, folder, prompt; the rest under "More
// options") opens from "New session", or by itself when there is none yet.

import { h, fill, fmtAgo } from "../dom.js";
import { api, enc } from "../api.js";
import { statusShort, STATUS_HINT, MODE, modeWord, failureSentence } from "../words.js";
import { oneLine, sessionTitle, usageText } from "../summary.js";

const STATUSES = ["waiting", "running", "idle", "starting", "ended", "failed"];

/** "4 turns · 1.2k tokens · $0.03", or "". */
function usageLine(summary) {
  if (!summary) return "";
  const turns = summary.turns ? `${summary.turns} ${summary.turns === 1 ? "turn" : "turns"}` : "";
  return [turns, usageText(summary)].filter(Boolean).join(" · ");
}

/** A status pill: `<span class="pill" data-status>` in words. */
export function statusPill(status) {
  return h("span.pill", { dataset: { status: status || "unknown" }, title: STATUS_HINT[status] || "" }, statusShort(status || "unknown"));
}

export function mount(root, { query }) {
  const wanted = query.get("status") || "";
  const statusFilter = h("select#filter-status", { "aria-label": "Status" },
    h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: s === wanted }, statusShort(s))));
  const agentFilter = h("select#filter-agent", { "aria-label": "Agent" }, h("option", { value: "" }, "Any agent"));
  const list = h("div#sessions.session-list", { role: "list", "aria-label": "sessions" });
  const more = h("button#more", { type: "button", hidden: true }, "Show more");
  const listError = h("div#sessions-error.error-text", { role: "alert" });
  const count = h("span#sessions-count.note");

  const form = createForm();
  const panel = h("section#new-panel.panel.new-panel", { hidden: true, "aria-labelledby": "new-heading" },
    h("div.panel-head", h("h2#new-heading", "New session"),
      h("button#new-close.quiet", { type: "button", "aria-label": "Close the new session form", on: { click: () => toggle(false) } }, "Close")),
    form.el);
  const openButton = h("button#new-session-open.primary", { type: "button", "aria-expanded": "false", "aria-controls": "new-panel", on: { click: () => toggle(panel.hidden) } }, "New session");
  function toggle(open) {
    panel.hidden = !open;
    openButton.setAttribute("aria-expanded", String(open));
    if (open) form.focus();
    else openButton.focus();
  }

  fill(root, h("section.page.sessions",
    h("div.page-head", h("div", h("h1", "Sessions"), count), openButton),
    panel,
    h("div.filters", statusFilter, agentFilter),
    listError, list, more));

  let sessions = [];
  let cursor = null;
  let everLoaded = false;
  async function load(append = false) {
    const params = new URLSearchParams({ limit: "100" });
    if (statusFilter.value) params.set("status", statusFilter.value);
    if (agentFilter.value) params.set("agent", agentFilter.value);
    if (append && cursor) params.set("cursor", cursor);
    try {
      const page = await api.get(`/v1/sessions?${params}`);
      listError.textContent = "";
      sessions = append ? sessions.concat(page.sessions) : page.sessions;
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      draw();
      // First run: no session at all, so the form is what there is to do.
      if (!everLoaded && !sessions.length && !statusFilter.value && !agentFilter.value) toggle(true);
      everLoaded = true;
    } catch (e) {
      listError.textContent = failureSentence("list the sessions", e);
    }
  }

  function draw() {
    // Waiting for a person first; otherwise the server's order (newest first).
    const shown = [...sessions].sort((a, b) => (b.status === "waiting") - (a.status === "waiting"));
    const waiting = shown.filter((s) => s.status === "waiting").length;
    count.textContent = sessions.length
      ? `${sessions.length}${cursor ? "+" : ""} ${sessions.length === 1 ? "session" : "sessions"}${waiting ? ` · ${waiting} waiting for you` : ""}`
      : "";
    if (!shown.length) {
      const filtered = statusFilter.value || agentFilter.value;
      fill(list, h("div.empty", { role: "listitem" },
        h("p", filtered ? "No session matches these filters." : "No sessions yet."),
        h("p.note", filtered ? "Change the filters above to see more." : "Start one with New session: pick an agent, a folder and say what to do.")));
      return;
    }
    fill(list, shown.map(row));
  }

  function row(s) {
    const usage = usageLine(s.summary);
    const last = s.summary?.last_text ? oneLine(s.summary.last_text, 200) : "";
    const when = h("time", { datetime: s.updated_at, title: new Date(s.updated_at).toLocaleString() }, fmtAgo(s.updated_at));
    return h("article.session-row", { role: "listitem", dataset: { session: s.id, status: s.status } },
      h("div.row-main",
        h("a.session-title", { href: `#/sessions/${enc(s.id)}` }, sessionTitle(s)),
        last ? h("p.last-text", last) : null,
        h("p.row-meta",
          h("span.agent", s.agent),
          s.model ? h("span", s.model) : null,
          usage ? h("span.usage", usage) : null,
          h("span.when", when))),
      h("div.row-side", statusPill(s.status)));
  }

  more.addEventListener("click", () => load(true));
  for (const f of [statusFilter, agentFilter]) {
    f.addEventListener("change", () => {
      // The filters live in the URL, so a reload or a shared link keeps them.
      const q = new URLSearchParams();
      if (statusFilter.value) q.set("status", statusFilter.value);
      if (agentFilter.value) q.set("agent", agentFilter.value);
      history.replaceState(null, "", `#/${q.size ? `?${q}` : ""}`);
      load();
    });
  }

  // Live: the shell follows the global stream and says when sessions change.
  let timer = null;
  const onChange = () => { clearTimeout(timer); timer = setTimeout(() => load(), 250); };
  window.addEventListener("tether:sessions", onChange);
  // Relative times stay true.
  const ticker = setInterval(() => { for (const t of list.querySelectorAll("time[datetime]")) t.textContent = fmtAgo(t.getAttribute("datetime")); }, 30_000);

  api.get("/v1/agents").then(({ agents }) => {
    const want = query.get("agent") || "";
    for (const a of agents) agentFilter.append(h("option", { value: a.id, selected: a.id === want }, a.name || a.id));
    form.agents(agents);
    if (want) load();
  }, (e) => { listError.textContent = failureSentence("list the agents", e); });
  load();
  return () => { window.removeEventListener("tether:sessions", onChange); clearTimeout(timer); clearInterval(ticker); };
}

function createForm() {
  const agent = h("select#new-agent", { name: "agent", required: true });
  const folders = h("datalist#new-folders");
  const cwd = h("input#new-cwd", { name: "cwd", placeholder: "the workspace root", list: "new-folders", autocomplete: "off", spellcheck: false });
  const prompt = h("textarea#new-prompt", { name: "prompt", rows: 3, placeholder: "What should the agent do? (optional: you can also write once it has started)" });
  const model = h("input#new-model", { name: "model", placeholder: "the agent's default", spellcheck: false });
  const mode = h("select#new-mode", { name: "permission_mode" }, Object.keys(MODE).map((m) => h("option", { value: m }, modeWord(m))));
  const title = h("input#new-title", { name: "title", placeholder: "the first line of the prompt" });
  const mcp = h("textarea#new-mcp", { name: "mcp_servers", rows: 3, placeholder: '{"docs": {"url": "https://…"}}', spellcheck: false });
  const skillsList = h("div.choices-list", h("p.note", "Loading…"));
  const skillsCount = h("span.note");
  const skills = h("details#new-skills.sub", h("summary", "Skills ", skillsCount), skillsList);
  const globalMcp = h("span#global-mcp");
  const error = h("div#create-error.error-text", { role: "alert" });
  const submit = h("button#create.primary", { type: "submit" }, "Start session");
  const field = (label, input, hint) => h("label.field", h("span", label), input, hint ? h("small.hint", hint) : null);
  const el = h("form#new-session", { on: { submit: async (e) => {
    e.preventDefault();
    error.textContent = "";
    const body = { agent: agent.value, permission_mode: mode.value };
    for (const [k, input] of [["cwd", cwd], ["model", model], ["title", title], ["prompt", prompt]]) if (input.value.trim()) body[k] = input.value;
    if (mcp.value.trim()) {
      try { body.mcp_servers = JSON.parse(mcp.value); } catch (x) {
        error.textContent = `The MCP servers are not valid JSON: ${x.message}`;
        el.querySelector("#more-options").open = true;
        mcp.focus();
        return;
      }
    }
    const picked = [...skillsList.querySelectorAll("input:checked")].map((i) => i.value);
    if (picked.length) body.skills = picked;
    submit.disabled = true;
    try {
      const s = await api.post("/v1/sessions", body);
      location.hash = `#/sessions/${enc(s.id)}`;
    } catch (x) {
      error.textContent = failureSentence("start the session", x);
    } finally {
      submit.disabled = false;
    }
  } } },
    h("div.form-grid", field("Agent", agent), field("Folder", cwd, "Relative to the workspace; empty for its root.")),
    folders,
    field("Prompt", prompt),
    h("details#more-options.more",
      h("summary", "More options"),
      h("div.form-grid",
        field("Model", model),
        field("Permissions", mode),
        field("Title", title)),
      skills,
      h("details.sub", h("summary", "MCP servers for this session"),
        field("JSON: a name for each server, with a command or a URL", mcp),
        h("p.hint", "For example ", h("code", '{"files": {"command": "mcp-files", "args": []}}'), ". ", globalMcp))),
    error, h("div.form-actions", submit));

  api.get("/v1/skills").then(({ skills: list }) => {
    skillsCount.textContent = list.length ? `(${list.length} installed)` : "(none installed)";
    fill(skillsList, list.length
      ? list.map((s) => h("label.choice", h("input", { type: "checkbox", name: "skill", value: s.name }), h("span", h("strong", s.name), s.description ? h("small.note", ` ${s.description}`) : null)))
      : h("p.note", "No skills are installed on this server."));
  }, () => { skillsCount.textContent = ""; fill(skillsList, h("p.note", "The skills could not be listed.")); });
  api.get("/v1/mcp/servers").then(({ servers }) => {
    const names = Object.keys(servers || {});
    globalMcp.textContent = names.length ? `Every session also gets the server's own: ${names.join(", ")}.` : "";
  }, () => {});
  api.get("/v1/fs/entries?path=").then(({ entries }) => {
    fill(folders, entries.filter((e) => e.kind === "dir" && !e.name.startsWith(".")).slice(0, 200).map((e) => h("option", { value: e.name })));
  }, () => {});

  return {
    el,
    focus() { agent.focus(); },
    agents(list) {
      const usable = list.some((a) => a.installed && a.id !== "mock");
      fill(agent, list.map((a) => h("option", { value: a.id, disabled: !a.installed, selected: usable ? false : a.id === "mock" },
        `${a.name || a.id}${a.installed ? "" : " (not installed)"}`)));
      // The first installed real agent by default; the mock where none is.
      if (usable) agent.value = list.find((a) => a.installed && a.id !== "mock").id;
    },
  };
}
