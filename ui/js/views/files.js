// The workspace: browse directories (#/files?path=dir), view a file (text or
// image; #/files?path=dir&file=name keeps it in the URL, so a reload or a
// shared link shows it), download files and folders (tar), upload files
// into the directory shown (each one reported), and see changes as they
// happen through /v1/fs/watch. A folder that does not exist says so, and
// its actions are off.

import { h, fill, fmtBytes, fmtTime } from "../dom.js";
import { api, request, follow, download, enc } from "../api.js";
import { failureSentence } from "../words.js";

const VIEW_BYTES = 1 << 20;

export function mount(root, { query }) {
  const dir = (query.get("path") || "").replace(/^\/+|\/+$/g, "");
  let open = query.get("file") || "";
  const crumbs = h("nav#crumbs.crumbs", { "aria-label": "folder" });
  const tbody = h("tbody");
  const error = h("div#files-error.error-text", { role: "alert" });
  const viewer = h("div#viewer.viewer");
  const changes = h("ol#changes.changes", { reversed: true, "aria-label": "changes" });
  const picker = h("input#upload", { type: "file", multiple: true, "aria-label": "Upload files" });
  const uploadLabel = h("label.button", "Upload files", picker);
  const status = h("ul#upload-status.uploads", { role: "status", "aria-label": "uploads" });
  const downloadDir = h("button#download-dir", { type: "button", on: { click: () => download(`/v1/fs/download?path=${enc(dir)}`, `${dir.split("/").pop() || "workspace"}.tar`).catch(show) } }, "Download folder");
  picker.addEventListener("change", () => upload([...picker.files]));

  fill(root, h("section.page.files",
    h("div.page-head", h("div", h("h1", "Files"), crumbs), h("div.toolbar", uploadLabel, downloadDir)),
    error, status,
    h("div.split",
      h("div.panel.flush", h("table#entries.stack.entries", h("thead", h("tr", ["Name", "Size", "Modified", ""].map((c) => h("th", { scope: "col" }, c)))), tbody)),
      h("div.side", h("div.panel", viewer), h("h2", "Changes"), h("div.panel", changes)))));

  fill(crumbs, h("a", { href: "#/files" }, "workspace"), dir.split("/").filter(Boolean).map((part, i, all) =>
    [h("span.sep", { "aria-hidden": "true" }, "/"), h("a", { href: `#/files?path=${enc(all.slice(0, i + 1).join("/"))}` }, part)]));
  fill(changes, h("li.note.placeholder", "Nothing has changed since this page opened."));

  function show(e) { error.textContent = failureSentence("do that", e); }

  /** The folder is there (true) or not: upload and download follow. */
  function usable(yes) {
    picker.disabled = !yes;
    downloadDir.disabled = !yes;
    uploadLabel.classList.toggle("disabled", !yes);
  }

  function hashFor(file) {
    const q = new URLSearchParams();
    if (dir) q.set("path", dir);
    if (file) q.set("file", file);
    return `#/files${q.size ? `?${q}` : ""}`;
  }

  async function list() {
    try {
      const { entries } = await api.get(`/v1/fs/entries?path=${enc(dir)}`);
      error.textContent = "";
      usable(true);
      entries.sort((a, b) => (b.kind === "dir") - (a.kind === "dir") || a.name.localeCompare(b.name));
      fill(tbody, entries.length ? entries.map((e) => {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        const name = e.kind === "dir"
          ? h("a", { href: `#/files?path=${enc(rel)}` }, `${e.name}/`)
          : h("a", { href: hashFor(e.name), "aria-current": e.name === open ? "true" : null, on: { click: (ev) => { ev.preventDefault(); select(e.name, e); } } }, e.name);
        return h("tr", { dataset: { path: rel, kind: e.kind } },
          h("td.name", { dataset: { label: "Name" } }, name),
          h("td.num", { dataset: { label: "Size" } }, e.kind === "file" ? fmtBytes(e.size) : ""),
          h("td.when", { dataset: { label: "Modified" } }, fmtTime(e.modified)),
          h("td.act", e.kind === "file" ? h("button", { type: "button", "aria-label": `Download ${e.name}`, on: { click: () => download(`/v1/fs/file?path=${enc(rel)}`, e.name).catch(show) } }, "Download") : null));
      }) : h("tr", h("td", { colspan: 4 }, h("p.note", "This folder is empty."))));
      if (open && !viewer.dataset.file) {
        const entry = entries.find((e) => e.name === open && e.kind !== "dir");
        if (entry) view(open, entry);
        else fill(viewer, h("p.note", `${open} is not in this folder.`));
      }
    } catch (e) {
      if (e.status === 404) {
        usable(false);
        error.textContent = "";
        fill(tbody, h("tr", h("td", { colspan: 4 }, h("p#missing.notice", `The folder ${dir || "workspace"} does not exist (any more). `, h("a", { href: "#/files" }, "Back to the workspace")))));
      } else {
        show(e);
      }
    }
  }

  function select(name, entry) {
    open = name;
    // In the URL (without remounting the view): a reload or a shared link shows the file.
    history.replaceState(null, "", hashFor(name));
    window.tether.route = location.hash;
    for (const a of tbody.querySelectorAll("a[aria-current]")) a.removeAttribute("aria-current");
    tbody.querySelector(`tr[data-path="${CSS.escape(dir ? `${dir}/${name}` : name)}"] a`)?.setAttribute("aria-current", "true");
    view(name, entry);
  }

  async function view(name, entry) {
    const rel = dir ? `${dir}/${name}` : name;
    viewer.dataset.file = name;
    fill(viewer, h("p.note", `Loading ${name}…`));
    try {
      const res = await request(`/v1/fs/file?path=${enc(rel)}`, { raw: true, headers: { Range: `bytes=0-${VIEW_BYTES - 1}` } });
      const blob = await res.blob();
      const head = h("div.viewer-head", h("strong", name), h("span.note", fmtBytes(entry.size)),
        h("button.quiet", { type: "button", on: { click: () => download(`/v1/fs/file?path=${enc(rel)}`, name).catch(show) } }, "Download"));
      if (/\.(png|jpe?g|gif|webp|svg)$/i.test(name)) {
        fill(viewer, head, h("img", { src: URL.createObjectURL(blob), alt: name }));
      } else {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let text;
        try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { text = null; }
        fill(viewer, head, text === null ? h("p.note", "A binary file: download it to see it.") : h("pre#file-text", text),
          entry.size > VIEW_BYTES ? h("p.note", `Showing the first ${fmtBytes(VIEW_BYTES)}.`) : null);
      }
    } catch (e) { fill(viewer, h("p.error-text", failureSentence(`open ${name}`, e))); }
  }

  async function upload(files) {
    const lines = files.map((f) => {
      const li = h("li", { dataset: { name: f.name, state: "waiting" } }, h("span.name", f.name), " ", h("span.state", "waiting"));
      return li;
    });
    fill(status, lines);
    let ok = 0;
    for (const [i, f] of files.entries()) {
      const rel = dir ? `${dir}/${f.name}` : f.name;
      const li = lines[i];
      const state = li.querySelector(".state");
      li.dataset.state = "uploading";
      state.textContent = "uploading…";
      try {
        await request(`/v1/fs/file?path=${enc(rel)}`, { method: "PUT", body: f, headers: { "Content-Type": "application/octet-stream" } });
        li.dataset.state = "done";
        state.textContent = `uploaded (${fmtBytes(f.size)})`;
        ok++;
      } catch (e) {
        li.dataset.state = "failed";
        state.textContent = failureSentence("upload it", e);
        state.className = "state error-text";
      }
    }
    if (files.length > 1) status.prepend(h("li.total", `${ok} of ${files.length} files uploaded`));
    picker.value = "";
  }

  let timer = null;
  const stream = follow(`/v1/fs/watch?path=${enc(dir)}&recursive=true`, {
    after: null,
    // Changes made while the stream was down are not replayed before its first frame: list again.
    onState: (state) => { if (state === "live") list(); },
    onEvents: (batch) => {
      changes.querySelector(".placeholder")?.remove();
      for (const f of batch) {
        const d = f.data || {};
        const text = f.event === "watch.overflow" ? "Some changes were missed: the list was read again" : `${d.kind} ${d.path}${d.from ? ` (from ${d.from})` : ""}`;
        changes.prepend(h("li", { dataset: { kind: d.kind || "overflow", path: d.path || "" } }, h("time", fmtTime(new Date().toISOString())), " ", text));
      }
      while (changes.children.length > 200) changes.lastChild.remove();
      clearTimeout(timer);
      timer = setTimeout(list, 100);
    },
    onFatal: (e) => { if (e.status !== 404) show(e); },
  });
  list();
  return () => { stream.close(); clearTimeout(timer); };
}
