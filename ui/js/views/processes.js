// Processes and ports at #/processes: the programs run beside the agents
// (shells, dev servers, test watchers; newest first, with state, pid and
// age), a "New terminal" button (bash under a terminal), and the TCP ports
// listening in the sandbox with who owns each and "Open preview" (a signed
// link opened in a new tab). The list is read again every few seconds, the
// ports also as soon as the global stream says one opened or closed.
//
// One process at #/processes/{id}: its command, state and a terminal pane
// attached to it (history first, then live; `?view=text` shows the plain
// text pane even where xterm.js is embedded), and "Stop" (DELETE: the whole
// process group). A process that is not there says so, with the way back.

import { h, fill, fmtAgo, fmtTime } from "../dom.js";
import { api, enc, follow } from "../api.js";
import { EventType } from "../event-types.js";
import { plural, portOwnerWord, processStateWord } from "../words.js";
import { attachTerminal } from "../terminal.js";
import { openPreview } from "../preview.js";
import { problemView } from "./rows.js";

/** How often the lists are read again while the view is open. */
const REFRESH_MS = 2000;

export function mount(root, { id, query }) {
  return id ? mountProcess(root, id, query) : mountList(root);
}

/** `pill` data-status of a process: running, or how it ended. */
function processStatus(p) {
  if (p.status === "running") return "running";
  if (p.ended === "exited" && (p.signal || p.exit_code)) return "failed";
  return "ended";
}

function processPill(p) {
  return h("span.pill", { dataset: { status: processStatus(p) } }, processStateWord(p));
}

function commandLine(p) {
  return [p.command, ...(p.args || [])].join(" ");
}

function mountList(root) {
  document.title = "Processes · tether";
  const error = h("div#processes-error", { role: "alert" });
  const list = h("div#processes.session-list", { role: "list", "aria-label": "processes" },
    h("p.empty-line.note", "Loading processes…"));
  const count = h("span#processes-count.note");
  const ports = h("div#ports", h("p.empty-line.note", "Looking for listening ports…"));
  const portsNote = h("p#ports-note.note", { hidden: true });
  const portsError = h("div#ports-error", { role: "alert" });
  const start = h("button#new-terminal.primary", { type: "button", on: { click: newTerminal } }, "New terminal");

  fill(root, h("section.page.processes",
    h("div.page-head", h("div", h("h1", "Processes"), count), start),
    error, list,
    h("h2", "Ports"),
    h("p.note", "TCP ports listening in the sandbox. A preview opens one through this server, in a new tab."),
    portsNote, portsError,
    h("div.panel.flush", ports)));

  let closed = false;
  let titles = new Map(); // process id -> title, for the ports' owners

  async function newTerminal() {
    start.disabled = true;
    error.replaceChildren();
    try {
      const p = await api.post("/v1/processes", { command: "bash", tty: true, title: "Terminal" });
      location.hash = `#/processes/${enc(p.id)}`;
    } catch (e) {
      error.replaceChildren(problemView(e, "start a terminal"));
      start.disabled = false;
    }
  }

  async function loadProcesses() {
    try {
      const { processes } = await api.get("/v1/processes");
      if (closed) return;
      titles = new Map(processes.map((p) => [p.id, p.title]));
      const running = processes.filter((p) => p.status === "running").length;
      count.textContent = processes.length ? `${plural(processes.length, "process", "processes")}, ${running} running` : "";
      if (!processes.length) {
        fill(list, h("div#processes-empty.empty",
          h("p", "No processes yet."),
          h("p.note", "“New terminal” starts a shell here; agents start theirs (dev servers, test watchers) through tether's tools.")));
      } else {
        fill(list, processes.map(processRow));
      }
      if (error.dataset.from === "list") { error.replaceChildren(); delete error.dataset.from; }
    } catch (e) {
      if (closed) return;
      error.dataset.from = "list";
      error.replaceChildren(problemView(e, "list the processes"));
      if (list.querySelector(".empty-line")) fill(list, h("p.empty-line.note", "The processes could not be listed; trying again every few seconds."));
    }
  }

  function processRow(p) {
    return h("div.session-row.process-row", { role: "listitem", dataset: { process: p.id, status: p.status } },
      h("div.row-main",
        h("a.session-title", { href: `#/processes/${enc(p.id)}` }, p.title || commandLine(p)),
        h("p.last-text", h("code", commandLine(p))),
        h("p.row-meta",
          h("span", `pid ${p.pid}`),
          h("span", { title: p.started_at }, `started ${fmtAgo(p.started_at)}`),
          p.session_id ? h("span", "for an agent's session") : null,
          p.tty ? null : h("span", "no terminal"))),
      h("div.row-side", processPill(p)));
  }

  async function loadPorts() {
    try {
      const list_ = await api.get("/v1/ports");
      if (closed) return;
      portsNote.hidden = list_.attributed !== false;
      portsNote.textContent = "This sandbox hides some sockets' processes from the server, so some ports are listed without an owner.";
      if (!list_.ports.length) {
        fill(ports, h("p#ports-empty.empty-line.note", "No port is listening. A dev server started here or by an agent shows up as soon as it listens."));
      } else {
        fill(ports, h("table#ports-table.stack",
          h("thead", h("tr", ["Port", "Address", "Owner", ""].map((c) => h("th", { scope: "col" }, c)))),
          h("tbody", list_.ports.map(portRow))));
      }
      portsError.replaceChildren();
    } catch (e) {
      if (closed) return;
      portsError.replaceChildren(problemView(e, "list the ports"));
      if (ports.querySelector(".empty-line")) fill(ports, h("p.empty-line.note", "The ports could not be listed; trying again every few seconds."));
    }
  }

  function portRow(port) {
    const problem = h("div.card-error");
    const link = h("span.preview-link");
    const open = h("button.open-preview", { type: "button", dataset: { port: port.port }, on: { click: async () => {
      open.disabled = true;
      problem.replaceChildren();
      link.replaceChildren();
      try {
        const made = await openPreview(port.port);
        if (!made.opened) link.replaceChildren(h("a", { href: made.url, target: "_blank", rel: "noopener" }, "Open the preview"));
      } catch (e) {
        problem.replaceChildren(problemView(e, `open a preview of port ${port.port}`));
      }
      open.disabled = false;
    } } }, "Open preview");
    let owner = portOwnerWord(port, titles.get(port.process_id));
    if (port.process_id) owner = h("a", { href: `#/processes/${enc(port.process_id)}` }, owner);
    else if (port.session_id) owner = h("a", { href: `#/sessions/${enc(port.session_id)}` }, owner);
    return h("tr", { dataset: { port: port.port } },
      h("td.port", h("strong", `:${port.port}`)),
      h("td", { dataset: { label: "Address" } }, (port.addresses || []).join(", ")),
      h("td", { dataset: { label: "Owner" } }, owner, port.pid ? h("span.note", ` · pid ${port.pid}${port.program ? ` (${port.program})` : ""}`) : null),
      h("td.act", open, link, problem));
  }

  loadProcesses();
  loadPorts();
  const timer = setInterval(() => { loadProcesses(); loadPorts(); }, REFRESH_MS);
  let stream = null;
  api.get("/v1/info").then((info) => {
    if (closed) return;
    stream = follow(`/v1/events/stream?types=${EventType.PORT_OPENED},${EventType.PORT_CLOSED}`, {
      after: info.last_gseq || 0,
      onEvents: () => loadPorts(),
    });
  }, () => {});

  return () => {
    closed = true;
    clearInterval(timer);
    stream?.close();
  };
}

function mountProcess(root, id, query) {
  const base = `/v1/processes/${enc(id)}`;
  const back = h("a.back", { href: "#/processes" }, "← Processes");
  fill(root, h("section#process.process", { dataset: { process: id, state: "loading" } },
    back, h("p.note", { role: "status" }, "Loading the process…")));
  let closed = false;
  let teardown = null;
  (async () => {
    let p;
    try {
      p = await api.get(base);
    } catch (e) {
      if (closed) return;
      if (e.status === 404) {
        document.title = "Process not found · tether";
        fill(root, h("section#process.process.session-missing", { dataset: { process: id, state: "missing" } },
          h("h1", "Process not found"),
          h("p#not-found", "There is no process ", h("code", id), " on this server. The link may be wrong, or its record is gone."),
          h("p", h("a#back-to-processes.button", { href: "#/processes" }, "← Back to processes"))));
      } else {
        fill(root, h("section#process.process", { dataset: { process: id, state: "error" } }, back, problemView(e, "load this process")));
      }
      return;
    }
    if (!closed) teardown = openProcess(root, p, base, query);
  })();
  return () => {
    closed = true;
    teardown?.();
  };
}

function openProcess(root, p, base, query) {
  document.title = `${p.title || p.command} · tether`;
  const state = h("span#process-state");
  const meta = h("div.meta");
  const flash = h("div#process-error.flash");
  const stop = h("button#stop.danger", { type: "button", on: { click: async () => {
    stop.disabled = true;
    flash.replaceChildren();
    try {
      show(await api.del(base));
    } catch (e) {
      flash.replaceChildren(problemView(e, "stop the process"));
      stop.disabled = false;
    }
  } } }, "Stop");
  const pane = h("div.term-wrap");
  const el = h("section#process.process", { dataset: { process: p.id, state: p.status } },
    h("header.session-head",
      h("div.session-id", h("a.back", { href: "#/processes" }, "← Processes"), h("h1.title", p.title || p.command), meta),
      h("div.actions.session-actions", state, stop)),
    flash, pane);
  fill(root, el);

  function show(now) {
    p = now;
    el.dataset.state = p.status;
    fill(state, processPill(p));
    stop.hidden = p.status !== "running";
    fill(meta, h("code", commandLine(p)), ` · pid ${p.pid} · `, h("code", p.cwd), ` · started ${fmtTime(p.started_at)}`,
      p.ended_at ? ` · ended ${fmtTime(p.ended_at)}` : null);
  }
  show(p);

  const term = attachTerminal(pane, {
    path: `${base}/terminal`,
    plain: query?.get("view") === "text",
    onExit: async () => {
      try { show(await api.get(base)); } catch { show({ ...p, status: "exited" }); }
    },
  });
  term.focus();
  return () => term.close();
}
