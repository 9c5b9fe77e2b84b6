// The chat's side panel: run steps (status, usage, timings) and "view code" (the SDK call and
// the raw JSON of every request and response).

import { exchanges } from "./api.js";
import { $, append, clear, h } from "./dom.js";
import { sdkCall } from "./sdk.js";

const MAX_EXCHANGES = 60;
const steps = new Map(); // step id -> {step, seenAt, el}

function json(value) {
  return JSON.stringify(value, null, 2);
}

// Each mode's "view code" panel lists every exchange (one element per panel).
function renderExchange(entry) {
  for (const list of document.querySelectorAll("ol.exchanges")) {
    list.prepend(exchangeItem(entry));
    while (list.children.length > MAX_EXCHANGES) list.lastElementChild.remove();
  }
}

function exchangeItem(entry) {
  const response = entry.events
    ? entry.events.map((e) => `event: ${e.name}\ndata: ${typeof e.data === "string" ? e.data : JSON.stringify(e.data)}`).join("\n\n")
    : json(entry.response);
  return h("li", {},
    h("details", {},
      h("summary", {},
        h("span", { class: `method m-${entry.method.toLowerCase()}` }, entry.method), " ",
        h("span", { class: "mono" }, `/v1${entry.path}`), " ",
        h("span", { class: entry.status >= 400 ? "bad" : "dim" }, `${entry.status} · ${entry.ms ?? "?"} ms`)),
      h("h4", {}, "Python SDK"),
      h("pre", { class: "code sdk" }, sdkCall(entry)),
      h("h4", {}, "Request"),
      h("pre", { class: "code" }, entry.request === undefined ? "(no body)" : json(entry.request)),
      h("h4", {}, entry.events ? `Response (${entry.events.length} events)` : "Response"),
      h("pre", { class: "code" }, response)),
  );
}

function secs(a, b) {
  return a && b ? `${Math.max(0, b - a)} s` : "";
}

function usage(u) {
  return u ? `${u.prompt_tokens} in · ${u.completion_tokens} out · ${u.total_tokens} total` : "";
}

export function showRun(run, { firstTokenMs } = {}) {
  const box = clear($("#run-summary"));
  if (!run) return;
  append(box, [
    h("div", {}, h("span", { class: "mono" }, run.id), " ", h("span", { class: `badge s-${run.status}` }, run.status)),
    h("div", {}, `model ${run.model}`),
    run.usage ? h("div", {}, `usage: ${usage(run.usage)}`) : null,
    run.started_at ? h("div", {}, `ran ${secs(run.started_at, run.completed_at || run.cancelled_at || run.failed_at)}`) : null,
    firstTokenMs !== undefined ? h("div", {}, `first text after ${firstTokenMs} ms`) : null,
    run.last_error ? h("div", { class: "bad" }, `${run.last_error.code}: ${run.last_error.message}`) : null,
  ]);
}

export function resetSteps() {
  steps.clear();
  clear($("#steps"));
  clear($("#run-summary"));
}

function toolSummary(call) {
  if (call.type === "function") {
    return h("li", {}, `function ${call.function?.name || ""}(${call.function?.arguments || ""})`,
      call.function?.output != null ? ` → ${call.function.output}` : "");
  }
  if (call.type === "file_search") {
    const n = call.file_search?.results?.length;
    return h("li", {}, `file_search${n !== undefined ? ` · ${n} results` : ""}`);
  }
  if (call.type === "code_interpreter") {
    const outs = call.code_interpreter?.outputs || [];
    return h("li", {}, `code_interpreter · ${outs.length} outputs`);
  }
  return h("li", {}, call.type);
}

function renderStep(record) {
  const { step } = record;
  const el = record.el || h("li", { class: "step" });
  record.el = el;
  clear(el);
  const elapsed = step.completed_at ? secs(step.created_at, step.completed_at) : "";
  el.dataset.status = step.status;
  append(el, [
    h("div", { class: "step-head" },
      h("strong", {}, step.type === "tool_calls" ? "tool calls" : "message"), " ",
      h("span", { class: `badge s-${step.status}` }, step.status)),
    h("div", { class: "mono dim" }, step.id),
    step.usage ? h("div", {}, `usage: ${usage(step.usage)}`) : null,
    h("div", { class: "dim" }, [elapsed && `took ${elapsed}`, record.clientMs !== undefined && `seen for ${record.clientMs} ms`].filter(Boolean).join(" · ")),
    step.type === "tool_calls" ? h("ul", {}, (step.step_details?.tool_calls || []).map(toolSummary)) : null,
  ]);
  if (!el.isConnected) $("#steps").append(el);
}

export function upsertStep(step) {
  const record = steps.get(step.id) || { seenAt: performance.now() };
  const prev = record.step;
  record.step = prev && step.step_details?.tool_calls?.length === 0 ? { ...step, step_details: prev.step_details } : step;
  if (step.status !== "in_progress") record.clientMs = Math.round(performance.now() - record.seenAt);
  steps.set(step.id, record);
  renderStep(record);
}

// Merge a run step delta's tool calls (by index) into the step's own copy.
export function applyStepDelta(delta) {
  const record = steps.get(delta.id);
  if (!record) return;
  const calls = record.step.step_details.tool_calls || (record.step.step_details.tool_calls = []);
  for (const d of delta.delta?.step_details?.tool_calls || []) {
    const call = calls[d.index] || (calls[d.index] = { type: d.type, id: d.id });
    if (d.id) call.id = d.id;
    if (d.type === "function" && d.function) {
      call.function = call.function || { name: "", arguments: "", output: null };
      if (d.function.name) call.function.name += d.function.name;
      if (d.function.arguments) call.function.arguments += d.function.arguments;
      if (d.function.output != null) call.function.output = d.function.output;
    } else if (d.type === "code_interpreter" && d.code_interpreter) {
      call.code_interpreter = call.code_interpreter || { input: "", outputs: [] };
      if (d.code_interpreter.input) call.code_interpreter.input += d.code_interpreter.input;
      for (const out of d.code_interpreter.outputs || []) call.code_interpreter.outputs.push(out);
    } else if (d.type === "file_search" && d.file_search) {
      call.file_search = d.file_search;
    }
  }
  renderStep(record);
}

// A tool call of a step as merged so far from its deltas.
export function stepCall(stepId, index) {
  return steps.get(stepId)?.step.step_details?.tool_calls?.[index];
}

function selectTab(which) {
  for (const name of ["steps", "code"]) {
    const on = name === which;
    $(`#tab-${name}`).setAttribute("aria-selected", String(on));
    $(`#tab-${name}`).tabIndex = on ? 0 : -1;
    $(`#panel-${name}`).hidden = !on;
  }
}

export function init() {
  exchanges.addEventListener("exchange", (e) => renderExchange(e.detail));
  $("#tab-steps").addEventListener("click", () => selectTab("steps"));
  $("#tab-code").addEventListener("click", () => selectTab("code"));
  for (const tab of document.querySelectorAll('.inspector [role="tab"]')) {
    tab.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        const next = tab.id === "tab-steps" ? "code" : "steps";
        selectTab(next);
        $(`#tab-${next}`).focus();
      }
    });
  }
  selectTab("steps");
}
