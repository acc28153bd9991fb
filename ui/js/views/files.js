// The workspace: browse directories (#/files?path=dir), view a file (text or
// image), download files and folders (tar), upload files into the directory
// shown, and see changes as they happen through /v1/fs/watch.

import { h, fill, fmtBytes, fmtTime } from "../dom.js";
import { api, request, follow, download, enc } from "../api.js";

const VIEW_BYTES = 1 << 20;

export function mount(root, { query }) {
  const dir = (query.get("path") || "").replace(/^\/+|\/+$/g, "");
  const crumbs = h("nav#crumbs.crumbs", { "aria-label": "path" });
  const tbody = h("tbody");
  const error = h("div#files-error.error-text", { role: "alert" });
  const viewer = h("div#viewer.viewer");
  const changes = h("ol#changes.changes", { reversed: true, "aria-label": "changes" });
  const picker = h("input#upload", { type: "file", multiple: true, "aria-label": "upload files" });
  const status = h("span#upload-status.note", { role: "status" });
  picker.addEventListener("change", () => upload([...picker.files]));

  fill(root, h("section.files",
    h("h1", "Files"), crumbs, error,
    h("div.toolbar", h("label.button", "Upload files", picker), status,
      h("button", { type: "button", on: { click: () => download(`/v1/fs/download?path=${enc(dir)}`, `${dir.split("/").pop() || "workspace"}.tar`).catch(show) } }, "Download folder (tar)")),
    h("div.split",
      h("div", h("table#entries", h("thead", h("tr", ["Name", "Size", "Modified", ""].map((c) => h("th", { scope: "col" }, c)))), tbody)),
      h("div", viewer, h("h2", "Changes"), changes))));

  fill(crumbs, h("a", { href: "#/files" }, "workspace"), dir.split("/").filter(Boolean).map((part, i, all) =>
    [" / ", h("a", { href: `#/files?path=${enc(all.slice(0, i + 1).join("/"))}` }, part)]));

  function show(e) { error.textContent = e.describe ? e.describe() : String(e); }

  async function list() {
    try {
      const { entries } = await api.get(`/v1/fs/entries?path=${enc(dir)}`);
      error.textContent = "";
      fill(tbody, entries.length ? entries.map((e) => {
        const rel = dir ? `${dir}/${e.name}` : e.name;
        const name = e.kind === "dir"
          ? h("a", { href: `#/files?path=${enc(rel)}` }, `${e.name}/`)
          : h("a", { href: "#", on: { click: (ev) => { ev.preventDefault(); view(rel, e); } } }, e.name);
        return h("tr", { dataset: { path: rel, kind: e.kind } }, h("td", name), h("td.num", e.kind === "file" ? fmtBytes(e.size) : ""), h("td", fmtTime(e.modified)),
          h("td", e.kind === "file" ? h("button", { type: "button", "aria-label": `download ${e.name}`, on: { click: () => download(`/v1/fs/file?path=${enc(rel)}`, e.name).catch(show) } }, "Download") : null));
      }) : h("tr", h("td", { colspan: 4 }, h("p.note", "empty"))));
    } catch (e) { show(e); }
  }

  async function view(rel, entry) {
    fill(viewer, h("p.note", `loading ${rel}…`));
    try {
      const res = await request(`/v1/fs/file?path=${enc(rel)}`, { raw: true, headers: { Range: `bytes=0-${VIEW_BYTES - 1}` } });
      const blob = await res.blob();
      const head = h("div.who", rel, ` · ${fmtBytes(entry.size)}`);
      if (/\.(png|jpe?g|gif|webp|svg)$/i.test(rel)) {
        fill(viewer, head, h("img", { src: URL.createObjectURL(blob), alt: rel }));
      } else {
        const bytes = new Uint8Array(await blob.arrayBuffer());
        let text;
        try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch { text = null; }
        fill(viewer, head, text === null ? h("p.note", "binary file: download it to see it") : h("pre#file-text", text),
          entry.size > VIEW_BYTES ? h("p.note", `showing the first ${fmtBytes(VIEW_BYTES)}`) : null);
      }
    } catch (e) { fill(viewer, h("p.error-text", e.describe ? e.describe() : String(e))); }
  }

  async function upload(files) {
    for (const f of files) {
      const rel = dir ? `${dir}/${f.name}` : f.name;
      status.textContent = `uploading ${f.name}…`;
      try {
        await request(`/v1/fs/file?path=${enc(rel)}`, { method: "PUT", body: f, headers: { "Content-Type": "application/octet-stream" } });
        status.textContent = `uploaded ${f.name}`;
      } catch (e) { show(e); status.textContent = ""; }
    }
    picker.value = "";
  }

  let timer = null;
  const stream = follow(`/v1/fs/watch?path=${enc(dir)}&recursive=true`, {
    after: null,
    // Changes made while the stream was down are not replayed before its first frame: list again.
    onState: (state) => { if (state === "live") list(); },
    onEvents: (batch) => {
      for (const f of batch) {
        const d = f.data || {};
        const text = f.event === "watch.overflow" ? "missed changes (overflow): reloaded" : `${d.kind} ${d.path}${d.from ? ` (from ${d.from})` : ""}`;
        changes.prepend(h("li", { dataset: { kind: d.kind || "overflow", path: d.path || "" } }, h("time", fmtTime(new Date().toISOString())), " ", text));
      }
      while (changes.children.length > 200) changes.lastChild.remove();
      clearTimeout(timer);
      timer = setTimeout(list, 100);
    },
    onFatal: show,
  });
  list();
  return () => { stream.close(); clearTimeout(timer); };
}
