// The playground's entry point: the key form, the view switcher, and each view's start.

import { ApiError, key, request } from "./api.js";
import { $, toast } from "./dom.js";
import { emit, on, state } from "./state.js";
import * as assistants from "./assistants.js";
import * as chat from "./chat.js";
import * as responses from "./responses.js";
import * as stores from "./stores.js";
import * as inspector from "./inspector.js";

const VIEWS = ["assistants", "chat", "responses", "stores"];
const MODE_OF = { assistants: "assistants", chat: "assistants", responses: "responses" };
let mode = "assistants";

// Two modes (the Assistants API, the Responses API) each show their own views; the vector
// stores serve both and keep the mode they were opened from.
function show(view) {
  if (!VIEWS.includes(view)) view = "assistants";
  mode = MODE_OF[view] || mode;
  for (const button of document.querySelectorAll(".mode")) {
    button.setAttribute("aria-pressed", String(button.dataset.mode === mode));
  }
  for (const name of VIEWS) {
    $(`#view-${name}`).hidden = name !== view;
    const nav = document.querySelector(`.nav[data-view="${name}"]`);
    nav.setAttribute("aria-pressed", String(name === view));
    nav.hidden = Boolean(nav.dataset.mode && nav.dataset.mode !== mode);
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  emit("view", view);
}

async function connect() {
  const status = $("#key-status");
  if (!key.get()) {
    status.textContent = "Paste a key to start.";
    status.className = "dim";
    return false;
  }
  try {
    const [asst, vs] = await Promise.all([
      request("GET", "/assistants", { query: { limit: 100 } }),
      request("GET", "/vector_stores", { query: { limit: 100 } }),
    ]);
    state.assistants = asst.data;
    state.stores = vs.data;
    status.textContent = "Connected";
    status.className = "ok";
    emit("connected");
    return true;
  } catch (err) {
    status.textContent = err instanceof ApiError && err.status === 401 ? "Key refused" : `Error: ${err.message}`;
    status.className = "bad";
    return false;
  }
}

function init() {
  inspector.init();
  assistants.init();
  chat.init();
  responses.init();
  stores.init();

  $("#api-key").value = key.get();
  $("#key-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    key.set($("#api-key").value);
    await connect();
  });
  $("#key-forget").addEventListener("click", () => {
    key.clear();
    $("#api-key").value = "";
    $("#key-status").textContent = "Key forgotten.";
    emit("disconnected");
  });
  for (const button of document.querySelectorAll(".nav[data-view]")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }
  for (const button of document.querySelectorAll(".mode")) {
    button.addEventListener("click", () => show(button.dataset.mode));
  }
  window.addEventListener("unhandledrejection", (e) => {
    toast(e.reason?.message || String(e.reason));
  });
  on("show", show);
  show(location.hash.slice(1));
  connect();
}

init();
