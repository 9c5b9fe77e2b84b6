// The chat view: threads (remembered per key in localStorage: the API lists no threads), a
// conversation streamed as it arrives, tool calls shown inline, run cancelling.

import { ApiError, fileUrl, keyTag, listAll, request, stream } from "./api.js";
import { $, append, clear, fmtTime, h, toast } from "./dom.js";
import { on, state } from "./state.js";
import * as inspector from "./inspector.js";

const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);
const threadItem = () => `assistd.threads.${keyTag()}`;

let threadId = null;
let run = null;
let sentAt = 0;
let firstTokenMs;
const bubbles = new Map(); // message id -> {el, parts: [{type, value, el}]}
const blocks = new Map(); // `${step id}:${index}` -> element of a tool call
const fileNames = new Map();

// ---- threads remembered in this browser -------------------------------------------------

function knownThreads() {
  try {
    return JSON.parse(localStorage.getItem(threadItem()) || "[]");
  } catch {
    return [];
  }
}

function remember(entry) {
  const rest = knownThreads().filter((t) => t.id !== entry.id);
  localStorage.setItem(threadItem(), JSON.stringify([entry, ...rest].slice(0, 100)));
  renderThreads();
}

function forget(id) {
  localStorage.setItem(threadItem(), JSON.stringify(knownThreads().filter((t) => t.id !== id)));
  renderThreads();
}

function renderThreads() {
  const list = clear($("#thread-list"));
  const threads = knownThreads();
  if (!threads.length) list.append(h("li", { class: "dim" }, "No threads yet."));
  for (const t of threads) {
    list.append(h("li", {},
      h("button", { type: "button", class: "item", "aria-current": t.id === threadId ? "true" : undefined, dataset: { id: t.id }, onclick: () => open(t.id) },
        h("strong", {}, t.title || "(empty thread)"), h("span", { class: "mono dim" }, t.id), h("span", { class: "dim" }, fmtTime(t.created_at)))));
  }
}

function renderAssistants(selected) {
  const select = $("#chat-assistant");
  const keep = selected || select.value;
  clear(select);
  if (!state.assistants.length) select.append(h("option", { value: "" }, "Create an assistant first"));
  for (const a of state.assistants) select.append(h("option", { value: a.id, selected: a.id === keep }, `${a.name || "(unnamed)"} · ${a.model}`));
}

// ---- rendering --------------------------------------------------------------------------

async function fileName(id) {
  if (!fileNames.has(id)) {
    fileNames.set(id, request("GET", `/files/${id}`).then((f) => f.filename, () => id));
  }
  return fileNames.get(id);
}

function image(fileId, alt) {
  const img = h("img", { class: "generated", alt, "data-file-id": fileId });
  fileUrl(fileId).then((u) => (img.src = u), (err) => (img.alt = `${alt} (${err.message})`));
  return img;
}

function download(fileId, label, filename = label) {
  const link = h("a", { class: "download", download: filename.split("/").pop(), "data-file-id": fileId, "aria-busy": "true" }, `⬇ ${label}`);
  fileUrl(fileId).then((u) => {
    link.href = u;
    link.removeAttribute("aria-busy");
  }, (err) => (link.title = err.message));
  return link;
}

// Text with its annotations: citations become numbered marks with a sources list (file name
// and quote), file paths become download links.
function richText(text) {
  const value = text.value || "";
  const notes = [...(text.annotations || [])].sort((a, b) => a.start_index - b.start_index);
  const body = h("div", { class: "text" });
  const sources = h("ol", { class: "sources", "aria-label": "Sources" });
  let at = 0;
  let n = 0;
  for (const note of notes) {
    if (note.start_index < at) continue;
    let before = value.slice(at, note.start_index);
    // A markdown link around a sandbox path ([label](sandbox:/mnt/data/x)) becomes one link.
    const label = note.type === "file_path" && value[note.end_index] === ")" ? before.match(/\[([^\]]*)\]\($/) : null;
    if (label) before = before.slice(0, label.index);
    body.append(before);
    if (label) {
      const path = note.text.replace(/^sandbox:/, "");
      body.append(download(note.file_path.file_id, label[1] || path, path));
      at = note.end_index + 1;
      continue;
    }
    if (note.type === "file_citation") {
      n += 1;
      body.append(h("sup", { class: "cite" }, `[${n}]`));
      const name = h("span", { class: "source-file" }, note.file_citation.file_id);
      fileName(note.file_citation.file_id).then((f) => (name.textContent = f));
      sources.append(h("li", { class: "citation" }, name,
        note.file_citation.quote ? h("blockquote", { class: "quote" }, note.file_citation.quote) : null));
    } else if (note.type === "file_path") {
      body.append(download(note.file_path.file_id, note.text.replace(/^sandbox:/, "")));
    } else {
      body.append(note.text);
    }
    at = note.end_index;
  }
  body.append(value.slice(at));
  return sources.children.length ? [body, sources] : [body];
}

function renderParts(bubble, message) {
  const content = clear(bubble.querySelector(".content"));
  for (const part of message.content || []) {
    if (part.type === "text") content.append(...richText(part.text));
    else if (part.type === "image_file") content.append(image(part.image_file.file_id, "Generated image"));
    else if (part.type === "image_url") content.append(h("a", { href: part.image_url.url, rel: "noreferrer" }, part.image_url.url));
  }
  const attached = (message.attachments || []).filter((a) => a.file_id);
  if (attached.length) {
    const files = h("div", { class: "attachments" });
    for (const a of attached) {
      const link = download(a.file_id, a.file_id);
      fileName(a.file_id).then((f) => {
        link.textContent = `⬇ ${f}`;
        link.download = f.split("/").pop();
      });
      files.append(link);
    }
    content.append(files);
  }
}

function bubbleFor(message) {
  let entry = bubbles.get(message.id);
  if (!entry) {
    const el = h("li", { class: `msg ${message.role}`, dataset: { id: message.id } },
      h("div", { class: "role" }, message.role === "user" ? "You" : "Assistant"),
      h("div", { class: "content" }));
    $("#messages").append(el);
    entry = { el, parts: [] };
    bubbles.set(message.id, entry);
  }
  return entry;
}

function showMessage(message) {
  const entry = bubbleFor(message);
  entry.el.dataset.status = message.status || "completed";
  renderParts(entry.el, message);
  scroll();
}

function applyMessageDelta(delta) {
  const entry = bubbles.get(delta.id);
  if (!entry) return;
  const content = entry.el.querySelector(".content");
  for (const part of delta.delta?.content || []) {
    if (part.type === "text") {
      if (firstTokenMs === undefined) firstTokenMs = Math.round(performance.now() - sentAt);
      let slot = entry.parts[part.index];
      if (!slot) {
        slot = entry.parts[part.index] = { value: "", el: h("div", { class: "text streaming" }) };
        content.append(slot.el);
      }
      slot.value += part.text?.value || "";
      slot.el.textContent = slot.value;
    } else if (part.type === "image_file") {
      content.append(image(part.image_file.file_id, "Generated image"));
    }
  }
  scroll();
}

function scroll() {
  const list = $("#messages");
  list.scrollTop = list.scrollHeight;
}

function renderCall(key, call) {
  let el = blocks.get(key);
  if (!el) {
    el = h("li", { class: `tool ${call.type}`, dataset: { call: call.id || key } });
    blocks.set(key, el);
    $("#messages").append(el);
  }
  clear(el);
  if (call.type === "code_interpreter") {
    const ci = call.code_interpreter || { input: "", outputs: [] };
    const outputs = h("div", { class: "outputs" });
    for (const out of ci.outputs || []) {
      if (out.type === "logs") outputs.append(h("pre", { class: "code logs" }, out.logs));
      else if (out.type === "image") outputs.append(image(out.image.file_id, "Plot from code_interpreter"));
    }
    el.append(h("div", { class: "tool-head" }, "code_interpreter"),
      h("pre", { class: "code input" }, h("code", {}, ci.input || "")), outputs);
  } else if (call.type === "file_search") {
    const results = call.file_search?.results;
    el.append(h("div", { class: "tool-head" }, "file_search"),
      h("div", { class: "dim" }, results ? `${results.length} results` : "searching…"));
  } else if (call.type === "function") {
    const fn = call.function || {};
    append(el, [h("div", { class: "tool-head" }, `function ${fn.name || ""}`),
      h("pre", { class: "code" }, fn.arguments || ""),
      fn.output != null ? h("div", {}, "output: ", h("span", { class: "mono" }, fn.output)) : null]);
  }
  scroll();
}

function renderStepCalls(step) {
  if (step.type !== "tool_calls") return;
  (step.step_details?.tool_calls || []).forEach((call, index) => renderCall(`${step.id}:${index}`, call));
}

// The pending function calls of a run that requires action: the user types each output.
function renderPending(current) {
  const calls = current.required_action?.submit_tool_outputs?.tool_calls || [];
  const form = h("form", { class: "pending", "aria-label": "Function calls awaiting output" },
    h("div", { class: "tool-head" }, "The run waits for your function outputs"));
  const fields = calls.map((call, i) => {
    const id = `fn-out-${current.id}-${i}`;
    const area = h("textarea", { id, rows: 2, required: true, class: "fn-output" });
    form.append(h("div", { class: "call" },
      h("div", { class: "mono" }, `${call.function.name}(${call.function.arguments})`),
      h("label", { for: id }, `Output of ${call.function.name}`), area));
    return [call, area];
  });
  form.append(h("button", { type: "submit", class: "primary" }, "Submit outputs"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    form.querySelector("button").disabled = true;
    const tool_outputs = fields.map(([call, area]) => ({ tool_call_id: call.id, output: area.value }));
    form.replaceWith(h("li", { class: "tool function done" }, `Submitted ${tool_outputs.length} output(s)`));
    await follow(`/threads/${threadId}/runs/${current.id}/submit_tool_outputs`, { tool_outputs, stream: true });
  });
  const item = h("li", { class: "tool function pending-item" }, form);
  $("#messages").append(item);
  form.querySelector("textarea")?.focus();
  scroll();
}

// ---- runs -------------------------------------------------------------------------------

function setRun(next) {
  run = next;
  const status = $("#run-status");
  status.textContent = run ? run.status : "";
  status.className = run ? `badge s-${run.status}` : "badge";
  $("#run-cancel").hidden = !(run && ACTIVE.has(run.status) && run.status !== "cancelling");
  $("#composer-send").disabled = Boolean(run && ACTIVE.has(run.status));
  inspector.showRun(run, { firstTokenMs });
}

function onEvent(name, data) {
  if (name.startsWith("thread.run.step.")) {
    if (name === "thread.run.step.delta") {
      inspector.applyStepDelta(data);
      const details = data.delta?.step_details;
      if (details?.type === "tool_calls") {
        for (const d of details.tool_calls || []) {
          const key = `${data.id}:${d.index}`;
          const merged = inspector.stepCall(data.id, d.index);
          if (merged) renderCall(key, merged);
        }
      }
    } else {
      inspector.upsertStep(data);
      renderStepCalls(data);
    }
  } else if (name.startsWith("thread.run.")) {
    setRun(data);
    if (name === "thread.run.requires_action") renderPending(data);
  } else if (name === "thread.message.created") {
    bubbleFor(data).el.dataset.status = "in_progress";
  } else if (name === "thread.message.delta") {
    applyMessageDelta(data);
  } else if (name === "thread.message.completed" || name === "thread.message.incomplete") {
    bubbleFor(data).parts = [];
    showMessage(data);
  } else if (name === "error") {
    toast(data?.error?.message || data?.message || "stream error");
  }
}

async function follow(path, body) {
  try {
    await stream(path, body, onEvent);
  } catch (err) {
    toast(err.message);
  }
  if (run && run.status === "cancelling") await settle();
}

// A cancelled run may report "cancelling" first; read it until it has ended.
async function settle() {
  for (let i = 0; i < 40 && run && ACTIVE.has(run.status) && run.status !== "requires_action"; i++) {
    await new Promise((r) => setTimeout(r, 250));
    setRun(await request("GET", `/threads/${threadId}/runs/${run.id}`));
  }
}

async function send(e) {
  e.preventDefault();
  const text = $("#composer-text").value.trim();
  const assistantId = $("#chat-assistant").value;
  if (!text) return;
  if (!assistantId) {
    toast("Choose an assistant first.");
    return;
  }
  $("#composer-send").disabled = true;
  try {
    if (!threadId) {
      const thread = await request("POST", "/threads", { body: {} });
      threadId = thread.id;
      remember({ id: thread.id, title: text.slice(0, 60), created_at: thread.created_at, assistant_id: assistantId });
      $("#thread-title").textContent = thread.id;
    }
    const message = await request("POST", `/threads/${threadId}/messages`, { body: { role: "user", content: text } });
    $("#composer-text").value = "";
    showMessage(message);
    inspector.resetSteps();
    firstTokenMs = undefined;
    sentAt = performance.now();
    const known = knownThreads().find((t) => t.id === threadId);
    if (known && known.assistant_id !== assistantId) remember({ ...known, assistant_id: assistantId });
    await follow(`/threads/${threadId}/runs`, { assistant_id: assistantId, stream: true });
  } catch (err) {
    toast(err.message);
  } finally {
    $("#composer-send").disabled = Boolean(run && ACTIVE.has(run.status));
  }
}

async function cancel() {
  if (!run) return;
  $("#run-cancel").hidden = true;
  try {
    setRun(await request("POST", `/threads/${threadId}/runs/${run.id}/cancel`));
    document.querySelector(".pending-item")?.remove();
    await settle();
  } catch (err) {
    toast(err.message);
  }
}

function reset() {
  threadId = null;
  setRun(null);
  bubbles.clear();
  blocks.clear();
  clear($("#messages"));
  inspector.resetSteps();
  $("#thread-title").textContent = "New thread";
  renderThreads();
}

// Reopen a thread: its messages, with each run's tool calls before that run's answer.
async function open(id) {
  reset();
  threadId = id;
  $("#thread-title").textContent = id;
  renderThreads();
  const known = knownThreads().find((t) => t.id === id);
  if (known?.assistant_id) renderAssistants(known.assistant_id);
  try {
    const [messages, runs] = await Promise.all([
      listAll(`/threads/${id}/messages`, { order: "asc" }),
      listAll(`/threads/${id}/runs`, { order: "asc" }),
    ]);
    const stepsOf = new Map(await Promise.all(runs.map(async (r) => [r.id, await listAll(`/threads/${id}/runs/${r.id}/steps`, { order: "asc" })])));
    const shown = new Set();
    for (const message of messages) {
      if (message.run_id && !shown.has(message.run_id)) {
        shown.add(message.run_id);
        for (const step of stepsOf.get(message.run_id) || []) renderStepCalls(step);
      }
      showMessage(message);
    }
    const last = runs[runs.length - 1];
    if (last) {
      if (!shown.has(last.id)) for (const step of stepsOf.get(last.id) || []) renderStepCalls(step);
      for (const step of stepsOf.get(last.id) || []) inspector.upsertStep(step);
      setRun(last);
      if (last.status === "requires_action") renderPending(last);
    }
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      forget(id);
      reset();
      toast(`Thread ${id} no longer exists.`);
    } else {
      toast(err.message);
    }
  }
}

export function init() {
  $("#composer").addEventListener("submit", send);
  $("#composer-text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("#composer").requestSubmit();
  });
  $("#thread-new").addEventListener("click", () => {
    reset();
    $("#composer-text").focus();
  });
  $("#run-cancel").addEventListener("click", cancel);
  on("connected", () => {
    renderAssistants();
    renderThreads();
  });
  on("assistants-changed", () => renderAssistants());
  on("chat-with", (id) => {
    reset();
    renderAssistants(id);
  });
  on("disconnected", () => {
    reset();
    renderAssistants();
  });
}
