// Text models: a chat playground streaming from `/v1/chat/completions`, and the similarity of
// two texts from `/v1/embeddings`.

import { api, catalog, eventStream, newest } from "./api.js";
import { fill, guarded, h, num, showError } from "./dom.js";

/**
 * A choice of the served models of `kind` (newest version's), or null after filling `main`
 * with the page's title and `missing` when there is none.
 */
async function modelPicker(main, { title, kind, id, missing }, signal) {
  const { models } = await catalog(signal);
  const names = models.filter((m) => newest(m) && newest(m).kind === kind).map((m) => m.name);
  if (!names.length) {
    fill(main, h("h1", {}, title), h("p", {}, missing));
    return null;
  }
  return h(
    "select",
    { id },
    names.map((n) => h("option", { value: n }, n)),
  );
}

/** `#/chat`: a conversation with a text-generation model, the reply streamed as it is made. */
export async function chatPage(main, _args, life) {
  const missing = "No text-generation model is served (`lathe import gguf …`).";
  const model = await modelPicker(main, { title: "Chat", kind: "causal-lm", id: "chat-model", missing }, life.signal);
  if (!model) return;
  const system = h("input", { id: "chat-system", placeholder: "system prompt (optional)", size: 50 });
  const temperature = h("input", { id: "chat-temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0.7 });
  const maxTokens = h("input", { id: "chat-max-tokens", type: "number", min: 1, step: 1, value: 256 });
  const log = h("div", { id: "chat-log", class: "chat" });
  const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Ask something…" });
  const send = h("button", { type: "submit", id: "chat-send" }, "Send");
  const stop = h("button", { type: "button", id: "chat-stop", disabled: true }, "Stop");
  const usage = h("p", { id: "chat-usage", class: "muted" });
  const messages = [];
  let running = null;
  stop.addEventListener("click", () => running && running.abort());
  const submit = async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text || running) return;
    input.value = "";
    messages.push({ role: "user", content: text });
    log.append(h("div", { class: "msg user" }, text));
    const reply = h("div", { class: "msg assistant streaming" });
    log.append(reply);
    running = new AbortController();
    life.signal.addEventListener("abort", () => running && running.abort(), { once: true });
    [send.disabled, stop.disabled] = [true, false];
    const started = performance.now();
    let pieces = 0;
    const body = {
      model: model.value,
      messages: system.value ? [{ role: "system", content: system.value }, ...messages] : messages,
      temperature: Number(temperature.value),
      max_tokens: Number(maxTokens.value),
      stream: true,
      stream_options: { include_usage: true },
    };
    const onEvent = (_name, data) => {
      if (typeof data !== "object") return;
      if (data.error) throw new Error(`the reply stopped: ${data.error.message || JSON.stringify(data.error)}`);
      const delta = data.choices && data.choices[0] && data.choices[0].delta;
      if (delta && delta.content) {
        reply.textContent += delta.content;
        pieces += 1;
        reply.dataset.chunks = String(pieces);
        log.scrollTop = log.scrollHeight;
      }
      if (data.usage) {
        const { prompt_tokens: prompt, completion_tokens: generated } = data.usage;
        const seconds = (performance.now() - started) / 1000;
        usage.textContent = `${prompt} prompt tokens, ${generated} generated in ${num(seconds, 2)} s`;
      }
    };
    try {
      await eventStream("/v1/chat/completions", { method: "POST", body, signal: running.signal, onEvent });
    } catch (e) {
      // Stopped by the user: the partial reply stays. A failure before any text: the question
      // goes back to the input and leaves the conversation.
      if (e.name !== "AbortError") showError(e);
    }
    reply.classList.remove("streaming");
    if (reply.textContent) {
      messages.push({ role: "assistant", content: reply.textContent });
    } else {
      reply.remove();
      log.lastChild.remove();
      messages.pop();
      input.value = text;
    }
    running = null;
    [send.disabled, stop.disabled] = [false, true];
  };
  fill(
    main,
    h("h1", {}, "Chat"),
    h("p", { class: "inline" }, "Model ", model, " temperature ", temperature, " max tokens ", maxTokens),
    h("p", {}, system),
    log,
    h("form", { id: "chat-form", onsubmit: submit, class: "inline" }, input, send, stop),
    usage,
  );
}

function cosine(a, b) {
  let [dot, na, nb] = [0, 0, 0];
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

/** `#/embeddings`: the cosine similarity of two texts' embeddings. */
export async function embeddingsPage(main, _args, life) {
  const missing = "No embedding model is served (`lathe import hf …`).";
  const page = { title: "Embeddings", kind: "sentence-embedding", id: "embed-model", missing };
  const model = await modelPicker(main, page, life.signal);
  if (!model) return;
  const first = h("textarea", { id: "embed-a", rows: 3 }, "A man is playing a guitar.");
  const second = h("textarea", { id: "embed-b", rows: 3 }, "Someone plays an instrument.");
  const result = h("p", { id: "embed-result", class: "big" });
  const meter = h("meter", { id: "embed-meter", min: -1, max: 1, value: 0 });
  const compare = (ev) => {
    ev.preventDefault();
    guarded(async () => {
      const answer = await api("/v1/embeddings", {
        method: "POST",
        body: { model: model.value, input: [first.value, second.value] },
        signal: life.signal,
      });
      const [a, b] = answer.data.map((d) => d.embedding);
      const s = cosine(a, b);
      result.textContent = `cosine similarity ${num(s, 4)}`;
      result.dataset.similarity = String(s);
      meter.value = s;
    });
  };
  fill(
    main,
    h("h1", {}, "Embeddings"),
    h(
      "form",
      { id: "embed-form", onsubmit: compare, class: "stacked" },
      h("label", {}, "Model ", model),
      first,
      second,
      h("button", { type: "submit" }, "Compare"),
    ),
    result,
    meter,
  );
}
