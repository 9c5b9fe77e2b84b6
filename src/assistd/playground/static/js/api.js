// The client of this server's /v1 API. The key lives in the tab's sessionStorage and is sent
// only in the Authorization header of same-origin requests (never in a URL).

const KEY_ITEM = "assistd.key";
const API = "/v1";

export const key = {
  get: () => sessionStorage.getItem(KEY_ITEM) || "",
  set: (value) => sessionStorage.setItem(KEY_ITEM, value.trim()),
  clear: () => sessionStorage.removeItem(KEY_ITEM),
};

// A short, non-reversible namespace for per-key local data (FNV-1a over the key).
export function keyTag(secret = key.get()) {
  let hash = 0x811c9dc5;
  for (let i = 0; i < secret.length; i++) {
    hash ^= secret.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash.toString(16).padStart(8, "0");
}

export class ApiError extends Error {
  constructor(status, body) {
    const message = body?.error?.message || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body;
  }
}

// Every request and response, for the "view code" panel.
export const exchanges = new EventTarget();
let exchangeSeq = 0;

function record(entry) {
  entry.id = ++exchangeSeq;
  exchanges.dispatchEvent(new CustomEvent("exchange", { detail: entry }));
  return entry;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${key.get()}`, "OpenAI-Beta": "assistants=v2", ...extra };
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) params.append(name, item);
  }
  const qs = params.toString();
  return API + path + (qs ? `?${qs}` : "");
}

async function parse(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return text;
  }
}

export async function request(method, path, { body, query } = {}) {
  const init = { method, headers: headers() };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const entry = { method, path, query, request: body, status: 0, response: null, started: performance.now() };
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (err) {
    entry.response = { error: String(err) };
    record(entry);
    throw err;
  }
  entry.status = response.status;
  entry.response = await parse(response);
  entry.ms = Math.round(performance.now() - entry.started);
  record(entry);
  if (!response.ok) throw new ApiError(response.status, entry.response);
  return entry.response;
}

// Every page of a cursor-paginated list.
export async function listAll(path, query = {}) {
  const out = [];
  let after;
  for (;;) {
    const page = await request("GET", path, { query: { limit: 100, ...query, after } });
    out.push(...page.data);
    if (!page.has_more || !page.data.length) return out;
    after = page.last_id;
  }
}

// POST with stream: true, reading the server-sent events as they arrive (fetch + ReadableStream:
// EventSource can neither POST nor send headers). `onEvent(name, data)` gets each event.
export async function stream(path, body, onEvent, { signal } = {}) {
  const entry = { method: "POST", path, request: body, status: 0, response: null, events: [], started: performance.now() };
  const response = await fetch(url(path), {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify(body),
    signal,
  });
  entry.status = response.status;
  if (!response.ok || !response.body) {
    entry.response = await parse(response);
    record(entry);
    throw new ApiError(response.status, entry.response);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseFrame(frame);
        if (!event) continue;
        entry.events.push(event);
        onEvent(event.name, event.data);
      }
    }
  } finally {
    entry.ms = Math.round(performance.now() - entry.started);
    record(entry);
  }
}

function parseFrame(frame) {
  let name = "message";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") name = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // "[DONE]" and other plain payloads stay text.
  }
  return { name, data: parsed };
}

// Upload a file with progress (XMLHttpRequest: fetch reports no upload progress).
export function uploadFile(file, purpose, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const form = new FormData();
    form.append("purpose", purpose);
    form.append("file", file, file.name);
    const entry = { method: "POST", path: "/files", request: { purpose, file: file.name }, status: 0, response: null, started: performance.now() };
    xhr.open("POST", url("/files"));
    xhr.setRequestHeader("Authorization", `Bearer ${key.get()}`);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) onProgress?.(e.loaded / e.total);
    });
    xhr.addEventListener("load", () => {
      entry.status = xhr.status;
      try {
        entry.response = JSON.parse(xhr.responseText);
      } catch {
        entry.response = xhr.responseText;
      }
      entry.ms = Math.round(performance.now() - entry.started);
      record(entry);
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress?.(1);
        resolve(entry.response);
      } else {
        reject(new ApiError(xhr.status, entry.response));
      }
    });
    xhr.addEventListener("error", () => reject(new Error("upload failed")));
    xhr.send(form);
  });
}

// A blob: URL of a stored file's content (images, downloads), fetched once with the key.
export function fileUrl(fileId) {
  return blobUrl(url(`/files/${encodeURIComponent(fileId)}/content`));
}

// A blob: URL of any content this server's API serves at `path` (e.g. a container file the
// Responses API links to): fetched once, with the key in the header, never in the URL.
const blobUrls = new Map();
export function blobUrl(path) {
  if (!path.startsWith(`${API}/`) || path.includes("..")) return Promise.reject(new Error(`not a path of this API: ${path}`));
  if (!blobUrls.has(path)) {
    const pending = fetch(path, { headers: headers() }).then(async (r) => {
      if (!r.ok) throw new ApiError(r.status, await parse(r));
      return URL.createObjectURL(await r.blob());
    });
    pending.catch(() => blobUrls.delete(path));
    blobUrls.set(path, pending);
  }
  return blobUrls.get(path);
}
