// learnct offline dashboard: renders window.LEARNCT_DASHBOARD (assets/data.js) with plotly.js.
"use strict";
(function () {
  const DATA = window.LEARNCT_DASHBOARD;
  const PLOT_CONFIG = { responsive: true, displaylogo: false };
  const runs = DATA.runs;
  const selected = new Set();
  const sortState = { key: "date", dir: -1 };

  // ---- helpers -------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function fmt(value, digits) {
    return value === null || value === undefined ? "-" : Number(value).toFixed(digits);
  }
  function cellText(value) {
    const number = Number(value);
    if (value === "" || !Number.isFinite(number) || !/[.eE]/.test(value)) return value;
    return String(Number(number.toPrecision(6)));
  }
  function runLabel(run) {
    return `${run.experiment} ${run.date || ""}`.trim() + (run.id.includes("/multiruns/") ? ` #${run.id.split("/").pop()}` : "");
  }
  function table(columns, rows, numeric) {
    const head = el("tr", {}, ...columns.map((c) => el("th", { text: c })));
    const body = rows.map((row) =>
      el("tr", {}, ...row.map((v, i) => el("td", { class: numeric && numeric[i] ? "num" : null, text: v })))
    );
    return el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, head), el("tbody", {}, ...body)));
  }
  function problemList(problems) {
    if (!problems || !problems.length) return null;
    return el("div", { class: "problem-box" }, el("ul", { class: "problems" }, ...problems.map((p) => el("li", { text: p }))));
  }
  function figures(images) {
    const items = Object.entries(images || {});
    if (!items.length) return null;
    return el("div", { class: "figures" },
      ...items.map(([label, src]) => el("figure", {}, el("img", { src, alt: label, loading: "eager" }), el("figcaption", { text: label }))));
  }
  function plotDiv(cls) {
    return el("div", { class: cls || "plot" });
  }

  // ---- runs table ----------------------------------------------------------------------
  const testSets = [];
  for (const run of runs) for (const t of run.tests) if (!testSets.includes(t.test_set)) testSets.push(t.test_set);
  const testOf = (run, set) => run.tests.find((t) => t.test_set === set) || {};
  const meanMs = (run) => {
    const ms = run.tests.map((t) => t.ms_per_slice).filter((v) => v !== null && v !== undefined);
    return ms.length ? ms.reduce((a, b) => a + b, 0) / ms.length : null;
  };
  const short = (v) => (typeof v === "number" && !Number.isInteger(v) ? Number(v.toPrecision(4)) : v);
  const hparamText = (run) => Object.entries(run.hparams).map(([k, v]) => `${k}=${short(v)}`).join(" ");
  // the table shows only the hyperparameters that differ between the runs that have them (all
  // of a run's are in its tooltip and its details), so that the rows stay one or two lines
  const varying = new Set();
  const seenValues = {};
  for (const run of runs) for (const [k, v] of Object.entries(run.hparams)) (seenValues[k] ||= new Set()).add(JSON.stringify(v));
  for (const [k, values] of Object.entries(seenValues)) if (values.size > 1) varying.add(k);
  const hparamShort = (run) => Object.entries(run.hparams).filter(([k]) => varying.has(k)).map(([k, v]) => `${k}=${short(v)}`).join(" ");
  const hasCurves = (run) => Object.keys(run.curves).length > 0;

  const columns = [
    { key: "experiment", label: "experiment", value: (r) => r.experiment },
    { key: "method", label: "method", value: (r) => r.method },
    { key: "physics", label: "physics", value: (r) => r.physics },
    { key: "hparams", label: "differing hyperparameters", value: hparamShort, cls: "hparams" },
    { key: "val_psnr_best", label: "val/psnr best", value: (r) => r.val_psnr_best, num: 2 },
  ];
  for (const set of testSets) {
    const images = (r) => testOf(r, set).n_images;
    columns.push({ key: `psnr:${set}`, label: `PSNR ${set}`, value: (r) => testOf(r, set).psnr, num: 2, images });
    columns.push({ key: `ssim:${set}`, label: `SSIM ${set}`, value: (r) => testOf(r, set).ssim, num: 3, images });
  }
  columns.push(
    { key: "ms", label: "ms/slice", value: meanMs, num: 1 },
    { key: "steps", label: "steps", value: (r) => r.steps, num: 0 },
    { key: "date", label: "date", value: (r) => r.date },
    { key: "commit", label: "commit", value: (r) => r.commit },
    { key: "status", label: "status", value: (r) => r.problems.length, num: -1 }
  );

  function compare(a, b) {
    const col = columns.find((c) => c.key === sortState.key);
    const va = col.value(a), vb = col.value(b);
    const na = va === null || va === undefined || va === "", nb = vb === null || vb === undefined || vb === "";
    if (na || nb) return na - nb; // missing values last in either direction
    const order = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
    return order * sortState.dir;
  }

  function renderRunsHead() {
    const thead = document.querySelector("#runs-table thead");
    const row = el("tr", {}, el("th", { title: "overlay in the curves plot" }, "✓"));
    for (const col of columns) {
      // headings may wrap after an underscore too (test sets such as shepp_logan)
      const th = el("th", { class: "sortable", "data-key": col.key, text: col.label.replace(/_/g, "_\u200b") });
      if (col.key === sortState.key) th.setAttribute("aria-sort", sortState.dir > 0 ? "ascending" : "descending");
      th.addEventListener("click", () => {
        sortState.dir = sortState.key === col.key ? -sortState.dir : col.num !== undefined ? -1 : 1;
        sortState.key = col.key;
        renderRunsHead();
        renderRunsBody();
      });
      row.append(th);
    }
    thead.replaceChildren(row);
  }

  function renderRunsBody() {
    const tokens = document.getElementById("run-filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    const shown = runs.filter((run) => {
      const text = [run.id, runLabel(run), run.sweep, hparamText(run), ...columns.map((c) => c.value(run))].join(" ").toLowerCase();
      // a token "^<prefix>" matches the start of the run's folder (a sweep's own jobs)
      return tokens.every((t) => (t.startsWith("^") ? run.id.toLowerCase().startsWith(t.slice(1)) : text.includes(t)));
    });
    shown.sort(compare);
    const rows = shown.map((run) => {
      const box = el("input", { type: "checkbox", "aria-label": `overlay ${run.id}` });
      box.checked = selected.has(run.id);
      if (!hasCurves(run)) {
        box.disabled = true;
        box.title = "no curves logged";
      }
      box.addEventListener("click", (event) => event.stopPropagation());
      box.addEventListener("change", () => {
        box.checked ? selected.add(run.id) : selected.delete(run.id);
        renderOverlay();
      });
      const tr = el("tr", { "data-run-id": run.id, class: run.problems.length ? "has-problems" : null }, el("td", {}, box));
      for (const col of columns) {
        const v = col.value(run);
        let text;
        if (col.key === "status") text = run.problems.length ? `⚠ ${run.problems.length} problem${run.problems.length > 1 ? "s" : ""}` : "ok";
        else if (col.num !== undefined) text = fmt(v, col.num);
        else text = v === null || v === undefined || v === "" ? "-" : String(v);
        if (col.key === "method") text = text.replace(/(?<=[a-z])(?=[A-Z])/g, "\u200b"); // may wrap at capitals
        const td = el("td", { "data-col": col.key, class: col.cls || (col.num !== undefined ? "num" : col.key), text });
        if (col.key === "status" && run.problems.length) td.title = run.problems.join("\n");
        if (col.key === "hparams") td.title = hparamText(run);
        if (col.images && col.images(run) != null) {
          // the number of test images in the tooltip; fewer than the column's most: marked
          const n = col.images(run), most = (col.most ??= Math.max(...runs.map((r) => col.images(r) || 0)));
          td.title = `${n} test images` + (n < most ? ` (other runs: up to ${most}; not comparable)` : "");
          if (n < most) td.classList.add("few-images");
        }
        tr.append(td);
      }
      tr.addEventListener("click", () => showRun(run.id));
      return tr;
    });
    document.querySelector("#runs-table tbody").replaceChildren(...rows);
    document.getElementById("run-count").textContent = `${shown.length} of ${runs.length} runs`;
    return shown;
  }

  // ---- overlaid curves -----------------------------------------------------------------
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.curves)))].sort((a, b) => {
    const rank = (m) => (m === "val/psnr" ? 0 : m.startsWith("val/") ? 1 : 2);
    return rank(a) - rank(b) || a.localeCompare(b);
  });
  const metricSelect = document.getElementById("overlay-metric");
  for (const m of metrics) metricSelect.append(el("option", { value: m, text: m }));
  metricSelect.addEventListener("change", renderOverlay);

  function renderOverlay() {
    const div = document.getElementById("overlay-plot");
    const metric = metricSelect.value;
    const traces = runs
      .filter((r) => selected.has(r.id) && r.curves[metric])
      .map((r) => ({ x: r.curves[metric].step, y: r.curves[metric].value, mode: "lines+markers", name: runLabel(r) }));
    const ticked = runs.filter((r) => selected.has(r.id));
    const message = !metric ? "No run has CSV metrics yet: no curves logged."
      : !ticked.length ? "Tick runs in the table to overlay their curves."
      : !traces.length ? `No curves logged: none of the ticked runs logged ${metric}.` : null;
    if (message) {
      Plotly.purge(div);
      div.replaceChildren(el("p", { class: "muted no-curves", text: message }));
      return;
    }
    div.replaceChildren();
    Plotly.react(div, traces, {
      title: { text: traces.length ? metric : `${metric}: tick runs that logged it` },
      xaxis: { title: { text: "step" } },
      yaxis: { title: { text: metric }, type: metric.includes("loss") ? "log" : "linear" },
      margin: { t: 40, r: 20, b: 90 },
      legend: { orientation: "h", y: -0.25 },
    }, PLOT_CONFIG);
  }

  // ---- one run -------------------------------------------------------------------------
  function showRun(id) {
    const run = runs.find((r) => r.id === id);
    for (const tr of document.querySelectorAll("#runs-table tbody tr")) tr.classList.toggle("current", tr.dataset.runId === id);
    const body = document.getElementById("run-detail-body");
    const facts = [
      ["folder", run.path], ["experiment", run.experiment], ["method", run.method], ["physics", run.physics],
      ["sweep", run.sweep], ["date", run.date], ["commit", run.commit], ["steps", run.steps],
      ["overrides", run.overrides.join(" ")], ["hyperparameters", hparamText(run)],
    ].filter(([, v]) => v !== null && v !== undefined && v !== "");
    const dl = el("dl", { class: "facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    const parts = [el("h3", { text: runLabel(run) }), problemList(run.problems), dl];
    if (run.tests.length) {
      parts.push(el("h3", { text: "Test results" }), table(
        ["test set", "images", "PSNR", "SSIM", "ms/slice", "FBP PSNR", "FBP SSIM"],
        run.tests.map((t) => [t.test_set, fmt(t.n_images, 0), fmt(t.psnr, 2), fmt(t.ssim, 3), fmt(t.ms_per_slice, 1), fmt(t.fbp_psnr, 2), fmt(t.fbp_ssim, 3)]),
        [false, true, true, true, true, true, true]));
    }
    const names = Object.keys(run.curves).sort();
    const grid = el("div", { class: "plot-grid" });
    parts.push(el("h3", { text: "Training and validation curves" }),
      names.length ? grid : el("p", { class: "muted no-curves", text: "No curves logged (no csv/version_*/metrics.csv in the run folder)." }));
    if (run.panels.length) parts.push(el("h3", { text: "Validation images over steps" }), panelSlider(run.panels));
    if (Object.keys(run.images).length) parts.push(el("h3", { text: "Figures" }), figures(run.images));
    if (run.checkpoints.length) {
      parts.push(el("h3", { text: "Checkpoints" }), table(
        ["file", "MB", "run's step", "weights' steps", "epoch", "method", "geometry", "best score"],
        run.checkpoints.map((c) => [c.file, fmt(c.size_mb, 1), c.global_step ?? "-", c.trained_steps ?? "-", c.epoch ?? "-", c.method || "-",
          c.geometry || "-", c.best_score === undefined ? "-" : `${c.monitor} ${fmt(c.best_score, 3)}`]),
        [false, true, true, true, true, false, false, true]));
    }
    if (run.wandb.length) {
      parts.push(el("h3", { text: "W&B offline runs" }), el("p", {},
        "Upload them to your W&B server with ", el("code", { text: `wandb sync ${run.path}/${run.wandb[0]}` }), ` (${run.wandb.length} in this folder).`));
    }
    if (run.config) parts.push(el("details", {}, el("summary", { text: "Resolved config" }), el("pre", { text: JSON.stringify(run.config, null, 2) })));
    body.replaceChildren(...parts.filter(Boolean));
    for (const name of names) {
      const div = plotDiv();
      grid.append(div);
      const c = run.curves[name];
      Plotly.newPlot(div, [{ x: c.step, y: c.value, mode: c.step.length > 30 ? "lines" : "lines+markers", name }], {
        title: { text: name, font: { size: 13 }, x: 0.02, xanchor: "left" },
        xaxis: { title: { text: "step" } },
        yaxis: { type: name.includes("loss") ? "log" : "linear" },
        margin: { t: 36, r: 16, l: 56, b: 40 },
      }, PLOT_CONFIG);
    }
  }

  // the validation panels a run saved (truth, FBP, reconstruction, error), one per validation,
  // behind a step slider that starts at the latest
  function panelSlider(panels) {
    const slider = el("input", { type: "range", min: 0, max: panels.length - 1, step: 1, value: panels.length - 1, "aria-label": "validation step" });
    const label = el("span", { class: "panel-step" });
    const img = el("img", { alt: "validation panel", loading: "eager" });
    const show = () => {
      const p = panels[Number(slider.value)];
      label.textContent = `step ${p.step} (epoch ${p.epoch}), ${Number(slider.value) + 1} of ${panels.length}`;
      img.src = p.src;
    };
    slider.addEventListener("input", show);
    show();
    return el("div", { class: "panels" }, el("div", { class: "toolbar" }, slider, label), el("figure", {}, img));
  }

  // ---- sweeps --------------------------------------------------------------------------
  function renderSweeps() {
    const body = document.getElementById("sweeps-body");
    if (!DATA.sweeps.length) {
      body.replaceChildren(el("p", { class: "muted", text: "No Optuna study databases (logs/<experiment>/optuna_<search>.db): run make sweep EXP=<name> SEARCH=<search>." }));
      return;
    }
    for (const sweep of DATA.sweeps) {
      const best = Object.entries(sweep.best_params).map(([k, v]) => `${k}=${short(v)}`).join(" ");
      const card = el("div", { class: "card sweep", "data-study": sweep.study },
        el("h3", { text: `${sweep.study}` }, " ", el("span", { class: "muted", text: `(${sweep.storage})` })),
        el("dl", { class: "facts" },
          el("dt", { text: "trials" }), el("dd", { text: `${sweep.n_complete} complete of ${sweep.n_trials}` }),
          el("dt", { text: "direction" }), el("dd", { text: sweep.direction }),
          el("dt", { text: "best value" }), el("dd", { text: fmt(sweep.best_value, 3) }),
          el("dt", { text: "best parameters" }), el("dd", { text: best || "-" })),
        problemList(sweep.problems) || "");
      // its jobs: of this study name, under the folder of its database (logs/<task>/), as
      // studies of one name may live in several tasks' databases
      const task = sweep.storage.includes("/") ? sweep.storage.slice(0, sweep.storage.lastIndexOf("/") + 1) : "";
      const jobs = runs.filter((r) => r.sweep === sweep.study && r.id.startsWith(task)).length;
      if (jobs) {
        const show = el("button", { type: "button", text: `show its ${jobs} job folders in the runs table` });
        show.addEventListener("click", () => {
          document.getElementById("run-filter").value = `^${task}multiruns/ ${sweep.study}`;
          renderRunsBody();
          document.getElementById("runs").scrollIntoView();
        });
        card.append(show);
      }
      const grid = el("div", { class: "plot-grid sweep-plots" });
      card.append(grid);
      const paramNames = [...new Set(sweep.trials.flatMap((t) => Object.keys(t.params)))];
      card.append(el("details", {}, el("summary", { text: "Trials" }), table(
        ["trial", "state", "value", ...paramNames, "started"],
        sweep.trials.map((t) => [t.number, t.state, fmt(t.value, 3), ...paramNames.map((p) => (p in t.params ? short(t.params[p]) : "-")), t.start || "-"]))));
      body.append(card);
      for (const key of ["history", "importances", "parallel"]) {
        const fig = sweep.figures[key];
        if (!fig) continue;
        const div = plotDiv();
        div.dataset.figure = key;
        grid.append(div);
        Plotly.newPlot(div, fig.data, fig.layout, PLOT_CONFIG);
      }
    }
  }

  // ---- setups --------------------------------------------------------------------------
  function renderSetups() {
    const body = document.getElementById("setups-body");
    if (!DATA.setups.length) {
      body.replaceChildren(el("p", { class: "muted", text: "No make report outputs under experiments/: run make report SETUP=<preset>." }));
      return;
    }
    for (const setup of DATA.setups) {
      const card = el("div", { class: "card setup", "data-setup": setup.name }, el("h3", { text: setup.name }), problemList(setup.problems) || "");
      for (const [name, t] of Object.entries(setup.tables)) {
        const numeric = t.columns.map((_, i) => t.rows.every((r) => r[i] === "" || Number.isFinite(Number(r[i]))));
        card.append(el("h4", { text: name }), table(t.columns, t.rows.map((r) => r.map(cellText)), numeric));
      }
      const dose = setup.tables["dose_curve.csv"];
      const grid = el("div", { class: "plot-grid" });
      if (dose && ["method", "photons", "psnr"].every((c) => dose.columns.includes(c))) card.append(el("h4", { text: "Dose curve" }), grid);
      card.append(figures(setup.images) || "");
      body.append(card);
      if (grid.isConnected) plotDoseCurve(grid, dose);
    }
  }

  // make report's dose_curve.csv (method, photons, test_set, psnr, ssim): metric against dose
  function plotDoseCurve(grid, dose) {
    const col = (name) => dose.columns.indexOf(name);
    const methods = [...new Set(dose.rows.map((r) => r[col("method")]))];
    for (const metric of ["psnr", "ssim"].filter((m) => col(m) >= 0)) {
      const div = plotDiv();
      div.dataset.figure = `dose-${metric}`;
      grid.append(div);
      const traces = methods.map((m) => {
        const rows = dose.rows.filter((r) => r[col("method")] === m).sort((a, b) => a[col("photons")] - b[col("photons")]);
        return { x: rows.map((r) => Number(r[col("photons")])), y: rows.map((r) => Number(r[col(metric)])), mode: "lines+markers", name: m };
      });
      Plotly.newPlot(div, traces, {
        title: { text: `${metric.toUpperCase()} against dose`, font: { size: 13 }, x: 0.02, xanchor: "left" },
        xaxis: { title: { text: "photons per detector pixel" }, type: "log" },
        yaxis: { title: { text: metric === "psnr" ? "PSNR (dB)" : "SSIM" } },
        legend: { orientation: "h", y: -0.35 },
        margin: { t: 36, r: 16, l: 56, b: 40 },
      }, PLOT_CONFIG);
    }
  }

  // ---- problems ------------------------------------------------------------------------
  function renderProblems() {
    const items = [];
    for (const run of runs) for (const p of run.problems) items.push(`${run.id}: ${p}`);
    for (const p of DATA.problems) items.push(p);
    for (const s of DATA.sweeps) for (const p of s.problems) items.push(`${s.storage} (${s.study}): ${p}`);
    for (const s of DATA.setups) for (const p of s.problems) items.push(`experiments/${s.name}: ${p}`);
    const body = document.getElementById("problems-body");
    body.replaceChildren(items.length ? problemList(items) : el("p", { class: "muted", text: "None: every file could be read." }));
  }

  // ---- start ---------------------------------------------------------------------------
  const broken = runs.filter((r) => r.problems.length).length;
  document.getElementById("source").textContent =
    `${runs.length} runs (${broken} with problems), ${DATA.sweeps.length} sweeps, ${DATA.setups.length} setups from ${DATA.logs} and ${DATA.experiments}; built ${DATA.generated}`;
  document.getElementById("run-filter").addEventListener("input", renderRunsBody);
  document.getElementById("select-shown").addEventListener("click", () => {
    for (const tr of document.querySelectorAll("#runs-table tbody tr")) {
      if (hasCurves(runs.find((r) => r.id === tr.dataset.runId))) selected.add(tr.dataset.runId);
    }
    renderRunsBody();
    renderOverlay();
  });
  document.getElementById("select-none").addEventListener("click", () => {
    selected.clear();
    renderRunsBody();
    renderOverlay();
  });
  renderRunsHead();
  const shown = renderRunsBody();
  // start with the five latest trained runs overlaid, and the latest complete run opened
  const trained = shown.filter((r) => Object.keys(r.curves).some((m) => m.startsWith("train/")));
  const logged = trained.length ? trained : shown.filter((r) => Object.keys(r.curves).length);
  for (const r of logged.slice(0, 5)) selected.add(r.id);
  renderRunsBody();
  renderOverlay();
  const complete = shown.filter((r) => r.tests.length && !r.problems.length);
  const first = complete[0] || logged[0] || shown[0];
  if (first) showRun(first.id);
  renderSweeps();
  renderSetups();
  renderProblems();
})();
