// The console's little script (no inline script: the Content-Security-Policy forbids it).
// 1. A form with data-confirm asks before it is sent (cancelling a session).
// 2. The figures page updates itself every REFRESH_MS from figures.json: cards, tables, charts
//    (uPlot, from npm, served by the console).
"use strict";

const REFRESH_MS = 10000;

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-confirm]");
  if (form && !window.confirm(form.dataset.confirm)) event.preventDefault();
});

const me = document.currentScript;
const source = me && me.dataset.figures;
const charts = {};
const COLORS = ["#0b5cad", "#136f3a", "#b35c00", "#7b2cbf", "#a4161a", "#2a9d8f", "#6c757d", "#e76f51"];

function number(value) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US");
}

function updateCards(headline) {
  for (const item of headline) {
    const card = document.querySelector(`.card[data-key="${item.key}"] .value`);
    if (card) card.textContent = number(item.value);
  }
}

function updateTables(tables) {
  for (const [name, table] of Object.entries(tables)) {
    const body = document.querySelector(`.figure-table[data-table="${name}"] tbody`);
    if (!body) continue;
    const rows = table.rows.map((row) => {
      const tr = document.createElement("tr");
      for (const value of row) {
        const td = document.createElement("td");
        td.textContent = value;
        tr.append(td);
      }
      return tr;
    });
    body.replaceChildren(...rows);
  }
}

function draw(id, spec) {
  const element = document.getElementById(id);
  if (!element || typeof uPlot === "undefined") return;
  const names = Object.keys(spec.series);
  // uPlot wants numbers on the x axis: the index of each label, named by the label.
  const x = spec.x.map((_, i) => i);
  const data = [x, ...names.map((n) => spec.series[n])];
  if (charts[id] && charts[id].series.length === names.length + 1) {
    charts[id].setData(data);
    return;
  }
  if (charts[id]) charts[id].destroy();
  const labels = spec.x;
  charts[id] = new uPlot(
    {
      width: Math.max(element.clientWidth - 10, 300),
      height: 260,
      scales: { x: { time: false } },
      axes: [{ values: (_, ticks) => ticks.map((t) => labels[t] ?? "") }, {}],
      series: [{ label: "x", value: (_, i) => labels[i] ?? "" },
        ...names.map((n, i) => ({ label: n.replaceAll("_", " "), stroke: COLORS[i % COLORS.length], width: 2 }))],
    },
    data,
    element,
  );
}

async function refresh() {
  try {
    const response = await fetch(source, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401 || response.redirected) {
      window.location.reload(); // the session ended: the login page
      return;
    }
    if (!response.ok) return;
    const figures = await response.json();
    updateCards(figures.headline);
    updateTables(figures.tables);
    draw("chart-by-day", figures.charts.by_day);
    draw("chart-per-minute", figures.charts.per_minute);
    const missing = document.getElementById("missing");
    missing.hidden = figures.missing.length === 0;
    missing.querySelector("span").textContent = figures.missing.join(", ");
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (e) {
    // Offline for a moment: the next round tries again.
  }
}

if (source) {
  refresh();
  setInterval(refresh, REFRESH_MS);
}
