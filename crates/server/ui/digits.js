// Draw a digit: a canvas for image classifiers with 28 × 28 inputs. The drawing is prepared as
// MNIST's digits were (LeCun et al., "The MNIST database"): the ink's bounding box is scaled to
// fit a 20 × 20 box (aspect ratio kept, anti-aliased by area averaging), then placed in a
// 28 × 28 field so that its centre of mass sits at the centre. The prediction's explanation
// (integrated gradients) is drawn over the prepared digit.

import { api, catalog, newest } from "./api.js";
import { fill, guarded, h, num, pct } from "./dom.js";

const SIDE = 28;
const BOX = 20;
const CANVAS = 280;
const enc = encodeURIComponent;

/** Is `shape` (batch dimension first) a 28 × 28 grayscale image? */
function imageLayout(shape) {
  const dims = shape.slice(1).join(",");
  return ["28,28", "28,28,1", "1,28,28", "784"].includes(dims) ? dims : null;
}

/** The served models whose newest version takes one 28 × 28 image and names classes. */
async function imageClassifiers(signal) {
  const { models } = await catalog(signal);
  const found = [];
  for (const m of models) {
    const v = newest(m);
    if (!v || !["native-sequential", "onnx"].includes(v.kind) || (v.state && v.state !== "READY")) continue;
    const manifest = await api(`/v1/models/${enc(m.name)}/versions/${v.version}/manifest`, { signal });
    const inputs = manifest.signature.inputs;
    const layout = inputs.length === 1 ? imageLayout(inputs[0].shape) : null;
    if (layout)
      found.push({
        name: m.name,
        version: manifest.version,
        layout,
        kind: manifest.kind,
        classes: manifest.class_names || (manifest.spec && manifest.spec.class_names) || [],
      });
  }
  return found;
}

/**
 * The drawing (white ink on black, `width` × `height` RGBA pixels) prepared as an MNIST digit:
 * 784 values in 0–255, row by row; null when nothing is drawn.
 */
export function prepareDigit(rgba, width, height) {
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (rgba[4 * (y * width + x)] > 0) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const [w, hgt] = [x1 - x0 + 1, y1 - y0 + 1];
  const scale = BOX / Math.max(w, hgt);
  const [sw, sh] = [Math.max(1, Math.round(w * scale)), Math.max(1, Math.round(hgt * scale))];
  // Area averaging: each source pixel adds to the box cell it falls in.
  const sum = new Float64Array(sw * sh);
  const count = new Float64Array(sw * sh);
  for (let y = 0; y < hgt; y++) {
    const ty = Math.min(sh - 1, Math.floor(y * scale));
    for (let x = 0; x < w; x++) {
      const tx = Math.min(sw - 1, Math.floor(x * scale));
      sum[ty * sw + tx] += rgba[4 * ((y + y0) * width + x + x0)];
      count[ty * sw + tx] += 1;
    }
  }
  const small = sum.map((s, i) => (count[i] ? s / count[i] : 0));
  let [mass, mx, my] = [0, 0, 0];
  small.forEach((v, i) => {
    mass += v;
    mx += v * ((i % sw) + 0.5);
    my += v * (Math.floor(i / sw) + 0.5);
  });
  const [ox, oy] = [Math.round(SIDE / 2 - mx / mass), Math.round(SIDE / 2 - my / mass)];
  const digit = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < sw; x++) {
      const [tx, ty] = [x + ox, y + oy];
      if (tx >= 0 && tx < SIDE && ty >= 0 && ty < SIDE) digit[ty * SIDE + tx] = small[y * sw + x];
    }
  }
  return digit;
}

/** The digit shaped as the model's input. */
function instance(digit, layout) {
  const rows = [];
  for (let y = 0; y < SIDE; y++) rows.push(Array.from(digit.slice(y * SIDE, (y + 1) * SIDE)));
  if (layout === "784") return Array.from(digit);
  if (layout === "28,28,1") return rows.map((r) => r.map((v) => [v]));
  if (layout === "1,28,28") return [rows];
  return rows;
}

/** Class probabilities (or scores) from a `:predict` answer's first row. */
function firstRow(answer) {
  const row = answer.predictions[0];
  if (Array.isArray(row)) return row.flat(Infinity);
  return Object.values(row).find(Array.isArray).flat(Infinity);
}

/** `#/draw`: the canvas, the prepared digit with its explanation, the class probabilities. */
export async function drawPage(main, _args, life) {
  const models = await imageClassifiers(life.signal);
  if (!models.length) {
    fill(main, h("h1", {}, "Draw a digit"), h("p", {}, "No served image classifier takes a 28 × 28 input."));
    return;
  }
  const select = h(
    "select",
    { id: "draw-model" },
    models.map((m, i) => h("option", { value: i }, `${m.name} v${m.version}`)),
  );
  // Lathe's own versions apply their stored preprocessing to raw pixels; an imported graph gets
  // its input as sent, so the user says which range it was trained on.
  const scale = h(
    "select",
    { id: "draw-scale", title: "the input range the imported graph was trained on" },
    h("option", { value: "1" }, "inputs 0–1"),
    h("option", { value: "255" }, "inputs 0–255"),
  );
  const scaleLabel = h("label", {}, " ", scale);
  const showScale = () => (scaleLabel.hidden = models[Number(select.value)].kind !== "onnx");
  select.addEventListener("change", showScale);
  showScale();
  const pad = h("canvas", { id: "draw-canvas", width: CANVAS, height: CANVAS, class: "pad" });
  const overlay = h("canvas", { id: "draw-explanation", width: CANVAS, height: CANVAS, class: "pad" });
  const prediction = h("p", { id: "draw-prediction", class: "big" }, "Draw a digit, 0 to 9.");
  const detail = h("p", { id: "draw-detail", class: "muted" });
  const bars = h("canvas");
  fill(
    main,
    h("h1", {}, "Draw a digit"),
    h(
      "p",
      { class: "inline" },
      "Model ",
      select,
      scaleLabel,
      h("button", { type: "button", id: "draw-clear", onclick: () => clear() }, "Clear"),
    ),
    h(
      "div",
      { class: "columns" },
      h("figure", {}, pad, h("figcaption", {}, "Your drawing (white on black, as MNIST)")),
      h(
        "figure",
        {},
        overlay,
        h(
          "figcaption",
          {},
          "As the model sees it (20 × 20 box, centred by mass in 28 × 28), with integrated gradients: red raises the predicted class, blue lowers it",
        ),
      ),
      h("div", {}, prediction, detail, h("div", { class: "chart short" }, bars)),
    ),
  );
  const chart = life.chart(bars, {
    type: "bar",
    data: { labels: [], datasets: [{ label: "probability", data: [], backgroundColor: "#1f77b4" }] },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: { y: { min: 0, max: 1 } },
      plugins: { legend: { display: false } },
    },
  });
  const ctx = pad.getContext("2d", { willReadFrequently: true });
  // Each stroke or clear starts a new drawing: answers for an older one are dropped.
  const drawing = { count: 0 };
  const clear = () => {
    drawing.count += 1;
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, CANVAS, CANVAS);
    overlay.getContext("2d").clearRect(0, 0, CANVAS, CANVAS);
    prediction.textContent = "Draw a digit, 0 to 9.";
    delete prediction.dataset.digit;
  };
  clear();
  strokes(pad, ctx, () => {
    drawing.count += 1;
    const model = models[Number(select.value)];
    const range = model.kind === "onnx" ? Number(scale.value) : 255;
    const number = drawing.count;
    const view = { ctx, overlay, prediction, detail, chart, life, current: () => drawing.count === number };
    guarded(() => classify(model, range, view));
  });
}

/** Pointer strokes on the pad; `done` after each stroke. */
function strokes(pad, ctx, done) {
  let last = null;
  const at = (ev) => {
    const r = pad.getBoundingClientRect();
    return [((ev.clientX - r.left) * CANVAS) / r.width, ((ev.clientY - r.top) * CANVAS) / r.height];
  };
  const line = (from, to) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = 22;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...from);
    ctx.lineTo(...to);
    ctx.stroke();
  };
  pad.addEventListener("pointerdown", (ev) => {
    pad.setPointerCapture(ev.pointerId);
    last = at(ev);
    line(last, last);
  });
  pad.addEventListener("pointermove", (ev) => {
    if (!last) return;
    const p = at(ev);
    line(last, p);
    last = p;
  });
  const end = () => {
    if (!last) return;
    last = null;
    done();
  };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
}

/** The scores as probabilities: as they are when they already are, else their softmax. */
function probabilities(scores) {
  const sum = scores.reduce((s, x) => s + x, 0);
  if (scores.every((x) => x >= 0 && x <= 1) && Math.abs(sum - 1) < 1e-3) return { probs: scores, softmax: false };
  const top = Math.max(...scores);
  const exp = scores.map((x) => Math.exp(x - top));
  const total = exp.reduce((s, x) => s + x, 0);
  return { probs: exp.map((x) => x / total), softmax: true };
}

/**
 * Predicts the drawing, then explains the prediction; `range` is the pixel range the model
 * takes (255 for raw pixels). Answers for a drawing no longer current are dropped.
 */
async function classify(model, range, { ctx, overlay, prediction, detail, chart, life, current }) {
  const digit = prepareDigit(ctx.getImageData(0, 0, CANVAS, CANVAS).data, CANVAS, CANVAS);
  if (!digit) return;
  const input = range === 255 ? digit : digit.map((v) => (v * range) / 255);
  const path = `/v1/models/${enc(model.name)}/versions/${model.version}`;
  const body = { instances: [instance(input, model.layout)] };
  const answer = await api(`${path}:predict`, { method: "POST", body, signal: life.signal });
  if (!current()) return;
  const { probs, softmax } = probabilities(firstRow(answer));
  const best = probs.indexOf(Math.max(...probs));
  const name = model.classes[best] || String(best);
  prediction.textContent = `It is a ${name}`;
  prediction.dataset.digit = name;
  detail.textContent = `probability ${pct(probs[best], 1)}${softmax ? " (softmax of the model's scores)" : ""}`;
  chart.data.labels = probs.map((_, i) => model.classes[i] || String(i));
  chart.data.datasets[0].data = probs;
  chart.update("none");
  drawDigit(overlay, digit, null);
  const explained = await api(`${path}:explain`, { method: "POST", body, signal: life.signal });
  if (!current()) return;
  const e = explained.explanations[0];
  drawDigit(overlay, digit, e.attributions.flat(Infinity));
  detail.textContent += ` · attributions of class ${e.class ?? e.unit} (${e.method}), completeness gap ${num(e.convergence_delta, 4)}`;
}

/** The prepared digit in gray, 10× enlarged, with attributions in red (+) and blue (−). */
function drawDigit(canvas, digit, attributions) {
  const g = canvas.getContext("2d");
  const cell = CANVAS / SIDE;
  const top = attributions ? Math.max(1e-12, ...attributions.map(Math.abs)) : 1;
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = Math.round((digit[i] * 0.6) | 0);
    g.fillStyle = `rgb(${v}, ${v}, ${v})`;
    const [x, y] = [(i % SIDE) * cell, Math.floor(i / SIDE) * cell];
    g.fillRect(x, y, cell, cell);
    if (attributions) {
      const a = attributions[i] / top;
      g.fillStyle =
        a > 0 ? `rgba(230, 30, 30, ${Math.min(1, a * 1.5)})` : `rgba(30, 90, 230, ${Math.min(1, -a * 1.5)})`;
      g.fillRect(x, y, cell, cell);
    }
  }
}
