// The official Python SDK call equivalent to one recorded request, for the "view code" panel.

const ROUTES = [
  ["GET", /^\/assistants$/, () => "client.beta.assistants.list", []],
  ["POST", /^\/assistants$/, () => "client.beta.assistants.create", []],
  ["GET", /^\/assistants\/([^/]+)$/, () => "client.beta.assistants.retrieve", ["#0"]],
  ["POST", /^\/assistants\/([^/]+)$/, () => "client.beta.assistants.update", ["#0"]],
  ["DELETE", /^\/assistants\/([^/]+)$/, () => "client.beta.assistants.delete", ["#0"]],
  ["POST", /^\/threads$/, () => "client.beta.threads.create", []],
  ["GET", /^\/threads\/([^/]+)$/, () => "client.beta.threads.retrieve", ["#0"]],
  ["GET", /^\/threads\/([^/]+)\/messages$/, () => "client.beta.threads.messages.list", ["#0"]],
  ["POST", /^\/threads\/([^/]+)\/messages$/, () => "client.beta.threads.messages.create", ["#0"]],
  ["GET", /^\/threads\/([^/]+)\/runs$/, () => "client.beta.threads.runs.list", ["#0"]],
  ["POST", /^\/threads\/([^/]+)\/runs$/, () => "client.beta.threads.runs.create", ["thread_id=#0"]],
  ["GET", /^\/threads\/([^/]+)\/runs\/([^/]+)$/, () => "client.beta.threads.runs.retrieve", ["#1", "thread_id=#0"]],
  ["POST", /^\/threads\/([^/]+)\/runs\/([^/]+)\/cancel$/, () => "client.beta.threads.runs.cancel", ["#1", "thread_id=#0"]],
  ["POST", /^\/threads\/([^/]+)\/runs\/([^/]+)\/submit_tool_outputs$/, () => "client.beta.threads.runs.submit_tool_outputs", ["#1", "thread_id=#0"]],
  ["GET", /^\/threads\/([^/]+)\/runs\/([^/]+)\/steps$/, () => "client.beta.threads.runs.steps.list", ["#1", "thread_id=#0"]],
  ["GET", /^\/files$/, () => "client.files.list", []],
  ["GET", /^\/files\/([^/]+)$/, () => "client.files.retrieve", ["#0"]],
  ["GET", /^\/files\/([^/]+)\/content$/, () => "client.files.content", ["#0"]],
  ["GET", /^\/vector_stores$/, () => "client.vector_stores.list", []],
  ["POST", /^\/vector_stores$/, () => "client.vector_stores.create", []],
  ["GET", /^\/vector_stores\/([^/]+)$/, () => "client.vector_stores.retrieve", ["#0"]],
  ["GET", /^\/vector_stores\/([^/]+)\/files$/, () => "client.vector_stores.files.list", ["#0"]],
  ["POST", /^\/vector_stores\/([^/]+)\/files$/, () => "client.vector_stores.files.create", ["vector_store_id=#0"]],
  ["GET", /^\/vector_stores\/([^/]+)\/files\/([^/]+)$/, () => "client.vector_stores.files.retrieve", ["#1", "vector_store_id=#0"]],
  ["GET", /^\/models$/, () => "client.models.list", []],
  ["POST", /^\/responses$/, () => "client.responses.create", []],
  ["GET", /^\/responses\/([^/]+)$/, () => "client.responses.retrieve", ["#0"]],
  ["DELETE", /^\/responses\/([^/]+)$/, () => "client.responses.delete", ["#0"]],
  ["GET", /^\/responses\/([^/]+)\/input_items$/, () => "client.responses.input_items.list", ["#0"]],
  ["POST", /^\/conversations$/, () => "client.conversations.create", []],
  ["GET", /^\/conversations\/([^/]+)$/, () => "client.conversations.retrieve", ["#0"]],
  ["POST", /^\/conversations\/([^/]+)$/, () => "client.conversations.update", ["#0"]],
  ["DELETE", /^\/conversations\/([^/]+)$/, () => "client.conversations.delete", ["#0"]],
  ["GET", /^\/conversations\/([^/]+)\/items$/, () => "client.conversations.items.list", ["#0"]],
  ["POST", /^\/conversations\/([^/]+)\/items$/, () => "client.conversations.items.create", ["#0"]],
];

export function py(value, indent = "") {
  const inner = indent + "    ";
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return "[\n" + value.map((v) => inner + py(v, inner) + ",\n").join("") + indent + "]";
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  return "{\n" + entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${py(v, inner)},\n`).join("") + indent + "}";
}

export function sdkCall(entry) {
  const setup = 'from openai import OpenAI\n\nclient = OpenAI(base_url="' + location.origin + '/v1")  # key from OPENAI_API_KEY\n\n';
  for (const [method, pattern, name, positional] of ROUTES) {
    const match = method === entry.method && entry.path.match(pattern);
    if (!match) continue;
    const args = positional.map((a) => a.replace(/#(\d)/, (_, i) => JSON.stringify(decodeURIComponent(match[Number(i) + 1]))));
    if (entry.path === "/files" && entry.method === "POST") {
      args.push(`file=open(${JSON.stringify(entry.request.file)}, "rb")`, `purpose=${JSON.stringify(entry.request.purpose)}`);
    } else {
      const params = { ...(entry.query || {}), ...(entry.request || {}) };
      for (const [k, v] of Object.entries(params)) {
        if (v !== undefined && v !== null && v !== "") args.push(`${k}=${py(v, "    ")}`);
      }
    }
    const call = `${name()}(\n${args.map((a) => "    " + a + ",\n").join("")})`;
    const streamed = entry.request && entry.request.stream === true;
    // Assistants streams name each event in `event`; Responses streams in `type`.
    const printed = entry.path === "/responses" ? "event.type, event" : "event.event, event.data";
    return setup + (streamed ? `for event in ${call}:\n    print(${printed})\n` : `result = ${call}\n`);
  }
  return setup + `# ${entry.method} /v1${entry.path}: no SDK helper; see the raw request below.\n`;
}
