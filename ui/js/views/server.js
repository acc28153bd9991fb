// The server: version, uptime, workspace, data dir, capabilities, and the
// agents (installed, version, capabilities) with an install button that
// shows the install's progress as it streams. The agents table stacks into
// one card per agent on a narrow screen.

import { h, fill, fmtDuration } from "../dom.js";
import { api, sseFrames, request, enc } from "../api.js";
import { failureSentence, humanize } from "../words.js";

export function mount(root) {
  const info = h("dl#info.facts");
  const agents = h("tbody");
  const error = h("div.error-text", { role: "alert" });
  const cols = ["Agent", "Installed", "Version", "Can", ""];
  fill(root, h("section.page.server",
    h("div.page-head", h("h1", "Server")),
    error,
    h("div.panel", info),
    h("h2", "Agents"),
    h("div.panel.flush", h("table#agents.stack", h("thead", h("tr", cols.map((c) => h("th", { scope: "col" }, c)))), agents))));

  async function load() {
    try {
      const i = await api.get("/v1/info");
      fill(info, [["Version", i.version], ["Up for", fmtDuration(i.uptime_ms)], ["Workspace", h("code", i.workspace_root)], ["Data", h("code", i.data_dir)],
        ["Can", h("span.chips", i.capabilities.map((c) => h("span.chip", humanize(c))))], ["Events", String(i.last_gseq ?? "")],
        ...spriteFacts(i.sprite)]
        .map(([k, v]) => h("div.fact", h("dt", k), h("dd", v))));
      const { agents: list } = await api.get("/v1/agents");
      fill(agents, list.map(agentRow));
      error.textContent = "";
    } catch (e) {
      error.textContent = failureSentence("load the server's details", e);
    }
  }

  // Inside a Sprite: who it is, keep-awake, and the network policy agents live under.
  function spriteFacts(s) {
    if (!s) return [];
    const facts = [["Sprite", s.url ? h("a", { href: s.url, target: "_blank", rel: "noopener" }, s.name || s.url) : (s.name || "this machine")]];
    facts.push(["Keeps awake", s.keep_awake
      ? `while agents work; while they only wait for you, for ${fmtDuration(s.keep_awake_wait_secs * 1000)}`
      : "no (the Sprite may pause mid-turn)"]);
    if (s.network_policy_error) facts.push(["Network", h("span.error-text", s.network_policy_error)]);
    else if (s.network_policy) {
      const rules = s.network_policy.rules.map((r) => h("li", r.include ? `include ${r.include}` : `${r.action || "?"} ${r.domain || "?"}`));
      facts.push(["Network", h("div", h("span.note", "Names a rule denies do not resolve for agents."), h("ul.rules", { id: "network-policy" }, rules))]);
    } else facts.push(["Network", "no policy: every name resolves"]);
    return facts;
  }

  function agentRow(a) {
    const caps = Object.entries(a.capabilities || {}).filter(([, v]) => v).map(([k]) => k);
    const progress = h("div.progress", { role: "status", "aria-live": "polite" });
    const button = h("button", { type: "button", class: a.installed ? "" : "primary", dataset: { install: a.id }, "aria-label": `${a.installed ? "Reinstall" : "Install"} ${a.name || a.id}`, on: { click: () => install(a, button, progress) } }, a.installed ? "Reinstall" : "Install");
    return h("tr", { dataset: { agent: a.id } },
      h("td.agent-name", { dataset: { label: "Agent" } }, h("strong", a.name || a.id), " ", h("code.note", a.id)),
      h("td", { dataset: { label: "Installed" } }, a.installed ? h("span.ok", "Yes") : h("span.note", "No")),
      h("td", { dataset: { label: "Version" } }, a.version || "—"),
      h("td.caps", { dataset: { label: "Can" } }, h("span.chips", caps.map((c) => h("span.chip", humanize(c))))),
      h("td.act", a.id === "mock" ? h("span.note", "built in") : button, progress));
  }

  async function install(a, button, progress) {
    button.disabled = true;
    const bar = h("progress", { max: 100, value: 0 });
    const line = h("span");
    fill(progress, bar, " ", line);
    try {
      const res = await request(`/v1/agents/${enc(a.id)}/install`, { method: "POST", headers: { Accept: "text/event-stream" }, raw: true });
      for await (const frames of sseFrames(res)) {
        for (const f of frames) {
          const d = JSON.parse(f.data);
          if (f.event === "progress") { bar.value = d.percent; line.textContent = `${d.stage}: ${d.message}`; }
          else if (f.event === "done") { bar.value = 100; line.textContent = `Installed ${d.version || ""}`; }
          else if (f.event === "error") { line.textContent = `Failed: ${d.detail || d.title}`; line.className = "error-text"; }
        }
      }
      load();
    } catch (e) {
      line.textContent = failureSentence(`install ${a.name || a.id}`, e);
      line.className = "error-text";
    } finally {
      button.disabled = false;
    }
  }

  load();
  const timer = setInterval(load, 30_000);
  return () => clearInterval(timer);
}
