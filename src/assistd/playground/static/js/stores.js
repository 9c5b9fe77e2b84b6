// The vector stores view: create stores, upload files with progress, follow each file's
// ingestion status until it has completed or failed.

import { listAll, request, uploadFile } from "./api.js";
import { $, clear, h, toast } from "./dom.js";
import { emit, on, state } from "./state.js";

let selected = null;
let poll = null;
const names = new Map();

function renderList() {
  const list = clear($("#store-list"));
  if (!state.stores.length) list.append(h("li", { class: "dim" }, "No vector stores yet."));
  for (const vs of state.stores) {
    list.append(h("li", {},
      h("button", { type: "button", class: "item", "aria-current": selected?.id === vs.id ? "true" : undefined, dataset: { id: vs.id }, onclick: () => select(vs) },
        h("strong", {}, vs.name || "(unnamed)"), h("span", { class: "mono dim" }, vs.id),
        h("span", { class: "dim" }, `${vs.file_counts?.completed ?? 0}/${vs.file_counts?.total ?? 0} files ready`))));
  }
}

function size(bytes) {
  if (bytes === undefined) return "";
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KB`;
}

async function nameOf(id) {
  if (!names.has(id)) names.set(id, request("GET", `/files/${id}`).then((f) => f.filename, () => id));
  return names.get(id);
}

async function refreshFiles() {
  if (!selected) return;
  const id = selected.id;
  const [store, files] = await Promise.all([request("GET", `/vector_stores/${id}`), listAll(`/vector_stores/${id}/files`)]);
  if (selected?.id !== id) return;
  selected = store;
  state.stores = state.stores.map((s) => (s.id === store.id ? store : s));
  const c = store.file_counts;
  $("#store-counts").textContent = `${c.completed} completed · ${c.in_progress} in progress · ${c.failed} failed`;
  const body = clear($("#store-files"));
  for (const f of files) {
    const name = h("td", {}, f.id);
    nameOf(f.id).then((n) => (name.textContent = n));
    body.append(h("tr", { dataset: { id: f.id, status: f.status } }, name,
      h("td", {}, h("span", { class: `badge s-${f.status}` }, f.status), f.last_error ? h("span", { class: "bad" }, ` ${f.last_error.message}`) : null),
      h("td", {}, size(f.usage_bytes))));
  }
  renderList();
  const busy = files.some((f) => f.status === "in_progress");
  clearTimeout(poll);
  if (busy) poll = setTimeout(() => refreshFiles().catch((err) => toast(err.message)), 500);
}

async function select(vs) {
  selected = vs;
  $("#store-title").textContent = vs.name || vs.id;
  $("#store-upload").disabled = false;
  clear($("#uploads"));
  renderList();
  await refreshFiles();
}

async function upload(e) {
  const store = selected;
  for (const file of [...e.target.files]) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Upload of ${file.name}` });
    const label = h("span", { class: "dim" }, "uploading");
    $("#uploads").append(h("li", { dataset: { name: file.name } }, h("span", {}, file.name), bar, label));
    try {
      const stored = await uploadFile(file, "assistants", (fraction) => (bar.value = fraction));
      names.set(stored.id, Promise.resolve(stored.filename));
      label.textContent = "uploaded, adding to the store";
      await request("POST", `/vector_stores/${store.id}/files`, { body: { file_id: stored.id } });
      label.textContent = "added";
    } catch (err) {
      label.textContent = `failed: ${err.message}`;
      label.className = "bad";
    }
  }
  e.target.value = "";
  await refreshFiles();
}

async function create(e) {
  e.preventDefault();
  try {
    const vs = await request("POST", "/vector_stores", { body: { name: $("#store-name").value.trim() || undefined } });
    $("#store-name").value = "";
    state.stores = [vs, ...state.stores];
    emit("stores-changed");
    await select(vs);
  } catch (err) {
    toast(err.message);
  }
}

export function init() {
  $("#store-form").addEventListener("submit", create);
  $("#store-upload").addEventListener("change", (e) => upload(e).catch((err) => toast(err.message)));
  on("connected", renderList);
  on("disconnected", () => {
    state.stores = [];
    selected = null;
    clearTimeout(poll);
    renderList();
  });
}
