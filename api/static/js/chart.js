// Small SVG charts drawn here (no chart library): horizontal bars and hourly columns.
// Colours come from CSS (currentColor and classes), so dark mode just works.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// rows: [{label, value}] → horizontal bar chart.
export function barChart(rows, { title, testid, width = 520, barHeight = 18, labelWidth = 190 } = {}) {
  const max = Math.max(1, ...rows.map((r) => r.value));
  const height = rows.length * (barHeight + 6) + 8;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "data-testid": testid || "bar-chart", preserveAspectRatio: "xMinYMin meet" });
  root.append(svg("title", {}, title || "chart"));
  const plot = width - labelWidth - 50;
  rows.forEach((r, i) => {
    const y = 4 + i * (barHeight + 6);
    const w = Math.max(1, (r.value / max) * plot);
    root.append(svg("text", { x: labelWidth - 6, y: y + barHeight * 0.72, "text-anchor": "end", class: "chart-label" }, r.label));
    const bar = svg("rect", { x: labelWidth, y, width: w, height: barHeight, rx: 3, class: "chart-bar" });
    bar.append(svg("title", {}, `${r.label}: ${r.value}`));
    root.append(bar);
    root.append(svg("text", { x: labelWidth + w + 4, y: y + barHeight * 0.72, class: "chart-value" }, String(r.value)));
  });
  return root;
}

// points: [{label, value}] in time order → columns with a baseline and a few labels.
export function columnChart(points, { title, testid, width = 520, height = 160 } = {}) {
  const max = Math.max(1, ...points.map((p) => p.value));
  const pad = { l: 34, r: 6, t: 8, b: 22 };
  const plotW = width - pad.l - pad.r;
  const plotH = height - pad.t - pad.b;
  const slot = plotW / Math.max(1, points.length);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart", "data-testid": testid || "column-chart", preserveAspectRatio: "xMinYMin meet" });
  root.append(svg("title", {}, title || "chart"));
  root.append(svg("line", { x1: pad.l, x2: width - pad.r, y1: pad.t + plotH, y2: pad.t + plotH, class: "chart-axis" }));
  root.append(svg("text", { x: pad.l - 4, y: pad.t + 10, "text-anchor": "end", class: "chart-value" }, String(max)));
  root.append(svg("text", { x: pad.l - 4, y: pad.t + plotH, "text-anchor": "end", class: "chart-value" }, "0"));
  const every = Math.max(1, Math.ceil(points.length / 6));
  points.forEach((p, i) => {
    const hgt = (p.value / max) * plotH;
    const x = pad.l + i * slot + slot * 0.15;
    const bar = svg("rect", { x, y: pad.t + plotH - hgt, width: Math.max(1, slot * 0.7), height: Math.max(0, hgt), class: "chart-bar" });
    bar.append(svg("title", {}, `${p.label}: ${p.value}`));
    root.append(bar);
    if (i % every === 0) root.append(svg("text", { x: x + slot * 0.35, y: height - 6, "text-anchor": "middle", class: "chart-label" }, p.label));
  });
  return root;
}
