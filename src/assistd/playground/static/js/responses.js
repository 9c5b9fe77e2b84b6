// The Responses mode: a chat through POST /v1/responses, streamed as it arrives, whose context
// is a conversation (items kept by the server) or a chain of previous_response_id. Tools are
// file_search, code_interpreter and functions whose outputs the user types.

import { ApiError, blobUrl, keyTag, listAll, request, stream } from "./api.js";
import { $, append, clear, fmtTime, h, toast } from "./dom.js";
import { on, state } from "./state.js";

// Tool results are left out of a response's items unless asked for.
const INCLUDE = { file_search: "file_search_call.results", code_interpreter: "code_interpreter_call.outputs" };
const ENDED = new Set(["completed", "failed", "incomplete", "cancelled"]);
const MARKER = /^【[^】]*】$/;
const conversationsItem = () => `assistd.conversations.${keyTag()}`;

let conversationId = null;
let lastResponseId = null; // the response the next one follows, in a chain
let busy = false;
let sentAt = 0;
let firstTextMs;
let modelsLoaded = false;
let connected = false;
const els = new Map(); // item id -> its element
const slots = new Map(); // `${item id}:${content index}` -> streamed text so far and its element
const quotes = new Map(); // file id -> a search result's text, quoted under a citation
const fileNames = new Map();

// ---- conversations remembered in this browser (the API lists none) ------------------------

function knownConversations() {
  try {
    return JSON.parse(localStorage.getItem(conversationsItem()) || "[]");
  } catch {
    return [];
  }
}

function remember(entry) {
  const rest = knownConversations().filter((c) => c.id !== entry.id);
  localStorage.setItem(conversationsItem(), JSON.stringify([entry, ...rest].slice(0, 100)));
  renderConversations();
}

function forget(id) {
  localStorage.setItem(conversationsItem(), JSON.stringify(knownConversations().filter((c) => c.id !== id)));
  renderConversations();
}

function renderConversations() {
  const list = clear($("#conv-list"));
  const known = knownConversations();
  if (!known.length) list.append(h("li", { class: "dim" }, "No conversations yet."));
  for (const c of known) {
    const title = c.title || "(empty conversation)";
    list.append(h("li", { class: "with-action", dataset: { id: c.id } },
      h("button", { type: "button", class: "item", "aria-current": c.id === conversationId ? "true" : undefined, dataset: { id: c.id }, onclick: () => open(c.id) },
        h("strong", {}, title), h("span", { class: "mono dim" }, c.id), h("span", { class: "dim" }, fmtTime(c.created_at))),
      h("button", { type: "button", class: "quiet conv-delete", "aria-label": `Delete conversation ${title}`, title: "Delete", onclick: () => remove(c.id) }, "✕")));
  }
}

async function remove(id) {
  try {
    await request("DELETE", `/conversations/${id}`);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) {
      toast(err.message);
      return;
    }
  }
  forget(id);
  if (id === conversationId) reset();
  toast("Conversation deleted.", "ok");
}

// ---- settings ---------------------------------------------------------------------------

const memory = () => $("#resp-memory").value;

function renderStores() {
  const select = $("#resp-stores");
  const keep = new Set([...select.selectedOptions].map((o) => o.value));
  clear(select);
  for (const vs of state.stores) select.append(h("option", { value: vs.id, selected: keep.has(vs.id) }, `${vs.name || "(unnamed)"} · ${vs.id}`));
}

async function loadModels() {
  if (modelsLoaded) return;
  modelsLoaded = true;
  try {
    const models = await request("GET", "/models");
    const list = clear($("#resp-models"));
    for (const m of models.data) list.append(h("option", { value: m.id }));
  } catch {
    modelsLoaded = false; // the typed model still works; try again next time
  }
}

// The tools of the next request; functions may be given flat (the Responses shape) or
// wrapped in {type: "function", function: {...}} (the Assistants shape).
function tools() {
  const out = [];
  if ($("#resp-tool-fs").checked) {
    const ids = [...$("#resp-stores").selectedOptions].map((o) => o.value);
    if (!ids.length) throw new Error("Choose a vector store for file_search.");
    out.push({ type: "file_search", vector_store_ids: ids });
  }
  if ($("#resp-tool-ci").checked) out.push({ type: "code_interpreter", container: { type: "auto" } });
  const raw = $("#resp-functions").value.trim();
  if (raw) {
    let defs;
    try {
      defs = JSON.parse(raw);
    } catch (err) {
      throw new Error(`Functions are not JSON: ${err.message}`);
    }
    for (const def of Array.isArray(defs) ? defs : [defs]) {
      const fn = def && def.type === "function" && def.function ? def.function : def;
      if (!fn || typeof fn.name !== "string") throw new Error("Each function needs a name.");
      const { type: _, ...rest } = fn;
      out.push({ type: "function", ...rest });
    }
  }
  return out;
}

function requestBody(input, list) {
  const body = { model: $("#resp-model").value.trim(), input, stream: true };
  const instructions = $("#resp-instructions").value.trim();
  if (instructions) body.instructions = instructions;
  if (list.length) body.tools = list;
  const include = list.map((t) => INCLUDE[t.type]).filter(Boolean);
  if (include.length) body.include = include;
  if (memory() === "conversation") body.conversation = conversationId;
  else if (lastResponseId) body.previous_response_id = lastResponseId;
  return body;
}

// ---- rendering items --------------------------------------------------------------------

function scroll() {
  const list = $("#resp-items");
  list.scrollTop = list.scrollHeight;
}

function fileName(id) {
  if (!fileNames.has(id)) fileNames.set(id, request("GET", `/files/${id}`).then((f) => f.filename, () => id));
  return fileNames.get(id);
}

function image(path, alt) {
  const img = h("img", { class: "generated", alt });
  blobUrl(path).then((u) => (img.src = u), (err) => (img.alt = `${alt} (${err.message})`));
  return img;
}

function download(path, label, filename) {
  const link = h("a", { class: "download", download: filename, "aria-busy": "true" }, `⬇ ${label}`);
  blobUrl(path).then((u) => {
    link.href = u;
    link.removeAttribute("aria-busy");
  }, (err) => (link.title = err.message));
  return link;
}

function containerFile(note) {
  return `/v1/containers/${encodeURIComponent(note.container_id)}/files/${encodeURIComponent(note.file_id)}/content`;
}

// Output text with its annotations: a citation's marker (【0:1†file】) becomes a numbered mark
// over a sources list (file name, and the search result's text as its quote); a container
// file becomes a download link (with the label of the markdown link around it, if any).
function richText(part) {
  const value = part.text || "";
  const spans = [];
  for (const note of part.annotations || []) {
    if (note.type === "file_citation") {
      const start = value.lastIndexOf("【", note.index - 1);
      const marked = start >= 0 && MARKER.test(value.slice(start, note.index));
      spans.push({ start: marked ? start : note.index, end: note.index, note });
    } else if (note.start_index !== undefined) {
      spans.push({ start: note.start_index, end: note.end_index, note });
    }
  }
  spans.sort((a, b) => a.start - b.start);
  const body = h("div", { class: "text" });
  const sources = h("ol", { class: "sources", "aria-label": "Sources" });
  const numbers = new Map();
  let at = 0;
  for (const { start, end, note } of spans) {
    if (start < at) continue;
    let before = value.slice(at, start);
    if (note.type === "container_file_citation") {
      const label = value[end] === ")" ? before.match(/\[([^\]]*)\]\($/) : null;
      if (label) before = before.slice(0, label.index);
      body.append(before, download(containerFile(note), (label && label[1]) || note.filename, note.filename));
      at = end + (label ? 1 : 0);
      continue;
    }
    body.append(before);
    if (note.type === "file_citation") {
      if (!numbers.has(note.file_id)) {
        numbers.set(note.file_id, numbers.size + 1);
        const name = h("span", { class: "source-file" }, note.filename || note.file_id);
        if (!note.filename) fileName(note.file_id).then((f) => (name.textContent = f));
        const quote = quotes.get(note.file_id);
        sources.append(h("li", { class: "citation", dataset: { fileId: note.file_id } }, name,
          quote ? h("blockquote", { class: "quote" }, quote) : null));
      }
      body.append(h("sup", { class: "cite" }, `[${numbers.get(note.file_id)}]`));
    } else if (note.type === "url_citation" && /^https?:\/\//.test(note.url || "")) {
      body.append(h("a", { href: note.url, rel: "noreferrer noopener", target: "_blank" }, value.slice(start, end)));
    } else {
      body.append(value.slice(start, end));
    }
    at = end;
  }
  body.append(value.slice(at));
  return sources.children.length ? [body, sources] : [body];
}

function element(item, tag, attrs) {
  let el = els.get(item.id);
  if (!el) {
    el = h(tag, attrs);
    els.set(item.id, el);
    $("#resp-items").append(el);
  } else {
    clear(el);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value);
    }
  }
  return el;
}

function messageText(content) {
  if (typeof content === "string") return content;
  return (content || []).map((p) => p.text || p.refusal || "").join("");
}

function renderMessage(item) {
  const role = item.role || "user";
  const el = element(item, "li", { class: `msg ${role === "assistant" ? "assistant" : "user"}`, dataset: { id: item.id, status: item.status || "completed" } });
  const content = h("div", { class: "content" });
  el.append(h("div", { class: "role" }, role === "assistant" ? "Assistant" : role === "user" ? "You" : role), content);
  if (role !== "assistant") {
    content.append(h("div", { class: "text" }, messageText(item.content)));
    return;
  }
  for (const part of item.content || []) {
    if (part.type === "output_text") content.append(...richText(part));
    else if (part.type === "refusal") content.append(h("div", { class: "text bad" }, part.refusal));
  }
}

function renderCall(item) {
  const el = element(item, "li", { class: `tool ${item.type}`, dataset: { id: item.id, status: item.status || "completed" } });
  if (item.type === "function_call") {
    el.dataset.callId = item.call_id;
    el.append(h("div", { class: "tool-head" }, `function ${item.name}`),
      h("pre", { class: "code args" }, item.arguments || ""), h("div", { class: "fn-result" }));
  } else if (item.type === "code_interpreter_call") {
    const outputs = h("div", { class: "outputs" });
    for (const out of item.outputs || []) {
      if (out.type === "logs") outputs.append(h("pre", { class: "code logs" }, out.logs));
      else if (out.type === "image") outputs.append(image(out.url, "Plot from code_interpreter"));
    }
    el.append(h("div", { class: "tool-head" }, "code_interpreter"),
      h("pre", { class: "code input" }, h("code", {}, item.code || "")), outputs);
  } else if (item.type === "file_search_call") {
    for (const r of item.results || []) if (!quotes.has(r.file_id)) quotes.set(r.file_id, r.text);
    const found = item.results
      ? h("ol", { class: "results" }, item.results.map((r) =>
        h("li", {}, h("strong", {}, r.filename || r.file_id), ` · score ${Number(r.score).toFixed(2)}`,
          h("div", { class: "dim snippet" }, r.text))))
      : null;
    append(el, [h("div", { class: "tool-head" }, "file_search"),
      item.queries?.length ? h("div", {}, "queries: ", h("span", { class: "mono" }, item.queries.join(" · "))) : null,
      h("div", { class: "dim search-status" }, item.status === "completed" ? `${(item.results || []).length} results` : "searching…"),
      found]);
  } else {
    el.append(h("div", { class: "tool-head" }, item.type), h("pre", { class: "code" }, JSON.stringify(item, null, 2)));
  }
}

// A function's output goes under its call (or stands alone if the call is not shown).
function renderOutput(item) {
  const output = typeof item.output === "string" ? item.output : messageText(item.output);
  const call = document.querySelector(`#resp-items [data-call-id="${CSS.escape(item.call_id)}"] .fn-result`);
  const line = h("div", { class: "fn-output-shown" }, "output: ", h("span", { class: "mono" }, output));
  if (call) {
    clear(call).append(line);
  } else {
    element(item, "li", { class: "tool function_call_output", dataset: { id: item.id || item.call_id } }).append(line);
  }
}

function renderItem(item) {
  if (item.type === "message") renderMessage(item);
  else if (item.type === "function_call_output") renderOutput(item);
  else if (item.type !== "reasoning") renderCall(item);
  scroll();
}

function appendText(event) {
  const el = els.get(event.item_id);
  if (!el) return;
  if (firstTextMs === undefined) firstTextMs = Math.round(performance.now() - sentAt);
  const key = `${event.item_id}:${event.content_index}`;
  let slot = slots.get(key);
  if (!slot) {
    slot = { value: "", el: h("div", { class: "text streaming" }) };
    slots.set(key, slot);
    el.querySelector(".content").append(slot.el);
  }
  slot.value += event.delta;
  slot.el.textContent = slot.value;
  scroll();
}

function appendTo(itemId, selector, delta) {
  const target = els.get(itemId)?.querySelector(selector);
  if (target) target.textContent += delta;
  scroll();
}

// ---- the response -----------------------------------------------------------------------

function usage(u) {
  return u ? `${u.input_tokens} in · ${u.output_tokens} out · ${u.total_tokens} total` : "";
}

function showResponse(response) {
  const status = $("#resp-status");
  status.textContent = response ? response.status : "";
  status.className = response ? `badge s-${response.status}` : "badge";
  const box = clear($("#resp-summary"));
  if (!response) {
    box.append("No response yet.");
    return;
  }
  const conversation = response.conversation?.id;
  append(box, [
    h("div", {}, h("span", { class: "mono" }, response.id), " ", h("span", { class: `badge s-${response.status}` }, response.status)),
    h("div", {}, `model ${response.model}`),
    response.usage ? h("div", { class: "usage" }, `usage: ${usage(response.usage)}`) : null,
    response.previous_response_id ? h("div", {}, "follows ", h("span", { class: "mono" }, response.previous_response_id)) : null,
    conversation ? h("div", {}, "in ", h("span", { class: "mono" }, conversation)) : null,
    firstTextMs !== undefined ? h("div", {}, `first text after ${firstTextMs} ms`) : null,
    response.incomplete_details ? h("div", { class: "bad" }, `incomplete: ${response.incomplete_details.reason}`) : null,
    response.error ? h("div", { class: "bad" }, `${response.error.code}: ${response.error.message}`) : null,
  ]);
}

function setBusy(on) {
  busy = on;
  $("#resp-send").disabled = on;
}

function ended(response) {
  showResponse(response);
  lastResponseId = response.id;
  if (memory() === "previous") $("#resp-title").textContent = `Chain · ${response.id}`;
  if (response.status === "failed" && response.error) toast(`${response.error.code}: ${response.error.message}`);
  const answered = new Set(response.output.filter((i) => i.type === "function_call_output").map((i) => i.call_id));
  const calls = response.output.filter((i) => i.type === "function_call" && !answered.has(i.call_id));
  if (response.status === "completed" && calls.length) renderPending(calls);
}

function onEvent(name, data) {
  const type = data?.type || name;
  if (type.startsWith("response.") && data.response) {
    if (ENDED.has(data.response.status)) ended(data.response);
    else showResponse(data.response);
    return;
  }
  switch (type) {
    case "response.output_item.added":
    case "response.output_item.done":
      renderItem(data.item);
      break;
    case "response.output_text.delta":
      appendText(data);
      break;
    case "response.function_call_arguments.delta":
      appendTo(data.item_id, ".args", data.delta);
      break;
    case "response.code_interpreter_call_code.delta":
      appendTo(data.item_id, "pre.input code", data.delta);
      break;
    case "response.code_interpreter_call.interpreting":
      appendTo(data.item_id, ".tool-head", " · running…");
      break;
    case "error":
      toast(data?.error?.message || data?.message || "stream error");
      break;
  }
}

async function follow(body) {
  sentAt = performance.now();
  firstTextMs = undefined;
  slots.clear();
  setBusy(true);
  try {
    await stream("/responses", body, onEvent);
  } catch (err) {
    toast(err.message);
  } finally {
    setBusy(false);
  }
}

// The function calls a response ended with: the user types each output, and the next
// response (in the same conversation, or following this one) gets them.
function renderPending(calls) {
  const form = h("form", { class: "pending", "aria-label": "Function calls awaiting output" },
    h("div", { class: "tool-head" }, "The model waits for your function outputs"));
  const fields = calls.map((call, i) => {
    const id = `resp-fn-out-${i}-${call.call_id}`;
    const area = h("textarea", { id, rows: 2, required: true, class: "fn-output" });
    area.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
    });
    form.append(h("div", { class: "call" },
      h("div", { class: "mono" }, `${call.name}(${call.arguments})`),
      h("label", { for: id }, `Output of ${call.name}`), area));
    return [call, area];
  });
  form.append(h("button", { type: "submit", class: "primary" }, "Submit outputs"));
  const item = h("li", { class: "tool function pending-item" }, form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let list;
    try {
      list = tools();
    } catch (err) {
      toast(err.message);
      return;
    }
    const outputs = fields.map(([call, area]) => ({ type: "function_call_output", call_id: call.call_id, output: area.value }));
    item.remove();
    for (const output of outputs) renderOutput(output);
    await follow(requestBody(outputs, list));
  });
  $("#resp-items").append(item);
  form.querySelector("textarea")?.focus();
  scroll();
}

async function send(e) {
  e.preventDefault();
  const text = $("#resp-text").value.trim();
  if (!text || busy) return;
  let list;
  try {
    list = tools();
  } catch (err) {
    toast(err.message);
    return;
  }
  setBusy(true);
  try {
    if (memory() === "conversation" && !conversationId) {
      const conversation = await request("POST", "/conversations", { body: { metadata: { title: text.slice(0, 60) } } });
      conversationId = conversation.id;
      remember({ id: conversation.id, title: text.slice(0, 60), created_at: conversation.created_at });
      $("#resp-title").textContent = conversation.id;
    }
    $("#resp-text").value = "";
    document.querySelector("#resp-items .pending-item")?.remove();
    renderMessage({ id: `local-${performance.now()}`, type: "message", role: "user", content: text });
    scroll();
    await follow(requestBody(text, list));
  } catch (err) {
    toast(err.message);
    setBusy(false);
  }
}

function reset() {
  conversationId = null;
  lastResponseId = null;
  els.clear();
  slots.clear();
  quotes.clear();
  clear($("#resp-items"));
  showResponse(null);
  $("#resp-title").textContent = memory() === "conversation" ? "New conversation" : "New chain";
  renderConversations();
}

// Reopen a conversation: its items in order, and the function calls still waiting for output.
async function open(id) {
  $("#resp-memory").value = "conversation";
  reset();
  conversationId = id;
  $("#resp-title").textContent = id;
  renderConversations();
  try {
    const items = await listAll(`/conversations/${id}/items`, { order: "asc" });
    if (conversationId !== id) return;
    for (const item of items) renderItem(item);
    const answered = new Set(items.filter((i) => i.type === "function_call_output").map((i) => i.call_id));
    const waiting = items.filter((i) => i.type === "function_call" && !answered.has(i.call_id));
    if (waiting.length) renderPending(waiting);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      forget(id);
      reset();
      toast(`Conversation ${id} no longer exists.`);
    } else {
      toast(err.message);
    }
  }
}

function selectTab(which) {
  for (const name of ["summary", "code"]) {
    const selected = name === which;
    $(`#resp-tab-${name}`).setAttribute("aria-selected", String(selected));
    $(`#resp-tab-${name}`).tabIndex = selected ? 0 : -1;
    $(`#resp-panel-${name}`).hidden = !selected;
  }
}

export function init() {
  $("#resp-composer").addEventListener("submit", send);
  $("#resp-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("#resp-composer").requestSubmit();
  });
  $("#resp-settings").addEventListener("submit", (e) => e.preventDefault());
  $("#conv-new").addEventListener("click", () => {
    reset();
    $("#resp-text").focus();
  });
  $("#resp-memory").addEventListener("change", reset);
  $("#resp-tool-fs").addEventListener("change", () => {
    if ($("#resp-tool-fs").checked && !$("#resp-stores").selectedOptions.length && $("#resp-stores").options.length) {
      $("#resp-stores").options[0].selected = true;
    }
  });
  $("#resp-tab-summary").addEventListener("click", () => selectTab("summary"));
  $("#resp-tab-code").addEventListener("click", () => selectTab("code"));
  for (const tab of document.querySelectorAll('#view-responses [role="tab"]')) {
    tab.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const next = tab.id === "resp-tab-summary" ? "code" : "summary";
        selectTab(next);
        $(`#resp-tab-${next}`).focus();
      }
    });
  }
  selectTab("summary");
  // On a phone the settings start folded, so the conversation is on the first screen.
  if (window.matchMedia("(max-width: 760px)").matches) $("#resp-settings-box").open = false;
  on("connected", () => {
    connected = true;
    modelsLoaded = false;
    renderStores();
    renderConversations();
    if (!$("#view-responses").hidden) loadModels();
  });
  on("view", (view) => {
    if (view === "responses" && connected) loadModels();
  });
  on("stores-changed", renderStores);
  on("disconnected", () => {
    connected = false;
    reset();
    renderStores();
  });
}
