// The assistants view: list, create and edit (model, instructions, tools, tool resources,
// sampling and response format).

import { request, uploadFile } from "./api.js";
import { $, clear, h, toast } from "./dom.js";
import { emit, on, state } from "./state.js";

let current = null; // the assistant being edited, or null for a new one
let ciFiles = []; // [{id, filename}]

function renderList() {
  const list = clear($("#asst-list"));
  if (!state.assistants.length) list.append(h("li", { class: "dim" }, "No assistants yet."));
  for (const a of state.assistants) {
    list.append(
      h("li", {},
        h("button", {
          type: "button",
          class: "item",
          "aria-current": current?.id === a.id ? "true" : undefined,
          dataset: { id: a.id },
          onclick: () => edit(a),
        }, h("strong", {}, a.name || "(unnamed)"), h("span", { class: "mono dim" }, a.id), h("span", { class: "dim" }, a.model)),
      ),
    );
  }
}

function renderStores() {
  const select = clear($("#asst-stores"));
  const chosen = new Set(current?.tool_resources?.file_search?.vector_store_ids || []);
  for (const vs of state.stores) {
    select.append(h("option", { value: vs.id, selected: chosen.has(vs.id) }, `${vs.name || "(unnamed)"} · ${vs.id}`));
  }
}

function renderCiFiles() {
  const list = clear($("#asst-ci-files"));
  for (const f of ciFiles) {
    list.append(
      h("li", { class: "chip" }, h("span", {}, f.filename || f.id),
        h("button", { type: "button", class: "quiet", "aria-label": `Remove ${f.filename || f.id}`, onclick: () => {
          ciFiles = ciFiles.filter((x) => x.id !== f.id);
          renderCiFiles();
        } }, "×")),
    );
  }
}

function formatOf(a) {
  const rf = a?.response_format;
  if (!rf || rf === "auto") return ["auto", ""];
  if (rf.type === "json_schema") return ["json_schema", JSON.stringify(rf.json_schema, null, 2)];
  return [rf.type, ""];
}

export function edit(a) {
  current = a;
  $("#asst-title").textContent = a ? `Edit ${a.name || a.id}` : "New assistant";
  $("#asst-id").textContent = a ? a.id : "";
  $("#asst-save").textContent = a ? "Save changes" : "Create assistant";
  $("#asst-chat").disabled = !a;
  $("#asst-name").value = a?.name || "";
  $("#asst-model").value = a?.model || "gpt-4o";
  $("#asst-instructions").value = a?.instructions || "";
  const tools = a?.tools || [];
  $("#tool-ci").checked = tools.some((t) => t.type === "code_interpreter");
  $("#tool-fs").checked = tools.some((t) => t.type === "file_search");
  const fns = tools.filter((t) => t.type === "function").map((t) => t.function);
  $("#asst-functions").value = fns.length ? JSON.stringify(fns, null, 2) : "";
  ciFiles = (a?.tool_resources?.code_interpreter?.file_ids || []).map((id) => ({ id }));
  $("#asst-temperature").value = a?.temperature ?? "";
  $("#asst-top-p").value = a?.top_p ?? "";
  const [format, schema] = formatOf(a);
  $("#asst-format").value = format;
  $("#asst-schema").value = schema;
  $("#asst-schema-row").hidden = format !== "json_schema";
  renderCiFiles();
  renderStores();
  renderList();
}

function body() {
  const tools = [];
  if ($("#tool-ci").checked) tools.push({ type: "code_interpreter" });
  if ($("#tool-fs").checked) tools.push({ type: "file_search" });
  const fnText = $("#asst-functions").value.trim();
  if (fnText) {
    let fns;
    try {
      fns = JSON.parse(fnText);
    } catch (err) {
      throw new Error(`Functions: not JSON (${err.message})`);
    }
    for (const fn of Array.isArray(fns) ? fns : [fns]) tools.push({ type: "function", function: fn });
  }
  const out = {
    model: $("#asst-model").value.trim(),
    name: $("#asst-name").value,
    instructions: $("#asst-instructions").value,
    tools,
    tool_resources: {
      code_interpreter: { file_ids: ciFiles.map((f) => f.id) },
      file_search: { vector_store_ids: [...$("#asst-stores").selectedOptions].map((o) => o.value) },
    },
  };
  const temperature = $("#asst-temperature").value;
  const topP = $("#asst-top-p").value;
  if (temperature !== "") out.temperature = Number(temperature);
  if (topP !== "") out.top_p = Number(topP);
  const format = $("#asst-format").value;
  if (format === "json_schema") {
    try {
      out.response_format = { type: "json_schema", json_schema: JSON.parse($("#asst-schema").value) };
    } catch (err) {
      throw new Error(`JSON schema: not JSON (${err.message})`);
    }
  } else {
    out.response_format = format === "auto" ? "auto" : { type: format };
  }
  return out;
}

async function save(e) {
  e.preventDefault();
  try {
    const payload = body();
    const saved = current
      ? await request("POST", `/assistants/${current.id}`, { body: payload })
      : await request("POST", "/assistants", { body: payload });
    state.assistants = [saved, ...state.assistants.filter((a) => a.id !== saved.id)];
    edit(saved);
    emit("assistants-changed");
    toast(`Saved ${saved.id}`, "info");
  } catch (err) {
    toast(err.message);
  }
}

async function uploadCi(e) {
  for (const file of e.target.files) {
    try {
      const stored = await uploadFile(file, "assistants");
      ciFiles.push({ id: stored.id, filename: stored.filename });
      renderCiFiles();
    } catch (err) {
      toast(`${file.name}: ${err.message}`);
    }
  }
  e.target.value = "";
}

export function init() {
  $("#asst-form").addEventListener("submit", save);
  $("#asst-new").addEventListener("click", () => edit(null));
  $("#asst-ci-upload").addEventListener("change", uploadCi);
  $("#asst-format").addEventListener("change", () => {
    $("#asst-schema-row").hidden = $("#asst-format").value !== "json_schema";
  });
  $("#asst-chat").addEventListener("click", () => {
    if (!current) return;
    emit("chat-with", current.id);
    emit("show", "chat");
  });
  on("connected", () => edit(null));
  on("stores-changed", renderStores);
  on("disconnected", () => {
    state.assistants = [];
    edit(null);
  });
}
