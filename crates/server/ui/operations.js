// Operations: live request rate, latency percentiles and errors read from the server's own
// `/metrics`, and training jobs (list, submit, live progress from the job's event stream).

import { api, apiText, eventStream } from "./api.js";
import { COLOURS, fill, guarded, h, lineChart, num, pct, table } from "./dom.js";

/** Parses Prometheus text exposition into `{name, labels, value}` samples. */
export function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const l of text.split("\n")) {
    if (!l || l.startsWith("#")) continue;
    const m = line.exec(l);
    if (!m) continue;
    const labels = {};
    for (const [, k, v] of (m[2] || "").matchAll(label)) labels[k] = v.replace(/\\(.)/g, "$1");
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/**
 * The `q` quantile of a histogram from its cumulative buckets `[{le, count}]` (sorted by `le`),
 * interpolated linearly inside the bucket as Prometheus' `histogram_quantile` does.
 */
export function histogramQuantile(q, buckets) {
  const total = buckets.length ? buckets[buckets.length - 1].count : 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (const b of buckets) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      const inBucket = b.count - below;
      return inBucket > 0 ? lower + ((b.le - lower) * (rank - below)) / inBucket : b.le;
    }
    lower = b.le;
    below = b.count;
  }
  return lower;
}

/** The histograms the page reads, by the key it files them under. */
const HISTOGRAMS = {
  lathe_inference_request_duration_seconds_bucket: "request",
  lathe_generation_time_to_first_token_seconds_bucket: "ttft",
  lathe_generation_e2e_request_latency_seconds_bucket: "e2e",
};

/**
 * Per model: inference requests (chat and completions included), errors (status 400 and up)
 * and the cumulative buckets of each histogram, summed over the other labels.
 */
function perModel(samples) {
  const models = new Map();
  const of = (name) => {
    if (!models.has(name)) models.set(name, { requests: 0, errors: 0, histograms: {} });
    return models.get(name);
  };
  for (const s of samples) {
    const model = s.labels.model;
    if (model === undefined || model === "") continue;
    if (s.name === "lathe_inference_requests_total") {
      of(model).requests += s.value;
      if (Number(s.labels.code) >= 400) of(model).errors += s.value;
    } else if (HISTOGRAMS[s.name]) {
      const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
      const histograms = of(model).histograms;
      const b = (histograms[HISTOGRAMS[s.name]] ||= new Map());
      b.set(le, (b.get(le) || 0) + s.value);
    }
  }
  return models;
}

/** What happened between two scrapes of one model; a counter that went down restarted from 0. */
function delta(now, before) {
  const restarted = !before || now.requests < before.requests;
  const base = restarted ? { requests: 0, errors: 0, histograms: {} } : before;
  const histograms = {};
  for (const [key, buckets] of Object.entries(now.histograms)) {
    const earlier = base.histograms[key] || new Map();
    histograms[key] = [...buckets.entries()]
      .map(([le, count]) => ({ le, count: count - (earlier.get(le) || 0) }))
      .sort((x, y) => x.le - y.le);
  }
  return { requests: now.requests - base.requests, errors: now.errors - base.errors, histograms };
}

/** Points kept on the charts (2 minutes of 2-second scrapes). */
const WINDOW = 60;
/** Percentiles are taken over this many seconds, as `rate()` over a minute would. */
const PERCENTILE_SECONDS = 60;
/** Fewest requests in the window for which p50, p90 and p99 are shown. */
const ENOUGH = { 0.5: 1, 0.9: 10, 0.99: 100 };

/** `#/metrics`: rates over each 2-second scrape, percentiles over the last minute. */
export async function metricsPage(main, _args, life) {
  const rateCanvas = h("canvas");
  const latencyCanvas = h("canvas");
  const now = h("div", { id: "live-now" }, h("p", { class: "muted" }, "Waiting for two scrapes…"));
  const gauges = h("div", { id: "live-gauges" });
  fill(
    main,
    h("h1", {}, "Live metrics"),
    h(
      "p",
      { class: "muted" },
      "From this server's /metrics every 2 s. Requests and errors (status 400 and up) per second over each " +
        "scrape; latency percentiles over the last minute, shown once it holds enough requests (p90: 10, p99: " +
        "100). A streamed reply's request latency ends when its headers are sent: language models add the " +
        "time to the first token and to the last (TTFT, end to end).",
    ),
    h(
      "div",
      { class: "columns" },
      h("div", { class: "chart", id: "rate-chart" }, rateCanvas),
      h("div", { class: "chart", id: "latency-chart" }, latencyCanvas),
    ),
    now,
    gauges,
  );
  const charts = {
    rate: life.chart(rateCanvas, lineChart([], [], { yTitle: "requests/s", xTitle: "time" })),
    latency: life.chart(latencyCanvas, lineChart([], [], { yTitle: "ms (last minute)", xTitle: "time" })),
  };
  const scrapes = [];
  const scrape = async () => {
    const text = await apiText("/metrics", { signal: life.signal });
    const samples = parseMetrics(text);
    scrapes.push({ at: performance.now() / 1000, models: perModel(samples) });
    while (scrapes.length > 2 && scrapes[scrapes.length - 1].at - scrapes[1].at >= PERCENTILE_SECONDS) scrapes.shift();
    showGauges(gauges, samples);
    if (scrapes.length >= 2) update(scrapes, charts, now);
  };
  await scrape();
  life.every(2000, () => guarded(scrape));
}

function series(chart, label, axis = "y") {
  let ds = chart.data.datasets.find((d) => d.label === label);
  if (!ds) {
    const colour = COLOURS[chart.data.datasets.length % COLOURS.length];
    ds = {
      label,
      data: new Array(chart.data.labels.length).fill(null),
      borderColor: colour,
      backgroundColor: colour,
      yAxisID: axis,
      pointRadius: 0,
      tension: 0.2,
    };
    chart.data.datasets.push(ds);
  }
  return ds;
}

function push(chart, stamp, values) {
  chart.data.labels.push(stamp);
  for (const [label, value] of Object.entries(values)) series(chart, label).data.push(value);
  for (const ds of chart.data.datasets) {
    while (ds.data.length < chart.data.labels.length) ds.data.push(null);
    while (ds.data.length > WINDOW) ds.data.shift();
  }
  while (chart.data.labels.length > WINDOW) chart.data.labels.shift();
  chart.update("none");
}

/** A percentile in milliseconds of `buckets`, or null below the requests it needs. */
function percentileMs(q, buckets, requests) {
  if (!buckets || requests < ENOUGH[q]) return null;
  const seconds = histogramQuantile(q, buckets);
  return seconds === null ? null : 1000 * seconds;
}

function update(scrapes, { rate, latency }, now) {
  const [oldest, previous, latest] = [scrapes[0], scrapes[scrapes.length - 2], scrapes[scrapes.length - 1]];
  const seconds = latest.at - previous.at;
  const [rates, latencies, rows] = [{}, {}, []];
  for (const [model, totals] of latest.models) {
    const step = delta(totals, previous.models.get(model));
    const minute = delta(totals, oldest.models.get(model));
    const request = (q) => percentileMs(q, minute.histograms.request, minute.requests);
    const generation = (key) => {
      const buckets = minute.histograms[key];
      return buckets ? percentileMs(0.5, buckets, buckets[buckets.length - 1].count) : null;
    };
    rates[`${model} req/s`] = step.requests / seconds;
    rates[`${model} errors/s`] = step.errors / seconds;
    latencies[`${model} p50`] = request(0.5);
    latencies[`${model} p99`] = request(0.99);
    rows.push([
      model,
      num(step.requests / seconds, 1),
      num(step.errors / seconds, 2),
      String(minute.requests),
      minute.requests ? pct(minute.errors / minute.requests) : "–",
      num(request(0.5), 2),
      num(request(0.9), 2),
      num(request(0.99), 2),
      num(generation("ttft"), 1),
      num(generation("e2e"), 1),
    ]);
  }
  push(rate, new Date().toLocaleTimeString(), rates);
  push(latency, new Date().toLocaleTimeString(), latencies);
  const head = ["model", "req/s", "errors/s", "requests (minute)", "error share", "p50 ms", "p90 ms", "p99 ms"];
  fill(
    now,
    rows.length
      ? table([...head, "TTFT p50 ms", "end to end p50 ms"], rows, { id: "live-table" })
      : h("p", { class: "muted" }, "No inference requests yet."),
  );
}

function showGauges(box, samples) {
  const pick = (name) => samples.filter((s) => s.name === name);
  const drift = pick("lathe_drift_score").map((s) => {
    const alert = pick("lathe_drift_alert").find(
      (a) => a.labels.model === s.labels.model && a.labels.version === s.labels.version,
    );
    return [`${s.labels.model} v${s.labels.version}`, num(s.value, 3), alert && alert.value ? "ALERT" : "no alert"];
  });
  const queues = pick("lathe_inference_queue_size").map((s) => [
    `${s.labels.model} v${s.labels.version}`,
    String(s.value),
  ]);
  fill(
    box,
    drift.length ? [h("h2", {}, "Drift"), table(["version", "score", "state"], drift, { id: "drift-gauges" })] : null,
    queues.length ? [h("h2", {}, "Queues"), table(["version", "requests waiting"], queues)] : null,
  );
}

const MNIST_SPEC = {
  description: "MLP for MNIST",
  input: { shape: [28, 28], preprocessing: { kind: "rescale", divisor: 255 } },
  layers: [
    { type: "flatten" },
    { type: "dense", units: 128, activation: "relu" },
    { type: "dropout", rate: 0.2 },
    { type: "dense", units: 10, activation: "softmax" },
  ],
  compile: { optimizer: { type: "adam", lr: 0.001 }, loss: "sparse_categorical_crossentropy" },
  fit: { epochs: 5, batch_size: 32, shuffle: true, seed: 42 },
};

/** `#/jobs[/ID]`: the jobs, a form to submit one, and one job's live progress. */
export async function jobsPage(main, [id], life) {
  const list = h("div", { id: "job-list" });
  const watch = h("section", { id: "job-watch" });
  fill(
    main,
    h("h1", {}, "Training jobs"),
    h("div", { class: "columns" }, h("div", {}, list), await submitForm(life.signal)),
    watch,
  );
  const refresh = () => guarded(() => showJobs(list, life.signal));
  await refresh();
  life.every(3000, refresh);
  if (id) await watchJob(watch, id, life, refresh);
}

async function showJobs(box, signal) {
  const { jobs } = await api("/v1/jobs", { signal });
  const rows = jobs.map((j) => [
    h("a", { href: `#/jobs/${encodeURIComponent(j.id)}` }, j.id),
    j.request.name,
    j.request.dataset,
    h("span", { class: `state ${j.state}` }, j.state),
    j.version ? h("a", { href: `#/model/${encodeURIComponent(j.request.name)}/${j.version}` }, `v${j.version}`) : "–",
    j.progress && j.progress.epoch ? `epoch ${j.progress.epoch}` : "–",
    j.error || "",
  ]);
  fill(
    box,
    h("h2", {}, "Jobs"),
    rows.length
      ? table(["job", "model", "dataset", "state", "version", "progress", "error"], rows, { id: "jobs" })
      : h("p", { class: "muted" }, "No jobs yet."),
  );
}

async function submitForm(signal) {
  const { datasets } = await api("/v1/datasets", { signal });
  const name = h("input", { id: "job-name", required: true, placeholder: "mnist" });
  const dataset = h(
    "select",
    { id: "job-dataset", required: true },
    datasets.map((d) => h("option", { value: d.name }, d.name)),
  );
  const label = h("input", { id: "job-label-column", placeholder: "CSV: label column (optional)" });
  const promote = h("input", { id: "job-promote", placeholder: "label to promote to (optional)" });
  const spec = h("textarea", { id: "job-spec", rows: 14, spellcheck: "false" });
  spec.value = JSON.stringify(MNIST_SPEC, null, 2);
  const submit = async (ev) => {
    ev.preventDefault();
    await guarded(async () => {
      let parsed;
      try {
        parsed = JSON.parse(spec.value);
      } catch (e) {
        throw new Error(`spec: not valid JSON (${e.message})`);
      }
      const body = { name: name.value, dataset: dataset.value, spec: parsed };
      if (label.value) body.label_column = label.value;
      if (promote.value) body.auto_promote = { label: promote.value };
      const job = await api("/v1/jobs", { method: "POST", body });
      location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
    });
  };
  return h(
    "section",
    {},
    h("h2", {}, "Submit a job"),
    datasets.length
      ? h(
          "form",
          { id: "job-form", onsubmit: submit, class: "stacked" },
          h("label", {}, "Model name ", name),
          h("label", {}, "Dataset ", dataset),
          label,
          promote,
          h("label", {}, "Spec (JSON, as in a spec file)"),
          spec,
          h("button", { type: "submit" }, "Submit"),
        )
      : h("p", { class: "muted" }, "Upload a dataset first (`lathe datasets upload`)."),
  );
}

function stateText(job) {
  const version = job.version ? `: published version ${job.version}` : "";
  return `${job.state}${version}${job.error ? `: ${job.error}` : ""}`;
}

/** The loss and accuracy chart of a job, one point per epoch. */
function epochChart(canvas, life) {
  const series = [
    { label: "loss", data: [] },
    { label: "accuracy", data: [], axis: "y2" },
  ];
  return life.chart(canvas, lineChart([], series, { xTitle: "epoch", yTitle: "loss", y2Title: "accuracy" }));
}

/**
 * One job, live: its state, a progress bar over the planned epochs, loss and accuracy per epoch
 * and its log, from the job's event stream. A finished job shows its published version's
 * history; a running one starts from the epochs already stored in the snapshot.
 */
async function watchJob(box, id, life, changed) {
  const bar = h("progress", { id: "job-progress", max: 1, value: 0 });
  const status = h("p", { id: "job-status" }, "Connecting…");
  const log = h("pre", { class: "log", id: "job-log" });
  const canvas = h("canvas");
  fill(box, h("h2", {}, `Job ${id}`), status, bar, h("div", { class: "chart short" }, canvas), log);
  const chart = epochChart(canvas, life);
  let epochs = 0;
  const snapshot = async (job) => {
    status.textContent = `${job.request.name} on ${job.request.dataset}: ${stateText(job)}`;
    if (job.version) {
      bar.value = 1;
      const m = await api(`/v1/models/${encodeURIComponent(job.request.name)}/versions/${job.version}/manifest`, {
        signal: life.signal,
      });
      (m.history || []).forEach((r) => addEpoch(chart, r));
    } else if (job.progress && job.progress.epoch) {
      addEpoch(chart, job.progress);
    }
  };
  const onEvent = (name, data) => {
    if (name === "job") {
      guarded(() => snapshot(data));
    } else if (name === "progress" && data.event === "epoch_start") {
      epochs = data.epochs;
      status.textContent = `epoch ${data.epoch} of ${data.epochs}`;
    } else if (name === "progress" && data.event === "progress") {
      bar.value = (data.epoch - 1 + data.seen / data.samples) / (epochs || data.epoch);
      const of = epochs ? ` of ${epochs}` : "";
      status.textContent = `epoch ${data.epoch}${of}: ${data.seen} of ${data.samples} samples, loss ${num(data.loss, 4)}`;
    } else if (name === "epoch") {
      addEpoch(chart, data);
    } else if (name === "log") {
      log.textContent += `${typeof data === "string" ? data : data.message || JSON.stringify(data)}\n`;
    } else if (name === "state") {
      status.textContent = stateText(data);
      if (data.state === "succeeded") bar.value = 1;
      changed();
    }
  };
  await eventStream(`/v1/jobs/${encodeURIComponent(id)}/events`, { signal: life.signal, onEvent });
}

/** Adds an epoch's point unless the chart already has it (an epoch in the snapshot and the stream). */
function addEpoch(chart, r) {
  if (chart.data.labels.includes(r.epoch)) return;
  chart.data.labels.push(r.epoch);
  chart.data.datasets[0].data.push(r.loss);
  chart.data.datasets[1].data.push(r.accuracy === undefined ? null : r.accuracy);
  chart.update("none");
}
