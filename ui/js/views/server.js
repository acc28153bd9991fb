// The server: version, uptime, workspace, data dir, capabilities, and the
// agents (installed, version, capabilities) with an install button that
// shows the install's progress as it streams.

import { h, fill, fmtDuration } from "../dom.js";
import { api, sseFrames, request, enc } from "../api.js";

export function mount(root) {
  const info = h("dl#info.facts");
  const agents = h("tbody");
  const error = h("div.error-text", { role: "alert" });
  fill(root, h("section.server", h("h1", "Server"), error, info, h("h2", "Agents"),
    h("table#agents", h("thead", h("tr", ["Agent", "Installed", "Version", "Capabilities", ""].map((c) => h("th", { scope: "col" }, c)))), agents)));

  async function load() {
    try {
      const i = await api.get("/v1/info");
      fill(info, [["Version", i.version], ["Uptime", fmtDuration(i.uptime_ms)], ["Workspace", h("code", i.workspace_root)], ["Data dir", h("code", i.data_dir)], ["Capabilities", i.capabilities.join(", ")], ["Events", String(i.last_gseq ?? "")]]
        .map(([k, v]) => [h("dt", k), h("dd", v)]));
      const { agents: list } = await api.get("/v1/agents");
      fill(agents, list.map(agentRow));
    } catch (e) {
      error.textContent = e.describe ? e.describe() : String(e);
    }
  }

  function agentRow(a) {
    const caps = Object.entries(a.capabilities || {}).filter(([, v]) => v).map(([k]) => k);
    const progress = h("div.progress", { role: "status", "aria-live": "polite" });
    const button = h("button", { type: "button", dataset: { install: a.id }, on: { click: () => install(a, button, progress) } }, a.installed ? "Reinstall" : "Install");
    return h("tr", { dataset: { agent: a.id } },
      h("td", h("strong", a.name || a.id), h("br"), h("code", a.id)),
      h("td", a.installed ? "yes" : "no"),
      h("td", a.version || ""),
      h("td.caps", caps.map((c) => h("span.chip", c))),
      h("td", a.id === "mock" ? null : button, progress));
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
          else if (f.event === "done") { bar.value = 100; line.textContent = `installed ${d.version || ""}`; }
          else if (f.event === "error") { line.textContent = `failed: ${d.detail || d.title}`; line.className = "error-text"; }
        }
      }
      load();
    } catch (e) {
      line.textContent = e.describe ? e.describe() : String(e);
      line.className = "error-text";
    } finally {
      button.disabled = false;
    }
  }

  load();
  const timer = setInterval(load, 30_000);
  return () => clearInterval(timer);
}
