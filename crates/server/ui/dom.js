// Small DOM helpers shared by the pages: element building, number formats, charts, errors.

/** Creates `<tag>` with attributes (`on*` functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A table from a header row and rows of cells. */
export function table(head, rows, attrs = {}) {
  return h(
    "table",
    attrs,
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        head.map((c) => h("th", {}, c)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((r) =>
        h(
          "tr",
          {},
          r.map((c) => h("td", {}, c)),
        ),
      ),
    ),
  );
}

/** A number with `digits` decimals, or "–" when absent. */
export function num(x, digits = 4) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  return x.toFixed(digits);
}

/** A share in percent. */
export function pct(x, digits = 1) {
  return x === undefined || x === null ? "–" : `${(100 * x).toFixed(digits)} %`;
}

/** Shows an error in the banner (or clears it with null). */
export function showError(e) {
  const box = document.getElementById("error");
  if (!e) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = e instanceof Error ? e.message : String(e);
}

/** Runs `fn`, showing any error in the banner instead of throwing. */
export async function guarded(fn) {
  try {
    return await fn();
  } catch (e) {
    if (e.name !== "AbortError") showError(e);
    return undefined;
  }
}

/** The page's resources (charts, timers, streams), released when the page is left. */
export class Lifetime {
  constructor() {
    this.charts = [];
    this.timers = [];
    this.controller = new AbortController();
  }
  get signal() {
    return this.controller.signal;
  }
  chart(canvas, config) {
    if (this.signal.aborted) throw new DOMException("the page was left", "AbortError");
    const c = new window.Chart(canvas, config);
    this.charts.push(c);
    return c;
  }
  /** Calls `fn` every `ms` while the page is shown, skipping a turn while the last call runs. */
  every(ms, fn) {
    let busy = false;
    const t = setInterval(async () => {
      if (busy || this.signal.aborted || document.hidden) return;
      busy = true;
      try {
        await fn();
      } finally {
        busy = false;
      }
    }, ms);
    this.timers.push(t);
    return t;
  }
  end() {
    this.controller.abort();
    this.timers.forEach(clearInterval);
    this.charts.forEach((c) => c.destroy());
  }
}

/** Colours of series, in order. */
export const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#e377c2"];

/** A line chart's configuration over x values `labels` with `series` ({label, data, axis}). */
export function lineChart(labels, series, { yTitle = "", y2Title = "", xTitle = "" } = {}) {
  const scales = {
    x: { title: { display: !!xTitle, text: xTitle } },
    y: { title: { display: !!yTitle, text: yTitle } },
  };
  if (series.some((s) => s.axis === "y2")) {
    scales.y2 = { position: "right", title: { display: !!y2Title, text: y2Title }, grid: { drawOnChartArea: false } };
  }
  return {
    type: "line",
    data: {
      labels,
      datasets: series.map((s, i) => ({
        label: s.label,
        data: s.data,
        yAxisID: s.axis || "y",
        borderColor: COLOURS[i % COLOURS.length],
        backgroundColor: COLOURS[i % COLOURS.length],
        borderDash: s.dashed ? [6, 4] : undefined,
        tension: 0.2,
        pointRadius: labels.length > 60 ? 0 : 3,
        spanGaps: true,
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales,
    },
  };
}
