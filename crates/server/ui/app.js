// The dashboard's shell: the key box, the navigation, and a page per `#/…` address.

import { allows, apiKey, catalog, keyHolder, keyMissing, loadSettings, newest, setApiKey } from "./api.js";
import { fill, guarded, h, Lifetime, showError } from "./dom.js";
import { modelPage, modelsPage } from "./models.js";
import { jobsPage, metricsPage } from "./operations.js";
import { drawPage } from "./digits.js";
import { chatPage, embeddingsPage } from "./text.js";

/** The scope each page's calls need (the rest need `read`). */
const NEEDS = { jobs: "admin", draw: "infer", chat: "infer", embeddings: "infer" };

const PAGES = {
  models: modelsPage,
  model: modelPage,
  metrics: metricsPage,
  jobs: jobsPage,
  draw: drawPage,
  chat: chatPage,
  embeddings: embeddingsPage,
};

let current = null;

/** The kinds of the models the server has (the newest version's). */
function kinds(models) {
  return new Set(models.map((m) => (newest(m) ? newest(m).kind : "")));
}

async function showNav() {
  if (keyMissing()) return;
  const { models } = await catalog();
  const present = kinds(models);
  const image = present.has("native-sequential") || present.has("onnx");
  for (const link of document.querySelectorAll("#nav a[data-needs]")) {
    const needs = link.dataset.needs;
    link.hidden = needs === "image" ? !image : !present.has(needs);
  }
}

/**
 * Shows the page the address names. Each visit renders into a container of its own, so that a
 * page still finishing after the user moved on fills a container no longer shown, and its
 * calls are aborted through its lifetime's signal.
 */
async function route() {
  if (current) current.end();
  const life = new Lifetime();
  current = life;
  showError(null);
  const [name, ...args] = (location.hash.replace(/^#\/?/, "") || "models").split("/").map(decodeURIComponent);
  const page = PAGES[name] || modelsPage;
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === name || (name === "model" && a.dataset.page === "models"));
  }
  const frame = document.getElementById("page");
  frame.dataset.page = name;
  delete frame.dataset.ready;
  const main = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  fill(frame, main);
  const scope = NEEDS[name] || "read";
  if (keyMissing()) {
    const why =
      keyHolder() === "invalid"
        ? "The key given is not accepted (unknown, revoked or expired)."
        : "This server asks for an API key.";
    fill(
      main,
      h("h1", {}, "API key needed"),
      h("p", { id: "key-needed" }, `${why} Type one above; it is kept for this tab only.`),
    );
    document.getElementById("key").focus();
  } else if (!allows(scope)) {
    fill(
      main,
      h("h1", {}, "Scope needed"),
      h(
        "p",
        { id: "scope-needed" },
        `This page needs a key with the ${scope} scope; the key "${keyHolder().name}" has ${keyHolder().scopes.join(", ")}.`,
      ),
    );
  } else {
    await guarded(() => page(main, args, life));
  }
  if (current === life) frame.dataset.ready = "true";
}

function keyBox() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("key");
  const state = document.getElementById("key-state");
  const show = () => {
    const holder = keyHolder();
    if (!apiKey()) state.textContent = "";
    else if (holder === "invalid") state.textContent = "key not accepted";
    else if (holder) state.textContent = `${holder.name}: ${holder.scopes.join(", ")}`;
    else state.textContent = "no key needed";
  };
  input.value = apiKey();
  show();
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setApiKey(input.value.trim());
    await guarded(loadSettings);
    show();
    guarded(showNav);
    route();
  });
}

async function start() {
  await guarded(loadSettings);
  keyBox();
  window.addEventListener("hashchange", route);
  guarded(showNav);
  route();
}

start();
