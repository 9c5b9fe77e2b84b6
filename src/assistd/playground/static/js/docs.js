// The API reference: renders this server's own /openapi.json (paths, methods, parameters,
// schemas) with a "try it" form that sends the request with the key of this tab.

import { key } from "./api.js";
import { $, clear, h, toast } from "./dom.js";

const METHODS = ["get", "post", "put", "patch", "delete"];
let spec;

function resolve(schema) {
  let seen = 0;
  while (schema?.$ref && seen++ < 20) {
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((node, part) => node?.[part], spec);
  }
  return schema || {};
}

const refName = (schema) => schema?.$ref?.split("/").pop();

function typeOf(schema) {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema);
  const variants = schema.anyOf || schema.oneOf;
  if (variants) return variants.map(typeOf).join(" | ");
  if (schema.type === "array") return `array<${typeOf(schema.items)}>`;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  return schema.type || "object";
}

// A schema as nested lists; referenced schemas open on demand (the document is large).
function schemaView(schema, depth = 0) {
  const target = resolve(schema);
  const box = h("div", { class: "schema" });
  const props = target.properties || {};
  const required = new Set(target.required || []);
  if (target.description && depth === 0) box.append(h("div", { class: "dim" }, target.description));
  if (Object.keys(props).length) {
    const table = h("table", { class: "params" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Type"), h("th", { scope: "col" }, "Description"))));
    const body = h("tbody");
    for (const [name, prop] of Object.entries(props)) {
      const cell = h("td", {}, typeOf(prop));
      const nested = nestedRef(prop);
      if (nested && depth < 6) cell.append(lazy(nested, depth + 1));
      body.append(h("tr", {}, h("td", { class: "mono" }, name, required.has(name) ? h("span", { class: "bad" }, " *") : null), cell, h("td", {}, resolve(prop).description || prop.description || "")));
    }
    table.append(body);
    box.append(table);
  } else {
    const variants = target.anyOf || target.oneOf;
    box.append(h("div", { class: "mono" }, typeOf(target)));
    if (variants && depth < 6) for (const v of variants) if (v.$ref) box.append(lazy(v, depth + 1));
  }
  return box;
}

function nestedRef(prop) {
  if (prop.$ref) return prop;
  if (prop.type === "array" && prop.items?.$ref) return prop.items;
  const variants = prop.anyOf || prop.oneOf;
  const refs = variants?.filter((v) => v.$ref || v.items?.$ref) || [];
  if (refs.length === 1) return refs[0].$ref ? refs[0] : refs[0].items;
  if (refs.length > 1) return { anyOf: refs };
  return null;
}

function lazy(schema, depth) {
  const details = h("details", { class: "schema" }, h("summary", {}, typeOf(schema)));
  details.addEventListener("toggle", () => {
    if (details.open && details.children.length === 1) details.append(schemaView(schema, depth));
  }, { once: false });
  return details;
}

// A starting body for the try-it form: the required fields with placeholder values.
function example(schema, depth = 0) {
  const s = resolve(schema);
  if (depth > 3) return null;
  if (s.default !== undefined) return s.default;
  if (s.enum) return s.enum[0];
  const variants = s.anyOf || s.oneOf;
  if (variants) return example(variants.find((v) => v.type !== "null") || variants[0], depth + 1);
  if (s.type === "object" || s.properties) {
    const out = {};
    for (const name of s.required || []) out[name] = example(s.properties?.[name], depth + 1);
    return out;
  }
  if (s.type === "array") return [];
  if (s.type === "integer" || s.type === "number") return 0;
  if (s.type === "boolean") return false;
  return s.type === "string" ? "" : null;
}

function opId(method, path) {
  return `op-${method}-${path.replace(/[^a-zA-Z0-9]+/g, "-")}`;
}

function tryIt(method, path, op) {
  const params = (op.parameters || []).map((p) => ("$ref" in p ? resolve(p) : p));
  const form = h("form", { class: "tryit" }, h("h4", {}, "Try it"));
  const inputs = [];
  for (const p of params.filter((p) => p.in === "path" || p.in === "query")) {
    const id = `${opId(method, path)}-${p.in}-${p.name}`;
    const input = h("input", { id, required: p.in === "path", placeholder: typeOf(p.schema) });
    inputs.push([p, input]);
    form.append(h("label", { for: id }, `${p.name} (${p.in})`), input);
  }
  const content = op.requestBody && resolve(op.requestBody).content;
  let bodyArea = null;
  if (content?.["application/json"]) {
    const id = `${opId(method, path)}-body`;
    bodyArea = h("textarea", { id, rows: 6, class: "mono", spellcheck: "false" });
    bodyArea.value = JSON.stringify(example(content["application/json"].schema), null, 2);
    form.append(h("label", { for: id }, "JSON body"), bodyArea);
  } else if (content) {
    form.append(h("p", { class: "dim" }, `This operation takes ${Object.keys(content).join(", ")}; use the SDK or curl.`));
  }
  const out = h("pre", { class: "code", hidden: true, "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, "Send request");
  form.append(h("div", { class: "actions" }, button), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    for (const [p, input] of inputs) {
      if (!input.value) continue;
      if (p.in === "path") url = url.replace(`{${p.name}}`, encodeURIComponent(input.value));
      else query.append(p.name, input.value);
    }
    if (query.toString()) url += `?${query}`;
    const init = { method: method.toUpperCase(), headers: { Authorization: `Bearer ${key.get()}`, "OpenAI-Beta": "assistants=v2" } };
    if (bodyArea && !content?.["multipart/form-data"]) {
      init.headers["Content-Type"] = "application/json";
      init.body = bodyArea.value;
    }
    button.disabled = true;
    out.hidden = false;
    out.textContent = `${init.method} ${url} …`;
    try {
      const response = await fetch(url, init);
      const text = await response.text();
      let shown = text;
      try {
        shown = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // streams and plain text are shown as they came
      }
      out.textContent = `${response.status} ${response.statusText}\n\n${shown}`;
      out.dataset.status = String(response.status);
    } catch (err) {
      out.textContent = String(err);
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function operation(method, path, op) {
  const params = (op.parameters || []).map((p) => ("$ref" in p ? resolve(p) : p));
  const details = h("details", { class: "op pane", id: opId(method, path) },
    h("summary", {}, h("span", { class: `method m-${method}` }, method.toUpperCase()), h("span", { class: "path" }, path), h("span", { class: "dim" }, op.summary || "")));
  details.addEventListener("toggle", () => {
    if (!details.open || details.dataset.rendered) return;
    details.dataset.rendered = "1";
    if (op.description) details.append(h("p", {}, op.description));
    if (params.length) {
      details.append(h("h4", {}, "Parameters"), h("table", { class: "params" },
        h("thead", {}, h("tr", {}, ...["Name", "In", "Type", "Description"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, params.map((p) => h("tr", {}, h("td", { class: "mono" }, p.name, p.required ? h("span", { class: "bad" }, " *") : null), h("td", {}, p.in), h("td", {}, typeOf(p.schema)), h("td", {}, p.description || p.schema?.description || ""))))));
    }
    const body = op.requestBody && resolve(op.requestBody);
    if (body?.content) {
      for (const [type, media] of Object.entries(body.content)) details.append(h("h4", {}, `Request body (${type})`), schemaView(media.schema));
    }
    details.append(h("h4", {}, "Responses"));
    for (const [code, response] of Object.entries(op.responses || {})) {
      const r = resolve(response);
      const schema = r.content?.["application/json"]?.schema;
      details.append(h("div", {}, h("strong", {}, code), " ", r.description || "", schema ? lazy(schema, 1) : null));
    }
    details.append(tryIt(method, path, op));
  });
  return details;
}

function render() {
  $("#api-title").textContent = `${spec.info?.title || "API"} ${spec.info?.version || ""}`;
  $("#api-intro").textContent = "Every /v1 operation this server serves (the same ones answer under /openai in the Azure OpenAI shape). Open one to see its parameters and schemas and to send it with your key.";
  const groups = new Map();
  for (const [path, item] of Object.entries(spec.paths || {})) {
    if (!path.startsWith("/v1/")) continue;
    const group = path.split("/")[2];
    if (!groups.has(group)) groups.set(group, []);
    for (const method of METHODS) if (item[method]) groups.get(group).push([method, path, item[method]]);
  }
  const toc = clear($("#toc"));
  const ops = $("#ops");
  for (const [group, list] of groups) {
    toc.append(h("h2", {}, group), h("ul", {}, list.map(([m, p, op]) => h("li", {}, h("a", { href: `#${opId(m, p)}` }, h("span", { class: `method m-${m}` }, m.toUpperCase()), " ", p.slice(3))))));
    ops.append(h("h2", { class: "group" }, group), ...list.map(([m, p, op]) => operation(m, p, op)));
  }
  // Opening an operation from the table of contents.
  toc.addEventListener("click", (e) => {
    const link = e.target.closest("a");
    if (link) document.getElementById(link.hash.slice(1)).open = true;
  });
}

async function init() {
  $("#api-key").value = key.get();
  $("#key-status").textContent = key.get() ? "Key set for this tab" : "No key: try-it requests will be refused";
  $("#key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    key.set($("#api-key").value);
    $("#key-status").textContent = "Key set for this tab";
  });
  try {
    const response = await fetch("/openapi.json");
    spec = await response.json();
    render();
  } catch (err) {
    toast(`Could not load /openapi.json: ${err.message}`);
  }
}

init();
