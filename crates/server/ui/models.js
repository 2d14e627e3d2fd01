// Models and versions: the list, one model's versions with labels and traffic (editable with an
// admin key), and one version's metrics, lineage, training curves, confusion matrix and drift.

import { api, apiTagged, catalog, newest } from "./api.js";
import { fill, guarded, h, lineChart, num, pct, table } from "./dom.js";

const enc = encodeURIComponent;

function headline(v) {
  if (!v) return "–";
  if (v.accuracy !== undefined && v.accuracy !== null) return `accuracy ${pct(v.accuracy, 2)}`;
  if (v.r2 !== undefined && v.r2 !== null) return `R² ${num(v.r2, 3)}`;
  return "–";
}

function trafficText(traffic) {
  if (!traffic) return "no policy: the default label, else the newest ready version";
  const total = traffic.routes.reduce((s, r) => s + r.weight, 0) || 1;
  const parts = traffic.routes.map((r) => `${r.target}: ${Math.round((100 * r.weight) / total)} %`);
  if (traffic.shadow) parts.push(`shadow ${traffic.shadow.target} ${traffic.shadow.percent} %`);
  return parts.join(", ");
}

/** `#/models`: every model with its latest version, labels and traffic. */
export async function modelsPage(main, _args, life) {
  const { models, complete } = await catalog(life.signal);
  const rows = models.map((m) => {
    const v = newest(m);
    const labels = Object.entries(m.labels || {})
      .map(([l, n]) => `${l} → ${n}`)
      .join(", ");
    return [
      h("a", { href: `#/model/${enc(m.name)}`, class: "model-link" }, m.name),
      v ? v.kind : "–",
      String(m.versions.length),
      v ? String(v.version) : "–",
      v && v.state ? v.state : "–",
      headline(v),
      complete ? labels || "–" : "(admin key)",
      complete ? trafficText(m.traffic) : "(admin key)",
    ];
  });
  fill(
    main,
    h("h1", {}, "Models"),
    complete ? null : h("p", { class: "note" }, "Versions, labels and traffic are listed with an admin key."),
    models.length
      ? table(["model", "kind", "versions", "latest", "state", "test metric", "labels", "traffic"], rows, {
          id: "model-list",
        })
      : h("p", {}, "No models yet: train one (`lathe train`), submit a job, or import one."),
  );
}

/** `#/model/NAME[/VERSION]`: versions, labels, traffic, and one version in detail. */
export async function modelPage(main, [name, wanted], life) {
  const { models, complete } = await catalog(life.signal);
  const model = models.find((m) => m.name === name);
  if (!model) throw new Error(`no model named ${name}`);
  const version = wanted ? Number(wanted) : newest(model) && newest(model).version;
  const detail = h("section", { id: "version-detail" });
  fill(
    main,
    h("h1", {}, `${name} `, h("span", { class: "muted" }, newest(model) ? newest(model).kind : "")),
    versionsTable(model, version, complete),
    complete
      ? editors(model, (await apiTagged(`/v1/models/${enc(name)}/traffic`, { signal: life.signal })).tag)
      : h("p", { class: "note" }, "Labels and traffic are shown and edited with an admin key."),
    detail,
  );
  const entry = model.versions.find((v) => v.version === version);
  if (version) await versionDetail(detail, name, version, entry && entry.state, life);
}

function versionsTable(model, selected, complete) {
  const labelsOf = (v) =>
    Object.entries(model.labels || {})
      .filter(([, n]) => n === v)
      .map(([l]) => l)
      .join(", ");
  const rows = model.versions.map((v) => [
    h(
      "a",
      { href: `#/model/${enc(model.name)}/${v.version}`, class: v.version === selected ? "selected" : "" },
      `v${v.version}`,
    ),
    v.created_at || "–",
    v.state || "–",
    v.accuracy !== undefined ? pct(v.accuracy, 2) : "–",
    v.macro_f1 !== undefined ? num(v.macro_f1, 4) : "–",
    v.r2 !== undefined ? num(v.r2, 4) : "–",
    v.job ? v.job.job : "–",
    complete ? labelsOf(v.version) || "–" : "–",
  ]);
  return h(
    "section",
    {},
    h("h2", {}, "Versions"),
    table(["version", "created", "state", "accuracy", "macro F1", "R²", "job", "labels"], rows, { id: "versions" }),
  );
}

function targetOptions(model, chosen) {
  const targets = [...model.versions.map((v) => String(v.version)), ...Object.keys(model.labels || {})];
  return targets.map((t) => h("option", { value: t, selected: t === chosen }, t));
}

/**
 * The label and traffic editors. Each change carries `If-Match` with the value this page read
 * (a label's version, the policy's tag), so that a change someone made meanwhile is not
 * overwritten: the server answers 409 and the banner says what the value is now.
 */
function editors(model, trafficTag) {
  return h("div", { class: "columns" }, labelEditor(model), trafficEditor(model, trafficTag));
}

function labelTag(model, label) {
  const v = (model.labels || {})[label];
  return v === undefined ? '"none"' : `"${v}"`;
}

function labelEditor(model) {
  const nameInput = h("input", { id: "label-name", placeholder: "stable", pattern: "[A-Za-z0-9_]+", required: true });
  const versionSelect = h(
    "select",
    { id: "label-version" },
    model.versions.map((v) => h("option", { value: v.version }, `v${v.version}`)),
  );
  const save = async (ev) => {
    ev.preventDefault();
    await guarded(async () => {
      await api(`/v1/models/${enc(model.name)}/labels/${enc(nameInput.value)}`, {
        ifMatch: labelTag(model, nameInput.value),
        method: "PUT",
        body: { version: Number(versionSelect.value) },
      });
      location.reload();
    });
  };
  const remove = (label) => () =>
    guarded(async () => {
      await api(`/v1/models/${enc(model.name)}/labels/${enc(label)}`, {
        method: "DELETE",
        ifMatch: labelTag(model, label),
      });
      location.reload();
    });
  const rows = Object.entries(model.labels || {}).map(([l, v]) => [
    l,
    `v${v}`,
    h("button", { type: "button", class: "small", onclick: remove(l) }, "remove"),
  ]);
  return h(
    "section",
    {},
    h("h2", {}, "Labels"),
    rows.length ? table(["label", "version", ""], rows) : h("p", { class: "muted" }, "No labels."),
    h(
      "form",
      { onsubmit: save, class: "inline" },
      nameInput,
      " → ",
      versionSelect,
      h("button", { type: "submit" }, "Set label"),
    ),
  );
}

function trafficEditor(model, tag) {
  const routes = h("div", { id: "traffic-routes" });
  const addRoute = (target, weight) => {
    const row = h(
      "div",
      { class: "route" },
      h("select", { class: "route-target" }, targetOptions(model, target)),
      h("input", { class: "route-weight", type: "number", min: 0, step: 1, value: weight }),
      h("button", { type: "button", class: "small", onclick: () => row.remove() }, "×"),
    );
    routes.append(row);
  };
  const current = model.traffic ? model.traffic.routes : [];
  current.forEach((r) => addRoute(r.target, r.weight));
  if (!current.length && model.versions.length) addRoute(String(newest(model).version), 100);
  const shadowTarget = h(
    "select",
    { id: "shadow-target" },
    h("option", { value: "" }, "none"),
    targetOptions(model, model.traffic && model.traffic.shadow ? model.traffic.shadow.target : ""),
  );
  const shadowPercent = h("input", {
    id: "shadow-percent",
    type: "number",
    min: 0,
    max: 100,
    step: "any",
    value: model.traffic && model.traffic.shadow ? model.traffic.shadow.percent : 0,
  });
  const save = (ev) => {
    ev.preventDefault();
    const body = {
      routes: [...routes.querySelectorAll(".route")].map((r) => ({
        target: r.querySelector(".route-target").value,
        weight: Number(r.querySelector(".route-weight").value),
      })),
    };
    if (shadowTarget.value) body.shadow = { target: shadowTarget.value, percent: Number(shadowPercent.value) };
    guarded(async () => {
      await api(`/v1/models/${enc(model.name)}/traffic`, { method: "PUT", body, ifMatch: tag });
      location.reload();
    });
  };
  const clear = () =>
    guarded(async () => {
      await api(`/v1/models/${enc(model.name)}/traffic`, { method: "DELETE", ifMatch: tag });
      location.reload();
    });
  return h(
    "section",
    {},
    h("h2", {}, "Traffic split"),
    h("p", { id: "traffic-now" }, "Requests naming no version: ", trafficText(model.traffic)),
    h(
      "form",
      { id: "traffic-form", onsubmit: save },
      routes,
      h(
        "button",
        { type: "button", class: "small", onclick: () => addRoute(String(newest(model).version), 0) },
        "+ route",
      ),
      h("div", { class: "inline" }, "Shadow copies to ", shadowTarget, shadowPercent, " %"),
      h(
        "div",
        { class: "inline" },
        h("button", { type: "submit", id: "traffic-save" }, "Save split"),
        h("button", { type: "button", onclick: clear }, "Clear policy"),
      ),
    ),
  );
}

async function versionDetail(section, name, version, state, life) {
  const m = await api(`/v1/models/${enc(name)}/versions/${version}/manifest`, { signal: life.signal });
  const parts = [h("h2", {}, `Version ${version}`)];
  parts.push(h("div", { class: "columns" }, metricsBox(m), lineageBox(m)));
  const curves = h("div", { class: "chart", id: "training-curves" }, h("canvas"));
  if (m.history && m.history.length) parts.push(h("h3", {}, "Training curves"), curves);
  if (m.metrics && m.metrics.confusion && m.metrics.confusion.length) {
    parts.push(h("h3", {}, "Confusion matrix (test split)"), confusionMatrix(m.metrics.confusion, m.class_names || []));
  }
  const drift = h("div", { id: "drift" });
  parts.push(h("h3", {}, "Drift"), drift);
  fill(section, parts);
  if (m.history && m.history.length) drawCurves(curves.querySelector("canvas"), m.history, life);
  if (state && state !== "READY") {
    fill(
      drift,
      h(
        "p",
        { class: "muted" },
        `Version ${version} is ${state}, not served: drift is measured on the rows a served version answers.`,
      ),
    );
    return;
  }
  const refresh = () => guarded(() => showDrift(drift, name, version, life));
  await refresh();
  life.every(5000, refresh);
}

function metricsBox(m) {
  const e = m.metrics || {};
  // Imported models carry an empty evaluation (no samples): nothing to show.
  const rows = Object.entries(e.samples ? e : {})
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [k, num(v, 4)]);
  for (const t of e.per_target || [])
    rows.push([`${t.target}`, `MAE ${num(t.mae, 4)} · RMSE ${num(t.rmse, 4)} · R² ${num(t.r2, 4)}`]);
  return h(
    "section",
    {},
    h("h3", {}, "Test metrics"),
    rows.length
      ? table(["metric", "value"], rows, { id: "metrics" })
      : h("p", { class: "muted" }, "No evaluation in the manifest."),
  );
}

function lineageBox(m) {
  const d = m.data || {};
  // Imported models carry empty training fields (no samples, no epochs): those rows are left out.
  const trained = (d.train_samples || 0) > 0;
  const t = trained ? m.training || {} : {};
  const job = m.job || {};
  const rows = [
    ["kind", m.kind],
    ["created", m.created_at],
    ["Lathe", m.lathe_version],
    ["data", d.source],
    ["format", d.format],
    ["fingerprint", d.fingerprint ? d.fingerprint.slice(0, 16) + "…" : undefined],
    [
      "samples (train / val / test)",
      trained ? `${d.train_samples} / ${d.validation_samples} / ${d.test_samples}` : undefined,
    ],
    ["seed", trained ? m.seed : undefined],
    [
      "job",
      job.job
        ? `${job.job} (dataset ${job.dataset}${job.parent_version ? `, from v${job.parent_version}` : ""})`
        : undefined,
    ],
    [
      "epochs",
      t.epochs_run !== undefined
        ? `${t.epochs_run} (best ${t.best_epoch}${t.stopped_early ? ", stopped early" : ""})`
        : undefined,
    ],
    ["fit time", t.fit_seconds !== undefined ? `${num(t.fit_seconds, 1)} s` : undefined],
    ["source", m.spec && m.spec.source],
  ].filter(([, v]) => v !== undefined && v !== null && v !== "");
  return h(
    "section",
    {},
    h("h3", {}, "Lineage"),
    table(
      ["", ""],
      rows.map(([k, v]) => [k, String(v)]),
      { id: "lineage" },
    ),
  );
}

function drawCurves(canvas, history, life) {
  const epochs = history.map((r) => r.epoch);
  const series = [{ label: "loss", data: history.map((r) => r.loss) }];
  if (history.some((r) => r.val_loss !== undefined))
    series.push({ label: "validation loss", data: history.map((r) => r.val_loss), dashed: true });
  if (history.some((r) => r.accuracy !== undefined))
    series.push({ label: "accuracy", data: history.map((r) => r.accuracy), axis: "y2" });
  if (history.some((r) => r.val_accuracy !== undefined)) {
    series.push({ label: "validation accuracy", data: history.map((r) => r.val_accuracy), axis: "y2", dashed: true });
  }
  life.chart(canvas, lineChart(epochs, series, { xTitle: "epoch", yTitle: "loss", y2Title: "accuracy" }));
}

/** A heatmap of `confusion[true][predicted]`, each row shaded by its share of the true class. */
export function confusionMatrix(confusion, classNames) {
  const label = (i) => classNames[i] || String(i);
  const head = h(
    "tr",
    {},
    h("th", { class: "corner" }, "true ↓ predicted →"),
    confusion.map((_, j) => h("th", {}, label(j))),
  );
  const rows = confusion.map((row, i) => {
    const total = row.reduce((s, x) => s + x, 0) || 1;
    return h(
      "tr",
      {},
      h("th", {}, label(i)),
      row.map((count, j) => {
        const share = count / total;
        const hue = i === j ? "31, 119, 180" : "214, 39, 40";
        const cell = h(
          "td",
          { title: `true ${label(i)}, predicted ${label(j)}: ${count} (${pct(share)})` },
          String(count),
        );
        cell.style.background = `rgba(${hue}, ${Math.min(1, share * (i === j ? 1 : 4)).toFixed(3)})`;
        if (share > 0.5) cell.style.color = "#fff";
        return cell;
      }),
    );
  });
  return h("table", { class: "confusion", id: "confusion-matrix" }, h("thead", {}, head), h("tbody", {}, rows));
}

async function showDrift(box, name, version, life) {
  const d = await api(`/v1/models/${enc(name)}/versions/${version}/monitoring`, { signal: life.signal });
  if (d.statistics === false || d.features === undefined) {
    fill(box, h("p", { class: "muted" }, d.message || "Drift is not measured."));
    return;
  }
  const state = d.alert
    ? h("span", { class: "alert", id: "drift-alert" }, "ALERT")
    : h("span", { class: "ok", id: "drift-alert" }, "no alert");
  const summary = h(
    "p",
    {},
    state,
    ` score ${num(d.score, 3)} (mean PSI; alert above ${d.psi_threshold} with at least ${d.min_rows} rows), `,
    `${d.rows} of ${d.window_rows} rows in the window, ${d.drifted_features} of ${d.feature_count} features drifted`,
    d.outputs ? `, outputs' PSI ${num(d.outputs.psi, 3)}` : "",
  );
  const rows = d.features.map((f) => [
    f.name,
    num(f.psi, 3),
    num(f.ks, 3),
    num(f.training_mean, 3),
    num(f.live_mean, 3),
  ]);
  const bars = h("div", { class: "chart short" }, h("canvas"));
  fill(
    box,
    summary,
    d.rows ? bars : null,
    rows.length ? table(["feature", "PSI", "KS", "training mean", "live mean"], rows, { id: "drift-features" }) : null,
  );
  if (d.rows) {
    life.charts.filter((c) => !c.canvas || !c.canvas.isConnected).forEach((c) => c.destroy());
    life.charts = life.charts.filter((c) => c.canvas && c.canvas.isConnected);
    life.chart(bars.querySelector("canvas"), {
      type: "bar",
      data: {
        labels: d.features.map((f) => f.name),
        datasets: [
          {
            label: "PSI",
            data: d.features.map((f) => f.psi),
            backgroundColor: d.features.map((f) => (f.psi > d.psi_threshold ? "#d62728" : "#1f77b4")),
          },
        ],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        plugins: { legend: { display: false } },
      },
    });
  }
}
