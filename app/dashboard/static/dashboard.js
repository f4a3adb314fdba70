/* tbal dashboard: reads the service's JSON with the API key kept in localStorage and draws the page.
 *   /dashboard                 the projects (GET {api}/dashboard/projects)
 *   /dashboard?project=ID      one project (GET {api}/projects/ID/summary); while a round is queued or
 *                              running, its stage and progress are polled every 2 s (GET {api}/rounds/RID)
 *                              and the summary is read again when it ends; otherwise every 30 s.
 *   /dashboard#key=KEY         stores KEY and drops it from the address bar.
 * When the page has drawn its data, <body data-state="ready">; errors set data-state="error". */
"use strict";

(function () {
  const C = window.TbalCharts;
  const API = document.body.dataset.api || "/api/v1";
  const KEY_STORAGE = "tbal.apiKey";
  const ROUND_POLL_MS = 2000;
  const IDLE_POLL_MS = 30000;
  const STAGES = ["load", "train", "calibrate", "thresholds", "auto-label", "query", "write"];
  const COLORS = {
    coverage: "#2563eb",
    poolShare: "#93c5fd",
    estimated: "#d97706",
    bound: "#7c3aed",
    truth: "#059669",
    epsilon: "#dc2626",
    training: "#2563eb",
    validation: "#94a3b8",
  };

  let timer = null;
  let current = null; // the summary on screen

  /* ---------- small helpers ---------- */

  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(typeof child === "string" || typeof child === "number" ? document.createTextNode(String(child)) : child);
    }
    return node;
  }

  const int = (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en-US"));
  const pct = (v, d) => C.pct(v, d);
  const pct1 = (v) => C.pct(v, 1);
  const num = (v, d) => (v === null || v === undefined ? "–" : Number(v).toFixed(d === undefined ? 3 : d));

  function ago(iso) {
    if (!iso) return "–";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return Math.round(s) + " s ago";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400) return Math.round(s / 3600) + " h ago";
    return new Date(iso).toISOString().slice(0, 10);
  }

  function seconds(v) {
    if (v === null || v === undefined) return "–";
    return v < 100 ? v.toFixed(1) + " s" : Math.round(v / 60) + " min";
  }

  /* A value shown on the page: the text, and the raw number in data-value (tests compare both). */
  function value(testid, shown, raw) {
    return h("span", { "data-testid": testid, "data-value": raw === null || raw === undefined ? "" : String(raw) }, shown);
  }

  function setState(state) {
    document.body.dataset.state = state;
  }

  /* ---------- the key and the API ---------- */

  function takeKeyFromHash() {
    const match = /(?:^#|&)key=([^&]+)/.exec(location.hash);
    if (match) {
      localStorage.setItem(KEY_STORAGE, decodeURIComponent(match[1]));
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  class Unauthorized extends Error {}

  async function api(path) {
    const key = localStorage.getItem(KEY_STORAGE);
    if (!key) throw new Unauthorized("no API key");
    const response = await fetch(API + path, { headers: { Authorization: "Bearer " + key, Accept: "application/json" } });
    if (response.status === 401) throw new Unauthorized("the API key was refused");
    if (!response.ok) {
      let reason = response.statusText;
      try {
        const body = await response.json();
        reason = (body.detail && (body.detail.reason || JSON.stringify(body.detail))) || reason;
      } catch (_e) {
        /* not JSON */
      }
      throw new Error(path + ": " + response.status + " " + reason);
    }
    return response.json();
  }

  function askForKey(message) {
    const card = document.getElementById("key-card");
    card.hidden = false;
    document.getElementById("view").replaceChildren();
    const error = document.getElementById("key-error");
    error.hidden = !message;
    error.textContent = message || "";
    document.getElementById("key-input").focus();
    setState("needs-key");
  }

  function showError(error) {
    document.getElementById("view").replaceChildren(
      h("section", { class: "card error-card", "data-testid": "error" }, h("h2", { text: "Could not load" }), h("p", { text: String(error.message || error) }))
    );
    setState("error");
  }

  function setRefresh(label) {
    document.getElementById("refresh").textContent = label;
  }

  /* ---------- routing ---------- */

  function projectId() {
    const id = new URLSearchParams(location.search).get("project");
    return id && /^\d+$/.test(id) ? Number(id) : null;
  }

  function chosenRound() {
    const index = new URLSearchParams(location.search).get("round");
    return index && /^\d+$/.test(index) ? Number(index) : null;
  }

  function chooseRound(index) {
    const params = new URLSearchParams(location.search);
    if (index === null) params.delete("round");
    else params.set("round", String(index));
    history.replaceState(null, "", location.pathname + "?" + params.toString());
    load();
  }

  async function load() {
    clearTimeout(timer);
    try {
      const id = projectId();
      if (id === null) await showProjects();
      else await showProject(id);
      document.getElementById("key-card").hidden = true;
      document.getElementById("change-key").hidden = false;
    } catch (error) {
      if (error instanceof Unauthorized) askForKey(localStorage.getItem(KEY_STORAGE) ? error.message : "");
      else showError(error);
    }
  }

  /* ---------- the projects ---------- */

  async function showProjects() {
    const page = await api("/dashboard/projects?limit=200");
    document.getElementById("crumbs").replaceChildren(h("span", { text: "projects" }));
    document.title = "tbal · projects";
    const rows = page.items.map((p) =>
      h(
        "tr",
        { "data-testid": "project-row", "data-project": p.id },
        h("td", {}, h("a", { href: "?project=" + p.id, class: "project-link" }, p.name)),
        h("td", { text: p.data_kind }),
        h("td", { class: "num", text: int(p.n_classes) }),
        h("td", { class: "num", text: int(p.items) }),
        h("td", { class: "num", text: int(p.human_labels) }),
        h("td", { class: "num", text: int(p.auto_labels) }),
        h("td", { class: "num" }, h("div", { class: "cell-meter" }, C.meter(p.coverage, 1, { label: "coverage" }), h("span", { text: pct1(p.coverage) }))),
        h("td", { class: "num", text: int(p.rounds) }),
        h("td", {}, p.last_round ? statusBadge(p.last_round.status, p.last_round) : h("span", { class: "muted", text: "no round yet" })),
        h("td", { class: "muted", text: ago(p.created_at) })
      )
    );
    const table = rows.length
      ? h(
          "table",
          { class: "table" },
          h("thead", {}, h("tr", {}, ["project", "data", "classes", "items", "human labels", "auto-labels", "coverage", "rounds", "last round", "created"].map((t, i) => h("th", { class: i >= 2 && i <= 7 ? "num" : "", text: t })))),
          h("tbody", {}, rows)
        )
      : h("p", { class: "muted", text: "No project yet: create one with `tbal project create` or POST " + API + "/projects." });
    document.getElementById("view").replaceChildren(h("section", { class: "card" }, h("h2", { text: "Projects" }), table));
    setRefresh("");
    setState("ready");
    timer = setTimeout(load, IDLE_POLL_MS);
  }

  function statusBadge(status, r) {
    const label = status === "running" && r ? status + " · " + (r.stage || "") + " " + pct(r.progress) : status;
    return h("span", { class: "badge badge-" + status, "data-testid": "status" }, label);
  }

  /* ---------- one project ---------- */

  async function showProject(id) {
    const round = chosenRound();
    const summary = await api("/projects/" + id + "/summary" + (round === null ? "" : "?round_index=" + round));
    current = summary;
    render(summary);
    setState("ready");
    schedule(summary);
  }

  function schedule(summary) {
    clearTimeout(timer);
    if (summary.active_round) {
      setRefresh("live · every 2 s");
      timer = setTimeout(() => pollRound(summary.active_round.id), ROUND_POLL_MS);
    } else {
      setRefresh("updated " + new Date().toLocaleTimeString("en-GB"));
      timer = setTimeout(() => {
        if (document.visibilityState === "visible") load();
        else schedule(summary);
      }, IDLE_POLL_MS);
    }
  }

  async function pollRound(roundId) {
    try {
      const r = await api("/rounds/" + roundId);
      if (r.status === "succeeded" || r.status === "failed") {
        await load();
        return;
      }
      renderActive(current, r);
      timer = setTimeout(() => pollRound(roundId), ROUND_POLL_MS);
    } catch (error) {
      if (error instanceof Unauthorized) askForKey(error.message);
      else timer = setTimeout(() => pollRound(roundId), ROUND_POLL_MS * 2);
    }
  }

  function render(s) {
    const p = s.project;
    document.title = "tbal · " + p.name;
    document.getElementById("crumbs").replaceChildren(h("a", { href: "/dashboard", text: "projects" }), h("span", { class: "sep", text: "/" }), h("span", { text: p.name }));
    const view = h(
      "div",
      { class: "project" },
      header(s),
      warningsCard(s),
      kpis(s),
      h("section", { class: "card active-card", id: "active" }),
      h("div", { class: "grid two" }, coverageCard(s), errorCard(s)),
      h("div", { class: "grid class-row" }, classCard(s), reliabilityCard(s)),
      h("div", { class: "grid two" }, labelsCard(s), queueCard(s)),
      roundsCard(s),
      h("div", { id: "jobs" }),
      h("div", { id: "label-studio" })
    );
    document.getElementById("view").replaceChildren(view);
    renderActive(s, s.active_round);
    jobsCard(p.id);
    labelStudioCard(p.id);
  }

  // Uploads encoded in the background (ingest jobs): status, items done / total, what was stored and
  // the items refused. Read again every few seconds while one is queued or running; nothing when the
  // project never had one.
  async function jobsCard(id) {
    let page;
    try {
      page = await api("/projects/" + id + "/jobs?limit=5");
    } catch (_e) {
      return;
    }
    const slot = document.getElementById("jobs");
    if (!slot || !page.items.length || projectId() !== id) return;
    const rows = page.items.map((j) =>
      h(
        "tr",
        { "data-testid": "job-row", "data-job": j.id, "data-status": j.status },
        h("td", { class: "num", text: String(j.id) }),
        h("td", { text: j.kind }),
        h("td", {}, statusBadge(j.status, null)),
        h("td", { class: "num", text: int(j.done) + " / " + int(j.total) + " (" + pct1(j.progress) + ")" }),
        h("td", { class: "num", text: int(j.inserted) + " stored · " + int(j.skipped) + " known" }),
        h("td", { class: "muted", text: ago(j.created_at) }),
        h("td", { class: "muted", text: j.reason || (j.n_errors ? int(j.n_errors) + " refused, first " + j.errors[0].item + ": " + j.errors[0].reason : "") })
      )
    );
    const head = ["job", "kind", "status", "done", "items", "created", "errors"];
    const table = h("div", { class: "scroll" }, h("table", { class: "table" }, h("thead", {}, h("tr", {}, head.map((t) => h("th", { text: t })))), h("tbody", {}, rows)));
    slot.replaceChildren(card("Uploads", "Large uploads are encoded in the background; the latest five.", table));
    if (page.items.some((j) => j.status === "queued" || j.status === "running")) setTimeout(() => jobsCard(id), ROUND_POLL_MS);
  }

  // The Label Studio connection's status: last sync and the latest errors (refusals, skipped tasks,
  // failed syncs), which Label Studio itself never shows. Nothing when the project has no connection.
  async function labelStudioCard(id) {
    let st;
    try {
      st = await api("/projects/" + id + "/label-studio/status");
    } catch (_e) {
      return;
    }
    const slot = document.getElementById("label-studio");
    if (!slot || !st.connection) return;
    const c = st.connection;
    const facts = h(
      "dl",
      { class: "facts" },
      h("dt", { text: "Label Studio" }),
      h("dd", { text: c.ls_url ? c.ls_url + " · project " + (c.ls_project ?? "?") : "backend only (no URL and token: no sync)" }),
      h("dt", { text: "last sync" }),
      h("dd", { text: c.last_sync_at ? ago(c.last_sync_at) : "never" }),
      h("dt", { text: "tasks linked" }),
      h("dd", { text: int(st.tasks_linked) + " (open queries " + int(st.open_queries) + ")" })
    );
    const errors = st.last_errors.length
      ? h("ul", { class: "queue", "data-testid": "ls-errors" }, st.last_errors.slice(0, 10).map((e) => h("li", {}, h("span", { class: "badge", text: e.source + " " + e.status }), h("span", { class: "muted", text: " " + ago(e.created_at) + " " }), h("span", { text: e.reason }))))
      : h("p", { class: "muted", text: "No errors." });
    slot.replaceChildren(card("Label Studio", "The connection and its latest errors.", h("div", {}, facts, errors)));
  }

  function header(s) {
    const p = s.project;
    const chip = (label, v, testid) => h("span", { class: "chip" }, h("span", { class: "chip-label", text: label }), value(testid, v.shown, v.raw));
    return h(
      "section",
      { class: "project-head" },
      h("h1", { "data-testid": "project-name", text: p.name }),
      h(
        "div",
        { class: "chips" },
        chip("tolerance ε", { shown: pct1(p.epsilon), raw: p.epsilon }, "epsilon"),
        chip("δ", { shown: pct1(p.delta), raw: p.delta }, "delta"),
        chip("bound", { shown: p.bound + " · " + p.guarantee }, "bound"),
        chip("confidence", { shown: p.confidence }, "confidence"),
        chip("model", { shown: p.model }, "model"),
        chip("queries", { shown: p.query_strategy }, "query"),
        chip("data", { shown: p.data_kind + " " + p.input_shape.join("×") + " · " + p.classes.length + " classes" }, "data")
      )
    );
  }

  function kpis(s) {
    const c = s.counts;
    const last = lastSucceeded(s);
    const truth = last ? last.true_error_total : null;
    const eps = s.project.epsilon;
    const tile = (label, main, sub, extra) => h("div", { class: "kpi" }, h("div", { class: "kpi-label", text: label }), h("div", { class: "kpi-value" }, main), sub ? h("div", { class: "kpi-sub" }, sub) : null, extra || null);
    return h(
      "section",
      { class: "kpis" },
      tile(
        "items",
        value("items", int(c.items), c.items),
        h("span", {}, value("unlabeled", int(c.unlabeled), c.unlabeled), " still unlabeled", c.unlabeled > c.unlabeled_pool ? " (" + int(c.unlabeled - c.unlabeled_pool) + " in the queue)" : "")
      ),
      tile(
        "auto-labeled",
        value("auto-labels", int(c.auto_labels), c.auto_labels),
        h("span", {}, value("coverage", pct1(c.coverage), c.coverage), " coverage"),
        C.meter(c.coverage, 1, { color: COLORS.coverage, label: "coverage" })
      ),
      tile(
        "true error",
        value("true-error", truth === null || truth === undefined ? "no ground truth" : pct(truth, 2), truth),
        h("span", { class: truth !== null && truth !== undefined && truth > eps ? "bad" : "" }, truth === null || truth === undefined ? "audit items to measure it" : (truth <= eps ? "within" : "above") + " ε = " + pct1(eps)),
        truth !== null && truth !== undefined ? C.meter(truth, Math.max(eps * 2, truth), { color: COLORS.truth, marker: eps, label: "true error against ε" }) : null
      ),
      tile(
        "label budget spent",
        h("span", {}, value("budget-used", int(c.budget_used), c.budget_used), h("span", { class: "of", text: " / " }), value("label-budget", int(c.label_budget), c.label_budget)),
        h("span", {}, value("budget-labeled", int(c.budget_labeled), c.budget_labeled), " labeled · ", value("budget-queued", int(c.budget_queued), c.budget_queued), " queued"),
        C.meter(c.budget_used, c.label_budget, { color: COLORS.training, label: "budget" })
      ),
      tile(
        "human labels",
        value("human-labels", int(c.human_labels), c.human_labels),
        h(
          "span",
          {},
          value("validation-labels", int(c.validation_labels), c.validation_labels),
          " validation · ",
          value("training-labels", int(c.training_labels), c.training_labels),
          " training",
          c.validation_removed ? h("span", {}, " · ", value("validation-removed", int(c.validation_removed), c.validation_removed), " removed") : null
        )
      ),
      tile(
        "queue",
        value("queue-open", int(c.open_validation + c.open_training), c.open_validation + c.open_training),
        h("span", {}, value("open-validation", int(c.open_validation), c.open_validation), " validation · ", value("open-training", int(c.open_training), c.open_training), " training")
      ),
      tile("rounds", value("rounds", int(s.rounds_total), s.rounds_total), last ? "last done " + ago(last.finished_at) : "none finished yet")
    );
  }

  // What the settings cannot do, said before any round: a project whose validation points cannot hold a
  // certificate would otherwise show rounds of 0 % coverage with nothing to say why.
  function warningsCard(s) {
    const warnings = s.project.warnings || [];
    if (!warnings.length) return null;
    return h("section", { class: "card warnings-card", "data-testid": "certificate-warnings" },
      h("h2", { text: "Settings" }),
      ...warnings.map((w) => h("p", { class: "bad", "data-testid": "certificate-warning", text: w }))
    );
  }

  function lastSucceeded(s) {
    for (let i = s.rounds.length - 1; i >= 0; i--) if (s.rounds[i].status === "succeeded") return s.rounds[i];
    return null;
  }

  function renderActive(s, r) {
    const box = document.getElementById("active");
    if (!box) return;
    if (!r) {
      const last = s.rounds.length ? s.rounds[s.rounds.length - 1] : null;
      box.replaceChildren(
        h("div", { class: "active-line", "data-testid": "round-state", "data-status": last ? last.status : "none" },
          h("span", { class: "muted", text: "No round running." }),
          last
            ? h("span", {}, " Last: round " + last.index + " ", statusBadge(last.status), last.status === "failed" ? h("span", { class: "bad", text: " " + (last.error || "") }) : " finished " + ago(last.finished_at) + " in " + seconds(last.duration_s) + (last.model_version ? " · model " + last.model_version : ""))
            : h("span", { text: " Start one with `tbal round start` or POST " + API + "/projects/" + s.project.id + "/rounds." })
        )
      );
      box.classList.remove("running");
      return;
    }
    box.classList.add("running");
    const stageIndex = STAGES.indexOf(r.stage);
    box.replaceChildren(
      h("div", { class: "active-line", "data-testid": "round-state", "data-status": r.status, "data-stage": r.stage || "", "data-progress": String(r.progress) },
        h("strong", { text: "Round " + r.index + " " }),
        statusBadge(r.status),
        h("span", { class: "stage" }, " stage ", h("b", { "data-testid": "round-stage", text: r.stage || "waiting for a worker" })),
        h("span", { class: "progress-text", "data-testid": "round-progress", text: pct(r.progress) })
      ),
      h("div", { class: "progress" }, h("div", { class: "progress-fill", "data-fill": String(r.progress) })),
      h("ol", { class: "stages" }, STAGES.map((st, i) => h("li", { class: i < stageIndex ? "done" : i === stageIndex ? "now" : "", text: st })))
    );
    box.querySelector(".progress-fill").style.width = (100 * Math.max(0, Math.min(1, r.progress))).toFixed(1) + "%";
  }

  function legend(items) {
    return h("div", { class: "legend" }, items.map((it) => h("span", { class: "legend-item" }, h("span", { class: "swatch " + (it.dash ? "dashed" : ""), "data-color": it.color }), it.label)));
  }

  function paintSwatches(root) {
    root.querySelectorAll(".swatch").forEach((sw) => {
      sw.style.borderColor = sw.dataset.color;
      sw.style.backgroundColor = sw.classList.contains("dashed") ? "transparent" : sw.dataset.color;
    });
  }

  function card(title, subtitle, body, extra) {
    const node = h("section", { class: "card" + (extra ? " " + extra : "") }, h("h2", { text: title }), subtitle ? h("p", { class: "subtitle" }, subtitle) : null, body);
    paintSwatches(node);
    return node;
  }

  function empty(message) {
    return h("div", { class: "empty", text: message });
  }

  function coverageCard(s) {
    const done = s.rounds.filter((r) => r.status === "succeeded");
    if (!done.length) return card("Coverage by round", null, empty("No round has finished yet."));
    const chart = C.lineChart({
      title: "coverage by round",
      series: [
        { name: "all items auto-labeled (cumulative)", color: COLORS.coverage, points: done.map((r) => [r.index, r.coverage_total]) },
        { name: "share of the round's pool auto-labeled", color: COLORS.poolShare, dash: "4 4", points: done.map((r) => [r.index, r.coverage]) },
      ],
      yMax: 1,
      xLabel: "round",
      yLabel: "coverage (% of items)",
    });
    return card(
      "Coverage by round",
      "Auto-labeled items as a share of all items, and of the unlabeled pool each round saw.",
      h("div", {}, legend([{ label: "all items (cumulative)", color: COLORS.coverage }, { label: "the round's pool", color: COLORS.poolShare, dash: true }]), chart),
      "chart-card"
    );
  }

  function errorCard(s) {
    const done = s.rounds.filter((r) => r.status === "succeeded");
    const eps = s.project.epsilon;
    if (!done.length) return card("Auto-labeling error by round", null, empty("No round has finished yet."));
    const hasTruth = done.some((r) => r.true_error !== null);
    const kind = (done.find((r) => r.error_bound_kind) || {}).error_bound_kind || "pooled";
    const series = [
      { name: "estimated error (D_th)", color: COLORS.estimated, points: done.map((r) => [r.index, r.estimated_error]) },
      { name: "error bound (" + kind + ")", color: COLORS.bound, points: done.map((r) => [r.index, r.error_bound]) },
    ];
    if (hasTruth) series.push({ name: "true error (ground truth)", color: COLORS.truth, points: done.map((r) => [r.index, r.true_error]) });
    const chart = C.lineChart({
      title: "auto-labeling error by round",
      series: series,
      hLines: [{ y: eps, label: "ε = " + pct1(eps), color: COLORS.epsilon }],
      xLabel: "round",
      yLabel: "error (% of auto-labels)",
      yFormat: (v) => pct(v, v < 0.1 && v > 0 ? 1 : 0),
    });
    const items = [
      { label: "estimated on D_th", color: COLORS.estimated },
      { label: "upper bound (" + kind + ", δ = " + pct1(s.project.delta) + ")", color: COLORS.bound },
    ];
    if (hasTruth) items.push({ label: "true error (ground truth)", color: COLORS.truth });
    items.push({ label: "tolerance ε", color: COLORS.epsilon, dash: true });
    return card(
      "Auto-labeling error by round",
      hasTruth ? "Share of each round's auto-labels that are wrong, against the tolerance ε." : "Estimated error and its bound against ε (no ground truth or audits to measure the true error).",
      h("div", {}, legend(items), chart),
      "chart-card"
    );
  }

  function classCard(s) {
    const rows = s.classes.map((c) =>
      h(
        "tr",
        { "data-testid": "class-row", "data-class": c.name },
        h("td", { class: "class-name", text: c.name }),
        h("td", { class: "num" }, value("class-threshold", c.threshold === null ? "not auto-labeled" : num(c.threshold, 3), c.threshold)),
        h("td", { class: "num", text: c.estimated_error === null ? "–" : pct1(c.estimated_error) }),
        h("td", { class: "num", text: c.error_bound === null ? "–" : pct1(c.error_bound) }),
        h("td", { class: "num" }, value("class-validation-left", int(c.validation_left), c.validation_left)),
        h("td", { class: "num" }, value("class-auto-labels", int(c.auto_labels), c.auto_labels)),
        h("td", { class: "num" }, h("div", { class: "cell-meter" }, C.meter(c.coverage, maxCoverage(s), { color: COLORS.coverage, label: "coverage" }), value("class-coverage", pct1(c.coverage), c.coverage)))
      )
    );
    const table = h(
      "table",
      { class: "table compact" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { text: "class" }),
          h("th", { class: "num", text: "threshold", title: "score a pool point predicted as this class must reach to be auto-labeled" }),
          h("th", { class: "num", text: "est. error", title: "error among D_th points above the threshold" }),
          h("th", { class: "num", text: "bound", title: "per-class upper bound (empty under the pooled guarantee)" }),
          h("th", { class: "num", text: "validation left", title: "human validation labels still in the set" }),
          h("th", { class: "num", text: "auto-labels" }),
          h("th", { class: "num", text: "coverage", title: "auto-labels of this class / all items" })
        )
      ),
      h("tbody", {}, rows)
    );
    let sub = "No round has finished yet.";
    if (s.classes_round_index !== null) {
      sub = "Thresholds and estimated errors of round " + s.classes_round_index + "; auto-labels and validation points as of now.";
      if (s.classes.every((c) => c.threshold === null)) {
        sub += " Round " + s.classes_round_index + " auto-labeled nothing: no threshold could be certified within ε with the validation points left.";
      }
    }
    const node = card("Per class", sub, h("div", { class: "scroll" }, table), "class-card");
    node.querySelector("h2").after(roundPicker(s));
    return node;
  }

  /* The round whose thresholds and reliability diagram are shown (kept in the URL as ?round=N). */
  function roundPicker(s) {
    const done = s.rounds.filter((r) => r.status === "succeeded");
    if (!done.length) return h("span");
    const select = h(
      "select",
      { "data-testid": "round-picker", "aria-label": "round shown", onchange: (e) => chooseRound(e.target.value === "" ? null : Number(e.target.value)) },
      h("option", { value: "", text: "latest round (" + done[done.length - 1].index + ")" }),
      done.slice().reverse().map((r) => h("option", { value: String(r.index), selected: chosenRound() === r.index, text: "round " + r.index + " · " + int(r.auto_labeled) + " auto-labeled" }))
    );
    return h("label", { class: "picker" }, "show ", select);
  }

  function maxCoverage(s) {
    return Math.max(1e-9, ...s.classes.map((c) => c.coverage));
  }

  function reliabilityCard(s) {
    const r = s.reliability;
    if (!r) return card("Reliability of the confidence function", null, empty("Recorded by each finished round (on D_th); none yet."));
    const chart = C.reliabilityChart({
      title: "reliability diagram",
      bins: r.bins,
      xLabel: "confidence of the predicted class",
      yLabel: "accuracy on D_th",
      width: 520,
      height: 340,
    });
    return card(
      "Reliability of the confidence function",
      h("span", {}, "Round " + r.round_index + ", " + int(r.n) + " " + r.source + " points · ECE ", value("ece", pct(r.ece, 2), r.ece)),
      h("div", {}, legend([{ label: "accuracy per bin", color: "#60a5fa" }, { label: "mean confidence", color: "#1e293b" }, { label: "gap", color: "#f87171" }, { label: "perfect calibration", color: "#64748b", dash: true }]), chart),
      "chart-card reliability-card"
    );
  }

  function labelsCard(s) {
    const done = s.rounds.filter((r) => r.status === "succeeded");
    if (!done.length) return card("Human labels by round", null, empty("No round has finished yet."));
    const chart = C.barChart({
      title: "human labels by round",
      stacks: [
        { name: "training labels", color: COLORS.training, values: done.map((r) => [r.index, r.training_labels || 0]) },
        { name: "validation labels", color: COLORS.validation, values: done.map((r) => [r.index, r.validation_labels || 0]) },
      ],
      hLines: [{ y: s.project.label_budget, label: "training budget " + int(s.project.label_budget), color: "#0f172a", dash: "3 4" }],
      xLabel: "round",
      yLabel: "human labels (items)",
      height: 250,
    });
    return card(
      "Human labels by round",
      "Labels each round trained on (training) and set thresholds with (validation).",
      h("div", {}, legend([{ label: "training", color: COLORS.training }, { label: "validation", color: COLORS.validation }, { label: "training budget", color: "#0f172a", dash: true }]), chart),
      "chart-card"
    );
  }

  function queueCard(s) {
    const c = s.counts;
    const list = s.queue_head.length
      ? h("ul", { class: "queue" }, s.queue_head.map((q) => h("li", {}, h("code", { text: q.external_id }), h("span", { class: "badge badge-" + q.purpose, text: q.purpose }), q.round_id ? h("span", { class: "muted", text: " from round id " + q.round_id }) : null)))
      : h("p", { class: "muted", text: "Nothing waiting for a human label." });
    const roles = c.roles;
    const facts = h(
      "dl",
      { class: "facts" },
      h("dt", { text: "open queries" }),
      h("dd", {}, int(c.open_validation) + " validation · " + int(c.open_training) + " training"),
      h("dt", { text: "unlabeled pool" }),
      h("dd", { text: int(c.unlabeled_pool) + " of " + int(roles.pool) + " pool items" }),
      h("dt", { text: "validation set" }),
      h("dd", { text: int(c.validation_labels) + " labeled of " + int(roles.validation) + " drawn (target " + int(s.project.validation_size) + "); " + int(c.validation_removed) + " removed in auto-labeled regions" }),
      h("dt", { text: "training labels" }),
      h("dd", { text: int(c.training_labels) + " labeled of " + int(roles.train) + " asked for; budget " + int(c.label_budget) + ", " + int(s.project.batch_size) + " queries a round" })
    );
    const sub = s.queue_head.length ? "What humans are asked to label next (the first " + s.queue_head.length + " shown)." : "What humans are asked to label next.";
    return card("The queue", sub, h("div", {}, facts, list));
  }

  // A round whose share of δ is 0 auto-labels nothing on purpose: say so, so that a 0 is not read as
  // a failure of the model (tbal/plan.py: the final schedule certifies in the last round the budget allows).
  function isHeld(r) {
    return r.status === "succeeded" && r.delta_round === 0;
  }

  function heldNote(r) {
    if (!isHeld(r)) return null;
    return h("span", { class: "muted", "data-testid": "round-held", title: "this round's share of δ is 0", text: " (held)" });
  }

  function heldExplanation(s) {
    const held = s.rounds.filter(isHeld);
    if (!held.length) return null;
    const last = held[held.length - 1];
    const planned = last.rounds_planned ? " (round " + (last.rounds_planned - 1) + " of this plan, or the first round run with the label budget spent)" : "";
    return "Rounds marked (held) auto-label nothing by design: with the " + (last.delta_schedule || "final") + " δ schedule the whole certificate goes to the last round the label budget allows" + planned + ", which labels more than many small ones. To stop early, lower label_budget to what was spent and run one more round.";
  }

  // "training / validation" labels of a round; "+N" when its classifier also trained on N validation
  // labels outside the stratum (train_outside_stratum), which no test of the round read
  function humansCell(r) {
    if (r.training_labels === null || r.training_labels === undefined) return h("td", { class: "num", text: "–" });
    const extra = r.validation_labels_trained ? " (+" + int(r.validation_labels_trained) + ")" : "";
    const title = extra ? "the classifier also trained on " + int(r.validation_labels_trained) + " validation labels outside the stratum" : null;
    return h("td", { class: "num", "data-testid": "round-humans", title: title, text: int(r.training_labels) + extra + " / " + int(r.validation_labels) });
  }

  function roundsCard(s) {
    const rows = s.rounds
      .slice()
      .reverse()
      .map((r) =>
        h(
          "tr",
          { "data-testid": "round-row", "data-round": r.index },
          h("td", { class: "num", text: String(r.index) }),
          h("td", {}, statusBadge(r.status, r)),
          h("td", { class: "muted", text: ago(r.started_at || r.created_at) }),
          h("td", { class: "num", text: seconds(r.duration_s) }),
          humansCell(r),
          h("td", { class: "num" }, value("round-auto-labeled", int(r.auto_labeled), r.auto_labeled), heldNote(r)),
          h("td", { class: "num" }, value("round-coverage", pct1(r.coverage_total), r.coverage_total)),
          h("td", { class: "num", text: pct(r.estimated_error, 2) }),
          h("td", { class: "num" }, value("round-bound", pct(r.error_bound, 2), r.error_bound)),
          h("td", { class: "num" }, value("round-true-error", pct(r.true_error, 2), r.true_error)),
          h("td", { class: "num", text: pct1(r.epsilon) }),
          h("td", { class: "muted mono", text: r.model_version || (r.error ? r.error.slice(0, 80) : "") })
        )
      );
    const head = ["round", "status", "started", "took", "humans train / val", "auto-labeled", "coverage (all)", "est. error", "bound", "true error", "ε", "model version"];
    const numeric = new Set([0, 3, 4, 5, 6, 7, 8, 9, 10]);
    const more = s.rounds_total > s.rounds_shown ? h("p", { class: "muted", text: "The last " + s.rounds_shown + " of " + s.rounds_total + " rounds." }) : null;
    return card(
      "Rounds",
      heldExplanation(s),
      h("div", { class: "scroll" }, h("table", { class: "table" }, h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { class: numeric.has(i) ? "num" : "", text: t })))), h("tbody", {}, rows)), more)
    );
  }

  /* ---------- start ---------- */

  function start() {
    takeKeyFromHash();
    document.getElementById("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = document.getElementById("key-input").value.trim();
      if (!key) return;
      localStorage.setItem(KEY_STORAGE, key);
      document.getElementById("key-input").value = "";
      load();
    });
    document.getElementById("change-key").addEventListener("click", () => {
      clearTimeout(timer);
      askForKey("");
    });
    window.addEventListener("hashchange", () => {
      takeKeyFromHash();
      load();
    });
    load();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
