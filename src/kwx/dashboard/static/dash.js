// kwx dashboard: draws each page from the JSON the server embedded, then polls where the
// page is live (Now, Decisions). Plotly is the copy served from the plotly Python package.
"use strict";

const DATA = JSON.parse(document.getElementById("page-data").textContent);
const PAGE = document.body.dataset.page;
const content = document.getElementById("content");
const PLOT_CFG = { displaylogo: false, responsive: true };

function esc(v) {
  return String(v).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function num(v, d) {
  if (v === null || v === undefined || v === "") return "";
  const x = Number(v);
  return Number.isFinite(x) ? x.toFixed(d === undefined ? 3 : d) : esc(v);
}
function money(v) { return v === null || v === undefined ? "" : esc(v); }
function when(v) { return v ? esc(String(v).replace("T", " ").slice(0, 19)) : ""; }
function table(id, cols, rows, rowAttrs) {
  const head = cols.map((c) => `<th class="${c.l ? "l" : ""}">${esc(c.h)}</th>`).join("");
  const body = rows.map((r) => {
    const attrs = rowAttrs ? rowAttrs(r) : "";
    return `<tr ${attrs}>` + cols.map((c) => `<td class="${c.k || ""} ${c.l ? "l" : ""}">${c.f(r)}</td>`).join("") + "</tr>";
  }).join("");
  return `<table id="${id}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
function status(text) { document.getElementById("status").textContent = text; }
function titled(obj) {
  // plotly.js 3 takes titles as {text}; the pages write plain strings.
  for (const k of ["title", "xaxis", "yaxis", "yaxis2"]) {
    if (!obj[k]) continue;
    if (k === "title" && typeof obj.title === "string") obj.title = { text: obj.title };
    else if (typeof obj[k].title === "string") obj[k].title = { text: obj[k].title };
  }
  return obj;
}
function plot(id, traces, layout) {
  const el = document.getElementById(id);
  if (el) Plotly.react(el, traces, titled(Object.assign({ margin: { t: 40, l: 50, r: 50, b: 40 } }, layout)), PLOT_CFG);
}

// ------------------------------------------------------------------ Now
function renderNow(d) {
  let html = `<p class="muted">as of ${when(d.now)} UTC</p>`;
  html += "<h2>Runs and kill switch</h2>";
  html += d.runs.length ? table("runs", [
    { h: "mode", l: 1, f: (r) => esc(r.mode) }, { h: "run", f: (r) => r.run_id },
    { h: "cities", l: 1, f: (r) => esc((r.cities || []).join(",")) }, { h: "status", l: 1, f: (r) => esc(r.status) },
    { h: "kill switch", k: "killed", l: 1, f: (r) => r.risk && r.risk.risk && r.risk.risk.killed ? `<span class="bad">TRIPPED: ${esc(r.risk.risk.kill_reason)}</span>` : '<span class="ok">armed</span>' },
    { h: "today's P&L (engine, all cities)", k: "day_pnl", f: (r) => r.risk && r.risk.risk ? num(r.risk.risk.day_pnl_global, 2) : "" },
    { h: "exposure", f: (r) => r.risk && r.risk.risk ? num(r.risk.risk.exposure, 2) : "" },
    { h: "last evaluation", l: 1, f: (r) => r.risk ? when(r.risk.ts) : "" },
  ], d.runs, (r) => `data-run="${esc(r.mode)}-${r.run_id}"`) : '<p class="muted">no paper or live run in the store</p>';
  for (const c of d.cities) {
    html += `<section id="city-${esc(c.city)}"><h2>${esc(c.city)} <span class="muted">${esc(c.mc_version)} · minute ${when(c.ts)} UTC` +
      (c.age_minutes > 5 ? ` · <span class="warn">${num(c.age_minutes / 60, 1)} h old (the store's newest)</span>` : "") + "</span></h2>";
    for (const ev of c.events) {
      const id = `ladder-${ev.event_ticker}`;
      html += `<div class="card"><h3>${esc(ev.event_ticker)} · running max <span class="running-max">${num(ev.running_max, 1)}</span> °F ` +
        `<span class="muted">(${esc(ev.running_max_source || "no obs")}) · Σp_wx ${num(ev.sum_p_wx, 3)}</span></h3>`;
      html += table(id, [
        { h: "bracket", l: 1, f: (r) => esc(r.ticker) },
        { h: "floor", f: (r) => num(r.floor_strike, 0) }, { h: "cap", f: (r) => num(r.cap_strike, 0) },
        { h: "p_mkt", k: "p_mkt", f: (r) => num(r.p_mkt) }, { h: "p_wx", k: "p_wx", f: (r) => num(r.p_wx) },
        { h: "p_fused", k: "p_fused", f: (r) => num(r.p_fused_norm) },
        { h: "hazard 60m", k: "hazard", f: (r) => num(r.hazard_next_60m) },
        { h: "our quotes", l: 1, k: "quotes", f: (r) => r.quotes.map((o) => `${esc(o.action)} ${esc(o.side)} ${num(o.remaining, 0)} @ ${num(o.price, 2)}`).join("<br>") },
      ], ev.rows, (r) => `data-ticker="${esc(r.ticker)}"`);
      html += `<div id="chart-${esc(ev.event_ticker)}" class="chart" style="height:220px"></div></div>`;
    }
    html += "</section>";
  }
  if (!d.cities.length) html += '<p class="muted">no probabilities in pmf.minute yet</p>';
  html += "<h2>Positions</h2>" + (d.positions.length ? table("positions", [
    { h: "mode", l: 1, f: (r) => esc(r.mode) }, { h: "run", f: (r) => r.run_id },
    { h: "ticker", l: 1, f: (r) => esc(r.ticker) }, { h: "YES position", k: "position", f: (r) => num(r.position_fp, 2) },
    { h: "cost", k: "cost", f: (r) => num(r.cost, 4) }, { h: "realized", f: (r) => num(r.realized_pnl, 4) },
    { h: "fees", f: (r) => num(r.fees, 4) }, { h: "updated", l: 1, f: (r) => when(r.updated_at) },
  ], d.positions, (r) => `data-ticker="${esc(r.ticker)}"`) : '<p class="muted" id="positions">no open positions</p>');
  html += "<h2>Resting orders</h2>" + (d.resting.length ? table("resting", [
    { h: "mode", l: 1, f: (r) => esc(r.mode) }, { h: "ticker", l: 1, f: (r) => esc(r.ticker) },
    { h: "side", l: 1, f: (r) => `${esc(r.action)} ${esc(r.side)}` }, { h: "price", f: (r) => num(r.price, 2) },
    { h: "remaining", f: (r) => num(r.remaining, 0) }, { h: "since", l: 1, f: (r) => when(r.created_at) },
  ], d.resting) : '<p class="muted" id="resting">no resting orders</p>');
  html += "<h2>Feed freshness</h2>" + table("freshness", [
    { h: "source", l: 1, f: (r) => esc(r.source) }, { h: "newest row (UTC)", l: 1, k: "newest", f: (r) => r.newest ? when(r.newest) : '<span class="muted">none</span>' },
    { h: "age", k: "age", f: (r) => r.newest ? ageText(d.now, r.newest) : "" },
  ], d.freshness, (r) => `data-source="${esc(r.source)}"`);
  html += "<h2>Recent alerts</h2>" + alertsTable(d.alerts);
  content.innerHTML = html;
  for (const c of d.cities) for (const ev of c.events) {
    const x = ev.rows.map((r) => r.ticker.split("-").pop());
    plot(`chart-${ev.event_ticker}`, ["p_mkt", "p_wx", "p_fused_norm"].map((k) => ({ type: "bar", name: k, x: x, y: ev.rows.map((r) => r[k]) })), { barmode: "group", yaxis: { range: [0, 1] } });
  }
  status(`updated ${new Date().toLocaleTimeString()}`);
}
function ageText(now, t) {
  const m = (Date.parse(now) - Date.parse(t)) / 60000;
  return m < 90 ? `${m.toFixed(0)} min` : m < 2880 ? `${(m / 60).toFixed(1)} h` : `${(m / 1440).toFixed(1)} d`;
}
function alertsTable(rows) {
  return rows.length ? table("alerts", [
    { h: "fired (UTC)", l: 1, f: (r) => when(r.fired_at) }, { h: "kind", l: 1, f: (r) => esc(r.kind) },
    { h: "severity", l: 1, f: (r) => `<span class="${r.severity === "critical" ? "bad" : "warn"}">${esc(r.severity)}</span>` },
    { h: "message", l: 1, f: (r) => esc(r.message) },
    { h: "sent", l: 1, f: (r) => r.sent_at ? when(r.sent_at) : r.send_error ? `<span class="bad">${esc(r.send_error)}</span>` : '<span class="muted">not sent</span>' },
  ], rows, (r) => `data-key="${esc(r.dedup_key)}"`) : '<p class="muted" id="alerts">no alert has fired</p>';
}
async function pollNow() {
  try {
    const r = await fetch("/api/now", { credentials: "same-origin" });
    if (r.ok) renderNow(await r.json()); else status(`refresh failed: HTTP ${r.status}`);
  } catch (e) { status("refresh failed"); }
}

// ------------------------------------------------------------------ P&L
function renderPnl(runs) {
  if (!runs.length) { content.innerHTML = '<p class="muted">no backtest, paper or live run in the store</p>'; return; }
  let html = '<p class="muted">Each run on one definition (kwx.backtest.metrics): fills held to settlement, after fees; ' +
    "a backtest's P&L assumes its fill model against recorded quotes, a paper run's its fill model on live quotes, a live run's the exchange's fills. " +
    "Interval: 95% on the mean daily P&L (days as draws). Every paper and live run and the newest backtests (<code>?backtests=N</code> for more).</p>";
  html += table("runs", [
    { h: "mode", l: 1, f: (r) => esc(r.mode) }, { h: "run", f: (r) => r.run_id }, { h: "city", l: 1, f: (r) => esc(r.city || "") },
    { h: "fill model", l: 1, f: (r) => esc(r.fill_model || "") }, { h: "status", l: 1, f: (r) => esc(r.status) },
    { h: "days", f: (r) => r.metrics.n_days }, { h: "fills", f: (r) => r.metrics.n_fills },
    { h: "net P&L", k: "net_pnl", f: (r) => money(r.metrics.net_pnl) }, { h: "gross", f: (r) => money(r.metrics.gross_pnl) },
    { h: "maker fees", k: "maker_fees", f: (r) => money(r.metrics.maker_fees) }, { h: "taker fees", k: "taker_fees", f: (r) => money(r.metrics.taker_fees) },
    { h: "max drawdown", k: "max_drawdown", f: (r) => money(r.metrics.max_drawdown) },
    { h: "mean/day [95%]", l: 1, f: (r) => r.daily_mean === null ? "" : `${num(r.daily_mean, 2)} [${num(r.daily_lo, 2)}, ${num(r.daily_hi, 2)}]` },
    { h: "open", f: (r) => r.metrics.open_positions.length },
  ], runs, (r) => `data-run="${esc(r.mode)}-${r.run_id}"`);
  html += '<h2>Daily P&L and equity</h2><div id="equity" class="chart"></div><div id="daily" class="chart" style="height:260px"></div>';
  html += '<h2>Drawdown</h2><div id="drawdown" class="chart" style="height:240px"></div>';
  for (const r of runs) {
    const m = r.metrics;
    html += `<div class="card"><h3>${esc(r.mode)} ${r.run_id} · ${esc(r.fill_model || "")}</h3><div class="grid">`;
    for (const [name, rows] of [["city", m.by_city], ["hour", m.by_hour], ["hazard", m.by_hazard]]) {
      html += `<div><b>by ${name}</b>` + table(`slice-${r.mode}-${r.run_id}-${name}`, [
        { h: name, l: 1, f: (s) => esc(s.slice) }, { h: "fills", f: (s) => s.fills }, { h: "fees", f: (s) => money(s.fees) }, { h: "P&L", f: (s) => money(s.pnl) },
      ], rows) + "</div>";
    }
    html += "</div></div>";
  }
  content.innerHTML = html;
  const name = (r) => `${r.mode} ${r.run_id} (${r.fill_model || "?"})`;
  plot("equity", runs.map((r) => ({ type: "scatter", mode: "lines", name: name(r), x: r.daily.date, y: r.daily.equity })), { title: "equity ($)" });
  plot("daily", runs.map((r) => ({ type: "bar", name: name(r), x: r.daily.date, y: r.daily.pnl })), { title: "daily P&L ($)", barmode: "group" });
  plot("drawdown", runs.map((r) => ({ type: "scatter", mode: "lines", fill: "tozeroy", name: name(r), x: r.daily.date, y: r.daily.drawdown.map((v) => -v) })), { title: "drawdown ($)" });
}

// ------------------------------------------------------------------ Models
const MODELS = ["p_fused_norm", "p_mkt", "p_wx"];
function renderModels(d) {
  let html = '<form class="filters" method="get">city <select name="city" id="city-select" onchange="this.form.submit()">' +
    d.all_cities.map((c) => `<option ${c === d.city ? "selected" : ""}>${esc(c)}</option>`).join("") + "</select></form>";
  html += `<p class="muted">One snapshot a settled day: every bracket at 10:00 local standard time, scored against its result. Rolling window ${d.window} settled days; band = mean ± 1.96 s.e. of the daily Brier in the window.</p>`;
  for (const c of d.cities) {
    html += `<h2>${esc(c.city)} · ${esc(c.mc_version)} · ${c.n_days || 0} settled days</h2>`;
    if (!c.headline) { html += '<p class="muted">no settled day with probabilities</p>'; continue; }
    html += table("headline", [
      { h: "probability", l: 1, f: (m) => esc(m) },
      { h: "Brier", k: "brier", f: (m) => num(c.headline[m].brier, 4) },
      { h: "log-loss", k: "log_loss", f: (m) => num(c.headline[m].log_loss, 4) },
      { h: "ECE (10 bins)", k: "ece", f: (m) => num(c.headline[m].ece, 4) },
      { h: "days", f: (m) => c.headline[m].n_days },
    ], MODELS, (m) => `data-model="${m}"`);
    html += '<div id="roll-brier" class="chart"></div><div class="grid"><div id="roll-ll" class="chart" style="width:540px"></div><div id="roll-ece" class="chart" style="width:540px"></div></div>';
    html += '<div class="grid"><div id="reliability" class="chart" style="width:540px;height:400px"></div><div id="pit" class="chart" style="width:540px;height:400px"></div></div>';
    html += '<div id="mc" class="chart"></div>';
  }
  html += "<h2>Versions in use</h2>";
  const v = d.versions;
  html += "<b>weather model (wx.mc_params)</b>" + table("v-mc", [{ h: "city", l: 1, f: (r) => esc(r.city) }, { h: "version", l: 1, f: (r) => esc(r.version) }, { h: "fit from", l: 1, f: (r) => esc(r.date_from) }, { h: "to", l: 1, f: (r) => esc(r.date_to) }, { h: "fitted", l: 1, f: (r) => when(r.fitted_at) }], v.mc_params);
  html += "<b>fusion (model.fusion_config)</b>" + table("v-fusion", [{ h: "city", l: 1, f: (r) => esc(r.city) }, { h: "version", l: 1, f: (r) => esc(r.version) }, { h: "mc", l: 1, f: (r) => esc(r.mc_version || "") }, { h: "train", l: 1, f: (r) => `${esc(r.train_from || "")} – ${esc(r.train_to || "")}` }, { h: "fitted", l: 1, f: (r) => when(r.fitted_at) }], v.fusion);
  html += "<b>calibrators (default = in use, others = challengers)</b>" + table("v-cal", [{ h: "city", l: 1, f: (r) => esc(r.city) }, { h: "horizon", l: 1, f: (r) => esc(r.horizon) }, { h: "model", l: 1, f: (r) => esc(r.model_type) }, { h: "method", l: 1, f: (r) => esc(r.method) }, { h: "role", l: 1, f: (r) => r.is_default ? "in use" : "challenger" }, { h: "fitted", l: 1, f: (r) => when(r.fitted_at) }], v.calibration);
  html += "<b>model runs</b>" + table("v-runs", [{ h: "run", f: (r) => r.run_id }, { h: "kind", l: 1, f: (r) => esc(r.kind) }, { h: "city", l: 1, f: (r) => esc(r.city || "") }, { h: "model", l: 1, f: (r) => esc(r.model_type || "") }, { h: "accepted", l: 1, f: (r) => esc(r.accepted === null ? "" : r.accepted) }, { h: "created", l: 1, f: (r) => when(r.created_at) }], v.model_runs);
  content.innerHTML = html;
  for (const c of d.cities) {
    if (!c.rolling) continue;
    const roll = c.rolling;
    const traces = [];
    for (const m of MODELS) {
      const r = roll[m];
      if (!r.day.length) continue;
      traces.push({ type: "scatter", mode: "lines", name: m, x: r.day, y: r.brier });
      traces.push({ type: "scatter", mode: "lines", line: { width: 0 }, showlegend: false, x: r.day, y: r.brier_hi, hoverinfo: "skip" });
      traces.push({ type: "scatter", mode: "lines", line: { width: 0 }, fill: "tonexty", opacity: 0.2, name: `${m} band`, x: r.day, y: r.brier_lo, hoverinfo: "skip" });
    }
    plot("roll-brier", traces, { title: "rolling Brier (per bracket)" });
    plot("roll-ll", MODELS.filter((m) => roll[m].day.length).map((m) => ({ type: "scatter", mode: "lines", name: m, x: roll[m].day, y: roll[m].log_loss })), { title: "rolling log-loss of the winner" });
    plot("roll-ece", MODELS.filter((m) => roll[m].day.length).map((m) => ({ type: "scatter", mode: "lines", name: m, x: roll[m].day, y: roll[m].ece })), { title: "rolling ECE" });
    const rel = MODELS.filter((m) => c.reliability[m].mean_p.length).map((m) => ({ type: "scatter", mode: "lines+markers", name: m, x: c.reliability[m].mean_p, y: c.reliability[m].freq, text: c.reliability[m].n.map((n) => `n=${n}`) }));
    rel.push({ type: "scatter", mode: "lines", name: "perfect", x: [0, 1], y: [0, 1], line: { dash: "dot", color: "#999" } });
    plot("reliability", rel, { title: "reliability (10 bins)", xaxis: { title: "predicted" }, yaxis: { title: "observed" } });
    plot("pit", [{ type: "bar", name: "observed", x: c.pit.bins, y: c.pit.observed }, { type: "bar", name: "calibrated", x: c.pit.bins, y: c.pit.expected }], { title: `PIT of the 10:00 Tmax distribution (${c.pit.n_days} days)`, barmode: "group" });
    plot("mc", [
      { type: "scatter", mode: "lines", name: "Σ p_wx", x: c.mc.day, y: c.mc.sum_p_wx },
      { type: "scatter", mode: "lines", name: "Σ p_fused (raw)", x: c.mc.day, y: c.mc.sum_p_fused },
      { type: "scatter", mode: "lines", name: "p_wx below the observed running max", x: c.mc.day, y: c.mc.ruled_out, yaxis: "y2" },
    ], { title: "Monte Carlo health at 10:00", yaxis2: { overlaying: "y", side: "right", title: "ruled out" } });
  }
}

// ------------------------------------------------------------------ Decisions
let lastDecision = 0;
const DEC_COLS = [
  { h: "id", f: (r) => r.decision_id }, { h: "time (UTC)", l: 1, f: (r) => when(r.ts) },
  { h: "mode", l: 1, f: (r) => esc(r.mode) }, { h: "run", f: (r) => r.run_id ?? "" },
  { h: "ticker", l: 1, k: "ticker", f: (r) => esc(r.ticker) }, { h: "kind", l: 1, f: (r) => esc(r.kind || "") },
  { h: "p_mkt", f: (r) => num(r.p_mkt) }, { h: "p_wx", f: (r) => num(r.p_wx) }, { h: "p_fused", f: (r) => num(r.p_fused_norm) },
  { h: "S", f: (r) => num(r.signal) }, { h: "outcome", l: 1, k: "outcome", f: (r) => esc(r.outcome || "") },
];
function decisionRow(r, cls) {
  return `<tr class="clickable ${cls || ""}" data-id="${r.decision_id}">` + DEC_COLS.map((c) => `<td class="${c.k || ""} ${c.l ? "l" : ""}">${c.f(r)}</td>`).join("") + "</tr>";
}
const decisionsById = new Map();
function renderDecisions(d) {
  const f = d.filters;
  const input = (k, w) => `${k} <input name="${k}" id="f-${k}" value="${esc(f[k] ?? "")}" size="${w}">`;
  let html = `<form class="filters" method="get">${input("mode", 7)}${input("run_id", 5)}${input("city", 8)}${input("ticker", 22)}${input("kind", 10)}<button>filter</button></form>`;
  html += '<p class="muted">Newest first; new rows appear as they are written. Click a row for its features and the market around it.</p>';
  html += '<div id="detail"></div>';
  html += `<table id="decisions"><thead><tr>${DEC_COLS.map((c) => `<th class="${c.l ? "l" : ""}">${esc(c.h)}</th>`).join("")}</tr></thead><tbody>` +
    d.rows.map((r) => decisionRow(r)).join("") + "</tbody></table>";
  content.innerHTML = html;
  for (const r of d.rows) { decisionsById.set(String(r.decision_id), r); lastDecision = Math.max(lastDecision, r.decision_id); }
  document.querySelector("#decisions tbody").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-id]");
    if (tr) openDecision(decisionsById.get(tr.dataset.id));
  });
}
async function pollDecisions() {
  const params = new URLSearchParams(window.location.search);
  params.set("after_id", String(lastDecision));
  try {
    const r = await fetch(`/api/decisions?${params}`, { credentials: "same-origin" });
    if (!r.ok) { status(`refresh failed: HTTP ${r.status}`); return; }
    const rows = (await r.json()).rows;
    const body = document.querySelector("#decisions tbody");
    for (const row of rows.slice().reverse()) {
      decisionsById.set(String(row.decision_id), row);
      body.insertAdjacentHTML("afterbegin", decisionRow(row, "new"));
      lastDecision = Math.max(lastDecision, row.decision_id);
    }
    status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) { status("refresh failed"); }
}
async function openDecision(row) {
  const detail = document.getElementById("detail");
  const ticker = row.payload && row.payload.ticker ? row.payload.ticker : row.ticker;
  detail.innerHTML = `<div class="card"><h3>decision ${row.decision_id} · ${esc(ticker)} · ${when(row.ts)}</h3><div id="market-chart" class="chart"></div><pre id="payload">${esc(JSON.stringify(row.payload, null, 1))}</pre></div>`;
  const r = await fetch(`/api/market?ticker=${encodeURIComponent(ticker)}&ts=${encodeURIComponent(row.ts)}`, { credentials: "same-origin" });
  if (!r.ok) { status(`chart failed: HTTP ${r.status}`); return; }
  const m = await r.json();
  const traces = [];
  const versions = [...new Set(m.pmf.map((p) => p.mc_version))];
  for (const v of versions) {
    const rows = m.pmf.filter((p) => p.mc_version === v);
    for (const k of ["p_mkt", "p_wx", "p_fused_norm"]) traces.push({ type: "scatter", mode: "lines", name: `${k} (${v})`, x: rows.map((p) => p.ts), y: rows.map((p) => p[k]) });
  }
  traces.push({ type: "scatter", mode: "lines", name: "yes bid", line: { dash: "dot" }, x: m.candles.map((c) => c.ts), y: m.candles.map((c) => c.yes_bid_close) });
  traces.push({ type: "scatter", mode: "lines", name: "yes ask", line: { dash: "dot" }, x: m.candles.map((c) => c.ts), y: m.candles.map((c) => c.yes_ask_close) });
  plot("market-chart", traces, { title: `${ticker} ± 3 h`, shapes: [{ type: "line", x0: row.ts, x1: row.ts, yref: "paper", y0: 0, y1: 1, line: { color: "#b3261e" } }], yaxis: { range: [0, 1] } });
}

// ------------------------------------------------------------------ Readiness and alerts
function renderReadiness(rows) {
  let html = '<p class="muted">Ready only when all four hold: ≥ 4 weeks of paper; paper P&L whose 95% interval on the mean day is above zero; 30-day calibration within its limit and not significantly worse than before; drawdown within 3 × the daily loss limit.</p>';
  html += rows.length ? table("verdicts", [
    { h: "city", l: 1, f: (r) => esc(r.city) },
    { h: "verdict", l: 1, k: "verdict", f: (r) => `<span class="${r.verdict === "ready" ? "ok" : "bad"}">${esc(r.verdict)}</span>` },
    ...["paper", "pnl", "calibration", "drawdown"].map((k) => ({ h: k, l: 1, k: `c-${k}`, f: (r) => `<span class="${r.criteria[k].ok ? "ok" : "bad"}">${r.criteria[k].ok ? "✓" : "✗"}</span> ${esc(r.criteria[k].text)}` })),
  ], rows, (r) => `data-city="${esc(r.city)}"`) : '<p class="muted">no city has probabilities or paper runs yet</p>';
  content.innerHTML = html;
}

// ------------------------------------------------------------------ boot
if (PAGE === "now") { renderNow(DATA); setInterval(pollNow, 5000); }
else if (PAGE === "pnl") renderPnl(DATA);
else if (PAGE === "models") renderModels(DATA);
else if (PAGE === "decisions") { renderDecisions(DATA); setInterval(pollDecisions, 2000); }
else if (PAGE === "readiness") renderReadiness(DATA);
else if (PAGE === "alerts") content.innerHTML = alertsTable(DATA);
