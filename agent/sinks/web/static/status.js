// Lineside status page: polls /api/status once a second and redraws with plain DOM and SVG.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const POLL_MS = 1000;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c === null || c === undefined ? "" : c);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function fmt(v, digits = 4) {
  return v === null || v === undefined ? "-" : Number(v).toPrecision(digits);
}

function when(ts) {
  return new Date(ts * 1000).toLocaleTimeString();
}

// One control chart: the points, centre and limits; points beyond the limits in red.
function chart(title, values, lines, width = 320, height = 120) {
  const box = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, class: "chart"});
  const label = svg("text", {x: 4, y: 12, "font-size": 11, "font-weight": "bold"});
  label.textContent = title;
  box.append(label);
  const finite = values.filter((v) => v !== null);
  const all = finite.concat(lines.map((l) => l.y).filter((y) => y !== null));
  if (!all.length) return box;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08, top = 16, left = 4, w = width - 70, h = height - top - 6;
  const y = (v) => top + (1 - (v - lo + pad) / (hi - lo + 2 * pad)) * h;
  const x = (i) => left + (values.length > 1 ? (i / (values.length - 1)) * w : 0);
  for (const l of lines) {
    if (l.y === null) continue;
    box.append(svg("line", {x1: left, x2: left + w, y1: y(l.y), y2: y(l.y), stroke: l.colour,
      "stroke-dasharray": l.dash ? "4,3" : "", class: `ref ${l.name}`}));
    const t = svg("text", {x: left + w + 3, y: y(l.y) + 4, "font-size": 10, fill: l.colour});
    t.textContent = `${l.name} ${fmt(l.y)}`;
    box.append(t);
  }
  let run = [];
  const flush = () => {
    if (run.length) box.append(svg("polyline", {points: run.join(" "), fill: "none",
      stroke: "#1f77b4", "stroke-width": 1.2}));
    run = [];
  };
  const upper = lines.find((l) => l.name === "UCL" || l.name === "threshold");
  const lower = lines.find((l) => l.name === "LCL");
  values.forEach((v, i) => {
    if (v === null) { flush(); return; }
    run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const out = (upper && upper.y !== null && v > upper.y) || (lower && lower.y !== null && v < lower.y);
    if (out) box.append(svg("circle", {cx: x(i), cy: y(v), r: 2.5, fill: "#d62728", class: "beyond"}));
  });
  flush();
  return box;
}

function lineSection(line) {
  const over = line.score !== null && line.threshold !== null && line.score > line.threshold;
  const section = el("section", {class: "line" + (line.alarm ? " alarm" : ""), "data-line": line.line});
  section.append(el("h2", {}, `Line ${line.line}`, line.alarm ? " - ALARM" : ""));
  section.append(el("p", {},
    "score ", el("span", {class: "score" + (over ? " over" : ""), "data-score": line.score ?? ""},
      fmt(line.score)),
    " against threshold ", el("span", {class: "threshold"}, fmt(line.threshold)),
    el("span", {class: "muted"}, `  (updated ${when(line.updated)})`)));
  const alarms = el("div", {class: "open-alarms"});
  if (!line.open_alarms.length) alarms.append(el("p", {class: "muted"}, "No open alarm."));
  for (const a of line.open_alarms) {
    alarms.append(el("div", {class: "open-alarm", "data-kind": a.kind},
      el("strong", {}, `${a.kind} alarm since ${when(a.since)}`), " ", a.message,
      el("div", {class: "explanation"}, a.explanation || "explanation pending...")));
  }
  section.append(alarms);
  const charts = el("div", {class: "charts"});
  charts.append(chart("score", line.scores,
    [{name: "threshold", y: line.threshold, colour: "#d62728", dash: true}]));
  for (const t of line.tags) {
    const lim = t.limits || {center: null, lcl: null, ucl: null};
    charts.append(chart(`${t.name}${t.unit ? " (" + t.unit + ")" : ""}`, t.trace, [
      {name: "UCL", y: lim.ucl, colour: "#d62728", dash: true},
      {name: "CL", y: lim.center, colour: "#2ca02c"},
      {name: "LCL", y: lim.lcl, colour: "#d62728", dash: true}]));
  }
  section.append(charts);
  const table = el("table", {class: "tags"},
    el("tr", {}, el("th", {}, "tag"), el("th", {}, "value"), el("th", {}, "unit"),
      el("th", {}, "quality"), el("th", {}, "SPC")));
  for (const t of line.tags) {
    table.append(el("tr", {"data-tag": t.name}, el("td", {}, t.name), el("td", {}, fmt(t.value, 6)),
      el("td", {}, t.unit), el("td", {class: `q-${t.quality}`, title: t.reason}, t.quality),
      el("td", {}, t.spc)));
  }
  section.append(table);
  return section;
}

function render(data) {
  document.getElementById("user").textContent = data.user;
  document.getElementById("clock").textContent = when(data.now);
  const m = data.model || {};
  document.getElementById("model").textContent =
    `model ${m.version ?? "-"}, ${m.status ?? "-"}${m.last_update ? ", updated " + m.last_update : ""}`;
  const plcs = document.getElementById("plc-table");
  plcs.replaceChildren(el("tr", {}, el("th", {}, "PLC"), el("th", {}, "state"),
    el("th", {}, "last error")));
  for (const p of data.plcs) {
    plcs.append(el("tr", {"data-plc": p.name}, el("td", {}, p.name),
      el("td", {class: p.state === "ok" ? "q-good" : "q-bad"}, p.state), el("td", {}, p.error)));
  }
  document.getElementById("lines").replaceChildren(...data.lines.map(lineSection));
  const history = document.getElementById("history-table");
  history.replaceChildren(el("tr", {}, el("th", {}, "time"), el("th", {}, "line"),
    el("th", {}, "kind"), el("th", {}, "edge"), el("th", {}, "message")));
  for (const h of data.history) {
    history.append(el("tr", {class: "history-row"}, el("td", {}, new Date(h.ts * 1000).toLocaleString()),
      el("td", {}, h.line), el("td", {}, h.kind), el("td", {}, h.state), el("td", {}, h.message)));
  }
  const newest = Math.max(0, ...data.lines.map((l) => l.updated));
  document.getElementById("stale").hidden = data.now - newest < 10;
}

async function poll() {
  try {
    const answer = await fetch("/api/status", {cache: "no-store", credentials: "same-origin"});
    if (answer.status === 401) { window.location = "/login"; return; }
    if (answer.ok) render(await answer.json());
  } catch (err) {
    document.getElementById("stale").hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

poll();
